"""Cohere v2's `max_tokens_per_doc` against real Triton: the tokenizer inside Triton cuts each document at
that many of its own tokens, so the score equals the score of the document's first N tokens sent alone."""

from __future__ import annotations

import pytest

from tests.e2e.server_process import ServerProcess
from tests.e2e.test_tei import _post

pytestmark = pytest.mark.e2e


def test_max_tokens_per_doc_scores_the_documents_first_tokens(server: ServerProcess) -> None:
    # Common English words: one WordPiece token each in the MiniLM vocabulary.
    document = "the cat sat on the mat and then the dog ran far away from the house"
    status, body = _post(server, "/v2/rerank", {"model": "minilm", "query": "where did the dog run",
                                               "documents": [document, "the cat sat on the"],
                                               "max_tokens_per_doc": 5, "raw_scores": True})
    assert status == 200, body
    scores = {r["index"]: r["relevance_score"] for r in body["results"]}
    assert scores[0] == pytest.approx(scores[1], abs=1e-5)
    status, body = _post(server, "/v2/rerank", {"model": "minilm", "query": "where did the dog run",
                                               "documents": [document], "raw_scores": True})
    assert body["results"][0]["relevance_score"] != pytest.approx(scores[0], abs=1e-4)
