"""The exact head: which documents a rerank re-scores with fp32 (a document just inside and just outside
delta of the k-th best fast logit in round one, and of the k-th best fp32 logit in round two, never past 2 x
delta), and the guarantee (fp32's top k, order and scores, whenever every fast error is within delta) on a
fake encoder with bounded noise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank import exact_head
from crossrank.gateway.backend.base import DEFAULT_CUT, ScoredPairs, TokenCut
from crossrank.gateway.core.scoring import ClassifyQuery, CrossEncoderCore, RerankQuery
from crossrank.gateway.core.validation import Limits
from crossrank.model_info import Activation, ModelInfo, Task

DELTA = 0.5
FAST = ModelInfo("m", Task.RERANK, ("LABEL_0",), Activation.SIGMOID, 512, "onnx-python", "int8", "tests", 8,
                 exact_model="m_fp32", head_delta=DELTA, head_samples=464)


class TwoEncoders:
    """A backend serving one model two ways: its fp32 logits per document, and fast ones (fp32 plus noise).
    Records which documents each encoder scored."""

    def __init__(self, exact: Sequence[float], noise: Sequence[float]) -> None:
        self.exact = {f"d{i}": float(v) for i, v in enumerate(exact)}
        self.fast = {f"d{i}": float(v) + float(n) for i, (v, n) in enumerate(zip(exact, noise))}
        self.sent: dict[str, list[str]] = {"m": [], "m_fp32": []}

    async def ready(self) -> bool:
        return True

    async def models(self) -> list[ModelInfo]:
        return [FAST]

    async def score(self, model: ModelInfo, texts: str | Sequence[str], text_pairs: Sequence[str],
                    timeout: float | None, truncate: bool = True, instruction: str = "",
                    cut: TokenCut = DEFAULT_CUT) -> ScoredPairs:
        table: Mapping[str, float] = self.exact if model.name == "m_fp32" else self.fast
        self.sent[model.name].extend(text_pairs)
        logits = np.array([[table[d]] for d in text_pairs], dtype=np.float32)
        n = len(text_pairs)
        return ScoredPairs(logits, np.full(n, 5, dtype=np.int64), np.array([len(d) for d in text_pairs]))

    async def close(self) -> None:
        pass


def _documents(n: int) -> list[str]:
    return [f"d{i}" for i in range(n)]


def _fp32_top(exact: Sequence[float], k: int) -> list[tuple[int, float]]:
    """What the fp32 model alone returns: best first by logit, ties in document order."""
    values = np.asarray(exact, dtype=np.float32)
    order = np.argsort(-values, kind="stable")[:k]
    return [(int(i), float(values[i])) for i in order]


async def _rerank(backend: TwoEncoders, n: int, top_n: int) -> list[tuple[int, float]]:
    core = CrossEncoderCore(backend, Limits(), "m")
    out = await core.rerank(RerankQuery(model="m", query="q", documents=_documents(n), top_n=top_n,
                                        raw_scores=True))
    backend.rescored = out.usage.rescored  # type: ignore[attr-defined]
    return [(r.index, r.score) for r in out.results]


def test_round_one_holds_every_document_within_delta_of_the_kth_fast_score() -> None:
    fast = np.array([5.0, 4.0, 3.0, 2.0, 2.999, 3.001], dtype=np.float64)
    # k = 2: the 2nd best fast score is 4.0, round one's edge 4.0 - 1.0 = 3.0
    assert exact_head.window(fast, 2, 1.0).tolist() == [0, 1, 2, 5]
    assert exact_head.window(fast, 6, 1.0).tolist() == [0, 1, 2, 3, 4, 5]
    assert exact_head.window(fast, 1, 0.0).tolist() == [0]
    assert exact_head.head_size(0, 25) == exact_head.DEFAULT_HEAD == 10
    assert exact_head.head_size(0, 4) == 4 and exact_head.head_size(3, 25) == 3


def test_round_two_adds_what_lies_within_delta_of_the_kth_fp32_score_and_never_past_two_delta() -> None:
    fast = np.array([5.0, 4.0, 3.0, 2.6, 2.4, 1.9, 2.1], dtype=np.float64)
    picked = exact_head.window(fast, 2, 1.0)
    assert picked.tolist() == [0, 1, 2]
    # fp32 agrees that the head is at 4.0 or above: nothing more to re-score
    assert exact_head.widen(fast, picked, np.array([5.0, 4.2, 3.0]), 2, 1.0).tolist() == []
    # fp32 puts the 2nd best at 3.5: documents down to 2.5 may be in fp32's top 2
    assert exact_head.widen(fast, picked, np.array([5.0, 3.5, 3.1]), 2, 1.0).tolist() == [3]
    # fp32 far below (errors past delta): never past the 2 x delta window (4.0 - 2.0), so 1.9 stays out
    assert exact_head.widen(fast, picked, np.array([5.0, 1.0, 0.5]), 2, 1.0).tolist() == [3, 4, 6]


async def test_a_document_just_inside_delta_is_rescored_and_one_just_outside_is_not() -> None:
    # top_n = 1: the best fast logit is 10.0, round one's edge 10.0 - 0.5 = 9.5; fp32 agrees (no noise).
    edge = 10.0 - DELTA
    exact = [10.0, edge + 1e-3, edge - 1e-3, 0.0]
    backend = TwoEncoders(exact, [0.0] * 4)
    results = await _rerank(backend, 4, top_n=1)
    assert backend.sent["m_fp32"] == ["d0", "d1"]  # d1 just inside, d2 just outside
    assert backend.rescored == 2  # type: ignore[attr-defined]
    assert results == [(0, 10.0)]


async def test_a_second_round_rescores_what_a_lower_fp32_head_brings_within_reach() -> None:
    # The fast encoder scores d0 0.4 too high: round one (fast >= 9.5) holds d0 alone, whose fp32 logit 9.6
    # makes documents down to 9.1 candidates; d1 (fast 9.2, fp32 9.7) is fp32's best and comes in round two.
    # d2 (9.05) lies within 2 x delta of the fast head but cannot beat 9.6: it is not re-scored.
    exact = [9.6, 9.7, 9.05, 0.0]
    noise = [0.4, -0.5, 0.0, 0.0]
    backend = TwoEncoders(exact, noise)
    results = await _rerank(backend, 4, top_n=1)
    assert backend.sent["m_fp32"] == ["d0", "d1"]
    assert results == [(1, pytest.approx(9.7))]


async def test_fast_errors_that_reorder_the_head_are_corrected_with_fp32_scores() -> None:
    # The fast encoder swaps the first two and lifts d2 above both; fp32's order comes back, with its scores.
    exact = [3.0, 2.8, 2.7, -4.0, -5.0]
    noise = [-0.4, 0.4, 0.45, 0.0, 0.0]
    backend = TwoEncoders(exact, noise)
    assert await _rerank(backend, 5, top_n=2) == _fp32_top(exact, 2)
    assert sorted(backend.sent["m_fp32"]) == ["d0", "d1", "d2"]


async def test_without_top_n_the_first_ten_are_exact_and_every_document_is_returned() -> None:
    exact = [float(i % 7) + i / 100 for i in range(30)]
    backend = TwoEncoders(exact, [0.3 * (-1) ** i for i in range(30)])
    results = await _rerank(backend, 30, top_n=0)
    assert len(results) == 30
    assert results[:10] == _fp32_top(exact, 10)
    assert 10 <= backend.rescored < 30  # type: ignore[attr-defined]


@pytest.mark.parametrize(("documents", "top_n", "fast_pass"), [(10, 0, False), (20, 0, False), (21, 0, True),
                                                              (6, 3, False), (7, 3, True), (4, 4, False)])
async def test_a_head_of_half_the_documents_or_more_is_scored_by_fp32_alone(documents: int, top_n: int,
                                                                          fast_pass: bool) -> None:
    # There the fast pass would be wasted: the head, half the request or more, is re-scored with fp32 anyway.
    exact = [float(i % 3) for i in range(documents)]
    backend = TwoEncoders(exact, [0.4] * documents)
    results = await _rerank(backend, documents, top_n)
    assert backend.sent["m"] == (_documents(documents) if fast_pass else [])
    if not fast_pass:
        assert backend.sent["m_fp32"] == _documents(documents) and backend.rescored == documents  # type: ignore[attr-defined]
    k = exact_head.head_size(top_n, documents)
    assert results[:k] == _fp32_top(exact, k)


async def test_classify_uses_the_fast_encoder_alone() -> None:
    backend = TwoEncoders([1.0, 2.0], [0.1, 0.1])
    core = CrossEncoderCore(backend, Limits(), "m")
    out = await core.classify(ClassifyQuery(model="m", pairs=[("q", "d0"), ("q", "d1")], raw_scores=True))
    assert [r.score for r in out.results] == pytest.approx([1.1, 2.1])
    assert backend.sent["m_fp32"] == [] and out.usage.rescored == 0


@settings(max_examples=300, deadline=None)
@given(data=st.data())
async def test_whenever_every_fast_error_is_within_delta_the_top_k_is_fp32s(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 40), label="documents")
    # Few distinct values, so that ties (fp32's and the fast encoder's) happen often.
    exact = data.draw(st.lists(st.integers(-12, 12).map(lambda v: v / 4), min_size=n, max_size=n), label="fp32")
    # within delta, with room for float32 rounding
    noise = data.draw(st.lists(st.floats(-DELTA + 1e-4, DELTA - 1e-4), min_size=n, max_size=n), label="noise")
    top_n = data.draw(st.integers(0, n), label="top_n")
    backend = TwoEncoders(exact, noise)
    results = await _rerank(backend, n, top_n)
    k = exact_head.head_size(top_n, n)
    assert results[:k] == _fp32_top(exact, k)
    assert backend.rescored == len(backend.sent["m_fp32"]) >= k  # type: ignore[attr-defined]
