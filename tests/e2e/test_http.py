"""The Cohere/Jina-compatible HTTP endpoint, called with plain HTTP, gives the same scores as gRPC."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from crossrank_client import CrossEncoderClient

from tests.e2e.server_process import ServerProcess
from tests.model_builders import pairs_with_long_documents

pytestmark = pytest.mark.e2e


def _post(server: ServerProcess, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}{path}", data=data, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank"])
def test_same_scores_as_grpc(server: ServerProcess, path: str) -> None:
    documents = [b for _, b in pairs_with_long_documents(15)]
    status, body = _post(server, path, {"model": "minilm", "query": "alpha search", "documents": documents,
                                        "top_n": 5, "return_documents": True})
    assert status == 200
    with CrossEncoderClient(server.target) as client:
        expected = client.rerank("alpha search", documents, model="minilm", top_n=5)
    assert [r["index"] for r in body["results"]] == [r.index for r in expected]
    assert [r["relevance_score"] for r in body["results"]] == pytest.approx([r.score for r in expected], abs=1e-6)
    assert [r["document"]["text"] for r in body["results"]] == [documents[r.index] for r in expected]
    assert body["model"] == "minilm" and body["usage"]["total_tokens"] == expected.usage.tokens


def test_jina_style_document_objects_and_errors(server: ServerProcess) -> None:
    status, body = _post(server, "/v1/rerank", {"query": "q", "documents": [{"text": "a"}, {"text": "b"}]})
    assert status == 200 and len(body["results"]) == 2 and "document" not in body["results"][0]
    assert body["model"] == "tiny-bert"  # the server's default
    for payload, code, reason in (
        ({"query": "", "documents": ["d"]}, 400, "EMPTY_QUERY"),
        ({"query": "q", "documents": "d"}, 400, "INVALID_FIELD"),
        ({"query": "q", "documents": ["d"], "top_n": "3"}, 400, "INVALID_FIELD"),
        ({"query": "q", "documents": ["d"], "model": "nope"}, 404, "MODEL_NOT_FOUND"),
        (b"{not json", 400, "MALFORMED_REQUEST"),
    ):
        status, body = _post(server, "/v1/rerank", payload)
        assert (status, body["reason"]) == (code, reason)
        assert body["request_id"]


def test_health(server: ServerProcess) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/health", timeout=10) as response:
        assert response.status == 200 and json.loads(response.read())["status"] == "SERVING"


def test_a_body_over_the_message_limit_is_413(server: ServerProcess) -> None:
    # The default limits.max_message_bytes is 32 MiB; this body is 40 MB of valid JSON.
    status, body = _post(server, "/v1/rerank", {"query": "q", "documents": ["x" * 1000] * 40_000})
    assert status == 413 and body["reason"] == "MESSAGE_TOO_LARGE" and body["request_id"]
    status, _ = _post(server, "/v1/rerank", {"query": "alpha", "documents": ["beta"]})
    assert status == 200  # and the next request is served


def test_the_request_deadline_is_honoured(server: ServerProcess) -> None:
    documents = [b for _, b in pairs_with_long_documents(200)]
    status, body = _post(server, "/v1/rerank", {"query": "alpha", "documents": documents, "model": "minilm"},
                         headers={"X-Request-Timeout": "0.001"})
    assert (status, body["reason"]) == (504, "DEADLINE_EXCEEDED")
    status, body = _post(server, "/v1/rerank", {"query": "alpha", "documents": ["beta"], "timeout_s": -1})
    assert (status, body["reason"]) == (400, "INVALID_FIELD")
    status, _ = _post(server, "/v1/rerank", {"query": "alpha", "documents": ["beta"], "timeout_s": 30})
    assert status == 200


def test_the_same_rules_for_instructions_and_what_a_score_saw(server: ServerProcess) -> None:
    status, body = _post(server, "/v1/rerank", {"query": "q", "documents": ["d"], "instruction": "find cities"})
    assert status == 400 and body["reason"] == "INSTRUCTION_UNSUPPORTED"  # tiny-bert has no instruction slot
    long_document = " ".join(["alpha"] * 200)
    status, body = _post(server, "/v1/rerank", {"query": "q", "documents": ["short", long_document]})
    seen = {r["index"]: r.get("scored_chars") for r in body["results"]}
    assert status == 200 and seen[0] is None and 0 < seen[1] < len(long_document)
