"""The exact head's rules: which documents a rerank re-scores with fp32, and how the two scorings merge.

A model served with the exact head scores every document with its fast (reduced-precision) encoder, whose
logits export bounded against fp32's: |fast - fp32| <= delta on every pair it measured. Let T be the k-th
best fast logit. A document outside the window (fast < T - 2 delta) has an fp32 logit below T - delta, while
the k documents at or above T have fp32 logits of at least T - delta: it cannot be in fp32's top k. So
re-scoring the window with fp32 and ordering by fp32 gives fp32's top k, order and scores, whenever every
fast error is within delta. Pure functions, shared by the gateway (around its two backend calls) and export
(which runs the same rule in-process to check and time it).
"""

from __future__ import annotations

import numpy as np

# The head a rerank without top_n gets exact: what a results page shows first.
DEFAULT_HEAD = 10


def head_size(top_n: int, documents: int) -> int:
    """k: the documents whose order and scores are fp32's (top_n, else the first DEFAULT_HEAD)."""
    return min(top_n or DEFAULT_HEAD, documents)


def window(fast: np.ndarray, k: int, delta: float) -> np.ndarray:
    """Indices, ascending, of the documents to re-score: fast logit >= (k-th best fast logit) - 2 delta."""
    if k <= 0 or fast.size == 0:
        return np.zeros(0, dtype=np.int64)
    kth = np.partition(fast, fast.size - k)[fast.size - k]
    return np.flatnonzero(fast >= kth - 2.0 * delta)


def order(logits: np.ndarray) -> np.ndarray:
    """Best first by logit (not by activated score, which can tie where logits do not); equal logits keep
    document order."""
    return np.argsort(-logits, kind="stable")
