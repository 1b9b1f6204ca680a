"""``depository migrate`` / ``export`` with PostgreSQL on a real server (tests/_pg.py).

SQLite -> PostgreSQL -> SQLite gives back byte-identical tables (leaves, nodes,
checkpoints as signed by the original key, every derived row), and each store on the
way verifies (the PostgreSQL one through ``export``, replayed by the offline verifier as
an auditor runs it). A PostgreSQL destination that already holds a store is refused; a
run killed with SIGKILL mid-copy leaves no schema in the database (one transaction) and
the source untouched; a row tampered with in PostgreSQL (triggers disabled by the
superuser) is found, not copied as valid; a running writer blocks ``migrate`` but not
``export``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _pg import PgDatabase, PgServer, pg_db, pg_server
from click.testing import CliRunner
from test_migrate import (
    ORIGIN,
    build_store,
    check_export_is_one_snapshot,
    sigkill_mid_copy,
    table_rows,
    tree_digest,
)

from depository.cli import main
from depository.store import Store
from depository.store.migrate import MigrationError, MigrationRefusedError, export, migrate
from depository.verifier.store import store_result

__all__ = ["pg_db", "pg_server"]


def _super(db: PgDatabase) -> Any:
    c = db.connect()
    c.execute("SET search_path = depository")
    return c


def _has_schema(db: PgDatabase) -> bool:
    with db.connect() as c:
        return c.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'depository'"
                         ).fetchone() is not None


def _to_pg(src: Path, dst: Path, db: PgDatabase, **kw: Any) -> Any:
    return migrate(src, dst, to_engine="postgresql", dsn=db.service_dsn,
                   admin_dsn=db.owner_dsn, **kw)


def test_sqlite_to_postgresql_to_sqlite_is_byte_identical(tmp_path: Path,
                                                          pg_db: PgDatabase) -> None:
    built = build_store(tmp_path / "orig")
    before = tree_digest(built.path)
    pg_dir = tmp_path / "pg"
    report = _to_pg(built.path, pg_dir, pg_db, trusted_keys=[built.vkey], batch_rows=4)
    assert report.verified and report.destination_engine == "postgresql"
    assert report.size == built.size and tree_digest(built.path) == before
    assert not (pg_dir / "depository.db").exists()
    cfg = (pg_dir / "depository.yaml").read_text()
    assert "postgresql" in cfg and "password" not in cfg
    # The PostgreSQL store opens as a store (schema, tree and checkpoint checks on open).
    with Store.open(pg_dir, readonly=True) as s:
        assert s.size() == built.size
        assert s.latest_checkpoint()[0] == built.size
    # An auditor's view of it: a snapshot exported to SQLite, replayed offline.
    audit = tmp_path / "audit"
    assert export(pg_dir, audit).verified
    done = subprocess.run([sys.executable, "-m", "depository.verifier", "store", str(audit),
                           "--key", built.vkey, "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["latest_checkpoint_size"] == built.size
    assert not list(audit.rglob("*.key"))
    # And back: every table byte for byte as the original.
    back = tmp_path / "back"
    report2 = migrate(pg_dir, back, trusted_keys=[built.vkey])
    assert report2.source_engine == "postgresql" and report2.tables == report.tables
    assert table_rows(back / "depository.db") == table_rows(built.path / "depository.db")
    assert "engine" not in (back / "depository.yaml").read_text()
    assert store_result(back, [built.vkey]).ok
    with Store.open(back) as s:  # writable again on SQLite
        assert s.put("gurukul", "lessons/home.txt", b"back home").log_index == built.size
    # The PostgreSQL store is writable too, as the service role.
    with Store.open(pg_dir) as s:
        assert s.put("gurukul", "lessons/pg.txt", b"on postgres").log_index == built.size


def test_postgresql_destination_with_a_store_is_refused(tmp_path: Path,
                                                        pg_db: PgDatabase) -> None:
    built = build_store(tmp_path / "orig")
    _to_pg(built.path, tmp_path / "pg1", pg_db)
    with _super(pg_db) as c:
        rows = c.execute("SELECT count(*) FROM log").fetchone()[0]
    with pytest.raises(MigrationRefusedError, match="already holds a store"):
        _to_pg(built.path, tmp_path / "pg2", pg_db)
    assert not (tmp_path / "pg2").exists() and not (tmp_path / ".pg2.migrating").exists()
    with _super(pg_db) as c:
        assert c.execute("SELECT count(*) FROM log").fetchone()[0] == rows


_KILLABLE = """
import sys, time
from pathlib import Path
from depository.store.migrate import migrate

def progress(stage, done, total):
    if stage == "log" and done >= 200:
        Path(sys.argv[3]).write_text("mid-copy")
        time.sleep(600)

migrate(Path(sys.argv[1]), Path(sys.argv[2]), to_engine="postgresql", dsn=sys.argv[4],
        admin_dsn=sys.argv[5], batch_rows=50, progress=progress)
"""


def test_sigkill_mid_copy_into_postgresql_leaves_nothing(tmp_path: Path,
                                                         pg_db: PgDatabase) -> None:
    built = build_store(tmp_path / "orig", extra_puts=400)
    before = tree_digest(built.path)
    dst, mark = tmp_path / "pg", tmp_path / "mark"

    def mid_copy() -> None:
        # Rows are in the server, inside the open transaction: uncommitted, so nobody
        # else sees the schema.
        assert not _has_schema(pg_db)

    sigkill_mid_copy([sys.executable, "-c", _KILLABLE, str(built.path), str(dst), str(mark),
                      pg_db.service_dsn, pg_db.owner_dsn], mark, mid_copy)
    assert tree_digest(built.path) == before
    assert not dst.exists()
    assert not _has_schema(pg_db)
    out = CliRunner().invoke(main, ["migrate", str(built.path), str(dst), "--to",
                                    "postgresql", "--dsn", pg_db.service_dsn,
                                    "--admin-dsn", pg_db.owner_dsn])
    assert out.exit_code == 1 and "was interrupted" in out.output
    shutil.rmtree(tmp_path / ".pg.migrating")
    # The server rolled the dead session's transaction back: the run starts over cleanly.
    deadline = time.monotonic() + 30
    while True:
        out = CliRunner().invoke(main, ["migrate", str(built.path), str(dst), "--to",
                                        "postgresql", "--dsn", pg_db.service_dsn,
                                        "--admin-dsn", pg_db.owner_dsn, "--json"])
        if out.exit_code == 0 or time.monotonic() > deadline:
            break
        shutil.rmtree(tmp_path / ".pg.migrating", ignore_errors=True)
        time.sleep(0.5)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["size"] == built.size


def test_tampered_postgresql_rows_are_found(tmp_path: Path, pg_db: PgDatabase) -> None:
    built = build_store(tmp_path / "orig")
    pg_dir = tmp_path / "pg"
    _to_pg(built.path, pg_dir, pg_db)
    # The superuser disables the trigger, edits a derived row, and re-enables it.
    with _super(pg_db) as c:
        c.execute("ALTER TABLE artifact DISABLE TRIGGER artifact_no_change")
        c.execute("UPDATE artifact SET metadata = '{\"course\":\"history\"}' "
                  "WHERE name = 'lessons/l1.txt'")
        c.execute("ALTER TABLE artifact ENABLE TRIGGER artifact_no_change")
    for run in (lambda: migrate(pg_dir, tmp_path / "back"),
                lambda: export(pg_dir, tmp_path / "audit")):
        with pytest.raises(MigrationError, match="does not verify"):
            run()
    assert not (tmp_path / "back").exists() and not (tmp_path / "audit").exists()
    # A trigger left disabled changes the catalog fingerprint: refused before copying.
    with _super(pg_db) as c:
        c.execute("ALTER TABLE log DISABLE TRIGGER log_no_change")
    with pytest.raises(MigrationRefusedError, match="WORM trigger was dropped or disabled"):
        export(pg_dir, tmp_path / "audit")


def test_running_writer_blocks_migrate_not_export(tmp_path: Path, pg_db: PgDatabase) -> None:
    built = build_store(tmp_path / "orig")
    pg_dir = tmp_path / "pg"
    _to_pg(built.path, pg_dir, pg_db)
    with Store.open(pg_dir) as live:
        with pytest.raises(MigrationRefusedError, match="has a writer running"):
            migrate(pg_dir, tmp_path / "back")
        live.put("gurukul", "lessons/live.txt", b"live")
        live.checkpoint()
        report = export(pg_dir, tmp_path / "audit", trusted_keys=[built.vkey])
        assert report.size == built.size + 1
    assert store_result(tmp_path / "audit", [built.vkey]).ok


def test_export_of_a_store_written_meanwhile_is_one_snapshot(tmp_path: Path,
                                                             pg_db: PgDatabase) -> None:
    """REPEATABLE READ: rows committed while the export runs (after the log was read) do
    not reach the derived tables or checkpoints of the copy, which therefore replays."""
    built = build_store(tmp_path / "orig")
    pg_dir = tmp_path / "pg"
    _to_pg(built.path, pg_dir, pg_db)
    check_export_is_one_snapshot(pg_dir, tmp_path / "audit", built)


def test_depository_verify_store_replays_a_postgresql_store(tmp_path: Path,
                                                           pg_db: PgDatabase) -> None:
    """`depository verify store DIR` on a PostgreSQL store: a snapshot exported to SQLite
    in a temporary directory, replayed with the same checks and verdicts."""
    built = build_store(tmp_path / "orig")
    pg_dir = tmp_path / "pg"
    _to_pg(built.path, pg_dir, pg_db)
    key = tmp_path / "log.vkey"
    key.write_text(built.vkey + "\n")
    runner = CliRunner()
    out = runner.invoke(main, ["verify", "store", str(pg_dir), "--key", str(key), "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    sqlite_doc = json.loads(runner.invoke(main, ["verify", "store", str(built.path), "--key",
                                                 str(key), "--json"]).stdout)
    for field in ("verified", "size", "checkpoints", "artifacts", "disposed",
                  "blobs_checked", "latest_checkpoint", "checks"):
        assert doc[field] == sqlite_doc[field], field
    # The pure verifier reads SQLite only, and says what to do instead (exit 2).
    done = subprocess.run([sys.executable, "-m", "depository.verifier", "store", str(pg_dir),
                           "--key", str(key)], capture_output=True, text=True)
    assert done.returncode == 2 and "depository export" in done.stderr + done.stdout
    # A blob file altered under the PostgreSQL store is found through the snapshot.
    blob = next((pg_dir / "objects").glob("??/??/*"))
    os.chmod(blob, 0o644)
    blob.write_bytes(b"altered" + blob.read_bytes()[7:])
    out = runner.invoke(main, ["verify", "store", str(pg_dir), "--key", str(key), "--json"])
    assert out.exit_code == 1 and "blob" in out.output
    # A disabled trigger: refused before the copy, exit 1 with the reason.
    with _super(pg_db) as c:
        c.execute("ALTER TABLE node DISABLE TRIGGER node_no_change")
    out = runner.invoke(main, ["verify", "store", str(pg_dir), "--key", str(key)])
    assert out.exit_code == 1 and "WORM trigger" in out.output
    # An unreachable server is unreadable input: exit 2.
    cfg = pg_dir / "depository.yaml"
    cfg.write_text(cfg.read_text().replace(f"port={pg_db.server.port}", "port=1"))
    out = runner.invoke(main, ["verify", "store", str(pg_dir), "--key", str(key)])
    assert out.exit_code == 2 and "cannot connect" in out.output, out.output


def test_a_store_that_ran_several_nodes_migrates_into_postgresql_and_epochs_continue(
        tmp_path: Path, pg_server: PgServer) -> None:
    """A store whose log holds `sequencer.elected` records (it ran several nodes, ADR
    0014) goes PostgreSQL -> SQLite -> PostgreSQL; the target's `sequencer` table starts
    empty, and the first election there continues the log's epochs (3 after 1 and 2), so
    the verifier's "epochs only grow" still holds on the result."""
    from depository.store._engine import WriterEngine
    from depository.store._model import utc_now
    from depository.store.cluster import SequencerStorage

    built = build_store(tmp_path / "orig")
    first = PgDatabase(pg_server, pg_server.create_database())
    second = PgDatabase(pg_server, pg_server.create_database())
    try:
        a = tmp_path / "pg-a"
        assert _to_pg(built.path, a, first, trusted_keys=[built.vkey]).verified
        signer = (built.path / "keys" / "log.key").read_text().strip()

        def elect(db: PgDatabase, node: str) -> int:
            storage = SequencerStorage(db.service_dsn, node)
            engine = WriterEngine(storage, origin=ORIGIN, signer=signer, clock=utc_now,
                                  anchors=None, checkpoint_every_ms=3_600_000,
                                  checkpoint_every_entries=1_000_000, products=["gurukul"])
            try:
                epoch: int = engine.submit(
                    lambda txn: storage.elect(txn, "127.0.0.1:1")).result()
                engine.checkpoint()
            finally:
                engine.close()
            return epoch

        assert [elect(first, "node-a"), elect(first, "node-b")] == [1, 2]
        back = tmp_path / "back"
        assert migrate(a, back, trusted_keys=[built.vkey]).verified
        assert not _has_sequencer_rows(back)
        again = tmp_path / "pg-again"
        assert _to_pg(back, again, second, trusted_keys=[built.vkey]).verified
        assert elect(second, "node-c") == 3
        audit = tmp_path / "audit"
        assert export(again, audit).verified
        result = store_result(audit, [built.vkey])
        assert result.ok, [str(f) for f in result.findings]
        assert _epochs(audit) == [1, 2, 3]
    finally:
        pg_server.drop_database(first.name)
        pg_server.drop_database(second.name)


def _epochs(store: Path) -> list[int]:
    import sqlite3

    from depository.tlog.record import parse_record

    conn = sqlite3.connect(store / "depository.db")
    try:
        recs = [parse_record(bytes(r[0]))
                for r in conn.execute("SELECT leaf FROM log ORDER BY idx")]
    finally:
        conn.close()
    return [int(r.body["epoch"]) for r in recs if r.type == "sequencer.elected"]


def _has_sequencer_rows(store: Path) -> bool:
    import sqlite3

    conn = sqlite3.connect(store / "depository.db")
    try:
        return conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sequencer'"
                            ).fetchone()[0] > 0
    finally:
        conn.close()
