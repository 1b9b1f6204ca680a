"""The layer rule (docs/adr/0006-layers.md), checked on the source with ``ast``.

Three rules over every module of ``depository``:

(a) layers: a package imports only packages on a lower floor (cli > loadtests > service >
    evidence, certification > store > verifier, signing > tlog); ``tlog`` imports only the
    standard library, ``cryptography`` and ``rfc8785``, and the verifier only those plus
    ``depository.tlog``;
(b) blob backends never import the store façade or its modules;
(c) no ``_private`` module or name is imported from another package.

Known violations are listed with the change that removes them; the list may only shrink: a
listed violation that no longer occurs fails the test too.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "depository"

# Floors, low to high; a package may import packages on lower floors only (and itself).
# ``depository`` itself (``__version__``) is on floor 0 for everyone but tlog and verifier.
LAYERS: dict[str, int] = {
    "tlog": 0,
    "verifier": 1,
    "signing": 1,
    "store": 2,
    "evidence": 3,
    "certification": 3,
    "service": 4,
    "loadtests": 5,
    "cli": 6,
    "demo": 6,
    "__main__": 7,
}
ROOT = "depository"
STDLIB_ONLY = {"cryptography", "rfc8785"}
# Packages an auditor runs alone: third-party imports limited to STDLIB_ONLY, and from
# depository only these packages.
STANDALONE: dict[str, set[str]] = {
    "tlog": {"tlog"},
    "verifier": {"tlog", "verifier"},
}
# Blob backends (rule b): modules of the store that hold blobs. They may import each other
# and the store modules in BACKEND_MAY_IMPORT, never the façade or its other modules.
BLOB_BACKENDS = {"store/_blobs.py", "store/_s3.py", "store/_backend.py", "store/_s3client.py",
                 "store/_s3audit.py", "store/_anchor_sinks.py"}
BACKEND_MAY_IMPORT = {"depository.store._errors"}

# Violations that exist today, as (file, rule, imported); to be removed by the store split
# (issue 12, items 2-4) unless the comment says otherwise. Remove an entry with the import.
KNOWN_VIOLATIONS: set[tuple[str, str, str]] = set()


@dataclass(frozen=True)
class Import:
    file: str  # relative to the package directory, with "/"
    line: int
    module: str  # absolute dotted module imported from
    names: tuple[str, ...]  # for "from m import a, b"; () for "import m"


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    rule: str  # "layer", "backend", "private" or "third-party"
    imported: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.file, self.rule, self.imported)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}: {self.imported}"


def _dotted(package_dir: Path, path: Path) -> str:
    rel = path.relative_to(package_dir).with_suffix("")
    parts = [ROOT, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(package_dir: Path) -> list[Import]:
    """Every import statement under ``package_dir`` (the ``depository`` directory)."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir).as_posix()
        here = _dotted(package_dir, path)
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.extend(Import(rel, node.lineno, a.name, ()) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:
                    base = here.split(".") if is_pkg else here.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    module = ".".join([*base, module] if module else base)
                found.append(Import(rel, node.lineno, module,
                                    tuple(a.name for a in node.names)))
    return found


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _top(file: str) -> str:
    first = file.split("/")[0]
    return first.removesuffix(".py")


def violations(package_dir: Path) -> list[Violation]:
    """The rule violations under ``package_dir``."""
    out: list[Violation] = []
    for imp in imports(package_dir):
        src = _top(imp.file)
        head = imp.module.split(".")[0]
        # Which depository modules does this statement reach? "from depository import x"
        # may name a subpackage x.
        targets: list[str] = []
        if head == ROOT:
            if imp.module == ROOT and imp.names:
                targets = [f"{ROOT}.{n}" for n in imp.names]
            else:
                targets = [imp.module]
        elif src in STANDALONE and head not in sys.stdlib_module_names \
                and head not in STDLIB_ONLY and head != "":
            out.append(Violation(imp.file, imp.line, "third-party", imp.module))
            continue
        for target in targets:
            parts = target.split(".")
            dst = parts[1] if len(parts) > 1 else ""
            if dst.startswith("__") and dst.endswith("__") and dst not in LAYERS:
                dst = ""  # depository.__version__: package metadata
            # (a) layers
            if src in STANDALONE:
                upward = dst not in STANDALONE[src]
            else:
                upward = bool(dst) and dst != src and (
                    dst not in LAYERS or src not in LAYERS or LAYERS[dst] >= LAYERS[src])
            if upward:
                out.append(Violation(imp.file, imp.line, "layer", target))
            # (b) blob backends
            if imp.file in BLOB_BACKENDS and dst == "store":
                mods = [target] if imp.module != target else [target] + [
                    f"{target}.{n}" for n in imp.names]
                backend_mods = {f"{ROOT}." + b.removesuffix(".py").replace("/", ".")
                                for b in BLOB_BACKENDS}
                allowed = backend_mods | BACKEND_MAY_IMPORT
                if not any(m in allowed for m in mods):
                    out.append(Violation(imp.file, imp.line, "backend", target))
            # (c) private names across packages
            if dst and dst != src:
                names = imp.names if imp.module == target else ()
                if any(_private(p) for p in parts[2:]):
                    out.append(Violation(imp.file, imp.line, "private", target))
                else:
                    out.extend(Violation(imp.file, imp.line, "private", f"{target}.{n}")
                               for n in names if _private(n))
    return out


# ---------------------------------------------------------------- the rule on the code


def test_the_package_is_found() -> None:
    files = {i.file for i in imports(PACKAGE)}
    assert "tlog/merkle.py" in files and "verifier/store.py" in files
    tops = {_top(f) for f in files} - {"__init__"}
    assert tops <= set(LAYERS), f"place these in LAYERS: {sorted(tops - set(LAYERS))}"


def check(package_dir: Path, known: set[tuple[str, str, str]]
          ) -> tuple[list[Violation], list[tuple[str, str, str]]]:
    """(violations not in ``known``, entries of ``known`` that no longer occur)."""
    found = violations(package_dir)
    seen = {v.key for v in found}
    return [v for v in found if v.key not in known], sorted(known - seen)


def test_no_new_violations() -> None:
    new, _ = check(PACKAGE, KNOWN_VIOLATIONS)
    assert not new, "import rule broken (docs/adr/0006-layers.md):\n" + "\n".join(
        map(str, new))


def test_known_violations_only_shrink() -> None:
    _, gone = check(PACKAGE, KNOWN_VIOLATIONS)
    assert not gone, f"fixed; remove from KNOWN_VIOLATIONS: {gone}"


def test_blob_backends_exist() -> None:
    # If these move, BLOB_BACKENDS must follow, or rule (b) checks nothing.
    assert all((PACKAGE / b).is_file() for b in BLOB_BACKENDS)


@pytest.mark.parametrize("pkg", sorted(STANDALONE))
def test_standalone_packages_import_only_allowed(pkg: str) -> None:
    # No known violation may excuse the auditor's packages.
    bad = [v for v in violations(PACKAGE) if _top(v.file) == pkg]
    assert not bad, "\n".join(map(str, bad))


# ---------------------------------------------------------------- the checker can fail


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "depository"
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        for parent in p.relative_to(root).parents:
            init = root / parent / "__init__.py"
            if not init.exists():
                init.write_text("")
        p.write_text(text)
    return root


def _keys(root: Path) -> set[tuple[str, str, str]]:
    return {v.key for v in violations(root)}


def test_clean_tree_has_no_violations(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "tlog/merkle.py": "import hashlib\nimport rfc8785\nfrom cryptography import x509\n",
        "verifier/store.py": "import sqlite3\nfrom depository.tlog import merkle\n"
                             "from depository.verifier import commands\nfrom . import x\n",
        "store/_blobs.py": "from depository.store._errors import StoreError\n"
                           "from depository.store._backend import BlobStat\n",
        "store/_backend.py": "", "store/_s3.py": "import boto3\n",
        "store/_store.py": "from depository.store._blobs import BlobDir\n",
        "service/app.py": "from depository.store import Store\nfrom depository import "
                          "__version__\nfrom depository.service._auth import x\n",
        "cli/main.py": "from depository import service, store\n",
    })
    assert _keys(root) == set()


def test_catches_an_upward_import(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "store/_store.py": "from depository.service import create_app\n",
        "evidence/x.py": "import depository.cli.main\n",
        "service/x.py": "from depository import cli\n",
        "certification/x.py": "from depository.evidence import export\n",  # peers
    })
    assert _keys(root) == {
        ("store/_store.py", "layer", "depository.service"),
        ("evidence/x.py", "layer", "depository.cli.main"),
        ("service/x.py", "layer", "depository.cli"),
        ("certification/x.py", "layer", "depository.evidence"),
    }


def test_catches_a_package_not_placed_in_layers(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"cli/x.py": "from depository.newthing import y\n"})
    assert _keys(root) == {("cli/x.py", "layer", "depository.newthing")}


def test_catches_the_auditors_packages_reaching_out(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "tlog/note.py": "import click\nfrom depository.verifier import store\n"
                        "from depository import __version__\n",
        "verifier/store.py": "from depository.signing import sign_note\nimport yaml\n"
                             "from depository.store import Store\n",
    })
    assert _keys(root) == {
        ("tlog/note.py", "third-party", "click"),
        ("tlog/note.py", "layer", "depository.verifier"),
        ("tlog/note.py", "layer", "depository.__version__"),
        ("verifier/store.py", "layer", "depository.signing"),
        ("verifier/store.py", "third-party", "yaml"),
        ("verifier/store.py", "layer", "depository.store"),
    }


def test_catches_a_blob_backend_importing_the_store(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "store/_blobs.py": "from depository.store._store import Store\n",
        "store/_s3.py": "from depository.store import Store\n",
        "store/_backend.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                             "    from depository.store._ops import x\n",
    })
    assert _keys(root) == {
        ("store/_blobs.py", "backend", "depository.store._store"),
        ("store/_s3.py", "backend", "depository.store"),
        ("store/_backend.py", "backend", "depository.store._ops"),
    }


def test_catches_private_imports_across_packages(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "service/a.py": "from depository.store._store import artifact_id\n",
        "cli/b.py": "from depository.verifier import _commands\n",
        "signing.py": "from depository.tlog.note import _b64decode\n",
        "evidence/c.py": "import depository.store._schema\n",
        "service/d.py": "from depository.service._auth import x\n",  # same package: fine
    })
    assert _keys(root) == {
        ("service/a.py", "private", "depository.store._store"),
        ("cli/b.py", "private", "depository.verifier._commands"),
        ("signing.py", "private", "depository.tlog.note._b64decode"),
        ("evidence/c.py", "private", "depository.store._schema"),
    }


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"tlog/sub/x.py": "from ...store import Store\n"})
    assert _keys(root) == {("tlog/sub/x.py", "layer", "depository.store")}


def test_known_list_excuses_listed_and_fails_on_stale_entries(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"service/a.py": "from depository.store._store import x\n"})
    listed = ("service/a.py", "private", "depository.store._store")
    stale = ("evidence/b.py", "private", "depository.store._store")
    assert check(root, {listed}) == ([], [])
    new, gone = check(root, {stale})
    assert [v.key for v in new] == [listed]
    assert gone == [stale]


def test_the_verifier_runs_from_its_two_folders_alone(tmp_path: Path) -> None:
    # What the auditor guide promises: depository/__init__.py, tlog/ and verifier/ suffice.
    import json
    import shutil
    import subprocess

    dest = tmp_path / "depository"
    dest.mkdir()
    shutil.copy(PACKAGE / "__init__.py", dest)
    for pkg in STANDALONE:
        shutil.copytree(PACKAGE / pkg, dest / pkg,
                        ignore=shutil.ignore_patterns("__pycache__"))
    mods = sorted(_dotted(dest.parent / "depository", p) for p in dest.rglob("*.py"))
    code = ("import importlib, json, sys; import depository; "
            f"assert depository.__file__.startswith({str(dest)!r}), depository.__file__; "
            f"[importlib.import_module(m) for m in {mods!r}]; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('depository'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    assert {m.split(".")[1] for m in loaded if "." in m} <= set(STANDALONE)
    assert "depository.verifier.store" in loaded and "depository.tlog.merkle" in loaded
