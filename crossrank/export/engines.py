"""Encoder engines for `crossrank export --engine`: how each one builds and checks its Triton encoder model.

The python-backend engines live here: `onnx-python` (ONNX Runtime inside a python-backend model, runs with
the pip-bundled Triton on any CPU) and `torch-python` (PyTorch, CUDA or CPU). Triton's native backends
(`onnxruntime`, `tensorrt`) are in `native_engines.py`. Each returns a `BuiltEncoder`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from crossrank.export.triton_repository import EncoderSpec
from crossrank.triton_models.pair_tokenizer import TokenizerSettings

TRITON_MODULES = Path(__file__).resolve().parent.parent / "triton_models"


@dataclass(frozen=True)
class BuiltEncoder:
    spec: EncoderSpec
    score: Callable[[dict[str, np.ndarray]], np.ndarray]  # the exported encoder, run in-process
    # The precision `score` runs in, where it differs from the served one (a native engine whose fp16 is
    # applied by TensorRT on the GPU at load): export then checks fp32 parity and says what it could not.
    checked_precision: str | None = None


class Engine(Protocol):
    def build(self, model: Any, input_names: tuple[str, ...], num_labels: int, settings: TokenizerSettings,
              work: Path, options: Any, score_token_id: int | None = None,
              sequence_limit: int = 0) -> BuiltEncoder:
        """`model` is a sequence classifier, or a causal LM scored by `score_token_id`'s logit;
        `sequence_limit` is the most tokens a pair takes into the encoder (a causal LM's prompt included)."""


def copy_triton_module(target: Path, entry_point: str, *modules: str) -> None:
    """Copies a python-backend entry point as `model.py` and its pure modules beside it."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(TRITON_MODULES / entry_point, target / "model.py")
    for module in modules:
        shutil.copy2(TRITON_MODULES / module, target / module)


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)


class OnnxPythonEngine:
    """ONNX Runtime (CPU) in a python-backend model."""

    def build(self, model: Any, input_names: tuple[str, ...], num_labels: int, settings: TokenizerSettings,
              work: Path, options: Any, score_token_id: int | None = None,
              sequence_limit: int = 0) -> BuiltEncoder:
        from crossrank.triton_models.onnx_encoder import DEFAULT_TOKENS_PER_BATCH, OnnxEncoder

        onnx_path = onnx_file(model, input_names, work, options.precision, score_token_id)
        threads = options.encoder_threads or default_threads()
        encoder = OnnxEncoder(str(onnx_path), intra_op_threads=threads, pad_token_id=settings.pad_token_id,
                              padding_side=settings.padding_side)

        def write_files(target: Path) -> None:
            copy_triton_module(target, "encoder_model.py", "onnx_encoder.py", "ragged_batching.py")
            shutil.copy2(onnx_path, target / "model.onnx")

        spec = EncoderSpec(
            input_names=input_names, num_labels=num_labels, backend="python",
            parameters={"engine": "onnx-python", "intra_op_threads": str(threads),
                        "pad_token_id": str(settings.pad_token_id),
                        "padding_side": settings.padding_side,
                        "tokens_per_batch": str(DEFAULT_TOKENS_PER_BATCH)},
            instance_count=options.encoder_instances, write_files=write_files,
        )
        return BuiltEncoder(spec, lambda tensors: encoder.score([tensors])[0])


class TorchPythonEngine:
    """PyTorch in a python-backend model: CUDA fp16/bf16/fp32 with SDPA, or the CPU (fp32, bf16)."""

    def build(self, model: Any, input_names: tuple[str, ...], num_labels: int, settings: TokenizerSettings,
              work: Path, options: Any, score_token_id: int | None = None,
              sequence_limit: int = 0) -> BuiltEncoder:
        from crossrank.triton_models.torch_encoder import TorchEncoder, pick_device

        try:
            device = pick_device(options.precision)
        except ValueError as exc:
            raise UnsupportedEngineError(str(exc)) from exc
        hf = work / "hf"
        model.save_pretrained(hf)  # fp32 weights; the encoder casts at load, on the serving machine
        threads = options.encoder_threads or default_threads()
        encoder = TorchEncoder(str(hf), input_names, precision=options.precision, device=device,
                               pad_token_id=settings.pad_token_id, padding_side=settings.padding_side,
                               threads=threads, trust_remote_code=options.trust_remote_code,
                               score_token_id=score_token_id)

        def write_files(target: Path) -> None:
            copy_triton_module(target, "encoder_model.py", "torch_encoder.py", "ragged_batching.py",
                               "causal_lm_score.py")
            shutil.copytree(hf, target / "hf")

        spec = EncoderSpec(
            input_names=input_names, num_labels=num_labels, backend="python",
            parameters={"engine": "torch-python", "precision": options.precision,
                        "input_names": ",".join(input_names),
                        "pad_token_id": str(settings.pad_token_id), "padding_side": settings.padding_side,
                        "threads": str(threads),
                        "trust_remote_code": "true" if options.trust_remote_code else "false",
                        "score_token_id": "" if score_token_id is None else str(score_token_id)},
            instance_count=options.encoder_instances, write_files=write_files,
        )
        return BuiltEncoder(spec, lambda tensors: encoder.score([tensors])[0])


def scoring_module(model: Any, score_token_id: int | None) -> Any:
    """The module whose output is the logits: the model itself, or a causal LM's score-token logit."""
    if score_token_id is None:
        return model
    from crossrank.triton_models.causal_lm_score import TokenLogitScorer

    return TokenLogitScorer(model, score_token_id).eval()


def onnx_file(model: Any, input_names: tuple[str, ...], work: Path, precision: str,
              score_token_id: int | None) -> Path:
    """Writes `work/model.onnx` (int8-quantized for precision int8) and returns its path."""
    from crossrank.export.onnx_export import export_onnx

    work.mkdir(parents=True, exist_ok=True)
    onnx_path = work / "model.onnx"
    export_onnx(scoring_module(model, score_token_id), input_names, onnx_path)
    return _quantize_int8(onnx_path) if precision == "int8" else onnx_path


def _quantize_int8(path: Path) -> Path:
    """Dynamic int8 quantization of the MatMul weights (activations quantized at run time), which uses the
    CPU's VNNI instructions where it has them."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = path.with_name("model.int8.onnx")
    quantize_dynamic(str(path), str(target), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"])
    final = path.with_name("model.onnx")
    target.replace(final)
    return final


class UnsupportedEngineError(ValueError):
    """The engine or precision is not available."""


def _engines() -> dict[str, tuple[Engine, tuple[str, ...]]]:
    from crossrank.export.native_engines import OnnxRuntimeEngine, TensorRTEngine

    return {
        "onnx-python": (OnnxPythonEngine(), ("fp32", "int8")),
        "torch-python": (TorchPythonEngine(), ("fp32", "bf16", "fp16")),
        "onnxruntime": (OnnxRuntimeEngine(), ("fp32", "fp16", "int8")),
        "tensorrt": (TensorRTEngine(), ("fp16", "fp32")),
    }


ENGINES = _engines()
# Engines that the pip-bundled Triton (python backend only) can run.
PYTHON_BACKEND_ENGINES = ("onnx-python", "torch-python")


def get(name: str, precision: str) -> Engine:
    if name not in ENGINES:
        raise UnsupportedEngineError(f"unknown engine {name!r}; available: {', '.join(ENGINES)}")
    engine, precisions = ENGINES[name]
    if precision not in precisions:
        raise UnsupportedEngineError(f"engine {name!r} supports precision {', '.join(precisions)}, "
                                     f"not {precision!r}")
    return engine
