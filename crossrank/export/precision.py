"""`--precision auto`: which engine and precision to serve, chosen by measurement on the machine that exports
(in embedded mode, the machine that serves).

The candidates are what the hardware runs well: fp32 everywhere (the exact reference, 1e-4 parity); bf16
where the CPU has AMX or AVX-512 BF16, or on a GPU; fp16 on a GPU; dynamic int8 on CPUs; and each reduced
precision with the exact head (its fp32 encoder re-scoring the head, docs/models.md). A reduced precision
alone must rank like fp32 on export's sample lists (Spearman, top-10 overlap and NDCG@10 at or above the bar)
before its speed counts, and no candidate but fp32 itself is served whose top 10 differs from fp32's on any of
those lists; the fastest that passes is served, timed as a rerank of 1 query x 100 passages with top_n 10.
This module holds the pure rules; the exporter builds and times the candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from crossrank.export.agreement import Agreement
from crossrank.triton_contract import AUTO, PYTHON_BACKEND_ENGINES, EngineName, Precision
from crossrank.triton_models.host_cpu import has_bf16

# The agreement bar a reduced precision must meet against fp32 to be chosen by `auto`.
CHOOSE_MIN_SPEARMAN = 0.999
MIN_TOP10_OVERLAP = 0.95
MIN_NDCG10 = 0.995
# Every candidate but fp32 itself: the fraction of export's lists whose top 10 must be fp32's, in order.
TOP10_EXACT = 1.0
# Sub-batch widths (padded tokens per encoder call) tried for the chosen candidate.
CPU_WIDTHS = (256, 512, 768, 1024, 2048, 4096)
GPU_WIDTHS = (16_384, 32_768, 65_536, 131_072)


@dataclass(frozen=True)
class Candidate:
    engine: str
    precision: str
    exact_head: bool = False  # served with the fp32 encoder re-scoring the head

    def __str__(self) -> str:
        return f"{self.engine} {self.precision}" + (" + exact head" if self.exact_head else "")


@dataclass(frozen=True)
class Trial:
    candidate: Candidate
    pairs_per_s: float
    # The served ranking's agreement with fp32 (with the exact head: fast scores re-scored at the head); None
    # for fp32, the reference itself.
    agreement: Agreement | None = None
    rescored: float = 0.0  # the exact head: documents re-scored per 1 x 100 rerank, on average

    @property
    def agrees(self) -> bool:
        if self.candidate.precision == Precision.FP32:
            return True
        if self.agreement is None or not self.agreement.top10_exact >= TOP10_EXACT:
            return False
        if self.candidate.exact_head:  # the whole list is not its promise: the head is
            return True
        return (self.agreement.spearman >= CHOOSE_MIN_SPEARMAN and self.agreement.top10_overlap >= MIN_TOP10_OVERLAP
                and self.agreement.ndcg10 >= MIN_NDCG10)


class PrecisionChoiceError(ValueError):
    """`auto` cannot be applied as asked."""


def candidates(engine: str, cpu_flags: frozenset[str], cuda: bool, exact_head: bool = True) -> list[Candidate]:
    """What `auto` measures for `engine` (`auto` = every measurable engine) on this hardware; fp32 first.
    `exact_head`: each reduced precision also with the exact head (over the first, fp32, candidate)."""
    # Engines `auto` measures: those whose encoder runs in-process at export (the python backend's).
    if engine not in (AUTO, *PYTHON_BACKEND_ENGINES):
        raise PrecisionChoiceError(f"--precision auto measures the python-backend engines "
                                   f"({', '.join(PYTHON_BACKEND_ENGINES)}) only; name a precision for {engine}")
    if cuda:  # ONNX Runtime in the python backend runs on the CPU only: on a GPU, PyTorch
        found = [Candidate(EngineName.TORCH_PYTHON, p) for p in (Precision.FP32, Precision.FP16, Precision.BF16)]
    else:
        found = [Candidate(EngineName.ONNX_PYTHON, Precision.FP32), Candidate(EngineName.ONNX_PYTHON, Precision.INT8)]
        if has_bf16(cpu_flags):
            found.append(Candidate(EngineName.TORCH_PYTHON, Precision.BF16))
    if engine != AUTO:
        found = [c for c in found if c.engine == engine]
        if not any(c.precision == Precision.FP32 for c in found):
            found.insert(0, Candidate(engine, Precision.FP32))
    if exact_head:
        found += [replace(c, exact_head=True) for c in found if c.precision != Precision.FP32]
    return found


def exact_engine(engine: str, cuda: bool) -> str:
    """The engine of the exact head's fp32 encoder beside a fast encoder of `engine` at a named precision
    (`auto` measures its own fp32 candidate): on a CPU ONNX Runtime, whose fp32 runs about twice PyTorch's
    (docs/performance.md; re-scoring 25 documents with PyTorch fp32 cost 220 ms against 112 ms), elsewhere
    the fast engine's own (ONNX Runtime in the python backend runs on the CPU only)."""
    return EngineName.ONNX_PYTHON if engine == EngineName.TORCH_PYTHON and not cuda else engine


def choose(trials: Sequence[Trial]) -> Trial:
    """The fastest trial whose ranking agrees with fp32 (fp32 always does; see `Trial.agrees`)."""
    agreeing = [t for t in trials if t.agrees]
    if not agreeing:
        raise PrecisionChoiceError("no candidate precision agrees with fp32")
    return max(agreeing, key=lambda t: t.pairs_per_s)


def best_width(rate_at: Callable[[int], float], widths: Sequence[int]) -> tuple[int, dict[int, float]]:
    """The sub-batch width with the highest measured rate, and every width's rate."""
    rates = {width: rate_at(width) for width in widths}
    return max(rates, key=lambda w: rates[w]), rates
