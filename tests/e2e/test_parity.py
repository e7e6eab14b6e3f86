"""Served scores equal sentence-transformers `CrossEncoder.predict` on the same model directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from crossrank_client import CrossEncoderClient
from sentence_transformers import CrossEncoder

from tests.e2e.server_process import ServerProcess
from tests.model_builders import pairs_with_long_documents
from tests.ranking import assert_ranked_like

pytestmark = pytest.mark.e2e
TOLERANCE = 1e-4


def _reference(model_dir: Path, pairs: list[tuple[str, str]]) -> np.ndarray:
    model = CrossEncoder(str(model_dir), device="cpu", activation_fn=__import__("torch").nn.Identity())
    return np.asarray(model.predict(pairs, batch_size=16), dtype=np.float64)


@pytest.mark.parametrize(("name", "fixture"), [("tiny-bert", "tiny_bert_dir"), ("minilm", "minilm_dir"),
                                              ("tiny-bert-torch", "tiny_bert_dir")])
def test_scores_match_sentence_transformers(server: ServerProcess, request: pytest.FixtureRequest,
                                            name: str, fixture: str) -> None:
    model_dir = request.getfixturevalue(fixture)
    pairs = pairs_with_long_documents(60, long_words=900 if name == "minilm" else 300)
    logits = _reference(model_dir, pairs)
    with CrossEncoderClient(server.target, timeout=120) as client:
        info = {m.name: m for m in client.list_models()}[name]
        assert info.task == "rerank" and info.precision == "fp32"
        assert info.engine == ("torch-python" if name.endswith("-torch") else "onnx-python")
        assert max(len(b.split()) for _, b in pairs) > info.max_length  # truncation is exercised
        raw = np.array([r.score for r in client.classify(pairs, model=name, raw_scores=True)])
        sigmoid = np.array([r.score for r in client.classify(pairs, model=name)])
        assert np.max(np.abs(raw - logits)) <= TOLERANCE
        assert np.max(np.abs(sigmoid - 1 / (1 + np.exp(-logits)))) <= TOLERANCE

        # Rerank: one query, many documents; same order as the reference.
        query = pairs[0][0]
        docs = [b for _, b in pairs]
        expected = _reference(model_dir, [(query, d) for d in docs])
        ranked = client.rerank(query, docs, model=name, raw_scores=True)
        assert len(ranked) == len(docs)
        np.testing.assert_allclose([r.score for r in ranked], expected[[r.index for r in ranked]], atol=TOLERANCE)
        assert_ranked_like([r.index for r in ranked], expected, TOLERANCE)


def test_multi_label_classifier_softmax(server: ServerProcess, tiny_nli_dir: Path) -> None:
    pairs = pairs_with_long_documents(20, long_words=300)
    logits = np.asarray(CrossEncoder(str(tiny_nli_dir), device="cpu").predict(pairs), dtype=np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    with CrossEncoderClient(server.target) as client:
        results = client.classify(pairs, model="tiny-nli")
        info = {m.name: m for m in client.list_models()}["tiny-nli"]
    assert info.task == "classify" and info.labels == ["contradiction", "entailment", "neutral"]
    for result, row in zip(results, probs):
        assert result.label == info.labels[int(np.argmax(row))]
        np.testing.assert_allclose([s.score for s in result.scores], row, atol=TOLERANCE)
