"""The verifier may import only the standard library, cryptography and rfc8785."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

VERIFIER = Path(__file__).resolve().parent.parent / "depository" / "verifier"
ALLOWED_THIRD_PARTY = {"cryptography", "rfc8785"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, "depository.verifier." + (node.module or "")))
            else:
                found.append((node.lineno, node.module or ""))
    return found


MODULES = sorted(VERIFIER.rglob("*.py"))


def test_verifier_has_modules() -> None:
    assert len(MODULES) >= 5


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_verifier_imports_only_allowed(path: Path) -> None:
    bad = []
    for line, name in _imports(path):
        top = name.split(".")[0]
        if name == "depository.verifier" or name.startswith("depository.verifier."):
            continue
        if top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY:
            continue
        bad.append(f"{path.name}:{line} imports {name}")
    assert not bad, "verifier must not import: " + "; ".join(bad)


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    p = tmp_path / "x.py"
    p.write_text("import click\nfrom depository.store import x\n")
    names = [n for _, n in _imports(p)]
    assert names == ["click", "depository.store"]
