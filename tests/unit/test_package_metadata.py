"""pyproject.toml declares what the gateway imports, so `pip install crossrank` gives a server that starts."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The export side and the code inside Triton come with the `server` extra.
EXTRA_ROOMS = ("crossrank/export/", "crossrank/triton_models/", "crossrank/embedded_triton/")


def _third_party_imports(paths: list[Path]) -> set[str]:
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [])
            found |= {n.split(".")[0] for n in names}
    return {n for n in found if n not in sys.stdlib_module_names and n != "crossrank"}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~ ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_every_gateway_import_is_a_declared_dependency() -> None:
    block = re.search(r"^dependencies = \[(.*?)^\]", (ROOT / "pyproject.toml").read_text(), re.DOTALL | re.MULTILINE)
    assert block is not None
    declared = _names(re.findall(r'"([^"]+)"', block.group(1)))
    gateway = [p for p in (ROOT / "crossrank").rglob("*.py")
               if not str(p.relative_to(ROOT)).startswith(EXTRA_ROOMS)]
    distributions = packages_distributions()
    for module in _third_party_imports(gateway):
        if module not in distributions:  # not installed here: an optional import the gateway runs without
            continue
        providers = {d.lower().replace("_", "-") for d in distributions[module]}
        assert providers & declared, f"{module} (from {providers}) is imported by the gateway but not declared"
