"""``depository migrate`` / ``export`` between stores, SQLite to SQLite (the PostgreSQL
directions are in ``test_migrate_pg.py``).

One real store is built per module with every kind of row (inline and file blobs,
metadata, a retention extension, a hold placed and released, a token issued and revoked,
a governance lock and unlock, disposals). Each test copies it and then checks what a
migration promises: byte-identical tables, a copy the offline verifier accepts and the
store opens for writing, a source never modified, a destination that already holds
something refused, a tampered source refused (bytes edited on disk), and a run killed
with SIGKILL mid-copy leaving the source intact and the destination refused with a
message until its staging directory is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import Clock
from test_verify_store import attack

from depository.cli import main
from depository.signing import generate_key
from depository.store import Store
from depository.store.migrate import (
    TABLES,
    MigrationError,
    MigrationRefusedError,
    SqliteDestination,
    export,
    migrate,
    read_manifest,
)
from depository.tlog.note import verify_note
from depository.verifier.store import store_result

ORIGIN = "migrate.example/depository"
DAY = timedelta(days=1)


@dataclass
class Built:
    path: Path
    vkey: str
    size: int


def build_store(path: Path, *, extra_puts: int = 0) -> Built:
    """A store with a row in every table (see the module docstring)."""
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    clock = Clock(t0)
    s = Store.init(path, origin=ORIGIN, clock=clock)
    try:
        s.put("gurukul", "lessons/l1.txt", b"lesson one", metadata={"course": "algebra"},
              provenance={"author": "t1"})
        s.put("ai-avatar", "avatars/a1.png", os.urandom(70 * 1024), metadata={"safe": True})
        expiring = t0 + timedelta(days=7 * 365 + 40)
        old = s.put("ai-assistant", "exports/e1.bin", os.urandom(80 * 1024),
                    retain_until=expiring)
        quiz = s.put("gurukul", "quizzes/q1.txt", b"quiz", retain_until=expiring)
        s.extend_retention("gurukul", "lessons/l1.txt", t0 + 10 * 365 * DAY,
                           actor="records", reason="accreditation")
        hold = s.place_hold(matter="M-1", reason="inquiry", actor="legal",
                            product="enforcement")
        s.release_hold(hold.id, reason="closed", actor="legal")
        _, tok = s.create_token(role="writer", actor="admin", product="gurukul", note="ci")
        s.revoke_token(tok.id, reason="rotated", actor="admin")
        s.lock("drill", check="drill")
        s.unlock(reason="drill over", actor="admin")
        if extra_puts:
            from depository.store import PutItem

            s.put_many([PutItem("enforcement", f"decisions/d-{i}.json",
                                b'{"decision": %d}' % i, metadata={"n": i})
                        for i in range(extra_puts)])
        clock.now = t0 + 8 * 365 * DAY
        s.dispose(clock(), actor="ops", artifact_ids=[old.artifact_id, quiz.artifact_id])
        s.checkpoint()
        return Built(path, s.verifier_key, s.size())
    finally:
        s.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_store(tmp_path_factory.mktemp("migrate") / "store")


@pytest.fixture
def src(built: Built, tmp_path: Path) -> Path:
    dest = tmp_path / "src"
    shutil.copytree(built.path, dest)
    return dest


def tree_digest(path: Path) -> dict[str, str]:
    """SHA-256 of every file under a directory (the source must not change), but SQLite's
    WAL index (``-shm``: shared memory every reader, the verifier's too, marks) and an
    empty WAL (a reader opening a checkpointed database creates one)."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file() and not p.name.endswith("-shm")
            and not (p.name.endswith("-wal") and p.stat().st_size == 0)}


def table_rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {t.name: conn.execute(t.select()).fetchall() for t in TABLES}
    finally:
        conn.close()


# --------------------------------------------------------------------------- the copy


def test_copy_is_identical_verified_and_writable(src: Path, built: Built,
                                                 tmp_path: Path) -> None:
    before = tree_digest(src)
    dst = tmp_path / "dst"
    stages: list[str] = []
    report = migrate(src, dst, trusted_keys=[built.vkey],
                     signer_key=(src / "keys" / "log.key").read_text().strip(),
                     batch_rows=3, progress=lambda stage, done, total: stages.append(stage))
    assert tree_digest(src) == before  # the source is never modified
    assert report.verified and report.size == built.size == report.checkpoint_size
    assert "--key" in report.trust
    # Every table, leaves, nodes, checkpoints and derived rows, byte-identical.
    want, got = table_rows(src / "depository.db"), table_rows(dst / "depository.db")
    assert all(want[t.name] for t in TABLES if t.name != "artifact_meta")
    assert got == want
    assert report.tables["log"]["rows"] == built.size
    assert {"log", "inline_blob", "blobs", "read-back", "verify"} <= set(stages)
    # Blob files and keys came along; the replay (blobs included) accepts the copy.
    assert report.blobs == 1  # the avatar; both disposed files are gone
    assert (dst / "keys" / "log.key").read_bytes() == (src / "keys" / "log.key").read_bytes()
    res = store_result(dst, [built.vkey])
    assert res.ok, res.findings
    assert res.latest_checkpoint == store_result(src, [built.vkey]).latest_checkpoint
    # The signed manifest records it; the log does not (no record was added).
    manifest = Path(report.manifest or "")
    assert manifest.parent == dst / "migrations" and report.manifest_signed
    verify_note(manifest.read_bytes(), [built.vkey])
    doc = read_manifest(manifest.read_bytes())
    assert doc["size"] == built.size and doc["tables"] == report.tables
    assert doc["source"] == str(src) and doc["destination_engine"] == "sqlite"
    # The copy is a store: it opens for writing (schema, tree, checkpoint checks) and
    # takes new records; the old checkpoints still verify under the original key.
    with Store.open(dst) as s:
        r = s.put("gurukul", "lessons/after.txt", b"after the move")
        assert r.log_index == built.size
    assert store_result(dst, [built.vkey]).ok
    assert not (tmp_path / ".dst.migrating").exists()


def test_export_has_no_secret_keys_and_replays(src: Path, built: Built,
                                               tmp_path: Path) -> None:
    with Store.open(src) as live:  # a live store: export needs no writer lock
        live.put("gurukul", "lessons/live.txt", b"written while exporting")
        live.checkpoint()
        report = export(src, tmp_path / "audit")
        assert report.kind == "export" and not report.manifest_signed
        assert "self-asserted" in report.trust
    audit = tmp_path / "audit"
    kept = sorted(p.name for p in (audit / "keys").iterdir())
    assert "log.vkey" in kept and all(k.endswith(".vkey") for k in kept)
    assert (src / "keys" / "log.key").exists() and not list(audit.rglob("*.key"))
    # The auditor's own tool, with only the verifier's dependencies.
    done = subprocess.run([sys.executable, "-m", "depository.verifier", "store", str(audit),
                           "--key", built.vkey, "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["size"] == built.size + 1


# --------------------------------------------------------------------------- refusals


def test_destination_with_data_is_refused(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "notes.txt").write_text("mine")
    with pytest.raises(MigrationRefusedError, match="already holds files"):
        migrate(src, dst)
    assert [p.name for p in dst.iterdir()] == ["notes.txt"]
    # A store that already exists there is refused too.
    other = tmp_path / "other"
    shutil.copytree(src, other)
    before = tree_digest(other)
    with pytest.raises(MigrationRefusedError, match="already holds a store"):
        migrate(src, other)
    assert tree_digest(other) == before
    # A destination inside the source (or around it) would copy the copy into itself.
    for inside in (src / "copy", src.parent, src):
        with pytest.raises(MigrationRefusedError, match="overlap"):
            migrate(src, inside)
    assert not (src / "copy").exists() and not (src / ".copy.migrating").exists()
    # An empty directory is a fine destination.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert migrate(src, empty).verified


def test_source_open_for_writing_is_refused(src: Path, tmp_path: Path) -> None:
    with Store.open(src), pytest.raises(MigrationRefusedError, match="open for writing"):
        migrate(src, tmp_path / "dst")
    assert not (tmp_path / "dst").exists() and not (tmp_path / ".dst.migrating").exists()


def _edit_artifact_metadata(store: Path) -> None:
    with attack(store) as conn:
        conn.execute("UPDATE artifact SET metadata = ? WHERE name = 'lessons/l1.txt'",
                     ('{"course":"history"}',))


def _edit_leaf(store: Path) -> None:
    with attack(store) as conn:
        leaf = bytes(conn.execute("SELECT leaf FROM log WHERE idx = 1").fetchone()[0])
        conn.execute("UPDATE log SET leaf = ? WHERE idx = 1",
                     (leaf.replace(b"lessons/l1.txt", b"lessons/l9.txt"),))


def _edit_blob(store: Path) -> None:
    blob = next(p for p in (store / "objects").glob("??/??/*"))
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[100] ^= 1
    blob.write_bytes(bytes(data))


def _insert_meta_row(store: Path) -> None:
    with attack(store) as conn:
        conn.execute("INSERT INTO meta VALUES ('verifier_key_2', 'mallory+00000000+AAAA')")


def _drop_trigger(store: Path) -> None:
    conn = sqlite3.connect(store / "depository.db")
    conn.execute("DROP TRIGGER log_no_update")
    conn.close()


@pytest.mark.parametrize(("tamper", "message"), [
    (_edit_artifact_metadata, "does not verify.*derived"),
    (_edit_leaf, "does not verify"),
    (_edit_blob, "hashes to .* not its name"),
    (_drop_trigger, "WORM trigger was dropped"),
    (_insert_meta_row, "table meta .* has a row 'verifier_key_2'.* inserted"),
])
def test_tampered_source_is_not_copied_as_valid(src: Path, tmp_path: Path, tamper: object,
                                                message: str) -> None:
    assert callable(tamper)
    tamper(src)
    before = tree_digest(src)
    with pytest.raises(MigrationError, match=message):
        migrate(src, tmp_path / "dst")
    assert tree_digest(src) == before
    assert not (tmp_path / "dst").exists()
    assert not (tmp_path / ".dst.migrating").exists()  # a refusal leaves nothing behind


def test_lossy_destination_is_caught_by_the_read_back(src: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine that stored a value differently (here: one checkpoint note's trailing
    byte) fails the table digest before anything is committed."""
    real = SqliteDestination.insert

    def lossy(self: SqliteDestination, table: object, rows: list[tuple[object, ...]]) -> None:
        if getattr(table, "name", "") == "checkpoint":
            rows = [(*r[:2], bytes(r[2])[:-1], r[3]) for r in rows]
        real(self, table, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(SqliteDestination, "insert", lossy)
    with pytest.raises(MigrationError, match=r"table checkpoint read back .* differs"):
        migrate(src, tmp_path / "dst")
    assert not (tmp_path / "dst").exists()


# --------------------------------------------------------------------------- kill -9

_KILLABLE = """
import sys, time
from pathlib import Path
from depository.store.migrate import migrate

def progress(stage, done, total):
    if stage == "log" and done >= 200:
        Path(sys.argv[3]).write_text("mid-copy")
        time.sleep(600)

migrate(Path(sys.argv[1]), Path(sys.argv[2]), batch_rows=50, progress=progress)
"""


def sigkill_mid_copy(argv: list[str], mark: Path,
                     mid_copy: Callable[[], None] | None = None) -> None:
    """Run the migration ``argv``, SIGKILL it once it writes ``mark`` (mid-copy; after
    ``mid_copy()``, which checks the state it is in), and wait for it to die."""
    proc = subprocess.Popen(argv)
    try:
        deadline = time.monotonic() + 60
        while not mark.exists():
            assert proc.poll() is None, "the migration ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        if mid_copy is not None:
            mid_copy()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_mid_copy_leaves_source_intact_and_destination_refused(
        tmp_path: Path) -> None:
    built = build_store(tmp_path / "src", extra_puts=400)
    src, dst, mark = built.path, tmp_path / "dst", tmp_path / "mark"
    before = tree_digest(src)
    sigkill_mid_copy([sys.executable, "-c", _KILLABLE, str(src), str(dst), str(mark)], mark)
    assert tree_digest(src) == before
    assert not dst.exists()  # no store appeared
    staging = tmp_path / ".dst.migrating"
    assert (staging / "MIGRATION-IN-PROGRESS").exists()
    runner = CliRunner()
    out = runner.invoke(main, ["migrate", str(src), str(dst), "--key", built.vkey])
    assert out.exit_code == 1
    assert "was interrupted" in out.output and f"rm -r {staging}" in out.output
    shutil.rmtree(staging)
    out = runner.invoke(main, ["migrate", str(src), str(dst), "--key", built.vkey, "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["verified"] and doc["size"] == built.size
    assert table_rows(dst / "depository.db") == table_rows(src / "depository.db")
    assert tree_digest(src) == before


# --------------------------------------------------------------------------- CLI


def test_cli_exit_codes_and_json(src: Path, built: Built, tmp_path: Path) -> None:
    runner = CliRunner()
    key = tmp_path / "log.vkey"
    key.write_text(built.vkey + "\n")
    out = runner.invoke(main, ["migrate", str(src), str(tmp_path / "a"), "--key", str(key),
                               "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["verified"] and doc["manifest_signed"] and doc["kind"] == "migration"
    out = runner.invoke(main, ["migrate", str(src), str(tmp_path / "a")])
    assert out.exit_code == 1 and "already holds a store" in out.output
    out = runner.invoke(main, ["migrate", str(src), str(tmp_path / "b"), "--to",
                               "postgresql"])
    assert out.exit_code == 2 and "--dsn" in out.output
    out = runner.invoke(main, ["migrate", str(tmp_path / "nothing"), str(tmp_path / "c")])
    assert out.exit_code == 2 and "no store at" in out.output
    other = tmp_path / "other.vkey"
    other.write_text(generate_key("example.org/other")[1] + "\n")
    out = runner.invoke(main, ["export", str(src), str(tmp_path / "d"), "--key", str(other)])
    assert out.exit_code == 1 and "does not verify" in out.output
    assert "names another key than the one you gave" in out.output
    assert not (tmp_path / "d").exists()
    out = runner.invoke(main, ["export", str(src), str(tmp_path / "e"), "--no-blobs"])
    assert out.exit_code == 0, out.output
    assert "VERIFIED" in out.output and not list((tmp_path / "e" / "objects").glob("??"))
    # A signer key of another log: the manifest would not verify, so nothing is committed.
    wrong = tmp_path / "wrong.key"
    wrong.write_text(generate_key(ORIGIN)[0] + "\n")
    out = runner.invoke(main, ["migrate", str(src), str(tmp_path / "f"), "--signer-key",
                               str(wrong)])
    assert out.exit_code == 1 and "not to this store's log key" in out.output
    assert not (tmp_path / "f").exists() and not (tmp_path / ".f.migrating").exists()
    for cmd in ("migrate", "export"):
        helptext = runner.invoke(main, [cmd, "--help"]).output
        assert "Example:" in helptext and "Exit codes" in helptext


def test_export_of_a_store_written_meanwhile_is_one_snapshot(src: Path, built: Built,
                                                             tmp_path: Path) -> None:
    """Writes committed while the copy runs (after the log was read, before the derived
    tables and checkpoints are) are not in the copy: every table is read in one snapshot,
    so the copy still replays."""
    check_export_is_one_snapshot(src, tmp_path / "audit", built)


def check_export_is_one_snapshot(store: Path, out: Path, built: Built) -> None:
    """Export ``store`` (a copy of ``built``, either engine) to ``out`` while a record
    and a checkpoint are committed just after the log was read: the copy ends before
    them and replays."""
    with Store.open(store) as live:
        written: list[int] = []

        def write_meanwhile(stage: str, done: int, total: int) -> None:
            if stage == "log" and done == total and not written:
                written.append(live.put("gurukul", "lessons/meanwhile.txt", b"x").log_index)
                live.checkpoint()

        report = export(store, out, trusted_keys=[built.vkey], progress=write_meanwhile)
    assert written == [built.size]
    assert report.size == built.size and report.source_size_after == built.size + 1
    assert store_result(out, [built.vkey]).ok
