"""The gateway assembled from its settings, in named steps: build the core, open the transports, install the
signals, drain and stop.

`crossrank serve` (app.py) runs these steps around the Triton backend's lifecycle; the tests' in-process
gateway runs the same steps over a fake backend, so both wire the same parts the same way.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health

from crossrank.gateway.backend.base import ScoringBackend
from crossrank.gateway.core.admission import ApiKeys, Limiter, read_key_file
from crossrank.gateway.core.metrics import GatewayMetrics
from crossrank.gateway.core.pipeline import CLOSE_GRACE_S, RequestPipeline
from crossrank.gateway.core.scoring import CrossEncoderCore
from crossrank.gateway.transport.grpc_server import add_port, build_health_server, build_server, set_serving
from crossrank.settings import Settings

if TYPE_CHECKING:
    from aiohttp import web

logger = logging.getLogger(__name__)

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StartupError(RuntimeError):
    """The server could not start; the message says why."""


class Readiness:
    """Whether the models can take requests, as the monitor last saw it (for the HTTP /health)."""

    serving = False

    def __call__(self) -> bool:
        return self.serving


@dataclass
class Core:
    """What the transports serve: the core and the pipeline every call goes through."""

    core: CrossEncoderCore
    pipeline: RequestPipeline
    metrics: GatewayMetrics
    readiness: Readiness
    api_keys: int  # how many keys are configured (for the start-up line; the keys are never logged)


@dataclass
class Transports:
    """The open doors: gRPC (with health and reflection), the optional health-only, HTTP and metrics ports."""

    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    health_server: grpc.aio.Server | None = None
    http_runner: web.AppRunner | None = None  # aiohttp is imported only when HTTP is on
    http_port: int = -1
    metrics_port: int = -1


def build_core(settings: Settings, backend: ScoringBackend) -> Core:
    """Step 1: the core over `backend`, and the request pipeline (API keys, admission, metrics, access log)."""
    metrics = GatewayMetrics()
    core = CrossEncoderCore(backend, settings.limits, settings.default_model, metrics)
    keys = list(settings.api_keys) + (read_key_file(settings.api_keys_file) if settings.api_keys_file else [])
    limiter = Limiter(settings.max_in_flight, settings.max_queue, settings.max_inflight_bytes)
    pipeline = RequestPipeline(metrics, ApiKeys(keys), limiter, core.model_names)
    return Core(core, pipeline, metrics, Readiness(), len(keys))


async def open_transports(settings: Settings, built: Core) -> Transports:
    """Step 2: the metrics port, the gRPC port (health NOT_SERVING until the monitor says otherwise), the
    health-only port and the HTTP port, as the settings ask; a port that cannot be bound stops the start with
    one line naming it."""
    metrics_port = -1
    if settings.metrics_port >= 0:
        try:
            metrics_port = built.metrics.serve(settings.host, settings.metrics_port)
        except OSError as exc:
            address = f"{settings.host}:{settings.metrics_port}"
            raise StartupError(_cannot_listen(address, "metrics port", exc)) from None
    # A gRPC message arrives whole or not at all, so its deadline is the read timeout plus the time the
    # largest message takes at the floor rate; at most as many calls wait for theirs as admission admits.
    message_timeout_s = settings.read_timeout_s + settings.max_message_bytes / settings.min_read_bytes_per_s
    server, health_servicer = build_server(built.core, settings.max_message_bytes, built.pipeline,
                                           message_timeout_s, max_waiting=settings.max_in_flight + settings.max_queue,
                                           max_in_flight=settings.max_in_flight)
    await set_serving(health_servicer, False)
    address = f"{settings.host}:{settings.port}"
    try:
        port = add_port(server, address, settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
    except RuntimeError:
        # gRPC says only that binding failed; with SO_REUSEPORT off that is a port in use or a bad address.
        raise StartupError(_cannot_listen(address, "gRPC port")) from None
    await server.start()
    opened = Transports(server, health_servicer, port, metrics_port=metrics_port)
    if settings.health_port >= 0:
        opened.health_server = build_health_server(health_servicer)
        health_address = f"{settings.host}:{settings.health_port}"
        try:
            bound = opened.health_server.add_insecure_port(health_address)
        except RuntimeError:
            await server.stop(None)
            raise StartupError(_cannot_listen(health_address, "health port")) from None
        await opened.health_server.start()
        logger.info("health service also on %s:%d (plaintext, health only)", settings.host, bound)
    if settings.http_port >= 0:
        from crossrank.gateway.transport import http_api

        try:
            tls = (http_api.tls_context(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
                   if settings.tls_cert_file else None)
            api = http_api.HttpApi(built.core, built.pipeline, built.readiness, settings.max_message_bytes,
                                   settings.http_timeout_s, max_in_flight=settings.max_in_flight,
                                   read_timeout_s=settings.read_timeout_s,
                                   min_read_bytes_per_s=settings.min_read_bytes_per_s,
                                   header_timeout_s=settings.http_header_timeout_s)
            opened.http_runner, opened.http_port = await http_api.start(api, settings.host, settings.http_port, tls)
        except OSError as exc:
            await server.stop(None)
            raise StartupError(_cannot_listen(f"{settings.host}:{settings.http_port}", "HTTP port", exc)) from None
    security = ("mutual TLS" if settings.tls_client_ca_file else "TLS") if settings.tls_cert_file else "plaintext"
    logger.info("gateway listening on %s:%d (gRPC, %s, %s; health NOT_SERVING until the models are ready)",
                settings.host, port, security,
                f"{built.api_keys} API keys" if built.api_keys else "no API key required")
    return opened


def install_signals(stop: asyncio.Event) -> Callable[[], None]:
    """Step 3: SIGTERM and SIGINT set `stop`; returns what removes the handlers again."""
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, stop.set)

    def remove() -> None:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
    return remove


async def drain_and_stop(opened: Transports, pipeline: RequestPipeline, grace_s: float | None) -> None:
    """Step 4: health NOT_SERVING, new requests refused (UNAVAILABLE), in-flight ones finish within `grace_s`,
    every port closed."""
    await set_serving(opened.health, False)
    left = await pipeline.drain(grace_s)
    runner = opened.http_runner
    if runner is not None:
        await runner.shutdown()
    await opened.server.stop(None if left is None else min(left, CLOSE_GRACE_S))
    if runner is not None:
        await runner.cleanup()
    if opened.health_server is not None:
        await opened.health_server.stop(None)


def _cannot_listen(address: str, what: str, exc: OSError | None = None) -> str:
    """One line for a port that cannot be bound: a second server on a port in use must not start, nor share it."""
    if exc is None:
        reason = "the port is in use (another server listens on it) or the address is invalid"
    elif exc.errno == errno.EADDRINUSE:
        reason = "the port is in use (another server listens on it)"
    else:
        reason = exc.strerror or str(exc)
    return f"cannot listen on {address} ({what}): {reason}"
