"""Connection options shared by the sync and async clients: credentials, API key metadata, retry policy."""

from __future__ import annotations

import random
from dataclasses import dataclass

import grpc

# Large rerank requests (1,000 long documents) exceed gRPC's 4 MiB default.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
CHANNEL_OPTIONS = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]


def tls_credentials(root_certificates: bytes | None = None, private_key: bytes | None = None,
                    certificate_chain: bytes | None = None) -> grpc.ChannelCredentials:
    """TLS credentials (PEM bytes). A private key and certificate chain make it mutual TLS."""
    return grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries UNAVAILABLE only (server starting, restarting or unreachable), with jittered backoff."""

    attempts: int = 3
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_backoff_s, self.initial_backoff_s * 2**attempt))

    def should_retry(self, error: grpc.RpcError, attempt: int) -> bool:
        code = error.code() if hasattr(error, "code") else None
        return code == grpc.StatusCode.UNAVAILABLE and attempt + 1 < self.attempts


def metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()
