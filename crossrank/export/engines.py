"""Encoder engines for `crossrank export --engine`: the registry of what each engine is and which precisions
it supports. The python-backend engines are in `python_engines.py`, Triton's native backends (`onnxruntime`,
`tensorrt`) in `native_engines.py`; what they share in `encoder_build.py`.
"""

from __future__ import annotations

from crossrank.export.encoder_build import BuiltEncoder, Engine, UnsupportedEngineError
from crossrank.export.native_engines import OnnxRuntimeEngine, TensorRTEngine
from crossrank.export.python_engines import OnnxPythonEngine, TorchPythonEngine

__all__ = ["ENGINES", "PYTHON_BACKEND_ENGINES", "BuiltEncoder", "Engine", "UnsupportedEngineError", "get"]

ENGINES: dict[str, tuple[Engine, tuple[str, ...]]] = {
    "onnx-python": (OnnxPythonEngine(), ("fp32", "int8")),
    "torch-python": (TorchPythonEngine(), ("fp32", "bf16", "fp16")),
    "onnxruntime": (OnnxRuntimeEngine(), ("fp32", "fp16", "int8")),
    "tensorrt": (TensorRTEngine(), ("fp16", "fp32")),
}
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
