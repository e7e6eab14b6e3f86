"""Merges encoder requests that were padded separately into length-sorted sub-batches, and splits the
logits back per request. Shared by every python-backend encoder (ONNX Runtime, PyTorch).

Triton's dynamic batcher hands the encoder several requests at once, each padded to its own longest pair.
The pairs of all of them are pooled, sorted by true length and run in sub-batches padded only to their own
longest pair, capped in padded tokens: the encoder's cost is the padded token count.

Between sub-batches the batcher asks whether each request that still has rows to score was cancelled (its
client gone or past its deadline, as the caller tells it): a cancelled request's remaining rows are dropped, so
abandoned work costs at most the sub-batch already running.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

DEFAULT_TOKENS_PER_BATCH = 768

Feed = dict[str, np.ndarray]


class RaggedBatcher:
    def __init__(self, input_names: Sequence[str], pad_token_id: int = 0, padding_side: str = "right",
                 tokens_per_batch: int = DEFAULT_TOKENS_PER_BATCH) -> None:
        self._input_names = list(input_names)
        self._pad_token_id = pad_token_id
        self._left = padding_side == "left"
        self.tokens_per_batch = tokens_per_batch  # padded tokens per encoder call; export tunes it
        # Running totals of real and padded-to positions the encoder was given (benchmark, tests).
        self.real_tokens = 0
        self.padded_tokens = 0

    def score(self, requests: Sequence[Feed], run: Callable[[Feed], np.ndarray]) -> list[np.ndarray]:
        """Returns logits [n_i, labels] (float32) for each request's inputs [n_i, length_i]."""
        return [logits for logits in self.score_unless_cancelled(requests, run, None) if logits is not None]

    def score_unless_cancelled(self, requests: Sequence[Feed], run: Callable[[Feed], np.ndarray],
                               cancelled: Callable[[int], bool] | None) -> list[np.ndarray | None]:
        """As `score`, but None for a request that `cancelled(i)` reports cancelled before all its rows were
        scored (asked before each sub-batch)."""
        counts = [int(req["input_ids"].shape[0]) for req in requests]
        if not sum(counts):
            return [np.zeros((0, 1), dtype=np.float32) for _ in requests]
        owner = np.repeat(np.arange(len(requests)), counts)
        dropped: set[int] = set()
        # Every request's real tokens, row after row, in one flat array per input: each sub-batch is then
        # gathered with a few vectorised index operations, not a Python loop per pair (which, at GPU batch
        # sizes, cost more than the model).
        masks = [req["attention_mask"].astype(bool) for req in requests]
        lengths = np.concatenate([mask.sum(axis=1) for mask in masks]).astype(np.int64)
        flat = {name: np.concatenate([req[name][mask] for req, mask in zip(requests, masks)])
                for name in self._input_names}
        offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        order = np.argsort(-lengths, kind="stable")
        logits: np.ndarray | None = None
        start = 0
        while start < len(order):
            if cancelled is not None:
                order, dropped = self._drop_cancelled(order, start, owner, cancelled, dropped)
                if start >= len(order):
                    break
            width = max(int(lengths[order[start]]), 1)
            stop = start + max(1, self.tokens_per_batch // width)
            chunk = order[start:stop]
            feed = self._gather(flat, offsets[chunk], lengths[chunk], width)
            self.real_tokens += int(lengths[chunk].sum())
            self.padded_tokens += len(chunk) * width
            out = np.asarray(run(feed), dtype=np.float32)
            if logits is None:
                logits = np.empty((len(owner), *out.shape[1:]), dtype=np.float32)
            logits[chunk] = out
            start = stop
        if logits is None:  # every request with rows was cancelled before its first sub-batch
            return [None if i in dropped else np.zeros((0, 1), dtype=np.float32) for i in range(len(requests))]
        parts: list[np.ndarray | None] = list(np.split(logits, np.cumsum(counts)[:-1]))
        return [None if i in dropped else part for i, part in enumerate(parts)]

    @staticmethod
    def _drop_cancelled(order: np.ndarray, start: int, owner: np.ndarray, cancelled: Callable[[int], bool],
                        dropped: set[int]) -> tuple[np.ndarray, set[int]]:
        """`order` without the not-yet-scored rows of requests now cancelled (asked once per request with rows
        left, per sub-batch: one round trip to Triton's process each)."""
        pending = order[start:]
        newly = {int(i) for i in np.unique(owner[pending]) if int(i) not in dropped and cancelled(int(i))}
        if not newly:
            return order, dropped
        keep = ~np.isin(owner[pending], list(newly))
        return np.concatenate((order[:start], pending[keep])), dropped | newly

    def _gather(self, flat: Feed, offsets: np.ndarray, lengths: np.ndarray, width: int) -> Feed:
        # Padding is rebuilt exactly as the model's tokenizer pads (side and pad id), because some models
        # (RoBERTa) derive position ids from where the pad tokens are.
        rows = np.repeat(np.arange(len(lengths)), lengths)
        within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        source = np.repeat(offsets, lengths) + within
        cols = within + np.repeat(width - lengths, lengths) if self._left else within
        feed = {}
        for name, values in flat.items():
            fill = self._pad_token_id if name == "input_ids" else 0
            out = np.full((len(lengths), width), fill, dtype=np.int64)
            out[rows, cols] = values[source]
            feed[name] = out
        return feed


def padding_fraction(real_tokens: int, padded_tokens: int) -> float:
    """The share of the encoder's positions that were padding."""
    return 1 - real_tokens / padded_tokens if padded_tokens else 0.0
