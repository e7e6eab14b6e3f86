"""Encoder engines for `crossrank export --engine`: the registry of what each engine is and which precisions
it supports. The python-backend engines are in `python_engines.py`, Triton's native backends (`onnxruntime`,
`tensorrt`) in `native_engines.py`; what they share in `encoder_build.py`.
"""

from __future__ import annotations

from crossrank.export.encoder_build import BuiltEncoder, Engine, UnsupportedEngineError
from crossrank.export.native_engines import OnnxRuntimeEngine, TensorRTEngine
from crossrank.export.python_engines import OnnxPythonEngine, TorchPythonEngine
from crossrank.triton_contract import PYTHON_BACKEND_ENGINES, EngineName, Precision

__all__ = ["ENGINES", "PYTHON_BACKEND_ENGINES", "BuiltEncoder", "Engine", "UnsupportedEngineError", "get"]

ENGINES: dict[EngineName, tuple[Engine, tuple[Precision, ...]]] = {
    EngineName.ONNX_PYTHON: (OnnxPythonEngine(), (Precision.FP32, Precision.INT8)),
    EngineName.TORCH_PYTHON: (TorchPythonEngine(), (Precision.FP32, Precision.BF16, Precision.FP16)),
    EngineName.ONNXRUNTIME: (OnnxRuntimeEngine(), (Precision.FP32, Precision.FP16, Precision.INT8)),
    EngineName.TENSORRT: (TensorRTEngine(), (Precision.FP16, Precision.FP32)),
}


def get(name: str, precision: str) -> Engine:
    if name not in ENGINES:
        raise UnsupportedEngineError(f"unknown engine {name!r}; available: {', '.join(ENGINES)}")
    engine, precisions = ENGINES[EngineName(name)]
    if precision not in precisions:
        raise UnsupportedEngineError(f"engine {name!r} supports precision {', '.join(precisions)}, "
                                     f"not {precision!r}")
    return engine
