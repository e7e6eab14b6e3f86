"""The seam between the gateway core and whatever runs the models (Triton, or a fake in tests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from crossrank.model_info import ModelInfo


@dataclass(frozen=True)
class ScoredPairs:
    logits: np.ndarray  # float32 [n, labels]
    num_tokens: np.ndarray  # int64 [n]: each pair's length in tokens before truncation
    # int64 [n]: characters of each pair's second text that the scored (kept) tokens cover, from its start
    document_end: np.ndarray

    @staticmethod
    def concatenate(parts: Sequence[ScoredPairs]) -> ScoredPairs:
        return ScoredPairs(np.concatenate([p.logits for p in parts]), np.concatenate([p.num_tokens for p in parts]),
                           np.concatenate([p.document_end for p in parts]))


@dataclass(frozen=True)
class TokenCut:
    """How a request wants over-long text cut, beyond the model's own rule."""

    side: str = ""  # "left" or "right": the side over-long pairs lose tokens on ("" = the model's)
    max_document_tokens: int = 0  # > 0: each document cut to its first this many tokens before pairing


DEFAULT_CUT = TokenCut()


class PairTooLongError(Exception):
    """With truncation off, pair `index` has `tokens` tokens, over the model's limit: refused before inference."""

    def __init__(self, index: int, tokens: int) -> None:
        super().__init__(f"pair {index} has {tokens} tokens")
        self.index = index
        self.tokens = tokens


class ScoringBackend(Protocol):
    """Scores text pairs with a served model."""

    async def ready(self) -> bool:
        """True when the backend and its models can take requests."""
        ...

    async def models(self) -> list[ModelInfo]:
        """The crossrank models the backend serves. Raises BackendUnavailableError when it is down."""
        ...

    async def score(self, model: ModelInfo, texts: str | Sequence[str], text_pairs: Sequence[str],
                    timeout: float | None, truncate: bool = True, instruction: str = "",
                    cut: TokenCut = DEFAULT_CUT) -> ScoredPairs:
        """Scores pairs; splits them into pieces the model accepts. `texts` as one string is the first text of
        every pair (a rerank query), sent once. With `truncate` false a pair over the model's max length raises
        PairTooLongError before any inference; otherwise CrossrankError subclasses. `instruction` replaces the
        model's own in its instruction slot ("" = the model's own). `cut` names the truncation side and a
        per-document token limit."""
        ...

    async def close(self) -> None: ...
