"""Converts a PyTorch sequence-classification model to ONNX with dynamic batch and sequence axes.

A protobuf file holds at most 2 GiB, so a larger model's weights go to one external-data file beside the
graph (`model.onnx.data`); `onnx_files` names what an encoder directory must then carry.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

OPSET = 17
EXTERNAL_DATA_SUFFIX = ".data"
# Weights above this many bytes are written as external data (protobuf's limit is 2 GiB; the graph itself and
# its small constants stay inside).
EXTERNAL_DATA_OVER = 1 << 30


class _LogitsOnly(torch.nn.Module):
    """Gives the exporter a plain tensor output and keyword inputs in a fixed order."""

    def __init__(self, model: torch.nn.Module, input_names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        output = self.model(**dict(zip(self.input_names, inputs)))
        return output if isinstance(output, torch.Tensor) else output.logits


def export_onnx(model: torch.nn.Module, input_names: tuple[str, ...], path: Path,
                external_data_over: int | None = None) -> None:
    """Writes `model` as ONNX; inputs int64 [batch, sequence], output `logits` float32 [batch, labels]; weights
    over `external_data_over` bytes go to `<path>.data`. `path`'s directory must hold nothing else."""
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
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    weights += sum(b.numel() * b.element_size() for b in model.buffers())
    limit = EXTERNAL_DATA_OVER if external_data_over is None else external_data_over
    if weights > limit or any(f != path for f in path.parent.iterdir() if f.suffix != ".onnx"):
        consolidate_external_data(path)


def consolidate_external_data(path: Path) -> None:
    """Rewrites `path` with every large tensor in one `<name>.data` file beside it (the exporter writes one
    file per tensor when a model passes 2 GiB, and nothing else knows those names)."""
    import onnx

    model = onnx.load(str(path), load_external_data=True)
    for stray in path.parent.iterdir():
        if stray != path and stray.suffix != ".onnx":
            stray.unlink()
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.name + EXTERNAL_DATA_SUFFIX, size_threshold=1024)


def onnx_files(path: Path) -> list[Path]:
    """The graph and, when its weights are external, their file."""
    data = path.with_name(path.name + EXTERNAL_DATA_SUFFIX)
    return [path, data] if data.exists() else [path]
