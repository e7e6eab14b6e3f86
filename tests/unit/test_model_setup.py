from __future__ import annotations

import pytest

from crossrank.embedded_triton.model_setup import name_from_source, parse_spec


@pytest.mark.parametrize(("spec", "name", "source"), [
    ("cross-encoder/ms-marco-MiniLM-L-6-v2", "ms-marco-minilm-l-6-v2", "cross-encoder/ms-marco-MiniLM-L-6-v2"),
    ("/models/My Model/", "my-model", "/models/My Model/"),
    ("rr=BAAI/bge-reranker-base", "rr", "BAAI/bge-reranker-base"),
])
def test_parse_spec(spec: str, name: str, source: str) -> None:
    parsed = parse_spec(spec)
    assert (parsed.name, parsed.source) == (name, source)


def test_bad_names_are_rejected() -> None:
    with pytest.raises(ValueError):
        parse_spec("bad name=/x")
    with pytest.raises(ValueError):
        name_from_source("///")
