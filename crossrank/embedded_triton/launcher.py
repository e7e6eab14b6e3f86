"""Embedded mode: runs the pip-bundled Triton Inference Server (from `nvidia-pytriton`) as a child process.

The wheel ships the `tritonserver` binary and the python backend, but the backend's stub must sit beside
the backend library, find this interpreter's site-packages through the `python3` on PATH, and link the same
libpython. The launcher assembles a private backend folder for that, starts Triton bound to localhost on
free ports, forwards its log, waits until every model is ready, and on stop terminates it, waits for it,
and removes the shared-memory regions of its python-backend models. Triton dies with the launcher even when
the launcher is killed (PR_SET_PDEATHSIG), so no orphan outlives a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import socket
import sys
import sysconfig
import tempfile
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from crossrank.triton_models.cancelled import REGISTER_ENV

logger = logging.getLogger(__name__)
triton_log = logging.getLogger("crossrank.triton")

_PR_SET_PDEATHSIG = 1
# The bundled Triton is a CUDA build; on machines without a GPU it reports the missing driver as errors
# that change nothing for CPU models.
# Triton's output is read in chunks; a longer line than this is forwarded cut.
_LOG_CHUNK_BYTES = 64 * 1024
MAX_LOG_LINE_BYTES = 16 * 1024
_CPU_ONLY_NOISE = ("CUDA driver version is insufficient", "CudaDriverHelper has not been initialized",
                   "Unable to allocate pinned system memory")


class LauncherError(RuntimeError):
    """Triton could not be started; the message carries the end of its log."""


@dataclass(frozen=True)
class TritonOptions:
    repository: Path
    host: str = "127.0.0.1"
    startup_timeout_s: float = 180.0
    stop_timeout_s: float = 60.0
    # How long Triton waits at stop for its in-flight requests and model unloads (its own default: 30 s). The
    # gateway stops Triton only after its drain, when no caller waits for Triton's work any more: a request
    # still running then (past the grace, or one Triton never finishes) is work for nobody.
    exit_timeout_s: int = 5
    log_verbose: int = 0
    grpc_port: int = 0  # 0 = a free port
    metrics_port: int = 0


def triton_package_dir() -> Path:
    """The Triton to run: `CROSSRANK_TRITON_DIR` (bin/, backends/python/, optional libs/) or the pip wheel's."""
    override = os.environ.get("CROSSRANK_TRITON_DIR")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise LauncherError("the pip-bundled Triton is missing: install nvidia-pytriton==0.7.0")
    return Path(next(iter(spec.submodule_search_locations))) / "tritonserver"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# Triton gets SIGTERM when the launcher dies (PR_SET_PDEATHSIG survives exec). It is set by a tiny Python
# that then execs Triton, not by a preexec_fn: a preexec_fn forces a plain fork() of this process, whose gRPC
# threads (the gateway, the Triton client) make the child fail at random before exec ("epoll_wait error: Bad
# file descriptor", seen once in a fresh-clone test run); without one, the child is spawned with vfork.
_EXEC_WITH_PDEATHSIG = (
    "import ctypes, os, signal, sys\n"
    "try:\n"
    f"    ctypes.CDLL('libc.so.6', use_errno=True).prctl({_PR_SET_PDEATHSIG}, signal.SIGTERM)\n"
    "except Exception:\n"
    "    pass\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


class EmbeddedTriton:
    """One Triton child process serving `options.repository`."""

    def __init__(self, options: TritonOptions) -> None:
        self._options = options
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._log_tail: deque[str] = deque(maxlen=40)
        self._workdir: Path | None = None
        self._shm_prefix = f"crossrank_{os.getpid()}_{uuid.uuid4().hex[:8]}_"
        self.grpc_port = 0
        self.metrics_port = 0

    @property
    def url(self) -> str:
        return f"{self._options.host}:{self.grpc_port}"

    @property
    def pid(self) -> int:
        return self._process.pid if self._process is not None else 0

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def _prepare_backends(self, package: Path) -> Path:
        self._workdir = Path(tempfile.mkdtemp(prefix="crossrank-triton-"))
        python = self._workdir / "backends" / "python"
        python.mkdir(parents=True)
        for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
            shutil.copy2(package / "backends" / "python" / name, python / name)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = package / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.exists():  # a Triton laid out for one Python: the stub sits beside the backend
            stub = package / "backends" / "python" / "triton_python_backend_stub"
        if not stub.exists():
            raise LauncherError(f"the bundled Triton has no python backend stub for Python {version}")
        shutil.copy2(stub, python / "triton_python_backend_stub")
        return self._workdir / "backends"

    def _environment(self, package: Path) -> dict[str, str]:
        env = dict(os.environ)
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        # The stub is copied out of the wheel, so its relative RPATH no longer finds the wheel's bundled
        # libraries (libcudart and friends); name their folder explicitly.
        bundled = str(package / "libs") if (package / "libs").is_dir() else \
            str(package.parent.parent / "nvidia_pytriton.libs")
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (libdir, bundled, env.get("LD_LIBRARY_PATH", "")) if p)
        if self._workdir is not None:  # the register of abandoned requests goes with this Triton's scratch folder
            env[REGISTER_ENV] = str(self._workdir / "cancelled")
        return env

    def reserve_ports(self) -> str:
        """Picks Triton's ports now, so that clients can be built before it starts; returns its address."""
        if not self.grpc_port:
            self.grpc_port = self._options.grpc_port or free_port(self._options.host)
            self.metrics_port = self._options.metrics_port or free_port(self._options.host)
        return self.url

    async def start(self) -> str:
        """Starts Triton and waits until it and all its models are ready; returns its gRPC address."""
        package = triton_package_dir()
        backends = self._prepare_backends(package)
        self.reserve_ports()
        args = [
            str(package / "bin" / "tritonserver"),
            f"--model-repository={self._options.repository.resolve()}",
            f"--backend-directory={backends}",
            f"--cache-directory={package / 'caches'}",
            "--allow-http=false",
            f"--grpc-address={self._options.host}", f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self._options.host}", f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            "--strict-readiness=true",
            f"--exit-timeout-secs={self._options.exit_timeout_s}",
            f"--log-verbose={self._options.log_verbose}",
            f"--backend-config=python,shm-region-prefix-name={self._shm_prefix}",
        ]
        logger.info("starting Triton on %s (metrics on port %d) for %s", self.url, self.metrics_port,
                    self._options.repository)
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", "-c", _EXEC_WITH_PDEATHSIG, *args, env=self._environment(package),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._forward_log())
        await self._wait_ready()
        logger.info("Triton is ready on %s", self.url)
        return self.url

    async def wait_exit(self, timeout: float | None = None) -> int | None:
        """Waits until the Triton process exits; returns its exit code (None on timeout).

        Polls the exit status instead of awaiting `Process.wait()`: that also waits for Triton's stdout to
        close, which python-backend stubs inherit and can hold open after Triton itself has died.
        """
        assert self._process is not None
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._process.returncode is None:
            if deadline is not None and loop.time() > deadline:
                return None
            await asyncio.sleep(0.1)
        return self._process.returncode

    def dead_stubs(self) -> list[int]:
        """Triton's python-backend stubs that died (killed, OOM-killed) while Triton runs on. Triton neither
        restarts nor reaps them: each stays a zombie child of Triton, and its model fails every request."""
        if not self.running:
            return []
        dead = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # gone meanwhile
            if int(fields[1]) == self.pid and fields[0] in ("Z", "X"):
                dead.append(int(stat.parent.name))
        return dead

    def kill(self) -> None:
        """Kills Triton and its stubs at once (SIGKILL to the process group): the supervisor restarts it."""
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)

    async def restart(self) -> str:
        """Cleans up after a dead (or live) Triton and starts a new one on the same ports."""
        await self.stop()
        self._log_tail.clear()
        return await self.start()

    async def _forward_log(self) -> None:
        """Forwards Triton's output line by line. Reads in chunks rather than `readline()`, which fails on a
        line over its 64 KiB limit: the reader would stop, Triton's pipe fill, and Triton block on its log."""
        assert self._process is not None and self._process.stdout is not None
        pending = b""
        while chunk := await self._process.stdout.read(_LOG_CHUNK_BYTES):
            *lines, pending = (pending + chunk).split(b"\n")
            if len(pending) > MAX_LOG_LINE_BYTES:  # a line without an end in sight: forward what came
                lines.append(pending)
                pending = b""
            for line in lines:
                self._forward_line(line)
        if pending:
            self._forward_line(pending)

    def _forward_line(self, line: bytes) -> None:
        if len(line) > MAX_LOG_LINE_BYTES:
            line = line[:MAX_LOG_LINE_BYTES] + b" [cut: line over %d bytes]" % MAX_LOG_LINE_BYTES
        text = line.decode("utf-8", errors="replace").rstrip()
        if not text:
            return
        self._log_tail.append(text)
        # Triton's glog lines start with I/W/E: keep its warnings and errors visible, the rest at debug.
        level = {"E": logging.ERROR, "W": logging.WARNING}.get(text[:1], logging.DEBUG)
        if any(noise in text for noise in _CPU_ONLY_NOISE):
            level = logging.DEBUG
        triton_log.log(level, "%s", text)

    async def _wait_ready(self) -> None:
        import tritonclient.grpc.aio as triton

        client = triton.InferenceServerClient(self.url)
        deadline = asyncio.get_running_loop().time() + self._options.startup_timeout_s
        try:
            while True:
                if not self.running:
                    await self._drain_reader()
                    await self.stop()
                    raise LauncherError("Triton exited while starting:\n" + "\n".join(self._log_tail))
                with contextlib.suppress(Exception):
                    if await client.is_server_ready():
                        return
                if asyncio.get_running_loop().time() > deadline:
                    await self.stop()
                    raise LauncherError(f"Triton was not ready after {self._options.startup_timeout_s:.0f} s:\n"
                                        + "\n".join(self._log_tail))
                await asyncio.sleep(0.2)
        finally:
            await client.close()

    async def _drain_reader(self) -> None:
        """Lets the log reader forward Triton's last lines (2 s at most), then ends it: python-backend stubs
        that outlive Triton can hold its pipe open. Never raises, also when a cancelled caller (a restart cut
        short by SIGTERM) already cancelled the reader, so that stopping still cleans up."""
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=2.0)
            self._reader.cancel()

    async def stop(self) -> None:
        """Stops Triton (SIGTERM, then SIGKILL after the stop timeout) and cleans up after it."""
        process = self._process
        if process is not None and process.returncode is None and self.dead_stubs():
            # Triton would wait its whole exit timeout (30 s) for the dead stub's model to unload: nothing is
            # left to finish gracefully in a model whose process is gone, so end it now.
            logger.warning("a python-backend stub of Triton is dead: killing Triton instead of waiting for it")
            self.kill()
            await self.wait_exit(10)
        if process is not None and process.returncode is None:
            logger.info("stopping Triton")
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            if await self.wait_exit(self._options.stop_timeout_s) is None:
                logger.warning("Triton did not stop within %.0f s; killing it", self._options.stop_timeout_s)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await self.wait_exit(10)
        if process is not None:
            # Python-backend stubs are in Triton's process group; none may outlive it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        await self._drain_reader()
        self._cleanup()

    def _cleanup(self) -> None:
        for region in Path("/dev/shm").glob(f"{self._shm_prefix}*"):
            with contextlib.suppress(OSError):
                region.unlink()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
