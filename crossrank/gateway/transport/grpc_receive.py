"""Receives a unary call's request message under a deadline, holding nothing another call needs while it waits.

gRPC starts a call when its headers arrive; its message may follow late or never. The crossrank service's
methods are therefore served as stream-unary handlers (the same bytes on the wire, so every unary client
works) that read the one message themselves: within `timeout_s`, or the call ends with DEADLINE_EXCEEDED
(reason READ_TIMEOUT). Calls waiting for their message are not admitted yet (no slot of the count bound, no
bytes), and gRPC's own concurrent-call limit is off, so they never make health or other calls wait or be
refused; at most `limit` of them wait at once, and a call beyond that ends the one that has waited longest
(RESOURCE_EXHAUSTED), so the newest call, whose message is usually already there, always gets in.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import grpc

from crossrank.gateway.core.errors import InvalidArgumentError, OverloadedError, ReadTimeoutError


class WaitingCalls:
    """The calls waiting for their message, oldest first; past `limit`, the oldest is told to give up."""

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._waiting: dict[int, asyncio.Future[None]] = {}  # insertion order: oldest first

    def __len__(self) -> int:
        return len(self._waiting)

    @contextlib.contextmanager
    def waiting(self) -> Iterator[asyncio.Future[None]]:
        """A future that is set when a newer call needs this one's room."""
        while len(self._waiting) >= self._limit:
            oldest = next(iter(self._waiting))
            self._waiting.pop(oldest).set_result(None)
        given_up: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[id(given_up)] = given_up
        try:
            yield given_up
        finally:
            self._waiting.pop(id(given_up), None)


async def receive_message(context: grpc.aio.ServicerContext, waiting: WaitingCalls, timeout_s: float) -> Any:
    """The call's one request message (what the method's request deserializer made of its bytes)."""
    with waiting.waiting() as given_up:
        read = asyncio.ensure_future(context.read())
        try:
            await asyncio.wait({read, given_up}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not read.done():
                read.cancel()
        if not read.done() or read.cancelled():
            if given_up.done():
                raise OverloadedError("too many calls waiting for their request message; the oldest is ended")
            raise ReadTimeoutError("the request message")
    message = read.result()
    if message is grpc.aio.EOF:
        raise InvalidArgumentError("the call ended without a request message", "MALFORMED_REQUEST")
    return message
