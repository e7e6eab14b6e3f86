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
from collections.abc import Sequence
from typing import Any

import numpy as np

from crossrank.triton_models.pair_tokenizer import TokenizerSettings

logger = logging.getLogger(__name__)
PROGRESS_EVERY_S = 10.0


def reference_logits(tokenizer: Any, model: Any, settings: TokenizerSettings, pairs: Sequence[tuple[str, str]],
                     tokens: Sequence[int] | None = None) -> np.ndarray:
    """Logits [n, labels] of the fp32 PyTorch model for `pairs` (`tokens`: a causal LM's score tokens)."""
    import torch

    with torch.no_grad():
        if settings.framed is not None:
            assert tokens is not None and len(tokens) == 2
            return _framed_logits(tokenizer, model, settings, pairs, tokens)
        if settings.prompt is None:
            features = tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True,
                                 truncation="longest_first", max_length=settings.max_length, return_tensors="pt")
            return model(**features).logits.float().numpy()
        assert tokens is not None
        rows: list[float] = []
        last_report = time.monotonic()
        for query, passage in pairs:
            ids = torch.tensor([prompt_input_ids(tokenizer, settings, query, passage)])
            rows.append(float(model(input_ids=ids).logits[0, -1, tokens[0]].float()))
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
    """One pair's input ids as the bge-reranker-v2-gemma model card builds them."""
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
    return list(item["input_ids"]) + separator + prompt


def cross_encoder_logits(encoder: Any, pairs: Sequence[tuple[str, str]], batch_size: int = 16) -> np.ndarray:
    """sentence-transformers' `CrossEncoder.predict` without its activation: logits [n, 1]."""
    import torch

    scores = encoder.predict(list(pairs), activation_fn=torch.nn.Identity(), batch_size=batch_size,
                             convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(scores, dtype=np.float32).reshape(len(pairs), -1)


def same_tokens_as(encoder: Any, pair_tokenizer: Any) -> None:
    """Asserts that crossrank's tokenizer gives the CrossEncoder's own input ids (template, truncation, restored
    suffix), on short pairs and on pairs over the max length: the layout is reproduced, not guessed."""
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
        assert mine == theirs, (f"crossrank's tokenizer does not reproduce sentence-transformers' input ids (pair "
                                f"{i}: {len(mine)} tokens here, {len(theirs)} there); for a causal LM, name its "
                                "layout with --layout")
