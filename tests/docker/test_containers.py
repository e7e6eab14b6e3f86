"""The images `make images` builds, run as the compose stack (export job, then crossrank/triton-cpu, then the
gateway) on the host's network, checked as a user would: health, scores equal to sentence-transformers on
the same model, HTTP, metrics from the gateway and Triton, the HEALTHCHECK, a draining `docker stop`, non-root
users and read-only root file systems, and nothing left behind. `make docker-test` builds everything first;
`make test` does not run these."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import yaml
from crossrank_client import CrossEncoderClient
from grpc_health.v1 import health_pb2

from crossrank import __version__
from crossrank.embedded_triton.launcher import free_port
from tests import model_builders
from tests.e2e.server_process import health_status
from tests.ranking import assert_ranked_like

ROOT = Path(__file__).resolve().parents[2]
DOCKER = os.environ.get("DOCKER") or shutil.which("/usr/bin/docker") or "docker"
COMPOSE = shutil.which("docker-compose")
pytestmark = pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed (make docker-test)")


def _docker(*args: str, check: bool = True, timeout: float = 300) -> str:
    run = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and run.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {run.stderr.strip()}")
    return run.stdout.strip()


class Stack:
    def __init__(self, directory: Path) -> None:
        self.project = f"crossrank-test-{os.getpid()}"
        self.ports = {name: free_port() for name in ("TRITON_GRPC_PORT", "TRITON_HTTP_PORT", "TRITON_METRICS_PORT",
                                                     "CROSSRANK_PORT", "CROSSRANK_HTTP_PORT",
                                                     "CROSSRANK_METRICS_PORT")}
        self.model = model_builders.tiny_bert(directory / "model")
        for path in [directory, *directory.rglob("*")]:  # readable by the containers' unprivileged user
            path.chmod(0o755 if path.is_dir() else 0o644)
        # docker/compose.yaml with docker/compose.host.yaml over it, less its published ports (which host
        # networking has no use for, and compose v1 cannot drop in an override); the images are built already.
        stack = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
        host = yaml.safe_load((ROOT / "docker" / "compose.host.yaml").read_text())["services"]
        for name, service in stack["services"].items():
            service.pop("build", None)
            service.pop("ports", None)
            environment = {**service.get("environment", {}), **host[name].get("environment", {})}
            service.update(host[name])
            if environment:
                service["environment"] = environment
        stack["services"]["export"]["command"] = ["/source", "--name", "tiny", "--repository", "/models/repository",
                                                  "--precision", "fp32"]
        stack["services"]["export"]["volumes"].append(f"{self.model}:/source:ro")
        merged = directory / "compose.test.yaml"
        merged.write_text(json.dumps(stack))
        self.files = ["-f", str(merged)]

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        assert COMPOSE is not None
        env = {**os.environ, **{k: str(v) for k, v in self.ports.items()}}
        return subprocess.run([COMPOSE, "-p", self.project, *self.files, *args], capture_output=True, text=True,
                              timeout=timeout, env=env)

    def container(self, service: str) -> str:
        return _docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}",
                       "--filter", f"label=com.docker.compose.service={service}")

    def inspect(self, service: str) -> dict[str, Any]:
        return dict(json.loads(_docker("inspect", self.container(service)))[0])

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.ports['CROSSRANK_PORT']}"


def _serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        return health_status(channel, "crossrank.v1.CrossEncoderService") == health_pb2.HealthCheckResponse.SERVING


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    for image in ("gateway", "export", "triton-cpu"):
        _docker("image", "inspect", f"crossrank/{image}:{__version__}")  # built by `make images`
    running = Stack(tmp_path_factory.mktemp("docker"))
    started = time.monotonic()
    try:
        up = running.compose("up", "-d")
        assert up.returncode == 0, up.stderr + running.compose("logs").stdout
        deadline = time.monotonic() + 300
        while not _serving(running.target):
            assert time.monotonic() < deadline, running.compose("logs").stdout
            time.sleep(1)
        print(f"\ncompose up to SERVING: {time.monotonic() - started:.1f} s")
        yield running
    finally:
        running.compose("down", "-v", "--remove-orphans", "-t", "60")
        left = _docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={running.project}")
        volumes = _docker("volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={running.project}")
        assert not left and not volumes, f"left behind: containers {left!r}, volumes {volumes!r}"


def test_served_scores_equal_the_reference(stack: Stack) -> None:
    import torch
    from sentence_transformers import CrossEncoder

    pairs = model_builders.pairs_with_long_documents(24)
    query = pairs[0][0]
    documents = [d for _, d in pairs]
    reference = CrossEncoder(str(stack.model), device="cpu")
    expected = np.asarray(reference.predict([(query, d) for d in documents], activation_fn=torch.nn.Identity()))
    with CrossEncoderClient(stack.target) as client:
        ranked = client.rerank(query, documents, model="tiny", raw_scores=True)
        classified = client.classify(pairs, model="tiny", raw_scores=True)
    got = np.empty(len(documents))
    for result in ranked:
        got[result.index] = result.score
    assert np.max(np.abs(got - expected)) <= 1e-4
    assert_ranked_like([r.index for r in ranked], expected, 1e-4)
    each = np.asarray(reference.predict(pairs, activation_fn=torch.nn.Identity()))
    assert np.max(np.abs(np.array([r.score for r in classified]) - each)) <= 1e-4


def test_http_and_metrics_from_the_gateway_and_triton(stack: Stack) -> None:
    body = json.dumps({"query": "alpha", "documents": ["alpha beta", "gamma"], "model": "tiny"}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{stack.ports['CROSSRANK_HTTP_PORT']}/v1/rerank",
                                     data=body, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200 and len(json.loads(response.read())["results"]) == 2
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.ports['CROSSRANK_METRICS_PORT']}/metrics",
                                timeout=10) as response:
        gateway = response.read().decode()
    assert 'crossrank_requests_total{code="OK",method="HttpRerank",model="tiny"}' in gateway
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.ports['TRITON_METRICS_PORT']}/metrics",
                                timeout=10) as response:
        triton = response.read().decode()
    assert 'nv_inference_request_success{model="tiny"' in triton


def test_the_containers_run_unprivileged_on_read_only_file_systems(stack: Stack) -> None:
    for service in ("export", "triton", "gateway"):
        details = stack.inspect(service)
        assert details["Config"]["User"] not in ("", "0", "root"), service
        assert details["HostConfig"]["ReadonlyRootfs"] is True, service
    assert stack.inspect("export")["State"]["ExitCode"] == 0


def test_the_healthcheck_reports_healthy(stack: Stack) -> None:
    deadline = time.monotonic() + 60
    while (status := stack.inspect("gateway")["State"]["Health"]["Status"]) != "healthy":
        assert time.monotonic() < deadline, status
        time.sleep(1)


def test_docker_stop_drains_in_flight_requests_and_exits_0(stack: Stack) -> None:
    documents = [" ".join(["alpha beta gamma delta"] * 12)] * 1000
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        def call(_: int) -> int:
            with CrossEncoderClient(stack.target) as client:
                return len(client.rerank("alpha", documents, model="tiny", timeout=120))

        futures = [pool.submit(call, i) for i in range(8)]
        time.sleep(0.5)  # accepted and in flight
        started = time.monotonic()
        _docker("stop", "-t", "45", stack.container("gateway"), timeout=120)
        stopped_in = time.monotonic() - started
        results = [f.result(timeout=120) for f in futures]
    assert results == [1000] * 8
    state = stack.inspect("gateway")["State"]
    assert state["ExitCode"] == 0 and stopped_in < 45, (state, stopped_in)
