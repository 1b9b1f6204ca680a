"""Issue 14, finding 1: forged authority.

An attacker with write access to the store's files (no signer key) INSERTs a row into the
``token`` table (the WORM triggers refuse UPDATE and DELETE, not INSERT), uses it through
the running server, then drops the trigger, deletes the row and recreates the trigger
with identical SQL, so the schema fingerprint matches again. A fake ``artifact`` row
likewise makes the server sign an ``artifact.refused`` naming bytes never stored.

Every attack here really writes the database file with a separate ``sqlite3``
connection while the server runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_service_server import Server
from test_service_support import bearer, make_store

from depository.store import Store

FORGED_SECRET = "dep_tok-990_forged-by-someone-with-file-access"


def _db(store_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(store_dir / "depository.db", isolation_level=None, timeout=10)


def _insert_forged_token(store_dir: Path, role: str, product: str | None = None) -> None:
    """INSERT is not refused by any trigger: no trigger needs to be touched."""
    conn = _db(store_dir)
    try:
        conn.execute("INSERT INTO token VALUES (?,?,?,?,?,?,?,?,?)", (
            "tok-990", role, product, None,
            hashlib.sha256(FORGED_SECRET.encode()).hexdigest(), "", "admin", 990,
            "2026-01-01T00:00:00Z"))
    finally:
        conn.close()


@contextlib.contextmanager
def _without_trigger(conn: sqlite3.Connection, name: str) -> Iterator[None]:
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                       (name,)).fetchone()[0]
    conn.execute(f"DROP TRIGGER {name}")
    try:
        yield
    finally:
        conn.execute(sql)  # identical SQL: the schema fingerprint is unchanged


def _remove_forged_token(store_dir: Path) -> None:
    conn = _db(store_dir)
    try:
        with _without_trigger(conn, "token_no_delete"):
            conn.execute("DELETE FROM token WHERE id = 'tok-990'")
    finally:
        conn.close()


def _verify(store_dir: Path, key: Path, saved: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "depository.verifier", "store", str(store_dir), "--key",
         str(key), "--since-checkpoint", str(saved)],
        capture_output=True, text=True, timeout=120)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    d = tmp_path / "store"
    with make_store(d) as s:
        r = s.put("gurukul", "lessons/l-1.txt", b"lesson one", actor="cli")
        s.place_hold(matter="M-7", reason="litigation", actor="legal-dept",
                     artifact_ids=[r.artifact_id])
    return d


def _saved(store_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    with Store.open(store_dir, readonly=True) as s:
        _, note = s.latest_checkpoint()
        key = tmp_path / "log.vkey"
        key.write_text(s.verifier_key + "\n")
    saved = tmp_path / "saved.txt"
    saved.write_bytes(note)
    return key, saved


def test_forged_token_row_releases_a_hold_and_mints_a_token(store_dir: Path,
                                                              tmp_path: Path) -> None:
    key, saved = _saved(store_dir, tmp_path)
    with Store.open(store_dir, readonly=True) as s:
        (hold,) = s.holds()
    srv = Server(store_dir)
    try:
        _insert_forged_token(store_dir, "admin")
        h = bearer(FORGED_SECRET)
        rel = httpx.post(f"{srv.url}/v1/holds/{hold.id}/release",
                         json={"reason": "no longer needed"}, headers=h)
        mint = httpx.post(f"{srv.url}/v1/tokens", json={"role": "writer",
                                                        "product": "gurukul"}, headers=h)
        print(rel.status_code, rel.text, mint.status_code, mint.text)
        _remove_forged_token(store_dir)
    finally:
        assert srv.stop() == 0
    res = _verify(store_dir, key, saved)
    print(res.stdout, res.stderr)
    assert res.returncode == 1
