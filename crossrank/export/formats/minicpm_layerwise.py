"""Format `minicpm-layerwise`: BAAI bge-reranker-v2-minicpm-layerwise as FlagEmbedding's
`LayerWiseFlagLLMReranker.compute_score` scores it: a MiniCPM causal LM (its own remote code,
`LayerWiseMiniCPMForCausalLM`) with a one-output scoring head on each layer from `start_layer` up.

- Recognised: a causal LM whose architecture is `LayerWise...ForCausalLM`; it needs `--trust-remote-code`.
- Tokens: `<s> "A: query" "\\n" "B: passage" "\\n" prompt` (`--prompt`, default the reranker's), the query cut to
  3/4 of the max length (default 512, as FlagEmbedding's), the passage to the max length, then the passage
  side cut so that the pair holds at most the max length plus the separator's and prompt's tokens
  (FlagEmbedding's `encode_max_length`; `prompt` rule). A request that forbids truncation refuses a cut pair.
- Score: the head of the layer chosen at export (`--cutoff-layer`, default the model card's 28) at the pair's
  last token; the model's forward stops after that layer, so the layers above are never computed. One label,
  sigmoid (FlagEmbedding's `normalize=True`). No instruction slot.
- Reference: `compute_score`'s steps through the model's own code (`cutoff_layers=[layer]`), one pair at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from crossrank.export.formats.base import Checkpoint, Format, Prepared, ScoreReading, load_pretrained
from crossrank.export.formats.bge_gemma import prompt_input_ids, sequence_limit
from crossrank.export.options import ExportError
from crossrank.model_info import Activation
from crossrank.triton_models.pair_tokenizer import DEFAULT_LLM_PROMPT, PromptTemplate, TokenizerSettings

DEFAULT_CUTOFF_LAYER = 28  # the model card's `cutoff_layers=[28]`
MAX_LENGTH = 512  # LayerWiseFlagLLMReranker's default max_length


def layerwise_logits(tokenizer: Any, model: Any, layer: int, settings: TokenizerSettings,
                     pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Scores [n, 1] of the pairs laid out as `compute_score` lays them out, one pair at a time (no padding):
    the model's `cutoff_layers=[layer]` logits at the last position."""
    import torch

    rows = []
    with torch.no_grad():
        for query, passage in pairs:
            ids = torch.tensor([prompt_input_ids(tokenizer, settings, query, passage)])
            output = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True,
                           use_cache=False, cutoff_layers=[layer])
            rows.append(float(output.logits[0][0, -1]))
    return np.array(rows, dtype=np.float32).reshape(-1, 1)


class MiniCPMLayerwise(Format):
    name = "minicpm-layerwise"
    causal = True
    summary = "bge-reranker-v2-minicpm-layerwise: FlagEmbedding's layerwise reranker, scored at --cutoff-layer"

    def recognises(self, checkpoint: Checkpoint) -> bool:
        return checkpoint.causal and any(a.startswith("LayerWise") for a in checkpoint.architectures)

    def refusal(self, checkpoint: Checkpoint) -> str | None:
        return None if self.recognises(checkpoint) else f"{checkpoint.source}: not a layerwise reranker checkpoint"

    def prepare(self, checkpoint: Checkpoint) -> Prepared:
        from transformers import AutoModelForCausalLM

        options, config, tokenizer = checkpoint.options, checkpoint.config, checkpoint.tokenizer
        if not options.trust_remote_code:
            raise ExportError(f"{options.source}: a layerwise reranker (MiniCPM with a scoring head per layer), whose "
                              "architecture is the Python code shipped with it: read it, then export again with "
                              "--trust-remote-code")
        start, top = int(getattr(config, "start_layer", 0) or 0), int(config.num_hidden_layers)
        layer = options.cutoff_layer if options.cutoff_layer is not None else DEFAULT_CUTOFF_LAYER
        if not start <= layer <= top:
            raise ExportError(f"{options.source}: --cutoff-layer must be between {start} and {top} (the layers with "
                              f"a scoring head), got {layer}")
        if getattr(config, "head_type", "simple") != "simple":
            raise ExportError(f"{options.source}: a layerwise model whose heads are language-model heads "
                              f"(head_type {config.head_type!r}), not the reranker's one-output scoring heads")
        model = load_pretrained(AutoModelForCausalLM, checkpoint, attn_implementation="eager")
        max_length = options.max_length or MAX_LENGTH
        bos = tokenizer.bos_token_id
        settings = TokenizerSettings(
            max_length=max_length, pad_token_id=int(tokenizer.pad_token_id or 0),
            model_input_names=("input_ids", "attention_mask"),
            truncation_side=str(getattr(tokenizer, "truncation_side", "right")), padding_side="right",
            prompt=PromptTemplate(bos_token_id=None if bos is None else int(bos), query_max_length=max_length * 3 // 4,
                                  prompt=options.prompt or DEFAULT_LLM_PROMPT, budget_includes_prompt=True))
        return Prepared(
            model=model, settings=settings, score=ScoreReading(layer=layer), labels=(f"layer-{layer}",),
            activation=Activation.SIGMOID,
            reference=lambda pairs: layerwise_logits(tokenizer, model, layer, settings, pairs),
            max_length=sequence_limit(tokenizer, settings))


FORMAT = MiniCPMLayerwise()
