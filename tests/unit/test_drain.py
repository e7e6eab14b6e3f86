"""The pipeline's drain on SIGTERM: calls at work finish, new ones and ones still arriving are refused with a
retryable UNAVAILABLE, and a stalled arrival does not hold the stop."""

from __future__ import annotations

import asyncio
import time

import pytest

from crossrank.gateway.core.admission import ApiKeys, Limiter, Reservation
from crossrank.gateway.core.errors import CrossrankError, ErrorCode
from crossrank.gateway.core.pipeline import RequestPipeline


def _pipeline() -> RequestPipeline:
    return RequestPipeline(None, ApiKeys([]), Limiter(8, 8), lambda: ())


async def _run(pipeline: RequestPipeline, work: asyncio.Event | None = None,
               arrival: asyncio.Event | None = None) -> str:
    """One call: waits for `arrival` before its request is whole, for `work` while at work."""
    async def receive(reservation: Reservation) -> None:
        if arrival is not None:
            await arrival.wait()

    try:
        async with pipeline.call("Rerank", "rid", (), receive=receive):
            if work is not None:
                await work.wait()
            return "OK"
    except CrossrankError as exc:
        return f"{exc.code.name}:{exc.reason}"


def test_calls_at_work_finish_and_new_ones_are_refused_as_retryable() -> None:
    async def scenario() -> tuple[str, str, float]:
        pipeline = _pipeline()
        work = asyncio.Event()
        running = asyncio.create_task(_run(pipeline, work))
        await asyncio.sleep(0.01)
        draining = asyncio.create_task(pipeline.drain(5.0))
        await asyncio.sleep(0.01)
        late = await _run(pipeline)
        assert not draining.done()  # the call at work is still waited for
        work.set()
        left = await draining
        return await running, late, left or 0.0

    running, late, left = asyncio.run(scenario())
    assert running == "OK"
    assert late == f"{ErrorCode.UNAVAILABLE.name}:SHUTTING_DOWN"
    assert 4.5 < left <= 5.0


def test_a_request_still_arriving_does_not_hold_the_drain_and_is_refused_when_whole() -> None:
    async def scenario() -> tuple[str, float]:
        pipeline = _pipeline()
        arrival = asyncio.Event()
        arriving = asyncio.create_task(_run(pipeline, arrival=arrival))
        await asyncio.sleep(0.01)
        started = time.monotonic()
        await pipeline.drain(5.0)
        took = time.monotonic() - started
        arrival.set()
        return await arriving, took

    arriving, took = asyncio.run(scenario())
    assert took < 0.5
    assert arriving == f"{ErrorCode.UNAVAILABLE.name}:SHUTTING_DOWN"


async def _drain_with_one_call_at_work(grace: float | None) -> tuple[float | None, float]:
    """(what drain returned, how long it took) while one call stays at work; the call is then given up."""
    pipeline = _pipeline()
    running = asyncio.create_task(_run(pipeline, asyncio.Event()))
    await asyncio.sleep(0.01)
    started = time.monotonic()
    left = await pipeline.drain(grace)
    took = time.monotonic() - started
    running.cancel()
    return left, took


@pytest.mark.parametrize("grace", [None, 0.0])
def test_no_grace_waits_for_nothing(grace: float | None) -> None:
    left, took = asyncio.run(_drain_with_one_call_at_work(grace))
    assert left is None and took < 0.1


def test_a_call_past_the_grace_is_given_up_on() -> None:
    left, took = asyncio.run(_drain_with_one_call_at_work(0.3))
    assert left == 0.0 and 0.25 < took < 1.0
