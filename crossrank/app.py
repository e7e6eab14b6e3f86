"""`crossrank serve`: the gateway's lifecycle, from start-up to a clean stop.

Order matters for probes and for users: the gRPC port opens first with health NOT_SERVING (calls get
UNAVAILABLE), then missing models are exported and, in embedded mode, Triton is started; a monitor turns
health SERVING once Triton and its models are ready, and back when they are not. SIGTERM or SIGINT turns
health NOT_SERVING, lets in-flight requests finish within the grace period, then stops Triton.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import signal

from crossrank.embedded_triton.launcher import EmbeddedTriton, LauncherError, TritonOptions
from crossrank.gateway.backend.triton import TritonBackend
from crossrank.gateway.core.admission import ApiKeys, Limiter, read_key_file
from crossrank.gateway.core.errors import CrossrankError
from crossrank.gateway.core.metrics import GatewayMetrics
from crossrank.gateway.core.pipeline import RequestPipeline
from crossrank.gateway.core.scoring import CrossEncoderCore
from crossrank.gateway.transport.grpc_server import add_port, build_health_server, build_server, set_serving
from crossrank.settings import Settings

logger = logging.getLogger(__name__)

_MONITOR_INTERVAL_S = 1.0
_RESTART_BACKOFF_S = (1.0, 30.0)  # first and longest wait before restarting a dead embedded Triton
_STABLE_AFTER_S = 60.0  # a Triton that ran this long before dying restarts after the shortest wait


class StartupError(RuntimeError):
    """The server could not start; the message says why."""


class ServerStoppedError(RuntimeError):
    """The server stopped itself because a part it cannot run without failed; the message says which."""


class Readiness:
    """Whether the models can take requests, as the monitor last saw it (for the HTTP /health)."""

    serving = False

    def __call__(self) -> bool:
        return self.serving


async def _monitor(backend: TritonBackend, core: CrossEncoderCore, health: object,
                   triton: EmbeddedTriton | None, started: asyncio.Event, metrics: GatewayMetrics,
                   readiness: Readiness) -> None:
    serving = False
    while True:
        try:
            ready = started.is_set() and await backend.ready()
            if ready and not serving:
                try:
                    models = await core.refresh_models()
                except CrossrankError:
                    models = []
                if models:
                    logger.info("serving %s (default %s)", ", ".join(m.name for m in models), core.default_model)
                ready = bool(models)
            if triton is not None and started.is_set() and not triton.running:
                ready = False
        except Exception:  # never freeze health in its last state: a check that fails means not ready
            logger.exception("readiness check failed; health is NOT_SERVING until a check succeeds")
            ready = False
        metrics.triton_ready.set(1 if ready else 0)
        if ready != serving:
            serving = readiness.serving = ready
            await set_serving(health, serving)
            logger.info("health: %s", "SERVING" if serving else "NOT_SERVING")
        await asyncio.sleep(_MONITOR_INTERVAL_S)


async def _supervise(triton: EmbeddedTriton, started: asyncio.Event) -> None:
    """Restarts an embedded Triton that died, with exponential backoff while it keeps dying soon after start."""
    await started.wait()
    backoff = _RESTART_BACKOFF_S[0]
    while True:
        up_since = asyncio.get_running_loop().time()
        code = await triton.wait_exit()
        if asyncio.get_running_loop().time() - up_since < _STABLE_AFTER_S:
            backoff = min(backoff * 2, _RESTART_BACKOFF_S[1])
        else:
            backoff = _RESTART_BACKOFF_S[0]
        logger.error("Triton exited unexpectedly (exit code %s); requests get UNAVAILABLE; restarting in %.0f s",
                     code, backoff)
        await asyncio.sleep(backoff)
        try:
            await triton.restart()
            logger.info("Triton restarted")
        except LauncherError as exc:
            logger.error("Triton restart failed: %s", str(exc).splitlines()[0])
        except Exception:  # keep supervising: the next round tries again after its backoff
            logger.exception("Triton restart failed")


async def serve(settings: Settings) -> None:
    """Runs the gateway (and the embedded Triton) until SIGTERM or SIGINT."""
    triton = None if settings.triton_url else EmbeddedTriton(TritonOptions(
        settings.repository, startup_timeout_s=settings.triton_startup_timeout_s,
        grpc_port=settings.triton_grpc_port, metrics_port=settings.triton_metrics_port))
    url = settings.triton_url or (triton.reserve_ports() if triton else "")
    backend = TritonBackend(url)
    metrics = GatewayMetrics()
    if settings.metrics_port >= 0:
        try:
            metrics.serve(settings.host, settings.metrics_port)
        except OSError as exc:
            address = f"{settings.host}:{settings.metrics_port}"
            raise StartupError(_cannot_listen(address, "metrics port", exc)) from None
    core = CrossEncoderCore(backend, settings.limits, settings.default_model, metrics)
    keys = list(settings.api_keys) + (read_key_file(settings.api_keys_file) if settings.api_keys_file else [])
    limiter = Limiter(settings.max_in_flight, settings.max_queue, settings.max_inflight_bytes)
    api_keys, readiness = ApiKeys(keys), Readiness()
    pipeline = RequestPipeline(metrics, api_keys, limiter, core.model_names)
    # A gRPC message arrives whole or not at all, so its deadline is the read timeout plus the time the
    # largest message takes at the floor rate; at most as many calls wait for theirs as admission admits.
    message_timeout_s = settings.read_timeout_s + settings.max_message_bytes / settings.min_read_bytes_per_s
    server, health = build_server(core, settings.max_message_bytes, pipeline, message_timeout_s,
                                  max_waiting=settings.max_in_flight + settings.max_queue)
    await set_serving(health, False)
    address = f"{settings.host}:{settings.port}"
    try:
        port = add_port(server, address, settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
    except RuntimeError:
        # gRPC says only that binding failed; with SO_REUSEPORT off that is a port in use or a bad address.
        raise StartupError(_cannot_listen(address, "gRPC port")) from None
    await server.start()
    health_server = None
    if settings.health_port >= 0:
        health_server = build_health_server(health)
        health_address = f"{settings.host}:{settings.health_port}"
        try:
            bound = health_server.add_insecure_port(health_address)
        except RuntimeError:
            await server.stop(None)
            raise StartupError(_cannot_listen(health_address, "health port")) from None
        await health_server.start()
        logger.info("health service also on %s:%d (plaintext, health only)", settings.host, bound)
    http_runner = None
    if settings.http_port >= 0:
        from crossrank.gateway.transport import http_api

        try:
            tls = (http_api.tls_context(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
                   if settings.tls_cert_file else None)
            api = http_api.HttpApi(core, pipeline, readiness, settings.max_message_bytes, settings.http_timeout_s,
                                   settings.read_timeout_s, settings.min_read_bytes_per_s,
                                   settings.http_header_timeout_s)
            http_runner, _ = await http_api.start(api, settings.host, settings.http_port, tls)
        except OSError as exc:
            await server.stop(None)
            raise StartupError(_cannot_listen(f"{settings.host}:{settings.http_port}", "HTTP port", exc)) from None
    security = ("mutual TLS" if settings.tls_client_ca_file else "TLS") if settings.tls_cert_file else "plaintext"
    logger.info("gateway listening on %s:%d (gRPC, %s, %s; health NOT_SERVING until the models are ready)",
                settings.host, port, security, f"{len(keys)} API keys" if keys else "no API key required")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = asyncio.Event()
    monitor = asyncio.create_task(_monitor(backend, core, health, triton, started, metrics, readiness))
    supervisor = asyncio.create_task(_supervise(triton, started)) if triton is not None else None
    # A background task that ends anyway takes the server down loudly rather than leaving it half alive.
    died: list[str] = []
    for task, name in ((monitor, "readiness monitor"), (supervisor, "Triton supervisor")):
        if task is not None:
            task.add_done_callback(functools.partial(_on_task_end, name=name, died=died, stop=stop))
    try:
        exporting = asyncio.Event()
        startup = asyncio.create_task(_start_backend(settings, triton, core, exporting))
        await asyncio.wait({startup, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if startup.done():
            startup.result()  # raises the start-up failure, if any
            started.set()
            await stop.wait()
        else:
            startup.cancel()
            if exporting.is_set():
                # An export runs in a worker thread, which cannot be interrupted safely; it finishes (and
                # leaves the repository whole) before the process exits.
                logger.warning("stopping during the first start's export: the export finishes before the "
                               "process exits (about half a minute on two cores); a second signal ends it at "
                               "once, and the next start exports again")
        logger.info("shutting down: refusing new requests, draining in-flight ones (up to %.0f s)",
                    settings.shutdown_grace_s)
    finally:
        monitor.cancel()
        if supervisor is not None:
            supervisor.cancel()
        await set_serving(health, False)
        if http_runner is not None:
            await http_runner.shutdown()  # stop taking new HTTP requests; in-flight ones finish below
        await server.stop(settings.shutdown_grace_s)
        if http_runner is not None:
            await http_runner.cleanup()
        if health_server is not None:
            await health_server.stop(None)
        await backend.close()
        if triton is not None:
            await triton.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        logger.info("stopped")
    if died:
        raise ServerStoppedError(f"stopped because the {died[0]} ended unexpectedly (see the log above)")


def _cannot_listen(address: str, what: str, exc: OSError | None = None) -> str:
    """One line for a port that cannot be bound: a second server on a port in use must not start, nor share it."""
    if exc is None:
        reason = "the port is in use (another server listens on it) or the address is invalid"
    elif exc.errno == errno.EADDRINUSE:
        reason = "the port is in use (another server listens on it)"
    else:
        reason = exc.strerror or str(exc)
    return f"cannot listen on {address} ({what}): {reason}"


def _on_task_end(task: asyncio.Task[None], name: str, died: list[str], stop: asyncio.Event) -> None:
    if task.cancelled():
        return
    error = task.exception()
    logger.critical("the %s ended unexpectedly (%r): stopping the server", name, error)
    died.append(name)
    stop.set()


async def _start_backend(settings: Settings, triton: EmbeddedTriton | None, core: CrossEncoderCore,
                         exporting: asyncio.Event) -> None:
    if triton is None:
        return
    # Export needs torch and transformers; a gateway in front of an external Triton never imports them.
    from crossrank.embedded_triton.model_setup import ensure_models

    exporting.set()
    try:
        names = await asyncio.to_thread(ensure_models, settings.models, settings.repository)
    finally:
        exporting.clear()
    if names and not settings.default_model:
        core.set_default(names[0])
    try:
        await triton.start()
    except LauncherError as exc:
        raise StartupError(str(exc)) from exc
