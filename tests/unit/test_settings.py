from __future__ import annotations

from pathlib import Path

import pytest

from crossrank import settings
from crossrank.settings import Settings, SettingsError

REPO_CONFIG = Path(__file__).resolve().parents[2] / "server_config" / "crossrank.yaml"


def test_documented_file_loads_and_matches_the_defaults() -> None:
    assert settings.load(REPO_CONFIG, {}, {}) == Settings()


def test_precedence_flags_over_environment_over_file(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("listen:\n  port: 1000\n  host: 127.0.0.1\nmodels:\n  sources: [a]\n")
    assert settings.load(config, {}, {}).port == 1000
    env = {"CROSSRANK_PORT": "2000", "CROSSRANK_MODELS": "x, y"}
    loaded = settings.load(config, env, {})
    assert (loaded.port, loaded.models, loaded.host) == (2000, ("x", "y"), "127.0.0.1")
    assert settings.load(config, env, {"port": 3000, "models": None}).port == 3000


@pytest.mark.parametrize(("text", "named"), [
    ("listen:\n  prot: 1\n", "listen.prot"),
    ("listen:\n  port: abc\n", "listen.port"),
    ("limits:\n  max_documents: 0\n", "limits.max_documents"),
    ("logging:\n  level: LOUD\n", "logging.level"),
    ("- a list\n", "mapping"),
])
def test_bad_file_names_the_key(tmp_path: Path, text: str, named: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(SettingsError, match=named.replace(".", r"\.")):
        settings.load(config, {}, {})


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="CROSSRANK_PORT"):
        settings.load(REPO_CONFIG, {"CROSSRANK_PORT": "fifty"}, {})


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().port = 1  # type: ignore[misc]


# Each setting is declared once; the documentation, flags and variables are derived from the declarations.
ROOT = REPO_CONFIG.parents[1]


def test_the_committed_yaml_file_and_docs_table_are_the_generated_ones() -> None:
    from crossrank import settings_docs

    hint = "out of date: run `python tools/gen_settings_docs.py`"
    assert REPO_CONFIG.read_text() == settings_docs.render_yaml(), hint
    assert settings_docs.render_table() in (ROOT / "docs" / "operations.md").read_text(), hint


def test_every_setting_has_help_and_a_variable_that_reaches_it() -> None:
    for spec in settings.SETTINGS:
        assert spec.help and spec.env == "CROSSRANK_" + spec.field.upper()
        if spec.check is settings.existing_file:  # a file setting: the variable's value is checked as a file
            with pytest.raises(SettingsError, match=spec.key.replace(".", r"\.")):
                settings.load(REPO_CONFIG, {spec.env: "/nonexistent/x.pem"}, {})
            continue
        loaded = settings.load(REPO_CONFIG, {spec.env: _other_value(spec)}, {})
        assert getattr(loaded, spec.field) != getattr(Settings(), spec.field), spec.env


def _other_value(spec: settings.Setting) -> str:
    """A valid value of the setting that is not its default, as an environment variable spells it."""
    if spec.choices:
        return next(c for c in spec.choices if c != spec.default)
    if spec.kind in (int, float):
        return str(spec.default + 1)
    return "x,y"


def test_serve_flags_and_help_come_from_the_declarations(capsys: pytest.CaptureFixture[str]) -> None:
    from crossrank.cli import build_parser

    flagged = [s for s in settings.SETTINGS if s.flag]
    assert {s.flag for s in flagged} >= {"--host", "--port", "--model", "--triton-url", "--log-format"}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for spec in flagged:
        assert spec.flag in shown and spec.env in shown
    args = build_parser().parse_args(["serve", "--port", "7", "--model", "a", "--model", "b", "--log-level", "debug"])
    loaded = settings.load(REPO_CONFIG, {}, {s.field: getattr(args, s.field) for s in flagged})
    assert (loaded.port, loaded.models, loaded.log_level) == (7, ("a", "b"), "DEBUG")


def test_the_core_limits_are_the_settings() -> None:
    from crossrank.gateway.core.validation import Limits

    assert Settings().limits == Limits()
    loaded = settings.load(REPO_CONFIG, {"CROSSRANK_MAX_CHUNKS_PER_DOCUMENT": "5",
                                         "CROSSRANK_DEFAULT_CHUNKS_PER_DOCUMENT": "2"}, {})
    assert (loaded.limits.max_chunks_per_document, loaded.limits.default_chunks_per_document) == (5, 2)
    with pytest.raises(SettingsError, match="default_chunks_per_document"):
        settings.load(REPO_CONFIG, {"CROSSRANK_DEFAULT_CHUNKS_PER_DOCUMENT": "65"}, {})
