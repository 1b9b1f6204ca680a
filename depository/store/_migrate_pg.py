"""The PostgreSQL side of :mod:`depository.store.migrate`: a snapshot reader and an
all-or-nothing destination (imported only when a PostgreSQL store is involved).

The reader runs one ``REPEATABLE READ READ ONLY`` transaction (one snapshot for every
table) and streams each table through a server-side cursor. The destination creates the
schema (:func:`depository.store._pg_schema.ddl`, as the owner role) and every row in
**one** transaction, read back and verified inside it before ``COMMIT``: a run that dies
leaves the database without a store schema at all.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from depository.store import _pg, _pg_schema, _schema
from depository.store._errors import StoreError
from depository.store.migrate import (
    MigrationError,
    MigrationRefusedError,
    SourceUnreadableError,
    TableReader,
    TableSpec,
)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PgTables:
    """A PostgreSQL store read in one repeatable-read, read-only snapshot."""

    engine = "postgresql"

    def __init__(self, dsn: str | None = None, *, conn: psycopg.Connection[Any] | None = None
                 ) -> None:
        self._own = conn is None
        self.where = f"PostgreSQL ({_pg.describe_dsn(dsn)})" if dsn else "PostgreSQL"
        try:
            if conn is None:
                assert dsn is not None
                conn = _pg.connect(dsn, autocommit=False, read_only=True)
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                conn.read_only = True
                if not _has_schema(conn):
                    raise SourceUnreadableError(
                        f"no store in {self.where}: it has no schema {_pg_schema.SCHEMA!r}; "
                        "nothing was migrated")
                conn.execute("SELECT count(*) FROM log").fetchone()  # pins the snapshot
        except psycopg.Error as exc:
            if conn is not None:
                conn.close()
            raise SourceUnreadableError(f"cannot read the store in {self.where}: "
                                        f"{_first_line(exc)}; nothing was migrated") from None
        except MigrationError:
            if conn is not None and self._own:
                conn.close()
            raise
        except StoreError as exc:  # cannot connect: the message says where and why
            raise SourceUnreadableError(f"{exc}; nothing was migrated") from None
        except BaseException:
            if conn is not None and self._own:
                conn.close()
            raise
        self.conn = conn
        self._n = 0

    def rows(self, table: TableSpec, batch: int) -> Iterator[list[tuple[Any, ...]]]:
        self._n += 1
        with self.conn.cursor(name=f"migrate_{self._n}") as cur:
            cur.itersize = batch
            cur.execute(table.select())
            while got := cur.fetchmany(batch):
                yield [tuple(r) for r in got]

    def count(self, table: TableSpec) -> int:
        row = self.conn.execute(f"SELECT count(*) FROM {table.name}").fetchone()
        return int(row[0]) if row else 0

    def engine_meta(self) -> frozenset[str]:
        return frozenset({_pg_schema.PG_FINGERPRINT_KEY})

    def schema_problem(self) -> str | None:
        row = self.conn.execute("SELECT leaf FROM log WHERE idx = 0").fetchone()
        if row is None:
            return "the log has no record 0 (store.init)"
        try:
            frozen = json.loads(bytes(row[0]))["body"]["sql_schema_sha256"]
        except (ValueError, KeyError, TypeError) as exc:
            return f"record 0 does not parse ({exc})"
        if frozen != _schema.reference_fingerprint():
            return ("record 0 freezes an SQL schema fingerprint that is not the reference "
                    "schema's")
        got = _pg_schema.fingerprint(self.conn)
        want = self.conn.execute("SELECT value FROM meta WHERE key = %s",
                                 (_pg_schema.PG_FINGERPRINT_KEY,)).fetchone()
        if want is None or got != want[0]:
            return (f"its PostgreSQL schema (tables, triggers, functions, owners, grants) "
                    f"hashes to {got[:16]}…, not the fingerprint stored at init: a WORM "
                    "trigger was dropped or disabled, or a table, function or grant altered")
        return None

    def close(self) -> None:
        if self._own:
            with contextlib.suppress(psycopg.Error):
                self.conn.rollback()
            self.conn.close()


def _has_schema(conn: psycopg.Connection[Any]) -> bool:
    return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                        (_pg_schema.SCHEMA,)).fetchone() is not None


class PgDestination:
    """A new PostgreSQL store: schema and rows in one transaction, committed last."""

    engine = "postgresql"

    def __init__(self, admin_dsn: str, service_dsn: str) -> None:
        self.where = f"PostgreSQL ({_pg.describe_dsn(service_dsn)})"
        role = str(conninfo_to_dict(service_dsn).get("user") or "")
        if not role:
            raise MigrationRefusedError(
                f"the store's DSN ({_pg.describe_dsn(service_dsn)}) must name the service "
                "role the store runs as (user=...)")
        try:
            conn = _pg.connect(admin_dsn, autocommit=False)
        except Exception as exc:
            raise MigrationRefusedError(f"{exc}; nothing was migrated") from None
        try:
            _pg.check_service_role(conn, role, MigrationRefusedError, "--dsn")
            if _has_schema(conn):
                raise MigrationRefusedError(
                    f"the destination database ({_pg.describe_dsn(admin_dsn)}) already holds "
                    f"a store (schema {_pg_schema.SCHEMA!r}); a migration only fills an "
                    "empty database (nothing was changed)")
            conn.execute(_pg_schema.ddl(role).encode())
        except psycopg.Error as exc:
            conn.rollback()
            conn.close()
            raise MigrationRefusedError(
                f"cannot create the store's schema in {self.where}: {_first_line(exc)}; "
                "nothing was migrated") from None
        except BaseException:
            conn.rollback()
            conn.close()
            raise
        self.conn = conn

    def insert(self, table: TableSpec, rows: list[tuple[Any, ...]]) -> None:
        try:
            with self.conn.cursor() as cur, cur.copy(
                    f"COPY {table.name} ({', '.join(table.columns)}) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
        except psycopg.Error as exc:
            raise MigrationError(f"writing table {table.name} into {self.where} failed: "
                                 f"{_first_line(exc)}; nothing was committed") from None

    def read_back(self) -> TableReader:
        # The engine's own meta row: the catalog fingerprint the store is held to.
        self.conn.execute("INSERT INTO meta VALUES (%s, %s)",
                          (_pg_schema.PG_FINGERPRINT_KEY, _pg_schema.fingerprint(self.conn)))
        return PgTables(conn=self.conn)

    def commit(self) -> None:
        try:
            self.conn.commit()
        except psycopg.Error as exc:
            raise MigrationError(f"COMMIT into {self.where} failed: {_first_line(exc)}; "
                                 "nothing was committed") from None
        finally:
            self.conn.close()

    def abort(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.conn.rollback()
        self.conn.close()


def lock_writer(dsn: str) -> psycopg.Connection[Any]:
    """A session holding the store's writer lock (no writer runs while it is open)."""
    conn = _pg.connect(dsn)
    got = conn.execute("SELECT pg_try_advisory_lock(%s)", (_pg.WRITER_LOCK_KEY,)).fetchone()
    if not (got and got[0]):
        conn.close()
        raise MigrationRefusedError(
            f"the PostgreSQL store ({_pg.describe_dsn(dsn)}) has a writer running (it holds "
            "the writer lock): stop every `depository serve` first, so that no write is made "
            "after the copy (`depository export` copies a live store for auditors)")
    return conn


def log_size(dsn: str) -> int | None:
    """The log's size read now (outside any snapshot), or None if unreadable."""
    try:
        conn = _pg.connect(dsn, read_only=True)
    except Exception:  # a lost server after the copy only loses this figure
        return None
    try:
        row = conn.execute("SELECT count(*) FROM log").fetchone()
        return int(row[0]) if row else None
    except psycopg.Error:
        return None
    finally:
        conn.close()
