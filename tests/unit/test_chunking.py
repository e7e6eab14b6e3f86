"""Long documents scored by their best chunk: where chunks begin, that they cover the document, and the
ranking it changes."""

from __future__ import annotations

import itertools

import pytest

from crossrank.gateway.core.chunking import next_start
from crossrank.gateway.core.errors import CrossrankError
from crossrank.gateway.core.scoring import CrossEncoderCore, RerankQuery
from crossrank.gateway.core.validation import Limits
from tests.fakes import RERANKER, FakeBackend

QUERY = "paris france capital"


class RecordingBackend(FakeBackend):
    """The fake backend, keeping every second text it was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    async def score(self, model, texts, text_pairs, timeout, truncate=True, instruction=""):  # type: ignore[no-untyped-def]
        self.sent.extend(text_pairs)
        return await super().score(model, texts, text_pairs, timeout, truncate, instruction)


def test_next_chunk_overlaps_the_last_quarter_and_begins_at_a_word() -> None:
    document = " ".join(f"w{i:03d}" for i in range(100))  # 5 characters a word with its space
    begin = next_start(document, 0, 200)
    assert begin is not None and 140 <= begin <= 150 and document[begin - 1] == " "
    assert next_start(document, 0, len(document)) is None  # the end was reached
    assert next_start(document, 40, 40) is None  # a chunk that kept nothing cannot move on
    assert next_start("x" * 100, 0, 40) == 30  # no space: a quarter back, mid-word


async def test_chunks_cover_the_whole_document_each_within_the_window() -> None:
    backend = RecordingBackend()
    core = CrossEncoderCore(backend, Limits(), RERANKER.name)
    words = [f"w{i}" for i in range(300)]
    document = " ".join(words)
    out = await core.rerank(RerankQuery(model="", query=QUERY, documents=[document], chunk_long_documents=True,
                                        max_chunks_per_document=64))
    # The fake truncates to 32 tokens: 3 query words + 3 special tokens leave 26 words a chunk.
    kept = [s.split()[:26] for s in backend.sent]
    seen = set(itertools.chain.from_iterable(kept))
    assert seen == set(words)  # every word scored in some chunk, the last one included
    for left, right in itertools.pairwise(kept[:-1]):
        assert set(left) & set(right)  # neighbours overlap
    assert out.results[0].scored_chars is None  # whole document seen
    assert out.usage.pairs == len(backend.sent) < 20


async def test_the_chunk_limit_stops_early_and_says_where() -> None:
    backend = RecordingBackend()
    core = CrossEncoderCore(backend, Limits(), RERANKER.name)
    document = " ".join(f"w{i}" for i in range(300))
    out = await core.rerank(RerankQuery(model="", query=QUERY, documents=[document], chunk_long_documents=True,
                                        max_chunks_per_document=3))
    assert out.usage.pairs == 3
    seen = out.results[0].scored_chars
    assert seen is not None and 0 < seen < len(document)
    last_scored = backend.sent[-1].split()[:26][-1]
    assert document[:seen].endswith(last_scored)


async def test_truncation_reports_what_the_score_saw() -> None:
    core = CrossEncoderCore(FakeBackend(), Limits(), RERANKER.name)
    document = " ".join(f"w{i}" for i in range(100))
    out = await core.rerank(RerankQuery(model="", query=QUERY, documents=[document, "short one"]))
    by_index = {r.index: r for r in out.results}
    assert document[:by_index[0].scored_chars].split() == [f"w{i}" for i in range(26)]
    assert by_index[1].scored_chars is None


async def test_no_truncation_refuses_and_chunking_overrides_it() -> None:
    core = CrossEncoderCore(FakeBackend(), Limits(), RERANKER.name)
    document = " ".join(["filler"] * 100)
    with pytest.raises(CrossrankError) as caught:
        await core.rerank(RerankQuery(model="", query=QUERY, documents=["short", document], truncate=False))
    assert caught.value.reason == "INPUT_TOO_LONG" and caught.value.violations[0].field == "documents[1]"
    chunked = await core.rerank(RerankQuery(model="", query=QUERY, documents=["short", document], truncate=False,
                                            chunk_long_documents=True))
    assert len(chunked.results) == 2


async def test_relevant_end_of_a_long_document_ranks_it_first_only_when_chunked() -> None:
    core = CrossEncoderCore(FakeBackend(), Limits(), RERANKER.name)
    long_doc = " ".join(["filler"] * 120 + ["paris", "france", "capital", "paris"])
    docs = [long_doc, "paris travel guide"]
    truncated = await core.rerank(RerankQuery(model="", query=QUERY, documents=docs))
    chunked = await core.rerank(RerankQuery(model="", query=QUERY, documents=docs,
                                            chunk_long_documents=True, max_chunks_per_document=16))
    assert truncated.results[0].index == 1
    assert chunked.results[0].index == 0
    assert chunked.usage.pairs > truncated.usage.pairs  # chunks are counted
    few = await core.rerank(RerankQuery(model="", query=QUERY, documents=docs,
                                        chunk_long_documents=True, max_chunks_per_document=2))
    assert few.usage.pairs == 3  # the start (first pass) + one more chunk
    with pytest.raises(CrossrankError) as caught:
        await core.rerank(RerankQuery(model="", query="q", documents=["d"], chunk_long_documents=True,
                                      max_chunks_per_document=65))
    assert caught.value.reason == "INVALID_CHUNK_LIMIT"
