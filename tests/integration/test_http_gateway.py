"""The HTTP rerank API over a real socket with the fake backend: the cases of test_gateway.py's gRPC harness,
as an HTTP client sees them (status, the JSON error shape, health)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes import RERANKER
from tests.integration.gateway_thread import GatewayThread, running


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayThread]:
    with running() as thread:
        yield thread


def _call(gateway: GatewayThread, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(gateway.http_url + path, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_rerank_returns_sorted_results(gateway: GatewayThread) -> None:
    docs = ["bananas", "paris france", "paris"]
    status, answer = _call(gateway, "/v1/rerank", {"query": "paris france", "documents": docs, "top_n": 2,
                                                   "return_documents": True})
    assert status == 200 and answer["model"] == RERANKER.name
    assert [r["index"] for r in answer["results"]] == [1, 2]
    assert answer["results"][0]["relevance_score"] > answer["results"][1]["relevance_score"]
    assert answer["results"][0]["document"] == {"text": "paris france"}
    assert answer["usage"]["pairs"] == 3


@pytest.mark.parametrize(("body", "status", "reason", "field"), [
    ({"query": "", "documents": ["d"]}, 400, "EMPTY_QUERY", "query"),
    ({"query": "q", "documents": []}, 400, "EMPTY_DOCUMENTS", "documents"),
    ({"query": "q", "documents": ["d"], "top_n": -3}, 400, "INVALID_TOP_N", "top_n"),
    ({"query": "q", "documents": ["d"], "model": "nope"}, 404, "MODEL_NOT_FOUND", "model"),
    ({"query": "q", "documents": ["d"], "top_n": "two"}, 400, "INVALID_FIELD", "top_n"),
])
def test_errors_carry_status_reason_and_field(gateway: GatewayThread, body: dict[str, Any], status: int,
                                              reason: str, field: str) -> None:
    got, answer = _call(gateway, "/v2/rerank", body)
    assert (got, answer["reason"]) == (status, reason)
    assert [v["field"] for v in answer["field_violations"]] == [field]
    assert answer["request_id"]
    assert _call(gateway, "/v2/rerank", {"query": "q", "documents": ["d"]})[0] == 200  # the server is unharmed


def test_backend_down_is_503(gateway: GatewayThread) -> None:
    gateway.backend.available = False
    try:
        status, answer = _call(gateway, "/v1/rerank", {"query": "q", "documents": ["d"]})
        assert (status, answer["reason"]) == (503, "BACKEND_UNAVAILABLE")
    finally:
        gateway.backend.available = True


def test_a_body_over_the_message_limit_is_413_and_bad_json_400(gateway: GatewayThread) -> None:
    status, answer = _call(gateway, "/v1/rerank", raw=b'{"query": "' + b"x" * (2 * 1024 * 1024) + b'"}')
    assert (status, answer["reason"]) == (413, "MESSAGE_TOO_LARGE")
    status, answer = _call(gateway, "/v1/rerank", raw=b"{not json")
    assert (status, answer["reason"]) == (400, "MALFORMED_REQUEST")


def test_health_follows_readiness(gateway: GatewayThread) -> None:
    from crossrank.gateway.transport.grpc_server import set_serving

    assert _call(gateway, "/health") == (200, {"status": "SERVING"})
    readiness = gateway.readiness
    readiness.serving = False
    asyncio.run_coroutine_threadsafe(set_serving(gateway.health, False), gateway.loop).result(5)
    try:
        assert _call(gateway, "/health") == (503, {"status": "NOT_SERVING"})
    finally:
        readiness.serving = True
        asyncio.run_coroutine_threadsafe(set_serving(gateway.health, True), gateway.loop).result(5)
