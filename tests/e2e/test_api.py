"""The typed API through the gateway and the real Triton: ordering, options, limits and errors, CLI and
grpcurl (reflection)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from crossrank_client import AsyncCrossEncoderClient, CrossEncoderClient, CrossrankClientError
from sentence_transformers import CrossEncoder

from tests.e2e.server_process import ROOT, ServerProcess
from tests.model_builders import WORDS, pairs_with_long_documents

pytestmark = pytest.mark.e2e


def test_rerank_options(server: ServerProcess) -> None:
    docs = [b for _, b in pairs_with_long_documents(12)]
    with CrossEncoderClient(server.target) as client:
        full = client.rerank("alpha search", docs)
        assert full.model == "tiny-bert"  # the configured default
        scores = [r.score for r in full]
        assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
        assert sorted(r.index for r in full) == list(range(len(docs)))
        top = client.rerank("alpha search", docs, top_n=3, return_documents=True)
        assert [r.index for r in top] == [r.index for r in full][:3]
        assert [r.document for r in top] == [docs[r.index] for r in top]
        assert all(r.document is None for r in full)
        assert full.usage.pairs == len(docs) and 0 < full.usage.tokens <= 64 * len(docs)


def test_requests_larger_than_one_triton_batch(server: ServerProcess, tiny_bert_dir: Path) -> None:
    docs = [" ".join(WORDS[i % len(WORDS):] + WORDS[: i % 7]) for i in range(600)]  # > max_batch_size 256
    expected = CrossEncoder(str(tiny_bert_dir), device="cpu").predict([("paris query", d) for d in docs])
    with CrossEncoderClient(server.target) as client:
        ranked = client.rerank("paris query", docs)
    got = np.empty(len(docs))
    for r in ranked:
        got[r.index] = r.score
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_truncation_none_names_the_over_long_document(server: ServerProcess) -> None:
    docs = ["short one", " ".join(["alpha"] * 200), "short two"]
    with CrossEncoderClient(server.target) as client:
        with pytest.raises(CrossrankClientError) as caught:
            client.rerank("q", docs, truncate=False)
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.reason == "INPUT_TOO_LONG"
        assert [v.field for v in caught.value.field_violations] == ["documents[1]"]
        assert "64" in caught.value.message
        assert len(client.rerank("q", docs)) == 3  # default truncates


@pytest.mark.parametrize(("call", "code", "reason"), [
    (lambda c: c.rerank("q", ["d"], model="missing"), grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND"),
    (lambda c: c.rerank("q", ["d"], model="tiny-nli"), grpc.StatusCode.INVALID_ARGUMENT, "WRONG_TASK"),
    (lambda c: c.rerank("   ", ["d"]), grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_QUERY"),
    (lambda c: c.rerank("q", []), grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_DOCUMENTS"),
])
def test_errors(server: ServerProcess, call, code, reason) -> None:  # type: ignore[no-untyped-def]
    with CrossEncoderClient(server.target) as client:
        with pytest.raises(CrossrankClientError) as caught:
            call(client)
        assert (caught.value.code, caught.value.reason) == (code, reason)
        assert "triton" not in caught.value.message.lower()


def test_unusual_text_scores(server: ServerProcess) -> None:
    docs = ["emoji 🎉🚀", "東京は日本の首都", "مرحبا بالعالم", "nul\x00byte", "x" * 100_000]
    with CrossEncoderClient(server.target) as client:
        assert len(client.rerank("query ✓", docs)) == len(docs)


async def test_async_client_concurrent_requests(server: ServerProcess) -> None:
    import asyncio

    async with AsyncCrossEncoderClient(server.target) as client:
        responses = await asyncio.gather(*(client.rerank(f"alpha {i}", ["alpha beta", "gamma"]) for i in range(16)))
    assert all(len(r) == 2 for r in responses)


def test_grpcurl_lists_the_service_through_reflection(server: ServerProcess) -> None:
    grpcurl = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    listed = subprocess.run([grpcurl, "-plaintext", server.target, "list"], capture_output=True, text=True,
                            timeout=60, check=True).stdout
    assert "crossrank.v1.CrossEncoderService" in listed.split()
    body = json.dumps({"query": "alpha", "documents": ["beta", "alpha alpha"], "top_n": 1})
    out = subprocess.run([grpcurl, "-plaintext", "-d", body, server.target,
                          "crossrank.v1.CrossEncoderService/Rerank"], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert len(json.loads(out)["results"]) == 1


def test_cli_rerank_and_models(server: ServerProcess) -> None:
    env = {**os.environ, "CROSSRANK_TARGET": server.target}
    cli = [sys.executable, "-m", "crossrank.cli"]
    out = subprocess.run([*cli, "rerank", "--json", "--query", "alpha", "beta", "alpha alpha"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    rows = json.loads(out)
    assert len(rows) == 2 and rows[0]["score"] >= rows[1]["score"]
    table = subprocess.run([*cli, "models"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
                           check=True).stdout
    assert "tiny-bert *" in table and "tiny-nli" in table
    bad = subprocess.run([*cli, "rerank", "--query", "alpha", "--model", "missing", "x"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "NOT_FOUND" in bad.stderr


def test_long_document_scores_its_best_chunk(server: ServerProcess, tiny_bert_dir: Path) -> None:
    from transformers import AutoTokenizer

    from crossrank.gateway.core.chunking import split

    query = "paris query"
    long_doc = " ".join(WORDS * 12)
    pair_tokens = len(AutoTokenizer.from_pretrained(tiny_bert_dir)(query, long_doc)["input_ids"])
    chunks = split(query, long_doc, pair_tokens, 64, 64)[1:]
    assert len(chunks) > 3
    with CrossEncoderClient(server.target) as client:
        start = client.rerank(query, [long_doc], raw_scores=True)[0].score
        each = [r.score for r in client.classify([(query, c) for c in chunks], raw_scores=True)]
        chunked = client.rerank(query, [long_doc], raw_scores=True, chunk_long_documents=True,
                                max_chunks_per_document=64)
    assert chunked[0].score == pytest.approx(max([start, *each]), abs=1e-5)
    assert chunked.usage.pairs == 1 + len(chunks)


def test_timings_in_the_response(server: ServerProcess) -> None:
    with CrossEncoderClient(server.target) as client:
        response = client.rerank("alpha", ["beta"] * 20)
    assert response.timing is not None
    assert 0 < response.timing.inference_ms <= response.timing.total_ms
    # An idle server admits at once: the wait for a slot is a small part of the whole.
    assert 0 <= response.timing.queue_ms < response.timing.total_ms
