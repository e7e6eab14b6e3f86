"""Which engine and precision an export builds: the one named, or under `--precision auto` every candidate
this machine runs (`precision.candidates`), built, timed and checked, the fastest that ranks like fp32 kept
(`precision.choose`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from crossrank.export import engines, precision, tuning
from crossrank.export import progress as progress_module
from crossrank.export.agreement import Agreement
from crossrank.export.formats.base import Reference
from crossrank.export.options import ExportError, ExportOptions
from crossrank.export.parity import check_agreement
from crossrank.export.progress import Progress
from crossrank.model_info import ModelInfo
from crossrank.triton_contract import AUTO, EngineName, Precision
from crossrank.triton_models.pair_tokenizer import PairTokenizer

logger = logging.getLogger(__name__)


def cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve_engine(options: ExportOptions) -> str:
    """`--engine auto` with a named precision: the python-backend engine that runs it."""
    if options.engine != AUTO:
        return options.engine
    return EngineName.TORCH_PYTHON if options.precision in (Precision.BF16, Precision.FP16) else EngineName.ONNX_PYTHON


def candidates(options: ExportOptions) -> list[precision.Candidate]:
    if options.precision != AUTO:
        name = resolve_engine(options)
        engines.get(name, options.precision)  # refuses an unknown engine or an unsupported precision
        return [precision.Candidate(name, options.precision)]
    from crossrank.triton_models.host_cpu import cpu_flags

    try:
        return precision.candidates(options.engine, cpu_flags(), cuda())
    except precision.PrecisionChoiceError as exc:
        raise ExportError(str(exc)) from exc


def choose(options: list[precision.Candidate], build: Callable[[precision.Candidate], engines.BuiltEncoder],
           reference: Reference, pair_tokenizer: PairTokenizer, info: ModelInfo,
           progress: Progress = progress_module.OFF) -> tuple[engines.BuiltEncoder, ModelInfo, Agreement | None]:
    """`--precision auto`: builds and times every candidate, keeps the fastest that ranks like fp32."""
    feeds = tuning.timing_feeds(pair_tokenizer)
    trials: list[precision.Trial] = []
    built_by = {}
    for candidate in options:
        with progress.step(f"measuring {candidate}"):
            built = build(candidate)
            if not trials:  # timed within a budget: a large model times fewer pairs (2 passes per candidate)
                feeds = tuning.within_budget(built.score, feeds, 2 * len(options))
            candidate_info = replace(info, engine=candidate.engine, precision=candidate.precision)
            agreement = (None if candidate.precision == Precision.FP32
                         else check_agreement(reference, pair_tokenizer, built, candidate_info, warn=False))
            trial = precision.Trial(candidate, tuning.throughput(built.score, feeds), agreement)
        trials.append(trial)
        built_by[candidate] = built
        fp32_rate = next((t.pairs_per_s for t in trials if t.candidate.precision == Precision.FP32), None)
        ratio = (f", {trial.pairs_per_s / fp32_rate:.2f}x fp32"
                 if fp32_rate and trial.candidate.precision != Precision.FP32 else "")
        verdict = ("the reference" if agreement is None else
                   f"{'agrees' if trial.agrees else 'below the bar'} (Spearman {agreement.spearman:.4f}, "
                   f"top-10 {agreement.top10_overlap:.3f}; bar {precision.CHOOSE_MIN_SPEARMAN} / "
                   f"{precision.MIN_TOP10_OVERLAP})")
        logger.info("auto: %s measured %.0f pairs/s%s, %s", candidate, trial.pairs_per_s, ratio, verdict)
    chosen = precision.choose(trials)
    logger.info("auto: chose %s (%.0f pairs/s, the fastest that ranks like fp32)", chosen.candidate,
                chosen.pairs_per_s)
    return (built_by[chosen.candidate], replace(info, engine=chosen.candidate.engine,
                                                precision=chosen.candidate.precision), chosen.agreement)
