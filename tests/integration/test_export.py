"""Export of a tiny BERT cross-encoder: the repository Triton will load, and the encoder's batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tritonclient.grpc import model_config_pb2 as mc

from crossrank.export.engines import UnsupportedEngineError
from crossrank.export.exporter import ExportError, ExportOptions, export
from crossrank.export.triton_repository import read_config
from crossrank.model_info import Activation, ModelInfo, Task
from crossrank.triton_models.onnx_encoder import OnnxEncoder
from crossrank.triton_models.pair_tokenizer import PairTokenizer
from tests.model_builders import pairs_with_long_documents


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    repository = tmp_path_factory.mktemp("export") / "repo"
    report = export(ExportOptions(source=str(tiny_bert_dir), name="tiny", repository=repository, max_batch_size=32))
    assert report.max_abs_diff <= 1e-4 and report.pairs_checked >= 50
    return repository


def test_three_models_with_valid_configs(repo: Path) -> None:
    ensemble, tokenizer, encoder = (read_config(repo / n) for n in ("tiny", "tiny_tokenizer", "tiny_encoder"))
    assert ensemble.platform == "ensemble" and ensemble.max_batch_size == 32
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == ["tiny_tokenizer", "tiny_encoder"]
    assert {i.name for i in ensemble.input} == {"text", "text_pair"}
    assert {o.name for o in ensemble.output} == {"logits", "num_tokens", "document_end"}
    assert tokenizer.backend == encoder.backend == "python"
    assert {o.name for o in tokenizer.output} == {"input_ids", "attention_mask", "token_type_ids", "num_tokens",
                                                  "document_end"}
    assert {i.name for i in encoder.input} == {"input_ids", "attention_mask", "token_type_ids"}
    assert all(i.allow_ragged_batch for i in encoder.input)  # requests padded to different lengths merge
    assert encoder.output[0].data_type == mc.TYPE_FP32 and list(encoder.output[0].dims) == [1]
    assert tokenizer.HasField("dynamic_batching") and encoder.HasField("dynamic_batching")
    params = {k: v.string_value for k, v in ensemble.parameters.items()}
    info = ModelInfo.from_parameters("tiny", ensemble.max_batch_size, params)
    assert info == ModelInfo("tiny", Task.RERANK, ("LABEL_0",), Activation.SIGMOID, 64, "onnx-python", "fp32",
                             info.source, 32)
    for name in ("model.py", "pair_tokenizer.py", "tokenizer.json", "crossrank_tokenizer.json"):
        assert (repo / "tiny_tokenizer" / "1" / name).exists()
    for name in ("model.py", "onnx_encoder.py", "model.onnx"):
        assert (repo / "tiny_encoder" / "1" / name).exists()


def test_merged_ragged_requests_score_like_separate_ones(repo: Path) -> None:
    """The dynamic batcher hands the encoder several requests padded differently; merging them must not
    change any score (the encoder re-pads by length inside)."""
    tokenizer = PairTokenizer.from_directory(repo / "tiny_tokenizer" / "1")
    pairs = pairs_with_long_documents(30)
    requests = [tokenizer.encode([a for a, _ in chunk], [b for _, b in chunk]).tensors
                for chunk in (pairs[:3], pairs[3:17], pairs[17:])]
    separate = OnnxEncoder(str(repo / "tiny_encoder" / "1" / "model.onnx"))
    small_batches = OnnxEncoder(str(repo / "tiny_encoder" / "1" / "model.onnx"), tokens_per_batch=100)
    alone = [separate.score([r])[0] for r in requests]
    merged = small_batches.score(requests)
    for a, b in zip(alone, merged):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_failed_export_writes_nothing(tmp_path: Path, tiny_bert_dir: Path) -> None:
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export(ExportOptions(source=str(tiny_bert_dir), name="x", repository=tmp_path / "r", tolerance=-1.0))
    assert not (tmp_path / "r" / "x").exists()
    with pytest.raises(UnsupportedEngineError):
        export(ExportOptions(source=str(tiny_bert_dir), name="x", repository=tmp_path / "r", precision="fp8"))


def test_tensorrt_plan_command_keeps_layernorm_in_fp32(repo: Path) -> None:
    import shlex
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    onnx_path = repo / "tiny_encoder" / "1" / "model.onnx"
    out = subprocess.run([sys.executable, str(root / "docker" / "build_tensorrt_plan.py"), str(onnx_path),
                          "--output", "model.plan", "--max-length", "64", "--dry-run"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    command = shlex.split(out.strip())
    assert command[0] == "trtexec" and "--fp16" in command
    flags = dict(arg.split("=", 1) for arg in command[1:] if "=" in arg)
    assert flags["--maxShapes"] == "input_ids:256x64,attention_mask:256x64,token_type_ids:256x64"
    layer_norms = flags["--layerPrecisions"].split(",")
    assert layer_norms and all(spec.endswith(":fp32") for spec in layer_norms)
    assert len(layer_norms) == 1 + 2 * 2  # embeddings + two per layer of the 2-layer model


def test_causal_lm_without_the_score_token_is_refused(tmp_path: Path) -> None:
    from tests.model_builders import tiny_gemma

    gemma = tiny_gemma(tmp_path / "gemma")
    with pytest.raises(ExportError, match=r"no token for .€.*--score-token"):
        export(ExportOptions(source=str(gemma), name="g", repository=tmp_path / "r", score_token="€"))
    assert not (tmp_path / "r").exists()
