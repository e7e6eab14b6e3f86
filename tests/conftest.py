"""Shared fixtures. Expensive ones (model directories, exports) are built once per run and shared by every
xdist worker (shared_builds.py); a running server lives for a worker's session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crossrank.export.tuning import TIMING_BUDGET_ENV
from tests import model_builders
from tests.shared_builds import shared_build

# Exports in the tests time their candidates and sub-batch widths over a few seconds instead of a minute: the
# tests assert what was measured and chosen by the rules, never the figures. Set here, so that the servers the
# tests start (which export on first start) inherit it.
os.environ.setdefault(TIMING_BUDGET_ENV, "3")

# The files that take longest (measured in a full run), started first so that the workers finish together:
# pytest-xdist hands out whole files in collection order.
SLOWEST_FIRST = (
    "integration/test_precisions.py", "e2e/test_lifecycle.py", "e2e/test_faults.py", "e2e/test_families.py",
    "e2e/test_jina_bert.py", "e2e/test_minicpm_layerwise.py", "e2e/test_flood.py", "e2e/test_security.py",
    "integration/test_export_progress.py", "integration/test_causal_layouts.py", "e2e/test_custom_code.py",
    "e2e/test_exact_head.py",
)


# Files whose tests time recoveries, batching, latency or memory: `make test` runs them on their own after the
# parallel run (`-m serial`), since beside the CPU-bound exports of other workers on two cores a Triton restart
# takes over a minute and batching changes.
SERIAL = (
    "e2e/test_faults.py", "e2e/test_observability.py", "e2e/test_cancellation.py", "e2e/test_slow_clients.py",
    "integration/test_slow_clients.py", "e2e/test_flood.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.path.as_posix()
        return next((i for i, name in enumerate(SLOWEST_FIRST) if path.endswith(name)), len(SLOWEST_FIRST))

    items.sort(key=rank)  # stable: within a file, and among the rest, the order stays as collected
    for item in items:
        if any(item.path.as_posix().endswith(name) for name in SERIAL):
            item.add_marker(pytest.mark.serial)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_build(tmp_path_factory, "tiny-bert", model_builders.tiny_bert)


@pytest.fixture(scope="session")
def tiny_nli_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_build(tmp_path_factory, "tiny-nli", lambda path: model_builders.tiny_bert(path, num_labels=3, seed=1))


@pytest.fixture(scope="session")
def minilm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_build(tmp_path_factory, "minilm-standin", model_builders.minilm_standin)
