"""Builds the gateway's grpc.aio server: the crossrank service behind the error interceptor, the
health service (per service, NOT_SERVING until Triton's models are ready) and server reflection."""

from __future__ import annotations

import grpc
from crossrank_client.v1 import crossrank_service_pb2 as pb
from crossrank_client.v1 import crossrank_service_pb2_grpc as pb_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from crossrank.gateway.core.pipeline import RequestPipeline
from crossrank.gateway.core.scoring import CrossEncoderCore
from crossrank.gateway.transport import tei_grpc
from crossrank.gateway.transport.grpc_interceptor import ErrorInterceptor
from crossrank.gateway.transport.grpc_servicer import CrossEncoderServicer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CrossEncoderService"].full_name
HEALTH_SERVICES = ("", SERVICE_NAME)
# SERVING while the gateway process runs, whatever Triton's state: for liveness probes, so that a slow or
# restarting Triton does not get the gateway restarted too.
LIVENESS_SERVICE = "crossrank.liveness"
# gRPC sets SO_REUSEPORT by default: a second server on the same port would start and take half the new
# connections. Off, binding a port in use fails and the second server stops at start.
_NO_REUSEPORT = ("grpc.so_reuseport", 0)


def build_server(core: CrossEncoderCore, max_message_bytes: int, pipeline: RequestPipeline,
                 message_timeout_s: float = 60.0, max_waiting: int = 1024,
                 max_in_flight: int = 0) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """`message_timeout_s`: how long a call may take to deliver its request message; `max_waiting`: how many
    calls may wait for theirs at once (see grpc_receive). No gRPC-wide concurrent-call limit: admission bounds
    the calls that have arrived, and a limit counting calls still waiting for their message would let those
    shut out everyone, health checks included. TEI's `tei.v1` API is served beside crossrank's (tei_grpc.py);
    `max_in_flight` is what its Info reports."""
    server = grpc.aio.server(
        interceptors=[ErrorInterceptor(pipeline, message_timeout_s, max_waiting)],
        options=[("grpc.max_receive_message_length", max_message_bytes),
                 ("grpc.max_send_message_length", max_message_bytes), _NO_REUSEPORT],
    )
    pb_grpc.add_CrossEncoderServiceServicer_to_server(CrossEncoderServicer(core), server)
    tei_grpc.add_to_server(server, core, max_in_flight)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, *tei_grpc.SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME), server)
    return server, health_servicer


def build_health_server(health_servicer: health.aio.HealthServicer) -> grpc.aio.Server:
    """A second server with the same health service only (plaintext, for probes when the API uses TLS)."""
    server = grpc.aio.server(options=[_NO_REUSEPORT])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    return server


def add_port(server: grpc.aio.Server, address: str, cert_file: str = "", key_file: str = "",
             client_ca_file: str = "") -> int:
    """Binds `address`, with TLS when a certificate is given (mutual TLS when a client CA is given too)."""
    if not cert_file:
        return server.add_insecure_port(address)
    with open(cert_file, "rb") as cert, open(key_file, "rb") as key:
        pair = (key.read(), cert.read())
    root = None
    if client_ca_file:
        with open(client_ca_file, "rb") as ca:
            root = ca.read()
    credentials = grpc.ssl_server_credentials([pair], root_certificates=root,
                                              require_client_auth=bool(client_ca_file))
    return server.add_secure_port(address, credentials)


async def set_serving(health_servicer: health.aio.HealthServicer, serving: bool, live: bool = True) -> None:
    """Readiness (`serving`, for "" and the API's service) and liveness (`live`: false only when the gateway
    gave up healing its backend, so that the orchestrator restarts it)."""
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in HEALTH_SERVICES:
        await health_servicer.set(name, status)
    await health_servicer.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING if live
                              else health_pb2.HealthCheckResponse.NOT_SERVING)
