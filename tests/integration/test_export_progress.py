"""`crossrank export --progress`: a progress bar over the export's long steps, with the time left, and the
log lines still readable above it; off by default when standard error is not a terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.server_process import ROOT


def _export(source: Path, repository: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crossrank.cli", "export", str(source), "--name", "tiny",
                           "--repository", str(repository), *flags], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


def test_progress_names_each_long_step_with_the_time_left(tiny_bert_dir: Path, tmp_path: Path) -> None:
    out = _export(tiny_bert_dir, tmp_path / "repo", "--progress", "on", "--precision", "auto")
    assert out.returncode == 0, out.stderr[-3000:]
    err = out.stderr
    for step in ("loading the model", "measuring onnx-python fp32", "parity with PyTorch",
                 "timing sub-batch width", "writing the models"):
        assert f"export: {step}" in err, step
    assert " left" in err and "steps |" in err
    done = [line for line in err.replace("\r", "\n").splitlines() if "writing the models" in line]
    total = done[-1].split(": ")[-1].split(" steps")[0]  # "N/N": every planned step counted
    assert total.split("/")[0] == total.split("/")[1], done[-1]
    assert "INFO" in err or "parity:" in err  # the log lines are still there


def test_no_bar_unless_asked_or_on_a_terminal(tiny_bert_dir: Path, tmp_path: Path) -> None:
    out = _export(tiny_bert_dir, tmp_path / "repo", "--precision", "fp32", "--tokens-per-batch", "2048")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "steps |" not in out.stderr
