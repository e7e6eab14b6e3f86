"""Overload and malformed requests against the real gateway (fake backend): bounded, fast, never INTERNAL."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from crossrank_client import AsyncCrossEncoderClient, CrossrankClientError, RetryPolicy
from crossrank_client.v1 import crossrank_service_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.gateway_thread import GatewayThread


async def test_flood_is_bounded_and_health_stays_responsive() -> None:
    gateway = GatewayThread(max_in_flight=2, max_queue=3, delay_s=0.5).start()
    try:
        async with AsyncCrossEncoderClient(gateway.target, retry=RetryPolicy(attempts=1)) as client:
            async def call() -> str:
                try:
                    await client.rerank("q", ["d"])
                    return "OK"
                except CrossrankClientError as exc:
                    return f"{exc.code.name}:{exc.reason}"

            flood = [asyncio.create_task(call()) for _ in range(40)]
            await asyncio.sleep(0.1)
            channel = grpc.aio.insecure_channel(gateway.target)
            started = time.perf_counter()
            status = (await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                                        timeout=2)).status
            health_latency = time.perf_counter() - started
            await channel.close()
            outcomes = await asyncio.gather(*flood)
        assert status == health_pb2.HealthCheckResponse.SERVING and health_latency < 0.5
        assert outcomes.count("OK") == 5  # 2 running + 3 queued
        assert outcomes.count("RESOURCE_EXHAUSTED:OVERLOADED") == 35
        assert gateway.backend.calls and max(gateway.backend.calls) <= 4
    finally:
        gateway.stop()


async def test_admission_counts_request_bytes_not_only_requests() -> None:
    # Room for 20 requests by count, for 100 kB of requests by bytes: 40 kB requests get in two at a time, while
    # small ones still pass beside them; a single request over the byte bound runs when it is alone.
    gateway = GatewayThread(max_in_flight=10, max_queue=10, max_inflight_bytes=100_000, delay_s=0.5).start()
    try:
        async with AsyncCrossEncoderClient(gateway.target, retry=RetryPolicy(attempts=1)) as client:
            async def call(documents: list[str]) -> str:
                try:
                    await client.rerank("q", documents)
                    return "OK"
                except CrossrankClientError as exc:
                    return f"{exc.code.name}:{exc.reason}:{exc.message}"

            big = ["x" * 990] * 40  # 40 kB
            outcomes = await asyncio.gather(*(call(big) for _ in range(6)), call(["small"]))
        assert outcomes[:6].count("OK") == 2
        refused = [o for o in outcomes[:6] if o != "OK"]
        assert len(refused) == 4 and all(o.startswith("RESOURCE_EXHAUSTED:OVERLOADED:") for o in refused)
        assert "MiB for requests in flight" in refused[0]
        assert outcomes[6] == "OK"
    finally:
        gateway.stop()
    small = GatewayThread(max_in_flight=10, max_queue=10, max_inflight_bytes=30_000).start()
    try:
        async with AsyncCrossEncoderClient(small.target, retry=RetryPolicy(attempts=1)) as client:
            assert len((await client.rerank("q", big)).results) == 40  # over the byte bound, but alone
    finally:
        small.stop()


def _raw_call(target: str, method: str, payload: bytes) -> grpc.RpcError:
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(method)  # no serializers: bytes on the wire exactly as given
        with pytest.raises(grpc.RpcError) as caught:
            call(payload, timeout=5)
    return caught.value


def test_invalid_utf8_is_invalid_argument_not_internal() -> None:
    gateway = GatewayThread().start()
    try:
        query = b"\xff\xfe not utf-8"
        payload = bytes([0x12, len(query)]) + query + bytes([0x1A, 1]) + b"d"  # query=2, documents=3
        error = _raw_call(gateway.target, "/crossrank.v1.CrossEncoderService/Rerank", payload)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "UTF-8" in (error.details() or "")
        too_big = b"\x12" + b"\xff\xff\xff\x01" + b"a" * (2 * 1024 * 1024)  # over the 1 MiB receive limit
        assert _raw_call(gateway.target, "/crossrank.v1.CrossEncoderService/Rerank",
                         too_big).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        gateway.stop()


def test_a_10kb_model_name_is_not_found_with_the_name_shortened() -> None:
    gateway = GatewayThread().start()
    try:
        with grpc.insecure_channel(gateway.target) as channel:
            rerank = channel.unary_unary("/crossrank.v1.CrossEncoderService/Rerank",
                                         request_serializer=pb.RerankRequest.SerializeToString,
                                         response_deserializer=pb.RerankResponse.FromString)
            with pytest.raises(grpc.RpcError) as caught:
                rerank(pb.RerankRequest(model="m" * 10_000, query="q", documents=["d"]), timeout=5)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        message = caught.value.details() or ""
        assert "m" * 64 in message and "m" * 65 not in message and "10000 characters" in message
    finally:
        gateway.stop()
