"""Triton entry point (`model.py`) of the `<name>_encoder` python-backend model for engine `onnx-python`.

Thin on purpose: batching and ONNX Runtime live in `onnx_encoder.py` beside it. All requests that Triton's
dynamic batcher hands over are scored together.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_encoder import DEFAULT_TOKENS_PER_BATCH, OnnxEncoder


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        directory = Path(args["model_repository"]) / args["model_version"]
        self._encoder = OnnxEncoder(
            str(directory / "model.onnx"),
            intra_op_threads=int(params.get("intra_op_threads", "0")),
            pad_token_id=int(params.get("pad_token_id", "0")),
            padding_side=params.get("padding_side", "right"),
            tokens_per_batch=int(params.get("tokens_per_batch", str(DEFAULT_TOKENS_PER_BATCH))),
        )

    def execute(self, requests: list[object]) -> list[object]:
        inputs = [
            {name: pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self._encoder.input_names}
            for r in requests
        ]
        try:
            logits = self._encoder.score(inputs)
        except Exception as exc:  # report to every request of the batch instead of killing the stub
            error = pb_utils.TritonError(f"encoder: {exc}")
            return [pb_utils.InferenceResponse(error=error) for _ in requests]
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("logits", out)]) for out in logits]
