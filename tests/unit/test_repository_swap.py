"""Replacing an export in the repository: a crash at any step leaves the old model whole or no model of that
name (serve exports it again), never an ensemble over a mix of old and new steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossrank.export import triton_repository
from crossrank.export.triton_repository import EncoderSpec, write_models
from crossrank.model_info import Activation, ModelInfo, Task

INFO = ModelInfo("m", Task.RERANK, ("LABEL_0",), Activation.SIGMOID, 64, "onnx-python", "fp32", "src", 8)


def _write(repo: Path, generation: str) -> None:
    def files(target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        (target / "generation").write_text(generation)

    encoder = EncoderSpec(input_names=("input_ids",), num_labels=1, backend="python", parameters={},
                          instance_count=1, write_files=files)
    write_models(repo, INFO, encoder, files, fill_ensemble=lambda d: (d / "generation").write_text(generation))


def _generations(repo: Path) -> dict[str, str]:
    found = {}
    for name in ("m", "m_tokenizer", "m_encoder"):
        marker = repo / name / ("generation" if name == "m" else "1/generation")
        if marker.exists():
            found[name] = marker.read_text()
    return found


@pytest.mark.parametrize("crash_at", range(6))
def test_a_crash_at_any_rename_never_leaves_a_mixed_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          crash_at: int) -> None:
    repo = tmp_path / "repo"
    _write(repo, "old")
    assert _generations(repo) == {"m": "old", "m_tokenizer": "old", "m_encoder": "old"}
    renames = 0
    real_rename = Path.rename

    def crashing_rename(self: Path, target: Path) -> Path:
        nonlocal renames
        if renames == crash_at:
            raise OSError("simulated crash")
        renames += 1
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", crashing_rename)
    with pytest.raises(OSError):
        _write(repo, "new")
    found = _generations(repo)
    if "m" in found:  # an ensemble is there: it and both its steps are of one generation
        assert found == {"m": found["m"], "m_tokenizer": found["m"], "m_encoder": found["m"]}


def test_a_failed_build_leaves_the_old_model_untouched(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _write(repo, "old")

    def broken(target: Path) -> None:
        raise RuntimeError("the encoder could not be written")

    encoder = EncoderSpec(input_names=("input_ids",), num_labels=1, backend="python", parameters={},
                          instance_count=1, write_files=broken)
    with pytest.raises(RuntimeError):
        write_models(repo, INFO, encoder, lambda target: None)
    assert _generations(repo) == {"m": "old", "m_tokenizer": "old", "m_encoder": "old"}
    assert not list(tmp_path.glob(".m-export-*")), "scratch left beside the repository"
    assert triton_repository.read_config(repo / "m").name == "m"
