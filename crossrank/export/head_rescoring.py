"""Export's side of the exact head (crossrank/exact_head.py has the rule, shared with the gateway):
the error bound delta a reduced-precision encoder is served with, and the exact head's rerank run in-process,
to check its ranking against fp32 and to time it for `--precision auto`.

delta is the largest |fast logit - fp32 logit| over export's sample pairs (the long ones included, cut at the
max length) and its ranking lists, both encoders run through the very tokenizer and encoder code that Triton
runs, times a safety factor of SAFETY_FACTOR: the margin for pairs unlike the samples and for the other
documents a dynamic-int8 batch is quantized with. It is recorded with the number of pairs it was measured on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from crossrank.exact_head import fp32_alone, widen, window
from crossrank.export.samples import ranking_lists
from crossrank.triton_models.pair_tokenizer import PairTokenizer

Feed = dict[str, np.ndarray]
Score = Callable[[Feed], np.ndarray]  # an encoder run in-process: logits [n, labels]

SAFETY_FACTOR = 2.0
# `auto` times every candidate as the rerank users send most: 1 query x TIMING_PASSAGES, top_n TIMING_TOP_N.
TIMING_PASSAGES = 100
TIMING_TOP_N = 10
TIMING_LISTS = 2


@dataclass(frozen=True)
class HeadBound:
    delta: float  # the bound served: largest_error x safety
    largest_error: float  # the largest |fast - fp32| logit difference measured
    samples: int  # pairs measured
    safety: float = SAFETY_FACTOR

    def summary(self) -> str:
        return (f"delta {self.delta:.4g} (largest logit error {self.largest_error:.4g} x {self.safety:g} over "
                f"{self.samples} pairs)")


def rows(feed: Feed, picked: np.ndarray) -> Feed:
    return {name: array[picked] for name, array in feed.items()}


def bound_feeds(pair_tokenizer: PairTokenizer, samples: Sequence[tuple[str, str]]) -> list[Feed]:
    """What delta is measured on: export's ranking lists (one feed each, as a rerank sends them) and the
    sample pairs parity checks (`samples`)."""
    feeds = [pair_tokenizer.encode([query] * len(passages), passages).tensors for query, passages in ranking_lists()]
    if samples:
        feeds.append(pair_tokenizer.encode([q for q, _ in samples], [d for _, d in samples]).tensors)
    return feeds


def bound(fast: Score, exact: Score, feeds: Sequence[Feed]) -> HeadBound:
    """delta for `fast` against `exact` (fp32) over `feeds` (first logit: the exact head serves rerankers)."""
    errors = [float(np.max(np.abs(fast(f)[:, 0].astype(np.float64) - exact(f)[:, 0]))) for f in feeds]
    largest = max(errors)
    return HeadBound(SAFETY_FACTOR * largest, largest, sum(int(f["input_ids"].shape[0]) for f in feeds))


def rerank(fast: Score, exact: Score, feed: Feed, top_n: int, delta: float) -> tuple[np.ndarray, int]:
    """The logits the gateway ranks a rerank by (fp32's for the documents it re-scores, in the gateway's
    rounds) and how many it re-scored."""
    n = int(feed["input_ids"].shape[0])
    k = min(top_n, n)
    if fp32_alone(k, n):
        return exact(feed)[:, 0].astype(np.float64), n
    scores = fast(feed)[:, 0].astype(np.float64)
    logits = scores.copy()
    picked = window(scores, k, delta)
    logits[picked] = exact(rows(feed, picked))[:, 0]
    more = widen(scores, picked, logits[picked], k, delta)
    if more.size:
        logits[more] = exact(rows(feed, more))[:, 0]
    return logits, int(picked.size + more.size)


def timing_feeds(pair_tokenizer: PairTokenizer, lists: int = TIMING_LISTS) -> list[Feed]:
    """Reranks of 1 query x TIMING_PASSAGES passages, tokenized as Triton's tokenizer model does."""
    found = ranking_lists(queries=lists, passages=TIMING_PASSAGES, seed=2468)
    return [pair_tokenizer.encode([query] * len(passages), passages).tensors for query, passages in found]


def throughput(fast: Score, exact: Score | None, feeds: Sequence[Feed], delta: float,
               top_n: int = TIMING_TOP_N) -> tuple[float, float]:
    """(pairs per second, documents re-scored per rerank) over `feeds` as reranks with `top_n`: `fast`
    alone, or with `exact` re-scoring the head; after one untimed pass (kernels are built per shape)."""

    def run(feed: Feed) -> int:
        if exact is None:
            fast(feed)
            return 0
        return rerank(fast, exact, feed, top_n, delta)[1]

    for feed in feeds:
        run(feed)
    started = time.perf_counter()
    rescored = [run(feed) for feed in feeds]
    elapsed = time.perf_counter() - started
    return sum(int(f["input_ids"].shape[0]) for f in feeds) / elapsed, float(np.mean(rescored))
