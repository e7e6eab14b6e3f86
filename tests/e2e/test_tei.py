"""The TEI-compatible HTTP routes against real Triton: a real TEI client (Haystack's `HuggingFaceTEIRanker`)
unchanged, TEI's `/predict` and `/info`, and `truncation_direction` reaching the tokenizer inside Triton."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import warnings
from typing import Any

import pytest
from crossrank_client import CrossEncoderClient

from tests.e2e.server_process import ServerProcess
from tests.model_builders import pairs_with_long_documents

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from haystack import Document
    from haystack.components.rankers import HuggingFaceTEIRanker
    from haystack.components.rankers.hugging_face_tei import TruncationDirection

pytestmark = pytest.mark.e2e


def _post(server: ServerProcess, path: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}{path}", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_haystack_tei_ranker_gets_the_same_ranking_as_grpc(server: ServerProcess) -> None:
    documents = [b for _, b in pairs_with_long_documents(12)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ranker = HuggingFaceTEIRanker(url=f"http://127.0.0.1:{server.http_port}", top_k=5, max_retries=1)
    ranked = ranker.run(query="alpha search", documents=[Document(content=d) for d in documents],
                        truncation_direction=TruncationDirection.RIGHT)["documents"]
    with CrossEncoderClient(server.target) as client:
        expected = client.rerank("alpha search", documents, top_n=5)  # the default model, as TEI's
    assert [d.content for d in ranked] == [documents[r.index] for r in expected]
    assert [d.score for d in ranked] == pytest.approx([r.score for r in expected], abs=1e-6)


def test_truncation_direction_decides_which_end_is_scored(server: ServerProcess) -> None:
    # One long document whose two ends differ: cutting on the left keeps its end, so the two scores differ
    # (the tokenizer's left cut itself is checked token for token in tests/unit/test_pair_tokenizer.py).
    head, tail = "alpha " * 30, "omega " * 30
    document = head + "filler " * 600 + tail.strip()
    scores = {}
    for direction in ("Left", "Right"):
        status, body = _post(server, "/rerank", {"query": "omega", "texts": [document], "model": "minilm",
                                                 "truncation_direction": direction, "raw_scores": True})
        assert status == 200, body
        scores[direction] = body[0]["score"]
    assert scores["Left"] != pytest.approx(scores["Right"], abs=1e-4)
    status, body = _post(server, "/rerank", {"query": "q", "texts": [document], "truncate": False})
    assert (status, body["error_type"]) == (413, "Validation")


def test_predict_matches_classify(server: ServerProcess) -> None:
    pairs = [("A man is eating.", "A man eats food."), ("A man is eating.", "Nobody is eating.")]
    status, body = _post(server, "/predict", {"inputs": [list(p) for p in pairs], "model": "tiny-nli"})
    assert status == 200
    with CrossEncoderClient(server.target) as client:
        expected = client.classify(pairs, model="tiny-nli")
    for row, result in zip(body, expected):
        assert {p["label"]: p["score"] for p in row} == pytest.approx(
            {s.label: s.score for s in result.scores}, abs=1e-6)
        assert row[0]["label"] == result.label


def test_info_of_a_real_model(server: ServerProcess) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/info?model=minilm", timeout=30) as response:
        info = json.loads(response.read())
    assert info["model_id"] == "minilm" and "reranker" in info["model_type"]
    assert info["max_input_length"] == 512 and info["auto_truncate"] is True

