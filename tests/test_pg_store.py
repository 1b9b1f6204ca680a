"""The store on the PostgreSQL engine, on a real server (tests/_pg.py; ADR 0013): the
store suite's basics, the same bytes as SQLite, the tamper drills, the WORM guards, and
what a bad DSN says."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _pg import SERVICE, SERVICE_PASSWORD, PgDatabase, pg_db, pg_server
from conftest import Clock, seeded_key

import depository.verifier.store as vstore
from depository.store import Store, _pg_schema, _schema
from depository.store._errors import (
    ConfigError,
    GovernanceLockedError,
    HoldError,
    NotFoundError,
    QuotaError,
    RetentionError,
    SchemaMismatchError,
    StoreError,
    UnknownProductError,
    WriteOnceError,
)
from depository.store.config import default_config_dict
from depository.tlog import merkle
from depository.tlog.checkpoint import parse_proof_file

__all__ = ["pg_db", "pg_server"]

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FAR_FUTURE = T0 + timedelta(days=365 * 30)


def _config(db: PgDatabase | None, **over: Any) -> dict[str, Any]:
    cfg = default_config_dict("test.example/log")
    cfg["checkpoint"] = {"every_entries": 100000, "every_ms": 3600000}
    cfg["products"]["gurukul"]["quota"] = {"bytes": 10**9, "artifacts": 50}
    cfg["products"]["gurukul"]["metadata_schema"] = {
        "type": "object", "properties": {"course": {"type": "string"}}}
    if db is not None:
        cfg["engine"] = {"type": "postgresql", "dsn": db.service_dsn}
    cfg.update(over)
    return cfg


def _init(path: Path, db: PgDatabase | None, key: Path | None = None,
          clock: Any = None) -> Store:
    kw: dict[str, Any] = {"signer_key_file": key} if key else {}
    if clock is not None:
        kw["clock"] = clock
    if db is not None:
        kw["admin_dsn"] = db.owner_dsn
    return Store.init(path, config=_config(db), **kw)


@pytest.fixture
def pg_store(tmp_path: Path, pg_db: PgDatabase) -> Iterator[Store]:
    s = _init(tmp_path / "store", pg_db, clock=Clock(T0))
    try:
        yield s
    finally:
        s.close()


def _super(db: PgDatabase) -> Any:
    c = db.connect()
    c.execute("SET search_path = depository")
    return c


# ------------------------------------------------------------------ the store suite


def test_put_get_ls_and_proofs(pg_store: Store) -> None:
    s = pg_store
    r = s.put("gurukul", "lessons/l1.pdf", b"algebra", metadata={"course": "algebra"},
              provenance={"author": "t1"}, wait_checkpoint=True)
    s.put("gurukul", "lessons/l2.pdf", b"geometry", metadata={"course": "geometry"})
    s.put("ai-assistant", "chat/1", b"x" * 100_000)  # above inline_max: a blob file
    art = s.get("gurukul", "lessons/l1.pdf")
    assert (art.sha256, art.metadata, art.log_index) == (r.sha256, {"course": "algebra"},
                                                        r.log_index)
    assert s.get("gurukul", art.id).name == "lessons/l1.pdf"
    assert s.open_content(art).read() == b"algebra"
    assert s.open_content(s.get("ai-assistant", "chat/1")).read() == b"x" * 100_000
    assert [a.name for a in s.ls(product="gurukul")] == ["lessons/l1.pdf", "lessons/l2.pdf"]
    assert [a.name for a in s.ls(product="gurukul", meta={"course": "geometry"})] == [
        "lessons/l2.pdf"]
    assert [a.name for a in s.ls(meta={"course": "algebra"})] == ["lessons/l1.pdf"]
    assert [a.name for a in s.ls(product="gurukul", prefix="lessons/l2")] == [
        "lessons/l2.pdf"]
    assert [a.name for a in s.ls(product="gurukul", after=art.log_index)] == [
        "lessons/l2.pdf"]
    # The receipt's proof verifies against its signed checkpoint.
    assert r.proof is not None
    pf = parse_proof_file(r.proof)
    size = int(pf.checkpoint_note.split(b"\n")[1])
    root = s.root_at(size)
    merkle.verify_inclusion(r.leaf_hash, pf.index, size, pf.proof, root)
    size2 = s.size()
    s.checkpoint()
    merkle.verify_consistency(size, size2, s.consistency_proof(size, size2), root,
                              s.root_at(size2))
    with pytest.raises(WriteOnceError):
        s.put("gurukul", "lessons/l1.pdf", b"other bytes")
    assert s.put("gurukul", "lessons/l1.pdf", b"algebra").duplicate
    assert s.scrub()["problems"] == [] and s.scrub()["sqlite_integrity"] == ["ok"]


def test_isolation_quota_holds_retention_disposal_tokens(pg_store: Store) -> None:
    s = pg_store
    a = s.put("gurukul", "a", b"A")
    with pytest.raises(NotFoundError):
        s.get("ai-assistant", "a")  # another product's artifact is not found
    with pytest.raises(UnknownProductError):
        s.put("nope", "a", b"A")
    # Quota: 50 artifacts in gurukul.
    res = s.put_many([_item("gurukul", f"q/{i}") for i in range(60)])
    assert sum(isinstance(r, QuotaError) for r in res) == 11
    assert s.usage()["gurukul"]["artifacts"] == 50
    # Retention: extend, never shorten (the refusal is logged).
    until = T0 + timedelta(days=365 * 20)
    s.extend_retention("gurukul", "a", until, actor="ops", reason="audit")
    with pytest.raises(RetentionError):
        s.extend_retention("gurukul", "a", until - timedelta(days=1), actor="ops",
                           reason="shorten")
    assert s.record(s.size() - 1).type == "retention.refused"
    # Hold, release; disposal of an expired, unheld inline artifact removes its bytes.
    b = s.put("ai-assistant", "b", b"B")
    hold = s.place_hold(matter="M-1", reason="litigation", actor="legal",
                        artifact_ids=[b.artifact_id])
    s.clock = lambda: FAR_FUTURE
    assert b.artifact_id not in [x.id for x in s.disposable(FAR_FUTURE)]
    with pytest.raises(HoldError):
        s.release_hold("hold-nope", reason="x", actor="legal")
    s.release_hold(hold.id, reason="settled", actor="legal")
    assert s.dispose(FAR_FUTURE, actor="ops", artifact_ids=[b.artifact_id])
    assert s.get("ai-assistant", "b").disposed
    with _super_conn(s) as c:
        assert c.execute("SELECT count(*) FROM inline_blob WHERE log_idx = %s",
                         (b.log_index,)).fetchone()[0] == 0
    # Tokens: issue, authenticate, revoke.
    secret, tok = s.create_token(role="writer", actor="admin", product="gurukul")
    assert s.authenticate(secret, FAR_FUTURE) is not None
    s.revoke_token(tok.id, reason="rotated", actor="admin")
    assert s.authenticate(secret, FAR_FUTURE) is None
    # Lock and unlock.
    s.lock("drill", check="manual", actor="ops")
    with pytest.raises(GovernanceLockedError):
        s.put("gurukul", "locked", b"L")
    s.unlock(reason="drill over", actor="ops")
    assert a.artifact_id in {x.id for x in s.ls(product="gurukul", limit=1000)}


def _item(product: str, name: str) -> Any:
    from depository.store import PutItem

    return PutItem(product=product, name=name, data=name.encode())


class _super_conn:
    def __init__(self, s: Store) -> None:
        from depository.store._store import engine_dsn

        dsn = engine_dsn(s.config).replace(f"user={SERVICE}", "user=postgres")
        self.c = psycopg.connect(dsn, autocommit=True)
        self.c.execute("SET search_path = depository")

    def __enter__(self) -> Any:
        return self.c

    def __exit__(self, *a: object) -> None:
        self.c.close()


def test_reopen_and_readonly_and_one_writer(tmp_path: Path, pg_db: PgDatabase) -> None:
    s = _init(tmp_path / "store", pg_db)
    s.put("gurukul", "a", b"A")
    with pytest.raises(StoreError, match="another process writes to this PostgreSQL store"):
        Store.open(tmp_path / "store")
    ro = Store.open(tmp_path / "store", readonly=True)
    assert ro.get("gurukul", "a").sha256 == s.get("gurukul", "a").sha256
    ro.close()
    s.close()
    s = Store.open(tmp_path / "store")
    assert s.put("gurukul", "b", b"B").log_index == s.size() - 1
    s.close()
    assert not (tmp_path / "store" / "depository.db").exists()


def test_same_records_proofs_and_checkpoints_as_sqlite(
        tmp_path: Path, pg_db: PgDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    """One sequence of operations, a fixed clock and key, on both engines: the same leaves,
    tree nodes, roots and signed checkpoints, byte for byte."""
    import depository.store._store as store_mod

    monkeypatch.setattr(store_mod, "generate_key", lambda origin: seeded_key(origin))
    stores = [_init(tmp_path / "lite", None, clock=Clock(T0)),
              _init(tmp_path / "pg", pg_db, clock=Clock(T0))]
    for s in stores:
        s.put("gurukul", "a", b"A", metadata={"course": "x"}, provenance={"by": "t"})
        s.put_many([_item("ai-assistant", f"bulk/{i}") for i in range(80)])  # COPY path
        s.put("ai-avatar", "big", b"y" * 70_000)
        s.extend_retention("gurukul", "a", T0 + timedelta(days=9000), actor="o", reason="r")
        h = s.place_hold(matter="M", reason="r", actor="legal", product="ai-assistant")
        s.release_hold(h.id, reason="done", actor="legal")
        s.checkpoint()
        s.clock.now = FAR_FUTURE  # type: ignore[attr-defined]
        s.dispose(actor="ops", artifact_ids=[s.get("ai-assistant", "bulk/3").id])
        s.lock("drill", check="manual", actor="ops")
        s.unlock(reason="done", actor="ops")
        s.checkpoint()
    lite, pg = stores
    n = lite.size()
    assert n == pg.size() > 30
    assert list(lite.log_entries(0, n)) == list(pg.log_entries(0, n))
    assert lite.record(0).body["sql_schema_sha256"] == _schema.reference_fingerprint()
    for size in (1, 7, 32, n):
        assert lite.root_at(size) == pg.root_at(size)
        assert lite.inclusion_proof(size - 1, n) == pg.inclusion_proof(size - 1, n)
        assert lite.consistency_proof(size, n) == pg.consistency_proof(size, n)
    assert lite.latest_checkpoint() == pg.latest_checkpoint()
    assert lite.proof_file(3) == pg.proof_file(3)
    lc = sqlite3.connect(tmp_path / "lite" / "depository.db")
    with _super_conn(pg) as c:
        for table, order in (("node", "level, k"), ("checkpoint", "size"),
                             ("artifact", "log_idx"), ("disposal", "log_idx"),
                             ("governance", "log_idx")):
            want = [tuple(bytes(x) if isinstance(x, memoryview) else x for x in r)
                    for r in lc.execute(f"SELECT * FROM {table} ORDER BY {order}")]
            assert [tuple(r) for r in c.execute(f"SELECT * FROM {table} ORDER BY {order}")
                    ] == want, table
    lc.close()
    for s in stores:
        s.close()


# ------------------------------------------------------------------- tamper drills


def _export_sqlite(pg: PgDatabase, store_dir: Path, dest: Path) -> Path:
    """A copy of a PostgreSQL store as a SQLite store directory, row for row (what the
    offline verifier reads); the engine's own ``meta`` row is left out."""
    dest.mkdir()
    for name in ("depository.yaml", "keys"):
        src = store_dir / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    shutil.copytree(store_dir / "objects", dest / "objects")
    lite = sqlite3.connect(dest / "depository.db")
    _schema.create(lite)
    with _super(pg) as c:
        for table in _pg_schema.TABLE_NAMES:
            rows = c.execute(f"SELECT * FROM {table}").fetchall()
            if table == "meta":
                rows = [r for r in rows if r[0] != _pg_schema.PG_FINGERPRINT_KEY]
            if rows:
                marks = ",".join("?" * len(rows[0]))
                lite.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    lite.commit()
    lite.close()
    return dest


def test_tampered_leaf_bytes_are_found_by_the_verifier(tmp_path: Path,
                                                       pg_db: PgDatabase) -> None:
    s = _init(tmp_path / "store", pg_db)
    s.put("gurukul", "a", b"A", metadata={"course": "algebra"})
    s.put("gurukul", "b", b"B")
    s.checkpoint()
    vkey = s.verifier_key
    s.close()
    clean = _export_sqlite(pg_db, tmp_path / "store", tmp_path / "export-clean")
    vstore.verify_store(clean, [vkey])  # the untouched store verifies
    # As the superuser: the triggers are in the way, so disable them, rewrite, re-enable.
    with _super(pg_db) as c:
        c.execute("ALTER TABLE log DISABLE TRIGGER log_no_change")
        c.execute("UPDATE log SET leaf = convert_to(replace(convert_from(leaf, 'UTF8'), "
                  "'algebra', 'algebrx'), 'UTF8') WHERE idx = 1")
        c.execute("ALTER TABLE log ENABLE TRIGGER log_no_change")
        assert b"algebrx" in bytes(c.execute("SELECT leaf FROM log WHERE idx = 1"
                                             ).fetchone()[0])
    bad = _export_sqlite(pg_db, tmp_path / "store", tmp_path / "export-bad")
    result = vstore.store_result(bad, [vkey])
    assert not result.ok
    assert any(f.index == 1 for f in result.findings), result.findings


def test_tampered_tree_node_locks_the_store_on_open(tmp_path: Path,
                                                    pg_db: PgDatabase) -> None:
    s = _init(tmp_path / "store", pg_db)
    for i in range(5):
        s.put("gurukul", f"n{i}", b"%d" % i)
    s.checkpoint()
    s.close()
    assert merkle.subtrees(0, s.size())[0][0] >= 1
    with _super(pg_db) as c:
        c.execute("ALTER TABLE node DISABLE TRIGGER node_no_change")
        # The largest perfect subtree under the checkpoint: the open check reads it.
        level, k = merkle.subtrees(0, s.size())[0]
        c.execute("UPDATE node SET hash = %s WHERE level = %s AND k = %s",
                  (b"\0" * 32, level, k))
        c.execute("ALTER TABLE node ENABLE TRIGGER node_no_change")
    with pytest.raises(SchemaMismatchError, match="does not match its signed checkpoint"):
        Store.open(tmp_path / "store")
    ro = Store.open(tmp_path / "store", readonly=True)
    status = ro.governance_status()
    ro.close()
    assert status["locked"] and "signed checkpoint" in status["reason"]


def test_a_disabled_trigger_refuses_writing(tmp_path: Path, pg_db: PgDatabase) -> None:
    _init(tmp_path / "store", pg_db).close()
    with _super(pg_db) as c:
        c.execute("ALTER TABLE artifact DISABLE TRIGGER artifact_no_change")
    with pytest.raises(SchemaMismatchError, match="WORM triggers"):
        Store.open(tmp_path / "store")
    with _super(pg_db) as c:
        c.execute("ALTER TABLE artifact ENABLE TRIGGER artifact_no_change")
    # The refusal was recorded as a lock; the guards are back, so an admin may unlock.
    s = Store.open(tmp_path / "store")
    assert s.governance_status()["locked"]
    s.unlock(reason="trigger re-enabled", actor="admin")
    s.put("gurukul", "a", b"A")
    s.close()


def test_an_operation_that_tries_an_update_locks_the_store(pg_store: Store) -> None:
    s = pg_store
    r = s.put("gurukul", "a", b"x")

    def rogue(txn: Any) -> None:
        txn.db.conn.execute("UPDATE artifact SET name = 'renamed' WHERE id = %s",
                            (r.artifact_id,))

    with pytest.raises(StoreError, match="permission denied"):
        s.local_writer.engine.submit(rogue).result()  # type: ignore[union-attr]
    s.checkpoint()
    status = s.governance_status()
    assert status["locked"] and "bypass WORM" in status["reason"]
    assert s.get("gurukul", "a").name == "a"


# --------------------------------------------------------------------- bad input


def test_bad_dsn_and_roles_give_clear_errors(tmp_path: Path, pg_db: PgDatabase) -> None:
    server = pg_db.server
    cfg = _config(pg_db)
    # Nothing listens there: a clear error naming the DSN (without a password).
    cfg["engine"]["dsn"] = f"host=127.0.0.1 port={_dead_port()} dbname=x user={SERVICE}"
    with pytest.raises(StoreError, match=r"cannot connect to PostgreSQL \(.*dbname=x"):
        Store.init(tmp_path / "a", config=cfg, admin_dsn=pg_db.owner_dsn)
    assert not (tmp_path / "a").exists()  # nothing written
    # A wrong password over TCP: refused by the server, the password not echoed.
    tcp = server.dsn(pg_db.name, user=SERVICE, tcp=True, password="wrong-password")
    with pytest.raises(StoreError, match="password authentication failed") as info:
        from depository.store._pg import PgLogStorage

        PgLogStorage(tcp)
    assert "wrong-password" not in str(info.value)
    # A password in the configuration file is refused.
    cfg = _config(pg_db)
    cfg["engine"]["dsn"] = pg_db.service_dsn + " password=secret"
    with pytest.raises(ConfigError, match=r"engine\.dsn: holds a password"):
        Store.init(tmp_path / "b", config=cfg, admin_dsn=pg_db.owner_dsn)
    with pytest.raises(ConfigError, match="--admin-dsn"):
        Store.init(tmp_path / "c", config=_config(pg_db))
    with pytest.raises(ConfigError, match=r"engine\.type: must be one of"):
        Store.init(tmp_path / "d", config=_config(pg_db, engine={"type": "mysql"}))
    # The right password in the environment works (secrets out of the file).
    s = _init(tmp_path / "e", pg_db)
    s.close()
    mp = pytest.MonkeyPatch()
    mp.setenv("PGPASSWORD", SERVICE_PASSWORD)
    mp.setenv("DEPOSITORY_PG_DSN", server.dsn(pg_db.name, user=SERVICE, tcp=True))
    try:
        s = Store.open(tmp_path / "e")
        s.put("gurukul", "via-tcp", b"T")
        s.close()
    finally:
        mp.undo()


def test_writing_as_the_owner_or_a_superuser_is_refused(tmp_path: Path,
                                                        pg_db: PgDatabase) -> None:
    _init(tmp_path / "store", pg_db).close()
    for dsn, what in ((pg_db.owner_dsn, "owns the store's schema"),
                      (pg_db.super_dsn, "is a superuser")):
        mp = pytest.MonkeyPatch()
        mp.setenv("DEPOSITORY_PG_DSN", dsn)
        try:
            with pytest.raises(StoreError, match=what):
                Store.open(tmp_path / "store")
        finally:
            mp.undo()


def test_an_empty_database_is_not_a_store(tmp_path: Path, pg_db: PgDatabase) -> None:
    from depository.store._errors import StoreNotFoundError

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "depository.yaml").write_text(
        f"origin: o\nengine: {{type: postgresql, dsn: '{pg_db.service_dsn}'}}\n"
        "products: {p: {name: P}}\n")
    with pytest.raises(StoreNotFoundError, match="no store in the PostgreSQL database"):
        Store.open(tmp_path / "s")


def _dead_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_init_put_ls_on_postgresql(tmp_path: Path, pg_db: PgDatabase) -> None:
    from click.testing import CliRunner

    from depository.cli import main

    run = CliRunner()
    store = str(tmp_path / "store")
    res = run.invoke(main, ["init", "--store", store, "--origin", "example.org/pg",
                            "--engine", "postgresql", "--dsn", pg_db.service_dsn,
                            "--admin-dsn", pg_db.owner_dsn])
    assert res.exit_code == 0, res.output
    assert "engine:\n  type: postgresql" in (tmp_path / "store" / "depository.yaml").read_text()
    (tmp_path / "f.txt").write_bytes(b"hello")
    res = run.invoke(main, ["put", "--store", store, "--product", "gurukul", "--name", "f",
                            str(tmp_path / "f.txt"), "--json"])
    assert res.exit_code == 0, res.output
    res = run.invoke(main, ["ls", "--store", store, "--product", "gurukul", "--json"])
    assert res.exit_code == 0 and '"name": "f"' in res.output, res.output
    # A second init on the same database is refused, and says so.
    res = run.invoke(main, ["init", "--store", str(tmp_path / "again"), "--engine",
                            "postgresql", "--dsn", pg_db.service_dsn,
                            "--admin-dsn", pg_db.owner_dsn])
    assert res.exit_code != 0 and "already has a schema" in res.output, res.output
    assert not (tmp_path / "again").exists()


def test_session_settings_durability_and_read_only_readers(pg_store: Store,
                                                           pg_db: PgDatabase) -> None:
    """The writer commits with synchronous_commit on even where the database's default is
    off; readers cannot write even to a table the role may insert into."""
    with pg_db.connect() as c:
        c.execute(f'ALTER DATABASE "{pg_db.name}" SET synchronous_commit = off')
    from depository.store._pg import PgLogStorage

    pg_store.close()
    s = Store.open(pg_store.path)
    try:
        db = s.local_writer.engine.db  # type: ignore[union-attr]
        assert isinstance(db, PgLogStorage)
        assert db.conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
        with pytest.raises(psycopg.Error, match="read-only transaction"):
            s.reads.conn().execute("INSERT INTO meta VALUES ('x', 'y')")
    finally:
        s.close()


def test_sigkilled_writer_loses_no_acknowledged_write(tmp_path: Path,
                                                      pg_db: PgDatabase) -> None:
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    cfg = default_config_dict("test.example/log")
    cfg["engine"] = {"type": "postgresql", "dsn": pg_db.service_dsn}
    Store.init(tmp_path / "store", config=cfg, admin_dsn=pg_db.owner_dsn).close()
    writer = Path(__file__).with_name("_crash_writer.py")
    proc = subprocess.Popen([sys.executable, str(writer), str(tmp_path / "store"), "r1", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acked: list[list[str]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ACK "):
                acked.append(line.split()[1:])

    t = threading.Thread(target=read, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 40 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    t.join(timeout=10)
    assert len(acked) >= 40, proc.stderr.read() if proc.stderr else ""
    for _ in range(50):  # the server notices the dead session and frees the writer lock
        try:
            s = Store.open(tmp_path / "store")
            break
        except StoreError:
            time.sleep(0.1)
    try:
        for product, name, sha, idx in acked:
            art = s.get(product, name)
            assert (art.sha256, art.log_index) == (sha, int(idx))
        s.checkpoint()
    finally:
        s.close()


def test_dialect_specific_reads_agree_with_sqlite(tmp_path: Path, pg_db: PgDatabase,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The reads whose SQL the dialect rewrites (snapshot, byte search, ordered join,
    integrity) answer the same on both engines."""
    import depository.store._store as store_mod

    monkeypatch.setattr(store_mod, "generate_key", lambda origin: seeded_key(origin))
    out = []
    for path, db in ((tmp_path / "lite", None), (tmp_path / "pg", pg_db)):
        s = _init(path, db, clock=Clock(T0))
        for i in range(12):
            s.put("gurukul" if i % 2 else "ai-assistant", f"n/{i}", b"%d" % i,
                  metadata={"course": f"c{i % 3}"})
        s.clock = lambda: FAR_FUTURE
        s.dispose(FAR_FUTURE, actor="ops", artifact_ids=[s.get("gurukul", "n/3").id])
        out.append((
            s.reads.usage_since(0, 0), s.reads.usage_since(5, 0),
            s.reads.records_containing(b'"name":"n/1', 3),
            [a.name for a in s.ls(meta={"course": "c1"}, after=2)],
            [a.name for a in s.ls(product="gurukul", meta={"course": "c0"})],
            s.reads.integrity_check(), s.usage(), s.reads.token_generation(),
        ))
        s.close()
    lite, pg = out

    def norm(since: Any) -> list[list[tuple[Any, ...]]]:  # PostgreSQL's sum() is numeric
        return [sorted(tuple(v if isinstance(v, str) else int(v) for v in r) for r in rows)
                for rows in since]

    assert norm(lite[0]) == norm(pg[0]) and norm(lite[1]) == norm(pg[1])
    assert norm(lite[0])[1]  # the disposal is counted
    assert lite[2:] == pg[2:]
    assert lite[2][0] and lite[3] and lite[5] == ["ok"]


def test_integrity_check_finds_a_gap_in_the_log(pg_store: Store, pg_db: PgDatabase) -> None:
    for i in range(4):
        pg_store.put("gurukul", f"n{i}", b"%d" % i)
    with _super(pg_db) as c:
        c.execute("ALTER TABLE log DISABLE TRIGGER log_no_change")
        c.execute("DELETE FROM log WHERE idx = 2")
        c.execute("ALTER TABLE log ENABLE TRIGGER log_no_change")
    report = pg_store.scrub()
    assert report["sqlite_integrity"] != ["ok"]
    assert "rows but its last index is" in report["sqlite_integrity"][0]
    assert pg_store.governance_status()["locked"]


def test_lost_sessions_reads_reconnect_the_writer_refuses(pg_store: Store,
                                                          pg_db: PgDatabase) -> None:
    """The server ends every session of the store (as on a restart): reads reconnect;
    the writer does not silently take a new session (its writer lock went with the old
    one), so writes fail with a clear error, nothing acknowledged, until it is reopened."""
    s = pg_store
    r = s.put("gurukul", "a", b"A")
    assert s.get("gurukul", "a").log_index == r.log_index
    with pg_db.connect() as c:
        ended = c.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                          "WHERE datname = %s AND usename = %s", (pg_db.name, SERVICE)
                          ).fetchone()[0]
    assert ended >= 2  # the writer's session and this thread's reader
    assert s.get("gurukul", "a").log_index == r.log_index  # read again on a new session
    with pytest.raises(StoreError, match="lost the connection to PostgreSQL"):
        s.put("gurukul", "b", b"B")
    path = s.path
    s.close()
    s2 = Store.open(path)
    try:
        assert s2.put("gurukul", "b", b"B").log_index == r.log_index + 1
    finally:
        s2.close()


def test_a_server_without_fsync_is_refused(tmp_path: Path) -> None:
    """On a server with fsync off a commit is no acknowledgement: the writer refuses to
    start. (Its own throwaway server: the session's shared one must stay durable.)"""
    import tempfile

    from _pg import PgServer, find_bindir, start_server, stop_server

    from depository.store import _pg

    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    state = start_server(Path(tempfile.mkdtemp(prefix="depository-pg-")), bindir,
                         options="-c fsync=off")
    try:
        server = PgServer(Path(state["dir"]), int(state["port"]), bindir)
        db = PgDatabase(server, server.create_database())
        _pg.create_database(db.owner_dsn, db.service_dsn, origin="o", verifier_key="k")
        with pytest.raises(StoreError, match="fsync = off: a commit would not be durable"):
            _pg.PgLogStorage(db.service_dsn)
    finally:
        stop_server(state)
