"""What a model format is (`Format`), what it reads (`Checkpoint`) and what it gives export (`Prepared`), and
the helpers several formats share.

A format answers, for one kind of checkpoint: how it is recognised (or that it must be named with
`--layout`), how a pair becomes tokens (its `TokenizerSettings`, which name the tokenization rule of
`triton_models/pair_tokenizer.py` that runs inside Triton: template, truncation, what a request that forbids
truncation refuses, the suffix restored), how the score is read (`ScoreReading`: classifier logits, a score
token's logit or a true-minus-false difference, a chosen layer's head), its labels and default activation, its
instruction slot, and its reference scorer (the publisher's code path that export checks parity against).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.export.options import ExportError, ExportOptions
from crossrank.model_info import Activation
from crossrank.triton_models.pair_tokenizer import PairTokenizer, TokenizerSettings
from crossrank.triton_models.score_reading import ScoreReading

__all__ = ["Checkpoint", "Format", "Prepared", "Reference", "ScoreReading"]

logger = logging.getLogger(__name__)

# transformers reports an unset model_max_length as a huge sentinel; anything above this is "unset".
UNSET_MAX_LENGTH = 1_000_000
# Causal-LM rerankers: pair tokens (before the prompt) unless --max-length says otherwise, as in the
# bge-reranker-v2-gemma model card's code.
LLM_MAX_LENGTH = 1024

Reference = Callable[[Sequence[tuple[str, str]]], np.ndarray]


@dataclass(frozen=True)
class Checkpoint:
    """What export reads before it knows the format: the directory, its config and its fast tokenizer."""

    path: Path
    config: Any
    tokenizer: Any
    options: ExportOptions

    @property
    def architectures(self) -> tuple[str, ...]:
        return tuple(str(a) for a in getattr(self.config, "architectures", None) or ())

    @property
    def causal(self) -> bool:
        return any(a.endswith("ForCausalLM") for a in self.architectures)

    @property
    def model_type(self) -> str:
        return str(getattr(self.config, "model_type", "") or "")

    @property
    def source(self) -> str:
        return self.options.source


@dataclass(frozen=True)
class Prepared:
    """A checkpoint as its format reads it: everything export needs to build, check and describe it."""

    model: Any  # the fp32 PyTorch model in eval mode, as the format's scoring module wraps it
    settings: TokenizerSettings
    score: ScoreReading
    labels: tuple[str, ...]
    activation: Activation
    reference: Reference  # pairs -> fp32 logits [n, labels], by the publisher's code path
    max_length: int  # the most tokens a pair takes into the encoder (a causal LM's fixed prompt included)
    instruction: str = ""  # the default instruction, where the format has an instruction slot
    accepts_instruction: bool = False
    # Checks crossrank's tokenizer against the reference's own input ids, where the reference tokenizes
    # through a library export can ask (sentence-transformers); raises reference.TokenMismatchError on a
    # difference.
    check_tokens: Callable[[PairTokenizer], None] | None = field(default=None)


class Format:
    """One model format. Subclasses set `name` and implement `prepare`, and `recognises` where `told`."""

    name: str = ""
    causal: bool = False  # reads *ForCausalLM checkpoints (the others: sequence classifiers and custom code)
    # Told from the checkpoint's files under `--layout auto`; False: only ever named (a raw checkpoint of
    # this format looks like any other of its architecture).
    told: bool = True
    summary: str = ""  # one line for `--layout`'s help and the docs

    def recognises(self, checkpoint: Checkpoint) -> bool:
        if self.told:
            raise NotImplementedError
        return False  # only ever named

    def refusal(self, checkpoint: Checkpoint) -> str | None:
        """Why this format, named with --layout, cannot read `checkpoint` (None: it can)."""
        return None

    def prepare(self, checkpoint: Checkpoint) -> Prepared:
        raise NotImplementedError


def needs_remote_code(exc: Exception, options: ExportOptions) -> ExportError | None:
    if not options.trust_remote_code and "trust_remote_code" in str(exc):
        return ExportError(f"{options.source} ships its own model code: read it, then export again with "
                           "--trust-remote-code")
    return None


def load_pretrained(auto: Any, checkpoint: Checkpoint, **kwargs: Any) -> Any:
    """`auto.from_pretrained` in fp32, eval mode, refusing a checkpoint that lacks weights (a head made up)."""
    options = checkpoint.options
    try:
        model, loading = auto.from_pretrained(checkpoint.path, trust_remote_code=options.trust_remote_code,
                                              output_loading_info=True, **kwargs)
    except ValueError as exc:
        raise needs_remote_code(exc, options) or ExportError(
            f"{options.source}: not a sequence-pair (sequence classification) model, nor a causal LM reranker, "
            f"or an unsupported architecture: {str(exc).splitlines()[0]}") from exc
    if loading.get("missing_keys"):
        # A checkpoint without architectures can still lack the head; transformers would make one up.
        raise ExportError(f"{options.source}: the checkpoint lacks {', '.join(sorted(loading['missing_keys'])[:3])}"
                          " (its scoring head would be random): export a trained cross-encoder checkpoint")
    return model.eval()


def config_activation(config: object, num_labels: int) -> Activation:
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


def module_activation(module: Any) -> Activation:
    """A sentence-transformers CrossEncoder's activation module as crossrank names it."""
    name = type(module).__name__.lower()
    for activation in Activation:
        if name == activation.value:
            return activation
    logger.warning("the CrossEncoder's activation %s is not one crossrank knows; serving sigmoid by default", name)
    return Activation.SIGMOID


def model_max_length(tokenizer: object, config: object, requested: int | None) -> int:
    """The max length of a pair: the one requested, else the tokenizer's, else the position table's."""
    if requested is not None:
        return requested
    length = int(getattr(tokenizer, "model_max_length", UNSET_MAX_LENGTH))
    if length < UNSET_MAX_LENGTH:
        return length
    positions = int(getattr(config, "max_position_embeddings", 512))
    # RoBERTa-style models reserve positions for the padding offset.
    if getattr(config, "model_type", "") in {"roberta", "xlm-roberta"}:
        return positions - (int(getattr(config, "pad_token_id", 0) or 0) + 1)
    return positions


def token_ids(checkpoint: Checkpoint, texts: Sequence[str], what: str) -> tuple[int, ...]:
    """The first token of each text (a causal LM's score tokens), refusing a tokenizer that has none."""
    tokenizer = checkpoint.tokenizer
    out = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids or ids[0] == tokenizer.unk_token_id:
            raise ExportError(f"{checkpoint.source}: the tokenizer has no token for {text!r}, {what}")
        out.append(int(ids[0]))
    return tuple(out)


def causal_labels(checkpoint: Checkpoint, tokens: Sequence[int]) -> tuple[str, ...]:
    """A causal-LM reranker's one label: the (true) token its code scores by."""
    return (str(checkpoint.tokenizer.convert_ids_to_tokens(tokens[0])),)
