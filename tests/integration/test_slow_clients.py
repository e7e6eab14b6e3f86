"""No slow or stalled client starves the others: the real gRPC and HTTP servers over sockets, the fake
backend behind them (the e2e twin, tests/e2e/test_slow_clients.py, runs the issue's cases on the real server)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from crossrank_client import AsyncCrossEncoderClient, CrossrankClientError, RetryPolicy
from crossrank_client.v1 import crossrank_service_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.gateway_thread import GatewayThread
from tests.integration.http_raw import post, read_reply

RERANK = "/crossrank.v1.CrossEncoderService/Rerank"
BODY = b'{"query": "q", "documents": ["d", "e"]}'


def _stalled_upload(port: int, chunked: bool, sent: bytes = b'{"query": "q", "docu',
                    length: int = 1 << 20) -> socket.socket:
    """A connection that announces a large body (1 MiB, the most the gateway under test takes; or a chunked
    one), sends a few bytes of it and stalls."""
    sock = socket.create_connection(("127.0.0.1", port))
    framing = b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % length if chunked else \
        b"Content-Length: %d\r\n\r\n" % length
    sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\n" + framing + sent)
    return sock


@pytest.fixture()
def gateway() -> Iterator[GatewayThread]:
    # Room for 8 requests and 1 MiB of request bytes, the most one body may hold: a body admitted by its
    # declared length would fill the byte bound alone.
    thread = GatewayThread(max_in_flight=4, max_queue=4, max_inflight_bytes=1 << 20, read_timeout_s=2.0,
                           http_header_timeout_s=2.0).start()
    yield thread
    thread.stop()


async def _others_are_served(gateway: GatewayThread) -> None:
    async with AsyncCrossEncoderClient(gateway.target, retry=RetryPolicy(attempts=1)) as client:
        assert len((await client.rerank("q", ["d", "e"])).results) == 2
    replies = await asyncio.gather(*(asyncio.to_thread(post, gateway.http_port, BODY) for _ in range(6)))
    assert [r.status for r in replies] == [200] * 6


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_stalled_upload_neither_refuses_nor_delays_others(gateway: GatewayThread, chunked: bool) -> None:
    stalled = [_stalled_upload(gateway.http_port, chunked) for _ in range(3)]
    try:
        await asyncio.sleep(0.3)
        started = time.perf_counter()
        await _others_are_served(gateway)
        assert time.perf_counter() - started < 5  # served at once, not after the stalled uploads
    finally:
        for sock in stalled:
            sock.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_stalled_body_ends_with_408_within_the_read_timeout(gateway: GatewayThread, chunked: bool) -> None:
    with _stalled_upload(gateway.http_port, chunked) as sock:
        sock.settimeout(10)
        started = time.perf_counter()
        reply = read_reply(sock)
        waited = time.perf_counter() - started
    assert reply.status == 408 and reply.json()["reason"] == "READ_TIMEOUT"
    assert 1.5 < waited < 6
    assert gateway.count("HttpRerank", "DEADLINE_EXCEEDED") == 1


def test_a_body_trickling_under_the_floor_rate_ends_with_408() -> None:
    # 64 KiB in time, then 1 kB/s against a floor of 64 kB/s: the deadline passes about 2 s in.
    gateway = GatewayThread(read_timeout_s=2.0, min_read_bytes_per_s=65536).start()
    try:
        with _stalled_upload(gateway.http_port, False, b'{"query": "q", "documents": ["' + b"x" * 65536,
                             length=500_000) as sock:
            sock.settimeout(1)
            started = time.perf_counter()
            reply = None
            while reply is None and time.perf_counter() - started < 10:
                try:
                    reply = read_reply(sock)
                except TimeoutError:  # nothing yet: 1 kB more
                    sock.sendall(b"x" * 1000)
        assert reply.status == 408 and time.perf_counter() - started < 8
    finally:
        gateway.stop()


def test_a_slow_request_head_is_closed_after_the_header_timeout(gateway: GatewayThread) -> None:
    with socket.create_connection(("127.0.0.1", gateway.http_port)) as sock:
        sock.settimeout(0.25)
        started = time.perf_counter()
        sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: g\r\n")
        closed = False
        while not closed and time.perf_counter() - started < 8:
            try:
                closed = sock.recv(1) == b""  # the server closed the connection
            except TimeoutError:
                sock.sendall(b"X-Slow: 1\r\n")  # a header line now and then: slowloris
            except ConnectionResetError:
                closed = True
    assert closed and time.perf_counter() - started < 5


async def _silent() -> AsyncIterator[bytes]:
    await asyncio.Event().wait()  # the request message never comes
    yield b""


async def test_calls_whose_message_never_comes_hold_nothing_others_need() -> None:
    # At most 100 calls wait for their message (max_in_flight + max_queue); each has 2 s + 1 MiB at 1 MiB/s.
    gateway = GatewayThread(max_in_flight=50, max_queue=50, max_inflight_bytes=16 << 20, read_timeout_s=2.0).start()
    channel = grpc.aio.insecure_channel(gateway.target)
    try:
        half_open = [channel.stream_unary(RERANK)(_silent()) for _ in range(400)]
        await asyncio.sleep(0.5)
        started = time.perf_counter()
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        rerank = channel.unary_unary(RERANK, request_serializer=pb.RerankRequest.SerializeToString,
                                     response_deserializer=pb.RerankResponse.FromString)
        replies = await asyncio.gather(*(rerank(pb.RerankRequest(query="q", documents=["d"]), timeout=2)
                                         for _ in range(8)))
        assert len(replies) == 8 and time.perf_counter() - started < 5
        codes = []
        for call in half_open:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await asyncio.wait_for(call, 6)
            codes.append(caught.value.code())
        # The oldest made room for newer calls (the 300 beyond the 100 that may wait, and as many as the served
        # calls needed); the rest ended at their message deadline.
        assert len(codes) == 400 and set(codes) == {grpc.StatusCode.RESOURCE_EXHAUSTED,
                                                     grpc.StatusCode.DEADLINE_EXCEEDED}
        assert 300 <= codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) <= 308
    finally:
        await channel.close()
        gateway.stop()


async def test_unary_clients_still_work_on_every_method() -> None:
    gateway = GatewayThread().start()
    try:
        async with AsyncCrossEncoderClient(gateway.target, retry=RetryPolicy(attempts=1)) as client:
            assert len((await client.rerank("q", ["a", "b"])).results) == 2
            assert len((await client.classify([("a", "b")], model="fake-nli")).results) == 1
            assert await client.list_models()
            with pytest.raises(CrossrankClientError) as caught:
                await client.rerank("", ["d"])
            assert caught.value.reason == "EMPTY_QUERY"
    finally:
        gateway.stop()
