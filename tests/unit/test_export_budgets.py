"""What export spends on a large model: parity scores the longest sample pair and as many others as a token
budget holds, and timing an encoder scores as many pairs as fit its time budget (a fake clock advanced by a fake
encoder stands for the model's cost)."""

from __future__ import annotations

import numpy as np
import pytest

from crossrank.export import tuning
from crossrank.export.parity import PARITY_TOKENS, parity_selection


def test_parity_keeps_every_pair_of_a_512_token_model() -> None:
    lengths = [40, 62, 55, 71, 33, 80, 46, 512] * 8  # as the sample: every eighth pair long, cut to the window
    assert parity_selection(lengths) == list(range(len(lengths)))


def test_parity_bounds_the_tokens_of_a_long_window_and_keeps_the_longest_pair() -> None:
    lengths = [400, 8192, 520, 8192, 330, 8192, 2000, 470] * 2
    kept = parity_selection(lengths)
    assert 1 in kept or 3 in kept or 5 in kept  # a pair at the full window: truncation stays in the check
    assert sum(lengths[i] for i in kept) - 8192 <= PARITY_TOKENS
    assert [i for i in kept if lengths[i] < 8192] == [0, 2, 4, 6, 7, 8, 10, 12, 14, 15]  # the shorter first
    assert sum(1 for i in kept if lengths[i] == 8192) == 2  # the longest, one more beside 7,440 shorter tokens
    assert parity_selection([30_000, 40, 50]) == [0, 1, 2]  # one pair over the budget alone is still checked


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _feeds(sizes: list[int]) -> list[tuning.Feed]:
    return [{"input_ids": np.ones((n, 5), dtype=np.int64), "attention_mask": np.ones((n, 5), dtype=np.int64)}
            for n in sizes]


@pytest.mark.parametrize(("seconds_per_pair", "expected"), [(0.001, 200), (0.125, 40), (1.0, 8)])
def test_timing_scores_the_pairs_its_budget_affords(monkeypatch: pytest.MonkeyPatch, seconds_per_pair: float,
                                                    expected: int) -> None:
    clock = _Clock()
    monkeypatch.setattr(tuning.time, "perf_counter", clock)
    scored: list[int] = []

    def score(feed: tuning.Feed) -> np.ndarray:
        clock.now += seconds_per_pair * feed["input_ids"].shape[0]
        scored.append(feed["input_ids"].shape[0])
        return np.zeros((feed["input_ids"].shape[0], 1))

    kept = tuning.within_budget(score, _feeds([50, 50, 50, 50]), passes=12, budget_s=60.0)
    assert scored == [tuning.PROBE_PAIRS]
    assert sum(f["input_ids"].shape[0] for f in kept) == expected
    assert all(set(f) == {"input_ids", "attention_mask"} for f in kept)
