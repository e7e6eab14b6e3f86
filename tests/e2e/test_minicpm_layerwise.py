"""bge-reranker-v2-minicpm-layerwise: a tiny random MiniCPM layerwise reranker built from FlagEmbedding's own
modeling code exports at a chosen layer on both python-backend engines and serves, through the real Triton and
gateway, the scores of FlagEmbedding's `LayerWiseFlagLLMReranker.compute_score` at that layer (truncated pairs
included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from crossrank_client import CrossEncoderClient

from crossrank.export.exporter import ExportError, ExportOptions, export
from tests.e2e.server_process import ServerProcess
from tests.model_builders import (
    MINICPM_LAYERS,
    flag_embedding_layerwise,
    pairs_with_long_documents,
    tiny_minicpm_layerwise,
)

pytestmark = pytest.mark.e2e
# name: (engine, cutoff layer, max length: None = FlagEmbedding's 512)
MODELS = {"layerwise": ("onnx-python", 4, 96), "layerwise-torch": ("torch-python", MINICPM_LAYERS, None)}


def test_layerwise_reranker_serves_flag_embedding_scores_at_the_chosen_layer(tmp_path: Path) -> None:
    model_dir = tiny_minicpm_layerwise(tmp_path / "minicpm")
    repo = tmp_path / "repo"
    with pytest.raises(ExportError, match="--trust-remote-code"):
        export(ExportOptions(source=str(model_dir), name="layerwise", repository=repo))
    with pytest.raises(ExportError, match=rf"--cutoff-layer must be between 2 and {MINICPM_LAYERS}.*got 28"):
        export(ExportOptions(source=str(model_dir), name="layerwise", repository=repo, trust_remote_code=True))
    for name, (engine, layer, max_length) in MODELS.items():
        report = export(ExportOptions(source=str(model_dir), name=name, repository=repo, engine=engine,
                                      trust_remote_code=True, cutoff_layer=layer, max_length=max_length))
        assert report.max_abs_diff <= 1e-4 and report.info.labels == (f"layer-{layer}",)

    reranker = flag_embedding_layerwise(model_dir)
    query = "alpha river city"
    documents = [document for _, document in pairs_with_long_documents(10, long_words=150)]
    server = ServerProcess(["--repository", str(repo)], log=tmp_path / "serve.log")
    try:
        server.wait_serving()
        with CrossEncoderClient(server.target) as client:
            for name, (_, layer, max_length) in MODELS.items():
                expected = np.array(reranker.compute_score([(query, d) for d in documents], cutoff_layers=[layer],
                                                           max_length=max_length or 512))
                assert np.ptp(expected) > 0.01
                response = client.rerank(query, documents, model=name, raw_scores=True)
                served = np.empty(len(documents))
                for result in response.results:
                    served[result.index] = result.score
                diff = float(np.max(np.abs(served - expected)))
                print(f"{name} (layer {layer}): served vs FlagEmbedding compute_score, max abs diff {diff:.2e}")
                assert diff <= 1e-4, name
            # another layer gives other scores: the chosen layer's head is what is served
            other = np.array(reranker.compute_score([(query, d) for d in documents], cutoff_layers=[2], max_length=96))
            assert np.max(np.abs(other - np.array(reranker.compute_score(
                [(query, d) for d in documents], cutoff_layers=[4], max_length=96)))) > 1e-3
    finally:
        assert server.terminate() == 0
