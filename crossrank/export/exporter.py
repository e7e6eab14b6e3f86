"""`crossrank export`: the whole flow, in order. Reads the checkpoint, lets its format (crossrank/export/formats)
prepare it, builds the encoder for the chosen engine and precision (precision_choice), checks it against the
format's reference scorer (parity), and writes the Triton models (triton_repository).

Export refuses to report success until the exported model, run through the very tokenizer and encoder code
that Triton will run, reproduces the reference's logits on sample pairs (longer than the max length
included) within the tolerance.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from crossrank.export import encoder_build, engines, formats, head_rescoring, precision_choice, source, stamp, tuning
from crossrank.export import progress as progress_module
from crossrank.export.agreement import Agreement
from crossrank.export.loading import load_checkpoint
from crossrank.export.options import ExportError, ExportOptions
from crossrank.export.parity import check_agreement, check_head_agreement, check_parity, head_bound
from crossrank.export.precision import CPU_WIDTHS, GPU_WIDTHS, Candidate, exact_engine
from crossrank.export.progress import Progress
from crossrank.export.reference import TokenMismatchError, remembered
from crossrank.export.triton_repository import EXACT_SUFFIX, write_models
from crossrank.model_info import ModelInfo, Task
from crossrank.triton_contract import EngineName, Precision
from crossrank.triton_models.pair_tokenizer import SETTINGS_FILE, TOKENIZER_FILE, PairTokenizer

__all__ = ["ExportError", "ExportOptions", "ExportReport", "export"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportReport:
    info: ModelInfo
    max_abs_diff: float  # largest logit difference to PyTorch fp32 on the sample pairs
    pairs_checked: int
    agreement: Agreement | None = None  # ranking agreement with fp32, for reduced precisions
    head_bound: head_rescoring.HeadBound | None = None  # the exact head's error bound, when served with it


def export(options: ExportOptions, progress: Progress = progress_module.OFF) -> ExportReport:
    """Exports `options.source` into `options.repository` and returns what was checked; `progress` shows its
    long steps."""
    candidates = precision_choice.candidates(options)
    progress.plan(len(candidates) + 2)  # loading (planned at creation), each candidate, parity, writing
    for flag, count in (("--tokenizer-instances", options.tokenizer_instances),
                        ("--encoder-instances", options.encoder_instances),
                        ("--max-batch-size", options.max_batch_size)):
        if count < 1:
            raise ExportError(f"{flag} must be at least 1 (got {count})")
    logger.info("export %s as %s (engine %s, precision %s)", options.source, options.name, options.engine,
                options.precision)
    try:
        path = source.resolve(options.source)
    except source.SourceError as exc:
        raise ExportError(str(exc)) from exc
    logger.info("loading %s", path)
    checkpoint = load_checkpoint(path, options)
    try:
        chosen_format = formats.choose(options.layout, checkpoint)
    except formats.LayoutError as exc:
        raise ExportError(str(exc)) from exc
    logger.info("format: %s", chosen_format.name)
    with progress.step("loading the model"):
        prepared = chosen_format.prepare(checkpoint)
    settings, model = prepared.settings, prepared.model
    num_labels = len(prepared.labels)
    info = ModelInfo(
        name=options.name, task=Task.RERANK if num_labels == 1 else Task.CLASSIFY, labels=prepared.labels,
        activation=prepared.activation, max_length=prepared.max_length, engine=candidates[0].engine,
        precision=candidates[0].precision, source=options.source_label or options.source,
        max_batch_size=options.max_batch_size, default_instruction=prepared.instruction,
        accepts_instruction=prepared.accepts_instruction)
    reference = remembered(prepared.reference)
    with tempfile.TemporaryDirectory(prefix="crossrank-export-") as scratch:
        work = Path(scratch)
        tokenizer_dir = work / "tokenizer"
        tokenizer_dir.mkdir()
        (tokenizer_dir / TOKENIZER_FILE).write_text(checkpoint.tokenizer.backend_tokenizer.to_str())
        settings.dump(tokenizer_dir / SETTINGS_FILE)
        pair_tokenizer = PairTokenizer.from_directory(tokenizer_dir)
        if prepared.check_tokens is not None:
            try:
                prepared.check_tokens(pair_tokenizer)
            except TokenMismatchError as exc:
                raise ExportError(f"{options.source}: {exc}") from exc

        encoders: dict[tuple[str, str], engines.BuiltEncoder] = {}

        def build(candidate: Candidate) -> engines.BuiltEncoder:
            """The encoder of `candidate`'s engine and precision, built once (the exact head reuses them)."""
            key = (candidate.engine, candidate.precision)
            if key in encoders:
                return encoders[key]
            logger.info("exporting the encoder (%s %s)", candidate.engine, candidate.precision)
            chosen = replace(options, engine=candidate.engine, precision=candidate.precision)
            try:
                encoders[key] = engines.get(candidate.engine, candidate.precision).build(
                    model, settings.model_input_names, num_labels, settings,
                    work / f"encoder-{candidate.engine}-{candidate.precision}", chosen, prepared.score,
                    info.max_length)
            except engines.UnsupportedEngineError as exc:
                raise ExportError(str(exc)) from exc
            return encoders[key]

        if info.task is not Task.RERANK and any(c.exact_head for c in candidates):
            if options.exact_head == "on":
                raise ExportError(f"{options.source}: a {num_labels}-label classifier; the exact head re-scores "
                                  "a rerank's head and needs a one-logit reranker")
            candidates = [c for c in candidates if not c.exact_head]
        exact: engines.BuiltEncoder | None = None  # the exact head's fp32 encoder
        head: head_rescoring.HeadBound | None = None
        if len(candidates) > 1:
            built, info, agreement, exact, head = precision_choice.choose(candidates, build, reference,
                                                                          pair_tokenizer, info, progress)
        else:
            with progress.step(f"building the encoder ({candidates[0]})"):
                built, agreement = build(candidates[0]), None
                if candidates[0].exact_head:
                    exact = build(Candidate(exact_engine(candidates[0].engine, precision_choice.cuda()),
                                            Precision.FP32))
                    head = head_bound(built, exact, pair_tokenizer)
        reduced = (built.checked_precision or info.precision) != Precision.FP32
        if built.checked_precision and built.checked_precision != info.precision:
            logger.warning("%s: export checked the encoder in %s; %s scores are measured only where the engine "
                           "runs (see docs/models.md, engines)", info.name, built.checked_precision, info.precision)
        with progress.step("parity with PyTorch"):
            diff, checked = check_parity(reference, pair_tokenizer, built,
                                         float("inf") if reduced else options.tolerance)
        logger.info("parity: largest logit difference %.2e over %d pairs%s", diff, checked,
                    "" if reduced else f" (limit {options.tolerance:.0e})")
        if exact is not None:
            progress.plan(1)
            with progress.step("parity of the exact head's fp32 encoder"):
                exact_diff, _ = check_parity(reference, pair_tokenizer, exact, options.tolerance)
            logger.info("exact head: fp32 encoder parity %.2e (limit %.0e)", exact_diff, options.tolerance)
        if reduced and agreement is None:
            progress.plan(1)
            with progress.step(f"{info.precision} ranking against fp32"):
                agreement = (check_agreement(reference, pair_tokenizer, built, info) if exact is None or head is None
                             else check_head_agreement(pair_tokenizer, built, exact, head.delta, info))
        if options.tokens_per_batch:
            built = tuning.with_width(built, options.tokens_per_batch)
        elif built.batcher is not None:  # python-backend engines; native ones batch inside Triton's backend
            # ONNX Runtime in the python backend runs on the CPU even on a GPU host.
            on_gpu = info.engine == EngineName.TORCH_PYTHON and precision_choice.cuda()
            widths = GPU_WIDTHS if on_gpu else CPU_WIDTHS
            progress.plan(len(widths))
            built, rates = tuning.tune_width(built, tuning.timing_feeds(pair_tokenizer), widths, progress.step)
            logger.info("sub-batch width: %s tokens (pairs/s by width: %s)", built.spec.parameters["tokens_per_batch"],
                        ", ".join(f"{w}: {r:.0f}" for w, r in rates.items()))

        if exact is not None and head is not None:
            # the fp32 encoder takes the fast one's sub-batch width: it scores a request's head, a few pairs
            if "tokens_per_batch" in built.spec.parameters:
                exact = tuning.with_width(exact, int(built.spec.parameters["tokens_per_batch"]))
            # measured again as served (a dynamic-int8 sub-batch is quantized with its neighbours); the larger kept
            served = head_bound(built, exact, pair_tokenizer)
            head = served if served.delta > head.delta else head
            info = replace(info, exact_model=f"{info.name}{EXACT_SUFFIX}", head_delta=head.delta,
                           head_samples=head.samples)
            logger.info("exact head: %s", head.summary())

        def fill_tokenizer(target: Path) -> None:
            encoder_build.copy_triton_module(target, "tokenizer_model.py", "pair_tokenizer.py")
            for name in (TOKENIZER_FILE, SETTINGS_FILE):
                shutil.copy2(tokenizer_dir / name, target / name)

        recorded = stamp.make(options.source, path, {
            **stamp.recorded_options(options), "served": f"{info.engine} {info.precision}",
            "tokens_per_batch": built.spec.parameters.get("tokens_per_batch")})  # the width served
        with progress.step("writing the models"):
            write_models(options.repository, info, built.spec, fill_tokenizer, options.tokenizer_instances,
                         lambda directory: stamp.write(directory, recorded), exact.spec if exact else None)
    logger.info("wrote %s, %s_tokenizer, %s_encoder%s to %s (%s %s%s)", info.name, info.name, info.name,
                f", {info.exact_model}, {info.exact_model}_encoder" if info.exact_head else "", options.repository,
                info.engine, info.precision, ", exact head" if info.exact_head else "")
    return ExportReport(info, diff, checked, agreement, head)


