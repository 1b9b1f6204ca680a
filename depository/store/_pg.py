"""The PostgreSQL engine (ADR 0013): :class:`PgLogStorage` for the writer and
:class:`PgReadConnections` for :class:`~depository.store._reads.StoreReads`.

The writer's session runs as the *service role*, which owns nothing (see
:mod:`._pg_schema`): it is refused if it owns the store's schema or is a superuser, since
either could drop the WORM triggers. A commit is the acknowledgement: the session sets
``synchronous_commit = on`` and refuses a server running with ``fsync = off``. One writer
per database: the session holds the advisory lock :data:`WRITER_LOCK_KEY` while open.

The DSN is a libpq conninfo (``host=... dbname=... user=...``) or URI; passwords come from
libpq's usual places (``PGPASSWORD``, ``~/.pgpass``, ``PGPASSFILE``), never the store's
configuration file.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from depository import __version__
from depository.store import _pg_schema, _schema
from depository.store._errors import (
    ConfigError,
    DiskFullError,
    SchemaMismatchError,
    StoreError,
    StoreExistsError,
    StoreNotFoundError,
)
from depository.store._logstore import ArtifactRow, LeafRow, PortableLogStorage
from depository.store._reads import POSTGRESQL, PerThreadConnections
from depository.store._tree import NodeRow

SEARCH_PATH = f"{_pg_schema.SCHEMA}, pg_temp"
# pg_advisory_lock key held by the one writer session of a database (the first 8 bytes of
# SHA-256("depository.writer"), signed).
WRITER_LOCK_KEY = int.from_bytes(hashlib.sha256(b"depository.writer").digest()[:8], "big",
                                 signed=True)
# The WORM triggers' SQLSTATE (restrict_violation) and a missing privilege's.
_WORM_SQLSTATE = "23001"
_PRIVILEGE_SQLSTATE = "42501"
# Rows in one write_rows call from which COPY beats pipelined INSERTs.
_COPY_FROM = 200


def describe_dsn(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "(unparsable DSN)"
    return " ".join(f"{k}={v}" for k, v in sorted(parts.items()) if k != "password")


def check_dsn(dsn: Any, where: str) -> str:
    """A DSN as configuration may hold it: a parsable conninfo without a password."""
    if not isinstance(dsn, str) or not dsn.strip():
        raise ConfigError(f"{where}: must be a libpq connection string, e.g. "
                          "'host=db.example.org dbname=depository user=depository_service'")
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        raise ConfigError(f"{where}: not a valid libpq connection string: {exc}") from None
    if "password" in parts:
        raise ConfigError(
            f"{where}: holds a password; keep secrets out of the configuration file: put it "
            "in PGPASSWORD or a ~/.pgpass file (PGPASSFILE), or pass the whole DSN in "
            "DEPOSITORY_PG_DSN")
    return dsn


def connect(dsn: str, *, autocommit: bool = True, read_only: bool = False
            ) -> psycopg.Connection[Any]:
    """A session on the store's schema; a clear :class:`StoreError` if it cannot connect."""
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10,
                               application_name="depository")
    except psycopg.Error as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(
            f"cannot connect to PostgreSQL ({describe_dsn(dsn)}): {detail}. Check the "
            "store's engine.dsn in depository.yaml (or DEPOSITORY_PG_DSN), that the server "
            "is running, and the password in PGPASSWORD or ~/.pgpass") from None
    try:
        conn.execute(f"SET search_path = {SEARCH_PATH}")
        if read_only:
            conn.execute("SET default_transaction_read_only = on")
        if not autocommit:
            conn.commit()
    except psycopg.Error:
        conn.close()
        raise
    return conn


def _has_schema(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                       (_pg_schema.SCHEMA,)).fetchone()
    return row is not None


def check_service_role(conn: psycopg.Connection[Any], role: str,
                       error: Callable[[str], Exception], dsn_option: str) -> None:
    """Refuse, raising ``error``, a service role that does not exist, is a superuser or
    is ``conn``'s own (the role creating the schema): the store must run as a role that
    owns nothing, so it cannot alter the WORM triggers. ``dsn_option`` names where the
    user gives the service role's DSN."""
    owner = conn.execute("SELECT current_user").fetchone()
    found = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s",
                         (role,)).fetchone()
    if found is None:
        raise error(
            f"the service role {role!r} does not exist on the server; create it first "
            f"(e.g. CREATE ROLE {role} LOGIN PASSWORD '...') -- it must own nothing and "
            "must not be a superuser")
    if found[0] or (owner is not None and owner[0] == role):
        raise error(
            f"the service role {role!r} is "
            + ("a superuser" if found[0] else "the role creating the schema (--admin-dsn)")
            + "; the store must run as a role that owns nothing, so it cannot alter the "
            f"WORM triggers. Use another role in {dsn_option}")


def create_database(admin_dsn: str, service_dsn: str, *, origin: str,
                    verifier_key: str) -> None:
    """Create a new store's schema, WORM triggers and grants, and its ``meta`` rows.

    ``admin_dsn`` connects as the role that will own the tables (used only here);
    ``service_dsn`` names the role the store runs as (its ``user``), granted SELECT and
    INSERT only. One transaction: a failure leaves the database as it was.
    """
    service_role = str(conninfo_to_dict(service_dsn).get("user") or "")
    if not service_role:
        raise ConfigError(f"the store's DSN ({describe_dsn(service_dsn)}) must name the "
                          "service role it runs as (user=...)")
    conn = connect(admin_dsn, autocommit=False)
    try:
        check_service_role(conn, service_role, ConfigError, "the store's DSN")
        if _has_schema(conn):
            raise StoreExistsError(
                f"the database ({describe_dsn(admin_dsn)}) already has a schema "
                f"{_pg_schema.SCHEMA!r}; nothing changed. Use an empty database per store")
        conn.execute(_pg_schema.ddl(service_role).encode())
        for key, value in (("schema_version", str(_schema.SCHEMA_VERSION)),
                           ("origin", origin), ("verifier_key", verifier_key)):
            conn.execute("INSERT INTO meta VALUES (%s, %s)", (key, value))
        conn.execute("INSERT INTO meta VALUES (%s, %s)",
                      (_pg_schema.PG_FINGERPRINT_KEY, _pg_schema.fingerprint(conn)))
        conn.commit()
    except psycopg.Error as exc:
        conn.rollback()
        raise StoreError(f"cannot create the store's schema in PostgreSQL "
                         f"({describe_dsn(admin_dsn)}): {exc}; nothing was created") from None
    finally:
        conn.close()


def check_schema_version(dsn: str) -> None:
    """Refuse a database without a store, or one laid out for another schema version."""
    conn = connect(dsn, read_only=True)
    try:
        if not _has_schema(conn):
            raise StoreNotFoundError(
                f"no store in the PostgreSQL database ({describe_dsn(dsn)}): it has no "
                f"schema {_pg_schema.SCHEMA!r}; create one with `depository init --engine "
                "postgresql`")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except psycopg.Error as exc:
        raise StoreError(f"cannot read the store in PostgreSQL ({describe_dsn(dsn)}): "
                         f"{exc}") from None
    finally:
        conn.close()
    found = None if row is None else str(row[0])
    if found != str(_schema.SCHEMA_VERSION):
        raise SchemaMismatchError(
            f"the PostgreSQL store ({describe_dsn(dsn)}) has SQL schema version {found}, but "
            f"this version of Depository ({__version__}) reads schema version "
            f"{_schema.SCHEMA_VERSION} only. Nothing was changed.")


def pg_error(exc: BaseException) -> StoreError:
    """A storage failure as the writer reports it."""
    if isinstance(exc, pg_errors.DiskFull):
        return DiskFullError(f"PostgreSQL's disk is full ({exc}); nothing was written and "
                             "the log is unchanged. Free space, then retry.")
    if isinstance(exc, psycopg.OperationalError):
        return StoreError(f"lost the connection to PostgreSQL ({exc}); nothing was "
                          "acknowledged. Restart the store once the server is reachable")
    return StoreError(f"storage error: {exc}; nothing was written")


class PgLogStorage(PortableLogStorage, translate=POSTGRESQL.sql):
    """The PostgreSQL engine of :class:`~depository.store._logstore.LogStorage` (the SQL
    both engines share is :class:`~depository.store._logstore.PortableLogStorage`'s)."""

    failures: tuple[type[BaseException], ...] = (psycopg.Error, OSError)

    def __init__(self, dsn: str, *, wait_for_lock: bool = False) -> None:
        self.dsn = dsn
        self.conn = connect(dsn)
        try:
            self._check_session()
            self._lock(wait_for_lock)
        except BaseException:
            self.conn.close()
            raise

    def _check_session(self) -> None:
        c = self.conn
        user, superuser = c.execute(
            "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() or ("", False)
        owner = c.execute("SELECT pg_get_userbyid(nspowner) FROM pg_namespace "
                          "WHERE nspname = %s", (_pg_schema.SCHEMA,)).fetchone()
        if owner is None:
            raise StoreNotFoundError(f"no store in the PostgreSQL database "
                                     f"({describe_dsn(self.dsn)})")
        if superuser or owner[0] == user:
            raise StoreError(
                f"refusing to write as PostgreSQL role {user!r}: it "
                + ("is a superuser" if superuser else "owns the store's schema")
                + ", so it could drop or disable the WORM triggers. Connect as the service "
                "role (the DSN's user=..., granted SELECT and INSERT by `depository init`)")
        if str(self._one("SHOW fsync")[0]) != "on":
            raise StoreError("the PostgreSQL server runs with fsync = off: a commit would "
                             "not be durable, so nothing may be acknowledged. Turn fsync on")
        # A commit returns once its WAL is flushed: the writer's acknowledgement.
        c.execute("SET synchronous_commit = on")

    def _lock(self, wait: bool) -> None:
        if wait:
            self.conn.execute("SELECT pg_advisory_lock(%s)", (WRITER_LOCK_KEY,))
            return
        got = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK_KEY,)
                                ).fetchone()
        if not (got and got[0]):
            raise StoreError(
                f"another process writes to this PostgreSQL store ({describe_dsn(self.dsn)}; "
                "it holds the writer lock); stop it or send writes to it (read-only commands "
                "work alongside it)")

    # ------------------------------------------------------------- transactions
    def begin(self) -> None:
        self.conn.execute("BEGIN")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            # On a broken connection the server rolls the transaction back itself.
            with contextlib.suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")

    def close(self) -> None:
        # Free the writer lock before the session ends: the server drops a closed
        # session's locks only when its backend exits, a moment later, and a successor
        # that tries at once (a handover) would still find the lock held.
        conn = self.conn
        if (not conn.closed
                and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE):
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock_all()")
        conn.close()

    def storage_error(self, exc: BaseException) -> StoreError:
        return pg_error(exc)

    def bypass_attempt(self, exc: BaseException) -> str | None:
        if isinstance(exc, psycopg.Error) and (
                (exc.sqlstate == _WORM_SQLSTATE and "depository:" in str(exc))
                or exc.sqlstate == _PRIVILEGE_SQLSTATE):
            return str(exc).strip().splitlines()[0]
        return None

    # ------------------------------------------------------------ state at open
    def schema_fingerprint(self) -> str:
        """The reference fingerprint frozen in ``store.init`` while this database's own
        schema (triggers, grants, owners...) still matches the one stored at init;
        otherwise ``pg:`` and the live fingerprint, which matches nothing."""
        live = _pg_schema.fingerprint(self.conn)
        frozen = self._one("SELECT value FROM meta WHERE key = %s",
                           (_pg_schema.PG_FINGERPRINT_KEY,))
        if frozen is not None and frozen[0] == live:
            return _pg_schema.reference_fingerprint()
        return f"pg:{live}"

    # ---------------------------------------------------------------- writing
    def write_rows(self, leaves: list[LeafRow], nodes: list[NodeRow],
                   artifacts: list[tuple[Any, ...]], meta: list[tuple[str, str, str, int]],
                   inline: list[tuple[int, bytes]]) -> None:
        # Many rows: COPY (one stream per table); a few: inserts in one pipeline (one
        # round trip for all of them instead of one per statement).
        tables = (("log", leaves), ("node", nodes), ("artifact", artifacts),
                  ("artifact_meta", meta), ("inline_blob", inline))
        if sum(len(rows) for _, rows in tables) >= _COPY_FROM:
            cur = self.conn.cursor()
            for table, rows in tables:
                if rows:
                    with cur.copy(f"COPY {table} FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            return
        with self.conn.pipeline():
            cur = self.conn.cursor()
            for table, rows in tables:
                if rows:
                    marks = ",".join(["%s"] * len(rows[0]))
                    cur.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)

    def artifact(self, aid: str) -> ArtifactRow | None:
        row = self._one("SELECT sha256, size, log_idx, created, retain_until FROM artifact "
                        "WHERE id = %s", (aid,))
        return None if row is None else (*row, None)

    def artifacts(self, aids: Sequence[str]) -> dict[str, ArtifactRow]:
        out: dict[str, ArtifactRow] = {}
        for i in range(0, len(aids), 5000):
            for row in self.conn.execute(
                "SELECT id, sha256, size, log_idx, created, retain_until FROM artifact "
                "WHERE id = ANY(%s)", (list(aids[i:i + 5000]),)
            ):
                out[row[0]] = (*row[1:], None)
        return out

    def add_checkpoint(self, size: int, root: bytes, note: bytes, time: str) -> None:
        self.conn.execute("INSERT INTO checkpoint VALUES (%s,%s,%s,%s) "
                          "ON CONFLICT (size) DO NOTHING", (size, root, note, time))


class PgReadConnections(PerThreadConnections[psycopg.Connection[Any]]):
    """Read-only sessions for :class:`~depository.store._reads.StoreReads`, one per
    thread (``default_transaction_read_only``; the role's grants allow no update anyway)."""

    dialect = POSTGRESQL

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn

    def conn(self) -> psycopg.Connection[Any]:
        mine: tuple[int, psycopg.Connection[Any]] | None = getattr(self._local, "conn", None)
        if mine is not None and mine[0] == self._generation and not (
                mine[1].closed or mine[1].broken):
            return mine[1]
        return self._adopt(connect(self.dsn, read_only=True))

    def lost(self, exc: BaseException) -> bool:
        mine = getattr(self._local, "conn", None)
        return isinstance(exc, psycopg.OperationalError) and mine is not None and (
            mine[1].closed or mine[1].broken)

    def integrity_check(self) -> list[str]:
        """Read every row of every table whole (toasted values included), so the server
        verifies each page it reads (its checksums, with ``initdb --data-checksums``),
        and check that the log has no gap. ``["ok"]`` or the problems."""
        c = self.conn()
        problems: list[str] = []
        try:
            for table in _pg_schema.TABLE_NAMES:
                c.execute(f"SELECT count(*), sum(pg_column_size(t.*)) FROM {table} t")
            n, top = c.execute("SELECT count(*), max(idx) FROM log").fetchone() or (0, None)
            if top is not None and int(top) + 1 != int(n):
                problems.append(f"the log has {n} rows but its last index is {top}")
        except psycopg.Error as exc:
            problems.append(f"PostgreSQL: {str(exc).strip()}")
        return problems or ["ok"]
