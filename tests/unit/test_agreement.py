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
