"""The TEI-compatible HTTP routes (`/rerank`, `/predict`, `/info`) over a real socket, fake backend: TEI's
request and response shapes, its error shape and status codes, and the shared pipeline (auth, metrics)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes import NLI, fake_logits
from tests.integration.gateway_thread import GatewayThread


@pytest.fixture(scope="module")
def http() -> Iterator[GatewayThread]:
    thread = GatewayThread(max_documents=5).start()
    yield thread
    thread.stop()


def call(http: GatewayThread, path: str, body: Any = None, headers: dict[str, str] | None = None,
         ) -> tuple[int, Any, dict[str, str]]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(f"{http.http_url}{path}", data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def test_rerank_answers_teis_shape_best_first(http: GatewayThread) -> None:
    texts = ["nothing here", "alpha beta", "alpha"]
    status, body, headers = call(http, "/rerank", {"query": "alpha beta", "texts": texts, "return_text": True})
    assert status == 200
    assert [r["index"] for r in body] == [1, 2, 0]
    assert [r["text"] for r in body] == [texts[1], texts[2], texts[0]]
    assert all(0 < r["score"] < 1 for r in body)  # the model's sigmoid
    assert int(headers["x-compute-tokens"]) > 0 and headers["x-request-id"]
    status, body, _ = call(http, "/rerank", {"query": "alpha beta", "texts": texts, "raw_scores": True})
    assert "text" not in body[0]
    assert body[0]["score"] == pytest.approx(fake_logits("alpha beta", "alpha beta", 1)[0])


def test_truncation_direction_reaches_the_tokenizer(http: GatewayThread) -> None:
    for direction, side in (("Left", "left"), ("Right", "right"), ("left", "left")):
        status, _, _ = call(http, "/rerank", {"query": "q", "texts": ["d"], "truncation_direction": direction})
        assert status == 200
        assert http.backend.cuts[-1].side == side
    status, body, _ = call(http, "/rerank", {"query": "q", "texts": ["d"], "truncation_direction": "Up"})
    assert (status, body["error_type"]) == (422, "Validation") and "truncation_direction" in body["error"]


def test_predict_takes_one_pair_or_a_batch_of_pairs(http: GatewayThread) -> None:
    status, body, _ = call(http, "/predict", {"inputs": ["alpha", "alpha"], "model": NLI.name})
    assert status == 200 and isinstance(body[0], dict)
    assert sorted(p["label"] for p in body) == sorted(NLI.labels)
    assert [p["score"] for p in body] == sorted((p["score"] for p in body), reverse=True)
    assert sum(p["score"] for p in body) == pytest.approx(1.0, abs=1e-5)  # softmax over the labels
    status, body, _ = call(http, "/predict", {"inputs": [["a", "b"], ["c", "d"], ["e", "f"]]})
    assert status == 200 and len(body) == 3 and all(len(row) == 1 and row[0]["label"] == "LABEL_0" for row in body)
    for inputs in ("just one text", ["one"], [["one"]], ["a", "b", "c"]):
        status, body, _ = call(http, "/predict", {"inputs": inputs})
        assert (status, body["error_type"]) == (422, "Validation"), inputs


def test_info_describes_the_default_model_or_the_named_one(http: GatewayThread) -> None:
    status, body, _ = call(http, "/info")
    assert status == 200
    assert body["model_id"] == "fake-reranker" and body["model_type"] == {
        "reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}}
    assert body["max_client_batch_size"] == 5 and body["max_input_length"] == 32 and body["auto_truncate"] is True
    assert body["model_dtype"] == "float32" and body["version"]
    assert body["max_concurrent_requests"] == http.settings.max_in_flight
    status, body, _ = call(http, f"/info?model={NLI.name}")
    assert list(body["model_type"]) == ["classifier"] and len(body["model_type"]["classifier"]["id2label"]) == 3


@pytest.mark.parametrize(("path", "payload", "status", "error_type"), [
    ("/rerank", {"query": "q", "texts": []}, 400, "Empty"),
    ("/rerank", {"query": "q", "texts": ["d"] * 6}, 413, "Validation"),  # over max_client_batch_size
    ("/rerank", {"query": "q", "texts": ["x " * 40], "truncate": False}, 413, "Validation"),  # too long
    ("/rerank", {"query": "q", "texts": "d"}, 422, "Validation"),
    ("/rerank", {"query": "q", "texts": ["d"], "truncate": "yes"}, 422, "Validation"),
    ("/rerank", {"query": "q", "texts": ["d"], "top_n": 3}, 422, "Validation"),  # not a TEI field: named
    ("/rerank", {"query": "q", "texts": ["d"], "model": "nope"}, 404, "Validation"),
    ("/rerank", {"query": "q", "texts": ["d"], "model": NLI.name}, 424, "Backend"),  # not a reranker
    ("/rerank", b"{not json", 422, "Validation"),
    ("/predict", {"inputs": []}, 400, "Empty"),
])
def test_errors_are_teis_shape_and_codes(http: GatewayThread, path: str, payload: Any, status: int,
                                         error_type: str) -> None:
    got, body, headers = call(http, path, payload)
    assert (got, body["error_type"]) == (status, error_type), body
    assert set(body) == {"error", "error_type"} and body["error"] and headers["x-request-id"]


def test_unknown_fields_are_named(http: GatewayThread) -> None:
    _, body, _ = call(http, "/rerank", {"query": "q", "texts": ["d"], "top_n": 3})
    assert body["error"] == "top_n is not a field of this request"


def test_the_shared_pipeline_counts_and_guards_tei_calls() -> None:
    guarded = GatewayThread(api_keys=("secret",)).start()
    try:
        status, body, _ = call(guarded, "/rerank", {"query": "q", "texts": ["d"]})
        assert (status, body["error_type"]) == (401, "Unauthorized")
        status, _, _ = call(guarded, "/info")
        assert status == 401
        status, body, _ = call(guarded, "/rerank", {"query": "q", "texts": ["d"]},
                               headers={"Authorization": "Bearer secret"})
        assert status == 200 and len(body) == 1
        requests = guarded.metrics.requests
        assert requests.labels("HttpTeiRerank", "fake-reranker", "OK")._value.get() == 1
        assert requests.labels("HttpTeiRerank", "-", "UNAUTHENTICATED")._value.get() == 1
    finally:
        guarded.stop()
