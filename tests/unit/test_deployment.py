"""Reads the Dockerfiles, compose files and Kubernetes manifests and fails when they drift from the code:
CLI flags and config keys must exist, ports and probe services must match, image tags must agree."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import crossrank
from crossrank import settings
from crossrank.cli import build_parser
from crossrank.gateway.transport.grpc_server import HEALTH_SERVICES, LIVENESS_SERVICE, SERVICE_NAME
from crossrank.healthcheck import default_target

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
BASE = DOCKER / "k8s" / "base"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _dockerfile_array(path: Path, instruction: str) -> list[str]:
    lines = [line for line in path.read_text().splitlines() if line.startswith(instruction + " ")]
    return json.loads(lines[-1][len(instruction) + 1:])


def _parses(argv: list[str]) -> None:
    assert argv[0] == "crossrank", argv
    try:
        build_parser().parse_args(argv[1:])
    except SystemExit as exc:  # argparse exits on an unknown flag
        pytest.fail(f"crossrank rejects {argv}: exit {exc.code}")


@pytest.fixture(scope="module")
def pod() -> dict[str, Any]:
    return _yaml(BASE / "deployment.yaml")["spec"]["template"]


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in [*pod["spec"]["containers"], *pod["spec"]["initContainers"]] if c["name"] == name)


def _port(container: dict[str, Any], name: str) -> int:
    return int(next(p["containerPort"] for p in container["ports"] if p["name"] == name))


def test_every_crossrank_command_line_is_accepted_by_the_cli(pod: dict[str, Any]) -> None:
    gateway = _container(pod, "gateway")
    _parses(gateway["command"] + gateway["args"])
    _parses(["crossrank", "export", *_container(pod, "export")["args"]])
    entry = _dockerfile_array(DOCKER / "gateway.Dockerfile", "ENTRYPOINT")
    _parses(entry + _dockerfile_array(DOCKER / "gateway.Dockerfile", "CMD"))
    compose = _yaml(DOCKER / "compose.yaml")["services"]
    _parses(entry + compose["gateway"]["command"])
    export_entry = _dockerfile_array(DOCKER / "export.Dockerfile", "ENTRYPOINT")
    _parses(export_entry + _dockerfile_array(DOCKER / "export.Dockerfile", "CMD"))
    _parses(export_entry + compose["export"]["command"])
    job = _yaml(DOCKER / "k8s" / "export-job" / "job.yaml")["spec"]["template"]["spec"]["containers"][0]
    _parses(["crossrank", "export", *job["args"]])


def test_pod_config_is_valid_and_ports_agree(pod: dict[str, Any]) -> None:
    config = settings.load(BASE / "crossrank.yaml", {}, {})
    gateway, triton = _container(pod, "gateway"), _container(pod, "triton")
    assert _port(gateway, "grpc") == config.port
    assert _port(gateway, "http") == config.http_port
    assert _port(gateway, "metrics") == config.metrics_port == int(pod["metadata"]["annotations"]["prometheus.io/port"])
    assert config.triton_url == f"127.0.0.1:{_port(triton, 'triton-grpc')}"
    assert f"--grpc-port={_port(triton, 'triton-grpc')}" in triton["args"]
    assert f"--metrics-port={_port(triton, 'triton-metrics')}" in triton["args"]
    assert f"--model-repository={config.repository}" in triton["args"]
    assert str(config.repository) in _container(pod, "export")["args"]
    service_ports = {p["name"]: p["targetPort"] for p in _yaml(BASE / "service.yaml")["spec"]["ports"]}
    assert set(service_ports.values()) == {"grpc", "http", "metrics"}  # Triton's ports are not in the Service
    policy = _yaml(BASE / "networkpolicy.yaml")["spec"]["ingress"]
    allowed = {p["port"] for rule in policy for p in rule["ports"]}
    assert allowed == {config.port, config.http_port, config.metrics_port, _port(triton, "triton-metrics")}


def test_probes_use_the_gateways_health_services(pod: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = _container(pod, "gateway")
    config = settings.load(BASE / "crossrank.yaml", {}, {})
    probes = {kind: gateway[kind]["grpc"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    # Probes use the plaintext health port: kubelet's gRPC probes cannot speak TLS.
    assert all(p["port"] == config.health_port == _port(gateway, "health") for p in probes.values())
    assert probes["readinessProbe"]["service"] == SERVICE_NAME and SERVICE_NAME in HEALTH_SERVICES
    assert probes["livenessProbe"]["service"] == probes["startupProbe"]["service"] == LIVENESS_SERVICE
    healthcheck = (DOCKER / "gateway.Dockerfile").read_text()
    assert "crossrank.healthcheck" in healthcheck
    # The HEALTHCHECK names no port: the probe follows CROSSRANK_PORT, as the server does, else the default.
    monkeypatch.delenv("CROSSRANK_PORT", raising=False)
    assert default_target() == f"127.0.0.1:{config.port}"
    monkeypatch.setenv("CROSSRANK_PORT", "6001")
    assert default_target() == "127.0.0.1:6001"


def test_secrets_component_sets_real_settings() -> None:
    component = _yaml(DOCKER / "k8s" / "components" / "tls-and-api-keys" / "kustomization.yaml")
    patch = yaml.safe_load(component["patches"][0]["patch"])
    container = patch["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    known = {variable for _, variable in settings._KEYS.values()}
    assert set(env) <= known and {"CROSSRANK_TLS_CERT_FILE", "CROSSRANK_API_KEYS_FILE"} <= set(env)
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert all(any(value.startswith(m + "/") for m in mounts) for value in env.values())


def test_graceful_termination_outlasts_the_drain(pod: dict[str, Any]) -> None:
    config = settings.load(BASE / "crossrank.yaml", {}, {})
    pause = int(_container(pod, "gateway")["lifecycle"]["preStop"]["exec"]["command"][-1])
    triton_pause = int(_container(pod, "triton")["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["spec"]["terminationGracePeriodSeconds"] > pause + config.shutdown_grace_s
    assert triton_pause > pause + config.shutdown_grace_s - 1  # Triton outlives the gateway's drain


def test_containers_are_locked_down(pod: dict[str, Any]) -> None:
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    for container in [*pod["spec"]["containers"], *pod["spec"]["initContainers"]]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"] and container["resources"]["limits"]


def test_image_names_and_tags_agree_everywhere() -> None:
    version = crossrank.__version__
    ngc = re.search(r"^FROM nvcr.io/nvidia/tritonserver:(\d+\.\d+)-py3$", (DOCKER / "triton.Dockerfile").read_text(),
                    re.MULTILINE)
    assert ngc, "the Triton image must pin an NGC release"
    gpu_triton = f"{version}-{ngc.group(1)}"
    expected = {"crossrank/gateway": version, "crossrank/triton": gpu_triton, "crossrank/export": version}
    kustomize = {i["name"]: i["newTag"] for i in _yaml(BASE / "kustomization.yaml")["images"]}
    assert kustomize == expected
    # The CPU overlay and the compose stack run crossrank/triton-cpu; the GPU ones the NGC-based image.
    [cpu] = _yaml(DOCKER / "k8s" / "overlays" / "cpu" / "kustomization.yaml")["images"]
    assert cpu == {"name": "crossrank/triton", "newName": "crossrank/triton-cpu", "newTag": version}
    compose = {s["image"].split(":")[0]: s["image"].split(":")[1]
               for s in _yaml(DOCKER / "compose.yaml")["services"].values()}
    assert compose == {"crossrank/gateway": version, "crossrank/triton-cpu": version, "crossrank/export": version}
    assert _yaml(DOCKER / "compose.gpu.yaml")["services"]["triton"]["image"] == f"crossrank/triton:{gpu_triton}"
    # `make images` builds exactly the CPU images the manifests and the compose stack name.
    built = re.search(r'^IMAGES="([^"]+)"$', (DOCKER / "build_images.sh").read_text(), re.MULTILINE)
    assert built and {f"crossrank/{name}" for name in built.group(1).split()} == set(compose)
    assert {"crossrank/gateway", "crossrank/export", cpu["newName"]} == set(compose)
    for name in built.group(1).split():
        assert (DOCKER / f"{name}.Dockerfile").exists()
    client_version = re.search(r'^version = "(.+)"$', (ROOT / "client" / "pyproject.toml").read_text(), re.MULTILINE)
    assert client_version and client_version.group(1) == version


def test_gateway_image_ships_no_export_stack() -> None:
    text = (ROOT / "requirements" / "gateway.txt").read_text().lower()
    for heavy in ("torch", "transformers", "tokenizers", "onnxruntime", "pytriton"):
        assert not re.search(rf"^{heavy}\b", text, re.MULTILINE), heavy
    assert "requirements/gateway.txt" in (DOCKER / "gateway.Dockerfile").read_text()
