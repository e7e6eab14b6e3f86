"""Converts a PyTorch sequence-classification model to ONNX with dynamic batch and sequence axes."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

OPSET = 17


class _LogitsOnly(torch.nn.Module):
    """Gives the exporter a plain tensor output and keyword inputs in a fixed order."""

    def __init__(self, model: torch.nn.Module, input_names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        output = self.model(**dict(zip(self.input_names, inputs)))
        return output if isinstance(output, torch.Tensor) else output.logits


def export_onnx(model: torch.nn.Module, input_names: tuple[str, ...], path: Path) -> None:
    """Writes `model` as ONNX; inputs int64 [batch, sequence], output `logits` float32 [batch, labels]."""
    sample = torch.ones((2, 8), dtype=torch.int64)
    args = tuple(sample if n != "token_type_ids" else torch.zeros_like(sample) for n in input_names)
    axes = {n: {0: "batch", 1: "sequence"} for n in input_names}
    axes["logits"] = {0: "batch"}
    with warnings.catch_warnings():
        # The TorchScript exporter is used on purpose: it handles every transformers architecture here
        # without onnxscript; its deprecation and tracer notices are noise for users of `export`.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LogitsOnly(model, input_names).eval(), args, str(path),
            input_names=list(input_names), output_names=["logits"], dynamic_axes=axes,
            opset_version=OPSET, do_constant_folding=True, dynamo=False,
        )
