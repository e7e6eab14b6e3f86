"""Times an exported encoder in-process, through the same tokenizer and batching code that Triton runs: the
candidates of `--precision auto` and the encoder's sub-batch width.

Figures come from the machine that exports; in embedded mode (`crossrank serve` exporting on first start)
that is the machine that serves. They decide a choice and are logged; tests never assert them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from crossrank.export import precision
from crossrank.export.encoder_build import BuiltEncoder
from crossrank.export.samples import ranking_lists
from crossrank.triton_models.pair_tokenizer import PairTokenizer

Feed = dict[str, np.ndarray]


def timing_feeds(pair_tokenizer: PairTokenizer, lists: int = 4) -> list[Feed]:
    """A few rerank requests (one query x 50 passages each), tokenized as Triton's tokenizer model does."""
    feeds = []
    for query, passages in ranking_lists()[:lists]:
        feeds.append(pair_tokenizer.encode([query] * len(passages), passages).tensors)
    return feeds


def throughput(score: Callable[[Feed], np.ndarray], feeds: list[Feed]) -> float:
    """Pairs per second over `feeds`, after one untimed pass over them (oneDNN and CUDA build kernels per
    shape on first use)."""
    for feed in feeds:
        score(feed)
    started = time.perf_counter()
    for feed in feeds:
        score(feed)
    return sum(int(f["input_ids"].shape[0]) for f in feeds) / (time.perf_counter() - started)


def with_width(built: BuiltEncoder, width: int) -> BuiltEncoder:
    """The encoder run (in-process) and recorded (in its Triton config) with sub-batches of `width` tokens."""
    if built.batcher is not None:
        built.batcher.tokens_per_batch = width
    return replace(built, spec=replace(built.spec, parameters={**built.spec.parameters,
                                                                "tokens_per_batch": str(width)}))


def tune_width(built: BuiltEncoder, feeds: list[Feed],
               widths: tuple[int, ...]) -> tuple[BuiltEncoder, dict[int, float]]:
    """Measures the sub-batch widths and returns the encoder configured with the fastest, and every rate."""
    def rate_at(width: int) -> float:
        built.batcher.tokens_per_batch = width
        return throughput(built.score, feeds)

    width, rates = precision.best_width(rate_at, widths)
    return with_width(built, width), rates
