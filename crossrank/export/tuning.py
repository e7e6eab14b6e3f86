"""Times an exported encoder in-process, through the same tokenizer and batching code that Triton runs: the
candidates of `--precision auto` and the encoder's sub-batch width.

Figures come from the machine that exports; in embedded mode (`crossrank serve` exporting on first start)
that is the machine that serves. They decide a choice and are logged; tests never assert them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace

import numpy as np

from crossrank.export import precision
from crossrank.export.encoder_build import BuiltEncoder
from crossrank.export.samples import ranking_lists
from crossrank.triton_models.pair_tokenizer import PairTokenizer

Feed = dict[str, np.ndarray]
# Seconds the timing of one encoder may take: a 500 M-parameter model on two cores scores a pair in about a
# second, and timing every width over 200 pairs would take most of an hour; it times fewer pairs instead.
TIMING_BUDGET_S = 60.0
# Overrides TIMING_BUDGET_S: fewer seconds give a quicker export and a noisier choice (the test suite, which
# asserts what was measured, never the figures, times with a few seconds).
TIMING_BUDGET_ENV = "CROSSRANK_EXPORT_TIMING_BUDGET_S"
PROBE_PAIRS = 8


def timing_budget_s() -> float:
    """The seconds one encoder's timing may take: TIMING_BUDGET_S unless the environment says otherwise."""
    try:
        budget = float(os.environ.get(TIMING_BUDGET_ENV, TIMING_BUDGET_S))
    except ValueError:
        return TIMING_BUDGET_S
    return budget if budget > 0 else TIMING_BUDGET_S


def timing_feeds(pair_tokenizer: PairTokenizer, lists: int = 4) -> list[Feed]:
    """A few rerank requests (one query x 50 passages each), tokenized as Triton's tokenizer model does."""
    feeds = []
    for query, passages in ranking_lists()[:lists]:
        feeds.append(pair_tokenizer.encode([query] * len(passages), passages).tensors)
    return feeds


def within_budget(score: Callable[[Feed], np.ndarray], feeds: list[Feed], passes: int,
                  budget_s: float | None = None) -> list[Feed]:
    """`feeds` cut to as many pairs as `passes` passes over them score in about `budget_s` (the cost per pair
    probed on a few; at least PROBE_PAIRS): small models keep every pair, large ones time fewer."""
    budget_s = timing_budget_s() if budget_s is None else budget_s
    probe = _first_rows(feeds[0], PROBE_PAIRS)
    started = time.perf_counter()
    score(probe)
    per_pair = (time.perf_counter() - started) / _rows(probe)
    left = max(PROBE_PAIRS, int(budget_s / (per_pair * passes)))
    kept = []
    for feed in feeds:
        if left <= 0:
            break
        kept.append(_first_rows(feed, left))
        left -= _rows(kept[-1])
    return kept


def _rows(feed: Feed) -> int:
    return int(feed["input_ids"].shape[0])


def _first_rows(feed: Feed, count: int) -> Feed:
    return {name: array[:count] for name, array in feed.items()}


def throughput(score: Callable[[Feed], np.ndarray], feeds: list[Feed]) -> float:
    """Pairs per second over `feeds`, after one untimed pass over them (oneDNN and CUDA build kernels per
    shape on first use)."""
    for feed in feeds:
        score(feed)
    started = time.perf_counter()
    for feed in feeds:
        score(feed)
    return sum(_rows(f) for f in feeds) / (time.perf_counter() - started)


def with_width(built: BuiltEncoder, width: int) -> BuiltEncoder:
    """The encoder run (in-process) and recorded (in its Triton config) with sub-batches of `width` tokens."""
    if built.batcher is not None:
        built.batcher.tokens_per_batch = width
    return replace(built, spec=replace(built.spec, parameters={**built.spec.parameters,
                                                                "tokens_per_batch": str(width)}))


def tune_width(built: BuiltEncoder, feeds: list[Feed], widths: tuple[int, ...],
               step: Callable[[str], AbstractContextManager[None]] = lambda _: nullcontext()
               ) -> tuple[BuiltEncoder, dict[int, float]]:
    """Measures the sub-batch widths and returns the encoder configured with the fastest, and every rate.
    `step` wraps each width's measurement (the export's progress display)."""
    built.batcher.tokens_per_batch = widths[0]
    feeds = within_budget(built.score, feeds, 2 * len(widths))

    def rate_at(width: int) -> float:
        with step(f"timing sub-batch width {width}"):
            built.batcher.tokens_per_batch = width
            return throughput(built.score, feeds)

    width, rates = precision.best_width(rate_at, widths)
    return with_width(built, width), rates
