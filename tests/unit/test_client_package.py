"""The client installs alone: its declared dependencies and its imports stay clear of the server stack."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "tokenizers", "tritonclient", "onnxruntime", "numpy", "nvidia-pytriton")


def test_declared_dependencies_are_grpc_and_protobuf_only() -> None:
    text = (ROOT / "client" / "pyproject.toml").read_text()
    block = re.search(r"dependencies = \[(.*?)\]", text, re.DOTALL)
    assert block
    names = {re.split(r"[<>=\[ ]", dep.strip().strip('",'))[0] for dep in block.group(1).split("\n") if dep.strip()}
    names.discard("")
    assert names == {"grpcio", "protobuf", "grpcio-status", "googleapis-common-protos"}


def test_client_imports_without_the_server_stack() -> None:
    script = textwrap.dedent(f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in {set(h.replace('-', '_') for h in HEAVY)!r} | {{"crossrank"}}:
                    raise ImportError(name)
        sys.meta_path.insert(0, Block())
        import crossrank_client
        client = crossrank_client.CrossEncoderClient("127.0.0.1:1")
        client.close()
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
