"""TEI's gRPC API (`tei.v1`) on the gateway's gRPC port, called with stubs generated from TEI's published proto
(what a TEI gRPC user has): the same core and pipeline as `crossrank.v1`, TEI's shapes and status codes."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from crossrank.gateway.transport.tei_proto import tei_pb2 as pb
from crossrank.gateway.transport.tei_proto import tei_pb2_grpc as pb_grpc
from tests.fakes import NLI, fake_logits
from tests.integration.gateway_thread import GatewayThread


@pytest.fixture(scope="module")
def channel() -> Iterator[tuple[GatewayThread, grpc.Channel]]:
    gateway = GatewayThread(api_keys=("k",)).start()
    with grpc.insecure_channel(gateway.target) as channel:
        yield gateway, channel
    gateway.stop()


AUTH = (("authorization", "Bearer k"),)


def test_rerank_best_first_with_texts(channel: tuple[GatewayThread, grpc.Channel]) -> None:
    gateway, chan = channel
    texts = ["nothing here", "alpha beta", "alpha"]
    response = pb_grpc.RerankStub(chan).Rerank(pb.RerankRequest(
        query="alpha beta", texts=texts, return_text=True, raw_scores=True,
        truncation_direction=pb.TRUNCATION_DIRECTION_LEFT), metadata=AUTH)
    assert [r.index for r in response.ranks] == [1, 2, 0]
    assert [r.text for r in response.ranks] == [texts[1], texts[2], texts[0]]
    assert response.ranks[0].score == pytest.approx(fake_logits("alpha beta", "alpha beta", 1)[0])
    assert response.metadata.compute_tokens > 0 and response.metadata.total_time_ns > 0
    assert gateway.backend.cuts[-1].side == "left"


def test_predict_pair_lists_every_label_best_first(channel: tuple[GatewayThread, grpc.Channel]) -> None:
    _, chan = channel
    response = pb_grpc.PredictStub(chan).PredictPair(pb.PredictPairRequest(inputs=["alpha", "alpha"]),
                                                     metadata=(*AUTH, ("x-crossrank-model", NLI.name)))
    assert sorted(p.label for p in response.predictions) == sorted(NLI.labels)
    scores = [p.score for p in response.predictions]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-5)


def test_info(channel: tuple[GatewayThread, grpc.Channel]) -> None:
    _, chan = channel
    info = pb_grpc.InfoStub(chan).Info(pb.InfoRequest(), metadata=AUTH)
    assert info.model_id == "fake-reranker" and info.model_type == pb.MODEL_TYPE_RERANKER
    assert info.max_input_length == 32 and info.max_client_batch_size == 50 and info.version


@pytest.mark.parametrize(("call", "code"), [
    (lambda c: pb_grpc.RerankStub(c).Rerank(pb.RerankRequest(query="q", texts=[]), metadata=AUTH),
     grpc.StatusCode.INVALID_ARGUMENT),  # TEI's Empty
    (lambda c: pb_grpc.RerankStub(c).Rerank(pb.RerankRequest(query="q", texts=["d"])),
     grpc.StatusCode.UNAUTHENTICATED),
    (lambda c: pb_grpc.RerankStub(c).Rerank(pb.RerankRequest(query="q", texts=["d"]),
                                            metadata=(*AUTH, ("x-crossrank-model", NLI.name))),
     grpc.StatusCode.FAILED_PRECONDITION),  # TEI's Backend: not a reranker
    (lambda c: pb_grpc.PredictStub(c).Predict(pb.PredictRequest(inputs="one text"), metadata=AUTH),
     grpc.StatusCode.INVALID_ARGUMENT),
    (lambda c: pb_grpc.PredictStub(c).PredictPair(pb.PredictPairRequest(inputs=["a"]), metadata=AUTH),
     grpc.StatusCode.INVALID_ARGUMENT),
    (lambda c: pb_grpc.EmbedStub(c).Embed(pb.EmbedRequest(inputs="x"), metadata=AUTH),
     grpc.StatusCode.UNIMPLEMENTED),
])
def test_errors_take_teis_grpc_codes(channel: tuple[GatewayThread, grpc.Channel], call: object,
                                     code: grpc.StatusCode) -> None:
    _, chan = channel
    with pytest.raises(grpc.RpcError) as raised:
        call(chan)  # type: ignore[operator]
    assert raised.value.code() == code, raised.value.details()
