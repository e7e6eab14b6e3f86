"""What `make serve` does on a fresh machine: export the default model (the offline demo where the hub is
unreachable), serve it, reuse the export on the next start, and stop cleanly on SIGTERM, also while the
first start is still exporting."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crossrank_client import CrossEncoderClient

from crossrank.embedded_triton.model_setup import exported_models
from tests.e2e.server_process import ROOT, ServerProcess, alive, children

pytestmark = pytest.mark.e2e


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _models_written(repo: Path, name: str) -> list[str]:
    """The Triton models one export of `name` writes: the ensemble, tokenizer and encoder, and where `auto`
    served the exact head (it can, on CPUs with bf16 hardware) its fp32 ensemble and encoder."""
    [info] = exported_models(repo)
    assert info.name == name
    parts = ["", "_encoder", "_tokenizer", *(["_exact", "_exact_encoder"] if info.exact_head else [])]
    return sorted(name + part for part in parts)


def _stop_and_check_clean(server: ServerProcess) -> None:
    spawned = children(server.process.pid)
    assert spawned, "Triton was not a child of the gateway"
    # Positive control: while it runs, the python backend's shared-memory regions are there to be seen.
    assert list(Path("/dev/shm").glob(f"crossrank_{server.process.pid}_*")), "the leak check looks in the wrong place"
    assert server.terminate() == 0
    assert not [pid for pid in spawned if alive(pid)], "processes outlived the gateway"
    assert _port_free(server.port)
    assert not list(Path("/dev/shm").glob(f"crossrank_{server.process.pid}_*"))
    assert "stopped" in server.log()


def test_default_model_offline_then_reused(tmp_path: Path) -> None:
    repo = tmp_path / "model_repository"
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    first = ServerProcess(["--repository", str(repo)], env=env, log=tmp_path / "first.log")
    try:
        first.wait_serving(timeout=600)
        with CrossEncoderClient(first.target) as client:
            models = client.list_models()
            assert [m.name for m in models] == ["ms-marco-minilm-l6-demo"]
            assert "no real relevance training" in models[0].source
            # The demo's fitted head ranks obvious cases sensibly.
            ranked = client.rerank("what is the capital of france",
                                   ["Berlin is the capital of Germany.", "Paris is the capital of France.",
                                    "Bananas are yellow."])
            assert [r.index for r in ranked] == [1, 0, 2]
    finally:
        _stop_and_check_clean(first)
    assert "NO REAL RELEVANCE TRAINING" in first.log()

    second = ServerProcess(["--repository", str(repo)], env=env, log=tmp_path / "second.log")
    try:
        second.wait_serving(timeout=120)
    finally:
        _stop_and_check_clean(second)
    assert "reusing the export" in second.log()
    assert "NO REAL RELEVANCE TRAINING" in second.log()


def test_cli_export_then_serve_a_local_model(tmp_path: Path, tiny_bert_dir: Path) -> None:
    repo = tmp_path / "repo"
    out = subprocess.run([sys.executable, "-m", "crossrank.cli", "export", str(tiny_bert_dir), "--name", "mine",
                          "--repository", str(repo)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "largest logit difference" in out.stdout
    assert sorted(p.name for p in repo.iterdir()) == _models_written(repo, "mine")
    server = ServerProcess(["--repository", str(repo)], log=tmp_path / "serve.log")
    try:
        server.wait_serving()
        with CrossEncoderClient(server.target) as client:
            assert [m.name for m in client.list_models()] == ["mine"]
    finally:
        _stop_and_check_clean(server)


def test_export_errors_are_one_clear_line(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "crossrank.cli", "export", str(tmp_path / "nothing-here"),
                          "--name", "x", "--repository", str(tmp_path / "repo")], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1
    assert "error:" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "repo" / "x").exists()


def test_stop_during_the_first_export_leaves_a_whole_repository(tmp_path: Path) -> None:
    repo = tmp_path / "model_repository"
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    server = ServerProcess(["--repository", str(repo)], env=env, log=tmp_path / "serve.log")
    deadline = time.monotonic() + 300
    while "loading" not in server.log() and time.monotonic() < deadline and server.process.poll() is None:
        time.sleep(0.2)
    assert "loading" in server.log(), server.log()
    assert server.terminate(timeout=300) == 0
    log = server.log()
    assert "the export finishes before the process exits" in log
    names = _models_written(repo, "ms-marco-minilm-l6-demo")  # the export finished whole
    assert sorted(p.name for p in repo.iterdir() if p.is_dir()) == names
    assert all((repo / n / "config.pbtxt").exists() for n in names)
    assert not list(tmp_path.glob(".*-export-*")), "export scratch left beside the repository"
    assert not children(server.process.pid)
