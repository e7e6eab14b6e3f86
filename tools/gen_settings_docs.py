"""Writes the settings' documentation from their declarations (crossrank/settings.py): the documented YAML
file server_config/crossrank.yaml and the settings table in docs/operations.md. Run after changing a setting;
tests/unit/test_settings.py fails while either is out of date."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's declarations, whatever crossrank is installed

from crossrank import settings_docs  # noqa: E402

CONFIG = ROOT / "server_config" / "crossrank.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"


def main() -> None:
    CONFIG.write_text(settings_docs.render_yaml())
    OPERATIONS.write_text(settings_docs.replace_table(OPERATIONS.read_text()))
    print(f"wrote {CONFIG.relative_to(ROOT)} and the settings table of {OPERATIONS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
