"""TLS, mutual TLS and API keys on the real gateway over real sockets (fake backend)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from crossrank_client import CrossEncoderClient, CrossrankClientError, RetryPolicy, tls_credentials
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration import certificates
from tests.integration.gateway_thread import GatewayThread

NO_RETRY = RetryPolicy(attempts=1)
KEYS = ("key-one-7f3a", "key-two-91bc")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> certificates.Certificates:
    return certificates.make(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def keyed() -> Iterator[GatewayThread]:
    gateway = GatewayThread(api_keys=KEYS).start()
    yield gateway
    gateway.stop()


def test_api_keys(keyed: GatewayThread, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for key in (None, "wrong", KEYS[0][:-1]):
        with CrossEncoderClient(keyed.target, api_key=key, retry=NO_RETRY) as client:
            with pytest.raises(CrossrankClientError) as caught:
                client.rerank("q", ["d"])
            assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
            assert caught.value.reason == "UNAUTHENTICATED"
    for key in KEYS:
        with CrossEncoderClient(keyed.target, api_key=key) as client:
            assert len(client.rerank("q", ["d", "e"])) == 2
    # Probes need no key.
    with grpc.insecure_channel(keyed.target) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    assert not any(key in record.getMessage() for record in caplog.records for key in KEYS)


def test_tls(certs: certificates.Certificates) -> None:
    gateway = GatewayThread(tls=(str(certs.server_cert), str(certs.server_key), "")).start()
    try:
        credentials = tls_credentials(certs.ca.read_bytes())
        with CrossEncoderClient(gateway.target, credentials=credentials) as client:
            assert len(client.rerank("q", ["d"])) == 1
        with CrossEncoderClient(gateway.target, retry=NO_RETRY, timeout=5) as plaintext:
            with pytest.raises(CrossrankClientError) as caught:
                plaintext.rerank("q", ["d"])
            assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        gateway.stop()


def test_mutual_tls(certs: certificates.Certificates) -> None:
    gateway = GatewayThread(tls=(str(certs.server_cert), str(certs.server_key), str(certs.ca))).start()
    try:
        anonymous = tls_credentials(certs.ca.read_bytes())
        with CrossEncoderClient(gateway.target, credentials=anonymous, retry=NO_RETRY, timeout=5) as client:
            with pytest.raises(CrossrankClientError) as caught:
                client.rerank("q", ["d"])
            assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        identified = tls_credentials(certs.ca.read_bytes(), certs.client_key.read_bytes(),
                                     certs.client_cert.read_bytes())
        with CrossEncoderClient(gateway.target, credentials=identified) as client:
            assert len(client.rerank("q", ["d"])) == 1
    finally:
        gateway.stop()


def test_settings_refuse_half_a_tls_configuration(tmp_path: Path, certs: certificates.Certificates) -> None:
    from crossrank import settings

    config = tmp_path / "c.yaml"
    config.write_text(f"tls:\n  cert_file: {certs.server_cert}\n")
    with pytest.raises(settings.SettingsError, match=r"tls\.cert_file and tls\.key_file"):
        settings.load(config, {}, {})
    config.write_text("tls:\n  client_ca_file: /nonexistent.pem\n")
    with pytest.raises(settings.SettingsError, match="client_ca_file"):
        settings.load(config, {}, {})
    loaded = settings.load(None, {"CROSSRANK_API_KEYS": "secret-x1,secret-y2"}, {})
    assert loaded.api_keys == ("secret-x1", "secret-y2") and "secret" not in repr(loaded)
