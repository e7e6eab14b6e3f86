"""The gateway-Triton contract: what the tokenizer writes is what the gateway reads, and the python-backend
models get the contract beside them."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossrank import triton_contract
from crossrank.export.encoder_build import copy_triton_module
from crossrank.triton_contract import EngineName, Precision, parse_too_long, too_long_message


def test_a_too_long_refusal_reads_back_after_any_prefix_triton_adds() -> None:
    message = too_long_message(3, 700, 512)
    assert parse_too_long(message) == (3, 700)
    assert parse_too_long(f"in ensemble 'm', tokenizer: {message}") == (3, 700)


@pytest.mark.parametrize("message", ["", "tokenizer: boom", "crossrank-input-too-long {oops",
                                     "crossrank-input-too-long"])
def test_other_messages_are_not_refusals(message: str) -> None:
    assert parse_too_long(message) is None


def test_engine_and_precision_names_are_the_strings_configs_hold() -> None:
    assert EngineName("onnx-python") is EngineName.ONNX_PYTHON and EngineName.TORCH_PYTHON == "torch-python"
    assert f"{EngineName.TENSORRT}/{Precision.FP16}" == "tensorrt/fp16"
    assert triton_contract.PYTHON_BACKEND_ENGINES == (EngineName.ONNX_PYTHON, EngineName.TORCH_PYTHON)


def test_python_backend_models_get_the_contract_beside_them(tmp_path: Path) -> None:
    copy_triton_module(tmp_path, "tokenizer_model.py", "pair_tokenizer.py")
    assert (tmp_path / "triton_contract.py").read_text() == Path(triton_contract.__file__).read_text()
    assert "from triton_contract import" in (tmp_path / "model.py").read_text()
