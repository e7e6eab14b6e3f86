"""Reads a checkpoint's config and fast tokenizer (`Checkpoint`), with a clear error for each way that fails;
the format (crossrank/export/formats) loads the model itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crossrank.export.formats.base import Checkpoint, needs_remote_code
from crossrank.export.options import ExportError, ExportOptions


def load_config(path: Path, options: ExportOptions) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=options.trust_remote_code)
    except Exception as exc:
        remote = needs_remote_code(exc, options)
        if remote:
            raise remote from exc
        if "model_type" in str(exc) or "does not recognize this architecture" in str(exc) or isinstance(exc, KeyError):
            raise ExportError(f"{options.source}: unsupported architecture (transformers does not know its "
                              "model_type); if the model ships its own code, read it and add "
                              "--trust-remote-code, else upgrade transformers") from exc
        raise ExportError(f"cannot read the model config in {path}: {str(exc).splitlines()[0]}") from exc


def load_checkpoint(path: Path, options: ExportOptions) -> Checkpoint:
    """The checkpoint in `path`: its config and its fast (Rust) tokenizer, which Triton runs."""
    from transformers import AutoTokenizer

    config = load_config(path, options)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=options.trust_remote_code)
    except Exception as exc:
        raise needs_remote_code(exc, options) or ExportError(
            f"cannot load the tokenizer from {path}: {str(exc).splitlines()[0]}") from exc
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise ExportError(f"{options.source}: the tokenizer has no fast (Rust) version, which Triton needs; "
                          "convert it with transformers' `convert_slow_tokenizer` and save tokenizer.json")
    return Checkpoint(path=path, config=config, tokenizer=tokenizer, options=options)
