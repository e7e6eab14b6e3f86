"""ONNX Runtime encoder for cross-encoders (engine `onnx-python`), on the CPU.

Runs inside the `<name>_encoder` Triton model and in tests; requests are merged and re-padded by
`ragged_batching.py` beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnxruntime as ort

try:  # inside Triton the sibling module is imported flat; in the package, relatively
    from ragged_batching import DEFAULT_TOKENS_PER_BATCH, RaggedBatcher
except ImportError:
    from crossrank.triton_models.ragged_batching import DEFAULT_TOKENS_PER_BATCH, RaggedBatcher

__all__ = ["DEFAULT_TOKENS_PER_BATCH", "OnnxEncoder"]


class OnnxEncoder:
    """Scores padded encoder inputs with an ONNX Runtime session."""

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
        self._batcher = RaggedBatcher(self._input_names, pad_token_id, padding_side, tokens_per_batch)

    @property
    def input_names(self) -> list[str]:
        return list(self._input_names)

    @property
    def batcher(self) -> RaggedBatcher:
        return self._batcher

    def score(self, requests: Sequence[dict[str, np.ndarray]]) -> list[np.ndarray]:
        """Returns logits [n_i, labels] for each request's inputs [n_i, length_i]."""
        return self._batcher.score(requests, self._run)

    def score_unless_cancelled(self, requests: Sequence[dict[str, np.ndarray]],
                               cancelled: Callable[[int], bool]) -> list[np.ndarray | None]:
        """As `score`; None for a request cancelled before all its rows were scored."""
        return self._batcher.score_unless_cancelled(requests, self._run, cancelled)

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self._session.run(["logits"], feed)[0]
