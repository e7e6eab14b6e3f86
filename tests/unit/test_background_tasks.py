"""The gateway's background work never dies silently: Triton's log forwarder survives lines of any length
(a stopped reader would fill Triton's pipe and block Triton), the readiness monitor turns an unexpected
error into NOT_SERVING and keeps checking, and a background task that ends anyway stops the server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from crossrank import app
from crossrank.embedded_triton.launcher import MAX_LOG_LINE_BYTES, EmbeddedTriton, TritonOptions


class _Process:
    def __init__(self, stdout: asyncio.StreamReader) -> None:
        self.stdout = stdout


async def test_a_huge_log_line_is_cut_and_the_lines_after_it_still_arrive(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    triton = EmbeddedTriton(TritonOptions(tmp_path))
    stream = asyncio.StreamReader()
    triton._process = _Process(stream)  # type: ignore[assignment]
    stream.feed_data(b"I first line\n" + b"E " + b"x" * 300_000 + b"\nW after the long one\n")
    stream.feed_data(b"E no newline at the end")
    stream.feed_eof()
    with caplog.at_level(logging.DEBUG, logger="crossrank.triton"):
        await asyncio.wait_for(triton._forward_log(), 5)
    tail = list(triton._log_tail)
    assert tail[0] == "I first line"
    assert tail[-2:] == ["W after the long one", "E no newline at the end"]
    assert all(len(line) <= MAX_LOG_LINE_BYTES + 64 for line in tail)
    assert any("[cut: line over" in line for line in tail)
    assert "after the long one" in caplog.text


class _FailingBackend:
    def __init__(self) -> None:
        self.calls = 0

    def take_stub_fault(self) -> None:
        return None

    async def ready(self) -> bool:
        self.calls += 1
        if self.calls == 2:
            raise KeyError("unexpected")  # not a CrossrankError: a bug, or a client library surprise
        return True


class _Core:
    default_model = "m"

    async def refresh_models(self) -> list[Any]:
        return [type("Info", (), {"name": "m"})()]


class _Metrics:
    def __init__(self) -> None:
        self.triton_ready = type("Gauge", (), {"set": lambda self, value: None})()


async def test_the_monitor_survives_an_unexpected_error_and_reports_not_serving(
        monkeypatch: pytest.MonkeyPatch) -> None:
    states: list[bool] = []

    async def record(health: object, serving: bool, live: bool = True) -> None:
        states.append(serving)

    monkeypatch.setattr(app, "set_serving", record)
    monkeypatch.setattr(app, "_MONITOR_INTERVAL_S", 0.01)
    backend = _FailingBackend()
    started = asyncio.Event()
    started.set()
    task = asyncio.create_task(app._monitor(backend, _Core(), object(), None, started, _Metrics(),  # type: ignore[arg-type]
                                            app.Readiness()))
    while backend.calls < 5:
        await asyncio.sleep(0.01)
    assert not task.done()
    task.cancel()
    assert states[:3] == [True, False, True]  # SERVING, the failed check: NOT_SERVING, then SERVING again


async def test_a_background_task_that_ends_stops_the_server() -> None:
    async def crash() -> None:
        raise RuntimeError("boom")

    stop, died = asyncio.Event(), []  # type: ignore[var-annotated]
    task = asyncio.create_task(crash())
    task.add_done_callback(lambda t: app._on_task_end(t, name="readiness monitor", died=died, stop=stop))
    await asyncio.wait_for(stop.wait(), 5)
    assert died == ["readiness monitor"]
    cancelled = asyncio.create_task(asyncio.sleep(10))
    quiet: list[str] = []
    cancelled.add_done_callback(lambda t: app._on_task_end(t, name="x", died=quiet, stop=asyncio.Event()))
    cancelled.cancel()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert quiet == []


async def test_stopping_after_the_log_reader_was_cancelled_does_not_raise(tmp_path: Path) -> None:
    # A restart cut short by SIGTERM can leave the reader cancelled; the final stop must still clean up.
    triton = EmbeddedTriton(TritonOptions(tmp_path))
    triton._reader = asyncio.create_task(asyncio.sleep(60))
    triton._reader.cancel()
    await asyncio.wait_for(triton._drain_reader(), 5)
    hanging = asyncio.create_task(asyncio.sleep(60))  # a reader a surviving stub keeps busy: ended after 2 s
    triton._reader = hanging
    await asyncio.wait_for(triton._drain_reader(), 5)
    await asyncio.sleep(0)
    assert hanging.cancelled()


class _StubDiesBackend:
    """An external Triton whose model's stub dies: requests report it, the probe fails `failing_probes` times."""

    def __init__(self, failing_probes: int) -> None:
        self.fault: Any = None
        self.failing_probes = failing_probes
        self.probes = 0

    async def ready(self) -> bool:
        return True

    def take_stub_fault(self) -> Any:
        fault, self.fault = self.fault, None
        return fault

    async def probe(self, model: Any) -> bool:
        self.probes += 1
        return self.probes > self.failing_probes


async def _watch(backend: Any, monkeypatch: pytest.MonkeyPatch, until: Any) -> list[tuple[bool, bool]]:
    states: list[tuple[bool, bool]] = []

    async def record(health: object, serving: bool, live: bool = True) -> None:
        states.append((serving, live))

    monkeypatch.setattr(app, "set_serving", record)
    monkeypatch.setattr(app, "_MONITOR_INTERVAL_S", 0.01)
    monkeypatch.setattr(app, "_LIVENESS_AFTER_S", 0.3)
    started = asyncio.Event()
    started.set()
    task = asyncio.create_task(app._monitor(backend, _Core(), object(), None, started, _Metrics(), app.Readiness()))
    while not states:
        await asyncio.sleep(0.01)
    backend.fault = type("Info", (), {"name": "m"})()  # a request met the dead stub
    for _ in range(500):
        if until(states):
            break
        await asyncio.sleep(0.01)
    task.cancel()
    return states


async def test_a_dead_stub_of_an_external_triton_is_not_serving_until_its_model_answers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _StubDiesBackend(failing_probes=3)
    states = await _watch(backend, monkeypatch, lambda s: len(s) >= 3)
    assert states == [(True, True), (False, True), (True, True)]  # NOT_SERVING, alive, then SERVING again


async def test_liveness_fails_when_a_dead_stub_is_not_healed(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _StubDiesBackend(failing_probes=10**6)
    states = await _watch(backend, monkeypatch, lambda s: s[-1] == (False, False))
    assert states[:2] == [(True, True), (False, True)]
    assert states[-1] == (False, False)  # unhealed past the liveness limit: the orchestrator restarts the pod
