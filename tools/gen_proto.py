"""Generates the Python gRPC code and typed stubs for the crossrank proto into the client package.

`python tools/gen_proto.py` writes them; `--check` regenerates into a scratch folder and fails when the
committed files differ, so stale generated code cannot land.
"""

from __future__ import annotations

import argparse
import filecmp
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO = "crossrank/v1/crossrank_service.proto"
TARGET = ROOT / "client" / "crossrank_client" / "v1"
GENERATED = (
    "crossrank_service_pb2.py",
    "crossrank_service_pb2.pyi",
    "crossrank_service_pb2_grpc.py",
    "crossrank_service_pb2_grpc.pyi",
)


def generate(out: Path) -> None:
    """Runs protoc (grpc_tools) with the mypy plugins and moves the modules under crossrank_client.v1."""
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as raw:
        cmd = [
            sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_ROOT}",
            f"--python_out={raw}", f"--grpc_python_out={raw}",
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--mypy_out={raw}", f"--mypy_grpc_out={raw}", PROTO,
        ]
        subprocess.run(cmd, check=True)
        out.mkdir(parents=True, exist_ok=True)
        for name in GENERATED:
            text = (Path(raw) / "crossrank" / "v1" / name).read_text()
            # protoc names the module after the proto path (crossrank.v1); the server package is also
            # called crossrank, so the generated code lives under crossrank_client.v1 instead.
            text = text.replace("from crossrank.v1 import", "from crossrank_client.v1 import")
            text = text.replace("import crossrank.v1.", "import crossrank_client.v1.")
            text = text.replace("crossrank.v1.crossrank_service_pb2.", "crossrank_client.v1.crossrank_service_pb2.")
            (out / name).write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when the committed code is stale")
    args = parser.parse_args()
    if not args.check:
        generate(TARGET)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        generate(Path(scratch))
        stale = [n for n in GENERATED if not (TARGET / n).exists()
                 or not filecmp.cmp(TARGET / n, Path(scratch) / n, shallow=False)]
    if stale:
        print(f"generated code is stale: {', '.join(stale)}; run `make proto`", file=sys.stderr)
        return 1
    print("generated code is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
