"""What an export records about itself (`NAME/crossrank_export.json` beside the ensemble's config): the
crossrank version that wrote it, the source and its files' fingerprint, and the options. `serve` compares it
with what it is asked to serve, so that a stale export (another crossrank, another source, changed files)
is exported again rather than served silently."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from pathlib import Path
from typing import Any

from crossrank import __version__

STAMP_FILE = "crossrank_export.json"
# The layout of what export writes (the tokenizer's and ensemble's inputs, outputs and parameters). Raised
# whenever that layout changes, so that an export from before is exported again even where the crossrank
# version number did not move (a development install). 2: the tokenizer reports `document_end` and takes
# the query and the truncation choice as request parameters. 3: the tokenizer says which pairs it cut (a
# causal-LM prompt outside the max length is not a cut), the ensemble says whether it accepts an instruction.
# 4: the tokenizer refuses an over-long pair with Triton's INVALID_ARGUMENT code (triton_contract.py).
EXPORT_FORMAT = 4
_WHOLE_FILE_BYTES = 1 << 20
# Marks an export option that the stamp leaves out (`field(metadata=NOT_STAMPED)`): every other one is recorded,
# so an option added later is recorded without anyone remembering to.
NOT_STAMPED = {"stamped": False}  # files up to this size are hashed whole; larger ones by size, head and tail


def fingerprint(directory: Path) -> str:
    """A digest of a model directory's files: names, sizes and contents (large weights by their first and last
    MiB, which changes whenever the weights do in practice, at a fraction of the cost of hashing gigabytes)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and ".cache" not in p.parts):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(directory)}\0{size}\0".encode())
        with path.open("rb") as handle:
            if size <= _WHOLE_FILE_BYTES:
                digest.update(handle.read())
            else:
                digest.update(handle.read(_WHOLE_FILE_BYTES))
                handle.seek(-_WHOLE_FILE_BYTES, 2)
                digest.update(handle.read())
    return digest.hexdigest()


def recorded_options(options: Any) -> dict[str, Any]:
    """The options dataclass's fields, as JSON values, but those marked NOT_STAMPED."""
    recorded = {}
    for option in dataclasses.fields(options):
        if option.metadata.get("stamped", True):
            value = getattr(options, option.name)
            recorded[option.name] = value.value if isinstance(value, enum.Enum) else (
                str(value) if isinstance(value, Path) else value)
    return recorded


def make(source: str, resolved: Path, options: dict[str, Any]) -> dict[str, Any]:
    return {"crossrank_version": __version__, "export_format": EXPORT_FORMAT, "source": source,
            "source_fingerprint": fingerprint(resolved),
            "options": options}


def write(directory: Path, stamp: dict[str, Any]) -> None:
    (directory / STAMP_FILE).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")


def read(directory: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((directory / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def foreign_version(stamp: dict[str, Any] | None) -> str | None:
    """Why an export was not written by this crossrank version, or None when it was."""
    if stamp is None:
        return "it has no export stamp (written by an older crossrank)"
    if stamp.get("crossrank_version") != __version__:
        return f"it was written by crossrank {stamp.get('crossrank_version')}, this is {__version__}"
    if stamp.get("export_format") != EXPORT_FORMAT:
        return f"its layout is format {stamp.get('export_format', 1)}, this crossrank writes {EXPORT_FORMAT}"
    return None


def stale_reason(stamp: dict[str, Any] | None, source: str, resolved: Path | None) -> str | None:
    """Why an export no longer matches `source` (a local directory's files are checked when `resolved` is
    given), or None when it still does."""
    foreign = foreign_version(stamp)
    if foreign is not None or stamp is None:
        return foreign
    if stamp.get("source") != source:
        return f"it was exported from {stamp.get('source')!r}, not {source!r}"
    if resolved is not None and stamp.get("source_fingerprint") != fingerprint(resolved):
        return f"the files in {resolved} changed since it was exported"
    return None
