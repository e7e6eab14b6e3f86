"""The gateway's transport-agnostic core: resolves the model, validates, scores through the backend,
applies the activation, sorts and cuts `top_n`. The gRPC servicer (and any other transport) only converts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

import numpy as np

from crossrank import activation, exact_head
from crossrank.gateway.backend.base import DEFAULT_CUT, PairTooLongError, ScoredPairs, ScoringBackend, TokenCut
from crossrank.gateway.core import chunking, validation
from crossrank.gateway.core.errors import InvalidArgumentError, ModelGoneError, ModelNotFoundError, WrongTaskError
from crossrank.gateway.core.metrics import GatewayMetrics
from crossrank.gateway.core.validation import Limits
from crossrank.model_info import Activation, ModelInfo, Task

logger = logging.getLogger(__name__)

# An unknown model name triggers a fresh look at the backend's models at most this often.
_REFRESH_INTERVAL_S = 1.0


@dataclass(frozen=True)
class Usage:
    pairs: int
    tokens: int
    # Documents re-scored with the fp32 encoder for the exact head (0 for models served without it).
    rescored: int = 0


@dataclass(frozen=True)
class RerankQuery:
    model: str
    query: str
    documents: Sequence[str]
    top_n: int = 0
    return_documents: bool = False
    raw_scores: bool = False
    truncate: bool = True
    timeout: float | None = None
    chunk_long_documents: bool = False
    max_chunks_per_document: int = 0  # 0 = the server's default
    instruction: str = ""  # "" = the model's own
    cut: TokenCut = DEFAULT_CUT  # truncation side and per-document token limit


@dataclass(frozen=True)
class RankedDocument:
    index: int
    score: float
    document: str | None
    # Characters of the document (from its start) that its score saw, when that is not all of it.
    scored_chars: int | None = None


@dataclass(frozen=True)
class RerankOutcome:
    model: str
    results: tuple[RankedDocument, ...]
    usage: Usage
    inference_ms: float = 0.0


@dataclass(frozen=True)
class ClassifyQuery:
    model: str
    pairs: Sequence[tuple[str, str]]
    raw_scores: bool = False
    truncate: bool = True
    timeout: float | None = None
    instruction: str = ""  # "" = the model's own
    cut: TokenCut = DEFAULT_CUT  # truncation side


@dataclass(frozen=True)
class ClassifiedPair:
    label: str
    score: float
    scores: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class ClassifyOutcome:
    model: str
    results: tuple[ClassifiedPair, ...]
    usage: Usage
    inference_ms: float = 0.0


class CrossEncoderCore:
    """Rerank, Classify and ListModels over a `ScoringBackend`."""

    def __init__(self, backend: ScoringBackend, limits: Limits, default_model: str = "",
                 metrics: GatewayMetrics | None = None) -> None:
        self._backend = backend
        self._metrics = metrics
        self._limits = limits
        self._configured_default = default_model
        self._models: dict[str, ModelInfo] = {}
        self._refreshed_at = float("-inf")

    async def refresh_models(self) -> list[ModelInfo]:
        models = await self._backend.models()
        self._models = {m.name: m for m in models}
        self._refreshed_at = time.monotonic()
        return models

    @property
    def limits(self) -> Limits:
        return self._limits

    def model_names(self) -> Collection[str]:
        """The models known from the last refresh (served ones only)."""
        return self._models.keys()

    def set_default(self, name: str) -> None:
        self._configured_default = name

    @property
    def default_model(self) -> str:
        if self._configured_default in self._models:
            return self._configured_default
        return min(self._models, default="")

    async def resolve(self, name: str) -> ModelInfo:
        # An unknown name (or an empty list) refreshes the list at most once per interval, whatever clients
        # send: a flood of made-up names must not become a flood of repository reads on Triton.
        unknown = not self._models or (name and name not in self._models)
        if unknown and time.monotonic() - self._refreshed_at > _REFRESH_INTERVAL_S:
            await self.refresh_models()
        name = name or self.default_model
        if name not in self._models:
            raise ModelNotFoundError(name, sorted(self._models))
        return self._models[name]

    async def list_models(self) -> tuple[list[ModelInfo], str]:
        if not self._models and time.monotonic() - self._refreshed_at > _REFRESH_INTERVAL_S:
            await self.refresh_models()
        return sorted(self._models.values(), key=lambda m: m.name), self.default_model

    async def rerank(self, query: RerankQuery) -> RerankOutcome:
        validation.validate_rerank(query.query, query.documents, query.top_n, self._limits)
        validation.token_cut(query.cut, query.chunk_long_documents)
        max_chunks = validation.chunks_per_document(query.max_chunks_per_document, self._limits)
        model = await self.resolve(query.model)
        if model.task is not Task.RERANK:
            raise WrongTaskError(f"model {model.name!r} is a {len(model.labels)}-label classifier; "
                                 "use Classify, or Rerank with a one-logit model")
        validation.instruction(query.instruction, model.name, model.accepts_instruction, self._limits)
        started = time.perf_counter()
        documents = len(query.documents)
        fp32_alone = model.exact_head and exact_head.fp32_alone(exact_head.head_size(query.top_n, documents),
                                                                documents)
        scorer = replace(model, name=model.exact_model) if fp32_alone else model
        # Chunking needs the tokenizer to cut each chunk at the window's end, so it always truncates: with
        # TRUNCATION_NONE too, an over-long document is chunked, not refused (documented in the API).
        scored = await self._score(scorer, query.query, list(query.documents), query.timeout,
                                   query.truncate or query.chunk_long_documents, "documents[{}]", query.instruction,
                                   query.cut)
        usage = self._usage(model, scored)
        if query.chunk_long_documents:
            scored, extra = await self._best_chunks(scorer, query, scored, max_chunks)
            usage = Usage(usage.pairs + extra.pairs, usage.tokens + extra.tokens)
        if fp32_alone:
            usage = replace(usage, rescored=documents)
        elif model.exact_head:
            scored, rescored = await self._exact_head(model, query, scored, max_chunks)
            usage = replace(usage, rescored=rescored)
        inference_ms = (time.perf_counter() - started) * 1000
        scores = self._scores(model, scored, query.raw_scores)[:, 0]
        order = (exact_head.order(scored.logits[:, 0]) if model.exact_head
                 else np.argsort(-scores, kind="stable"))
        if query.top_n:
            order = order[: query.top_n]
        results = []
        for i in order:
            document = query.documents[i]
            seen = int(scored.document_end[i])
            results.append(RankedDocument(int(i), float(scores[i]), document if query.return_documents else None,
                                          seen if seen < len(document) else None))
        return RerankOutcome(model.name, tuple(results), usage, inference_ms)

    async def _exact_head(self, model: ModelInfo, query: RerankQuery, scored: ScoredPairs,
                          max_chunks: int) -> tuple[ScoredPairs, int]:
        """Re-scores with the fp32 encoder the documents that may be in fp32's top k, in at most two rounds
        (exact_head.py), and returns every document's logits (fp32's for those) and how many it re-scored."""
        fast = scored.logits[:, 0]
        k = exact_head.head_size(query.top_n, fast.size)
        logits, ends = scored.logits.copy(), scored.document_end.copy()
        picked = exact_head.window(fast, k, model.head_delta)
        if not picked.size:
            return scored, 0
        await self._rescore(model, query, picked, logits, ends, max_chunks)
        more = exact_head.widen(fast, picked, logits[picked, 0], k, model.head_delta)
        if more.size:  # only where the fp32 head scored below the fast one
            await self._rescore(model, query, more, logits, ends, max_chunks)
        return ScoredPairs(logits, scored.num_tokens, ends), int(picked.size + more.size)

    async def _rescore(self, model: ModelInfo, query: RerankQuery, picked: np.ndarray, logits: np.ndarray,
                       ends: np.ndarray, max_chunks: int) -> None:
        """Writes the fp32 logits (and chunk ends) of the documents `picked` into `logits` and `ends`."""
        fp32 = replace(model, name=model.exact_model)
        documents = [query.documents[i] for i in picked]
        # The same tokenizer as the fast pass, which already refused any over-long pair.
        exact = await self._score(fp32, query.query, documents, query.timeout,
                                  query.truncate or query.chunk_long_documents, "documents[{}]", query.instruction,
                                  query.cut)
        if query.chunk_long_documents:  # a best chunk's fp32 logit is within delta of its fast one too
            exact, _ = await self._best_chunks(fp32, replace(query, documents=documents), exact, max_chunks)
        logits[picked], ends[picked] = exact.logits, exact.document_end

    async def _best_chunks(self, model: ModelInfo, query: RerankQuery, scored: ScoredPairs,
                           max_chunks: int) -> tuple[ScoredPairs, Usage]:
        """Scores the further chunks of every document the first pass cut, in rounds (each round one backend
        call for all documents still open); each document keeps its best logit, and `document_end` becomes
        how far its chunks reached."""
        logits, reached = scored.logits.copy(), scored.document_end.copy()
        # document index -> (start, end) of its last chunk, in characters; the first is the scored start.
        last = {int(i): (0, int(reached[i])) for i in np.flatnonzero(reached < [len(d) for d in query.documents])}
        pairs = tokens = 0
        for _ in range(max_chunks - 1):
            jobs = []
            for i, (start, end) in last.items():
                begin = chunking.next_start(query.documents[i], start, end)
                if begin is not None:
                    jobs.append((i, begin, chunking.piece(query.documents[i], begin, end - start)))
            if not jobs:
                break
            extra = await self._score(model, query.query, [text for _, _, text in jobs], query.timeout,
                                      instruction=query.instruction)
            pairs, tokens = pairs + len(jobs), tokens + self._usage(model, extra).tokens
            last = {}
            for (i, begin, _), row, end in zip(jobs, extra.logits, extra.document_end):
                logits[i] = np.maximum(logits[i], row)
                reached[i] = begin + int(end)
                last[i] = (begin, int(reached[i]))
        return ScoredPairs(logits, scored.num_tokens, reached), Usage(pairs, tokens)

    async def classify(self, query: ClassifyQuery) -> ClassifyOutcome:
        validation.validate_classify(query.pairs, self._limits)
        validation.token_cut(query.cut, False)
        model = await self.resolve(query.model)
        validation.instruction(query.instruction, model.name, model.accepts_instruction, self._limits)
        started = time.perf_counter()
        scored = await self._score(model, [a for a, _ in query.pairs], [b for _, b in query.pairs], query.timeout,
                                   query.truncate, "inputs[{}]", query.instruction, query.cut)
        inference_ms = (time.perf_counter() - started) * 1000
        scores = self._scores(model, scored, query.raw_scores)
        results = []
        for row in scores:
            best = int(np.argmax(row))
            results.append(ClassifiedPair(model.labels[best], float(row[best]),
                                          tuple(zip(model.labels, (float(s) for s in row)))))
        return ClassifyOutcome(model.name, tuple(results), self._usage(model, scored), inference_ms)

    async def _score(self, model: ModelInfo, texts: str | list[str], text_pairs: list[str],
                     timeout: float | None, truncate: bool = True, field_template: str = "",
                     instruction: str = "", cut: TokenCut = DEFAULT_CUT) -> ScoredPairs:
        started = time.perf_counter()
        try:
            if cut == DEFAULT_CUT:  # the common call, in the shape every backend takes
                return await self._backend.score(model, texts, text_pairs, timeout, truncate, instruction)
            return await self._backend.score(model, texts, text_pairs, timeout, truncate, instruction, cut)
        except PairTooLongError as exc:  # refused by the tokenizer, before the encoder ran
            raise InvalidArgumentError(
                f"pair {exc.index} has {exc.tokens} tokens, over the model's limit of {model.max_length}; "
                "shorten it or allow truncation", "INPUT_TOO_LONG", field_template.format(exc.index)) from None
        except ModelGoneError:
            # Unloaded behind our back (or not loaded yet, in a restarting Triton): forget it, so that the next
            # request reads the model list again and gets NOT_FOUND if it is really gone; this one may retry.
            self._models.pop(model.name, None)
            self._refreshed_at = float("-inf")
            raise
        finally:
            if self._metrics:
                self._metrics.backend_latency.labels(model.name).observe(time.perf_counter() - started)

    @staticmethod
    def _scores(model: ModelInfo, scored: ScoredPairs, raw: bool) -> np.ndarray:
        return activation.apply(Activation.IDENTITY if raw else model.activation, scored.logits)

    @staticmethod
    def _usage(model: ModelInfo, scored: ScoredPairs) -> Usage:
        tokens = int(np.minimum(scored.num_tokens, model.max_length).sum())
        return Usage(pairs=int(scored.logits.shape[0]), tokens=tokens)
