"""Expensive test inputs (model directories, exports) built once per `make test` and shared by every
pytest-xdist worker.

The first worker that needs one builds it under a file lock in the folder all workers' temporary folders share
(the run's base temporary folder, or BUILDS_ENV's folder, which `make test` gives both of its pytest runs);
the others wait for the lock and reuse the finished build. A build that
failed leaves no `.done` marker, so the next worker builds it again and reports its own error. Without xdist the
same code runs in the one process.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

BUILDS_ENV = "CROSSRANK_TEST_BUILDS"


def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of builds shared by this run's workers (and by the runs that name the same BUILDS_ENV)."""
    if os.environ.get(BUILDS_ENV):
        root = Path(os.environ[BUILDS_ENV])
    else:
        base = tmp_path_factory.getbasetemp()
        root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared-builds"
    root.mkdir(parents=True, exist_ok=True)
    return root


def shared_build(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """`root/name`, filled by `build(path)` once for the whole run."""
    target = shared_root(tmp_path_factory) / name
    done = target.with_name(f"{name}.done")
    with FileLock(str(target.with_name(f"{name}.lock"))):
        if not done.exists():
            if target.exists():  # a build that failed half-way in another worker
                shutil.rmtree(target)
            build(target)
            done.touch()
    return target
