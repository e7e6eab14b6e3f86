"""Makes sure the models `serve` was asked for are in the repository, exporting those that are missing.

A model already exported under its name is reused, so only the first start pays for export. The default
model comes from the Hugging Face hub; where the hub is unreachable the offline demo model replaces it,
with a warning on every start (see export/source.py).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from crossrank.export import source, stamp
from crossrank.export.exporter import ExportError, ExportOptions, export
from crossrank.export.triton_repository import read_config
from crossrank.model_info import ModelInfo
from crossrank.triton_contract import AUTO, PYTHON_BACKEND_ENGINES

logger = logging.getLogger(__name__)

DEMO_SOURCE_LABEL = ("offline demo: all-MiniLM-L6-v2 backbone, head fitted on a synthetic word-overlap task "
                     "(no real relevance training)")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str


def name_from_source(spec: str) -> str:
    """`cross-encoder/ms-marco-MiniLM-L-6-v2` -> `ms-marco-minilm-l-6-v2`."""
    last = spec.rstrip("/").rsplit("/", 1)[-1].lower()
    name = re.sub(r"[^a-z0-9_-]+", "-", last).strip("-")
    if not name:
        raise ValueError(f"cannot derive a model name from {spec!r}; use NAME=SOURCE")
    return name


def parse_spec(spec: str) -> ModelSpec:
    """Parses `SOURCE` or `NAME=SOURCE`."""
    if "=" in spec:
        name, src = spec.split("=", 1)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise ValueError(f"model name {name!r}: use letters, digits, '-' and '_' only")
        return ModelSpec(name, src)
    return ModelSpec(name_from_source(spec), spec)


def exported_models(repository: Path) -> list[ModelInfo]:
    """The crossrank ensembles in `repository`."""
    found = []
    for config_file in sorted(repository.glob("*/config.pbtxt")) if repository.is_dir() else []:
        config = read_config(config_file.parent)
        params = {k: v.string_value for k, v in config.parameters.items()}
        info = ModelInfo.from_parameters(config.name, config.max_batch_size, params)
        if info is not None and config.platform == "ensemble":
            found.append(info)
    return found




def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "crossrank"


def _stale(spec: ModelSpec, repository: Path) -> str | None:
    """Why the export under `spec.name` must be redone for `spec`, or None to reuse it."""
    local = Path(spec.source).expanduser()
    return stamp.stale_reason(stamp.read(repository / spec.name), spec.source,
                              local.resolve() if local.is_dir() else None)


def _export(spec: ModelSpec, repository: Path, label: str | None = None) -> None:
    # Serve exports on the machine that serves: engine and precision are measured there (`auto`).
    export(ExportOptions(source=spec.source, name=spec.name, repository=repository, engine=AUTO,
                         precision=AUTO, source_label=label))


def _reusable(spec: ModelSpec, repository: Path) -> bool:
    """Whether a current export of `spec` is there; says which, and why a stale one is not reused."""
    if not (repository / spec.name / "config.pbtxt").exists():
        return False
    reason = _stale(spec, repository)
    if reason is None:
        logger.info("model %s: reusing the export in %s", spec.name, repository)
        return True
    logger.warning("model %s: exporting again: %s", spec.name, reason)
    return False


def _ensure(spec: ModelSpec, repository: Path, implicit: bool = False) -> str:
    """Exports `spec` unless a current export of it is there. `implicit`: the default model nobody named,
    which alone may fall back to the offline demo, and only while the hub cannot be reached at all."""
    if _reusable(spec, repository):
        return spec.name
    try:
        _export(spec, repository)
        return spec.name
    except ExportError as exc:
        cause = exc.__cause__
        if not (implicit and isinstance(cause, source.SourceError) and cause.unreachable):
            raise
        logger.warning("%s", exc)
    demo = source.build_demo_model(_cache_dir() / "demo-model-fitted")
    demo_spec = ModelSpec(source.DEMO_MODEL_NAME, str(demo))
    if not _reusable(demo_spec, repository):
        _export(demo_spec, repository, DEMO_SOURCE_LABEL)
    return demo_spec.name


def ensure_models(specs: tuple[str, ...], repository: Path) -> list[str]:
    """Exports what is missing or stale; returns the names to serve, in the order asked (first = default)."""
    parsed = [parse_spec(s) for s in specs]
    existing = exported_models(repository)
    implicit = False
    if not parsed and existing and any(m.source != DEMO_SOURCE_LABEL for m in existing):
        logger.info("reusing the exports in %s: %s", repository, ", ".join(m.name for m in existing))
        for model in existing:
            reason = stamp.foreign_version(stamp.read(repository / model.name))
            if reason:
                logger.warning("model %s: %s; export it again with `crossrank export` to serve what this version "
                               "writes", model.name, reason)
    elif not parsed:
        # An empty repository, or only the offline demo: the default model, from the hub when it answers.
        parsed, implicit = [parse_spec(source.DEFAULT_MODEL)], True
    names = [_ensure(spec, repository, implicit) for spec in parsed]
    served = exported_models(repository)
    if any(m.source == DEMO_SOURCE_LABEL for m in served):
        logger.warning("%s", source.DEMO_WARNING)
    native = [m for m in served if m.engine and m.engine not in PYTHON_BACKEND_ENGINES]
    if native:
        raise ValueError(
            f"{', '.join(f'{m.name} (engine {m.engine})' for m in native)} in {repository} need Triton's native "
            f"backends, which the bundled Triton (python backend only) lacks: serve that repository with the NGC "
            f"Triton image (docker/triton.Dockerfile) and --triton-url, or export again with --engine onnx-python")
    return names
