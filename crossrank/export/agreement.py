"""How closely a reduced-precision export ranks like the fp32 reference: largest score difference,
Spearman rank correlation and top-10 overlap, averaged over fixed query/passage lists."""

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

    def summary(self) -> str:
        return (f"largest score difference {self.max_abs_diff:.4f}, Spearman {self.spearman:.4f}, "
                f"top-10 overlap {self.top10_overlap:.3f} over {self.lists} query/passage lists")


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


def measure(reference: Callable[[Sequence[tuple[str, str]]], np.ndarray],
            exported: Callable[[Sequence[tuple[str, str]]], np.ndarray]) -> Agreement:
    """`reference` and `exported` return activated scores [n] for pairs."""
    diffs, rhos, overlaps = [], [], []
    lists = ranking_lists()
    for query, passages in lists:
        pairs = [(query, p) for p in passages]
        ref, got = np.asarray(reference(pairs), dtype=np.float64), np.asarray(exported(pairs), dtype=np.float64)
        diffs.append(float(np.max(np.abs(ref - got))))
        rhos.append(spearman(ref, got))
        top = min(10, len(passages))
        overlaps.append(len(set(np.argsort(-ref)[:top]) & set(np.argsort(-got)[:top])) / top)
    return Agreement(max(diffs), float(np.mean(rhos)), float(np.mean(overlaps)), len(lists))
