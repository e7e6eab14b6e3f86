"""What `crossrank export` is asked to do (`ExportOptions`) and how it says it cannot (`ExportError`).

A module of its own so that the exporter, the loading code and every format module read one declaration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from crossrank.export import stamp
from crossrank.triton_contract import AUTO, EngineName, Precision


class ExportError(RuntimeError):
    """Export cannot proceed; the message names the cause and what to try instead."""


@dataclass(frozen=True)
class ExportOptions:
    # Every option is recorded in the export's stamp (stamp.py) unless marked NOT_STAMPED: the source has its
    # own entry, and where the export is written and under which name say nothing about what it holds.
    source: str = field(metadata=stamp.NOT_STAMPED)
    name: str = field(metadata=stamp.NOT_STAMPED)
    repository: Path = field(metadata=stamp.NOT_STAMPED)
    # Python callers get a fixed, fast-to-build export (onnx-python, fp32); `crossrank export` and serve's
    # model set-up pass `auto` for both, which measures the candidates this machine runs (minutes).
    engine: str = EngineName.ONNX_PYTHON
    precision: str = Precision.FP32
    max_length: int | None = None
    max_batch_size: int = 256
    encoder_threads: int = 0
    tolerance: float = 1e-4
    trust_remote_code: bool = False
    tokenizer_instances: int = 1  # Triton instances of the tokenizer model (several on GPU hosts)
    # Triton instances of a python-backend encoder: on a GPU a second one overlaps its host-side work
    # (padding, copies, the result's trip back) with the other's kernels.
    encoder_instances: int = 1
    tokens_per_batch: int = 0  # padded tokens per encoder sub-batch; 0 = measured at export
    source_label: str | None = None  # what ListModels reports as the source; defaults to `source`
    # The model's format (crossrank/export/formats: auto = told from the checkpoint), and for the bge-gemma
    # format the prompt after each pair and the token whose logit is the score.
    layout: str = AUTO
    prompt: str | None = None  # None: bge-reranker-v2-gemma's instruction
    score_token: str = "Yes"
    # Causal-LM rerankers on torch-python: a request's shared prefix runs once (causal_lm_score.py); off
    # computes every pair whole (for comparison, or should a model's attention make reuse unsafe).
    prefix_reuse: bool = True
    # Layerwise rerankers (bge-reranker-v2-minicpm-layerwise): the layer whose head gives the score; the
    # encoder computes no layer above it. None: the format's default (the model card's 28).
    cutoff_layer: int | None = None
    # The exact head (docs/models.md): a reduced precision served with its fp32 encoder re-scoring the head.
    # auto: a candidate of --precision auto, off for a named precision; on: a named reduced precision gets
    # it; off: never.
    exact_head: str = AUTO


EXACT_HEAD_CHOICES = (AUTO, "on", "off")
