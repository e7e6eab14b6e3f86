"""Which engine and precision an export builds: the one named, or under `--precision auto` every candidate
this machine runs (`precision.candidates`), built, timed and checked, the fastest that ranks like fp32 kept
(`precision.choose`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from crossrank.export import engines, head_rescoring, precision, tuning
from crossrank.export import progress as progress_module
from crossrank.export.agreement import Agreement
from crossrank.export.formats.base import Reference
from crossrank.export.options import EXACT_HEAD_CHOICES, ExportError, ExportOptions
from crossrank.export.parity import check_agreement, check_head_agreement, head_bound
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
    if options.exact_head not in EXACT_HEAD_CHOICES:
        raise ExportError(f"--exact-head is one of {', '.join(EXACT_HEAD_CHOICES)} (got {options.exact_head})")
    if options.precision != AUTO:
        name = resolve_engine(options)
        engines.get(name, options.precision)  # refuses an unknown engine or an unsupported precision
        if options.exact_head == "on" and options.precision == Precision.FP32:
            raise ExportError("--exact-head on needs a reduced --precision (int8, bf16, fp16) or auto: fp32 is "
                              "exact already")
        return [precision.Candidate(name, options.precision, exact_head=options.exact_head == "on")]
    from crossrank.triton_models.host_cpu import cpu_flags

    try:
        return precision.candidates(options.engine, cpu_flags(), cuda(), exact_head=options.exact_head != "off")
    except precision.PrecisionChoiceError as exc:
        raise ExportError(str(exc)) from exc


Chosen = tuple[engines.BuiltEncoder, ModelInfo, Agreement | None, engines.BuiltEncoder | None,
               head_rescoring.HeadBound | None]


def choose(options: list[precision.Candidate], build: Callable[[precision.Candidate], engines.BuiltEncoder],
           reference: Reference, pair_tokenizer: PairTokenizer, info: ModelInfo,
           progress: Progress = progress_module.OFF) -> Chosen:
    """`--precision auto`: builds every candidate, times it as a rerank of 1 query x 100 passages with top_n
    10, and keeps the fastest that ranks like fp32 (`precision.Trial.agrees`). Returns the encoder, the
    model's facts, the served ranking's agreement, and for the exact head its fp32 encoder and bound."""
    feeds = head_rescoring.timing_feeds(pair_tokenizer)
    fp32 = next(c for c in options if c.precision == Precision.FP32)  # the reference, measured first
    trials: list[precision.Trial] = []
    bounds: dict[precision.Candidate, head_rescoring.HeadBound] = {}
    for candidate in options:
        with progress.step(f"measuring {candidate}"):
            built = build(candidate)
            if not trials:  # timed within a budget: a large model times fewer pairs (2 passes per candidate)
                feeds = tuning.within_budget(built.score, feeds, 2 * len(options))
            candidate_info = replace(info, engine=candidate.engine, precision=candidate.precision)
            exact = build(fp32) if candidate.exact_head else None
            if exact is not None:
                bounds[candidate] = head_bound(built, exact, pair_tokenizer)
                agreement: Agreement | None = check_head_agreement(
                    pair_tokenizer, built, exact, bounds[candidate].delta, candidate_info)
            else:
                agreement = (None if candidate.precision == Precision.FP32
                             else check_agreement(reference, pair_tokenizer, built, candidate_info, warn=False))
            rate, rescored = head_rescoring.throughput(built.score, exact.score if exact else None, feeds,
                                                       bounds[candidate].delta if exact else 0.0)
            trial = precision.Trial(candidate, rate, agreement, rescored)
        trials.append(trial)
        fp32_rate = trials[0].pairs_per_s
        ratio = f", {trial.pairs_per_s / fp32_rate:.2f}x fp32" if trial is not trials[0] else ""
        verdict = ("the reference" if agreement is None else
                   f"{'agrees' if trial.agrees else 'below the bar'} (Spearman {agreement.spearman:.4f}, "
                   f"top-10 overlap {agreement.top10_overlap:.3f}, top-10 exact {agreement.top10_exact:.3f}, "
                   f"NDCG@10 {agreement.ndcg10:.4f}; bar {precision.CHOOSE_MIN_SPEARMAN} / "
                   f"{precision.MIN_TOP10_OVERLAP} / {precision.MIN_NDCG10}, every top 10 exact)")
        head_note = (f", {trial.rescored:.1f} of {head_rescoring.TIMING_PASSAGES} re-scored per request"
                     if candidate.exact_head else "")
        logger.info("auto: %s measured %.0f pairs/s at 1 x %d, top_n %d%s%s, %s", candidate, trial.pairs_per_s,
                    head_rescoring.TIMING_PASSAGES, head_rescoring.TIMING_TOP_N, ratio, head_note, verdict)
    chosen = precision.choose(trials)
    logger.info("auto: chose %s (%.0f pairs/s, the fastest that ranks like fp32)", chosen.candidate,
                chosen.pairs_per_s)
    picked = chosen.candidate
    return (build(picked), replace(info, engine=picked.engine, precision=picked.precision), chosen.agreement,
            build(fp32) if picked.exact_head else None, bounds.get(picked))
