"""A causal language model as a reranker: the score of a pair is read at its last real token, as the logit
of one token ("Yes", BAAI bge-reranker-v2-gemma and its kind) or as the difference of two, a "true" and a
"false" token (log-odds: sentence-transformers' `LogitScore`, "yes" minus "no" by default).

Used by ONNX export (traced once) and by the `torch-python` encoder inside Triton. Only those rows of the
language-model head are computed: a Gemma vocabulary has 256k rows, and the other logits are never read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def parse_tokens(text: str) -> tuple[int, ...]:
    """The score tokens as export records them in the encoder's config: "true" or "true,false" ids."""
    return tuple(int(t) for t in text.split(",") if t.strip())


class TokenLogitScorer(torch.nn.Module):
    """Wraps `AutoModelForCausalLM`: (input_ids, attention_mask) -> logits [batch, 1]; `token_ids` is the
    score token, or a true and a false token whose logits' difference is the score."""

    row: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, model: Any, token_ids: Sequence[int]) -> None:
        super().__init__()
        if len(token_ids) not in (1, 2):
            raise ValueError(f"one score token or a true and a false token, not {len(token_ids)}")
        self.body = model.get_decoder()
        head = model.get_output_embeddings()
        rows = list(token_ids)
        self.register_buffer("row", head.weight[rows].detach().clone())
        bias = getattr(head, "bias", None)
        self.register_buffer("bias", None if bias is None else bias[rows].detach().clone())
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
        if self.row.shape[0] == 2:  # log-odds of the true token over the false one
            return logits[:, :1] - logits[:, 1:]
        return logits


def _causal_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The additive [batch, 1, query, key] mask: causal, and no attention to padding. transformers takes a
    4D mask as given; building it here keeps its vmap-based mask code out of ONNX tracing, which fails there."""
    length = attention_mask.shape[1]
    positions = torch.arange(length, device=attention_mask.device)
    allowed = (positions.unsqueeze(0) <= positions.unsqueeze(1)).unsqueeze(0) & attention_mask.bool().unsqueeze(1)
    blocked = torch.zeros(allowed.shape, dtype=dtype, device=attention_mask.device)
    return blocked.masked_fill(~allowed, torch.finfo(dtype).min).unsqueeze(1)


def load_scorer(model_dir: str, token_ids: Sequence[int], **kwargs: Any) -> TokenLogitScorer:
    """Loads a saved causal LM (dtype, attention implementation and so on in `kwargs`) as a scorer."""
    from transformers import AutoModelForCausalLM

    return TokenLogitScorer(AutoModelForCausalLM.from_pretrained(model_dir, **kwargs), token_ids)
