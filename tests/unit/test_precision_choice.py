"""`--precision auto`: which candidates a machine gets, which one is chosen, and how many threads an encoder
instance takes. Measurements are inputs here, never asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossrank.export.agreement import Agreement
from crossrank.export.precision import Candidate, PrecisionChoiceError, Trial, best_width, candidates, choose
from crossrank.triton_models.host_cpu import available_cpus, cgroup_cpu_limit, cpu_flags, threads_per_instance

EPYC_WITHOUT_BF16 = frozenset({"avx2", "avx512f", "avx512_vnni"})
XEON_WITH_AMX = frozenset({"avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"})
ZEN_WITH_AVX512_BF16 = frozenset({"avx512f", "avx512_bf16", "avx512_vnni"})


def _agreement(spearman: float, top10: float, ndcg10: float = 0.999, top10_exact: float | None = None) -> Agreement:
    exact = (1.0 if top10 == 1.0 else 0.5) if top10_exact is None else top10_exact
    return Agreement(max_abs_diff=0.01, spearman=spearman, top10_overlap=top10, lists=8, top10_exact=exact,
                     ndcg10=ndcg10)


def test_a_cpu_without_bf16_hardware_never_gets_bf16() -> None:
    found = candidates("auto", EPYC_WITHOUT_BF16, cuda=False)
    assert Candidate("onnx-python", "fp32") in found
    assert all(c.precision not in ("bf16", "fp16") for c in found)


@pytest.mark.parametrize("flags", [XEON_WITH_AMX, ZEN_WITH_AVX512_BF16])
def test_cpus_with_bf16_hardware_measure_bf16(flags: frozenset[str]) -> None:
    found = candidates("auto", flags, cuda=False)
    assert Candidate("torch-python", "bf16") in found
    assert found[0] == Candidate("onnx-python", "fp32")
    assert all(c.precision != "fp16" for c in found)


def test_a_gpu_measures_fp16_and_bf16_on_torch() -> None:
    found = candidates("auto", EPYC_WITHOUT_BF16, cuda=True)
    assert {c.precision for c in found} == {"fp32", "fp16", "bf16"}
    assert {c.engine for c in found} == {"torch-python"}


def test_a_named_engine_keeps_its_own_candidates_and_fp32() -> None:
    assert candidates("onnx-python", XEON_WITH_AMX, cuda=False) == [
        Candidate("onnx-python", "fp32"), Candidate("onnx-python", "int8"), Candidate("onnx-python", "int8", True)]
    assert candidates("torch-python", XEON_WITH_AMX, cuda=False, exact_head=False) == [
        Candidate("torch-python", "fp32"), Candidate("torch-python", "bf16")]
    assert candidates("torch-python", EPYC_WITHOUT_BF16, cuda=False) == [Candidate("torch-python", "fp32")]
    with pytest.raises(PrecisionChoiceError, match="name a precision"):
        candidates("tensorrt", XEON_WITH_AMX, cuda=False)


def test_a_faster_candidate_below_the_agreement_bar_is_never_chosen() -> None:
    fp32 = Trial(Candidate("onnx-python", "fp32"), 200.0)
    int8 = Trial(Candidate("onnx-python", "int8"), 450.0, _agreement(0.962, 0.84))
    bf16_close = Trial(Candidate("torch-python", "bf16"), 300.0, _agreement(0.9989, 0.99))  # Spearman short
    bf16_top10 = Trial(Candidate("torch-python", "bf16"), 300.0, _agreement(0.9995, 0.90))  # top-10 short
    assert choose([fp32, int8, bf16_close, bf16_top10]) is fp32
    assert not int8.agrees and not bf16_close.agrees and not bf16_top10.agrees


def test_the_fastest_agreeing_candidate_is_chosen() -> None:
    fp32 = Trial(Candidate("onnx-python", "fp32"), 200.0)
    bf16 = Trial(Candidate("torch-python", "bf16"), 300.0, _agreement(0.9994, 1.0))
    slow_bf16 = Trial(Candidate("torch-python", "bf16"), 150.0, _agreement(0.9999, 1.0))
    assert choose([fp32, bf16]) is bf16
    assert choose([fp32, slow_bf16]) is fp32
    assert choose([Trial(Candidate("onnx-python", "fp32"), 1.0)]).candidate.precision == "fp32"


def test_every_reduced_precision_is_also_measured_with_the_exact_head() -> None:
    found = candidates("auto", XEON_WITH_AMX, cuda=False)
    assert Candidate("onnx-python", "int8", exact_head=True) in found
    assert Candidate("torch-python", "bf16", exact_head=True) in found
    assert not any(c.exact_head and c.precision == "fp32" for c in found)
    assert not any(c.exact_head for c in candidates("auto", XEON_WITH_AMX, cuda=False, exact_head=False))


def test_the_fast_precision_alone_needs_ndcg_at_10_besides_spearman_and_overlap() -> None:
    assert Trial(Candidate("torch-python", "bf16"), 300.0, _agreement(0.9995, 1.0, ndcg10=0.996)).agrees
    assert not Trial(Candidate("torch-python", "bf16"), 300.0, _agreement(0.9995, 1.0, ndcg10=0.994)).agrees


@pytest.mark.parametrize("exact_head", [False, True])
def test_auto_never_picks_a_candidate_whose_top10_differs_from_fp32_on_a_list(exact_head: bool) -> None:
    fp32 = Trial(Candidate("onnx-python", "fp32"), 200.0)
    # Every bar met on average, but one list of eight has its top 10 in another order.
    one_list_off = _agreement(0.9999, 1.0, ndcg10=0.9999, top10_exact=7 / 8)
    fast = Trial(Candidate("onnx-python", "int8", exact_head), 900.0, one_list_off)
    assert not fast.agrees
    assert choose([fp32, fast]) is fp32
    exact = Trial(Candidate("onnx-python", "int8", exact_head), 250.0, _agreement(0.95, 1.0, 1.0, top10_exact=1.0))
    # the exact head promises the head, not the whole list: a Spearman of 0.95 is its fast encoder's tail
    assert choose([fp32, exact]) is (exact if exact_head else fp32)


def test_a_reduced_precision_without_an_agreement_measurement_does_not_agree() -> None:
    assert not Trial(Candidate("torch-python", "bf16"), 999.0, None).agrees
    with pytest.raises(PrecisionChoiceError):
        choose([Trial(Candidate("torch-python", "bf16"), 999.0, None)])


def test_best_width_is_the_fastest_measured() -> None:
    rates = {256: 100.0, 768: 140.0, 4096: 90.0}
    width, measured = best_width(rates.__getitem__, tuple(rates))
    assert width == 768 and measured == rates


def test_threads_follow_affinity_and_quota(tmp_path: Path) -> None:
    assert available_cpus(affinity={0, 1, 2, 3, 4, 5, 6, 7}, quota=None, root=tmp_path) == 8
    assert available_cpus(affinity={0, 1, 2, 3, 4, 5, 6, 7}, quota=2.5) == 3  # a 2500m container limit
    assert available_cpus(affinity={3}, quota=16.0) == 1  # pinned to one core
    assert available_cpus(affinity={0, 1}, quota=0.2) == 1
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.5
    assert available_cpus(affinity=set(range(64)), root=tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("400000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(v1) == 4.0


def test_threads_are_shared_between_encoder_instances() -> None:
    assert threads_per_instance("auto", instances=2, cpus=8) == 4
    assert threads_per_instance("auto", instances=4, cpus=2) == 1
    assert threads_per_instance("0", instances=1, cpus=6) == 6
    assert threads_per_instance("3", instances=2, cpus=8) == 3  # an explicit count stays as it is


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16\n\nprocessor\t: 1\nflags\t: fpu\n")
    assert cpu_flags(info) == {"fpu", "avx512f", "avx512_bf16", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()
