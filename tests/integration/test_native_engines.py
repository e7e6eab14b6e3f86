"""Exports for Triton's native backends (`onnxruntime`, `tensorrt`), which the bundled Triton cannot load:
their configs parse as Triton `ModelConfig`s and say what the engine promises (TensorRT FP16 with LayerNorm in
FP32, optimization profiles over batch and sequence length), the ONNX graph beside them scores like PyTorch,
and `crossrank serve` with the bundled Triton refuses them with a clear message."""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from tritonclient.grpc import model_config_pb2 as mc

from crossrank.embedded_triton.model_setup import ensure_models
from crossrank.export.exporter import ExportOptions, ExportReport, export
from crossrank.export.triton_repository import read_config
from crossrank.triton_models.onnx_encoder import OnnxEncoder
from crossrank.triton_models.pair_tokenizer import PairTokenizer
from tests.model_builders import pairs_with_long_documents, tiny_gemma

ROOT = Path(__file__).resolve().parents[2]


def _export(repo: Path, source: Path, name: str, engine: str, precision: str, **kw: object) -> ExportReport:
    return export(ExportOptions(source=str(source), name=name, repository=repo, engine=engine, precision=precision,
                                max_batch_size=32, **kw))  # type: ignore[arg-type]


def _accelerator(config: mc.ModelConfig) -> dict[str, str]:
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"
    return dict(accelerator.parameters)


def test_onnxruntime_fp16_is_tensorrt_fp16_with_layernorm_fp32(tmp_path: Path, tiny_bert_dir: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    repo = tmp_path / "repo"
    with caplog.at_level(logging.WARNING):
        report = _export(repo, tiny_bert_dir, "ort", "onnxruntime", "fp16")
    assert report.max_abs_diff <= 1e-4  # the graph TensorRT gets, checked in fp32 on the CPU
    assert "checked the encoder in fp32" in caplog.text
    encoder = read_config(repo / "ort_encoder")
    assert encoder.backend == "onnxruntime" and encoder.max_batch_size == 32
    assert not any(i.allow_ragged_batch for i in encoder.input)  # the backend concatenates: equal shapes only
    assert [g.kind for g in encoder.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
    params = _accelerator(encoder)
    assert params["precision_mode"] == "FP16" and params["trt_layer_norm_fp32_fallback"] == "1"
    names = ["input_ids", "attention_mask", "token_type_ids"]
    assert params["trt_profile_max_shapes"] == ",".join(f"{n}:32x64" for n in names)
    assert params["trt_profile_min_shapes"] == ",".join(f"{n}:1x1" for n in names)
    # What Triton's onnxruntime backend will load: the inputs it declares, scoring like PyTorch.
    version = repo / "ort_encoder" / "1"
    assert sorted(p.name for p in version.iterdir()) == ["model.onnx"]
    graph = onnx.load(str(version / "model.onnx"))
    assert [i.name for i in graph.graph.input] == [i.name for i in encoder.input] == names
    assert read_config(repo / "ort").ensemble_scheduling.step[1].model_name == "ort_encoder"


def test_onnxruntime_int8_runs_on_the_cpu_and_reports_agreement(tmp_path: Path, tiny_bert_dir: Path) -> None:
    repo = tmp_path / "repo"
    report = _export(repo, tiny_bert_dir, "ort8", "onnxruntime", "int8")
    encoder = read_config(repo / "ort8_encoder")
    assert [g.kind for g in encoder.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
    assert not encoder.HasField("optimization")
    assert report.agreement is not None and report.agreement.lists >= 5
    # The file served is the quantized one: it differs from fp32 a little, not a lot.
    tokenizer = PairTokenizer.from_directory(repo / "ort8_tokenizer" / "1")
    pairs = pairs_with_long_documents(10)
    batch = tokenizer.encode([a for a, _ in pairs], [b for _, b in pairs])
    int8 = OnnxEncoder(str(repo / "ort8_encoder" / "1" / "model.onnx")).score([batch.tensors])[0]
    assert np.all(np.isfinite(int8)) and int8.shape == (10, 1)


def test_tensorrt_engine_writes_config_and_the_plan_command(tmp_path: Path, tiny_bert_dir: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    repo = tmp_path / "repo"
    with caplog.at_level(logging.WARNING):
        report = _export(repo, tiny_bert_dir, "trt", "tensorrt", "fp16")
    assert report.max_abs_diff <= 1e-4
    encoder = read_config(repo / "trt_encoder")
    assert encoder.backend == "tensorrt"
    assert [g.kind for g in encoder.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
    onnx_path = repo / "trt_encoder" / "1" / "model.onnx"
    assert onnx_path.exists()
    # Export names the exact plan build; running it (dry) gives trtexec with the model's profile.
    line = next(r.getMessage() for r in caplog.records if "build_tensorrt_plan.py" in r.getMessage())
    command = shlex.split(line[line.index("python3 "):])
    assert command[1] == "docker/build_tensorrt_plan.py" and command[2] == str(onnx_path)
    out = subprocess.run([sys.executable, str(ROOT / command[1]), *command[2:], "--dry-run"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    flags = dict(a.split("=", 1) for a in shlex.split(out) if "=" in a)
    assert flags["--saveEngine"] == str(onnx_path.with_name("model.plan"))
    assert flags["--maxShapes"] == "input_ids:32x64,attention_mask:32x64,token_type_ids:32x64"
    assert "--fp16" in out


def test_causal_lm_on_onnxruntime_profiles_the_prompt_too(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    report = _export(repo, tiny_gemma(tmp_path / "gemma"), "g", "onnxruntime", "fp32", max_length=96)
    assert report.max_abs_diff <= 1e-4
    encoder = read_config(repo / "g_encoder")
    assert [i.name for i in encoder.input] == ["input_ids", "attention_mask"]
    limit = report.info.max_length
    assert limit > 96
    assert _accelerator(encoder)["trt_profile_max_shapes"] == f"input_ids:32x{limit},attention_mask:32x{limit}"


def test_bundled_triton_refuses_native_engines_by_name(tmp_path: Path, tiny_bert_dir: Path) -> None:
    repo = tmp_path / "repo"
    _export(repo, tiny_bert_dir, "ort", "onnxruntime", "fp32")
    with pytest.raises(ValueError, match=r"ort \(engine onnxruntime\).*NGC Triton image.*--engine onnx-python"):
        ensure_models((), repo)
