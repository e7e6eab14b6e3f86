"""gRPC servicer for `crossrank.v1.CrossEncoderService`: converts proto messages to and from the core's values.

No logic lives here beyond conversion; errors propagate as `CrossrankError` to the interceptor.
"""

from __future__ import annotations

import time

import grpc
from crossrank_client.v1 import crossrank_service_pb2 as pb
from crossrank_client.v1 import crossrank_service_pb2_grpc as pb_grpc

from crossrank.gateway.core.admission import arrived_at, queued_ms
from crossrank.gateway.core.errors import InvalidArgumentError
from crossrank.gateway.core.scoring import ClassifyQuery, CrossEncoderCore, RerankQuery, Usage
from crossrank.model_info import Task

_TASKS = {Task.RERANK: pb.TASK_RERANK, Task.CLASSIFY: pb.TASK_CLASSIFY}


# Open proto3 enums arrive as any integer: each known value maps to the core's flag, the rest are refused.
_TRUNCATE: dict[int, bool] = {
    pb.TRUNCATION_UNSPECIFIED: True, pb.TRUNCATION_LONGEST_FIRST: True, pb.TRUNCATION_NONE: False}
_CHUNK: dict[int, bool] = {
    pb.LONG_DOCUMENTS_UNSPECIFIED: False, pb.LONG_DOCUMENTS_TRUNCATE: False, pb.LONG_DOCUMENTS_CHUNK: True}


def _flag(table: dict[int, bool], value: int, field: str) -> bool:
    if value not in table:
        raise InvalidArgumentError(f"unknown {field} value {value}", "INVALID_ENUM", field)
    return table[value]


def _timing(inference_ms: float) -> pb.Timing:
    started = arrived_at.get()
    total = (time.perf_counter() - started) * 1000 if started else 0.0
    return pb.Timing(queue_ms=queued_ms.get(), inference_ms=inference_ms, total_ms=total)


def _timeout(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else max(0.001, remaining)


def _usage(usage: Usage) -> pb.Usage:
    return pb.Usage(pairs=usage.pairs, tokens=usage.tokens, rescored=usage.rescored)


class CrossEncoderServicer(pb_grpc.CrossEncoderServiceServicer):
    def __init__(self, core: CrossEncoderCore) -> None:
        self._core = core

    async def Rerank(self, request: pb.RerankRequest, context: grpc.aio.ServicerContext) -> pb.RerankResponse:  # noqa: N802
        outcome = await self._core.rerank(RerankQuery(
            model=request.model, query=request.query, documents=list(request.documents), top_n=request.top_n,
            return_documents=request.return_documents, raw_scores=request.raw_scores,
            truncate=_flag(_TRUNCATE, request.truncation, "truncation"), timeout=_timeout(context),
            chunk_long_documents=_flag(_CHUNK, request.long_documents, "long_documents"),
            max_chunks_per_document=request.max_chunks_per_document, instruction=request.instruction))
        return pb.RerankResponse(
            model=outcome.model,
            results=[pb.RerankResult(index=r.index, score=r.score, document=r.document, scored_chars=r.scored_chars)
                     for r in outcome.results],
            usage=_usage(outcome.usage), timing=_timing(outcome.inference_ms))

    async def Classify(self, request: pb.ClassifyRequest,  # noqa: N802
                       context: grpc.aio.ServicerContext) -> pb.ClassifyResponse:
        outcome = await self._core.classify(ClassifyQuery(
            model=request.model, pairs=[(i.text, i.text_pair) for i in request.inputs],
            raw_scores=request.raw_scores, truncate=_flag(_TRUNCATE, request.truncation, "truncation"),
            timeout=_timeout(context), instruction=request.instruction))
        return pb.ClassifyResponse(
            model=outcome.model,
            results=[pb.ClassifyResult(label=r.label, score=r.score,
                                       scores=[pb.LabelScore(label=k, score=v) for k, v in r.scores])
                     for r in outcome.results],
            usage=_usage(outcome.usage), timing=_timing(outcome.inference_ms))

    async def ListModels(self, request: pb.ListModelsRequest,  # noqa: N802
                         context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
        models, default = await self._core.list_models()
        return pb.ListModelsResponse(models=[
            pb.ModelInfo(name=m.name, task=_TASKS[m.task], labels=list(m.labels), max_length=m.max_length,
                         engine=m.engine, precision=m.precision, source=m.source, is_default=m.name == default,
                         default_instruction=m.default_instruction, accepts_instruction=m.accepts_instruction,
                         exact_head=m.exact_head, head_delta=m.head_delta)
            for m in models])
