"""The model facts export writes into the ensemble's parameters and the gateway reads back: round trip, and
exports written before a field existed."""

from __future__ import annotations

from dataclasses import replace

from crossrank.model_info import Activation, ModelInfo, Task

INFO = ModelInfo("m", Task.RERANK, ("1",), Activation.SIGMOID, 160, "onnx-python", "fp32", "src", 8)


def test_every_field_survives_the_config_parameters() -> None:
    for info in (INFO, replace(INFO, accepts_instruction=True),
                 replace(INFO, default_instruction="Given a web search query", accepts_instruction=True),
                 replace(INFO, precision="int8", exact_model="m_fp32", head_delta=0.0123456789, head_samples=464)):
        assert ModelInfo.from_parameters("m", 8, info.to_parameters()) == info


def test_an_older_export_with_a_default_instruction_still_accepts_one() -> None:
    params = replace(INFO, default_instruction="Given a web search query", accepts_instruction=True).to_parameters()
    del params["crossrank_accepts_instruction"]  # written before the flag existed
    assert ModelInfo.from_parameters("m", 8, params).accepts_instruction
    params = INFO.to_parameters()
    del params["crossrank_accepts_instruction"]
    assert not ModelInfo.from_parameters("m", 8, params).accepts_instruction


def test_an_export_from_before_the_exact_head_has_none() -> None:
    params = INFO.to_parameters()
    for key in ("exact_model", "head_delta", "head_samples"):
        del params[f"crossrank_{key}"]
    info = ModelInfo.from_parameters("m", 8, params)
    assert info == INFO and not info.exact_head
