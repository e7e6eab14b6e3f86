"""Who may call and how much at once: API keys (bearer tokens), a bounded number of requests in flight and
waiting, and a bounded number of request bytes among them. Beyond either bound a request is refused at once
with RESOURCE_EXHAUSTED, so overload shows as fast, retryable errors instead of unbounded latency and memory:
the gateway's memory follows the bytes it admitted, not the number of requests (a few maximal requests
weigh more than hundreds of small ones)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hmac
import time
from collections.abc import AsyncIterator, Iterable, Sequence

from crossrank.gateway.core.errors import OverloadedError, UnauthenticatedError

AUTHORIZATION = "authorization"

# When the current request arrived and how long it waited for a slot: read by the transports to report
# timings in their responses.
arrived_at: contextvars.ContextVar[float] = contextvars.ContextVar("arrived_at", default=0.0)
queued_ms: contextvars.ContextVar[float] = contextvars.ContextVar("queued_ms", default=0.0)


class ApiKeys:
    """Accepts `authorization: Bearer <key>` for any configured key; no keys configured = no check."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = [k.encode() for k in keys if k]

    def check(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> None:
        if not self._keys:
            return
        presented = b""
        for key, value in metadata or ():
            if key == AUTHORIZATION:
                raw = value.encode() if isinstance(value, str) else value
                if raw[:7].lower() == b"bearer ":
                    presented = raw[7:].strip()
        # Compare with every key, without an early exit, so timing says nothing about which key is close.
        matched = False
        for known in self._keys:
            matched |= hmac.compare_digest(presented, known)
        if not matched:
            raise UnauthenticatedError()


class Limiter:
    """At most `max_in_flight` requests run at once and `max_queue` more wait, and the requests admitted (running
    and waiting) hold at most `max_bytes` of request bytes together; the rest are refused. A request larger
    than `max_bytes` on its own is admitted when nothing else is (so every request within the message size
    limit can run), and then alone."""

    def __init__(self, max_in_flight: int, max_queue: int, max_bytes: int = 0) -> None:
        self._running = asyncio.Semaphore(max_in_flight)
        self._capacity = max_in_flight + max_queue
        self._max_bytes = max_bytes  # 0: no byte bound
        self._admitted = 0
        self._bytes = 0

    @contextlib.asynccontextmanager
    async def admit(self, size: int = 0) -> AsyncIterator[None]:
        if self._admitted >= self._capacity:
            raise OverloadedError(f"{self._capacity} requests in flight and queued")
        if self._max_bytes and self._bytes and self._bytes + size > self._max_bytes:
            raise OverloadedError(f"{self._bytes >> 20} of its {self._max_bytes >> 20} MiB for requests in flight "
                                  f"taken, this request needs {max(1, size >> 20)} MiB")
        self._admitted += 1
        self._bytes += size
        waiting = time.perf_counter()
        try:
            async with self._running:
                queued_ms.set((time.perf_counter() - waiting) * 1000)
                yield
        finally:
            self._admitted -= 1
            self._bytes -= size


def read_key_file(path: str) -> list[str]:
    """One key per line; blank lines and lines starting with # are ignored (a Kubernetes Secret mount)."""
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#")]
