"""Access control and overload with the real gateway and the real Triton: mutual TLS, API keys, a bounded
number of requests, Triton on localhost only, no key in the log."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from crossrank_client import (
    AsyncCrossEncoderClient,
    CrossEncoderClient,
    CrossrankClientError,
    RetryPolicy,
    tls_credentials,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crossrank.embedded_triton.launcher import free_port
from tests.e2e.server_process import ServerProcess, health_status
from tests.integration import certificates

pytestmark = pytest.mark.e2e
KEY = "e2e-key-5c0ffee"
NO_RETRY = RetryPolicy(attempts=1)


@pytest.fixture(scope="module")
def secured(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, object, int]]:
    directory = tmp_path_factory.mktemp("secured")
    certs = certificates.make(directory)
    triton_port = free_port()
    server = ServerProcess(["--repository", str(repository), "--default-model", "minilm"], log=directory / "s.log",
                           env={"CROSSRANK_TLS_CERT_FILE": str(certs.server_cert),
                                "CROSSRANK_TLS_KEY_FILE": str(certs.server_key),
                                "CROSSRANK_TLS_CLIENT_CA_FILE": str(certs.ca), "CROSSRANK_API_KEYS": KEY,
                                "CROSSRANK_MAX_IN_FLIGHT": "1", "CROSSRANK_MAX_QUEUE": "2",
                                "CROSSRANK_TRITON_GRPC_PORT": str(triton_port)})
    identified = tls_credentials(certs.ca.read_bytes(), certs.client_key.read_bytes(), certs.client_cert.read_bytes())

    def serving() -> bool:
        with grpc.secure_channel(server.target, identified) as channel:
            return health_status(channel, "crossrank.v1.CrossEncoderService") == health_pb2.HealthCheckResponse.SERVING

    deadline = time.monotonic() + 300
    while not serving():
        assert server.process.poll() is None and time.monotonic() < deadline, server.log()
        time.sleep(0.25)
    try:
        yield server, (certs, identified), triton_port
    finally:
        assert server.terminate() == 0


def test_mutual_tls_and_api_key(secured: tuple[ServerProcess, object, int]) -> None:
    server, (certs, identified), _ = secured  # type: ignore[misc]
    with CrossEncoderClient(server.target, credentials=identified, api_key=KEY) as client:
        assert len(client.rerank("alpha", ["beta", "gamma"], model="tiny-bert")) == 2
    with CrossEncoderClient(server.target, credentials=identified, retry=NO_RETRY) as client:
        with pytest.raises(CrossrankClientError) as caught:
            client.rerank("alpha", ["beta"])
        assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
    anonymous = tls_credentials(certs.ca.read_bytes())
    for options in ({"credentials": anonymous}, {}):
        with CrossEncoderClient(server.target, api_key=KEY, retry=NO_RETRY, timeout=5, **options) as client:
            with pytest.raises(CrossrankClientError) as caught:
                client.rerank("alpha", ["beta"])
            assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert KEY not in server.log()


def test_flood_is_bounded(secured: tuple[ServerProcess, object, int]) -> None:
    server, (_, identified), _ = secured  # type: ignore[misc]
    documents = [" ".join(["passage words about search ranking"] * 10)] * 100

    async def flood() -> tuple[list[str], float]:
        async with AsyncCrossEncoderClient(server.target, credentials=identified, api_key=KEY,
                                           retry=NO_RETRY, timeout=120) as client:
            async def call() -> str:
                try:
                    await client.rerank("ranking query", documents)
                    return "OK"
                except CrossrankClientError as exc:
                    return exc.code.name

            tasks = [asyncio.create_task(call()) for _ in range(12)]
            await asyncio.sleep(0.2)
            channel = grpc.aio.secure_channel(server.target, identified)
            started = time.perf_counter()
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            latency = time.perf_counter() - started
            await channel.close()
            return list(await asyncio.gather(*tasks)), latency

    outcomes, health_latency = asyncio.run(flood())
    assert outcomes.count("OK") == 3  # 1 in flight + 2 queued
    assert outcomes.count("RESOURCE_EXHAUSTED") == 9
    assert health_latency < 1.0


def test_embedded_triton_listens_on_localhost_only(secured: tuple[ServerProcess, object, int]) -> None:
    _, _, triton_port = secured
    ss = shutil.which("ss")
    if ss is None:
        pytest.skip("iproute2's ss is not installed: cannot list listening sockets")
    lines = subprocess.run([ss, "-ltnH"], capture_output=True, text=True, check=True, timeout=10).stdout.splitlines()
    addresses = [line.split()[3].rsplit(":", 1)[0] for line in lines if line.split()[3].endswith(f":{triton_port}")]
    assert addresses and set(addresses) <= {"127.0.0.1", "[::ffff:127.0.0.1]"}, addresses


def test_http_api_is_served_over_the_same_mutual_tls_and_needs_the_key(
        secured: tuple[ServerProcess, object, int]) -> None:
    import json
    import ssl
    import urllib.error
    import urllib.request

    server, (certs, _), _ = secured
    body = json.dumps({"query": "alpha", "documents": ["beta"], "model": "tiny-bert"}).encode()

    def post(scheme: str, context: ssl.SSLContext | None, headers: dict[str, str]) -> int | str:
        request = urllib.request.Request(f"{scheme}://127.0.0.1:{server.http_port}/v1/rerank", data=body,
                                         method="POST", headers={"Content-Type": "application/json", **headers})
        try:
            with urllib.request.urlopen(request, timeout=60, context=context) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except Exception as error:  # no HTTP answer at all: TLS refused, connection reset, garbage
            return type(error).__name__

    identified = ssl.create_default_context(cafile=str(certs.ca))
    identified.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    anonymous = ssl.create_default_context(cafile=str(certs.ca))
    key = {"Authorization": f"Bearer {KEY}"}
    # Never plaintext: the port speaks TLS only, and only to clients with a certificate from the CA.
    assert not isinstance(post("http", None, key), int)
    assert not isinstance(post("https", anonymous, key), int)
    for headers, expected in (({}, 401), ({"Authorization": "Bearer wrong"}, 401), (key, 200)):
        assert post("https", identified, headers) == expected
