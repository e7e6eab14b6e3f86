"""The requests the gateway has abandoned, shared by the python-backend models of one Triton server.

Triton (2.51) cancels an ensemble request only between its steps: a step already queued or running, such as
the encoder step of a rerank whose client has gone, never sees `request.is_cancelled()` turn true. So the
gateway tells Triton itself. After abandoning pieces it sends the same ensemble one small request whose
CANCELLED_PARAMETER (triton_contract.py) lists their request ids; the tokenizer, which gets it at once
(tokenizing is quick, its queue short), records them here, and the encoder drops any request it is given whose
id is recorded, before each sub-batch, as it drops those Triton reports cancelled.

The register is a folder of empty files named by request id, one folder per Triton server: the folder the
environment variable REGISTER_ENV names (the embedded launcher sets it inside its scratch folder, removed when
its Triton exits), else one named after the stubs' parent process (Triton) in the temporary folder. Entries
older than KEEP_S are removed as new ones are recorded.
Standard library only: it is copied beside every python-backend model.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterable

REGISTER_ENV = "CROSSRANK_CANCELLED_DIR"
KEEP_S = 300.0  # far longer than any request waits in Triton
_PRUNE_EVERY_S = 30.0
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what the gateway sends; anything else is never a file name


def folder(server_pid: int | None = None) -> str:
    """The register of this stub's Triton server (or of the server `server_pid`)."""
    if server_pid is None and os.environ.get(REGISTER_ENV):
        return os.environ[REGISTER_ENV]
    return os.path.join(tempfile.gettempdir(), f"crossrank-cancelled-{server_pid or os.getppid()}")


class CancelledRequests:
    def __init__(self, path: str | None = None) -> None:
        self._path = path or folder()
        self._pruned_at = 0.0

    def add(self, request_ids: Iterable[str]) -> None:
        os.makedirs(self._path, exist_ok=True)
        for request_id in request_ids:
            if _ID.fullmatch(request_id):
                with open(os.path.join(self._path, request_id), "w"):
                    pass
        self._prune()

    def __contains__(self, request_id: object) -> bool:
        return (isinstance(request_id, str) and _ID.fullmatch(request_id) is not None
                and os.path.exists(os.path.join(self._path, request_id)))

    def _prune(self) -> None:
        now = time.time()
        if now - self._pruned_at < _PRUNE_EVERY_S:
            return
        self._pruned_at = now
        with os.scandir(self._path) as entries:
            for entry in entries:
                try:
                    if entry.stat().st_mtime < now - KEEP_S:
                        os.unlink(entry.path)
                except OSError:  # removed meanwhile by another instance
                    continue
