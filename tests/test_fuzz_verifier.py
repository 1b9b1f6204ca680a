"""Fuzzing every offline entry point: ``verify store|package|proof|note|consistency|
inclusion``, through both ``python -m depository.verifier`` (its ``main(argv)``) and
``depository verify`` (click's runner), in-process for speed, plus a few real
subprocesses.

Inputs are mutations of valid ones (bit flips, truncation, duplication, splicing, huge
numbers, deep nesting, invalid UTF-8, NULs, FIFOs, links to /dev/zero) and generated
hostile ones. The property, for every case: exit code 0, 1 or 2 with a message; no
traceback; done within a bound; nothing written anywhere (the case directory is
snapshotted before and after, and the process's working directory is inside it).
Bounded by ``tests/_fuzz.py`` (``DEPOSITORY_FUZZ_SCALE`` for longer runs).
"""

from __future__ import annotations

import io
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from _fuzz import (
    cases,
    diff,
    label,
    mutate,
    mutate_json,
    mutate_jsonl,
    replace_with_special,
    snapshot,
    time_bound,
)
from _hostile import Inputs, build, export
from click.testing import CliRunner

from depository.cli import main as cli_main
from depository.verifier.__main__ import main as verifier_main


@pytest.fixture(scope="module")
def inp(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    return build(tmp_path_factory.mktemp("fuzz-inputs"))


@pytest.fixture(scope="module")
def package(inp: Inputs) -> Path:
    return export(inp)


@pytest.fixture
def case_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "case"
    d.mkdir()
    monkeypatch.chdir(d)  # a relative write by the code under test would land here
    return d


def run_entry(args: list[str], rng: random.Random) -> tuple[int, str]:
    """Run one verb through one of the two front ends; (exit code, all output)."""
    if rng.random() < 0.5:
        out, err = io.StringIO(), io.StringIO()
        try:
            with redirect_stdout(out), redirect_stderr(err):
                code = verifier_main(args)
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code if isinstance(exc.code, int) else 2
        return code, out.getvalue() + err.getvalue()
    result = CliRunner().invoke(cli_main, ["verify", *args], catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def check_case(name: str, i: int, root: Path, args: list[str], rng: random.Random,
               *, sqlite_files: Path | None = None) -> int:
    """Run a case and assert the property; returns the exit code. ``sqlite_files``: a
    database whose WAL index SQLite itself may create when opening it read-only (an
    empty ``-wal`` and the ``-shm``); nothing else may appear or change."""
    before = snapshot(root)
    where = f"{label(name, i)} {[a[:200] for a in args]!r}"
    with time_bound():
        try:
            code, out = run_entry(args, rng)
        except Exception as exc:
            raise AssertionError(f"{where} raised {exc!r}") from exc
    assert code in (0, 1, 2), f"{where}: exit {code}\n{out[-2000:]}"
    assert "Traceback" not in out, f"{where}\n{out[-4000:]}"
    if "--json" in args:
        expect = {0: '"verified": true', 1: '"verified": false', 2: '"usage_error"'}[code]
    else:
        expect = {0: "VERIFIED", 1: "FAILED", 2: "error"}[code]
    assert expect in out or (code == 2 and "Usage:" in out), f"{where}: exit {code}\n{out[-2000:]}"
    changed = diff(before, snapshot(root))
    if sqlite_files is not None:
        for suffix in ("-wal", "-shm"):
            side = sqlite_files.with_name(sqlite_files.name + suffix)
            rel = str(side.relative_to(root))
            if rel in changed and rel not in before and (suffix == "-shm" or (
                    side.is_file() and side.stat().st_size == 0)):
                changed.remove(rel)
    assert not changed, f"{where}: wrote {changed}"
    return code


def _write(path: Path, data: bytes) -> str:
    if path.is_symlink() or path.exists():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    path.write_bytes(data)
    return str(path)


# ------------------------------------------------------------------- proofs and notes

def test_fuzz_proof(inp: Inputs, case_dir: Path) -> None:
    proof, leaf, note = inp.proof.read_bytes(), inp.leaf.read_bytes(), inp.note.read_bytes()
    codes = set()
    for i, rng in cases("proof", 250, 6):
        p, lf = case_dir / "p.tlog-proof", case_dir / "leaf.json"
        _write(p, mutate(rng, proof, [note, leaf]) if rng.random() < 0.8 else proof)
        _write(lf, mutate(rng, leaf, [proof]) if rng.random() < 0.3 else leaf)
        if rng.random() < 0.05:
            replace_with_special(rng, rng.choice([p, lf]))
        args = ["proof", str(p), "--leaf", str(lf), "--key", inp.vkey]
        if rng.random() < 0.1:
            args[-1] = mutate(rng, inp.vkey.encode()).decode("utf-8", "replace").replace(
                "\x00", "")
        codes.add(check_case("proof", i, case_dir, args, rng))
    assert codes >= {1, 2}, codes  # the mutations reach both kinds of refusal


def test_fuzz_note(inp: Inputs, case_dir: Path) -> None:
    note, keys = inp.note.read_bytes(), inp.vkey_file.read_bytes()
    codes = set()
    for i, rng in cases("note", 200, 4):
        n, k = case_dir / "note.txt", case_dir / "keys.vkey"
        _write(n, mutate(rng, note, [keys]))
        _write(k, mutate(rng, keys, [note]) if rng.random() < 0.3 else keys)
        if rng.random() < 0.05:
            replace_with_special(rng, rng.choice([n, k]))
        codes.add(check_case("note", i, case_dir, ["note", str(n), "--key", f"@{k}"], rng))
    assert codes >= {1, 2}, codes


_NUMBERS = ["0", "1", "-1", "18446744073709551615", "18446744073709551616", "9" * 400,
            "1e3", "", "0x10", "٣"]


def test_fuzz_consistency_and_inclusion(inp: Inputs, case_dir: Path) -> None:
    cons, incl = inp.consistency.read_bytes(), inp.inclusion.read_bytes()
    codes = set()
    for i, rng in cases("consistency", 250, 4):
        p = case_dir / "proof.txt"

        def num(v: int, rng: random.Random = rng) -> str:
            return rng.choice(_NUMBERS) if rng.random() < 0.15 else str(v)

        def root(r: str, rng: random.Random = rng) -> str:
            if rng.random() < 0.15:
                return mutate(rng, r.encode()).decode("utf-8", "replace").replace("\x00", "")
            return r

        if rng.random() < 0.5:
            _write(p, mutate(rng, cons, [incl]) if rng.random() < 0.8 else cons)
            args = ["consistency", "--size1", num(inp.size1), "--size2", num(inp.size2),
                    "--root1", root(inp.root1), "--root2", root(inp.root2), "--proof", str(p)]
        else:
            _write(p, mutate(rng, incl, [cons]) if rng.random() < 0.8 else incl)
            args = ["inclusion", "--index", num(inp.leaf_index), "--size", num(inp.size2),
                    "--root", root(inp.root2), "--proof", str(p), "--leaf", str(inp.leaf)]
        if rng.random() < 0.05:
            replace_with_special(rng, p)
        codes.add(check_case("consistency", i, case_dir, args, rng))
    assert codes >= {0, 1, 2}, codes


# ------------------------------------------------------------------------------ store

def _sql_mutation(rng: random.Random, db: Path) -> None:
    """Edit a random row as an attacker with file access would: WORM triggers dropped,
    a value replaced with a mutation of itself, triggers put back."""
    conn = sqlite3.connect(db)
    try:
        triggers = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
        for name, _ in triggers:
            conn.execute(f'DROP TRIGGER "{name}"')
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for _ in range(rng.randint(1, 3)):
            table = rng.choice(tables)
            cols = [d[1] for d in conn.execute(f'PRAGMA table_info("{table}")')]
            n = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            if not n or not cols:
                continue
            row = conn.execute(f'SELECT * FROM "{table}" LIMIT 1 OFFSET ?',
                               (rng.randrange(n),)).fetchone()
            where = " AND ".join(f'"{col}" IS ?' for col in cols)  # some have no rowid
            c = rng.randrange(len(cols))
            old = row[c]
            new: object
            if isinstance(old, bytes):
                new = mutate_json(rng, old.decode("utf-8", "replace")).encode(
                    "utf-8", "surrogatepass") if rng.random() < 0.5 else mutate(rng, old)
            elif isinstance(old, str):
                new = mutate_json(rng, old) if rng.random() < 0.5 else mutate(
                    rng, old.encode()).decode("utf-8", "replace")
            elif isinstance(old, int):
                new = rng.choice([-1, 0, old + 1, 2**63 - 1, -(2**63), "x", None, b"\x00"])
            else:
                new = rng.choice([None, "", 0, b""])
            try:
                if rng.random() < 0.1:
                    conn.execute(f'DELETE FROM "{table}" WHERE {where}', row)
                else:
                    conn.execute(f'UPDATE "{table}" SET "{cols[c]}" = ? WHERE {where}',
                                 (new, *row))
            except sqlite3.IntegrityError:
                pass  # a constraint the attacker would have to drop too
        if rng.random() < 0.8:
            for _, sql in triggers:
                conn.execute(sql)
        conn.commit()
    finally:
        conn.close()


def test_fuzz_store(inp: Inputs, case_dir: Path) -> None:
    note = inp.note.read_bytes()
    codes = set()
    for i, rng in cases("store", 60, 10):
        store = case_dir / "store"
        if store.exists():
            shutil.rmtree(store)
        shutil.copytree(inp.store, store, symlinks=True)
        db = store / "depository.db"
        for p in list(store.glob("depository.db-*")):
            p.unlink()
        blob = store / inp.file_blob.relative_to(inp.store)
        what = rng.randrange(6)
        if what == 0:
            _sql_mutation(rng, db)
        elif what == 1:
            data = db.read_bytes()
            db.write_bytes(mutate(rng, data) if rng.random() < 0.7 else data[:rng.randrange(
                len(data))])
        elif what == 2:
            replace_with_special(rng, blob)
        elif what == 3:
            _write(blob, mutate(rng, blob.read_bytes()))
        elif what == 4:
            replace_with_special(rng, rng.choice([db, store / "depository.yaml"]))
        args = ["store", str(store), "--key", inp.vkey]
        if what == 5 or rng.random() < 0.2:
            since = case_dir / "since.txt"
            _write(since, mutate(rng, note) if rng.random() < 0.8 else note)
            if rng.random() < 0.1:
                replace_with_special(rng, since)
            args += ["--since-checkpoint", str(since)]
        if rng.random() < 0.2:
            args.append("--json")
        codes.add(check_case("store", i, case_dir, args, rng, sqlite_files=db))
    assert codes >= {1}, codes


# ---------------------------------------------------------------------------- package

_PKG_JSON = ("data/items.jsonl", "data/custody.jsonl")


def test_fuzz_package(inp: Inputs, package: Path, case_dir: Path) -> None:
    files = sorted(p.relative_to(package).as_posix() for p in package.rglob("*")
                   if p.is_file())
    zipped = case_dir.parent / "pkg.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for name in files:
            zf.write(package / name, f"case-M-1/{name}")
    zip_bytes = zipped.read_bytes()
    codes = set()
    for i, rng in cases("package", 120, 8):
        pkg = case_dir / "pkg"
        if pkg.exists():
            shutil.rmtree(pkg)
        target = pkg
        if rng.random() < 0.25:
            target = case_dir / "pkg.zip"
            _write(target, mutate(rng, zip_bytes))
        else:
            shutil.copytree(package, pkg)
            for _ in range(rng.choice((1, 1, 2, 3))):
                name = rng.choice([*_PKG_JSON, *_PKG_JSON, *files])
                f = pkg / name
                if not f.is_file() or f.is_symlink():
                    continue
                if rng.random() < 0.04:
                    f.unlink()  # no sparse giants here: a package is hashed whole
                    if rng.random() < 0.5:
                        os.mkfifo(f)
                    else:
                        f.symlink_to("/dev/zero")
                elif name.endswith(".jsonl"):
                    _write(f, mutate_jsonl(rng, f.read_bytes()))
                elif name.endswith(".json") and rng.random() < 0.6:
                    _write(f, mutate_json(rng, f.read_text("utf-8", "replace")).encode(
                        "utf-8", "surrogatepass"))
                else:
                    _write(f, mutate(rng, f.read_bytes()))
        args = ["package", str(target), "--key", inp.vkey]
        codes.add(check_case("package", i, case_dir, args, rng))
    assert codes >= {1}, codes


# --------------------------------------------------------------- real entry points

@pytest.mark.parametrize("entry", [["-m", "depository.verifier"], ["-m", "depository", "verify"]],
                         ids=["python-m-verifier", "depository"])
def test_fuzz_subprocess_entry_points(inp: Inputs, case_dir: Path, entry: list[str]) -> None:
    """A few mutated cases through the real executables: exit code and no traceback."""
    proof, note = inp.proof.read_bytes(), inp.note.read_bytes()
    for i, rng in cases("subprocess", 2, 10):
        p = case_dir / "p"
        _write(p, mutate(rng, proof if i % 2 else note))
        args = (["proof", str(p), "--leaf", str(inp.leaf), "--key", inp.vkey] if i % 2
                else ["note", str(p), "--key", inp.vkey])
        before = snapshot(case_dir)
        proc = subprocess.run([sys.executable, *entry, *args], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        out = proc.stdout + proc.stderr
        assert proc.returncode in (0, 1, 2), f"{label('subprocess', i)}\n{out}"
        assert "Traceback" not in out and out.strip(), f"{label('subprocess', i)}\n{out}"
        assert not diff(before, snapshot(case_dir))
