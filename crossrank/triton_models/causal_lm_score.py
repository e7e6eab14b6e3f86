"""A causal language model as a reranker: the score of a pair is the logit of one token ("Yes") after the
model's prompt, read at the last real token (BAAI bge-reranker-v2-gemma and its kind).

Used by ONNX export (traced once) and by the `torch-python` encoder inside Triton. Only that one row of the
language-model head is computed: a Gemma vocabulary has 256k rows, and the other logits are never read.
"""

from __future__ import annotations

from typing import Any

import torch


class TokenLogitScorer(torch.nn.Module):
    """Wraps `AutoModelForCausalLM`: (input_ids, attention_mask) -> logits [batch, 1]."""

    row: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, model: Any, token_id: int) -> None:
        super().__init__()
        self.body = model.get_decoder()
        head = model.get_output_embeddings()
        self.register_buffer("row", head.weight[token_id].detach().clone().unsqueeze(0))
        bias = getattr(head, "bias", None)
        self.register_buffer("bias", None if bias is None else bias[token_id].detach().clone().reshape(1))
        # Gemma-2 caps its final logits with tanh; Gemma (v1) has no cap.
        self.softcap = getattr(model.config, "final_logit_softcapping", None)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.body(input_ids=input_ids, attention_mask=_causal_mask(attention_mask, self.row.dtype),
                           ).last_hidden_state
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        # The last position whose mask is 1, wherever the padding is.
        last = (attention_mask.to(positions.dtype) * positions).argmax(dim=1)
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        logits = torch.nn.functional.linear(hidden[rows, last], self.row, self.bias)
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


def _causal_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The additive [batch, 1, query, key] mask: causal, and no attention to padding. transformers takes a
    4D mask as given; building it here keeps its vmap-based mask code out of ONNX tracing, which fails there."""
    length = attention_mask.shape[1]
    positions = torch.arange(length, device=attention_mask.device)
    allowed = (positions.unsqueeze(0) <= positions.unsqueeze(1)).unsqueeze(0) & attention_mask.bool().unsqueeze(1)
    blocked = torch.zeros(allowed.shape, dtype=dtype, device=attention_mask.device)
    return blocked.masked_fill(~allowed, torch.finfo(dtype).min).unsqueeze(1)


def load_scorer(model_dir: str, token_id: int, **kwargs: Any) -> TokenLogitScorer:
    """Loads a saved causal LM (dtype, attention implementation and so on in `kwargs`) as a scorer."""
    from transformers import AutoModelForCausalLM

    return TokenLogitScorer(AutoModelForCausalLM.from_pretrained(model_dir, **kwargs), token_id)
