"""What export cannot do, it says in one line naming the cause and what to try instead, and writes nothing:
an architecture transformers does not know, a checkpoint that is not a cross-encoder (no trained scoring
head), a tokenizer without a fast version, and instance or batch counts below one. The instance options it
accepts reach the Triton configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from crossrank.cli import main
from crossrank.export.triton_repository import read_config


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _export_error(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    repo = tmp_path / "repo"
    assert main(["export", str(model_dir), "--name", "x", "--repository", str(repo)]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("crossrank export:")]
    assert len(lines) == 1
    assert not (repo / "x").exists()
    return lines[0]


def test_unknown_architecture(tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _copy(tiny_bert_dir, tmp_path / "fancy")
    config = json.loads((model / "config.json").read_text())
    config.update(model_type="fancybert", architectures=["FancyBertForSequenceClassification"])
    (model / "config.json").write_text(json.dumps(config))
    line = _export_error(model, tmp_path, capsys)
    assert "unsupported architecture" in line and "--trust-remote-code" in line


def test_checkpoint_without_a_scoring_head(tiny_bert_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from transformers import BertModel

    encoder = tmp_path / "encoder-only"
    BertModel.from_pretrained(tiny_bert_dir).save_pretrained(encoder)  # an embedding model, say
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (tiny_bert_dir / name).exists():
            shutil.copy2(tiny_bert_dir / name, encoder / name)
    line = _export_error(encoder, tmp_path, capsys)
    assert "a BertModel, not a cross-encoder" in line

    # Without `architectures` in its config, the missing head is found from the weights instead.
    config = json.loads((encoder / "config.json").read_text())
    del config["architectures"]
    (encoder / "config.json").write_text(json.dumps(config))
    line = _export_error(encoder, tmp_path, capsys)
    assert "lacks classifier." in line and "head would be random" in line


def test_tokenizer_without_a_fast_version(tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    original = transformers.AutoTokenizer.from_pretrained

    def slow_only(*args: object, **kwargs: object) -> object:  # as a model whose tokenizer has no converter
        return original(*args, **{**kwargs, "use_fast": False})

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", slow_only)
    line = _export_error(tiny_bert_dir, tmp_path, capsys)
    assert "no fast (Rust) version" in line and "tokenizer.json" in line


@pytest.mark.parametrize("flag", ["--tokenizer-instances", "--encoder-instances", "--max-batch-size"])
def test_counts_below_one_are_refused(flag: str, tiny_bert_dir: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    assert main(["export", str(tiny_bert_dir), "--name", "x", "--repository", str(repo), flag, "0"]) == 1
    assert f"{flag} must be at least 1 (got 0)" in capsys.readouterr().err
    assert not (repo / "x").exists()


def test_instance_options_reach_the_triton_configs(tiny_bert_dir: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    assert main(["export", str(tiny_bert_dir), "--name", "x", "--repository", str(repo),
                 "--tokenizer-instances", "3", "--encoder-instances", "2"]) == 0
    for model, count in (("x_tokenizer", 3), ("x_encoder", 2)):
        groups = read_config(repo / model).instance_group
        assert [(g.count, g.kind) for g in groups] == [(count, mc.ModelInstanceGroup.KIND_CPU)]
