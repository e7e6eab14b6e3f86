"""Cohere's own Python SDK, unchanged, against crossrank's `/v1/rerank` and `/v2/rerank` (the in-process gateway
over a real socket, fake backend): v2 with `max_tokens_per_doc`, v1 with `return_documents` and
`max_chunks_per_doc`, and a field crossrank does not honour refused as the SDK's BadRequestError."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.gateway_thread import GatewayThread


def _cohere() -> Any:
    try:
        import cohere
    except ImportError:
        if os.environ.get("CROSSRANK_REQUIRE_CLIENTS"):
            pytest.fail("the cohere SDK is missing (pip install -r requirements/dev.txt)")
        pytest.skip("the cohere SDK is missing (pip install -r requirements/dev.txt; CI requires it)")
    return cohere


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayThread]:
    thread = GatewayThread().start()
    yield thread
    thread.stop()


def test_v2_client_reranks_and_cuts_documents(gateway: GatewayThread) -> None:
    client = _cohere().ClientV2(api_key="unused", base_url=gateway.http_url)
    response = client.rerank(model="fake-reranker", query="alpha beta",
                             documents=["nothing", "alpha beta", "alpha"], top_n=2)
    assert [r.index for r in response.results] == [1, 2]
    cut = client.rerank(model="fake-reranker", query="alpha", documents=["beta gamma alpha"], max_tokens_per_doc=2)
    whole = client.rerank(model="fake-reranker", query="alpha", documents=["beta gamma alpha"])
    assert cut.results[0].relevance_score < whole.results[0].relevance_score  # the match lay past 2 tokens
    assert gateway.backend.cuts[-2].max_document_tokens == 2


def test_v1_client_with_documents_and_chunks(gateway: GatewayThread) -> None:
    cohere = _cohere()
    client = cohere.Client(api_key="unused", base_url=gateway.http_url)
    response = client.rerank(model="fake-reranker", query="alpha beta", documents=["nothing", "alpha beta"],
                             return_documents=True)
    assert response.results[0].document.text == "alpha beta"
    long_document = "beta " * 40 + "alpha"
    start = client.rerank(model="fake-reranker", query="alpha", documents=[long_document])
    chunked = client.rerank(model="fake-reranker", query="alpha", documents=[long_document], max_chunks_per_doc=4)
    assert chunked.results[0].relevance_score > start.results[0].relevance_score
    with pytest.raises(cohere.errors.BadRequestError) as refused:
        client.rerank(model="fake-reranker", query="q", documents=[{"text": "x", "title": "t"}],
                      rank_fields=["title"])
    assert "rank_fields" in str(refused.value.body)
