"""`crossrank export`: loads a cross-encoder, exports its encoder, checks parity, writes the Triton models.

Export refuses to report success until the exported model, run through the very tokenizer and encoder code
that Triton will run, reproduces the PyTorch model's logits on sample pairs (longer than the max length
included) within the tolerance.
"""

from __future__ import annotations

import inspect
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.export import agreement as agreement_module
from crossrank.export import causal_layouts, encoder_build, engines, head_rescoring, precision, source, stamp, tuning
from crossrank.export import progress as progress_module
from crossrank.export.agreement import Agreement
from crossrank.export.progress import Progress
from crossrank.export.reference import TokenMismatchError, cross_encoder_logits, reference_logits, same_tokens_as
from crossrank.export.samples import sample_pairs
from crossrank.export.triton_repository import EXACT_SUFFIX, write_models
from crossrank.model_info import Activation, ModelInfo, Task
from crossrank.triton_contract import AUTO, EngineName, Precision
from crossrank.triton_models.pair_tokenizer import (
    DEFAULT_LLM_PROMPT,
    SETTINGS_FILE,
    TOKENIZER_FILE,
    ChatLayout,
    FramedLayout,
    PairTokenizer,
    PromptTemplate,
    TokenizerSettings,
)

logger = logging.getLogger(__name__)

ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# transformers reports an unset model_max_length as a huge sentinel; anything above this is "unset".
_UNSET_MAX_LENGTH = 1_000_000
# Causal-LM rerankers: pair tokens (before the prompt) unless --max-length says otherwise, as in the
# bge-reranker-v2-gemma model card's code.
LLM_MAX_LENGTH = 1024
# Parity scores the longest sample pair and the others shortest first while they hold at most this many
# tokens: all 64 pairs of a 512-token model (about 8,000 tokens with a real tokenizer), of an 8,192-token model
# the longest at its full window and most others (a pair that long takes minutes on two cores for a model of
# half a billion parameters).
PARITY_TOKENS = 16_384


class ExportError(RuntimeError):
    """Export cannot proceed; the message names the cause and what to try instead."""


@dataclass(frozen=True)
class ExportOptions:
    # Every option is recorded in the export's stamp (stamp.py) unless marked NOT_STAMPED: the source has its
    # own entry, and where the export is written and under which name say nothing about what it holds.
    source: str = field(metadata=stamp.NOT_STAMPED)
    name: str = field(metadata=stamp.NOT_STAMPED)
    repository: Path = field(metadata=stamp.NOT_STAMPED)
    engine: str = EngineName.ONNX_PYTHON
    precision: str = Precision.FP32
    max_length: int | None = None
    max_batch_size: int = 256
    encoder_threads: int = 0
    tolerance: float = 1e-4
    trust_remote_code: bool = False
    tokenizer_instances: int = 1  # Triton instances of the tokenizer model (several on GPU hosts)
    # Triton instances of a python-backend encoder: on a GPU a second one overlaps its host-side work
    # (padding, copies, the result's trip back) with the other's kernels.
    encoder_instances: int = 1
    tokens_per_batch: int = 0  # padded tokens per encoder sub-batch; 0 = measured at export
    source_label: str | None = None  # what ListModels reports as the source; defaults to `source`
    # Causal-LM rerankers only: how a pair is laid out (causal_layouts.py; auto: told from the checkpoint),
    # and for the bge-gemma layout the prompt after each pair and the token whose logit is the score.
    layout: str = AUTO
    prompt: str | None = None  # None: bge-reranker-v2-gemma's instruction
    score_token: str = "Yes"
    # Causal-LM rerankers on torch-python: a request's shared prefix runs once (causal_lm_score.py); off
    # computes every pair whole (for comparison, or should a model's attention make reuse unsafe).
    prefix_reuse: bool = True
    # The exact head (docs/models.md): a reduced precision served with its fp32 encoder re-scoring the head.
    # auto: a candidate of --precision auto, off for a named precision; on: a named reduced precision gets
    # it; off: never.
    exact_head: str = AUTO


EXACT_HEAD_CHOICES = (AUTO, "on", "off")


@dataclass(frozen=True)
class ExportReport:
    info: ModelInfo
    max_abs_diff: float  # largest logit difference to PyTorch fp32 on the sample pairs
    pairs_checked: int
    agreement: Agreement | None = None  # ranking agreement with fp32, for reduced precisions
    head_bound: head_rescoring.HeadBound | None = None  # the exact head's error bound, when served with it


def _activation(config: object, num_labels: int) -> Activation:
    """The default activation, following sentence-transformers' CrossEncoder rules."""
    st = getattr(config, "sentence_transformers", None) or {}
    path = st.get("activation_fn") or getattr(config, "sbert_ce_default_activation_function", None)
    if path:
        last = str(path).rsplit(".", 1)[-1].lower()
        for activation in Activation:
            if last == activation.value:
                return activation
        logger.warning("model names activation %s, which crossrank does not know; using the default", path)
    return Activation.SIGMOID if num_labels == 1 else Activation.SOFTMAX


def _max_length(tokenizer: object, config: object, requested: int | None) -> int:
    if requested is not None:
        return requested
    length = int(getattr(tokenizer, "model_max_length", _UNSET_MAX_LENGTH))
    if length < _UNSET_MAX_LENGTH:
        return length
    positions = int(getattr(config, "max_position_embeddings", 512))
    # RoBERTa-style models reserve positions for the padding offset.
    if getattr(config, "model_type", "") in {"roberta", "xlm-roberta"}:
        return positions - (int(getattr(config, "pad_token_id", 0) or 0) + 1)
    return positions


def _needs_remote_code(exc: Exception, options: ExportOptions) -> ExportError | None:
    if not options.trust_remote_code and "trust_remote_code" in str(exc):
        return ExportError(f"{options.source} ships its own model code: read it, then export again with "
                           "--trust-remote-code")
    return None


@dataclass(frozen=True)
class _Loaded:
    tokenizer: Any
    model: Any  # fp32, eval mode
    # causal-LM rerankers: the score token, or a true and a false token (the score is their logits' difference)
    score_tokens: tuple[int, ...] | None = None
    chat: ChatLayout | None = None  # the sentence-transformers layout of a causal-LM reranker
    framed: FramedLayout | None = None  # Qwen3-Reranker's model-card layout
    # sentence-transformers' own CrossEncoder, the reference for the layouts it loads
    cross_encoder: Any = None
    layout: str | None = None  # a causal-LM reranker's layout (causal_layouts); None for a sequence classifier


def _load_config(path: Path, options: ExportOptions) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=options.trust_remote_code)
    except Exception as exc:
        remote = _needs_remote_code(exc, options)
        if remote:
            raise remote from exc
        if "model_type" in str(exc) or "does not recognize this architecture" in str(exc) or isinstance(exc, KeyError):
            raise ExportError(f"{options.source}: unsupported architecture (transformers does not know its "
                              "model_type); if the model ships its own code, read it and add "
                              "--trust-remote-code, else upgrade transformers") from exc
        raise ExportError(f"cannot read the model config in {path}: {str(exc).splitlines()[0]}") from exc


def _load(path: Path, options: ExportOptions) -> _Loaded:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    config = _load_config(path, options)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=options.trust_remote_code)
    except Exception as exc:
        raise _needs_remote_code(exc, options) or ExportError(
            f"cannot load the tokenizer from {path}: {str(exc).splitlines()[0]}") from exc
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise ExportError(f"{options.source}: the tokenizer has no fast (Rust) version, which Triton needs; "
                          "convert it with transformers' `convert_slow_tokenizer` and save tokenizer.json")
    architectures = [str(a) for a in getattr(config, "architectures", None) or ()]
    causal = any(a.endswith("ForCausalLM") for a in architectures)
    layout = None
    if causal:
        try:
            layout = causal_layouts.determine(options.layout, str(getattr(config, "model_type", "")), tokenizer,
                                              options.source)
        except causal_layouts.LayoutError as exc:
            raise ExportError(str(exc)) from exc
        if layout == causal_layouts.SENTENCE_TRANSFORMERS:
            return _load_cross_encoder(path, options, config)
    if architectures and not causal and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ExportError(f"{options.source}: a {architectures[0]}, not a cross-encoder (sequence "
                          "classification) or causal-LM reranker: it has no trained scoring head. Export a "
                          "reranker checkpoint, or train a head first (sentence-transformers CrossEncoder)")
    auto: Any = AutoModelForCausalLM if causal else AutoModelForSequenceClassification
    try:
        model, loading = auto.from_pretrained(path, trust_remote_code=options.trust_remote_code,
                                              attn_implementation="eager", output_loading_info=True)
    except ValueError as exc:
        raise _needs_remote_code(exc, options) or ExportError(
            f"{options.source}: not a sequence-pair (sequence classification) model, nor a causal LM reranker, "
            f"or an unsupported architecture: {str(exc).splitlines()[0]}") from exc
    if loading.get("missing_keys"):
        # A checkpoint without architectures can still lack the head; transformers would make one up.
        raise ExportError(f"{options.source}: the checkpoint lacks {', '.join(sorted(loading['missing_keys'])[:3])}"
                          " (its scoring head would be random): export a trained cross-encoder checkpoint")
    if not causal:
        return _Loaded(tokenizer, model.eval(), cross_encoder=_saved_cross_encoder(path, options))
    if layout == causal_layouts.MXBAI_RERANK_V2:  # its code scores by the first token of "1" and of "0"
        answers = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in causal_layouts.MXBAI_TOKENS]
        if any(not ids or ids[0] == tokenizer.unk_token_id for ids in answers):
            raise ExportError(f"{options.source}: the tokenizer has no token for '1' or '0', which mxbai-rerank-v2 "
                              "is scored by: not an mxbai-rerank-v2 checkpoint")
        return _Loaded(tokenizer, model.eval(), (int(answers[0][0]), int(answers[1][0])), layout=layout)
    if layout == causal_layouts.QWEN3_RERANKER:
        tokens = tuple(tokenizer.convert_tokens_to_ids(t) for t in causal_layouts.QWEN3_TOKENS)
        if any(t is None or t == tokenizer.unk_token_id for t in tokens):
            raise ExportError(f"{options.source}: the tokenizer lacks the 'yes' or 'no' token that Qwen3-Reranker "
                              "is scored by: not a Qwen3-Reranker checkpoint")
        return _Loaded(tokenizer, model.eval(), tuple(int(t) for t in tokens), framed=causal_layouts.QWEN3_FRAME,
                       layout=layout)
    ids = tokenizer(options.score_token, add_special_tokens=False)["input_ids"]
    if not ids or tokenizer.unk_token_id in ids:
        raise ExportError(f"{options.source}: the tokenizer has no token for {options.score_token!r}, whose logit "
                          "would be the score; name another with --score-token")
    return _Loaded(tokenizer, model.eval(), (int(ids[0]),), layout=layout)


def _saved_cross_encoder(path: Path, options: ExportOptions) -> Any:
    """sentence-transformers' CrossEncoder for a directory it saved (`config_sentence_transformers.json` says
    CrossEncoder): its max length, default prompt and activation are the model's settings, and it is the
    reference. None for a plain transformers checkpoint (scored as CrossEncoder scores those by default)."""
    import json

    try:
        saved = json.loads((path / "config_sentence_transformers.json").read_text())
    except (OSError, ValueError):
        return None
    if saved.get("model_type") != "CrossEncoder":
        return None
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(path), device="cpu", trust_remote_code=options.trust_remote_code,
                        max_length=options.max_length)


def _load_cross_encoder(path: Path, options: ExportOptions, config: Any) -> _Loaded:
    """A causal-LM reranker as sentence-transformers' CrossEncoder loads it (its model, its LogitScore tokens,
    its max length); the CrossEncoder itself is the reference."""
    from sentence_transformers import CrossEncoder

    try:
        encoder = CrossEncoder(str(path), device="cpu", trust_remote_code=options.trust_remote_code,
                               max_length=options.max_length, model_kwargs={"attn_implementation": "eager"})
    except Exception as exc:
        raise ExportError(f"{options.source}: sentence-transformers cannot load it as a CrossEncoder: "
                          f"{str(exc).splitlines()[0]}") from exc
    scorers = [m for m in encoder if type(m).__name__ == "LogitScore"]
    if len(scorers) != 1:
        raise ExportError(f"{options.source}: a causal-LM CrossEncoder without one LogitScore module")
    scorer = scorers[0]
    tokens = (int(scorer.true_token_id),) + (() if scorer.false_token_id is None else (int(scorer.false_token_id),))
    if getattr(encoder[0].tokenizer, "truncation_side", "right") != "right":
        raise ExportError(f"{options.source}: a left-truncating tokenizer with a chat template is not supported")
    limit = encoder.max_length
    positions = int(getattr(config, "max_position_embeddings", 0) or 0)
    if not limit or limit >= _UNSET_MAX_LENGTH or (positions and limit > positions):
        limit = positions or LLM_MAX_LENGTH
        encoder.max_length = limit
    layout = causal_layouts.chat_layout(encoder[0].tokenizer)
    assert layout is not None  # determine() checked it
    return _Loaded(encoder[0].tokenizer, encoder[0].model.eval(), tokens, chat=layout, cross_encoder=encoder,
                   layout=causal_layouts.SENTENCE_TRANSFORMERS)


def _resolve_engine(options: ExportOptions) -> str:
    """`--engine auto` with a named precision: the python-backend engine that runs it."""
    if options.engine != AUTO:
        return options.engine
    return EngineName.TORCH_PYTHON if options.precision in (Precision.BF16, Precision.FP16) else EngineName.ONNX_PYTHON


def _candidates(options: ExportOptions) -> list[precision.Candidate]:
    if options.exact_head not in EXACT_HEAD_CHOICES:
        raise ExportError(f"--exact-head is one of {', '.join(EXACT_HEAD_CHOICES)} (got {options.exact_head})")
    if options.precision != AUTO:
        name = _resolve_engine(options)
        engines.get(name, options.precision)  # refuses an unknown engine or an unsupported precision
        if options.exact_head == "on" and options.precision == Precision.FP32:
            raise ExportError("--exact-head on needs a reduced --precision (int8, bf16, fp16) or auto: fp32 is "
                              "exact already")
        return [precision.Candidate(name, options.precision, exact_head=options.exact_head == "on")]
    from crossrank.triton_models.host_cpu import cpu_flags

    try:
        return precision.candidates(options.engine, cpu_flags(), _cuda(), exact_head=options.exact_head != "off")
    except precision.PrecisionChoiceError as exc:
        raise ExportError(str(exc)) from exc


def export(options: ExportOptions, progress: Progress = progress_module.OFF) -> ExportReport:
    """Exports `options.source` into `options.repository` and returns what was checked; `progress` shows its
    long steps."""
    candidates = _candidates(options)
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
    with progress.step("loading the model"):
        loaded = _load(path, options)
    tokenizer, model = loaded.tokenizer, loaded.model
    settings = _settings(loaded, options)
    config = model.config
    num_labels = 1 if loaded.score_tokens is not None else int(config.num_labels)
    if loaded.layout == causal_layouts.BGE_GEMMA:
        labels: tuple[str, ...] = (options.score_token,)
    elif loaded.score_tokens is not None:  # the other layouts: the (true) token their code scores by
        labels = (str(tokenizer.convert_ids_to_tokens(loaded.score_tokens[0])),)
    else:
        labels = tuple(str(config.id2label.get(i, f"LABEL_{i}")) for i in range(num_labels))
    info = ModelInfo(
        name=options.name, task=Task.RERANK if num_labels == 1 else Task.CLASSIFY, labels=labels,
        activation=_cross_encoder_activation(loaded.cross_encoder) if loaded.cross_encoder is not None
        else _activation(config, num_labels), max_length=_sequence_limit(tokenizer, settings),
        engine=candidates[0].engine,
        precision=candidates[0].precision, source=options.source_label or options.source,
        max_batch_size=options.max_batch_size,
        default_instruction=settings.framed.instruction if settings.framed else "",
        accepts_instruction=settings.framed is not None or bool(settings.prompt and settings.prompt.instruction_format),
    )
    with tempfile.TemporaryDirectory(prefix="crossrank-export-") as scratch:
        work = Path(scratch)
        tokenizer_dir = work / "tokenizer"
        tokenizer_dir.mkdir()
        (tokenizer_dir / TOKENIZER_FILE).write_text(tokenizer.backend_tokenizer.to_str())
        settings.dump(tokenizer_dir / SETTINGS_FILE)
        pair_tokenizer = PairTokenizer.from_directory(tokenizer_dir)

        def reference(pairs: Sequence[tuple[str, str]]) -> np.ndarray:
            if loaded.cross_encoder is not None:
                return cross_encoder_logits(loaded.cross_encoder, pairs)
            return reference_logits(tokenizer, model, settings, pairs, loaded.score_tokens)

        if loaded.cross_encoder is not None:
            try:
                same_tokens_as(loaded.cross_encoder, pair_tokenizer)
            except TokenMismatchError as exc:
                raise ExportError(f"{options.source}: {exc}") from exc

        encoders: dict[tuple[str, str], engines.BuiltEncoder] = {}

        def build(candidate: precision.Candidate) -> engines.BuiltEncoder:
            """The encoder of `candidate`'s engine and precision, built once (the exact head reuses them)."""
            key = (candidate.engine, candidate.precision)
            if key in encoders:
                return encoders[key]
            logger.info("exporting the encoder (%s %s)", candidate.engine, candidate.precision)
            chosen = replace(options, engine=candidate.engine, precision=candidate.precision)
            try:
                encoders[key] = engines.get(candidate.engine, candidate.precision).build(
                    model, settings.model_input_names, num_labels, settings,
                    work / f"encoder-{candidate.engine}-{candidate.precision}", chosen, loaded.score_tokens,
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
            built, info, agreement, exact, head = _choose(candidates, build, reference, pair_tokenizer, info,
                                                          progress)
        else:
            with progress.step(f"building the encoder ({candidates[0]})"):
                built, agreement = build(candidates[0]), None
                if candidates[0].exact_head:
                    exact = build(precision.Candidate(candidates[0].engine, Precision.FP32))
                    head = _head_bound(built, exact, pair_tokenizer)
        reduced = (built.checked_precision or info.precision) != Precision.FP32
        if built.checked_precision and built.checked_precision != info.precision:
            logger.warning("%s: export checked the encoder in %s; %s scores are measured only where the engine "
                           "runs (see docs/models.md, engines)", info.name, built.checked_precision, info.precision)
        with progress.step("parity with PyTorch"):
            diff, checked = _check_parity(reference, pair_tokenizer, built,
                                          float("inf") if reduced else options.tolerance)
        logger.info("parity: largest logit difference %.2e over %d pairs%s", diff, checked,
                    "" if reduced else f" (limit {options.tolerance:.0e})")
        if exact is not None:
            progress.plan(1)
            with progress.step("parity of the exact head's fp32 encoder"):
                exact_diff, _ = _check_parity(reference, pair_tokenizer, exact, options.tolerance)
            logger.info("exact head: fp32 encoder parity %.2e (limit %.0e)", exact_diff, options.tolerance)
        if reduced and agreement is None:
            progress.plan(1)
            with progress.step(f"{info.precision} ranking against fp32"):
                agreement = (_check_agreement(reference, pair_tokenizer, built, info) if exact is None or head is None
                             else _check_head_agreement(reference, pair_tokenizer, built, exact, head.delta, info))
        if options.tokens_per_batch:
            built = tuning.with_width(built, options.tokens_per_batch)
        elif built.batcher is not None:  # python-backend engines; native ones batch inside Triton's backend
            # ONNX Runtime in the python backend runs on the CPU even on a GPU host.
            on_gpu = info.engine == EngineName.TORCH_PYTHON and _cuda()
            widths = precision.GPU_WIDTHS if on_gpu else precision.CPU_WIDTHS
            progress.plan(len(widths))
            built, rates = tuning.tune_width(built, tuning.timing_feeds(pair_tokenizer), widths, progress.step)
            logger.info("sub-batch width: %s tokens (pairs/s by width: %s)", built.spec.parameters["tokens_per_batch"],
                        ", ".join(f"{w}: {r:.0f}" for w, r in rates.items()))

        if exact is not None and head is not None:
            # the fp32 encoder takes the fast one's sub-batch width: it scores a request's head, a few pairs
            if "tokens_per_batch" in built.spec.parameters:
                exact = tuning.with_width(exact, int(built.spec.parameters["tokens_per_batch"]))
            # measured again as served (a dynamic-int8 sub-batch is quantized with its neighbours); the larger kept
            served = _head_bound(built, exact, pair_tokenizer)
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


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _choose(candidates: list[precision.Candidate], build: Callable[[precision.Candidate], engines.BuiltEncoder],
            reference: Reference, pair_tokenizer: PairTokenizer, info: ModelInfo,
            progress: Progress = progress_module.OFF
            ) -> tuple[engines.BuiltEncoder, ModelInfo, Agreement | None, engines.BuiltEncoder | None,
                       head_rescoring.HeadBound | None]:
    """`--precision auto`: builds every candidate, times it as a rerank of 1 query x 100 passages with top_n
    10, and keeps the fastest that ranks like fp32 (`precision.Trial.agrees`). Returns the encoder, the
    model's facts, the served ranking's agreement, and for the exact head its fp32 encoder and bound."""
    feeds = head_rescoring.timing_feeds(pair_tokenizer)
    fp32 = next(c for c in candidates if c.precision == Precision.FP32)  # the reference, measured first
    trials: list[precision.Trial] = []
    bounds: dict[precision.Candidate, head_rescoring.HeadBound] = {}
    for candidate in candidates:
        with progress.step(f"measuring {candidate}"):
            built = build(candidate)
            if not trials:  # timed within a budget: a large model times fewer pairs (2 passes per candidate)
                feeds = tuning.within_budget(built.score, feeds, 2 * len(candidates))
            candidate_info = replace(info, engine=candidate.engine, precision=candidate.precision)
            exact = build(fp32) if candidate.exact_head else None
            if exact is not None:
                bounds[candidate] = _head_bound(built, exact, pair_tokenizer)
                agreement: Agreement | None = _check_head_agreement(
                    reference, pair_tokenizer, built, exact, bounds[candidate].delta, candidate_info)
            else:
                agreement = (None if candidate.precision == Precision.FP32
                             else _check_agreement(reference, pair_tokenizer, built, candidate_info, warn=False))
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


def _head_bound(fast: engines.BuiltEncoder, exact: engines.BuiltEncoder,
                pair_tokenizer: PairTokenizer) -> head_rescoring.HeadBound:
    """The exact head's delta, over the ranking lists and the sample pairs parity scores."""
    samples = sample_pairs()
    lengths = pair_tokenizer.encode([q for q, _ in samples], [d for _, d in samples]).tensors["attention_mask"]
    kept = parity_selection(lengths.sum(axis=1).tolist())
    feeds = head_rescoring.bound_feeds(pair_tokenizer, [samples[i] for i in kept])
    found = head_rescoring.bound(fast.score, exact.score, feeds)
    logger.info("exact head: %s", found.summary())
    return found


def _check_head_agreement(reference: Reference, pair_tokenizer: PairTokenizer, fast: engines.BuiltEncoder,
                          exact: engines.BuiltEncoder, delta: float, info: ModelInfo) -> Agreement:
    """The served ranking's agreement with fp32 when the exact head re-scores the top 10 of each list."""
    from crossrank.activation import apply

    def served(pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        feed = pair_tokenizer.encode([a for a, _ in pairs], [b for _, b in pairs]).tensors
        logits, _ = head_rescoring.rerank(fast.score, exact.score, feed, head_rescoring.TIMING_TOP_N, delta)
        return apply(info.activation, logits.astype(np.float32)[:, None])[:, 0]

    result = agreement_module.measure(lambda pairs: apply(info.activation, reference(pairs))[:, 0], served)
    logger.info("%s with the exact head against fp32: %s", info.precision, result.summary())
    return result


def _cross_encoder_activation(encoder: Any) -> Activation:
    name = type(encoder.activation_fn).__name__.lower()
    for activation in Activation:
        if name == activation.value:
            return activation
    logger.warning("the CrossEncoder's activation %s is not one crossrank knows; serving sigmoid by default", name)
    return Activation.SIGMOID


def _settings(loaded: _Loaded, options: ExportOptions) -> TokenizerSettings:
    tokenizer, model = loaded.tokenizer, loaded.model
    if loaded.framed is not None:
        return TokenizerSettings(
            max_length=options.max_length or causal_layouts.QWEN3_MAX_LENGTH,
            pad_token_id=int(tokenizer.pad_token_id or 0), model_input_names=("input_ids", "attention_mask"),
            padding_side="right", framed=loaded.framed)
    if loaded.layout == causal_layouts.MXBAI_RERANK_V2:
        max_length = _mxbai_max_length(tokenizer, options.max_length or causal_layouts.MXBAI_MAX_LENGTH)
        return TokenizerSettings(
            max_length=max_length, pad_token_id=int(tokenizer.pad_token_id or 0),
            model_input_names=("input_ids", "attention_mask"), padding_side="right",
            prompt=causal_layouts.mxbai_template(max_length))
    if loaded.chat is not None:
        return TokenizerSettings(
            max_length=int(loaded.cross_encoder.max_length), pad_token_id=int(tokenizer.pad_token_id or 0),
            model_input_names=("input_ids", "attention_mask"), padding_side="right", chat=loaded.chat)
    if loaded.score_tokens is not None:
        max_length = options.max_length or LLM_MAX_LENGTH
        bos = tokenizer.bos_token_id
        return TokenizerSettings(
            max_length=max_length, pad_token_id=int(tokenizer.pad_token_id or 0),
            model_input_names=("input_ids", "attention_mask"),
            truncation_side=str(getattr(tokenizer, "truncation_side", "right")),
            padding_side="right",  # positions must match the unpadded pair; the score is read at its end
            prompt=PromptTemplate(bos_token_id=None if bos is None else int(bos),
                                  query_max_length=max_length * 3 // 4,
                                  prompt=options.prompt or DEFAULT_LLM_PROMPT))
    encoder = loaded.cross_encoder
    prefix = str(encoder.prompts.get(encoder.default_prompt_name, "")) if encoder is not None \
        and encoder.default_prompt_name else ""
    # Inputs follow the model: a tokenizer may produce token_type_ids that the model has no use for.
    # A forward that names no inputs at all (custom code wrapping another model with *args, **kwargs) takes
    # whatever the tokenizer gives.
    parameters = inspect.signature(model.forward).parameters
    opaque = "input_ids" not in parameters and any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    input_names = tuple(n for n in ENCODER_INPUTS if n in tokenizer.model_input_names
                        and (opaque or n in parameters))
    return TokenizerSettings(
        max_length=_max_length(tokenizer, model.config, options.max_length or (
            int(encoder.max_length) if encoder is not None and encoder.max_length else None)),
        text_prefix=prefix,
        pad_token_id=int(tokenizer.pad_token_id or 0),
        model_input_names=input_names,
        truncation_side=str(getattr(tokenizer, "truncation_side", "right")),
        padding_side=str(getattr(tokenizer, "padding_side", "right")),
    )


def _mxbai_max_length(tokenizer: Any, requested: int) -> int:
    """As mxbai-rerank-v2's code: the max length, lowered where it and the template's fixed tokens (prefix, task
    prompt, suffix, separator) would exceed the tokenizer's `model_max_length`."""
    fixed = sum(len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in (
        causal_layouts.MXBAI_PREFIX, causal_layouts.MXBAI_TASK_PROMPT, causal_layouts.MXBAI_SUFFIX, "\n"))
    limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
    return requested if not 0 < limit < _UNSET_MAX_LENGTH or requested + fixed <= limit else limit - fixed


def _sequence_limit(tokenizer: Any, settings: TokenizerSettings) -> int:
    """The most tokens a pair can take into the encoder: the max length, plus a causal-LM prompt."""
    if settings.prompt is None:
        return settings.max_length
    template = settings.prompt
    fixed = [tokenizer(text, add_special_tokens=False)["input_ids"]
             for text in (template.separator, template.prompt, template.prefix, template.suffix)]
    return settings.max_length + sum(len(ids) for ids in fixed)


Reference = Callable[[Sequence[tuple[str, str]]], np.ndarray]


def _check_agreement(reference: Reference, pair_tokenizer: PairTokenizer, built: engines.BuiltEncoder,
                     info: ModelInfo, warn: bool = True) -> Agreement:
    from crossrank.activation import apply

    def exported(pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        batch = pair_tokenizer.encode([a for a, _ in pairs], [b for _, b in pairs])
        return apply(info.activation, built.score(batch.tensors))[:, 0]

    logger.info("%s: measuring ranking agreement with fp32", info.precision)
    result = agreement_module.measure(lambda pairs: apply(info.activation, reference(pairs))[:, 0], exported)
    logger.info("%s against fp32: %s", info.precision, result.summary())
    if warn and result.spearman < agreement_module.WARN_BELOW_SPEARMAN:
        logger.warning("!!! %s export of %s ranks unlike fp32: Spearman %.4f < %.2f. Scores from this model "
                       "will reorder results; prefer fp32 for it. !!!", info.precision, info.name,
                       result.spearman, agreement_module.WARN_BELOW_SPEARMAN)
    return result


def parity_selection(lengths: Sequence[int], budget: int = PARITY_TOKENS) -> list[int]:
    """Indices of the sample pairs parity scores: the longest always (truncation stays in the check), and the
    others shortest first while they hold at most `budget` tokens together."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    kept, spent = [order[-1]], 0
    for i in order[:-1]:
        if spent + lengths[i] > budget:
            break
        kept.append(i)
        spent += lengths[i]
    return sorted(kept)


def _check_parity(reference: Reference, pair_tokenizer: PairTokenizer, built: engines.BuiltEncoder,
                  tolerance: float) -> tuple[float, int]:
    samples = sample_pairs()
    batch = pair_tokenizer.encode([q for q, _ in samples], [d for _, d in samples])
    kept = parity_selection(batch.tensors["attention_mask"].sum(axis=1).tolist())
    pairs = [samples[i] for i in kept]
    left_out = "" if len(kept) == len(samples) else (
        f" ({len(samples) - len(kept)} long ones left out: the longest kept, the others within "
        f"{PARITY_TOKENS:,} tokens)")
    logger.info("parity: scoring %d sample pairs%s with PyTorch, then with the exported model", len(pairs), left_out)
    expected = reference(pairs)
    # the rows of the pairs kept (the longest among them: the padded width stays the same)
    exported = built.score({name: rows[kept] for name, rows in batch.tensors.items()})
    diff = float(np.max(np.abs(exported - expected)))
    if not diff <= tolerance:
        raise ExportError(f"the exported model differs from PyTorch by {diff:.2e} (limit {tolerance:.0e}); "
                          "nothing was written")
    return diff, len(pairs)
