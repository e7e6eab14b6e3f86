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


class ScoringBackend(Protocol):
    """Scores text pairs with a served model."""

    async def ready(self) -> bool:
        """True when the backend and its models can take requests."""
        ...

    async def models(self) -> list[ModelInfo]:
        """The crossrank models the backend serves. Raises BackendUnavailableError when it is down."""
        ...

    async def score(self, model: ModelInfo, texts: Sequence[str], text_pairs: Sequence[str],
                    timeout: float | None) -> ScoredPairs:
        """Scores pairs; splits them into pieces the model accepts. Raises CrossrankError subclasses."""
        ...

    async def close(self) -> None: ...
