"""ONNX Runtime encoder for cross-encoders, merging ragged requests into length-sorted batches.

Runs inside the `<name>_encoder` Triton model (engine `onnx-python`) and in tests. Each request arrives
padded to its own longest pair; the pairs of all requests are pooled, sorted by true length and run in
sub-batches padded only to their own longest pair, because the encoder's cost is the padded token count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnxruntime as ort

# Sub-batches are capped in padded tokens, not pairs, so short pairs run in wide batches and long ones
# in narrow batches with the same memory and cache footprint. On the 2-core development CPU, MiniLM-L-6
# ran ~35% faster at 512-1024 tokens per sub-batch than at 8192 (attention activations stay in cache).
DEFAULT_TOKENS_PER_BATCH = 768


class OnnxEncoder:
    """Scores padded encoder inputs with an ONNX Runtime session on the CPU."""

    def __init__(self, model_path: str, intra_op_threads: int = 0, pad_token_id: int = 0,
                 padding_side: str = "right", tokens_per_batch: int = DEFAULT_TOKENS_PER_BATCH) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning worker threads starve the tokenizer and gateway processes that share the cores with the
        # encoder under concurrent load.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        self._input_names = [i.name for i in self._session.get_inputs()]
        self._tokens_per_batch = tokens_per_batch
        self._pad_token_id = pad_token_id
        self._left = padding_side == "left"

    @property
    def input_names(self) -> list[str]:
        return list(self._input_names)

    def score(self, requests: Sequence[dict[str, np.ndarray]]) -> list[np.ndarray]:
        """Returns logits [n_i, labels] for each request's inputs [n_i, length_i]."""
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
            out = self._session.run(["logits"], feed)[0]
            for k, row_logits in zip(chunk, out):
                logits[int(k)] = row_logits
            start = stop
        result, offset = [], 0
        for req in requests:
            n = req["input_ids"].shape[0]
            rows_out = [logits[k] for k in range(offset, offset + n)]
            result.append(np.stack(rows_out).astype(np.float32) if n else np.zeros((0, 1), dtype=np.float32))
            offset += n
        return result

    def _gather(self, requests: Sequence[dict[str, np.ndarray]], rows: list[tuple[int, int]],
                name: str, width: int) -> np.ndarray:
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
