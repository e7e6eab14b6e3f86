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
