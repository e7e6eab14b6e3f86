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

from tests.e2e.server_process import ROOT, ServerProcess, metric_value, scrape
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


def test_truncation_none_names_the_over_long_document_before_the_encoder_runs(server: ServerProcess) -> None:
    docs = ["short one", " ".join(["alpha"] * 200), "short two"]
    encoder = r'nv_inference_exec_count\{model="tiny-bert_encoder",version="1"\}'
    with CrossEncoderClient(server.target) as client:
        client.rerank("q", ["warm"])
        runs = metric_value(scrape(server.triton_metrics_port), encoder)
        with pytest.raises(CrossrankClientError) as caught:
            client.rerank("q", docs, truncate=False)
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.reason == "INPUT_TOO_LONG"
        assert [v.field for v in caught.value.field_violations] == ["documents[1]"]
        assert "64" in caught.value.message
        # Refused by the tokenizer: the encoder never saw the request's pairs.
        assert metric_value(scrape(server.triton_metrics_port), encoder) == runs
        truncated = client.rerank("q", docs)  # default truncates, and says how much of the document it saw
    assert len(truncated) == 3
    seen = {r.index: r.scored_chars for r in truncated}
    assert seen[0] is None and seen[2] is None and 0 < seen[1] < len(docs[1])
    assert docs[1][:seen[1]].split() == ["alpha"] * (64 - 4)  # [CLS] q [SEP] ... [SEP]: 60 words kept


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


def test_long_document_is_chunked_at_token_boundaries_to_its_end(server: ServerProcess) -> None:
    # A document of one repeated word and a different sentence at its end: every chunk but the last is the
    # word repeated to fill the window, the last is the word k times then the sentence, for some k. So the
    # document's score must be the better of the start's and one of those last chunks' (scored by Classify).
    query, ending = "paris query", "the capital of france is paris"
    document = "alpha " * 400 + ending
    candidates = [("alpha " * k + ending) for k in range(61)]
    with CrossEncoderClient(server.target) as client:
        start = client.rerank(query, [document], raw_scores=True)[0]
        chunked = client.rerank(query, [document], raw_scores=True, chunk_long_documents=True,
                                max_chunks_per_document=64)
        lasts = [r.score for r in client.classify([(query, c) for c in candidates], raw_scores=True)]
        few = client.rerank(query, [document], raw_scores=True, chunk_long_documents=True,
                            max_chunks_per_document=2)
    assert start.scored_chars is not None and start.scored_chars < len(document)
    assert chunked[0].scored_chars is None  # the chunks reached the end
    assert min(abs(chunked[0].score - max(start.score, last)) for last in lasts) < 1e-4
    # The window holds 64 - 5 = 59 words; each next chunk begins a quarter back: about 44 new words a chunk.
    assert 1 + (406 - 59) // 45 <= chunked.usage.pairs <= 2 + (406 - 59) // 40
    assert few.usage.pairs == 2 and few[0].scored_chars is not None
    assert start.scored_chars < few[0].scored_chars < len(document)


def test_timings_in_the_response(server: ServerProcess) -> None:
    with CrossEncoderClient(server.target) as client:
        response = client.rerank("alpha", ["beta"] * 20)
    assert response.timing is not None
    assert 0 < response.timing.inference_ms <= response.timing.total_ms
    # An idle server admits at once: the wait for a slot is a small part of the whole.
    assert 0 <= response.timing.queue_ms < response.timing.total_ms
