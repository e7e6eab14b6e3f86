"""A model that ships its own architecture code (as jina-reranker does) exports only with
--trust-remote-code, then serves with its custom forward on both engines, matching sentence-transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from crossrank_client import CrossEncoderClient
from sentence_transformers import CrossEncoder
from transformers import AutoTokenizer, BertForSequenceClassification

from crossrank.export.exporter import ExportError, ExportOptions, export
from tests.e2e.server_process import ServerProcess
from tests.model_builders import pairs_with_long_documents, tiny_custom_code

pytestmark = pytest.mark.e2e


def test_custom_code_model(tmp_path: Path) -> None:
    model_dir = tiny_custom_code(tmp_path / "custom")
    repo = tmp_path / "repo"
    with pytest.raises(ExportError, match="--trust-remote-code"):
        export(ExportOptions(source=str(model_dir), name="custom", repository=repo))
    assert not (repo / "custom").exists()
    for name, engine in (("custom", "onnx-python"), ("custom-torch", "torch-python")):
        export(ExportOptions(source=str(model_dir), name=name, repository=repo, engine=engine,
                             trust_remote_code=True))

    pairs = pairs_with_long_documents(30, long_words=200)
    reference = np.asarray(CrossEncoder(str(model_dir), device="cpu", trust_remote_code=True,
                                        activation_fn=torch.nn.Identity()).predict(pairs))
    # The same weights without the custom forward give half the logits: the shipped code is what runs.
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    features = tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True, truncation=True,
                         return_tensors="pt")
    with torch.no_grad():
        plain = BertForSequenceClassification.from_pretrained(model_dir)(**features).logits[:, 0].numpy()
    np.testing.assert_allclose(reference, 2 * plain, atol=1e-5)
    server = ServerProcess(["--repository", str(repo)], log=tmp_path / "serve.log")
    try:
        server.wait_serving()
        with CrossEncoderClient(server.target) as client:
            for name in ("custom", "custom-torch"):
                served = np.array([r.score for r in client.classify(pairs, model=name, raw_scores=True)])
                assert np.max(np.abs(served - reference)) <= 1e-4, name
    finally:
        assert server.terminate() == 0
