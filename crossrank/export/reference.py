"""The PyTorch reference scores that export compares the exported model with.

Built only from transformers, never from crossrank's tokenizer or encoder code, so parity covers
tokenization too. Sequence classifiers are scored as sentence-transformers' CrossEncoder scores them (the
model's tokenizer on (query, passage) with longest-first truncation); causal-LM rerankers as their model
card's reference code does (bge-reranker-v2-gemma's `get_inputs`, one pair at a time so no padding can
shift positions).
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
                     token_id: int | None = None) -> np.ndarray:
    """Logits [n, labels] of the fp32 PyTorch model for `pairs`."""
    import torch

    with torch.no_grad():
        if settings.prompt is None:
            features = tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True,
                                 truncation="longest_first", max_length=settings.max_length, return_tensors="pt")
            return model(**features).logits.float().numpy()
        assert token_id is not None
        rows: list[float] = []
        last_report = time.monotonic()
        for query, passage in pairs:
            ids = torch.tensor([prompt_input_ids(tokenizer, settings, query, passage)])
            rows.append(float(model(input_ids=ids).logits[0, -1, token_id].float()))
            if time.monotonic() - last_report > PROGRESS_EVERY_S:  # a billion-parameter LM takes a while
                logger.info("reference scores: %d of %d pairs", len(rows), len(pairs))
                last_report = time.monotonic()
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
