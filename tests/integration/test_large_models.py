"""Large models: weights over protobuf's 2 GiB go to ONNX external data that the encoder carries, and the
reference scores pairs in batches bounded by memory. A stand-in small enough for CI goes through the same
paths (the external-data threshold lowered, a long window)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossrank.export import onnx_export
from crossrank.export.exporter import ExportOptions, export
from crossrank.export.reference import memory_bounded_batches
from crossrank.triton_models.onnx_encoder import OnnxEncoder
from crossrank.triton_models.pair_tokenizer import PairTokenizer
from tests.model_builders import pairs_with_long_documents


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_external_data_travels_with_the_encoder(tmp_path: Path, tiny_bert_dir: Path, precision: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_OVER", 0)  # as a model over 2 GiB is written
    report = export(ExportOptions(source=str(tiny_bert_dir), name="big", repository=tmp_path / "repo",
                                  precision=precision))
    version = tmp_path / "repo" / "big_encoder" / "1"
    assert (version / "model.onnx.data").stat().st_size > 10_000  # the weights, beside the graph
    assert sorted(p.name for p in version.iterdir() if p.name.startswith("model.onnx")) == [
        "model.onnx", "model.onnx.data"]
    # What Triton loads, from the served directory: scores as export measured them.
    pairs = pairs_with_long_documents(6)
    batch = PairTokenizer.from_directory(tmp_path / "repo" / "big_tokenizer" / "1").encode(
        [a for a, _ in pairs], [b for _, b in pairs])
    served = OnnxEncoder(str(version / "model.onnx"), intra_op_threads=1).score([batch.tensors])[0]
    assert served.shape == (6, 1) and np.isfinite(served).all()
    assert report.max_abs_diff <= (1e-4 if precision == "fp32" else float("inf"))


def test_reference_batches_stay_within_the_memory_budget() -> None:
    lengths = [8000, 12, 500, 8000, 30, 4000, 7, 64] * 8
    budget = 2 << 30
    heads = 16
    batches = memory_bounded_batches(lengths, heads, budget, max_batch=16)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # every pair once
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * heads * longest * longest * 4 <= budget
        assert len(batch) <= 16
    assert max(len(b) for b in batches) == 16  # short pairs still share batches
