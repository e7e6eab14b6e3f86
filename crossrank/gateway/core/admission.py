"""Who may call and how much at once: API keys (bearer tokens), a bounded number of requests in flight and
waiting, and a bounded number of request bytes among them. Beyond either bound a request is refused at once
with RESOURCE_EXHAUSTED, so overload shows as fast, retryable errors instead of unbounded latency and memory:
the gateway's memory follows the bytes it admitted, not the number of requests (a few maximal requests
weigh more than hundreds of small ones).

A request's bytes count as they arrive (a `Reservation` grows with each piece received), never by what the
client declares: a client that announces a large body and stalls holds only the bytes it sent, and a
request takes a slot of the count bound only once it has arrived whole, so a slow upload holds no slot.

A request that ends while the backend still works for it (its client cancelled, its deadline passed) keeps its
slot until that work has really ended (`hold_slot_until`): the bound covers the work actually running, not
only the requests still waiting for an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence

from crossrank.gateway.core.errors import OverloadedError, UnauthenticatedError

AUTHORIZATION = "authorization"

# When the current request arrived and how long it waited for a slot: read by the transports to report
# timings in their responses.
arrived_at: contextvars.ContextVar[float] = contextvars.ContextVar("arrived_at", default=0.0)
queued_ms: contextvars.ContextVar[float] = contextvars.ContextVar("queued_ms", default=0.0)
# The backend work the current admitted request leaves behind when it ends (see `hold_slot_until`).
_left_behind: contextvars.ContextVar[list[asyncio.Future[object]] | None] = contextvars.ContextVar(
    "left_behind", default=None)


def hold_slot_until(work: Awaitable[object]) -> None:
    """Runs `work` (the backend finishing what the request started) on its own, and keeps the current request's
    slot after the request ends until it is done (outside an admitted request, it only runs)."""
    task = asyncio.ensure_future(work)
    held = _left_behind.get()
    if held is not None:
        held.append(task)


class ApiKeys:
    """Accepts `authorization: Bearer <key>` for any configured key; no keys configured = no check."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = [k.encode() for k in keys if k]

    def check(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> None:
        if not self._keys:
            return
        presented = b""
        for key, value in metadata or ():
            if key == AUTHORIZATION:
                try:  # an HTTP header's bytes arrive decoded with surrogateescape: they encode back as sent
                    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
                except UnicodeEncodeError:
                    raw = b""  # not bytes any client could have sent as a key: no key matches it
                if raw[:7].lower() == b"bearer ":
                    presented = raw[7:].strip()
        # Compare with every key, without an early exit, so timing says nothing about which key is close.
        matched = False
        for known in self._keys:
            matched |= hmac.compare_digest(presented, known)
        if not matched:
            raise UnauthenticatedError()


class Reservation:
    """The bytes one request holds against the limiter's byte bound, taken as they arrive and given back
    when the request ends."""

    def __init__(self, limiter: Limiter | None = None) -> None:
        self._limiter = limiter
        self.held = 0

    def take(self, size: int) -> None:
        """Counts `size` more bytes of this request; OverloadedError (nothing taken) beyond the bound."""
        if self._limiter is not None:
            self._limiter.take(self, size)
        self.held += size

    def release(self) -> None:
        if self._limiter is not None:
            self._limiter.give_back(self.held)
        self.held = 0


class Limiter:
    """At most `max_in_flight` requests run at once and `max_queue` more wait, and the requests admitted or
    arriving hold at most `max_bytes` of request bytes together; the rest are refused. A request larger than
    `max_bytes` on its own is admitted when nothing else holds bytes (so every request within the message
    size limit can run), and then alone."""

    def __init__(self, max_in_flight: int, max_queue: int, max_bytes: int = 0) -> None:
        self._running = asyncio.Semaphore(max_in_flight)
        self._capacity = max_in_flight + max_queue
        self._max_bytes = max_bytes  # 0: no byte bound
        self._admitted = 0
        self._bytes = 0

    @property
    def admitted_bytes(self) -> int:
        return self._bytes

    def reservation(self) -> Reservation:
        return Reservation(self)

    def take(self, reservation: Reservation, size: int) -> None:
        others = self._bytes - reservation.held
        if self._max_bytes and others and self._bytes + size > self._max_bytes:
            raise OverloadedError(f"{others >> 20} of its {self._max_bytes >> 20} MiB for requests in flight "
                                  f"taken, this request needs {max(1, (reservation.held + size) >> 20)} MiB")
        self._bytes += size

    def give_back(self, size: int) -> None:
        self._bytes -= size

    @contextlib.asynccontextmanager
    async def admit(self, size: int = 0, reservation: Reservation | None = None) -> AsyncIterator[None]:
        """A slot for a request that has arrived: `reservation` holds its bytes already (and the caller
        releases it), else `size` bytes are taken here and given back at the end."""
        if self._admitted >= self._capacity:
            raise OverloadedError(f"{self._capacity} requests in flight and queued")
        own = None
        if reservation is None:
            own = reservation = self.reservation()
            reservation.take(size)
        self._admitted += 1
        waiting = time.perf_counter()
        running = False
        left_behind: list[asyncio.Future[object]] = []
        token = _left_behind.set(left_behind)
        try:
            await self._running.acquire()
            running = True
            queued_ms.set((time.perf_counter() - waiting) * 1000)
            yield
        finally:
            _left_behind.reset(token)
            if own is not None:
                own.release()  # the request's bytes are free at once; only its slot waits for its work
            pending = [work for work in left_behind if not work.done()]
            if pending:
                asyncio.gather(*pending, return_exceptions=True).add_done_callback(
                    lambda _: self._leave(running))
            else:
                self._leave(running)

    def _leave(self, running: bool) -> None:
        self._admitted -= 1
        if running:
            self._running.release()


def read_key_file(path: str) -> list[str]:
    """One key per line; blank lines and lines starting with # are ignored (a Kubernetes Secret mount)."""
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#")]
