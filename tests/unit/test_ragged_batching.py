"""The encoders' batching: requests padded separately are pooled, length-sorted and re-padded, so padding
stays a small share of the work, and every request gets its own rows back in order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from crossrank.bench.workload import requests
from crossrank.triton_models.pair_tokenizer import PairTokenizer, TokenizerSettings
from crossrank.triton_models.ragged_batching import RaggedBatcher, padding_fraction

NAMES = ("input_ids", "attention_mask", "token_type_ids")


def _tokenizer(model_dir: Path) -> PairTokenizer:
    hf = AutoTokenizer.from_pretrained(model_dir)
    return PairTokenizer(Tokenizer.from_str(hf.backend_tokenizer.to_str()),
                         TokenizerSettings(max_length=512, pad_token_id=0, model_input_names=NAMES))


def _row_sums(feed: dict[str, np.ndarray]) -> np.ndarray:
    # A stand-in encoder whose "logit" is the sum of a row's real token ids: padding must not change it.
    return (feed["input_ids"] * feed["attention_mask"]).sum(axis=1, keepdims=True).astype(np.float32)


def test_ms_marco_like_traffic_is_under_ten_percent_padding(minilm_dir: Path) -> None:
    tokenizer = _tokenizer(minilm_dir)
    for count, documents, merged in ((4, 100, 1), (64, 10, 16)):  # scenario A, and B's merged requests
        specs = requests(count, documents, seed=5)
        feeds = [tokenizer.encode([s.query] * documents, list(s.documents)).tensors for s in specs]
        batcher = RaggedBatcher(NAMES)
        for start in range(0, count, merged):
            batcher.score(feeds[start:start + merged], _row_sums)
        separately = sum(f["input_ids"].size for f in feeds)  # each request padded to its own longest pair
        assert padding_fraction(batcher.real_tokens, batcher.padded_tokens) < 0.10
        assert batcher.padded_tokens < separately


def test_each_request_gets_its_rows_back_in_order() -> None:
    rng = np.random.default_rng(0)
    feeds = []
    for n in (3, 1, 7, 0, 5):
        lengths = rng.integers(1, 30, size=n)
        width = int(lengths.max(initial=1))
        ids = np.zeros((n, width), dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        for row, length in enumerate(lengths):
            ids[row, :length] = rng.integers(5, 100, size=length)
            mask[row, :length] = 1
        feeds.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
    out = RaggedBatcher(NAMES, tokens_per_batch=40).score(feeds, _row_sums)
    assert [o.shape for o in out] == [(3, 1), (1, 1), (7, 1), (0, 1), (5, 1)]
    for feed, got in zip(feeds, out):
        np.testing.assert_array_equal(got, _row_sums(feed))
