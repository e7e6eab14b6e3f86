"""Admission's byte accounting as bytes arrive, and the bound on gRPC calls waiting for their message."""

from __future__ import annotations

import asyncio

import pytest

from crossrank.gateway.core.admission import Limiter
from crossrank.gateway.core.errors import OverloadedError
from crossrank.gateway.transport.grpc_receive import WaitingCalls


def test_bytes_count_as_they_arrive_and_go_back_at_the_end() -> None:
    limiter = Limiter(max_in_flight=4, max_queue=4, max_bytes=100)
    slow, fast = limiter.reservation(), limiter.reservation()
    slow.take(10)  # a body that announced much more and stalled holds only what it sent
    fast.take(80)
    assert limiter.admitted_bytes == 90
    with pytest.raises(OverloadedError):
        fast.take(20)  # past the bound while another request holds bytes: refused, nothing taken
    assert limiter.admitted_bytes == 90 and fast.held == 80
    slow.release()
    fast.take(200)  # alone, a request may pass the bound (every request within the size limit can run)
    assert limiter.admitted_bytes == 280
    fast.release()
    assert limiter.admitted_bytes == 0


async def test_a_slot_is_taken_only_by_admit_and_the_reservation_stays_the_callers() -> None:
    limiter = Limiter(max_in_flight=1, max_queue=0, max_bytes=100)
    arriving = [limiter.reservation() for _ in range(5)]
    for reservation in arriving:
        reservation.take(1)  # five requests arriving hold no slot
    async with limiter.admit(reservation=arriving[0]):
        with pytest.raises(OverloadedError):
            async with limiter.admit(reservation=arriving[1]):
                pass
    assert limiter.admitted_bytes == 5  # the reservations are released by their owners
    for reservation in arriving:
        reservation.release()
    assert limiter.admitted_bytes == 0


async def test_past_the_limit_the_call_that_waited_longest_gives_up() -> None:
    waiting = WaitingCalls(limit=2)
    with waiting.waiting() as first, waiting.waiting() as second:
        assert not first.done() and not second.done()
        with waiting.waiting() as third:
            assert first.done() and not second.done() and not third.done()
            assert len(waiting) == 2
    assert len(waiting) == 0
    await asyncio.sleep(0)
