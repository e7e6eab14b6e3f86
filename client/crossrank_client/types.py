"""Typed results returned by the crossrank clients (plain frozen dataclasses, no protobuf)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class RerankResult:
    index: int  # position of the document in the request
    score: float
    document: str | None = None  # set when return_documents=True
    # Set when the score did not see the whole document: the characters (from its start) it covers.
    scored_chars: int | None = None


@dataclass(frozen=True)
class Usage:
    pairs: int
    tokens: int
    rescored: int = 0  # documents re-scored with fp32 for the exact head (models served with it)


@dataclass(frozen=True)
class Timing:
    queue_ms: float  # waiting in the gateway for a free slot
    inference_ms: float  # in Triton
    total_ms: float  # in the gateway, arrival to response


@dataclass(frozen=True)
class _Response(Generic[R]):
    """What every scoring response has; a response can be used as the sequence of its results."""

    model: str
    results: list[R]
    usage: Usage
    timing: Timing | None = None

    def __iter__(self) -> Iterator[R]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> R:
        return self.results[i]


@dataclass(frozen=True)
class RerankResponse(_Response[RerankResult]):
    """A Rerank call's answer."""


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float


@dataclass(frozen=True)
class ClassifyResult:
    label: str
    score: float
    scores: list[LabelScore]


@dataclass(frozen=True)
class ClassifyResponse(_Response[ClassifyResult]):
    """A Classify call's answer."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    task: str  # "rerank" or "classify"
    labels: list[str]
    max_length: int
    engine: str
    precision: str
    source: str
    is_default: bool
    default_instruction: str = ""  # empty: the model uses none unless a request sets one, or takes none
    accepts_instruction: bool = False  # whether a request may set an instruction
    exact_head: bool = False  # reranks get fp32's top_n, order and scores, re-scored beside a faster precision
    head_delta: float = 0.0  # the exact head's bound on the fast encoder's logit error (0 without it)
