"""Triton entry point (`model.py`) of every python-backend `<name>_encoder` model.

Thin on purpose: the config's `engine` parameter picks the encoder (`onnx_encoder.py` for onnx-python,
`torch_encoder.py` for torch-python, copied beside this file); all requests that Triton's dynamic batcher
hands over are scored together. A request whose client has gone (the gateway's notice in the server's
register, `cancelled.py`) loses its remaining sub-batches and is answered with NaN
logits, which nobody reads: an error response would be the natural answer, but Triton 2.51's python backend
aborts the whole server (boost::interprocess::lock_exception) when an ensemble step's batch is answered with
errors for every request (measured: two abandoned reranks batched together).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cancelled import CancelledRequests
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
        self._cancelled = CancelledRequests()
        logits = next(o for o in config.get("output", []) if o["name"] == "logits")
        self._labels = int(logits["dims"][-1])

    def execute(self, requests: list[Any]) -> list[object]:
        inputs = [
            {name: pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self._encoder.input_names}
            for r in requests
        ]
        try:
            # request.is_cancelled() is not asked: Triton never sets it on an ensemble's step (see cancelled.py).
            logits = self._encoder.score_unless_cancelled(inputs, lambda i: requests[i].request_id() in self._cancelled)
        except Exception as exc:  # report to every request of the batch instead of killing the stub
            error = pb_utils.TritonError(f"encoder: {exc}")
            return [pb_utils.InferenceResponse(error=error) for _ in requests]
        answers = [self._unread(request) if out is None else out for out, request in zip(logits, inputs)]
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("logits", out)]) for out in answers]

    def _unread(self, request: dict[str, np.ndarray]) -> np.ndarray:
        """The answer of an abandoned request: as many rows as it has pairs, all NaN."""
        return np.full((request["input_ids"].shape[0], self._labels), np.nan, dtype=np.float32)
