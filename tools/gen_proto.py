"""Generates the Python gRPC code and typed stubs from proto/: crossrank's API into the client package, and
TEI's published API (proto/tei/) into the gateway, which serves it.

`python tools/gen_proto.py` writes them; `--check` regenerates into a scratch folder and fails when the
committed files differ, so stale generated code cannot land.
"""

from __future__ import annotations

import argparse
import filecmp
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"


@dataclass(frozen=True)
class Target:
    proto: str  # path under proto/
    out: Path  # where the modules go
    module: str  # the Python package they are imported from
    stem: str  # the generated modules' stem

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(f"{self.stem}{suffix}" for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"))


TARGETS = (
    # The server package is also called crossrank, so the client's generated code lives under crossrank_client.v1.
    Target("crossrank/v1/crossrank_service.proto", ROOT / "client" / "crossrank_client" / "v1",
           "crossrank_client.v1", "crossrank_service"),
    # TEI's API is served by the gateway only: its code lives beside the servicer that answers it.
    Target("tei/v1/tei.proto", ROOT / "crossrank" / "gateway" / "transport" / "tei_proto",
           "crossrank.gateway.transport.tei_proto", "tei"),
)


def generate(target: Target, out: Path) -> None:
    """Runs protoc (grpc_tools) with the mypy plugins and moves the modules into `target.module`."""
    bin_dir = Path(sys.executable).parent
    proto_package = str(Path(target.proto).parent).replace("/", ".")  # protoc names modules after the path
    with tempfile.TemporaryDirectory() as raw:
        cmd = [
            sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_ROOT}",
            f"--python_out={raw}", f"--grpc_python_out={raw}",
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--mypy_out={raw}", f"--mypy_grpc_out={raw}", target.proto,
        ]
        subprocess.run(cmd, check=True)
        out.mkdir(parents=True, exist_ok=True)
        for name in target.files:
            text = (Path(raw) / Path(target.proto).parent / name).read_text()
            text = text.replace(f"from {proto_package} import", f"from {target.module} import")
            text = text.replace(f"import {proto_package}.", f"import {target.module}.")
            text = text.replace(f"{proto_package}.{target.stem}_pb2.", f"{target.module}.{target.stem}_pb2.")
            (out / name).write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when the committed code is stale")
    args = parser.parse_args()
    if not args.check:
        for target in TARGETS:
            generate(target, target.out)
        return 0
    stale = []
    for target in TARGETS:
        with tempfile.TemporaryDirectory() as scratch:
            generate(target, Path(scratch))
            stale += [str(target.out.relative_to(ROOT) / n) for n in target.files if not (target.out / n).exists()
                      or not filecmp.cmp(target.out / n, Path(scratch) / n, shallow=False)]
    if stale:
        print(f"generated code is stale: {', '.join(stale)}; run `make proto`", file=sys.stderr)
        return 1
    print("generated code is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
