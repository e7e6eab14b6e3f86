"""No client can starve the others, against the real server (real Triton, default limits): a stalled HTTP
upload that declares 16 MiB, a stalled chunked upload, and 400 gRPC calls whose message never comes, while
other clients, HTTP and gRPC, health included, are served at once."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request
from collections.abc import AsyncIterator

import grpc
import pytest
from crossrank_client.v1 import crossrank_service_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.server_process import ServerProcess, metric_value, scrape

pytestmark = pytest.mark.e2e

RERANK = "/crossrank.v1.CrossEncoderService/Rerank"


def _http_rerank(server: ServerProcess) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}/v1/rerank", method="POST",
                                     data=json.dumps({"query": "alpha", "documents": ["beta", "alpha"]}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


async def _grpc_served(server: ServerProcess) -> None:
    async with grpc.aio.insecure_channel(server.target) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        rerank = channel.unary_unary(RERANK, request_serializer=pb.RerankRequest.SerializeToString,
                                     response_deserializer=pb.RerankResponse.FromString)
        replies = await asyncio.gather(*(rerank(pb.RerankRequest(query="alpha", documents=["beta", "alpha"]),
                                                timeout=10) for _ in range(4)))
        assert all(len(r.results) == 2 for r in replies)


async def test_stalled_uploads_starve_no_one(server: ServerProcess) -> None:
    stalled = []
    for framing in (b"Content-Length: 16777216\r\n\r\n", b"Transfer-Encoding: chunked\r\n\r\n1000000\r\n"):
        sock = socket.create_connection(("127.0.0.1", server.http_port))
        sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\n" + framing
                     + b'{"query": "alpha", "documents": ["be')
        stalled.append(sock)
    try:
        await asyncio.sleep(0.5)
        started = time.perf_counter()
        statuses = await asyncio.gather(*(asyncio.to_thread(_http_rerank, server) for _ in range(4)))
        await _grpc_served(server)
        assert statuses == [200] * 4 and time.perf_counter() - started < 10
        for sock in stalled:  # and the stalled uploads end at the read deadline (10 s for the first 64 KiB)
            sock.settimeout(20)
            assert sock.recv(4096).startswith(b"HTTP/1.1 408 ")
    finally:
        for sock in stalled:
            sock.close()


async def _silent() -> AsyncIterator[bytes]:
    await asyncio.Event().wait()
    yield b""


async def test_calls_whose_message_never_comes_starve_no_one(server: ServerProcess) -> None:
    async with grpc.aio.insecure_channel(server.target) as channel:
        half_open = [channel.stream_unary(RERANK)(_silent()) for _ in range(400)]  # no deadline
        try:
            await asyncio.sleep(1)
            started = time.perf_counter()
            await _grpc_served(server)
            assert await asyncio.to_thread(_http_rerank, server) == 200
            assert time.perf_counter() - started < 10
        finally:
            for call in half_open:
                call.cancel()
    await asyncio.sleep(1)
    assert metric_value(scrape(server.metrics_port), "crossrank_inflight_requests") == 0
