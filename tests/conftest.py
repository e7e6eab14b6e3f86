"""Shared fixtures. Expensive ones (model directories, exports, a running server) live for the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import model_builders


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_builders.tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_nli_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_builders.tiny_bert(tmp_path_factory.mktemp("models") / "tiny-nli", num_labels=3, seed=1)


@pytest.fixture(scope="session")
def minilm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_builders.minilm_standin(tmp_path_factory.mktemp("models") / "minilm-standin")
