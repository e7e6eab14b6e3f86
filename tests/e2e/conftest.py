"""End-to-end fixtures: models exported into one repository and one `crossrank serve` (real Triton) for the
whole session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crossrank.export.exporter import ExportOptions, export
from tests.e2e.server_process import ServerProcess, serving
from tests.shared_builds import shared_build


@pytest.fixture(scope="session")
def repository(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path, tiny_nli_dir: Path,
               minilm_dir: Path) -> Path:
    def build(repo: Path) -> None:
        for name, source in (("tiny-bert", tiny_bert_dir), ("tiny-nli", tiny_nli_dir), ("minilm", minilm_dir)):
            export(ExportOptions(source=str(source), name=name, repository=repo))
        # The same tiny model on the PyTorch engine (CPU here; CUDA where a GPU is present).
        export(ExportOptions(source=str(tiny_bert_dir), name="tiny-bert-torch", repository=repo,
                             engine="torch-python"))

    # Built once for every worker; each worker's servers only read it.
    return shared_build(tmp_path_factory, "e2e-model-repository", build)


@pytest.fixture(scope="session")
def server(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serving(repository, tmp_path_factory.mktemp("logs") / "serve.log") as process:
        yield process
