"""The exact head's rules: which documents a rerank re-scores with fp32, and how the two scorings merge.

A model served with the exact head scores every document with its fast (reduced-precision) encoder, whose
logits export bounded against fp32's: |fast - fp32| <= delta on every pair it measured. The gateway re-scores
with fp32 a set R of documents, in at most two rounds, such that every document left out has a fast logit
below T - delta, T the k-th best fp32 logit within R. Such a document has an fp32 logit below T, so k
documents of R beat it: ordering R by fp32 gives fp32's top k, order and scores, whenever every fast error is
within delta.

Round one (`window`) re-scores every document within delta of F, the k-th best fast logit; it holds the fast
top k, so T exists. Round two (`widen`) adds the documents within delta of T that round one missed, which
happens only where the fp32 head scored below the fast one (T < F). T cannot fall by adding documents, so two
rounds suffice. Under the condition T >= F - delta, so R never leaves the 2 x delta window of a one-round rule
(every document with fast >= F - 2 delta), and in practice it holds fewer: on the benchmark's bf16 lists 17 of
100 documents on average against 26. `widen` never goes past that window, so a request whose errors exceed
delta costs no more than the one-round rule. A request whose head is half its documents or more is scored by
fp32 alone (`fp32_alone`). Pure functions, shared by the gateway (around its backend calls)
and export (which runs the same rule in-process to check and time it).
"""

from __future__ import annotations

import numpy as np

# The head a rerank without top_n gets exact: what a results page shows first.
DEFAULT_HEAD = 10


def head_size(top_n: int, documents: int) -> int:
    """k: the documents whose order and scores are fp32's (top_n, else the first DEFAULT_HEAD)."""
    return min(top_n or DEFAULT_HEAD, documents)


def fp32_alone(k: int, documents: int) -> bool:
    """Whether fp32 alone scores the request: where the head is half the documents or more, the fast pass
    plus re-scoring at least the head costs more than fp32 for all (unless the fast encoder ran over twice
    fp32's speed), and a request of 10 documents without top_n would be scored twice."""
    return 2 * k >= documents


def _kth_best(values: np.ndarray, k: int) -> float:
    return float(np.partition(values, values.size - k)[values.size - k])


def window(fast: np.ndarray, k: int, delta: float) -> np.ndarray:
    """Round one: indices, ascending, of the documents whose fast logit >= (k-th best fast logit) - delta."""
    if k <= 0 or fast.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(fast >= _kth_best(fast, k) - delta)


def widen(fast: np.ndarray, picked: np.ndarray, exact: np.ndarray, k: int, delta: float) -> np.ndarray:
    """Round two: indices, ascending, of the documents not in `picked` (round one's, re-scored with fp32
    logits `exact`) whose fast logit >= T - delta, T the k-th best of `exact`; never below the 2 x delta
    window of the k-th best fast logit. Empty when round one already holds fp32's top k."""
    if k <= 0 or picked.size < k:
        return np.zeros(0, dtype=np.int64)
    edge = max(_kth_best(exact, k), _kth_best(fast, k) - delta) - delta
    outside = np.ones(fast.size, dtype=bool)
    outside[picked] = False
    return np.flatnonzero(outside & (fast >= edge))


def order(logits: np.ndarray) -> np.ndarray:
    """Best first by logit (not by activated score, which can tie where logits do not); equal logits keep
    document order."""
    return np.argsort(-logits, kind="stable")
