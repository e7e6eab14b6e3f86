"""Request building and response conversion shared by the sync and async clients."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from crossrank_client import types
from crossrank_client.v1 import crossrank_service_pb2 as pb

_TASKS = {pb.TASK_RERANK: "rerank", pb.TASK_CLASSIFY: "classify"}
_TRUNCATION = {None: pb.TRUNCATION_UNSPECIFIED, True: pb.TRUNCATION_LONGEST_FIRST, False: pb.TRUNCATION_NONE}


def rerank_request(query: str, documents: Sequence[str], model: str, top_n: int, return_documents: bool,
                   raw_scores: bool, truncate: bool | None, chunk_long_documents: bool = False,
                   max_chunks_per_document: int = 0, instruction: str = "") -> pb.RerankRequest:
    return pb.RerankRequest(model=model, query=query, documents=list(documents), top_n=top_n,
                            return_documents=return_documents, raw_scores=raw_scores,
                            truncation=_TRUNCATION[truncate],
                            long_documents=pb.LONG_DOCUMENTS_CHUNK if chunk_long_documents
                            else pb.LONG_DOCUMENTS_UNSPECIFIED,
                            max_chunks_per_document=max_chunks_per_document, instruction=instruction)


def classify_request(pairs: Iterable[tuple[str, str]], model: str, raw_scores: bool,
                     truncate: bool | None, instruction: str = "") -> pb.ClassifyRequest:
    return pb.ClassifyRequest(model=model, inputs=[pb.PairInput(text=a, text_pair=b) for a, b in pairs],
                              raw_scores=raw_scores, truncation=_TRUNCATION[truncate], instruction=instruction)


def _usage(usage: pb.Usage) -> types.Usage:
    return types.Usage(pairs=usage.pairs, tokens=usage.tokens, rescored=usage.rescored)


def _timing(response: pb.RerankResponse | pb.ClassifyResponse) -> types.Timing | None:
    if not response.HasField("timing"):
        return None
    t = response.timing
    return types.Timing(queue_ms=t.queue_ms, inference_ms=t.inference_ms, total_ms=t.total_ms)


def rerank_response(response: pb.RerankResponse) -> types.RerankResponse:
    return types.RerankResponse(
        model=response.model,
        results=[types.RerankResult(r.index, r.score, r.document if r.HasField("document") else None,
                                   r.scored_chars if r.HasField("scored_chars") else None)
                 for r in response.results],
        usage=_usage(response.usage), timing=_timing(response))


def classify_response(response: pb.ClassifyResponse) -> types.ClassifyResponse:
    return types.ClassifyResponse(
        model=response.model,
        results=[types.ClassifyResult(r.label, r.score, [types.LabelScore(s.label, s.score) for s in r.scores])
                 for r in response.results],
        usage=_usage(response.usage), timing=_timing(response))


def models_response(response: pb.ListModelsResponse) -> list[types.ModelInfo]:
    return [types.ModelInfo(name=m.name, task=_TASKS.get(m.task, "unspecified"), labels=list(m.labels),
                            max_length=m.max_length, engine=m.engine, precision=m.precision, source=m.source,
                            is_default=m.is_default, default_instruction=m.default_instruction,
                            accepts_instruction=m.accepts_instruction, exact_head=m.exact_head,
                            head_delta=m.head_delta)
            for m in response.models]
