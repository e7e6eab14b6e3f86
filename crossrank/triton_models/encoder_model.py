"""Triton entry point (`model.py`) of every python-backend `<name>_encoder` model.

Thin on purpose: the config's `engine` parameter picks the encoder (`onnx_encoder.py` for onnx-python,
`torch_encoder.py` for torch-python, copied beside this file); all requests that Triton's dynamic batcher
hands over are scored together.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from triton_contract import AUTO, EngineName, Precision


def _encoder(engine: str, directory: Path, params: dict[str, str], instances: int) -> Any:
    from host_cpu import threads_per_instance

    # Threads follow the serving process's CPUs (affinity, cgroup quota) shared between the instances,
    # unless export was told a count; the export machine's core count means nothing here.
    key = "threads" if engine == EngineName.TORCH_PYTHON else "intra_op_threads"
    threads = threads_per_instance(params.get(key, AUTO), instances)
    common = {"pad_token_id": int(params.get("pad_token_id", "0")),
              "padding_side": params.get("padding_side", "right"),
              "tokens_per_batch": int(params.get("tokens_per_batch", "0"))}
    if engine == EngineName.TORCH_PYTHON:
        from score_reading import ScoreReading
        from torch_encoder import TorchEncoder

        score = ScoreReading.from_parameters(params)

        return TorchEncoder(str(directory / "hf"), params["input_names"].split(","),
                            precision=params.get("precision", Precision.FP32), threads=threads,
                            trust_remote_code=params.get("trust_remote_code") == "true",
                            score_tokens=score.score_tokens, score_layer=score.layer,
                            prefix_reuse=params.get("prefix_reuse", "true") == "true",
                            **common)
    from onnx_encoder import DEFAULT_TOKENS_PER_BATCH, OnnxEncoder

    common["tokens_per_batch"] = common["tokens_per_batch"] or DEFAULT_TOKENS_PER_BATCH
    return OnnxEncoder(str(directory / "model.onnx"), intra_op_threads=threads, **common)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        directory = Path(args["model_repository"]) / args["model_version"]
        instances = sum(int(group.get("count", 1)) for group in config.get("instance_group", [])) or 1
        self._encoder = _encoder(params.get("engine", EngineName.ONNX_PYTHON), directory, params, instances)

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
