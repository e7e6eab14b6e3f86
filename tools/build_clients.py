"""Builds the JavaScript, Go and Java clients from the shared proto into build/clients/.

`python tools/build_clients.py js|go|java` prints the command line that runs that client's
`rerank` program (HOST:PORT MODEL QUERY DOC...). Exit code 3 means the language's toolchain is not
installed (`make client-toolchains` installs it from Debian and npm); the tests then skip, naming it.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "clients"
PROTO = "crossrank/v1/crossrank_service.proto"
JAVA_JARS = ("grpc-api", "grpc-core", "grpc-context", "grpc-netty", "grpc-protobuf", "grpc-protobuf-lite",
             "grpc-stub", "protobuf", "guava", "perfmark-api", "netty-buffer", "netty-codec", "netty-codec-http",
             "netty-codec-http2", "netty-codec-socks", "netty-common", "netty-handler", "netty-handler-proxy",
             "netty-resolver", "netty-transport", "geronimo-annotation-1.3-spec",
             "error-prone-annotations", "jsr305")


class MissingToolchainError(RuntimeError):
    pass


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise MissingToolchainError(f"not installed: {', '.join(missing)} (run `make client-toolchains`)")


def _run(cmd: list[str], **kwargs: object) -> None:
    subprocess.run(cmd, check=True, stdout=sys.stderr, **kwargs)  # type: ignore[call-overload]


def build_js() -> list[str]:
    _need("node", "npm")
    js = ROOT / "client" / "js"
    if not (js / "node_modules" / "@grpc" / "grpc-js").exists():
        _run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=js)
    return ["node", str(js / "rerank.js")]


def build_go() -> list[str]:
    _need("go", "protoc", "protoc-gen-go", "protoc-gen-go-grpc")
    gopath = BUILD / "go"
    out = gopath / "src"
    out.mkdir(parents=True, exist_ok=True)
    _run(["protoc", f"-I{ROOT / 'proto'}", f"--go_out={out}", f"--go-grpc_out={out}", PROTO])
    # GOPATH mode with Debian's Go packages (grpc-go, protobuf) from /usr/share/gocode: no module proxy.
    env = {**os.environ, "GO111MODULE": "off",
           "GOPATH": os.pathsep.join([str(gopath), str(ROOT / "client" / "go"), "/usr/share/gocode"]),
           "GOCACHE": str(BUILD / "go-cache")}
    binary = BUILD / "crossrank-rerank"
    _run(["go", "build", "-o", str(binary), "crossrank-rerank"], env=env, cwd=ROOT)
    return [str(binary)]


def build_java() -> list[str]:
    _need("javac", "java", "protoc", "grpc_java_plugin")
    jars = []
    for name in JAVA_JARS:
        found = sorted(glob.glob(f"/usr/share/java/{name}.jar"))
        if not found:
            raise MissingToolchainError(f"not installed: /usr/share/java/{name}.jar (run `make client-toolchains`)")
        jars.extend(found)
    classpath = os.pathsep.join(jars)
    generated, classes = BUILD / "java" / "generated", BUILD / "java" / "classes"
    generated.mkdir(parents=True, exist_ok=True)
    classes.mkdir(parents=True, exist_ok=True)
    _run(["protoc", f"-I{ROOT / 'proto'}", f"--java_out={generated}", f"--grpc-java_out={generated}",
          "--plugin=protoc-gen-grpc-java=" + shutil.which("grpc_java_plugin"),  # type: ignore[operator]
          PROTO])
    sources = [str(p) for p in generated.rglob("*.java")] + [str(p) for p in (ROOT / "client" / "java").rglob("*.java")]
    _run(["javac", "-nowarn", "-cp", classpath, "-d", str(classes), *sources])
    return ["java", "-cp", os.pathsep.join([str(classes), classpath]), "dev.crossrank.client.Rerank"]


BUILDERS = {"js": build_js, "go": build_go, "java": build_java}


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] not in BUILDERS:
        print(f"usage: build_clients.py {{{'|'.join(BUILDERS)}}}", file=sys.stderr)
        return 2
    try:
        command = BUILDERS[sys.argv[1]]()
    except MissingToolchainError as exc:
        print(str(exc), file=sys.stderr)
        return 3
    print(json.dumps(command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
