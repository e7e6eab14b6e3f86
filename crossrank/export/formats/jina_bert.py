"""Format `jina-bert`: JinaBERT rerankers (jinaai/jina-reranker-v1-tiny-en, -turbo-en): a BERT with ALiBi attention
biases in place of position embeddings and a gated (GLU) feed-forward, shipped as remote code
(`JinaBertForSequenceClassification`, loaded with `trust_remote_code`).

- Recognised: a sequence classifier whose config says `position_embedding_type: alibi` or whose architecture
  or `auto_map` names JinaBert. Without `--trust-remote-code` it is refused by name: transformers would
  otherwise load the config as a plain BERT and the weights without their code.
- Tokens, score, labels, activation, reference: as `sequence-classification` (the BERT pair template,
  longest-first truncation, the classifier's logit, sigmoid; the reference is the model's own remote code
  through `AutoModelForSequenceClassification`). The max length is the model's configured one (its
  tokenizer's, else `max_position_embeddings`): ALiBi has no position table that would end at 512.
- Export: the remote code precomputes an ALiBi table of max_length² per head at load (8192² x heads in
  float32 for the published models) and slices it per call; the loaded model is set to build the table for
  each call's length instead (the same values), so that the ONNX graph computes it rather than carrying it.
"""

from __future__ import annotations

from typing import Any

from crossrank.export.formats.base import Checkpoint
from crossrank.export.formats.sequence_classifier import SequenceClassifier
from crossrank.export.options import ExportError


def _names_jina(checkpoint: Checkpoint) -> bool:
    auto_map = getattr(checkpoint.config, "auto_map", None) or {}
    names = [*checkpoint.architectures, *(str(v) for v in auto_map.values())]
    return any("JinaBert" in name for name in names)


class JinaBert(SequenceClassifier):
    name = "jina-bert"
    summary = "JinaBERT (jina-reranker-v1): ALiBi attention and a gated feed-forward, its own remote code"

    def recognises(self, checkpoint: Checkpoint) -> bool:
        return not checkpoint.causal and (
            getattr(checkpoint.config, "position_embedding_type", None) == "alibi" or _names_jina(checkpoint))

    def refusal(self, checkpoint: Checkpoint) -> str | None:
        return None if self.recognises(checkpoint) else f"{checkpoint.source}: not a JinaBERT checkpoint"

    def load_model(self, checkpoint: Checkpoint) -> Any:
        if not checkpoint.options.trust_remote_code:
            raise ExportError(f"{checkpoint.source}: a JinaBERT model (ALiBi attention, gated feed-forward), whose "
                              "architecture is the Python code shipped with it: read it, then export again with "
                              "--trust-remote-code")
        model = super().load_model(checkpoint)
        _alibi_per_call(model)
        return model


def _alibi_per_call(model: Any) -> None:
    """Makes the encoder build its ALiBi table for each call's length (as its code does past the table's end)
    rather than slice the one it made at load for the max length."""
    encoder = getattr(getattr(model, "bert", None), "encoder", None)
    if encoder is None or not hasattr(encoder, "_current_alibi_size") or not hasattr(encoder, "alibi"):
        return  # code of another shape: left as it is (ONNX then carries its table)
    import torch

    encoder.alibi = torch.zeros((1, 1, 0, 0), dtype=encoder.alibi.dtype)  # the load-time table, freed
    forward = encoder.forward

    def rebuilt_each_call(*args: Any, **kwargs: Any) -> Any:
        encoder._current_alibi_size = 0  # below any length: the code rebuilds the table for this one
        return forward(*args, **kwargs)

    encoder.forward = rebuilt_each_call


FORMAT = JinaBert()
