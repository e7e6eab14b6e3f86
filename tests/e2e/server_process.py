"""Runs `crossrank serve` as a real child process for end-to-end tests and inspects what it leaves behind."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crossrank.embedded_triton.launcher import free_port

ROOT = Path(__file__).resolve().parents[2]


def children(pid: int) -> list[int]:
    """Direct and indirect child processes of `pid`."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def rss_mib(pids: list[int]) -> float:
    """Resident memory of these processes together, MiB (processes gone meanwhile count zero)."""
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def health_status(channel: grpc.Channel, service: str = "") -> int:
    """The health service's status for `service` over `channel`, or -1 where it does not answer."""
    try:
        return int(health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=2).status)
    except grpc.RpcError:
        return -1


def scrape(port: int) -> str:
    """The Prometheus text of the /metrics endpoint on `port`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def metric_value(text: str, pattern: str) -> float:
    """The value of the one sample whose name and labels match `pattern` (a regular expression)."""
    match = re.search(rf"^{pattern} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"no sample {pattern}"
    return float(match.group(1))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


class ServerProcess:
    def __init__(self, args: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.http_port = free_port()
        self.triton_metrics_port = free_port()
        self.log_path = log or Path(os.environ.get("TMPDIR", "/tmp")) / f"crossrank-serve-{self.port}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "crossrank.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--metrics-port", str(self.metrics_port), "--http-port", str(self.http_port), *args],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, "CROSSRANK_TRITON_METRICS_PORT": str(self.triton_metrics_port), **(env or {})})

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text()

    def health(self, service: str = "") -> int:
        with grpc.insecure_channel(self.target) as channel:
            return health_status(channel, service)

    def wait_serving(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"crossrank serve exited with {self.process.returncode}:\n{self.log()}")
            if self.health() == health_pb2.HealthCheckResponse.SERVING:
                return
            time.sleep(0.25)
        raise TimeoutError(f"crossrank serve not SERVING after {timeout} s:\n{self.log()}")

    def terminate(self, timeout: float = 90) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            for pid in children(self.process.pid):
                os.kill(pid, signal.SIGKILL)
            self.process.kill()
            raise
        finally:
            self._log.close()


@contextlib.contextmanager
def serving(repository: Path, log: Path) -> Iterator[ServerProcess]:
    """`crossrank serve` on `repository` (default model tiny-bert), SERVING for the block, stopped after it."""
    process = ServerProcess(["--repository", str(repository), "--default-model", "tiny-bert"], log=log)
    try:
        process.wait_serving()
        yield process
    finally:
        process.terminate()
