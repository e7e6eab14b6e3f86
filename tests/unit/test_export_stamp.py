"""The export stamp records every export option unless it is marked otherwise; the tokenizer check is a real
check (it holds under `python -O`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pytest

from crossrank.export import stamp
from crossrank.export.exporter import ExportOptions
from crossrank.export.reference import TokenMismatchError, same_tokens_as


def test_every_option_is_stamped_but_the_marked_ones() -> None:
    options = ExportOptions(source="src", name="n", repository=Path("/repo"), engine="torch-python", max_length=64)
    recorded = stamp.recorded_options(options)
    assert set(recorded) == {f.name for f in fields(ExportOptions)} - {"source", "name", "repository"}
    assert (recorded["engine"], recorded["max_length"]) == ("torch-python", 64)
    json.dumps(recorded)  # a stamp is JSON


def test_an_option_added_later_is_stamped_without_a_change_to_the_stamp() -> None:
    @dataclass(frozen=True)
    class Later(ExportOptions):
        new_option: int = 7

    assert stamp.recorded_options(Later(source="s", name="n", repository=Path("r")))["new_option"] == 7


class _Features(dict):  # what CrossEncoder.preprocess returns: tensors with tolist()
    pass


class _Encoder:
    max_length = 8
    prompts: dict[str, str] = {}
    default_prompt_name = None

    def preprocess(self, pairs: list[tuple[str, str]]) -> _Features:
        return _Features(input_ids=np.array([[1, 2, 3]] * len(pairs)), attention_mask=np.ones((len(pairs), 3)))


class _Tokenizer:
    def __init__(self, ids: list[int]) -> None:
        self._ids = ids

    def encode(self, texts: list[str], pairs: list[str]) -> object:
        n = len(texts)
        return type("Batch", (), {"tensors": {"input_ids": np.array([self._ids] * n),
                                              "attention_mask": np.ones((n, len(self._ids)))}})()


def test_a_tokenizer_that_differs_from_the_reference_is_refused_with_a_real_error() -> None:
    same_tokens_as(_Encoder(), _Tokenizer([1, 2, 3]))
    with pytest.raises(TokenMismatchError, match="pair 0"):
        same_tokens_as(_Encoder(), _Tokenizer([1, 2, 4]))
