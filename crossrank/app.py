"""`crossrank serve`: the gateway's lifecycle, from start-up to a clean stop, around the steps of assembly.py.

Order matters for probes and for users: the gRPC port opens first with health NOT_SERVING (calls get
UNAVAILABLE), then missing models are exported and, in embedded mode, Triton is started; a monitor turns
health SERVING once Triton and its models are ready, and back when they are not. SIGTERM or SIGINT turns
health NOT_SERVING, lets in-flight requests finish within the grace period, then stops Triton.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from crossrank.assembly import (
    Readiness,
    StartupError,
    build_core,
    drain_and_stop,
    install_signals,
    open_transports,
)
from crossrank.embedded_triton.launcher import EmbeddedTriton, LauncherError, TritonOptions
from crossrank.gateway.backend.triton import TritonBackend
from crossrank.gateway.core.errors import CrossrankError
from crossrank.gateway.core.metrics import GatewayMetrics
from crossrank.gateway.core.scoring import CrossEncoderCore
from crossrank.gateway.transport.grpc_server import set_serving
from crossrank.model_info import ModelInfo
from crossrank.settings import Settings

logger = logging.getLogger(__name__)

_MONITOR_INTERVAL_S = 1.0
_RESTART_BACKOFF_S = (1.0, 30.0)  # first and longest wait before restarting a dead embedded Triton
_STABLE_AFTER_S = 60.0  # a Triton that ran this long before dying restarts after the shortest wait
# A backend fault (a dead python-backend stub, a dead embedded Triton) unhealed this long fails liveness.
_LIVENESS_AFTER_S = 90.0


class ServerStoppedError(RuntimeError):
    """The server stopped itself because a part it cannot run without failed; the message says which."""


class _Faults:
    """The backend faults the monitor heals: since when one is unhealed, for liveness."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.live = True

    def seen(self, now: float) -> None:
        if self.since is None:
            self.since = now

    def healed(self) -> None:
        self.since = None

    def unhealed_for(self, now: float) -> float:
        return 0.0 if self.since is None else now - self.since


def _stub_fault(backend: TritonBackend, triton: EmbeddedTriton | None,
                started: asyncio.Event) -> tuple[str, ModelInfo | None]:
    """What says a python-backend stub died ("" = nothing), with the model a request found so: a dead stub
    among the embedded Triton's children, or a request Triton refused because its model's stub is not healthy."""
    model = backend.take_stub_fault()
    if triton is not None:
        dead = triton.dead_stubs() if started.is_set() else []
        # Embedded: the process table is the truth; a late request error may predate the last restart.
        return (f"Triton's python-backend process {dead[0]} died" if dead else ""), None
    return (f"a python-backend process of model {model.name} died" if model is not None else ""), model


async def _monitor(backend: TritonBackend, core: CrossEncoderCore, health: object,
                   triton: EmbeddedTriton | None, started: asyncio.Event, metrics: GatewayMetrics,
                   readiness: Readiness) -> None:
    serving = False
    faults = _Faults()
    faulted: ModelInfo | None = None  # external mode: the model whose stub died, probed until it answers
    loop = asyncio.get_running_loop()
    while True:
        try:
            fault, model = _stub_fault(backend, triton, started)
            if fault and triton is not None and triton.running:
                # Triton never restarts a dead stub, and reloading its model waits for the dead process; a
                # restart of Triton (the supervisor's job once it is gone) starts every stub anew.
                logger.error("%s: health NOT_SERVING, requests get UNAVAILABLE; restarting Triton", fault)
                faults.seen(loop.time())
                triton.kill()
            elif fault and triton is None:
                if faulted is None:
                    logger.error("%s: health NOT_SERVING until it answers again (an external Triton is not "
                                 "restarted by the gateway)", fault)
                faulted = model or faulted
                faults.seen(loop.time())
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
                faults.seen(loop.time())
            if ready and faulted is not None:
                if await backend.probe(faulted):
                    faulted = None
                    backend.take_stub_fault()
                else:
                    ready = False
        except Exception:  # never freeze health in its last state: a check that fails means not ready
            logger.exception("readiness check failed; health is NOT_SERVING until a check succeeds")
            ready = False
        if ready:
            faults.healed()
        # Liveness fails only when a fault stays unhealed: the orchestrator then restarts the gateway (and, in
        # embedded mode, Triton with it). A Triton that is merely absent (external mode, at start) is not one.
        live = faults.unhealed_for(loop.time()) < _LIVENESS_AFTER_S
        metrics.triton_ready.set(1 if ready else 0)
        if ready != serving or live != faults.live:
            if not live and faults.live:
                logger.critical("the backend has not recovered for %.0f s: liveness NOT_SERVING, so that the "
                                "orchestrator restarts the server", _LIVENESS_AFTER_S)
            serving = readiness.serving = ready
            faults.live = live
            await set_serving(health, serving, live)
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
    built = build_core(settings, backend)
    opened = await open_transports(settings, built)
    stop = asyncio.Event()
    remove_signals = install_signals(stop)
    started = asyncio.Event()
    monitor = asyncio.create_task(_monitor(backend, built.core, opened.health, triton, started, built.metrics,
                                           built.readiness))
    supervisor = asyncio.create_task(_supervise(triton, started)) if triton is not None else None
    # A background task that ends anyway takes the server down loudly rather than leaving it half alive.
    died: list[str] = []
    for task, name in ((monitor, "readiness monitor"), (supervisor, "Triton supervisor")):
        if task is not None:
            task.add_done_callback(functools.partial(_on_task_end, name=name, died=died, stop=stop))
    try:
        exporting = asyncio.Event()
        startup = asyncio.create_task(_start_backend(settings, triton, built.core, exporting))
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
        await drain_and_stop(opened, built.pipeline, settings.shutdown_grace_s)
        await backend.close()
        if triton is not None:
            await triton.stop()
        remove_signals()
        logger.info("stopped")
    if died:
        raise ServerStoppedError(f"stopped because the {died[0]} ended unexpectedly (see the log above)")


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
