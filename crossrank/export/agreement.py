"""How closely a reduced-precision export ranks like the fp32 reference: largest score difference,
Spearman rank correlation, and what users read, the head: top-10 overlap, top-10 exactness (same documents in
the same order) and NDCG@10 with fp32's scores as gains, over fixed query/passage lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from crossrank.export.samples import ranking_lists

# Below this, rankings change enough that export warns loudly.
WARN_BELOW_SPEARMAN = 0.99


@dataclass(frozen=True)
class Agreement:
    max_abs_diff: float  # on activated (sigmoid / softmax) scores
    spearman: float  # mean over the lists
    top10_overlap: float  # mean fraction of the reference top 10 found in the export's top 10
    lists: int
    # Fraction of the lists whose top 10 is the reference's: the same documents in the same order.
    top10_exact: float = float("nan")
    ndcg10: float = float("nan")  # mean NDCG@10, the reference's scores as gains

    def summary(self) -> str:
        return (f"largest score difference {self.max_abs_diff:.4f}, Spearman {self.spearman:.4f}, "
                f"top-10 overlap {self.top10_overlap:.3f} over {self.lists} query/passage lists; top 10 the same, "
                f"in order, on {self.top10_exact:.0%} of them; NDCG@10 {self.ndcg10:.4f}")


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their average rank (as scipy.stats.rankdata's default)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + ends - 1) / 2)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's over the ranks. In numpy alone, because the serving
    interpreter's numpy (< 2 for Triton's python backend) may not match an installed scipy's."""
    ra, rb = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denominator) if denominator else float("nan")


def ndcg(reference: np.ndarray, got: np.ndarray, k: int = 10) -> float:
    """NDCG@k of `got`'s order, with `reference`'s scores as gains (shifted to start at 0 where some are
    negative: raw logits); 1.0 when the order's top k carries all the gain the reference's does."""
    gains = np.asarray(reference, dtype=np.float64)
    gains = gains - min(0.0, float(gains.min()))
    discounts = 1.0 / np.log2(np.arange(2, min(k, gains.size) + 2))
    ideal = float((np.sort(gains)[::-1][:k] * discounts).sum())
    actual = float((gains[np.argsort(-np.asarray(got), kind="stable")[:k]] * discounts).sum())
    return actual / ideal if ideal > 0 else 1.0


def measure(reference: Callable[[Sequence[tuple[str, str]]], np.ndarray],
            exported: Callable[[Sequence[tuple[str, str]]], np.ndarray]) -> Agreement:
    """`reference` and `exported` return activated scores [n] for pairs."""
    diffs, rhos, overlaps, exact, ndcgs = [], [], [], [], []
    lists = ranking_lists()
    for query, passages in lists:
        pairs = [(query, p) for p in passages]
        ref, got = np.asarray(reference(pairs), dtype=np.float64), np.asarray(exported(pairs), dtype=np.float64)
        diffs.append(float(np.max(np.abs(ref - got))))
        rhos.append(spearman(ref, got))
        top = min(10, len(passages))
        ref_top, got_top = np.argsort(-ref, kind="stable")[:top], np.argsort(-got, kind="stable")[:top]
        overlaps.append(len(set(ref_top) & set(got_top)) / top)
        exact.append(float(np.array_equal(ref_top, got_top)))
        ndcgs.append(ndcg(ref, got))
    return Agreement(max(diffs), float(np.mean(rhos)), float(np.mean(overlaps)), len(lists),
                     float(np.mean(exact)), float(np.mean(ndcgs)))
