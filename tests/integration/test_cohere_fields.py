"""Cohere's rerank fields on `/v1/rerank` and `/v2/rerank` (real HTTP API over a socket, fake backend, which
counts one token per word): `max_tokens_per_doc` and `max_chunks_per_doc` honoured, other APIs' fields and
unknown fields refused with 400 naming the field."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.gateway_thread import GatewayThread
from tests.integration.test_tei_http import call


@pytest.fixture(scope="module")
def http() -> Iterator[GatewayThread]:
    thread = GatewayThread().start()
    yield thread
    thread.stop()


def _scores(http: GatewayThread, path: str, documents: list[str], **fields: object) -> list[float]:
    status, body, _ = call(http, path, {"query": "alpha", "documents": documents, **fields})
    assert status == 200, body
    return [r["relevance_score"] for r in sorted(body["results"], key=lambda r: r["index"])]


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank"])
def test_max_tokens_per_doc_cuts_each_document(http: GatewayThread, path: str) -> None:
    documents = ["beta gamma alpha", "alpha beta gamma"]
    whole = _scores(http, path, documents)
    cut = _scores(http, path, documents, max_tokens_per_doc=2)
    assert http.backend.cuts[-1].max_document_tokens == 2
    assert cut == pytest.approx(_scores(http, path, ["beta gamma", "alpha beta"]))  # the first 2 words only
    assert cut[0] < whole[0]  # its match lay past the cut


def test_max_chunks_per_doc_scores_the_best_chunk(http: GatewayThread) -> None:
    # The fake model sees 32 tokens (29 document words here); the match lies past them.
    document = "beta " * 40 + "alpha"
    start_only = _scores(http, "/v1/rerank", [document])
    chunked = _scores(http, "/v1/rerank", [document], max_chunks_per_doc=4)
    assert chunked[0] > start_only[0]


@pytest.mark.parametrize(("field", "value", "advice"), [
    ("rank_fields", ["title"], "text"), ("top_k", 3, "top_n"), ("return_input", True, "return_documents"),
    ("truncate_prompt_tokens", 10, "max_tokens_per_doc"), ("truncation_direction", "Left", "POST /rerank"),
    ("texts", ["d"], "POST /rerank"), ("priority", 1, "arrival"),
])
def test_another_apis_field_is_refused_by_name(http: GatewayThread, field: str, value: object, advice: str) -> None:
    status, body, _ = call(http, "/v2/rerank", {"query": "q", "documents": ["d"], field: value})
    assert (status, body["reason"]) == (400, "UNSUPPORTED_FIELD")
    assert field in body["message"] and advice in body["message"]
    assert body["field_violations"][0]["field"] == field


def test_unknown_and_conflicting_fields_are_refused(http: GatewayThread) -> None:
    status, body, _ = call(http, "/v1/rerank", {"query": "q", "documents": ["d"], "top_nn": 2})
    assert (status, body["reason"], body["field_violations"][0]["field"]) == (400, "UNKNOWN_FIELD", "top_nn")
    status, body, _ = call(http, "/v1/rerank", {"query": "q", "documents": ["d"], "max_tokens_per_doc": 0})
    assert (status, body["field_violations"][0]["field"]) == (400, "max_tokens_per_doc")
    status, body, _ = call(http, "/v1/rerank", {"query": "q", "documents": ["d"], "max_tokens_per_doc": 5,
                                                "max_chunks_per_doc": 2})
    assert status == 400 and body["field_violations"][0]["field"] == "max_chunks_per_doc"
    status, body, _ = call(http, "/v1/rerank", {"query": "q", "documents": ["d", {"txt": "d"}]})
    assert status == 400 and body["field_violations"][0]["field"].startswith("documents[1]")


def test_documented_fields_and_nulls_still_work(http: GatewayThread) -> None:
    status, body, _ = call(http, "/v2/rerank", {
        "model": None, "query": "alpha", "documents": ["alpha", {"text": "beta", "id": "x"}], "top_n": None,
        "return_documents": True, "raw_scores": False, "instruction": None, "timeout_s": 5})
    assert status == 200 and [r["document"]["text"] for r in body["results"]] == ["alpha", "beta"]
