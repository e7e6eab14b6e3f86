"""A progress bar over an export's long steps (tqdm, on standard error): loading the model, building and
measuring each candidate precision, the parity check, the ranking-agreement check, each sub-batch width
timed, writing the models. The bar counts steps and shows the time left from the steps done so far; log
lines are printed above it instead of through it.

Off unless asked (`crossrank export --progress`, on by default when standard error is a terminal), so logs of
non-interactive runs stay plain lines.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any


class Progress:
    """Steps of one export. `planned` may grow as the export learns what it will do (its candidates)."""

    def __init__(self, enabled: bool, planned: int = 1) -> None:
        self._bar: Any = None
        self._planned = planned
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=planned, desc="export", unit="step", file=sys.stderr, dynamic_ncols=True,
                             bar_format="{desc}: {n_fmt}/{total_fmt} steps |{bar}| {elapsed} elapsed, "
                                        "{remaining} left")

    def plan(self, more: int) -> None:
        """`more` steps beyond those planned so far."""
        self._planned += more
        if self._bar is not None:
            self._bar.total = self._planned
            self._bar.refresh()

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        """One step: named on the bar while it runs, counted when it ends."""
        if self._bar is not None:
            self._bar.set_description_str(f"export: {what}")
        yield
        if self._bar is not None:
            self._bar.update(1)

    @contextlib.contextmanager
    def shown(self) -> Iterator[Progress]:
        """The bar for the export's run: log lines above it, closed at the end."""
        if self._bar is None:
            yield self
            return
        from tqdm.contrib.logging import logging_redirect_tqdm

        try:
            with logging_redirect_tqdm():
                yield self
        finally:
            self._bar.close()


OFF = Progress(False)
