"""The CLI reads without the code: every flag of every subcommand says what it does, and `crossrank rerank`
takes documents from a file or standard input (lines or JSON lines) for scripts."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossrank.cli import build_parser
from tests.e2e.server_process import ROOT
from tests.integration.gateway_thread import GatewayThread


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_flag_has_help(name: str) -> None:
    parser = _subcommands()[name]
    assert parser.description or parser.format_usage()
    missing = [a.option_strings or [a.dest] for a in parser._actions
               if not isinstance(a, argparse._HelpAction) and not (a.help and a.help.strip())]
    assert not missing, f"crossrank {name}: no help for {missing}"


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayThread]:
    thread = GatewayThread().start()
    yield thread
    thread.stop()


def _rerank(gateway: GatewayThread, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crossrank.cli", "rerank", "--target", gateway.target, "--json",
                           "--query", "alpha beta", *args], input=stdin, capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def test_rerank_reads_documents_from_stdin_one_per_line(gateway: GatewayThread) -> None:
    out = _rerank(gateway, "-f", "-", stdin="nothing\n\nalpha beta\nalpha\n")
    assert out.returncode == 0, out.stderr
    assert [r["document"] for r in json.loads(out.stdout)] == ["alpha beta", "alpha", "nothing"]


def test_rerank_reads_json_lines_from_a_file(gateway: GatewayThread, tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('"a line\\nwith a newline"\n{"text": "alpha beta", "id": 7}\n')
    out = _rerank(gateway, "first argument", "--documents-file", str(path), "--jsonl")
    assert out.returncode == 0, out.stderr
    assert {r["index"]: r["document"] for r in json.loads(out.stdout)} == {
        0: "first argument", 1: "a line\nwith a newline", 2: "alpha beta"}


def test_bad_input_files_are_named(gateway: GatewayThread, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('"fine"\n{"title": "no text"}\n')
    out = _rerank(gateway, "-f", str(path), "--jsonl")
    assert out.returncode == 2 and f"{path}:2" in out.stderr
    out = _rerank(gateway, "-f", str(tmp_path / "missing.txt"))
    assert out.returncode == 2 and "missing.txt" in out.stderr
    out = _rerank(gateway)
    assert out.returncode == 2 and "no documents" in out.stderr
