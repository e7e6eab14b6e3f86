"""The encoders' batching: requests padded separately are pooled, length-sorted and re-padded, so padding
stays a small share of the work, and every request gets its own rows back in order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from crossrank.triton_models.pair_tokenizer import PairTokenizer, TokenizerSettings
from crossrank.triton_models.ragged_batching import RaggedBatcher, padding_fraction
from tests.model_builders import rerank_requests

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
        specs = rerank_requests(count, documents, seed=5)
        feeds = [tokenizer.encode([query] * documents, passages).tensors for query, passages in specs]
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


def _ragged_requests(rng: np.random.Generator, left: bool, pad: int) -> list[dict[str, np.ndarray]]:
    feeds = []
    for n in (4, 0, 9, 2):
        lengths = rng.integers(1, 25, size=n)
        width = int(lengths.max(initial=1)) + 3  # each request padded a little past its longest row
        ids = np.full((n, width), pad, dtype=np.int64)
        mask, types = np.zeros_like(ids), np.zeros_like(ids)
        for row, length in enumerate(lengths):
            cols = slice(width - length, width) if left else slice(0, length)
            ids[row, cols], mask[row, cols] = rng.integers(5, 100, size=length), 1
            types[row, cols] = rng.integers(0, 2, size=length)
        feeds.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    return feeds


def test_sub_batches_are_padded_as_the_tokenizer_pads() -> None:
    # Each sub-batch row must hold the pair's real tokens then padding (or padding then tokens, left), with
    # the model's pad id: some models derive position ids from where the padding is.
    rng = np.random.default_rng(1)
    for side, pad in (("right", 0), ("left", 7)):
        feeds = _ragged_requests(rng, side == "left", pad)
        expected = sorted((tuple(f["input_ids"][r][keep]), tuple(f["token_type_ids"][r][keep]))
                          for f in feeds for r in range(f["input_ids"].shape[0])
                          for keep in [f["attention_mask"][r] == 1])
        seen: list[dict[str, np.ndarray]] = []

        def record(feed: dict[str, np.ndarray], seen: list[dict[str, np.ndarray]] = seen) -> np.ndarray:
            seen.append(feed)
            return _row_sums(feed)

        out = RaggedBatcher(NAMES, pad_token_id=pad, padding_side=side, tokens_per_batch=48).score(feeds, record)
        for feed, got in zip(feeds, out):
            np.testing.assert_array_equal(got, _row_sums(feed))
        assert len(seen) > 1
        got_rows = []
        for feed in seen:
            width = feed["input_ids"].shape[1]
            for ids, mask, types in zip(feed["input_ids"], feed["attention_mask"], feed["token_type_ids"]):
                n = int(mask.sum())
                cols = slice(width - n, width) if side == "left" else slice(0, n)
                pads = slice(0, width - n) if side == "left" else slice(n, width)
                assert mask[cols].all() and not mask[pads].any()
                assert (ids[pads] == pad).all() and (types[pads] == 0).all()
                got_rows.append((tuple(ids[cols]), tuple(types[cols])))
        assert sorted(got_rows) == expected
