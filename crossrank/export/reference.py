"""The PyTorch reference scores that export compares the exported model with.

Built only from transformers and sentence-transformers, never from crossrank's tokenizer or encoder code,
so parity covers tokenization too. Sequence classifiers are scored as sentence-transformers' CrossEncoder
scores them (the model's tokenizer on (query, passage) with longest-first truncation); causal-LM rerankers in
the sentence-transformers layout by that CrossEncoder itself (`cross_encoder_logits`); bge-reranker-v2-gemma
as its model card's reference code does (its `get_inputs`, one pair at a time so no padding can shift
positions).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from crossrank.triton_models.pair_tokenizer import TokenizerSettings

logger = logging.getLogger(__name__)
PROGRESS_EVERY_S = 10.0
# Bytes of attention scores one reference batch may hold (eager attention: batch x heads x length^2 x 4): an
# 8,192-token model scored 64 pairs at once asks for tens of GB; sorted, bounded batches ask for one.
ATTENTION_BUDGET = 1 << 30
MAX_BATCH = 32


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


def reference_logits(tokenizer: Any, model: Any, settings: TokenizerSettings, pairs: Sequence[tuple[str, str]],
                     tokens: Sequence[int] | None = None) -> np.ndarray:
    """Logits [n, labels] of the fp32 PyTorch model for `pairs` (`tokens`: a causal LM's score tokens)."""
    import torch

    with torch.no_grad():
        if settings.framed is not None:
            assert tokens is not None and len(tokens) == 2
            return _framed_logits(tokenizer, model, settings, pairs, tokens)
        if settings.prompt is None:
            lengths = [len(ids) for ids in tokenizer([a for a, _ in pairs], [b for _, b in pairs],
                                                      truncation="longest_first",
                                                      max_length=settings.max_length)["input_ids"]]

            def batch_logits(batch: list[int]) -> np.ndarray:
                features = tokenizer([pairs[i][0] for i in batch], [pairs[i][1] for i in batch], padding=True,
                                     truncation="longest_first", max_length=settings.max_length,
                                     return_tensors="pt")
                return model(**features).logits.float().numpy()

            return _in_bounded_batches(lengths, _heads(model), batch_logits)
        assert tokens is not None
        rows: list[float] = []
        last_report = time.monotonic()
        for query, passage in pairs:
            ids = torch.tensor([prompt_input_ids(tokenizer, settings, query, passage)])
            logits = model(input_ids=ids).logits[0, -1].float()
            # bge-reranker-v2-gemma: the "Yes" logit; mxbai-rerank-v2: the "1" logit minus the "0" one
            rows.append(float(logits[tokens[0]] - (logits[tokens[1]] if len(tokens) == 2 else 0.0)))
            if time.monotonic() - last_report > PROGRESS_EVERY_S:  # a billion-parameter LM takes a while
                logger.info("reference scores: %d of %d pairs", len(rows), len(pairs))
                last_report = time.monotonic()
        return np.array(rows, dtype=np.float32).reshape(-1, 1)


def _framed_logits(tokenizer: Any, model: Any, settings: TokenizerSettings, pairs: Sequence[tuple[str, str]],
                   tokens: Sequence[int]) -> np.ndarray:
    """Qwen3-Reranker's model-card code (`format_instruction`, `process_inputs`, `compute_logits`), one pair at
    a time: the log-odds of "yes" over "no" at the last position (its score is their sigmoid)."""
    import torch

    frame = settings.framed
    assert frame is not None
    prefix = tokenizer.encode(frame.prefix, add_special_tokens=False)
    suffix = tokenizer.encode(frame.suffix, add_special_tokens=False)
    rows = []
    for query, document in pairs:
        body = frame.body.format(instruction=frame.instruction, query=query, document=document)
        ids = tokenizer(body, truncation="longest_first", return_attention_mask=False,
                        max_length=settings.max_length - len(prefix) - len(suffix))["input_ids"]
        logits = model(input_ids=torch.tensor([prefix + ids + suffix])).logits[0, -1]
        rows.append(float(logits[tokens[0]] - logits[tokens[1]]))
    return np.array(rows, dtype=np.float32).reshape(-1, 1)


def prompt_input_ids(tokenizer: Any, settings: TokenizerSettings, query: str, passage: str) -> list[int]:
    """One pair's input ids as the bge-reranker-v2-gemma model card builds them (`get_inputs`), and as
    mxbai-rerank-v2's code does (`prepare_inputs`, `concat_input_ids`: the same steps inside a chat prefix and
    suffix)."""
    template = settings.prompt
    assert template is not None
    separator = tokenizer(template.separator, add_special_tokens=False)["input_ids"]
    prompt = tokenizer(template.prompt, add_special_tokens=False)["input_ids"]
    query_ids = tokenizer(template.query_prefix + query, add_special_tokens=False,
                          max_length=template.query_max_length, truncation=True)["input_ids"]
    passage_ids = tokenizer(template.document_prefix + passage, add_special_tokens=False,
                            max_length=settings.max_length, truncation=True)["input_ids"]
    bos = [] if template.bos_token_id is None else [template.bos_token_id]
    item = tokenizer.prepare_for_model(bos + query_ids, separator + passage_ids, truncation="only_second",
                                       max_length=settings.max_length, padding=False,
                                       return_attention_mask=False, return_token_type_ids=False,
                                       add_special_tokens=False)
    prefix, suffix = (tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
                      for text in (template.prefix, template.suffix))
    return prefix + list(item["input_ids"]) + separator + prompt + suffix


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
