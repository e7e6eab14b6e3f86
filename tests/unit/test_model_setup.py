from __future__ import annotations

from pathlib import Path

import pytest

from crossrank import __version__
from crossrank.embedded_triton import model_setup
from crossrank.embedded_triton.model_setup import name_from_source, parse_spec
from crossrank.export import source, stamp
from crossrank.export.exporter import ExportError, ExportOptions
from crossrank.export.triton_repository import ensemble_config, write_config
from crossrank.model_info import Activation, ModelInfo, Task


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


# --- Which export `serve` uses: stale exports are redone, the demo stands in only for an unreachable hub ---

class _Exports:
    """Stands in for `export`: writes an ensemble config and a stamp, or fails as the hub would."""

    def __init__(self, hub: str = "answers") -> None:
        self.hub = hub  # "answers", "unreachable" or "404"
        self.calls: list[str] = []

    def __call__(self, options: ExportOptions) -> None:
        self.calls.append(options.name)
        local = Path(options.source)
        if not local.is_dir() and self.hub != "answers":
            cause = source.SourceError(f"cannot fetch {options.source!r} from the Hugging Face hub",
                                       unreachable=self.hub == "unreachable")
            raise ExportError(str(cause)) from cause
        info = ModelInfo(options.name, Task.RERANK, ("LABEL_0",), Activation.SIGMOID, 512, "onnx-python", "fp32",
                         options.source_label or options.source, 8)
        directory = options.repository / options.name
        write_config(directory, ensemble_config(info, ("input_ids",), 1))
        stamp.write(directory, stamp.make(options.source, local if local.is_dir() else Path(__file__).parent, {}))


@pytest.fixture()
def exports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> _Exports:
    fake = _Exports()
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "config.json").write_text("{}")
    monkeypatch.setattr(model_setup, "export", fake)
    monkeypatch.setattr(source, "build_demo_model", lambda directory: demo)
    return fake


def test_the_demo_stands_in_only_when_the_hub_cannot_be_reached(exports: _Exports, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    exports.hub = "404"  # the hub answered: not found (or 401, 5xx): an error, never the demo
    with pytest.raises(ExportError):
        model_setup.ensure_models((), repo)
    exports.hub = "unreachable"
    assert model_setup.ensure_models((), repo) == [source.DEMO_MODEL_NAME]
    # A model the user named is never replaced by the demo, even the default one named explicitly.
    with pytest.raises(ExportError):
        model_setup.ensure_models((source.DEFAULT_MODEL,), repo)


def test_a_repository_holding_only_the_demo_asks_the_hub_again(exports: _Exports, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    exports.hub = "unreachable"
    model_setup.ensure_models((), repo)
    exports.hub = "answers"
    exports.calls.clear()
    names = model_setup.ensure_models((), repo)
    assert names == [model_setup.name_from_source(source.DEFAULT_MODEL)]
    assert exports.calls == names


def test_stale_exports_are_exported_again(exports: _Exports, tmp_path: Path) -> None:
    repo, model = tmp_path / "repo", tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"a": 1}')
    spec = f"mine={model}"
    model_setup.ensure_models((spec,), repo)
    model_setup.ensure_models((spec,), repo)
    assert exports.calls == ["mine"]  # current: reused

    (model / "config.json").write_text('{"a": 2}')  # the source's files changed
    model_setup.ensure_models((spec,), repo)
    assert exports.calls == ["mine", "mine"]

    other = tmp_path / "other"
    other.mkdir()
    model_setup.ensure_models((f"mine={other}",), repo)  # another source under the same name
    assert exports.calls == ["mine"] * 3

    written = stamp.read(repo / "mine")
    assert written is not None and written["crossrank_version"] == __version__
    stamp.write(repo / "mine", {**written, "crossrank_version": "0.0.1"})  # an older crossrank
    model_setup.ensure_models((f"mine={other}",), repo)
    assert exports.calls == ["mine"] * 4
    written = stamp.read(repo / "mine")
    assert written is not None
    stamp.write(repo / "mine", {**written, "export_format": stamp.EXPORT_FORMAT - 1})  # an older layout
    model_setup.ensure_models((f"mine={other}",), repo)
    assert exports.calls == ["mine"] * 5
    (repo / "mine" / stamp.STAMP_FILE).unlink()  # no stamp at all
    model_setup.ensure_models((f"mine={other}",), repo)
    assert exports.calls == ["mine"] * 6


def test_hub_failures_are_told_apart_by_whether_the_hub_answered() -> None:
    import requests
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    from crossrank.export.source import _unreachable

    assert _unreachable(LocalEntryNotFoundError("offline, nothing cached"))
    assert _unreachable(requests.ConnectionError("DNS failure"))
    try:
        raise RuntimeError("wrapped") from TimeoutError("connect timed out")
    except RuntimeError as wrapped:
        assert _unreachable(wrapped)
    for answered in (RepositoryNotFoundError("404"), GatedRepoError("401"), HfHubHTTPError("503 from the hub")):
        assert not _unreachable(answered)
