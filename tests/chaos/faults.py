"""The faults the chaos soak applies to a running `crossrank serve`, each one as production would meet it:
a python-backend stub killed (the OOM killer), Triton paused (a frozen node), an HTTP upload that declares
16 MiB and stalls, and 400 gRPC calls whose request message never comes. Each injector checks that it really
did what it says (the stub is gone, Triton is stopped, the connection and the calls are open) and reports it,
so a soak that passes cannot pass because a fault missed.

The stalled upload and the half-open calls are opened while the load pauses for a moment (the soak's `Gate`):
a gateway idle for a moment is where a slow client does its harm in production (it is admitted, then holds
what it was given), while under continuous load it may only ever be refused, which would prove nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import grpc.aio
import psutil

from tests.e2e.server_process import ServerProcess, alive, children

STUB_NAME = "triton_python_backend_stub"
STALLED_DECLARED_BYTES = 16 * 1024 * 1024
HALF_OPEN_CALLS = 400
HALF_OPEN_CHANNELS = 4  # separate connections, as separate clients would open them
PAUSE_S = 10.0
STALL_RETRY_S = 5.0
RERANK_METHOD = "/crossrank.v1.CrossEncoderService/Rerank"


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _state(pid: int) -> str:
    """The one-letter process state from /proc (R, S, T for stopped, Z, ...); empty when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def triton_pid(server: ServerProcess) -> int:
    """The gateway's current tritonserver child (a restarted Triton has a new pid)."""
    for pid in children(server.process.pid):
        if _comm(pid) == "tritonserver":
            return pid
    raise AssertionError("the gateway has no tritonserver child")


def stub_pids(server: ServerProcess, role: str) -> list[int]:
    """Live python-backend stubs of the models whose name ends with `_<role>` (tokenizer or encoder).

    A stub's command line carries its model's `model.py` path, `<repository>/<model>/<version>/model.py`."""
    found = []
    for pid in children(server.process.pid):
        try:
            cmdline = psutil.Process(pid).cmdline()
        except psutil.Error:
            continue
        if not cmdline or Path(cmdline[0]).name != STUB_NAME or not alive(pid):
            continue
        if any(f"_{role}/" in arg for arg in cmdline[1:]):
            found.append(pid)
    return found


def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


@dataclass
class Fault:
    """One applied fault: its kind (a-d), what was done, and when (monotonic seconds)."""

    kind: str
    detail: str
    applied_at: float
    facts: dict[str, object] = field(default_factory=dict)

    async def release(self) -> None:
        """Ends what the fault still holds open (nothing for a kill)."""


def kill_stub(server: ServerProcess, role: str) -> Fault:
    """(a) SIGKILL one python-backend stub of the `role` model, as the OOM killer would."""
    pids = stub_pids(server, role)
    assert pids, f"no {STUB_NAME} process of the {role} model under the gateway"
    victim = pids[0]
    os.kill(victim, signal.SIGKILL)
    applied = time.monotonic()
    # Triton reaps its child; until then it is a zombie, which `alive` counts as dead.
    assert _wait_for(lambda: not alive(victim), 5), f"the {role} stub {victim} survived SIGKILL"
    return Fault("a", f"SIGKILL {role} stub pid {victim}", applied, {"pid": victim, "role": role})


class PausedTriton(Fault):
    """(b) Triton stopped with SIGSTOP for PAUSE_S seconds, then continued with SIGCONT."""

    def __init__(self, pid: int) -> None:
        super().__init__("b", f"SIGSTOP tritonserver pid {pid} for {PAUSE_S:.0f} s, then SIGCONT",
                         time.monotonic(), {"pid": pid})
        self.pid = pid
        self._continued = False
        self._timer: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, pid: int) -> PausedTriton:
        os.kill(pid, signal.SIGSTOP)
        fault = cls(pid)
        fault._timer = asyncio.get_running_loop().create_task(fault._continue_later())
        stopped = await asyncio.to_thread(_wait_for, lambda: _state(pid) in ("T", "t"), 5)
        fault.facts["stopped"] = stopped
        if not stopped:
            fault.resume()
            raise AssertionError(f"tritonserver {pid} did not stop on SIGSTOP")
        return fault

    async def _continue_later(self) -> None:
        await asyncio.sleep(PAUSE_S - (time.monotonic() - self.applied_at))
        self.resume()

    def resume(self) -> None:
        """SIGCONT, once; also called on the way out of a failed run so no Triton stays frozen."""
        if self._continued:
            return
        self._continued = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)
        self.facts["paused_s"] = round(time.monotonic() - self.applied_at, 2)

    async def release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.resume()


class _Stall:
    """One HTTP rerank upload that declares `declared` bytes, sends a few and then nothing more."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, declared: int) -> None:
        self.reader, self.writer, self.declared = reader, writer, declared
        self.opened = time.monotonic()
        self.ended_after = 0.0
        self.answer: asyncio.Task[bytes] = asyncio.get_running_loop().create_task(self._first_words())

    @classmethod
    async def open(cls, port: int, declared: int) -> _Stall:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (f"POST /v1/rerank HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {declared}\r\n\r\n")
        writer.write(head.encode() + b'{"query": "stalled", "documents": ["')
        await writer.drain()
        return cls(reader, writer, declared)

    async def _first_words(self) -> bytes:
        """The status line the server answers with, or why the connection ended, whenever that happens."""
        try:
            said = await self.reader.read(200)
        except OSError as exc:
            said = f"({type(exc).__name__})".encode()
        self.ended_after = time.monotonic() - self.opened
        return said.split(b"\r\n", 1)[0] or b"(closed)"

    async def held(self, within: float = 1.0) -> bool:
        """Whether the server still waits for the body after `within` seconds (it neither answered nor closed)."""
        await asyncio.wait([self.answer], timeout=within)
        return not self.answer.done()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
        self.answer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.answer


class StalledUpload(Fault):
    """(c) An HTTP rerank upload that declares a 16 MiB body, sends a few bytes and then nothing more, kept open
    until released. Opened while the load pauses (see `Gate`); should the server refuse it at once, it is tried
    again for STALL_RETRY_S. Whether and when the server hangs up on it is recorded, not required."""

    def __init__(self, stall: _Stall, refused: list[str]) -> None:
        super().__init__("c", f"HTTP upload declaring {stall.declared} bytes, stalled after a few", stall.opened,
                         {"tries": len(refused) + 1, "refused_at_once": sorted(set(refused))})
        self._stall = stall

    @classmethod
    async def open(cls, port: int) -> StalledUpload:
        refused: list[str] = []
        deadline = time.monotonic() + STALL_RETRY_S
        while True:
            stall = await _Stall.open(port, STALLED_DECLARED_BYTES)
            if await stall.held(within=0.5):
                return cls(stall, refused)
            refused.append(stall.answer.result().decode(errors="replace"))
            await stall.close()
            assert time.monotonic() < deadline, f"the server never waited for the stalled upload: {refused[-1]}"
            await asyncio.sleep(0.2)

    async def check_open(self) -> None:
        """Whether the server still waits for the body after a second (it may hang up later, which is fine)."""
        await asyncio.sleep(1.0)
        self.facts["open_after_1s"] = not self._stall.answer.done()

    async def release(self) -> None:
        if self._stall.answer.done():
            self.facts["server_ended"] = (f"{self._stall.answer.result().decode(errors='replace')} after "
                                          f"{self._stall.ended_after:.1f} s")
        await self._stall.close()
        self.facts["held_s"] = round(time.monotonic() - self.applied_at, 2)


async def _never_sent() -> AsyncIterator[bytes]:
    """A request stream whose one message never comes: the call is opened (headers sent) and then waits."""
    await asyncio.Event().wait()
    yield b""  # pragma: no cover - never reached


class HalfOpenCalls(Fault):
    """(d) HALF_OPEN_CALLS Rerank calls, without deadline, whose request message is never sent, kept open
    until released. How many the server still holds after a second is recorded."""

    def __init__(self, target: str) -> None:
        """Opens the calls; they reach the server within about half a second."""
        super().__init__("d", f"{HALF_OPEN_CALLS} gRPC Rerank calls whose message never comes", time.monotonic())
        # A local subchannel pool per channel: separate TCP connections, as separate clients would open.
        self._channels = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                          for _ in range(HALF_OPEN_CHANNELS)]
        self._calls = []
        for i in range(HALF_OPEN_CALLS):
            multicallable = self._channels[i % HALF_OPEN_CHANNELS].stream_unary(
                RERANK_METHOD, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw)
            self._calls.append(multicallable(_never_sent()))

    async def check_open(self) -> None:
        await asyncio.sleep(1.0)
        ended = [call for call in self._calls if call.done()]
        codes: dict[str, int] = {}
        for call in ended:
            name = (await call.code()).name
            codes[name] = codes.get(name, 0) + 1
        self.facts["open_after_1s"] = len(self._calls) - len(ended)
        self.facts["ended_at_once"] = codes
        assert len(ended) < len(self._calls), "none of the half-open calls stayed open"

    async def release(self) -> None:
        codes: dict[str, int] = {}
        for call in self._calls:
            if call.done():
                name = (await call.code()).name
                codes[name] = codes.get(name, 0) + 1
            else:
                call.cancel()
        self.facts["ended_by_server"] = codes
        for channel in self._channels:
            await channel.close()
        self.facts["held_s"] = round(time.monotonic() - self.applied_at, 2)
