"""A real TEI client from the package index, used unchanged: Haystack's `HuggingFaceTEIRanker` against the TEI
routes (the real HTTP API over a socket, fake backend). It sends TEI's `/rerank` body (query, texts,
raw_scores, truncate and truncation_direction), an API key as a bearer token, and reads TEI's ranks and
TEI's error shape."""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import Iterator

import pytest

from tests.integration.gateway_thread import GatewayThread

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # no calls home from the client under test
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from haystack import Document
    from haystack.components.rankers import HuggingFaceTEIRanker
    from haystack.components.rankers.hugging_face_tei import TruncationDirection
    from haystack.utils import Secret


@pytest.fixture(scope="module")
def http() -> Iterator[GatewayThread]:
    thread = GatewayThread(api_keys=("tei-key",)).start()
    yield thread
    thread.stop()


def _ranker(http: GatewayThread, token: str = "tei-key", **options: object) -> HuggingFaceTEIRanker:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the class moves to another package in Haystack 3
        return HuggingFaceTEIRanker(url=http.http_url, token=Secret.from_token(token), max_retries=1, **options)


DOCUMENTS = [Document(content="nothing related"), Document(content="alpha beta gamma"),
             Document(content="alpha only")]


def test_haystack_tei_ranker_ranks_through_crossrank(http: GatewayThread) -> None:
    ranked = _ranker(http, top_k=2).run(query="alpha beta gamma", documents=DOCUMENTS)["documents"]
    assert [d.content for d in ranked] == ["alpha beta gamma", "alpha only"]
    assert ranked[0].score > ranked[1].score and all(0 < d.score < 1 for d in ranked)


def test_its_truncation_direction_and_raw_scores_arrive(http: GatewayThread) -> None:
    ranker = _ranker(http, raw_scores=True)
    ranked = ranker.run(query="alpha", documents=DOCUMENTS, truncation_direction=TruncationDirection.LEFT)
    assert http.backend.cuts[-1].side == "left"
    assert len(ranked["documents"]) == 3 and ranked["documents"][0].score > 0.9  # a logit, not a probability


def test_its_async_path_works_too(http: GatewayThread) -> None:
    ranked = asyncio.run(_ranker(http, top_k=1).run_async(query="alpha only", documents=DOCUMENTS))["documents"]
    assert [d.content for d in ranked] == ["alpha only"]


def test_it_reads_our_errors(http: GatewayThread) -> None:
    with pytest.raises(RuntimeError, match="401"):
        _ranker(http, token="wrong").run(query="alpha", documents=DOCUMENTS)
    with pytest.raises(RuntimeError, match="Empty"):
        _ranker(http).run(query="", documents=DOCUMENTS)
