"""The exact head with fp16 as its fast precision, as `--precision auto` measures it on a GPU host, without a GPU:
which candidates a GPU host gets (fp16 alone and with the exact head, over torch-python fp32 on the same GPU);
the real choice (`precision_choice.choose`: delta, agreement and a rerank's throughput per candidate) over fake
encoders whose fp16 logits are fp32's plus bounded noise through float16 rounding, which flips near-ties, so
that fp16 alone reorders a top 10 and is refused while the exact head serves fp32's; and the exact head's
guarantee for fp16-sized errors, up to the whole delta (the margin the safety factor leaves)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from crossrank.exact_head import order
from crossrank.export import head_rescoring, precision, precision_choice
from crossrank.export.agreement import Agreement
from crossrank.export.engines import BuiltEncoder
from crossrank.export.head_rescoring import Feed
from crossrank.export.options import ExportOptions
from crossrank.export.precision import Candidate, Trial
from crossrank.export.samples import ranking_lists, sample_pairs
from crossrank.export.triton_repository import EncoderSpec
from crossrank.model_info import Activation, ModelInfo, Task
from crossrank.triton_contract import AUTO, EngineName, Precision

TORCH = EngineName.TORCH_PYTHON
FP32, FP16, BF16 = Precision.FP32, Precision.FP16, Precision.BF16
INFO = ModelInfo("m", Task.RERANK, ("LABEL_0",), Activation.SIGMOID, 512, TORCH, FP32, "tests", 8)
SPEC = EncoderSpec(("input_ids", "attention_mask"), 1, "python", {}, 1, lambda _: None)
# The fakes' error before the output's rounding: fp16's, and bf16's (three mantissa bits fewer: 8x).
NOISE: dict[str, float] = {FP16: 0.02, BF16: 0.16}
FP16_ROUNDING = 2.0**-9  # half an fp16 step for |logit| in [4, 8); the fakes' logits stay within +-6
FP32_COST = 1.0  # fake seconds per pair scored
Array = npt.NDArray[Any]


def _unit(*parts: str) -> float:
    """A fixed number in [0, 1) per text (Python's own str hash changes between processes)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


class Pairs:
    """A stand-in for the PairTokenizer: each distinct pair becomes one token, its id, which the fake encoders
    read their logits by. fp32's logit and each reduced precision's noise are fixed per pair."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], int] = {}
        self.fp32: list[float] = []
        self.noise: dict[str, list[float]] = {p: [] for p in NOISE}

    def encode(self, texts: Sequence[str], text_pairs: Sequence[str]) -> SimpleNamespace:
        ids = [self._id(q, d) for q, d in zip(texts, text_pairs, strict=True)]
        column = np.array(ids, dtype=np.int64)[:, None]
        return SimpleNamespace(tensors={"input_ids": column, "attention_mask": np.ones_like(column)})

    def feed(self, query: str, passages: Sequence[str]) -> Feed:
        return self.encode([query] * len(passages), passages).tensors  # type: ignore[no-any-return]

    def _id(self, query: str, passage: str) -> int:
        if (query, passage) not in self.ids:
            self.ids[query, passage] = len(self.fp32)
            self.fp32.append(float(np.float32(-6.0 + 12.0 * _unit(FP32, query, passage))))
            for p, values in self.noise.items():
                values.append(NOISE[p] * (2.0 * _unit(p, query, passage) - 1.0))
        return self.ids[query, passage]


class Clock:
    """head_rescoring's `time`: advanced by the fake encoders as they score, so that throughput is exact."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def _bf16(values: Array) -> Array:
    bits = (values.astype(np.float32).view(np.uint32) + np.uint32(0x8000)) & np.uint32(0xFFFF0000)
    return bits.view(np.float32)


@dataclass
class FakeEncoder:
    """An encoder run in-process: fp32's logits, or a reduced precision's (fp32 plus its noise, through its
    rounding); each pair costs `cost` on the clock."""

    pairs: Pairs
    precision: str
    clock: Clock
    cost: float

    def __call__(self, feed: Feed) -> Array:
        ids = feed["input_ids"][:, 0]
        self.clock.now += self.cost * ids.size
        exact: Array = np.array(self.pairs.fp32, dtype=np.float64)[ids]
        if self.precision == FP32:
            return exact.astype(np.float32)[:, None]
        noisy = exact + np.array(self.pairs.noise[self.precision])[ids]
        rounded = noisy.astype(np.float16) if self.precision == FP16 else _bf16(noisy)
        return rounded.astype(np.float32)[:, None]


def _encoders(reduced_cost: float) -> tuple[Pairs, Clock, dict[str, FakeEncoder]]:
    pairs, clock = Pairs(), Clock()
    costs = {FP32: FP32_COST, FP16: reduced_cost, BF16: reduced_cost}
    return pairs, clock, {p: FakeEncoder(pairs, p, clock, cost) for p, cost in costs.items()}


def _fp16_delta(pairs: Pairs, fast: FakeEncoder, exact: FakeEncoder) -> float:
    """delta as export measures it: over the ranking lists and the sample pairs parity scores."""
    found = head_rescoring.bound(fast, exact, head_rescoring.bound_feeds(pairs, sample_pairs()))  # type: ignore[arg-type]
    assert found.delta == head_rescoring.SAFETY_FACTOR * found.largest_error
    assert 0.5 * NOISE[FP16] < found.largest_error <= NOISE[FP16] + FP16_ROUNDING
    return found.delta


def test_a_gpu_host_measures_fp16_alone_and_with_the_exact_head_over_torch_fp32(
        monkeypatch: pytest.MonkeyPatch) -> None:
    found = precision.candidates(AUTO, frozenset(), cuda=True)
    assert Candidate(TORCH, FP16) in found and Candidate(TORCH, FP16, exact_head=True) in found
    # The exact head's reference is the one fp32 candidate, on torch-python like fp16: ONNX Runtime in the
    # python backend runs on the CPU only.
    assert found[0] == Candidate(TORCH, FP32)
    assert [c for c in found if c.precision == FP32] == [Candidate(TORCH, FP32)]
    assert {c.engine for c in found} == {TORCH}
    assert not any(c.exact_head and c.precision == FP32 for c in found)
    assert precision.candidates(TORCH, frozenset(), cuda=True) == found
    without = precision.candidates(AUTO, frozenset(), cuda=True, exact_head=False)
    assert Candidate(TORCH, FP16) in without and not any(c.exact_head for c in without)
    # What export measures with --precision auto on a GPU host, and a named fp16 with --exact-head on.
    monkeypatch.setattr(precision_choice, "cuda", lambda: True)
    options = ExportOptions("src", "m", Path("repo"), engine=AUTO, precision=AUTO)
    assert precision_choice.candidates(options) == found
    named = ExportOptions("src", "m", Path("repo"), engine=AUTO, precision=FP16, exact_head="on")
    assert precision_choice.candidates(named) == [Candidate(TORCH, FP16, exact_head=True)]


def test_torch_python_runs_fp32_on_the_gpu_that_runs_fp16(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from crossrank.triton_models.torch_encoder import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device(FP16) == pick_device(FP32) == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        pick_device(FP16)


@pytest.mark.parametrize("reduced_cost", [0.25, 0.95], ids=["fp16-4x-faster", "fp16-barely-faster"])
def test_auto_on_a_gpu_refuses_fp16_alone_and_serves_its_exact_head_when_that_is_faster(
        monkeypatch: pytest.MonkeyPatch, reduced_cost: float) -> None:
    pairs, clock, fakes = _encoders(reduced_cost)
    monkeypatch.setattr(head_rescoring, "time", clock)
    trials: list[Trial] = []
    real_choose = precision.choose

    def choose(measured: Sequence[Trial]) -> Trial:
        trials.extend(measured)
        return real_choose(measured)

    monkeypatch.setattr(precision, "choose", choose)
    built: dict[int, Candidate] = {}

    def build(candidate: Candidate) -> BuiltEncoder:
        encoder = BuiltEncoder(SPEC, fakes[candidate.precision])
        built[id(encoder)] = candidate
        return encoder

    def reference(batch: Sequence[tuple[str, str]]) -> Array:
        return fakes[FP32](pairs.encode([q for q, _ in batch], [d for _, d in batch]).tensors)

    options = precision.candidates(AUTO, frozenset(), cuda=True)
    encoder, info, agreement, exact, bound = precision_choice.choose(
        options, build, reference, pairs, INFO)  # type: ignore[arg-type]

    by_candidate = {t.candidate: t for t in trials}
    assert list(by_candidate) == options
    fp32, alone, head = (by_candidate[c] for c in (Candidate(TORCH, FP32), Candidate(TORCH, FP16),
                                                     Candidate(TORCH, FP16, exact_head=True)))
    # fp16 alone is the fastest measured, and refused: its top 10 differs from fp32's on some list.
    assert alone.pairs_per_s == max(t.pairs_per_s for t in trials)
    assert isinstance(alone.agreement, Agreement) and alone.agreement.top10_exact < 1.0 and not alone.agrees
    # With the exact head every list's top 10 is fp32's, re-scoring a few of each 1 x 100 rerank.
    assert isinstance(head.agreement, Agreement) and head.agreement.top10_exact == 1.0 and head.agrees
    assert head_rescoring.TIMING_TOP_N <= head.rescored < head_rescoring.TIMING_PASSAGES
    if reduced_cost < 0.5:
        assert head.pairs_per_s > fp32.pairs_per_s
        assert built[id(encoder)] == Candidate(TORCH, FP16, exact_head=True) and agreement is head.agreement
        assert (info.engine, info.precision) == (TORCH, FP16)
        assert exact is not None and built[id(exact)] == Candidate(TORCH, FP32)  # on the same GPU
        assert bound is not None and bound.delta == _fp16_delta(pairs, fakes[FP16], fakes[FP32])
    else:  # 95% of fp32's cost per pair plus the re-scored head: slower than fp32 alone
        assert head.pairs_per_s < fp32.pairs_per_s
        assert built[id(encoder)] == Candidate(TORCH, FP32) and (info.engine, info.precision) == (TORCH, FP32)
        assert agreement is None and exact is None and bound is None
        return
    reordered = 0
    for query, passages in ranking_lists():
        feed = pairs.feed(query, passages)
        fp32_top = order(fakes[FP32](feed)[:, 0])[:10]
        reordered += not np.array_equal(order(encoder.score(feed)[:, 0])[:10], fp32_top)
        served, rescored = head_rescoring.rerank(encoder.score, exact.score, feed, 10, bound.delta)
        assert order(served)[:10].tolist() == fp32_top.tolist()
        assert 10 <= rescored < len(passages)
    assert reordered > 0  # what fp16 alone would have served


def test_the_exact_head_gives_fp32s_top_k_for_fp16_errors_up_to_delta() -> None:
    pairs, _, fakes = _encoders(0.25)
    fast, exact = fakes[FP16], fakes[FP32]
    delta = _fp16_delta(pairs, fast, exact)
    lists = ranking_lists() + ranking_lists(queries=4, passages=100, seed=2468)  # the timed ones are unseen
    for query, passages in lists:
        feed = pairs.feed(query, passages)
        fp32 = exact(feed)[:, 0].astype(np.float64)
        for k in (1, 5, 10):
            top = order(fp32)[:k]
            # fp16's own errors (within delta / SAFETY_FACTOR on the pairs delta was measured on)
            served, rescored = head_rescoring.rerank(fast, exact, feed, k, delta)
            assert order(served)[:k].tolist() == top.tolist() and served[top].tolist() == fp32[top].tolist()
            assert k <= rescored < len(passages)
            # Errors up to the whole delta (pairs unlike the samples), each in the worst direction: fp32's top
            # k read low, every other document high.
            worst = fp32 + 0.99 * delta
            worst[top] -= 2 * 0.99 * delta

            def adversary(rows: Feed, worst: Array = worst, feed: Feed = feed) -> Array:
                assert rows is feed
                return worst.astype(np.float32)[:, None]

            assert np.max(np.abs(adversary(feed)[:, 0] - fp32)) <= delta
            served, rescored = head_rescoring.rerank(adversary, exact, feed, k, delta)
            assert order(served)[:k].tolist() == top.tolist() and served[top].tolist() == fp32[top].tolist()
            assert rescored < len(passages)
