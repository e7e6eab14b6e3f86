"""Spearman's rank correlation as export reports it for reduced precisions: the same as scipy's, ties
included (the serving interpreter computes it without scipy)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from crossrank.export.agreement import spearman


@pytest.mark.parametrize("seed", range(20))
def test_matches_scipy_with_and_without_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 6, size=40).astype(float) if seed % 2 else rng.normal(size=40)
    b = a + rng.normal(size=40) * (seed % 5)
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)


def test_same_and_reversed_order() -> None:
    scores = np.array([0.1, 0.7, 0.3, 0.9])
    assert spearman(scores, scores * 10) == pytest.approx(1.0)
    assert spearman(scores, -scores) == pytest.approx(-1.0)


def test_ndcg_is_one_for_the_reference_order_and_drops_when_the_head_is_reordered() -> None:
    from crossrank.export.agreement import ndcg

    reference = np.array([0.9, 0.1, 0.5, 0.3, 0.7])
    assert ndcg(reference, reference * 2 + 1) == pytest.approx(1.0)
    swapped = np.array([0.7, 0.1, 0.5, 0.3, 0.9])  # the best and the second swapped
    ideal = 0.9 + 0.7 / np.log2(3) + 0.5 / 2 + 0.3 / np.log2(5) + 0.1 / np.log2(6)
    got = 0.7 + 0.9 / np.log2(3) + 0.5 / 2 + 0.3 / np.log2(5) + 0.1 / np.log2(6)
    assert ndcg(reference, swapped) == pytest.approx(got / ideal)
    assert ndcg(reference - 5, swapped) < 1.0  # raw logits (negative) as gains, shifted


def test_top10_exactness_counts_lists_whose_head_is_the_same_in_the_same_order() -> None:
    from crossrank.export.agreement import measure

    def reference(pairs):  # type: ignore[no-untyped-def]
        return np.arange(len(pairs), dtype=float)

    def reordered(pairs):  # type: ignore[no-untyped-def]
        scores = np.arange(len(pairs), dtype=float)
        scores[-1], scores[-2] = scores[-2], scores[-1]  # the best two swapped: same top 10, not the same order
        return scores

    same = measure(reference, reference)
    assert same.top10_exact == 1.0 and same.ndcg10 == pytest.approx(1.0) and same.top10_overlap == 1.0
    swapped = measure(reference, reordered)
    assert swapped.top10_overlap == 1.0 and swapped.top10_exact == 0.0 and swapped.ndcg10 < 1.0
