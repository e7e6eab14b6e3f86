"""A deterministic `ScoringBackend` for unit and integration tests (never used by the product)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

import numpy as np

from crossrank.gateway.backend.base import DEFAULT_CUT, PairTooLongError, ScoredPairs, TokenCut
from crossrank.gateway.core.errors import BackendUnavailableError
from crossrank.model_info import Activation, ModelInfo, Task

RERANKER = ModelInfo(name="fake-reranker", task=Task.RERANK, labels=("LABEL_0",), activation=Activation.SIGMOID,
                     max_length=32, engine="fake", precision="fp32", source="tests", max_batch_size=4)
NLI = ModelInfo(name="fake-nli", task=Task.CLASSIFY, labels=("contradiction", "entailment", "neutral"),
                activation=Activation.SOFTMAX, max_length=16, engine="fake", precision="fp32", source="tests",
                max_batch_size=4)


def fake_logits(text: str, text_pair: str, labels: int) -> list[float]:
    """Word overlap minus a length penalty: documents sharing more query words rank higher."""
    query, doc = set(text.lower().split()), text_pair.lower().split()
    overlap = sum(1 for w in doc if w in query)
    base = overlap - 0.01 * len(doc)
    return [base + k * 0.5 - (k == 1) * overlap for k in range(labels)]


def _end_of_words(text: str, count: int) -> int:
    """The character where the first `count` words of `text` end (its length when it has no more)."""
    words = list(re.finditer(r"\S+", text))
    if count >= len(words):
        return len(text)
    return words[count - 1].end() if count else 0


class FakeBackend:
    def __init__(self, models: Sequence[ModelInfo] = (RERANKER, NLI), delay_s: float = 0.0) -> None:
        self.available = True
        self.delay_s = delay_s  # simulated inference time, for overload tests
        self.calls: list[int] = []  # pairs per backend call, after splitting
        self.cuts: list[TokenCut] = []  # the truncation options of each call
        self._models = list(models)

    async def ready(self) -> bool:
        return self.available

    async def models(self) -> list[ModelInfo]:
        if not self.available:
            raise BackendUnavailableError()
        return list(self._models)

    async def score(self, model: ModelInfo, texts: str | Sequence[str], text_pairs: Sequence[str],
                    timeout: float | None, truncate: bool = True, instruction: str = "",
                    cut: TokenCut = DEFAULT_CUT) -> ScoredPairs:
        self.cuts.append(cut)
        if not self.available:
            raise BackendUnavailableError()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if isinstance(texts, str):
            texts = [texts] * len(text_pairs)
        if cut.max_document_tokens:  # one "token" per word, as below
            text_pairs = [b[:_end_of_words(b, cut.max_document_tokens)] for b in text_pairs]
        step = model.max_batch_size
        for i in range(0, len(texts), step):
            self.calls.append(len(texts[i:i + step]))
        # Like a real tokenizer, one "token" per word plus 3 special tokens, and the document's end cut off
        # past the model's max length (refused instead when truncation is off).
        tokens = np.array([len(a.split()) + len(b.split()) + 3 for a, b in zip(texts, text_pairs)], dtype=np.int64)
        if not truncate and (tokens > model.max_length).any():
            first = int(np.flatnonzero(tokens > model.max_length)[0])
            raise PairTooLongError(first, int(tokens[first]))
        ends = [_end_of_words(b, max(0, model.max_length - len(a.split()) - 3)) for a, b in zip(texts, text_pairs)]
        logits = np.array([fake_logits(a, b[:end], len(model.labels)) for a, b, end in zip(texts, text_pairs, ends)],
                          dtype=np.float32)
        return ScoredPairs(logits.reshape(len(texts), len(model.labels)), tokens, np.array(ends, dtype=np.int64))

    async def close(self) -> None:
        pass
