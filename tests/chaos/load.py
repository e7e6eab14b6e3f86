"""The chaos soak's load and what it counts: valid rerank and classify requests over gRPC and HTTP whose answers
are compared with answers taken before any fault, invalid requests that must get their 4xx, and the probe
that times how long after a fault the service answers a valid request again on both transports.

Every response lands in one `Outcomes` bucket: correct, the expected 4xx, a retryable refusal (UNAVAILABLE,
DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED; HTTP 503, 504, 429), a wrong answer, or an error that is none of
these (INTERNAL, HTTP 500, a valid request refused as invalid, an HTTP connection dropped or hung)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from crossrank_client import AsyncCrossEncoderClient, CrossrankClientError

TOLERANCE = 1e-4  # served scores vary this little with how Triton batches them
REQUEST_TIMEOUT_S = 10.0  # each load request's deadline (gRPC) or X-Request-Timeout (HTTP)
PROBE_TIMEOUT_S = 5.0
PROBE_INTERVAL_S = 0.2
REFUSAL_BACKOFF_S = 0.1  # a refused client waits this long before its next request, as a polite client does
RETRYABLE = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "HTTP 503", "HTTP 504", "HTTP 429")
CORRECT, EXPECTED_4XX, WRONG = "correct", "expected 4xx", "wrong answer"


@dataclass(frozen=True)
class Case:
    """A valid request and its answer taken before any fault: one score per document (rerank, by the
    document's index) or per input pair (classify, in order)."""

    kind: str  # "rerank" or "classify"
    query: str
    texts: tuple[str, ...]  # rerank: the documents; classify: each input's text_pair (text = query)
    expected: tuple[float, ...]


@dataclass(frozen=True)
class Invalid:
    """A request that must be refused: its transport, its payload and the code it must get."""

    transport: str  # "grpc" or "http"
    payload: Any  # gRPC: (query, documents, model, top_n); HTTP: the raw body bytes
    expected: str  # gRPC code name or "HTTP 4xx"


GRPC_INVALID = (
    Invalid("grpc", ("", ["d"], "", 0), "INVALID_ARGUMENT"),
    Invalid("grpc", ("q", [], "", 0), "INVALID_ARGUMENT"),
    Invalid("grpc", ("q", ["ok", ""], "", 0), "INVALID_ARGUMENT"),
    Invalid("grpc", ("q", ["d"], "", -1), "INVALID_ARGUMENT"),
    Invalid("grpc", ("q", ["d"], "no-such-model", 0), "NOT_FOUND"),
)
HTTP_INVALID = (
    Invalid("http", b'{"query": "q", "documents": ["d"', "HTTP 400"),
    Invalid("http", b'{"query": "", "documents": ["d"]}', "HTTP 400"),
    Invalid("http", b'{"query": "q", "documents": "d"}', "HTTP 400"),
    Invalid("http", b'{"query": "q", "documents": ["d"], "top_n": -1}', "HTTP 400"),
    Invalid("http", b'{"query": "q", "documents": ["d"], "model": "no-such-model"}', "HTTP 404"),
)


class Gate:
    """Every load request passes the gate; a fault that must meet an idle gateway closes it, waits until the
    load's requests in flight have ended, is applied, and opens it again (the pause is a second or two)."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._inflight = 0

    @contextlib.asynccontextmanager
    async def passage(self) -> AsyncIterator[None]:
        await self._open.wait()
        self._inflight += 1
        try:
            yield
        finally:
            self._inflight -= 1

    @contextlib.asynccontextmanager
    async def quiet(self) -> AsyncIterator[float]:
        """Closed for the block, which starts once nothing of the load is in flight; yields how long that took."""
        self._open.clear()
        started = time.monotonic()
        try:
            while self._inflight and time.monotonic() - started < REQUEST_TIMEOUT_S + 15:
                await asyncio.sleep(0.01)
            assert not self._inflight, "the load's requests did not end for a quiet moment"
            yield time.monotonic() - started
        finally:
            self._open.set()


@dataclass
class Outcomes:
    """Counts of every response by bucket, with a few examples of the ones that fail the soak."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, bucket: str, example: str = "") -> None:
        self.counts[bucket] += 1
        if example and len(self.examples.setdefault(bucket, [])) < 3:
            self.examples[bucket].append(example[:300])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def refusals(self) -> dict[str, int]:
        return {code: n for code, n in self.counts.items() if code in RETRYABLE}

    def errors(self) -> dict[str, int]:
        """Responses that are neither correct, expected, retryable nor wrong: each one fails the soak."""
        known = {CORRECT, EXPECTED_4XX, WRONG, *RETRYABLE}
        return {code: n for code, n in self.counts.items() if code not in known}


def mismatch(case: Case, scores: dict[int, float], ordered: list[int] | None) -> str:
    """Why an answer differs from the case's answer taken before the faults ("" when it does not)."""
    if sorted(scores) != list(range(len(case.expected))):
        return f"indices {sorted(scores)} for {len(case.expected)} texts"
    worst = max(abs(scores[i] - e) for i, e in enumerate(case.expected))
    if worst > TOLERANCE:
        return f"score off by {worst:.3g}"
    if ordered is not None and [scores[i] for i in ordered] != sorted(scores.values(), reverse=True):
        return "results not sorted by descending score"
    return ""


async def grpc_answer(client: AsyncCrossEncoderClient, case: Case, timeout: float) -> tuple[str, str]:
    """Sends the case over gRPC; the bucket of its response and, for a failure, what it said."""
    try:
        if case.kind == "rerank":
            rerank = await client.rerank(case.query, list(case.texts), timeout=timeout)
            scores = {r.index: r.score for r in rerank}
            why = mismatch(case, scores, [r.index for r in rerank])
        else:
            classify = await client.classify([(case.query, t) for t in case.texts], timeout=timeout)
            why = mismatch(case, {i: r.score for i, r in enumerate(classify)}, None)
    except CrossrankClientError as exc:
        name = exc.code.name
        return (name if name in RETRYABLE else f"{name} on a valid gRPC {case.kind}"), str(exc)
    return (WRONG, why) if why else (CORRECT, "")


async def http_answer(session: aiohttp.ClientSession, url: str, case: Case, timeout: float) -> tuple[str, str]:
    """POSTs the rerank case over HTTP; the bucket of its response and, for a failure, what it said."""
    body = {"query": case.query, "documents": list(case.texts)}
    try:
        async with session.post(url, json=body, headers={"X-Request-Timeout": str(timeout)},
                                timeout=aiohttp.ClientTimeout(total=timeout + 10)) as response:
            text = await response.text()
            status = response.status
    except asyncio.TimeoutError:
        return "HTTP no answer within the deadline + 10 s", ""
    except aiohttp.ClientError as exc:
        return f"HTTP connection error ({type(exc).__name__})", str(exc)
    if status != 200:
        bucket = f"HTTP {status}"
        return (bucket if bucket in RETRYABLE else f"{bucket} on a valid HTTP rerank"), text
    results = json.loads(text)["results"]
    why = mismatch(case, {r["index"]: r["relevance_score"] for r in results}, [r["index"] for r in results])
    return (WRONG, why) if why else (CORRECT, "")


async def invalid_answer(invalid: Invalid, client: AsyncCrossEncoderClient, session: aiohttp.ClientSession,
                         url: str) -> tuple[str, str]:
    """Sends a request that must be refused; its bucket and, for a failure, what it said."""
    if invalid.transport == "grpc":
        query, documents, model, top_n = invalid.payload
        try:
            await client.rerank(query, documents, model=model, top_n=top_n, timeout=REQUEST_TIMEOUT_S)
        except CrossrankClientError as exc:
            got = exc.code.name
            return (EXPECTED_4XX if got == invalid.expected else got if got in RETRYABLE
                    else f"{got} where {invalid.expected} was due"), str(exc)
        return WRONG, f"accepted: {invalid.payload!r}"
    try:
        async with session.post(url, data=invalid.payload, headers={"Content-Type": "application/json"},
                                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S + 10)) as response:
            text = await response.text()
            got = f"HTTP {response.status}"
    except asyncio.TimeoutError:
        return "HTTP no answer within the deadline + 10 s", ""
    except aiohttp.ClientError as exc:
        return f"HTTP connection error ({type(exc).__name__})", str(exc)
    if got == "HTTP 200":
        return WRONG, f"accepted: {invalid.payload!r}"
    return (EXPECTED_4XX if got == invalid.expected else got if got in RETRYABLE
            else f"{got} where {invalid.expected} was due"), text


async def worker(transport: str, client: AsyncCrossEncoderClient, session: aiohttp.ClientSession, url: str,
                 cases: list[Case], outcomes: Outcomes, gate: Gate, deadline: float, seed: int) -> None:
    """One of the concurrent clients: back-to-back requests on its transport until `deadline`, one in five
    invalid; a refused request is followed by a short pause."""
    rng = random.Random(seed)
    invalid = GRPC_INVALID if transport == "grpc" else HTTP_INVALID
    rerank_cases = [c for c in cases if c.kind == "rerank"]
    while time.monotonic() < deadline:
        async with gate.passage():
            if rng.random() < 0.2:
                bucket, example = await invalid_answer(rng.choice(invalid), client, session, url)
            elif transport == "grpc":
                bucket, example = await grpc_answer(client, rng.choice(cases), REQUEST_TIMEOUT_S)
            else:
                bucket, example = await http_answer(session, url, rng.choice(rerank_cases), REQUEST_TIMEOUT_S)
        outcomes.add(bucket, example)
        if bucket not in (CORRECT, EXPECTED_4XX):
            await asyncio.sleep(REFUSAL_BACKOFF_S)


async def probe(client: AsyncCrossEncoderClient, session: aiohttp.ClientSession, url: str, case: Case,
                outcomes: Outcomes, gate: Gate, since: float, until: float) -> float | None:
    """Seconds from `since` until a valid request started after it was answered correctly on gRPC and on
    HTTP both; None when that did not happen before `until`."""
    back: dict[str, float] = {}
    while len(back) < 2 and time.monotonic() < until:
        started = time.monotonic()
        async with gate.passage():
            if "grpc" not in back:
                bucket, example = await grpc_answer(client, case, PROBE_TIMEOUT_S)
                outcomes.add(bucket, example)
                if bucket == CORRECT:
                    back["grpc"] = time.monotonic()
            if "http" not in back:
                bucket, example = await http_answer(session, url, case, PROBE_TIMEOUT_S)
                outcomes.add(bucket, example)
                if bucket == CORRECT:
                    back["http"] = time.monotonic()
        await asyncio.sleep(max(0.0, PROBE_INTERVAL_S - (time.monotonic() - started)))
    return max(back.values()) - since if len(back) == 2 else None
