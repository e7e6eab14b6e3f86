"""The request pipeline that every door (gRPC, HTTP) runs a call through: request id, API key, admission,
metrics and the access log, the same rules whichever transport the call came by.

A transport wraps each call in `RequestPipeline.call()`, fills in what it learns (model, pairs, usage) and
maps the exception the block raises to its own status; nothing here knows gRPC or HTTP. The transport's
`receive` reads the request after the key check and before admission, counting its bytes as they arrive:
a call is in flight (gauge, count bound) only once its request is whole. Client-supplied
strings never reach a metric label (unknown model names all count as one value) and reach the log only
escaped and cut short, so a client can neither grow the metrics without bound nor forge log lines.

On SIGTERM `drain()` turns every new call away with UNAVAILABLE (SHUTTING_DOWN, retryable) while the ports
are still open, and waits for the calls whose request had arrived to end. One still arriving is refused once
it has, not waited for: a stalled upload must not hold the stop. Left to themselves, the gRPC server's
shutdown would cancel a call that arrives in that window (the client sees CANCELLED, which clients do not
retry) and HTTP's would refuse the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass

from crossrank.gateway.core.admission import ApiKeys, Limiter, Reservation, arrived_at, queued_ms
from crossrank.gateway.core.errors import CrossrankError, ErrorCode, ShuttingDownError
from crossrank.gateway.core.metrics import GatewayMetrics

logger = logging.getLogger(__name__)
access_log = logging.getLogger("crossrank.access")

MAX_REQUEST_ID_CHARS = 128
MAX_LOGGED_CHARS = 128
OTHER_MODEL = "other"  # the metric label of every model name that is not served
# After the drain, what the transports give the calls they still hold before cutting them: enough to write an
# answer already computed; the calls still arriving were refused by the drain, nobody else is waited for.
CLOSE_GRACE_S = 2.0


def request_id(presented: str | None) -> str:
    """The client's request id where it is printable and at most 128 characters, else a fresh one."""
    if presented and len(presented) <= MAX_REQUEST_ID_CHARS and presented.isprintable():
        return presented
    return uuid.uuid4().hex


def loggable(text: str) -> str:
    """`text` for a log line: control characters (newlines included) escaped, at most 128 characters."""
    escaped = text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= MAX_LOGGED_CHARS else escaped[:MAX_LOGGED_CHARS] + "..."


@dataclass
class Call:
    """What a transport learns about one call while it runs; logged and counted when it ends."""

    request_id: str
    method: str
    model: str = ""
    pairs: int = 0
    code: str = "OK"
    scored_pairs: int = 0
    tokens: int = 0
    error: BaseException | None = None  # what ended the call, if it failed


class RequestPipeline:
    def __init__(self, metrics: GatewayMetrics | None, api_keys: ApiKeys, limiter: Limiter | None,
                 served_models: Callable[[], Collection[str]]) -> None:
        self._metrics = metrics
        self._api_keys = api_keys
        self._limiter = limiter
        self._served_models = served_models
        self._working = 0  # calls whose request has arrived whole and that have not ended
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False

    async def drain(self, grace_s: float | None) -> float | None:
        """Refuses new calls from now on and waits, at most `grace_s`, for the calls at work to end.
        Returns what is left of the grace (None, as gRPC's stop takes it, when there was none)."""
        self._draining = True
        if not grace_s:
            return None
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._idle.wait(), grace_s)
        except TimeoutError:
            logger.warning("%d calls still running after the %.0f s grace: they are cut short", self._working, grace_s)
        return max(0.0, grace_s - (time.monotonic() - started))

    def model_label(self, model: str) -> str:
        if not model:
            return "-"
        return model if model in self._served_models() else OTHER_MODEL

    @contextlib.asynccontextmanager
    async def call(self, method: str, request_id: str, metadata: Sequence[tuple[str, str | bytes]] | None,
                   code_of: Callable[[BaseException], str | None] | None = None,
                   receive: Callable[[Reservation], Awaitable[None]] | None = None,
                   status_of: Callable[[Call], int] | None = None) -> AsyncIterator[Call]:
        """Checks the API key, receives the request (`receive`, which takes its bytes in the reservation as
        they arrive), admits the call; yields its record; logs and counts it however it ends. `code_of` lets the
        transport name the code of an exception of its own (a status already set); `status_of` gives the
        transport's own status for the access log (HTTP's)."""
        started = time.perf_counter()
        arrived_at.set(started)
        queued_ms.set(0.0)
        call = Call(request_id, method)
        reservation = self._limiter.reservation() if self._limiter is not None else Reservation()
        working = False
        try:
            if self._draining:
                raise ShuttingDownError()
            self._api_keys.check(metadata)
            if receive is not None:
                await receive(reservation)
            if self._draining:  # arrived whole only after SIGTERM: not started, so not waited for
                raise ShuttingDownError()
            working = True
            self._working += 1
            self._idle.clear()
            if self._metrics:
                self._metrics.in_flight.inc()
            if self._limiter is None:
                yield call
            else:
                async with self._limiter.admit(reservation=reservation):
                    yield call
        except CrossrankError as exc:
            call.code, call.error = exc.code.label, exc
            raise
        except asyncio.CancelledError as exc:
            call.code, call.error = ErrorCode.CANCELLED.label, exc
            raise
        except Exception as exc:
            named = code_of(exc) if code_of else None
            call.code, call.error = named or ErrorCode.INTERNAL.label, exc
            if not named:
                logger.exception("request %s (%s) failed", request_id, method)
            raise
        finally:
            reservation.release()
            if working:
                self._working -= 1
                if not self._working:
                    self._idle.set()
                if self._metrics:
                    self._metrics.in_flight.dec()
            self._finish(call, time.perf_counter() - started, status_of)

    def _finish(self, call: Call, elapsed: float, status_of: Callable[[Call], int] | None) -> None:
        model = loggable(call.model) if call.model else "-"
        fields = {"request_id": call.request_id, "method": call.method, "model": model, "pairs": call.pairs,
                  "code": call.code, "latency_ms": round(elapsed * 1000, 2)}
        line = "request_id=%s method=%s model=%s pairs=%d code=%s latency_ms=%.1f"
        values: list[object] = [call.request_id, call.method, model, call.pairs, call.code, elapsed * 1000]
        if status_of is not None:
            fields["status"] = status_of(call)
            line += " status=%d"
            values.append(fields["status"])
        access_log.info(line, *values, extra=fields)
        if not self._metrics:
            return
        label = self.model_label(call.model)
        self._metrics.requests.labels(call.method, label, call.code).inc()
        self._metrics.latency.labels(call.method).observe(elapsed)
        if call.scored_pairs:
            self._metrics.pairs.labels(label).inc(call.scored_pairs)
            self._metrics.tokens.labels(label).inc(call.tokens)
