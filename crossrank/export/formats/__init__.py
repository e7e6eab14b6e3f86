"""The registry of model formats: every kind of checkpoint crossrank exports is one module here.

`FORMATS` lists them in the order `--layout auto` tries them; the first that recognises a checkpoint reads it.
Export, the CLI's `--layout` choices and the docs read this list; inside Triton, the tokenizer and encoder
models read what a format recorded (its tokenization rule in `crossrank_tokenizer.json`, its score reading in
the encoder's config), since the code there imports nothing of crossrank.

Adding a format: one module with a `Format` subclass (see `base.py` for what it answers) and its `FORMAT`,
listed below; docs/architecture.md says how.
"""

from __future__ import annotations

from typing import Any

from crossrank.export.formats import (
    bge_gemma,
    jina_bert,
    minicpm_layerwise,
    mxbai_rerank_v2,
    qwen3_reranker,
    refused,
    sentence_transformers_llm,
    sequence_classifier,
)
from crossrank.export.formats.base import Checkpoint, Format, Prepared, ScoreReading
from crossrank.export.formats.sentence_transformers_llm import chat_layout
from crossrank.triton_contract import AUTO

__all__ = ["AUTO", "FORMATS", "LAYOUTS", "Checkpoint", "Format", "LayoutError", "Prepared", "ScoreReading",
           "chat_layout", "choose", "determine", "get"]

FORMATS: tuple[Format, ...] = (
    refused.FORMAT,  # first: what it recognises is refused whatever else would read it
    minicpm_layerwise.FORMAT,
    sentence_transformers_llm.FORMAT,
    bge_gemma.FORMAT,
    qwen3_reranker.FORMAT,
    mxbai_rerank_v2.FORMAT,
    jina_bert.FORMAT,
    sequence_classifier.FORMAT,
)
LAYOUTS = (AUTO, *(f.name for f in FORMATS if f is not refused.FORMAT))


class LayoutError(ValueError):
    """The format cannot be told or cannot read the checkpoint; the message says what to do."""


def get(name: str) -> Format:
    for candidate in FORMATS:
        if candidate.name == name and candidate is not refused.FORMAT:
            return candidate
    raise LayoutError(f"--layout must be one of {', '.join(LAYOUTS)}, got {name!r}")


def choose(requested: str, checkpoint: Checkpoint) -> Format:
    """The format of `checkpoint`: the one requested, else the first that recognises it."""
    if refused.FORMAT.recognises(checkpoint):
        return refused.FORMAT
    if requested != AUTO:
        chosen = get(requested)
        if chosen.causal != checkpoint.causal:
            kind = "a causal LM" if checkpoint.causal else "not a causal LM"
            raise LayoutError(f"{checkpoint.source}: {kind}, which the {chosen.name} format does not read")
        refusal = chosen.refusal(checkpoint)
        if refusal:
            raise LayoutError(refusal)
        return chosen
    for candidate in FORMATS:
        if candidate.told and candidate.recognises(checkpoint):
            return candidate
    named = [f"--layout {f.name}" for f in FORMATS if f.causal and f.name != sentence_transformers_llm.FORMAT.name]
    assert named
    raise LayoutError(f"{checkpoint.source}: a causal LM ({checkpoint.model_type or 'unknown type'}) whose pair "
                      "layout export cannot tell (its chat template renders no 'query' and 'document' roles): name "
                      f"it with {', '.join(named[:-1])} or {named[-1]}, or give the model a sentence-transformers "
                      "chat template")


def determine(requested: str, model_type: str, tokenizer: Any, source: str) -> str:
    """The name of a causal-LM checkpoint's format, from its model type and tokenizer alone."""
    from types import SimpleNamespace

    config = SimpleNamespace(model_type=model_type, architectures=["ForCausalLM"])
    options = SimpleNamespace(source=source)
    return choose(requested, Checkpoint(path=None, config=config, tokenizer=tokenizer,  # type: ignore[arg-type]
                                        options=options)).name  # type: ignore[arg-type]
