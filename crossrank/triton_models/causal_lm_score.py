"""A causal language model as a reranker: the score of a pair is read at its last real token, as the logit
of one token ("Yes", BAAI bge-reranker-v2-gemma and its kind) or as the difference of two, a "true" and a
"false" token (log-odds: sentence-transformers' `LogitScore`, "yes" minus "no" by default), or as the output of
one layer's scoring head (layerwise rerankers: bge-reranker-v2-minicpm-layerwise), the layers above not run.
`ScoreReading` says which; a model format (crossrank/export/formats) chooses it, the encoder's config records it.

Used by ONNX export (traced once) and by the `torch-python` encoder inside Triton. Only those rows of the
language-model head are computed: a Gemma vocabulary has 256k rows, and the other logits are never read.

Every pair of a rerank request begins with the same tokens (system text, instruction, query): the
`torch-python` encoder runs that shared prefix once and reuses its key/value cache for every document
(`score_shared_prefix`), which gives the scores of the full computation.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

try:  # inside Triton the sibling modules are imported flat; in the package, relatively
    from score_reading import ScoreReading
except ImportError:
    from crossrank.triton_models.score_reading import ScoreReading



def scoring_module(model: Any, score: ScoreReading) -> Any:
    """The module whose output is the logits [batch, labels]: the model itself, a causal LM's score-token
    logits, or a layerwise reranker's head at the chosen layer."""
    if score.layer:
        return LayerHeadScorer(model, score.layer).eval()
    if score.tokens:
        return TokenLogitScorer(model, score.tokens).eval()
    return model


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
        return self.head(hidden[rows, last])

    def head(self, last_hidden: torch.Tensor) -> torch.Tensor:
        """Scores [batch, 1] from the hidden states at the pairs' last tokens [batch, hidden]."""
        logits = torch.nn.functional.linear(last_hidden, self.row, self.bias)
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        if self.row.shape[0] == 2:  # log-odds of the true token over the false one
            return logits[:, :1] - logits[:, 1:]
        return logits


class LayerHeadScorer(torch.nn.Module):
    """Wraps a layerwise reranker (FlagEmbedding's `LayerWiseMiniCPMForCausalLM`, its own code): (input_ids,
    attention_mask) -> [batch, 1], the head of `layer` at each pair's last real token. The model's forward
    takes `cutoff_layers` and stops after the highest: the layers above `layer` are never computed."""

    def __init__(self, model: Any, layer: int) -> None:
        super().__init__()
        self.model = model
        self.layer = layer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        output = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
                            use_cache=False, cutoff_layers=[self.layer])
        logits = output.logits[0]  # [batch, sequence]: the one cutoff layer's head at every position
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        last = (attention_mask.to(positions.dtype) * positions).argmax(dim=1)
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        return logits[rows, last].float().unsqueeze(1)


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


def load_reading(model_dir: str, score: ScoreReading, **kwargs: Any) -> torch.nn.Module:
    """Loads a saved causal-LM reranker (`score.causal`) as the module `score` reads it by."""
    from transformers import AutoModelForCausalLM

    return scoring_module(AutoModelForCausalLM.from_pretrained(model_dir, **kwargs), score)


MIN_SHARED_PREFIX = 16  # tokens: below this, one full pass costs less than the cache's copies
# The prefix's least share of a pair's tokens for reuse to pay (2-core CPU, a 4-layer width-256 Qwen3 reranker
# whose matmuls take the time, as a real model's do: 2.1x at a 61% share, 1.6x at 42%, 1.2x at 27%; a
# width-32 toy, all per-call overhead, gains little below a half).
MIN_PREFIX_SHARE = 0.25


def shared_prefix(input_ids: torch.Tensor, lengths: torch.Tensor) -> int:
    """Tokens that every row begins with (right-padded rows of real `lengths`), leaving each row one of its own."""
    if input_ids.shape[0] < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(dim=0)
    differ = torch.nonzero(~same)
    common = int(differ[0]) if differ.numel() else input_ids.shape[1]
    return max(0, min(common, int(lengths.min()) - 1))


def score_shared_prefix(scorer: TokenLogitScorer, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        tokens_per_batch: int) -> torch.Tensor | None:
    """Scores right-padded pairs [n, length] that share a prefix of at least MIN_SHARED_PREFIX tokens: the
    prefix runs once, and each sub-batch of suffixes (at most `tokens_per_batch` padded tokens) attends to a
    copy of its key/value cache. None when the pairs share too little (the caller runs them whole): fewer than
    MIN_SHARED_PREFIX tokens, or less than MIN_PREFIX_SHARE of the mean pair."""
    lengths = attention_mask.sum(dim=1)
    prefix = shared_prefix(input_ids, lengths)
    if prefix < MIN_SHARED_PREFIX or prefix < MIN_PREFIX_SHARE * float(lengths.float().mean()):
        return None
    cached = scorer.body(input_ids=input_ids[:1, :prefix], use_cache=True).past_key_values
    suffix_lengths = lengths - prefix
    order = torch.argsort(suffix_lengths)  # similar lengths together: little padding per sub-batch
    out = torch.empty((input_ids.shape[0], 1), dtype=torch.float32, device=input_ids.device)
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and int(suffix_lengths[order[stop]]) * (stop + 1 - start) <= tokens_per_batch:
            stop += 1
        rows = order[start:stop]
        width = int(suffix_lengths[rows].max())
        ids = input_ids[rows, prefix:prefix + width]
        mask = torch.cat([torch.ones((len(rows), prefix), dtype=attention_mask.dtype, device=ids.device),
                          attention_mask[rows, prefix:prefix + width]], dim=1)
        cache = copy.deepcopy(cached)
        cache.batch_repeat_interleave(len(rows))
        positions = torch.arange(prefix, prefix + width, device=ids.device).unsqueeze(0).expand(len(rows), -1)
        hidden = scorer.body(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                             use_cache=True).last_hidden_state
        last = suffix_lengths[rows] - 1
        out[rows] = scorer.head(hidden[torch.arange(len(rows), device=ids.device), last]).float()
        start = stop
    return out
