"""How the tests compare a served ranking with the reference's."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np


def assert_ranked_like(order: Sequence[int], expected: np.ndarray, tolerance: float) -> None:
    """`order` (document indices, best first) ranks as the reference scores `expected` do: it is a permutation,
    and wherever two neighbours stand against the reference's order, their reference scores differ by no more
    than `tolerance` (a near tie that float noise within the parity tolerance may flip either way)."""
    assert sorted(order) == list(range(len(expected))), "not a ranking of every document"
    flips = [(a, b, float(expected[b] - expected[a])) for a, b in itertools.pairwise(order)
             if expected[b] > expected[a]]
    assert all(gap <= tolerance for _, _, gap in flips), f"out of order beyond {tolerance}: {flips}"
