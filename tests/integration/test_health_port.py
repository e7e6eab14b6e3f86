"""The plaintext health-only port (for probes when the API port has TLS): same health states, no API."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
from crossrank_client.v1 import crossrank_service_pb2 as pb
from crossrank_client.v1 import crossrank_service_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crossrank.embedded_triton.launcher import free_port
from tests.e2e.server_process import ServerProcess


def _status(target: str, service: str) -> int:
    with grpc.insecure_channel(target) as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                             timeout=2).status
        except grpc.RpcError:
            return -1


def test_health_port_mirrors_health_and_serves_nothing_else(tmp_path: Path) -> None:
    health_port = free_port()
    server = ServerProcess(["--triton-url", f"127.0.0.1:{free_port()}"], log=tmp_path / "s.log",
                           env={"CROSSRANK_HEALTH_PORT": str(health_port)})
    target = f"127.0.0.1:{health_port}"
    try:
        deadline = time.monotonic() + 30
        while _status(target, "crossrank.liveness") != health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        # Triton is absent: not ready, on both ports alike.
        assert _status(target, "crossrank.v1.CrossEncoderService") == health_pb2.HealthCheckResponse.NOT_SERVING
        assert server.health("crossrank.v1.CrossEncoderService") == health_pb2.HealthCheckResponse.NOT_SERVING
        with grpc.insecure_channel(target) as channel:
            try:
                pb_grpc.CrossEncoderServiceStub(channel).ListModels(pb.ListModelsRequest(), timeout=2)
                raise AssertionError("the health port must not serve the API")
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        assert server.terminate() == 0
