"""One server per port: a second `crossrank serve` on a port another one holds (gRPC, HTTP or metrics) stops at
start with one line naming the port and a non-zero exit, instead of sharing the port or printing a traceback.

The first server runs against an external Triton that is not there: the ports are what is tested, and that
start needs neither Triton nor a model."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from crossrank.embedded_triton.launcher import free_port
from tests.e2e.server_process import ROOT, ServerProcess

pytestmark = pytest.mark.e2e


def _second_serve(port: int, http_port: int, metrics_port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crossrank.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--http-port", str(http_port), "--metrics-port", str(metrics_port),
         "--triton-url", f"127.0.0.1:{free_port()}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("clash", ["grpc", "http", "metrics"])
def test_second_server_on_a_port_in_use_fails_with_one_line(clash: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = ServerProcess(["--triton-url", f"127.0.0.1:{free_port()}"], log=tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 30
        while first.health("crossrank.liveness") < 0:  # up: its ports are bound
            assert time.monotonic() < deadline, first.log()
            assert first.process.poll() is None, first.log()
            time.sleep(0.2)
        ports = {"grpc": free_port(), "http": free_port(), "metrics": free_port()}
        taken = {"grpc": first.port, "http": first.http_port, "metrics": first.metrics_port}[clash]
        ports[clash] = taken
        started = time.monotonic()
        second = _second_serve(ports["grpc"], ports["http"], ports["metrics"])
        output = second.stdout + second.stderr
        assert second.returncode != 0, output
        assert time.monotonic() - started < 30
        assert "Traceback" not in output, output
        errors = [line for line in output.splitlines() if "cannot start" in line]
        assert len(errors) == 1, output
        assert f":{taken}" in errors[0] and "in use" in errors[0], output
        assert first.process.poll() is None  # the first server is untouched
    finally:
        assert first.terminate() == 0
