"""The PyTorch reference scorers that several formats share (each format names its own in its module).

Built only from transformers and sentence-transformers, never from crossrank's tokenizer or encoder code,
so parity covers tokenization too: sequence classifiers scored as sentence-transformers' CrossEncoder scores
them (the model's tokenizer on (query, passage) with longest-first truncation, `reference_logits`), anything
sentence-transformers loads by that CrossEncoder itself (`cross_encoder_logits`), in batches bounded by the
memory their attention takes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from crossrank.triton_models.pair_tokenizer import TokenizerSettings

logger = logging.getLogger(__name__)
# Bytes of attention scores one reference batch may hold (eager attention: batch x heads x length^2 x 4): an
# 8,192-token model scored 64 pairs at once asks for tens of GB; sorted, bounded batches ask for one.
ATTENTION_BUDGET = 1 << 30
MAX_BATCH = 32


def remembered(reference: Callable[[Sequence[tuple[str, str]]], np.ndarray]
               ) -> Callable[[Sequence[tuple[str, str]]], np.ndarray]:
    """`reference`, scoring each distinct list of pairs once: export asks for the same sample lists for every
    candidate precision and again for the exact head's fp32 encoder, and PyTorch fp32 takes seconds each."""
    seen: dict[tuple[tuple[str, str], ...], np.ndarray] = {}

    def score(pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        key = tuple((a, b) for a, b in pairs)
        if key not in seen:
            seen[key] = reference(pairs)
        return seen[key].copy()

    return score


def memory_bounded_batches(lengths: Sequence[int], heads: int, budget: int = ATTENTION_BUDGET,
                           max_batch: int = MAX_BATCH) -> list[list[int]]:
    """Indices of pairs grouped shortest first, each group's padded attention within `budget` (a pair alone
    may exceed it: it is scored on its own)."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda k: lengths[k]):
        longest = lengths[i]  # ascending: the newest is the group's longest
        if current and (len(current) + 1 > max_batch or (len(current) + 1) * heads * longest * longest * 4 > budget):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def _in_bounded_batches(lengths: Sequence[int], heads: int,
                        score: Callable[[list[int]], np.ndarray]) -> np.ndarray:
    """`score(indices)` -> rows [len(indices), labels] for each memory-bounded batch, put back in pair order."""
    out: np.ndarray | None = None
    for batch in memory_bounded_batches(lengths, heads):
        rows = np.asarray(score(batch), dtype=np.float32).reshape(len(batch), -1)
        if out is None:
            out = np.empty((len(lengths), rows.shape[1]), dtype=np.float32)
        out[batch] = rows
    assert out is not None
    return out


def _heads(model: Any) -> int:
    config = getattr(model, "config", None)
    return int(getattr(config, "num_attention_heads", 0) or 16)


def reference_logits(tokenizer: Any, model: Any, settings: TokenizerSettings,
                     pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Logits [n, labels] of an fp32 PyTorch sequence classifier for `pairs`, tokenized as sentence-transformers'
    CrossEncoder tokenizes them (the model's tokenizer, longest-first truncation to the max length)."""
    import torch

    lengths = [len(ids) for ids in tokenizer([a for a, _ in pairs], [b for _, b in pairs],
                                              truncation="longest_first", max_length=settings.max_length)["input_ids"]]

    def batch_logits(batch: list[int]) -> np.ndarray:
        features = tokenizer([pairs[i][0] for i in batch], [pairs[i][1] for i in batch], padding=True,
                             truncation="longest_first", max_length=settings.max_length, return_tensors="pt")
        with torch.no_grad():
            return model(**features).logits.float().numpy()

    return _in_bounded_batches(lengths, _heads(model), batch_logits)


def cross_encoder_logits(encoder: Any, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """sentence-transformers' `CrossEncoder.predict` without its activation: logits [n, labels], in batches
    bounded by memory (lengths estimated by the tokenizer on the bare pair, capped at the max length)."""
    import torch

    tokenizer, limit = encoder.tokenizer, int(encoder.max_length)
    lengths = [min(limit, len(ids)) for ids in tokenizer([a for a, _ in pairs], [b for _, b in pairs])["input_ids"]]
    return _in_bounded_batches(lengths, _heads(encoder[0].model), lambda batch: encoder.predict(
        [pairs[i] for i in batch], activation_fn=torch.nn.Identity(), batch_size=len(batch), convert_to_numpy=True,
        show_progress_bar=False))


class TokenMismatchError(ValueError):
    """crossrank's tokenizer does not give the reference's input ids; the message says for which pair."""


def same_tokens_as(encoder: Any, pair_tokenizer: Any) -> None:
    """Checks that crossrank's tokenizer gives the CrossEncoder's own input ids (template, truncation, restored
    suffix), on short pairs and on pairs over the max length: the layout is reproduced, not guessed. Raises
    TokenMismatchError (a real check: it holds under `python -O` too)."""
    limit = int(encoder.max_length)
    long_text = " ".join(f"word{i % 97} text" for i in range(limit))
    pairs = [("what is the capital of france", "Paris is the capital of France."), ("q", long_text),
             (long_text, "a short document"), ("  spaced  query ", "line one\nline two ")]
    prompt = encoder.prompts.get(encoder.default_prompt_name) if encoder.default_prompt_name else None
    features = encoder.preprocess(pairs, prompt=prompt) if prompt else encoder.preprocess(pairs)
    ids, mask = features["input_ids"].tolist(), features["attention_mask"].tolist()
    ours = pair_tokenizer.encode([a for a, _ in pairs], [b for _, b in pairs]).tensors
    for i, (row, kept) in enumerate(zip(ids, mask)):
        theirs = [t for t, m in zip(row, kept) if m]
        mine = [int(t) for t, m in zip(ours["input_ids"][i], ours["attention_mask"][i]) if m]
        if mine != theirs:
            raise TokenMismatchError(f"crossrank's tokenizer does not reproduce sentence-transformers' input ids "
                                     f"(pair {i}: {len(mine)} tokens here, {len(theirs)} there); for a causal LM, "
                                     "name its layout with --layout")
