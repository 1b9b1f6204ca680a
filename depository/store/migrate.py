"""Copy a whole store from one storage engine to another, and prove the copy.

``migrate(src, dst)`` reads the source through a read-only connection inside one snapshot
(SQLite: a read transaction on a ``mode=ro`` connection; PostgreSQL: a ``REPEATABLE READ
READ ONLY`` transaction), copies the log and every derived table in log order, in
batches, with the blob files, configuration and keys, and commits the destination only
once it is proven:

1. every table read back from the destination hashes (row by row, values typed) to the
   same digest as the source's rows in the snapshot: leaves, tree nodes, checkpoints and
   derived rows are byte-identical;
2. the destination, as a SQLite store directory, is replayed by the offline verifier
   (:func:`depository.verifier.store.store_result`): every record, the tree against every
   signed checkpoint (copied as they are, signed by the original key: nothing is
   re-signed), every derived row, every blob. A source row that was tampered with
   therefore fails the migration instead of being copied as valid;
3. the source's SQL schema still hashes to the fingerprint frozen in its record 0 (a
   dropped WORM trigger in the source is reported, not healed silently).

**All or nothing.** A SQLite destination is built in a staging directory beside it and
renamed into place only after the checks; a PostgreSQL destination is written in one
transaction committed only after them. A run that is killed leaves the source untouched
and no destination store; for SQLite its staging directory stays behind and the next run
refuses, naming it (it was never a store: delete it and run again). A destination that
already holds a store is refused.

The migration writes **nothing into the log**: a ``store.migrated`` record would need the
signer key, a new record type the verifier and the authority rules accept, and it would
make the copy differ from the source, so leaves could not be compared byte for byte.
Its provenance is a signed manifest beside the store instead
(``migrations/<time>.manifest``): a C2SP signed note over the source, destination,
engines, log size, latest checkpoint and per-table digests, signed with the log key when
the migration has it (``python -m depository.verifier note`` checks it).

``export`` is the same copy into a SQLite store directory for an auditor: a consistent
snapshot of a store that may be live, without the secret keys.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from depository import __version__
from depository.store import _schema
from depository.store._blobs import fsync_dir
from depository.store._errors import StoreError
from depository.store._logstore import DB_NAME
from depository.store._model import format_time, utc_now
from depository.tlog.note import parse_note
from depository.tlog.record import parse_record

__all__ = [
    "ENGINES",
    "TABLES",
    "MigrationError",
    "MigrationRefusedError",
    "MigrationReport",
    "Progress",
    "SourceUnreadableError",
    "TableSpec",
    "export",
    "migrate",
    "read_manifest",
    "store_engine",
]

ENGINES = ("sqlite", "postgresql")
BATCH_ROWS = 5000
MANIFEST_DIR = "migrations"
MANIFEST_HEADER = "depository.migration/v1"
CONFIG_NAME = "depository.yaml"
KEY_DIR = "keys"
OBJECTS = "objects"
STAGING_MARK = "MIGRATION-IN-PROGRESS"
# Files of a source store directory not copied as they are: the database (copied row by
# row), the writer's lock, keys (secret ones only by a migration), the blob files (each
# checked against its name). Earlier migrations' manifests are carried along.
_NOT_COPIED = {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal",
               ".writer.lock", OBJECTS, KEY_DIR, STAGING_MARK}

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stage is a table name, ``"blobs"`` or ``"verify"``."""


class MigrationError(StoreError):
    """The migration failed; the source is unchanged and no destination store exists."""


class MigrationRefusedError(MigrationError):
    """The migration was refused before anything was written (destination not empty,
    source tampered, an interrupted run's staging directory in the way)."""


class SourceUnreadableError(MigrationRefusedError):
    """There is no store at the source, or it cannot be read (an unreachable server)."""


@dataclass(frozen=True)
class TableSpec:
    """A table as the migration copies it: its columns, in the schema's order, and the
    order rows are copied and digested in (log order where the table is keyed by it)."""

    name: str
    columns: tuple[str, ...]
    order: str

    def select(self) -> str:
        return f"SELECT {', '.join(self.columns)} FROM {self.name} ORDER BY {self.order}"


TABLES: tuple[TableSpec, ...] = (
    TableSpec("meta", ("key", "value"), "key"),
    TableSpec("log", ("idx", "leaf", "leaf_hash"), "idx"),
    TableSpec("node", ("level", "k", "hash"), "level, k"),
    TableSpec("checkpoint", ("size", "root", "note", "time"), "size"),
    TableSpec("artifact", ("log_idx", "id", "product", "name", "sha256", "size", "media_type",
                           "metadata", "provenance", "retain_until", "storage", "actor",
                           "created"), "log_idx"),
    TableSpec("artifact_meta", ("product", "key", "value", "log_idx"),
              "log_idx, product, key, value"),
    TableSpec("inline_blob", ("log_idx", "data"), "log_idx"),
    TableSpec("retention", ("log_idx", "artifact_id", "retain_until"), "log_idx"),
    TableSpec("hold", ("id", "matter", "reason", "actor", "product", "scope", "placed_idx",
                       "placed_time"), "placed_idx"),
    TableSpec("hold_release", ("hold_id", "reason", "actor", "log_idx", "time"), "log_idx"),
    TableSpec("disposal", ("artifact_id", "sha256", "log_idx", "time"), "log_idx"),
    TableSpec("token", ("id", "role", "product", "expires", "secret_sha256", "note", "actor",
                        "issued_idx", "issued_time"), "issued_idx"),
    TableSpec("token_revoke", ("token_id", "reason", "actor", "log_idx", "time"), "log_idx"),
    TableSpec("governance", ("log_idx", "state", "reason", "actor", "time"), "log_idx"),
)
"""Every table of schema version 2 (``_schema``), in the order they are copied."""


def row_digest_update(h: Any, row: Sequence[Any]) -> None:
    """Feed one row to a digest, each value typed and length-prefixed, so that the same
    row read from SQLite and from PostgreSQL hashes the same and no two rows collide."""
    for v in row:
        if v is None:
            h.update(b"n")
        elif isinstance(v, bool):  # a bool is an int: never a column type here
            raise TypeError("unexpected boolean column value")
        elif isinstance(v, int):
            h.update(b"i" + struct.pack(">q", v))
        elif isinstance(v, str):
            b = v.encode("utf-8")
            h.update(b"s" + struct.pack(">Q", len(b)) + b)
        elif isinstance(v, bytes | bytearray | memoryview):
            b = bytes(v)
            h.update(b"b" + struct.pack(">Q", len(b)) + b)
        else:
            raise TypeError(f"unexpected column value type {type(v).__name__}")
    h.update(b"\x1e")


# --------------------------------------------------------------------------- engines


class TableReader(Protocol):
    """One consistent snapshot of a store's tables."""

    engine: str
    where: str

    def rows(self, table: TableSpec, batch: int) -> Iterator[list[tuple[Any, ...]]]: ...
    def count(self, table: TableSpec) -> int: ...
    def schema_problem(self) -> str | None:
        """Why the database's schema no longer matches record 0, or None."""
    def engine_meta(self) -> frozenset[str]:
        """Keys of table ``meta`` that belong to this engine (not copied, not compared)."""
    def close(self) -> None: ...


class TableWriter(Protocol):
    """A destination being filled, in one all-or-nothing unit."""

    engine: str
    where: str

    def insert(self, table: TableSpec, rows: list[tuple[Any, ...]]) -> None: ...
    def read_back(self) -> TableReader:
        """The rows as written (same transaction), to digest and replay before commit."""
    def commit(self) -> None: ...
    def abort(self) -> None: ...


def _sqlite_ro(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{quote(str(db.absolute()))}?mode=ro", uri=True,
                           isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA query_only=1")
    return conn


class SqliteTables:
    """A SQLite store database read inside one read transaction (a snapshot in WAL mode)."""

    engine = "sqlite"

    def __init__(self, db: Path, conn: sqlite3.Connection | None = None) -> None:
        self.where = str(db)
        self._own = conn is None
        try:
            self.conn = conn if conn is not None else _sqlite_ro(db)
            if self._own:
                self.conn.execute("BEGIN")
                self.conn.execute("SELECT count(*) FROM log").fetchone()  # pins the snapshot
        except sqlite3.Error as exc:
            raise SourceUnreadableError(
                f"cannot read the store database {db} ({exc}): it is damaged or not a "
                "Depository store; nothing was migrated") from exc

    def rows(self, table: TableSpec, batch: int) -> Iterator[list[tuple[Any, ...]]]:
        cur = self.conn.execute(table.select())
        while True:
            got = cur.fetchmany(batch)
            if not got:
                return
            yield [tuple(r) for r in got]

    def count(self, table: TableSpec) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0])

    def engine_meta(self) -> frozenset[str]:
        return frozenset()

    def schema_problem(self) -> str | None:
        row = self.conn.execute("SELECT leaf FROM log WHERE idx = 0").fetchone()
        if row is None:
            return "the log has no record 0 (store.init)"
        try:
            frozen = parse_record(bytes(row[0]), index=0).body.get("sql_schema_sha256")
        except Exception as exc:  # any parse failure is the finding
            return f"record 0 does not parse ({exc})"
        got = _schema.schema_fingerprint(self.conn)
        if got != frozen:
            return (f"its SQL schema hashes to {got[:16]}…, not the {str(frozen)[:16]}… "
                    "frozen in record 0: a WORM trigger was dropped or a table or index "
                    "altered")
        return None

    def close(self) -> None:
        if self._own:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()


class SqliteDestination:
    """A new SQLite store database in a staging directory, renamed into place on commit."""

    engine = "sqlite"

    def __init__(self, staging: Path) -> None:
        self.where = str(staging / DB_NAME)
        self.db = staging / DB_NAME
        self.conn = sqlite3.connect(self.db, isolation_level=None)
        # Bulk load into a file nobody else opens; durability comes from the fsync below,
        # before the staging directory is renamed into place.
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA cache_size=-262144")
        _schema.create(self.conn)
        self.conn.execute("BEGIN")

    def insert(self, table: TableSpec, rows: list[tuple[Any, ...]]) -> None:
        marks = ",".join("?" * len(table.columns))
        self.conn.executemany(
            f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({marks})", rows)

    def read_back(self) -> TableReader:
        self.conn.execute("COMMIT")
        self.conn.execute("PRAGMA journal_mode=WAL")  # as every store database is
        self.conn.close()
        _fsync(self.db)
        return SqliteTables(self.db)

    def commit(self) -> None:
        """Nothing left to do: the staging directory's rename is the commit."""

    def abort(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()


# --------------------------------------------------------------------------- report


@dataclass
class MigrationReport:
    """What a migration copied and proved."""

    source: str
    destination: str
    source_engine: str
    destination_engine: str
    size: int
    checkpoint_size: int
    checkpoint_root: str
    tables: dict[str, dict[str, Any]]
    blobs: int
    verified: bool
    trust: str
    findings: list[str] = field(default_factory=list)
    manifest: str | None = None
    manifest_signed: bool = False
    source_size_after: int | None = None
    kind: str = "migration"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "source": self.source, "destination": self.destination,
            "source_engine": self.source_engine,
            "destination_engine": self.destination_engine, "size": self.size,
            "checkpoint_size": self.checkpoint_size, "checkpoint_root": self.checkpoint_root,
            "tables": self.tables, "blobs": self.blobs, "verified": self.verified,
            "trust": self.trust, "findings": list(self.findings), "manifest": self.manifest,
            "manifest_signed": self.manifest_signed,
            "source_size_after": self.source_size_after,
        }


# --------------------------------------------------------------------------- entry points


@dataclass
class _Endpoint:
    """Where a store lives: its directory, and for PostgreSQL the database (the service
    role's DSN, and the owner's that creates the schema)."""

    path: Path
    engine: str = "sqlite"
    dsn: str | None = None
    admin_dsn: str | None = None


def migrate(
    src: Path, dst: Path, *, to_engine: str = "sqlite", dsn: str | None = None,
    admin_dsn: str | None = None, trusted_keys: Sequence[str] = (), signer_key: str | None = None,
    batch_rows: int = BATCH_ROWS, check_blobs: bool = True, progress: Progress | None = None,
    now: Callable[[], datetime] = utc_now,
) -> MigrationReport:
    """Copy the store at ``src`` into a new store at ``dst`` on ``to_engine``.

    For PostgreSQL, ``dsn`` names the service role the new store runs as (written into
    its ``depository.yaml`` without any password) and ``admin_dsn`` the role that creates
    and owns its tables (used only here).

    The source must not be written during the migration: its writer lock is held for the
    whole copy (a running ``serve`` is refused), and the log size is read again at the end.
    Raises :class:`MigrationRefusedError` before writing anything when the destination
    already holds a store or the source is damaged, :class:`MigrationError` when the copy
    does not verify (nothing is committed then).
    """
    return _run(Path(src).absolute(),
                _Endpoint(Path(dst).absolute(), to_engine, dsn, admin_dsn or dsn),
                trusted_keys=trusted_keys, signer_key=signer_key, batch_rows=batch_rows,
                check_blobs=check_blobs, progress=progress, now=now, export_only=False)


def export(
    src: Path, dst: Path, *, trusted_keys: Sequence[str] = (), batch_rows: int = BATCH_ROWS,
    check_blobs: bool = True, copy_blobs: bool = True, progress: Progress | None = None,
    now: Callable[[], datetime] = utc_now, replay: bool = True,
) -> MigrationReport:
    """A consistent snapshot of the store at ``src`` (which may be live, on any engine)
    as a SQLite store directory at ``dst`` that ``python -m depository.verifier store``
    replays: no secret key is copied, nothing is signed.

    ``replay=False`` skips the replay (the tables are still read back and compared): for
    a caller that replays the copy itself and reports its findings, as ``depository
    verify store`` does for a PostgreSQL store."""
    return _run(Path(src).absolute(), _Endpoint(Path(dst).absolute()),
                trusted_keys=trusted_keys, signer_key=None, batch_rows=batch_rows,
                check_blobs=check_blobs, progress=progress, now=now, export_only=True,
                copy_blobs=copy_blobs, replay=replay)


def _run(
    src: Path, dst: _Endpoint, *, trusted_keys: Sequence[str], signer_key: str | None,
    batch_rows: int, check_blobs: bool, progress: Progress | None,
    now: Callable[[], datetime], export_only: bool, copy_blobs: bool = True,
    replay: bool = True,
) -> MigrationReport:
    if dst.engine not in ENGINES:
        raise MigrationRefusedError(f"unknown engine {dst.engine!r}; use one of "
                                    f"{', '.join(ENGINES)}")
    if batch_rows < 1:
        raise MigrationRefusedError("batch_rows must be at least 1")
    a, b = src.resolve(), dst.path.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise MigrationRefusedError(
            f"the destination {dst.path} and the source {src} overlap (one is inside the "
            "other); give a destination outside the source store. Nothing was changed")
    tick: Progress = progress or (lambda stage, done, total: None)
    if dst.engine == "postgresql" and not dst.dsn:
        raise MigrationRefusedError("a PostgreSQL destination needs the DSN of the role the "
                                    "store will run as")
    source, src_dsn = _open_source(src)
    lock: Any = None
    try:
        if not export_only:
            lock = _lock_source(src, src_dsn)
        # The copy gets a fresh schema, so a dropped trigger in the source would not
        # show in it: checked here, for an export too.
        problem = source.schema_problem()
        if problem:
            raise MigrationRefusedError(
                f"source store {src}: {problem}. Nothing was copied; run "
                "`depository verify store` on it and investigate first")
        staging = _prepare_destination(dst)
        dest: TableWriter | None = None
        committed = False
        try:
            dest = _open_destination(dst, staging)
            digests = _copy_tables(source, dest, batch_rows, tick)
            blobs = _copy_files(src, staging, export_only=export_only,
                                copy_blobs=copy_blobs, tick=tick)
            _set_engine(staging, dst)
            back = dest.read_back()
            _compare(back, digests, batch_rows, tick)
            size, cp_size, cp_root, vkey = _log_facts(back)
            keys = [k.strip() for k in trusted_keys if k.strip()]
            trust = ("the key you gave (--key)" if keys else
                     "the store's own key named in record 0 (self-asserted: this checks "
                     "the copy's integrity, not which store it is)")
            findings = _replay(staging, back, keys or [vkey], src, check_blobs and copy_blobs,
                               batch_rows, tick) if replay else []
            back.close()
            if not replay:
                trust = "nobody yet: not replayed (the caller replays it)"
            if findings:
                why = ("record 0 names another key than the one you gave: a different "
                       "store, or its log was replaced"
                       if any(f.startswith("[trusted-key]") for f in findings)
                       else "the source holds tampered or damaged rows")
                raise MigrationError(
                    f"the copy of {src} does not verify against {trust} ({len(findings)} "
                    f"problems; first: {findings[0]}): {why}. Nothing was committed; run "
                    f"`depository verify store {src}` to see them all")
            report = MigrationReport(
                source=str(src), destination=str(dst.path), source_engine=source.engine,
                destination_engine=dst.engine, size=size, checkpoint_size=cp_size,
                checkpoint_root=cp_root.hex(), tables=digests, blobs=blobs, verified=replay,
                trust=trust, kind="export" if export_only else "migration")
            _write_manifest(staging, report, signer_key if not export_only else None, now,
                            vkey)
            dest.commit()
            committed = True
            _publish(staging, dst.path)
        except BaseException as exc:
            if committed:  # only the rename failed: keep what was committed and say so
                raise MigrationError(
                    f"the copy was committed in {dst.engine} and verified, but {staging} "
                    f"could not be moved to {dst.path} ({exc}): move it there by hand "
                    "(`mv`), then open the store") from exc
            if dest is not None:
                dest.abort()
            # Refused or failed here (a kill never gets here: then the staging directory
            # stays, and the next run names it).
            shutil.rmtree(staging, ignore_errors=True)
            raise
        report.source_size_after = _size_after(src, src_dsn)
        if report.manifest is not None:
            report.manifest = str(dst.path / Path(report.manifest).relative_to(staging))
        return report
    finally:
        source.close()
        if isinstance(lock, int):
            os.close(lock)
        elif lock is not None:
            lock.close()


def store_engine(path: Path) -> str:
    """``"sqlite"`` or ``"postgresql"``: the engine of the store directory at ``path``."""
    return "postgresql" if _source_dsn(Path(path)) is not None else "sqlite"


def _source_dsn(src: Path) -> str | None:
    """The DSN of a PostgreSQL store directory (``DEPOSITORY_PG_DSN`` first), or None for
    a SQLite one."""
    cfg = src / CONFIG_NAME
    if (src / DB_NAME).is_file() or not cfg.is_file():
        return None
    from depository.store._store import read_config_file

    engine = read_config_file(cfg).get("engine") or {}
    if not isinstance(engine, dict) or engine.get("type") != "postgresql":
        return None
    dsn = os.environ.get("DEPOSITORY_PG_DSN") or engine.get("dsn")
    if not isinstance(dsn, str) or not dsn:
        raise SourceUnreadableError(
            f"{src / CONFIG_NAME}: engine.type is postgresql but no DSN is given (set "
            "engine.dsn or DEPOSITORY_PG_DSN); nothing was migrated")
    return dsn


def _open_source(src: Path) -> tuple[TableReader, str | None]:
    dsn = _source_dsn(src)
    if dsn is not None:
        from depository.store._migrate_pg import PgTables

        return PgTables(dsn), dsn
    db = src / DB_NAME
    if not db.is_file():
        raise SourceUnreadableError(f"no store at {src} (no {DB_NAME}); nothing was migrated")
    return SqliteTables(db), None


def _open_destination(dst: _Endpoint, staging: Path) -> TableWriter:
    if dst.engine == "sqlite":
        return SqliteDestination(staging)
    from depository.store._migrate_pg import PgDestination

    assert dst.dsn is not None and dst.admin_dsn is not None
    return PgDestination(dst.admin_dsn, dst.dsn)


def _lock_source(src: Path, dsn: str | None) -> Any:
    """Hold the source's writer lock so no writer starts during the copy (SQLite: the
    lock file, opened read-only and never created, so the source is not modified;
    PostgreSQL: the writer's advisory lock, in a session of its own)."""
    if dsn is not None:
        from depository.store._migrate_pg import lock_writer

        return lock_writer(dsn)
    path = src / ".writer.lock"
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise MigrationRefusedError(
            f"source store {src} is open for writing by another process (a running "
            "`depository serve`?): stop it first, so that no write is made after the copy "
            "(`depository export` copies a live store for auditors)") from None
    return fd


def _staging(path: Path) -> Path:
    return path.parent / f".{path.name}.migrating"


def _prepare_destination(dst: _Endpoint) -> Path:
    """Refuse a destination that holds anything; make the staging directory."""
    path = dst.path
    staging = _staging(path)
    if staging.exists():
        raise MigrationRefusedError(
            f"an earlier migration into {path} was interrupted: its partial copy is in "
            f"{staging} (never a store: nothing in it was committed). Remove it "
            f"(`rm -r {staging}`) and run the migration again")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        what = "a store" if (path / DB_NAME).exists() or (path / CONFIG_NAME).exists() \
            else "files"
        raise MigrationRefusedError(
            f"destination {path} already holds {what}; a migration only fills a new, empty "
            "destination (nothing was changed)")
    staging.mkdir(parents=True)
    (staging / STAGING_MARK).write_text("partial copy of a migration; not a store\n")
    return staging


def _publish(staging: Path, path: Path) -> None:
    (staging / STAGING_MARK).unlink()
    fsync_dir(staging)
    if path.exists():
        path.rmdir()  # empty (checked before the copy)
    os.rename(staging, path)
    fsync_dir(path.parent)


_NEUTRAL_META = frozenset({"schema_version", "origin", "verifier_key"})


def _rows(reader: TableReader, table: TableSpec, batch: int
          ) -> Iterator[list[tuple[Any, ...]]]:
    """A table's rows as every engine holds them: ``meta`` without the engine's own keys
    (e.g. PostgreSQL's catalog fingerprint); a key neither engine writes is refused."""
    if table.name != "meta":
        yield from reader.rows(table, batch)
        return
    own = reader.engine_meta()
    for rows in reader.rows(table, batch):
        odd = [str(r[0]) for r in rows if r[0] not in _NEUTRAL_META | own]
        if odd:
            raise MigrationRefusedError(
                f"table meta of {reader.where} has a row {odd[0]!r} no Depository store "
                "writes: it was inserted. Nothing was migrated; run `depository verify "
                "store` on the source")
        yield [r for r in rows if r[0] not in own]


def _copy_tables(source: TableReader, dest: TableWriter, batch: int,
                 tick: Progress) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for table in TABLES:
        total = source.count(table)
        h = hashlib.sha256()
        done = 0
        tick(table.name, 0, total)
        for rows in _rows(source, table, batch):
            for r in rows:
                row_digest_update(h, r)
            dest.insert(table, rows)
            done += len(rows)
            tick(table.name, done, total)
        out[table.name] = {"rows": done, "sha256": h.hexdigest()}
    return out


def _compare(back: TableReader, digests: dict[str, dict[str, Any]], batch: int,
             tick: Progress) -> None:
    for table in TABLES:
        h = hashlib.sha256()
        n = 0
        for rows in _rows(back, table, batch):
            for r in rows:
                row_digest_update(h, r)
            n += len(rows)
        want = digests[table.name]
        if (n, h.hexdigest()) != (want["rows"], want["sha256"]):
            raise MigrationError(
                f"table {table.name} read back from {back.where} differs from the source "
                f"({n} rows, sha256 {h.hexdigest()[:16]}… vs {want['rows']} rows, "
                f"{want['sha256'][:16]}…): nothing was committed")
    tick("read-back", len(TABLES), len(TABLES))


def _log_facts(back: TableReader) -> tuple[int, int, bytes, str]:
    """(log size, latest checkpoint size and root, verifier key of record 0)."""
    size = back.count(TABLES[1])
    last: tuple[int, bytes] = (0, b"")
    for rows in back.rows(TABLES[3], 1000):
        for r in rows:
            last = (int(r[0]), bytes(r[1]))
    vkey = ""
    for rows in _rows(back, TABLES[0], 100):
        for k, v in rows:
            if k == "verifier_key":
                vkey = str(v)
    if not vkey:
        raise MigrationError("the source has no verifier_key row in table meta: it is not "
                             "a complete Depository store; nothing was committed")
    return size, last[0], last[1], vkey


def _replay(staging: Path, back: TableReader, keys: list[str], src: Path, check_blobs: bool,
            batch: int, tick: Progress) -> list[str]:
    """Replay the copy with the offline verifier; its findings as text. A copy in another
    engine is replayed through a SQLite export of what was written (read back inside the
    destination's transaction), with the blob files of the new store directory."""
    from depository.store._blobs import BlobDir
    from depository.verifier.store import store_result

    hasher: Callable[[str], str | None] | None = None
    exists: Callable[[str], bool] | None = None
    cfg = staging / CONFIG_NAME
    backend_type = "local"
    if check_blobs and cfg.is_file():
        from depository.store._backend import open_backend
        from depository.store._store import read_config_file

        raw = read_config_file(cfg).get("backend") or {}
        backend_type = str(raw.get("type", "local")) if isinstance(raw, dict) else "local"
        if backend_type != "local":  # e.g. S3: the bytes stay where they are
            from depository.store.config import load_config

            blobs = open_backend(src / OBJECTS, load_config(cfg).backend, readonly=True)
            hasher, exists = blobs.hash, blobs.exists

    def step(done: int, total: int) -> None:
        tick("verify", done, total)

    if back.engine == "sqlite":
        res = store_result(staging, keys, progress=step, check_blobs=check_blobs,
                           blob_hasher=hasher, blob_exists=exists)
        return [str(f) for f in res.findings]
    replay_dir = staging / ".replay"
    replay_dir.mkdir()
    try:
        lite = SqliteDestination(replay_dir)
        for table in TABLES:
            for rows in _rows(back, table, batch):
                lite.insert(table, rows)
        lite.read_back().close()
        if hasher is None:
            local = BlobDir(staging / OBJECTS)
            hasher, exists = local.hash, local.exists
        res = store_result(replay_dir, keys, progress=step, check_blobs=check_blobs,
                           blob_hasher=hasher, blob_exists=exists)
        return [str(f) for f in res.findings]
    finally:
        shutil.rmtree(replay_dir, ignore_errors=True)


def _set_engine(staging: Path, dst: _Endpoint) -> None:
    """The new store's ``engine`` in its configuration (the file is left as it was when
    the engine does not change)."""
    cfg = staging / CONFIG_NAME
    if not cfg.is_file():
        return
    from depository.store._store import read_config_file
    from depository.store.config import dump_config

    data = read_config_file(cfg)
    engine = data.get("engine") if isinstance(data.get("engine"), dict) else None
    current = engine.get("type", "sqlite") if engine else "sqlite"
    if dst.engine == "sqlite":
        if current == "sqlite":
            return
        data.pop("engine", None)
    else:
        assert dst.dsn is not None
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        parts = conninfo_to_dict(dst.dsn)
        parts.pop("password", None)  # secrets stay in PGPASSWORD / ~/.pgpass
        data["engine"] = {"type": "postgresql", "dsn": make_conninfo("", **parts)}
    cfg.write_text(dump_config(data), encoding="utf-8")
    _fsync(cfg)


def _copy_files(src: Path, staging: Path, *, export_only: bool, copy_blobs: bool,
                tick: Progress) -> int:
    """Configuration, keys (public ones only for an export), other files, and the blob
    files under ``objects/`` (each checked to hash to its name while it is copied)."""
    for entry in sorted(src.iterdir()):
        if entry.name in _NOT_COPIED or entry.name.startswith(f"{DB_NAME}."):
            continue
        if entry.is_dir():
            shutil.copytree(entry, staging / entry.name, symlinks=True)
        elif entry.is_file():
            shutil.copy2(entry, staging / entry.name)
    keys = src / KEY_DIR
    if keys.is_dir():
        (staging / KEY_DIR).mkdir()
        for k in sorted(keys.iterdir()):
            if not k.is_file() or k.is_symlink():
                continue
            if export_only and not k.name.endswith(".vkey"):
                continue  # an auditor's copy never carries a secret key
            shutil.copy2(k, staging / KEY_DIR / k.name)
            _fsync(staging / KEY_DIR / k.name)
    (staging / OBJECTS / "tmp").mkdir(parents=True)
    if not copy_blobs:
        return 0
    files = sorted((src / OBJECTS).glob("??/??/*")) if (src / OBJECTS).is_dir() else []
    files = [p for p in files if len(p.name) == 64 and p.is_file() and not p.is_symlink()]
    tick("blobs", 0, len(files))
    for n, p in enumerate(files, 1):
        target = staging / OBJECTS / p.parent.parent.name / p.parent.name / p.name
        target.parent.mkdir(parents=True, exist_ok=True)
        got = _copy_hashing(p, target)
        if got != p.name:
            raise MigrationError(
                f"source blob file {p.relative_to(src)} hashes to {got[:16]}…, not its name: "
                "its bytes were altered. Nothing was committed; run `depository verify "
                f"store {src}` to see which artifact it belongs to")
        tick("blobs", n, len(files))
    for d in {t.parent for t in (staging / OBJECTS).glob("??/??")}:
        fsync_dir(d)
    return len(files)


def _copy_hashing(src: Path, dst: Path) -> str:
    h = hashlib.sha256()
    with open(src, "rb") as fi, open(dst, "xb") as fo:
        while chunk := fi.read(1 << 20):
            h.update(chunk)
            fo.write(chunk)
        fo.flush()
        os.fsync(fo.fileno())
    os.chmod(dst, 0o444)
    return h.hexdigest()


def _write_manifest(staging: Path, report: MigrationReport, signer_key: str | None,
                    now: Callable[[], datetime], vkey: str) -> None:
    from depository.signing import SigningKeyError, sign_note, verifier_key_from_signer

    if signer_key:
        try:
            mine = verifier_key_from_signer(signer_key)
        except (SigningKeyError, ValueError) as exc:
            raise MigrationRefusedError(f"the signer key is not usable ({exc}); nothing was "
                                        "committed") from None
        if mine != vkey.strip():
            raise MigrationRefusedError(
                f"the signer key belongs to {mine.split('+')[0]} ({mine}), not to this "
                f"store's log key {vkey.strip()}: the manifest would not verify. Pass the "
                "store's own key (--signer-key) or none; nothing was committed")

    stamp = format_time(now())
    body: dict[str, Any] = {
        "kind": report.kind, "tool_version": __version__, "time": stamp,
        "source": report.source, "source_engine": report.source_engine,
        "destination": report.destination, "destination_engine": report.destination_engine,
        "size": report.size, "checkpoint_size": report.checkpoint_size,
        "checkpoint_root": report.checkpoint_root, "tables": report.tables,
        "blobs": report.blobs, "verified_against": report.trust,
    }
    text = (MANIFEST_HEADER + "\n" + json.dumps(body, sort_keys=True, ensure_ascii=True)
            + "\n").encode()
    data = text
    if signer_key:
        try:
            data = sign_note(text, signer_key)
            report.manifest_signed = True
        except (SigningKeyError, ValueError):
            data = text
    folder = staging / MANIFEST_DIR
    folder.mkdir(exist_ok=True)
    out = folder / f"{stamp.replace(':', '').replace('-', '')}.manifest"
    out.write_bytes(data)
    _fsync(out)
    report.manifest = str(out)


def read_manifest(data: bytes) -> dict[str, Any]:
    """The JSON body of a migration manifest (signed or not; check a signature with
    ``python -m depository.verifier note FILE --key log.vkey``)."""
    body = parse_note(data)[0] if b"\n\n" in data else data
    lines = body.decode("utf-8").splitlines()
    if len(lines) < 2 or lines[0] != MANIFEST_HEADER:
        raise ValueError(f"not a migration manifest (first line must be {MANIFEST_HEADER})")
    doc = json.loads(lines[1])
    if not isinstance(doc, dict):
        raise ValueError("manifest body is not a JSON object")
    return doc


def _size_after(src: Path, dsn: str | None) -> int | None:
    """The source's log size read again after the copy (outside the snapshot)."""
    if dsn is not None:
        from depository.store._migrate_pg import log_size

        return log_size(dsn)
    try:
        conn = _sqlite_ro(src / DB_NAME)
        try:
            row = conn.execute("SELECT count(*) FROM log").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return int(row[0])


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

