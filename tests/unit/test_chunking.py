"""Long documents scored by their best chunk: the splitting, and the ranking it changes."""

from __future__ import annotations

import itertools

import pytest

from crossrank.gateway.core.chunking import split
from crossrank.gateway.core.errors import CrossrankError
from crossrank.gateway.core.scoring import CrossEncoderCore, RerankQuery
from crossrank.gateway.core.validation import Limits
from tests.fakes import RERANKER, FakeBackend


def test_chunks_fit_the_window_overlap_and_cover_the_document() -> None:
    words = [f"w{i}" for i in range(300)]
    chunks = split("a short query", " ".join(words), pair_tokens=306, max_length=64, max_chunks=100)
    sizes = [len(c.split()) for c in chunks]
    assert all(3 + size + 3 <= 64 for size in sizes)  # query + chunk + special tokens fit
    assert chunks[0].split()[0] == "w0" and chunks[-1].split()[-1] == "w299"
    for left, right in itertools.pairwise(chunks):
        assert set(left.split()) & set(right.split())  # neighbours overlap
    assert len(split("q", " ".join(words), 306, 64, max_chunks=3)) == 3


def test_text_without_spaces_is_split_by_characters() -> None:
    chunks = split("問い", "東" * 500, pair_tokens=505, max_length=128, max_chunks=50)
    assert len(chunks) > 3 and all(len(c) <= 128 for c in chunks) and "".join(chunks).count("東") >= 500


async def test_relevant_end_of_a_long_document_ranks_it_first_only_when_chunked() -> None:
    core = CrossEncoderCore(FakeBackend(), Limits(), RERANKER.name)
    long_doc = " ".join(["filler"] * 120 + ["paris", "france", "capital", "paris"])
    docs = [long_doc, "paris travel guide"]
    truncated = await core.rerank(RerankQuery(model="", query="paris france capital", documents=docs))
    chunked = await core.rerank(RerankQuery(model="", query="paris france capital", documents=docs,
                                            chunk_long_documents=True, max_chunks_per_document=16))
    assert truncated.results[0].index == 1
    assert chunked.results[0].index == 0
    assert chunked.usage.pairs > truncated.usage.pairs  # chunks are counted
    few = await core.rerank(RerankQuery(model="", query="paris france capital", documents=docs,
                                        chunk_long_documents=True, max_chunks_per_document=2))
    assert few.usage.pairs == 3  # the start (first pass) + one more chunk
    with pytest.raises(CrossrankError) as caught:
        await core.rerank(RerankQuery(model="", query="q", documents=["d"], chunk_long_documents=True,
                                      max_chunks_per_document=65))
    assert caught.value.reason == "INVALID_CHUNK_LIMIT"
