"""Format `sequence-classification`: a Hugging Face `*ForSequenceClassification` cross-encoder (BERT, ELECTRA,
RoBERTa, DeBERTa, ModernBERT, ... and custom code behind `AutoModelForSequenceClassification`).

- Recognised: any checkpoint that is not a causal LM (a checkpoint with another head is refused: it has no
  trained scoring head).
- Tokens: the tokenizer's own pair template, longest-first truncation to the max length (`pair` rule); a
  sentence-transformers CrossEncoder's default prompt before the first text. A request that forbids
  truncation refuses a pair longer than the max length.
- Score: the classifier's logits; labels from `id2label`; activation as sentence-transformers chooses it (the
  config's or the saved CrossEncoder's, else sigmoid for one logit, softmax for several). No instruction slot.
- Reference: sentence-transformers' `CrossEncoder.predict` on a directory it saved, else the model's
  tokenizer on (query, passage) with longest-first truncation, as CrossEncoder scores a plain checkpoint.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from crossrank.export import reference
from crossrank.export.formats.base import (
    Checkpoint,
    Format,
    Prepared,
    ScoreReading,
    config_activation,
    load_pretrained,
    model_max_length,
    module_activation,
)
from crossrank.export.options import ExportError
from crossrank.triton_models.pair_tokenizer import TokenizerSettings

ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class SequenceClassifier(Format):
    name = "sequence-classification"
    summary = "a *ForSequenceClassification cross-encoder: the model's pair template, its classifier's logits"

    def recognises(self, checkpoint: Checkpoint) -> bool:
        return not checkpoint.causal

    def refusal(self, checkpoint: Checkpoint) -> str | None:
        if checkpoint.causal:
            return f"{checkpoint.source}: a causal LM, not a sequence classifier"
        return None

    def load_model(self, checkpoint: Checkpoint) -> Any:
        from transformers import AutoModelForSequenceClassification

        architectures = checkpoint.architectures
        if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
            raise ExportError(f"{checkpoint.source}: a {architectures[0]}, not a cross-encoder (sequence "
                              "classification) or causal-LM reranker: it has no trained scoring head. Export a "
                              "reranker checkpoint, or train a head first (sentence-transformers CrossEncoder)")
        return load_pretrained(AutoModelForSequenceClassification, checkpoint, attn_implementation="eager")

    def default_max_length(self, checkpoint: Checkpoint, model: Any, requested: int | None) -> int:
        return model_max_length(checkpoint.tokenizer, model.config, requested)

    def prepare(self, checkpoint: Checkpoint) -> Prepared:
        options, tokenizer = checkpoint.options, checkpoint.tokenizer
        model = self.load_model(checkpoint)
        encoder = saved_cross_encoder(checkpoint)
        prefix = str(encoder.prompts.get(encoder.default_prompt_name, "")) if encoder is not None \
            and encoder.default_prompt_name else ""
        requested = options.max_length or (int(encoder.max_length) if encoder is not None and encoder.max_length
                                           else None)
        settings = TokenizerSettings(
            max_length=self.default_max_length(checkpoint, model, requested),
            text_prefix=prefix,
            pad_token_id=int(tokenizer.pad_token_id or 0),
            model_input_names=input_names(model, tokenizer),
            truncation_side=str(getattr(tokenizer, "truncation_side", "right")),
            padding_side=str(getattr(tokenizer, "padding_side", "right")),
        )
        config = model.config
        num_labels = int(config.num_labels)
        if encoder is not None:
            def scorer(pairs: Any) -> Any:
                return reference.cross_encoder_logits(encoder, pairs)
        else:
            def scorer(pairs: Any) -> Any:
                return reference.reference_logits(tokenizer, model, settings, pairs)
        return Prepared(
            model=model, settings=settings, score=ScoreReading(),
            labels=tuple(str(config.id2label.get(i, f"LABEL_{i}")) for i in range(num_labels)),
            activation=module_activation(encoder.activation_fn) if encoder is not None
            else config_activation(config, num_labels),
            reference=scorer, max_length=settings.max_length,
            check_tokens=None if encoder is None else (lambda ours: reference.same_tokens_as(encoder, ours)))


def input_names(model: Any, tokenizer: Any) -> tuple[str, ...]:
    """The encoder's inputs: what the tokenizer gives and the model takes (a tokenizer may produce
    token_type_ids that the model has no use for). A forward that names no inputs at all (custom code wrapping
    another model with *args, **kwargs) takes whatever the tokenizer gives."""
    parameters = inspect.signature(model.forward).parameters
    opaque = "input_ids" not in parameters and any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    return tuple(n for n in ENCODER_INPUTS if n in tokenizer.model_input_names and (opaque or n in parameters))


def saved_cross_encoder(checkpoint: Checkpoint) -> Any:
    """sentence-transformers' CrossEncoder for a directory it saved (`config_sentence_transformers.json` says
    CrossEncoder): its max length, default prompt and activation are the model's settings, and it is the
    reference. None for a plain transformers checkpoint (scored as CrossEncoder scores those by default)."""
    try:
        saved = json.loads((checkpoint.path / "config_sentence_transformers.json").read_text())
    except (OSError, ValueError):
        return None
    if saved.get("model_type") != "CrossEncoder":
        return None
    from sentence_transformers import CrossEncoder

    options = checkpoint.options
    return CrossEncoder(str(checkpoint.path), device="cpu", trust_remote_code=options.trust_remote_code,
                        max_length=options.max_length)


FORMAT = SequenceClassifier()
