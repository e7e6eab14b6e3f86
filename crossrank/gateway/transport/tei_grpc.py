"""TEI's gRPC API (`tei.v1`, proto/tei/) on crossrank's gRPC port: `Rerank/Rerank`, `Predict/PredictPair` and
`Info/Info`, answered by the same core as `crossrank.v1` and behind the same interceptor (API key, admission,
metrics, access log); its errors take TEI's gRPC codes (`tei.GRPC_CODES`).

Conversion only, as in grpc_servicer.py. proto3 cannot tell an unset `truncate` from false, so over-long pairs
are truncated either way (TEI with `--auto-truncate`). A request scores with the default model unless its
metadata names another (`x-crossrank-model`). `Predict` (one text) is refused: crossrank scores pairs. The
streaming methods and the Embed and Tokenize services answer UNIMPLEMENTED.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc

from crossrank.gateway.backend.base import TokenCut
from crossrank.gateway.core.errors import InvalidArgumentError
from crossrank.gateway.core.scoring import ClassifyQuery, CrossEncoderCore, RerankQuery
from crossrank.gateway.transport import tei
from crossrank.gateway.transport.tei_proto import tei_pb2 as pb
from crossrank.gateway.transport.tei_proto import tei_pb2_grpc as pb_grpc

MODEL_KEY = "x-crossrank-model"
SERVICE_NAMES = tuple(pb.DESCRIPTOR.services_by_name[name].full_name for name in ("Rerank", "Predict", "Info"))
_SIDES: dict[int, str] = {pb.TRUNCATION_DIRECTION_RIGHT: "right", pb.TRUNCATION_DIRECTION_LEFT: "left"}
_MODEL_TYPES = {"reranker": pb.MODEL_TYPE_RERANKER, "classifier": pb.MODEL_TYPE_CLASSIFIER}


def _model(context: grpc.aio.ServicerContext) -> str:
    return next((str(v) for k, v in context.invocation_metadata() or () if k == MODEL_KEY), "")


def _cut(direction: int) -> TokenCut:
    if direction not in _SIDES:
        raise InvalidArgumentError(f"unknown truncation_direction value {direction}", "INVALID_ENUM",
                                   "truncation_direction")
    return TokenCut(side=_SIDES[direction])


async def _unimplemented(context: grpc.aio.ServicerContext) -> NoReturn:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "crossrank serves TEI's unary calls only")
    raise AssertionError("unreachable")  # abort always raises


def _timeout(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else max(0.001, remaining)


def _metadata(started: float, chars: int, tokens: int, inference_ms: float) -> pb.Metadata:
    total_ns = int((time.perf_counter() - started) * 1e9)
    inference_ns = int(inference_ms * 1e6)
    return pb.Metadata(compute_chars=chars, compute_tokens=tokens, total_time_ns=total_ns,
                       inference_time_ns=inference_ns, queue_time_ns=max(0, total_ns - inference_ns))


class TeiRerankServicer(pb_grpc.RerankServicer):
    def __init__(self, core: CrossEncoderCore) -> None:
        self._core = core

    async def Rerank(self, request: pb.RerankRequest, context: grpc.aio.ServicerContext) -> pb.RerankResponse:  # noqa: N802
        started = time.perf_counter()
        if not request.texts:
            raise InvalidArgumentError("`texts` cannot be empty", "EMPTY_DOCUMENTS", "texts")
        outcome = await self._core.rerank(RerankQuery(
            model=_model(context), query=request.query, documents=list(request.texts),
            raw_scores=request.raw_scores, return_documents=request.return_text, timeout=_timeout(context),
            cut=_cut(request.truncation_direction)))
        chars = len(request.query) * len(request.texts) + sum(len(t) for t in request.texts)
        return pb.RerankResponse(
            ranks=[pb.Rank(index=r.index, text=r.document, score=r.score) for r in outcome.results],
            metadata=_metadata(started, chars, outcome.usage.tokens, outcome.inference_ms))

    async def RerankStream(self, request_iterator: AsyncIterator[Any],  # noqa: N802
                           context: grpc.aio.ServicerContext) -> pb.RerankResponse:
        await _unimplemented(context)


class TeiPredictServicer(pb_grpc.PredictServicer):
    def __init__(self, core: CrossEncoderCore) -> None:
        self._core = core

    async def Predict(self, request: pb.PredictRequest,  # noqa: N802
                      context: grpc.aio.ServicerContext) -> pb.PredictResponse:
        raise InvalidArgumentError("crossrank scores pairs: call PredictPair with [text, text_pair]",
                                   "INVALID_FIELD", "inputs")

    async def PredictPair(self, request: pb.PredictPairRequest,  # noqa: N802
                          context: grpc.aio.ServicerContext) -> pb.PredictResponse:
        started = time.perf_counter()
        if len(request.inputs) != 2:
            raise InvalidArgumentError(f"inputs: a pair has 2 texts, got {len(request.inputs)}", "INVALID_FIELD",
                                       "inputs")
        text, text_pair = request.inputs
        outcome = await self._core.classify(ClassifyQuery(
            model=_model(context), pairs=[(text, text_pair)], raw_scores=request.raw_scores,
            timeout=_timeout(context), cut=_cut(request.truncation_direction)))
        scores = sorted(outcome.results[0].scores, key=lambda s: -s[1])  # TEI lists every label, best first
        return pb.PredictResponse(
            predictions=[pb.Prediction(score=score, label=label) for label, score in scores],
            metadata=_metadata(started, len(text) + len(text_pair), outcome.usage.tokens, outcome.inference_ms))

    async def PredictStream(self, request_iterator: AsyncIterator[Any],  # noqa: N802
                            context: grpc.aio.ServicerContext) -> AsyncIterator[pb.PredictResponse]:
        await _unimplemented(context)
        yield pb.PredictResponse()  # a generator, as the streaming handler needs

    async def PredictPairStream(self, request_iterator: AsyncIterator[Any],  # noqa: N802
                                context: grpc.aio.ServicerContext) -> AsyncIterator[pb.PredictResponse]:
        await _unimplemented(context)
        yield pb.PredictResponse()


class TeiInfoServicer(pb_grpc.InfoServicer):
    def __init__(self, core: CrossEncoderCore, max_in_flight: int) -> None:
        self._core = core
        self._max_in_flight = max_in_flight

    async def Info(self, request: pb.InfoRequest, context: grpc.aio.ServicerContext) -> pb.InfoResponse:  # noqa: N802
        info = tei.TeiInfo.of(await self._core.resolve(_model(context)), self._core.limits, self._max_in_flight)
        return pb.InfoResponse(
            version=info.version, model_id=info.model_id, model_dtype=info.model_dtype,
            model_type=_MODEL_TYPES[info.model_type], max_concurrent_requests=info.max_concurrent_requests,
            max_input_length=info.max_input_length, max_batch_tokens=info.max_batch_tokens,
            max_batch_requests=info.max_batch_requests, max_client_batch_size=info.max_client_batch_size,
            tokenization_workers=1)


def add_to_server(server: grpc.aio.Server, core: CrossEncoderCore, max_in_flight: int) -> None:
    pb_grpc.add_RerankServicer_to_server(TeiRerankServicer(core), server)
    pb_grpc.add_PredictServicer_to_server(TeiPredictServicer(core), server)
    pb_grpc.add_InfoServicer_to_server(TeiInfoServicer(core, max_in_flight), server)
