"""Bad input against the real gateway and Triton: each case gets its exact code, reason and field, and the
next valid request still succeeds; generated requests never produce INTERNAL or UNKNOWN."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from crossrank_client.v1 import crossrank_service_pb2 as pb
from crossrank_client.v1 import crossrank_service_pb2_grpc as pb_grpc
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.server_process import ServerProcess

pytestmark = pytest.mark.e2e

RERANK = "/crossrank.v1.CrossEncoderService/Rerank"


def _details(error: grpc.RpcError) -> tuple[str, list[str]]:
    from google.rpc import error_details_pb2

    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    reason, fields = "", []
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    return reason, fields


CASES: list[tuple[str, Any, grpc.StatusCode, str, list[str]]] = [
    ("empty query", pb.RerankRequest(query="", documents=["d"]), grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_QUERY",
     ["query"]),
    ("whitespace query", pb.RerankRequest(query=" \t\u3000", documents=["d"]), grpc.StatusCode.INVALID_ARGUMENT,
     "EMPTY_QUERY", ["query"]),
    ("no documents", pb.RerankRequest(query="q"), grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_DOCUMENTS",
     ["documents"]),
    ("empty document", pb.RerankRequest(query="q", documents=["a", "b", ""]), grpc.StatusCode.INVALID_ARGUMENT,
     "EMPTY_DOCUMENT", ["documents[2]"]),
    ("too many documents", pb.RerankRequest(query="q", documents=["d"] * 1001), grpc.StatusCode.INVALID_ARGUMENT,
     "TOO_MANY_INPUTS", ["documents"]),
    ("text over the character limit", pb.RerankRequest(query="q", documents=["ok", "y" * 262_145]),
     grpc.StatusCode.INVALID_ARGUMENT, "TEXT_TOO_LONG", ["documents[1]"]),
    ("over the token limit, truncation NONE",
     pb.RerankRequest(query="q", documents=["ok", "alpha " * 100], truncation=pb.TRUNCATION_NONE),
     grpc.StatusCode.INVALID_ARGUMENT, "INPUT_TOO_LONG", ["documents[1]"]),
    ("negative top_n", pb.RerankRequest(query="q", documents=["d"], top_n=-1), grpc.StatusCode.INVALID_ARGUMENT,
     "INVALID_TOP_N", ["top_n"]),
    ("unknown enum value", pb.RerankRequest(query="q", documents=["d"], truncation=7),  # type: ignore[arg-type]
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ENUM", ["truncation"]),
    ("unknown model", pb.RerankRequest(model="nope", query="q", documents=["d"]), grpc.StatusCode.NOT_FOUND,
     "MODEL_NOT_FOUND", ["model"]),
    ("a 10 kB model name", pb.RerankRequest(model="m" * 10_000, query="q", documents=["d"]),
     grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND", ["model"]),
    ("rerank on a classifier", pb.RerankRequest(model="tiny-nli", query="q", documents=["d"]),
     grpc.StatusCode.INVALID_ARGUMENT, "WRONG_TASK", ["model"]),
]


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Any:
    channel = grpc.insecure_channel(server.target, options=[("grpc.max_send_message_length", 64 << 20)])
    yield pb_grpc.CrossEncoderServiceStub(channel), channel
    channel.close()


@pytest.mark.parametrize(("name", "request_", "code", "reason", "fields"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(stub: Any, name: str, request_: Any, code: grpc.StatusCode, reason: str,
                   fields: list[str]) -> None:
    service, _ = stub
    with pytest.raises(grpc.RpcError) as caught:
        service.Rerank(request_, timeout=60)
    assert caught.value.code() == code
    assert _details(caught.value) == (reason, fields)
    message = (caught.value.details() or "").lower()
    assert not any(leak in message for leak in ("triton", "/", "tensor", "traceback", "input_ids", "logits"))
    assert len(service.Rerank(pb.RerankRequest(query="q", documents=["d", "e"]), timeout=60).results) == 2


@pytest.mark.parametrize(("payload", "code"), [
    (b"\x12\x02\xff\xfe\x1a\x01d", grpc.StatusCode.INVALID_ARGUMENT),  # query is not UTF-8
    (b"\x1a\x84\x80\x80\x11" + b"z" * (34 << 20), grpc.StatusCode.RESOURCE_EXHAUSTED),  # over the receive limit
])
def test_raw_bytes(stub: Any, payload: bytes, code: grpc.StatusCode) -> None:
    service, channel = stub
    with pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary(RERANK)(payload, timeout=60)
    assert caught.value.code() == code
    assert len(service.Rerank(pb.RerankRequest(query="q", documents=["d"]), timeout=60).results) == 1


texts = st.text(st.characters(codec="utf-8"), max_size=120)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=texts, documents=st.lists(texts, max_size=12), top_n=st.integers(-3, 20),
       truncation=st.integers(-2, 5), model=st.sampled_from(["", "tiny-bert", "tiny-nli", "unknown"]),
       raw=st.booleans())
def test_generated_requests_never_fail_internally(stub: Any, query: str, documents: list[str], top_n: int,
                                                  truncation: int, model: str, raw: bool) -> None:
    service, _ = stub
    request = pb.RerankRequest(model=model, query=query, documents=documents, top_n=top_n,
                               truncation=truncation, raw_scores=raw)  # type: ignore[arg-type]
    try:
        response = service.Rerank(request, timeout=60)
    except grpc.RpcError as exc:
        assert exc.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), exc.details()
        return
    expected = len(documents) if top_n == 0 else min(top_n, len(documents))
    assert len(response.results) == expected
    scores = [r.score for r in response.results]
    assert scores == sorted(scores, reverse=True)
