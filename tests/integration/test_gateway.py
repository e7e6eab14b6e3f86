"""The gateway over a real socket with the fake backend, called with the real Python clients, grpcurl-style
reflection and the health service."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest
from crossrank_client import AsyncCrossEncoderClient, CrossEncoderClient, CrossrankClientError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from crossrank.gateway.transport.grpc_server import SERVICE_NAME, set_serving
from tests.fakes import NLI, RERANKER, fake_logits
from tests.integration.gateway_thread import GatewayThread


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayThread]:
    thread = GatewayThread()
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def client(gateway: GatewayThread) -> Iterator[CrossEncoderClient]:
    with CrossEncoderClient(f"127.0.0.1:{gateway.port}") as c:
        yield c


def test_rerank_returns_typed_sorted_results(client: CrossEncoderClient) -> None:
    docs = ["bananas", "paris france", "paris"]
    response = client.rerank("paris france", docs, top_n=2, return_documents=True)
    assert response.model == RERANKER.name
    assert [r.index for r in response] == [1, 2]
    assert response[0].score > response[1].score
    assert response[0].document == "paris france"
    assert response.usage.pairs == 3


def test_classify_and_list_models(client: CrossEncoderClient) -> None:
    result = client.classify([("a b", "a b"), ("x", "y")], model=NLI.name)
    assert [len(r.scores) for r in result] == [3, 3]
    # Each label is the argmax of the pair's logits, with the scores in the model's label order.
    for (text, pair), got in zip([("a b", "a b"), ("x", "y")], result):
        logits = fake_logits(text, pair, len(NLI.labels))
        assert got.label == NLI.labels[logits.index(max(logits))]
        assert [s.label for s in got.scores] == list(NLI.labels)
    models = {m.name: m for m in client.list_models()}
    assert models[RERANKER.name].task == "rerank" and models[RERANKER.name].is_default
    assert models[NLI.name].labels == list(NLI.labels) and models[NLI.name].task == "classify"


@pytest.mark.parametrize(("call", "code", "reason", "field"), [
    (lambda c: c.rerank("", ["d"]), grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_QUERY", "query"),
    (lambda c: c.rerank("q", []), grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_DOCUMENTS", "documents"),
    (lambda c: c.rerank("q", ["d"], top_n=-3), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TOP_N", "top_n"),
    (lambda c: c.rerank("q", ["d"], model="nope"), grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND", "model"),
    (lambda c: c.classify([("a", "")]), grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_TEXT", "inputs[0].text_pair"),
])
def test_errors_carry_code_reason_and_field(client: CrossEncoderClient, call, code, reason, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CrossrankClientError) as caught:
        call(client)
    assert caught.value.code == code
    assert caught.value.reason == reason
    assert [v.field for v in caught.value.field_violations] == [field]
    assert caught.value.request_id
    assert client.rerank("q", ["d"]).results  # the server is unharmed


def test_backend_down_is_unavailable(gateway: GatewayThread, client: CrossEncoderClient) -> None:
    gateway.backend.available = False
    try:
        with pytest.raises(CrossrankClientError) as caught:
            client.rerank("q", ["d"])
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        gateway.backend.available = True


def test_unknown_enum_value_is_invalid_argument(gateway: GatewayThread) -> None:
    from crossrank_client.v1 import crossrank_service_pb2 as pb
    from crossrank_client.v1 import crossrank_service_pb2_grpc as pb_grpc

    with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = pb_grpc.CrossEncoderServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Rerank(pb.RerankRequest(query="q", documents=["d"], truncation=42))  # type: ignore[arg-type]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_async_client(gateway: GatewayThread) -> None:
    async with AsyncCrossEncoderClient(f"127.0.0.1:{gateway.port}") as client:
        response = await client.rerank("paris", ["x", "paris"], raw_scores=True)
        assert [r.index for r in response] == [1, 0]
        with pytest.raises(CrossrankClientError) as caught:
            await client.rerank("q", [""])
        assert caught.value.reason == "EMPTY_DOCUMENT"
        assert (await client.list_models())


def test_health_and_reflection(gateway: GatewayThread) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        names = {s.name for s in replies[0].list_services_response.service}
        assert SERVICE_NAME in names and "grpc.health.v1.Health" in names


def test_container_healthcheck_command(gateway: GatewayThread) -> None:
    from crossrank.healthcheck import main as healthcheck

    target = f"127.0.0.1:{gateway.port}"
    assert healthcheck(["--target", target]) == 0
    assert healthcheck(["--target", target, "--service", "crossrank.liveness"]) == 0
    asyncio.run_coroutine_threadsafe(set_serving(gateway.health, False), gateway.loop).result(5)
    try:
        assert healthcheck(["--target", target]) == 1
        assert healthcheck(["--target", target, "--service", "crossrank.liveness"]) == 0
    finally:
        asyncio.run_coroutine_threadsafe(set_serving(gateway.health, True), gateway.loop).result(5)
    from crossrank.embedded_triton.launcher import free_port

    assert healthcheck(["--target", f"127.0.0.1:{free_port()}", "--timeout", "1"]) == 1
