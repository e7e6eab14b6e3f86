"""A layerwise reranker scored at a layer runs no layer above it, in PyTorch and in the exported ONNX graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from transformers import AutoModelForCausalLM

from crossrank.export.onnx_export import export_onnx
from crossrank.triton_models.causal_lm_score import LayerHeadScorer
from tests.model_builders import MINICPM_LAYERS, tiny_minicpm_layerwise


def test_layers_above_the_cutoff_are_never_computed(tmp_path: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_minicpm_layerwise(tmp_path / "m"), trust_remote_code=True,
                                                 attn_implementation="eager").eval()
    ran: list[int] = []
    for index, layer in enumerate(model.model.layers):
        layer.register_forward_hook(lambda *_, i=index: ran.append(i))
    ids = torch.tensor([[1, 5, 6, 7, 8], [1, 9, 10, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        low = LayerHeadScorer(model, 3)(ids, mask)
    assert ran == [0, 1, 2]
    ran.clear()
    with torch.no_grad():
        top = LayerHeadScorer(model, MINICPM_LAYERS)(ids, mask)
    assert ran == list(range(MINICPM_LAYERS)) and low.shape == top.shape == (2, 1)
    assert not np.allclose(low.numpy(), top.numpy())
    # the exported graph carries the weights of the layers it runs, none of those above
    weights = {}
    for layer in (3, MINICPM_LAYERS):
        (tmp_path / str(layer)).mkdir()
        export_onnx(LayerHeadScorer(model, layer).eval(), ("input_ids", "attention_mask"),
                    tmp_path / str(layer) / "model.onnx")
        graph = onnx.load(str(tmp_path / str(layer) / "model.onnx")).graph
        weights[layer] = sum(int(np.prod(t.dims)) for t in graph.initializer)
    per_layer = (weights[MINICPM_LAYERS] - weights[3]) / (MINICPM_LAYERS - 3)
    embeddings = model.model.embed_tokens.weight.numel()
    assert abs(weights[3] - embeddings - 3 * per_layer) < per_layer / 2
