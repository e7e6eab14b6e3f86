"""Export with the exact head: the fp32 encoder written beside the reduced-precision one, the bound delta
recorded with its sample size, and delta true of the files written (recomputed here, through the encoder code
Triton runs): every fast logit on export's lists within delta / 2 (the safety factor) of the fp32 encoder's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossrank.cli import main
from crossrank.embedded_triton.model_setup import exported_models
from crossrank.export.head_rescoring import SAFETY_FACTOR
from crossrank.export.samples import ranking_lists
from crossrank.export.triton_repository import read_config
from crossrank.triton_models.onnx_encoder import OnnxEncoder
from crossrank.triton_models.pair_tokenizer import PairTokenizer


def test_an_int8_export_with_the_exact_head_serves_fp32_beside_it_and_records_a_true_bound(
        tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    assert main(["export", str(tiny_bert_dir), "--name", "m", "--repository", str(repo), "--precision", "int8",
                 "--exact-head", "on"]) == 0
    out = capsys.readouterr().out
    assert "exact head: fp32 re-scores each rerank's head (served as m_exact)" in out
    [info] = exported_models(repo)  # the exact head's ensemble is not a model of its own
    assert info.precision == "int8" and info.exact_model == "m_exact" and info.head_delta > 0
    lists = ranking_lists()
    assert info.head_samples > sum(len(p) for _, p in lists)  # the lists and the parity samples
    head = read_config(repo / "m_exact")
    assert [s.model_name for s in head.ensemble_scheduling.step] == ["m_tokenizer", "m_exact_encoder"]

    tokenizer = PairTokenizer.from_directory(repo / "m_tokenizer" / "1")
    fast = OnnxEncoder(str(repo / "m_encoder" / "1" / "model.onnx"))
    exact = OnnxEncoder(str(repo / "m_exact_encoder" / "1" / "model.onnx"))
    largest = 0.0
    for query, passages in lists:
        batch = tokenizer.encode([query] * len(passages), passages).tensors
        error = np.abs(fast.score([batch])[0][:, 0].astype(np.float64) - exact.score([batch])[0][:, 0])
        largest = max(largest, float(error.max()))
    assert 0 < largest <= info.head_delta / SAFETY_FACTOR * (1 + 1e-6)


def test_a_torch_bf16_export_on_a_cpu_re_scores_with_onnx_runtime_fp32(tiny_bert_dir: Path, tmp_path: Path) -> None:
    # PyTorch's fp32 runs at about half ONNX Runtime's on a CPU: re-scoring with it cost the exact head its gain.
    repo = tmp_path / "repo"
    assert main(["export", str(tiny_bert_dir), "--name", "m", "--repository", str(repo), "--engine", "torch-python",
                 "--precision", "bf16", "--exact-head", "on"]) == 0
    engine = {name: read_config(repo / name).parameters["engine"].string_value for name in ("m_encoder",
                                                                                            "m_exact_encoder")}
    assert engine == {"m_encoder": "torch-python", "m_exact_encoder": "onnx-python"}
    assert (repo / "m_exact_encoder" / "1" / "model.onnx").is_file()
    [info] = exported_models(repo)
    assert info.precision == "bf16" and info.exact_head and info.head_delta > 0


def test_a_second_export_without_the_exact_head_removes_its_models(tiny_bert_dir: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    args = ["export", str(tiny_bert_dir), "--name", "m", "--repository", str(repo), "--precision", "int8"]
    assert main([*args, "--exact-head", "on"]) == 0
    assert (repo / "m_exact_encoder").is_dir()
    assert main(args) == 0
    assert not (repo / "m_exact").exists() and not (repo / "m_exact_encoder").exists()
    [info] = exported_models(repo)
    assert not info.exact_head


def test_the_exact_head_is_refused_where_it_has_nothing_to_do(tiny_bert_dir: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tiny_bert_dir), "--name", "m", "--repository", str(tmp_path / "r"),
                 "--precision", "fp32", "--exact-head", "on"]) == 1
    assert "needs a reduced --precision" in capsys.readouterr().err
