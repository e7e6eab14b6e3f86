"""What every encoder engine shares: the `Engine` protocol and its `BuiltEncoder` result, the python-backend
module copier, the ONNX file (fp32 or int8) that ONNX-based engines start from, and the thread default.

`python_engines.py` and `native_engines.py` build on this; `engines.py` is the registry of both.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from crossrank.export.triton_repository import EncoderSpec
from crossrank.triton_contract import AUTO, Precision
from crossrank.triton_models.pair_tokenizer import TokenizerSettings
from crossrank.triton_models.score_reading import ScoreReading

NO_HEAD = ScoreReading()  # the model's own classifier logits
TRITON_MODULES = Path(__file__).resolve().parent.parent / "triton_models"
# The gateway-Triton contract, copied beside every python-backend model (which imports it flat).
CONTRACT_MODULE = Path(__file__).resolve().parent.parent / "triton_contract.py"


@dataclass(frozen=True)
class BuiltEncoder:
    spec: EncoderSpec
    score: Callable[[dict[str, np.ndarray]], np.ndarray]  # the exported encoder, run in-process
    # The precision `score` runs in, where it differs from the served one (a native engine whose fp16 is
    # applied by TensorRT on the GPU at load): export then checks fp32 parity and says what it could not.
    checked_precision: str | None = None
    # The in-process encoder's batcher (python-backend engines): export times sub-batch widths through it.
    batcher: Any = None


class Engine(Protocol):
    def build(self, model: Any, input_names: tuple[str, ...], num_labels: int, settings: TokenizerSettings,
              work: Path, options: Any, score: ScoreReading = NO_HEAD,
              sequence_limit: int = 0) -> BuiltEncoder:
        """`model` is a sequence classifier, or a causal-LM reranker read as `score` says;
        `sequence_limit` is the most tokens a pair takes into the encoder (a causal LM's prompt included)."""


def copy_triton_module(target: Path, entry_point: str, *modules: str) -> None:
    """Copies a python-backend entry point as `model.py` and its pure modules beside it, with the contract and
    the register of abandoned requests."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(TRITON_MODULES / entry_point, target / "model.py")
    shutil.copy2(CONTRACT_MODULE, target / CONTRACT_MODULE.name)
    shutil.copy2(TRITON_MODULES / "cancelled.py", target / "cancelled.py")  # every model checks the register
    for module in modules:
        shutil.copy2(TRITON_MODULES / module, target / module)


def default_threads() -> int:
    """Threads for the encoder run in-process at export: the CPUs this process may use (affinity, quota)."""
    from crossrank.triton_models.host_cpu import available_cpus

    return available_cpus()


def threads_parameter(requested: int) -> str:
    """What the encoder's config records: an explicit count, or `auto` (the serving process's CPUs at load)."""
    return str(requested) if requested > 0 else AUTO


def onnx_file(model: Any, input_names: tuple[str, ...], work: Path, precision: str, score: ScoreReading) -> Path:
    """Writes `work/model.onnx` (int8-quantized for precision int8) and returns its path."""
    from crossrank.export.onnx_export import export_onnx
    from crossrank.triton_models.causal_lm_score import scoring_module  # torch: only when a graph is written

    work.mkdir(parents=True, exist_ok=True)
    onnx_path = work / "model.onnx"
    export_onnx(scoring_module(model, score), input_names, onnx_path)
    return _quantize_int8(onnx_path) if precision == Precision.INT8 else onnx_path


def _quantize_int8(path: Path) -> Path:
    """Dynamic int8 quantization of the MatMul weights (activations quantized at run time), which uses the
    CPU's VNNI instructions where it has them."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from crossrank.export.onnx_export import consolidate_external_data, onnx_files

    target = path.with_name("model.int8.onnx")
    external = len(onnx_files(path)) > 1
    # The quantizer logs a line per tensor on the root logger; export's own lines say what matters.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    try:
        quantize_dynamic(str(path), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"], use_external_data_format=external)
    finally:
        root.setLevel(level)
    for source in onnx_files(path):  # the fp32 graph and its weights
        source.unlink()
    final = path.with_name("model.onnx")
    target.replace(final)
    if external:
        consolidate_external_data(final)
    return final


class UnsupportedEngineError(ValueError):
    """The engine or precision is not available."""
