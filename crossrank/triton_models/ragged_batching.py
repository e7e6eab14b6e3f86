"""Merges encoder requests that were padded separately into length-sorted sub-batches, and splits the
logits back per request. Shared by every python-backend encoder (ONNX Runtime, PyTorch).

Triton's dynamic batcher hands the encoder several requests at once, each padded to its own longest pair.
The pairs of all of them are pooled, sorted by true length and run in sub-batches padded only to their own
longest pair, capped in padded tokens: the encoder's cost is the padded token count.
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
        self._tokens_per_batch = tokens_per_batch
        # Running totals of real and padded-to positions the encoder was given (benchmark, tests).
        self.real_tokens = 0
        self.padded_tokens = 0

    def score(self, requests: Sequence[Feed], run: Callable[[Feed], np.ndarray]) -> list[np.ndarray]:
        """Returns logits [n_i, labels] (float32) for each request's inputs [n_i, length_i]."""
        rows = [(r, i) for r, req in enumerate(requests) for i in range(req["input_ids"].shape[0])]
        lengths = np.array([int(requests[r]["attention_mask"][i].sum()) for r, i in rows], dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        logits: dict[int, np.ndarray] = {}
        start = 0
        while start < len(order):
            width = max(int(lengths[order[start]]), 1)
            stop = start + max(1, self._tokens_per_batch // width)
            chunk = order[start:stop]
            feed = {name: self._gather(requests, [rows[k] for k in chunk], name, width)
                    for name in self._input_names}
            self.real_tokens += int(lengths[chunk].sum())
            self.padded_tokens += len(chunk) * width
            for k, row_logits in zip(chunk, run(feed)):
                logits[int(k)] = row_logits
            start = stop
        result, offset = [], 0
        for req in requests:
            n = req["input_ids"].shape[0]
            rows_out = [logits[k] for k in range(offset, offset + n)]
            result.append(np.stack(rows_out).astype(np.float32) if n else np.zeros((0, 1), dtype=np.float32))
            offset += n
        return result

    def _gather(self, requests: Sequence[Feed], rows: list[tuple[int, int]], name: str, width: int) -> np.ndarray:
        # Padding is rebuilt exactly as the model's tokenizer pads (side and pad id), because some models
        # (RoBERTa) derive position ids from where the pad tokens are.
        fill = self._pad_token_id if name == "input_ids" else 0
        out = np.full((len(rows), width), fill, dtype=np.int64)
        for j, (r, i) in enumerate(rows):
            mask = requests[r]["attention_mask"][i].astype(bool)
            values = requests[r][name][i][mask]
            cols = slice(width - len(values), width) if self._left else slice(0, len(values))
            out[j, cols] = values
        return out


def padding_fraction(real_tokens: int, padded_tokens: int) -> float:
    """The share of the encoder's positions that were padding."""
    return 1 - real_tokens / padded_tokens if padded_tokens else 0.0
