"""The gateway in front of an external Triton runs without the export stack (what its slim image ships)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.e2e.server_process import ROOT

SCRIPT = textwrap.dedent("""
    import importlib.abc, sys
    BLOCKED = {"torch", "transformers", "tokenizers", "sentence_transformers", "onnx", "onnxruntime", "pytriton"}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"the gateway imported {name}")

    sys.meta_path.insert(0, Block())
    import asyncio, os, signal
    from crossrank import app, cli, settings

    cli.build_parser()
    config = settings.Settings(host="127.0.0.1", port=0, triton_url="127.0.0.1:9", metrics_port=-1, http_port=-1,
                               shutdown_grace_s=1)

    async def main():
        asyncio.get_running_loop().call_later(1.5, os.kill, os.getpid(), signal.SIGTERM)
        await app.serve(config)

    asyncio.run(main())
    print("gateway ran and stopped")
""")


def test_gateway_runs_without_torch_transformers_tokenizers_or_onnxruntime() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "gateway ran and stopped" in out.stdout


def test_the_embedded_serve_path_loads_torch_only_to_export() -> None:
    # `crossrank serve` reads and reuses exports through model_setup; torch (about 180 MiB of the gateway's
    # memory) is imported only when a model has to be exported.
    probe = ("import sys; import crossrank.cli, crossrank.embedded_triton.model_setup, crossrank.export.engines; "
             "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
