"""Where the writer puts what it commits: the ``LogStorage`` seam and its SQLite engine.

The writer (:mod:`depository.store._engine`) decides *what* to write -- leaves, tree
nodes, checkpoints and the rows derived from each record (artifacts, retention, holds,
disposals, governance, tokens) -- and a :class:`LogStorage` decides *how*. Everything the
writer's transaction asks of the database is a method here, so a second engine (e.g.
PostgreSQL) is a new class with these methods, not a fork of the writer. The read side
is :class:`depository.store._reads.StoreReads`.

:class:`SqliteLogStorage` is the embedded default: one write connection in WAL mode with
``synchronous=FULL`` (a commit is fsynced before the writer acknowledges anything), and
the WORM triggers of :mod:`depository.store._schema` refusing any update or delete of a
committed record.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from depository import __version__
from depository.store import _schema
from depository.store._authority import TokenRow
from depository.store._blobs import disk_error
from depository.store._errors import DiskFullError, SchemaMismatchError, StoreError
from depository.store._tree import NodeRow

DB_NAME = "depository.db"
# Page cache of the writer connection (KiB, negative = size): the artifact id index and the
# tree tails stay in memory during bulk ingest (~+50 % measured). Readers get less each.
WRITER_CACHE_KIB = 262144
READER_CACHE_KIB = 65536

# (sha256, size, log_idx, created, retain_until, leaf_hash or None): an artifact as the
# writer's write-once and quota checks see it.
ArtifactRow = tuple[Any, ...]
# Rows of puts, written in bulk: leaves (idx, leaf, leaf_hash); artifacts (13 columns);
# metadata index (product, key, value, log_idx); inline bytes (log_idx, data).
LeafRow = tuple[int, bytes, bytes]


class LogStorage(Protocol):
    """What the writer's transactions need from a storage engine (one writer at a time).

    A transaction is :meth:`begin` ... :meth:`commit` (durable on return) or
    :meth:`rollback`. Failures of the engine raise one of :attr:`failures`; the writer
    rolls back and turns them into a :class:`StoreError` with :meth:`storage_error`.
    """

    failures: tuple[type[BaseException], ...]

    # ------------------------------------------------------------- transactions
    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...
    def storage_error(self, exc: BaseException) -> StoreError: ...
    def bypass_attempt(self, exc: BaseException) -> str | None:
        """The message when ``exc`` is a WORM guard refusing an update or delete."""

    # ------------------------------------------------------------ state at open
    def size(self) -> int: ...
    def leaf(self, idx: int) -> bytes | None: ...
    def node(self, level: int, k: int) -> bytes:
        """A stored tree node (level 0: a leaf hash); StoreError if it is missing."""
    def usage(self) -> dict[str, list[int]]:
        """Live [bytes, artifacts] per product."""
    def lock_reason(self) -> str | None: ...
    def last_checkpoint(self) -> tuple[int, bytes] | None:
        """(size, root) of the largest stored checkpoint."""
    def schema_fingerprint(self) -> str: ...

    # ---------------------------------------------------------------- writing
    def write_rows(self, leaves: list[LeafRow], nodes: list[NodeRow],
                   artifacts: list[tuple[Any, ...]], meta: list[tuple[str, str, str, int]],
                   inline: list[tuple[int, bytes]]) -> None: ...
    def artifact(self, aid: str) -> ArtifactRow | None: ...
    def artifacts(self, aids: Sequence[str]) -> dict[str, ArtifactRow]: ...
    def leaf_hash(self, idx: int) -> bytes: ...
    def effective_retention(self, aid: str, base: str) -> str: ...
    def add_retention(self, seq: int, aid: str, until: str) -> None: ...
    def hold_state(self, hold_id: str) -> tuple[str, str | None, int, int | None] | None:
        """(matter, product, placed_idx, release log_idx or None) of a hold, or None."""
    def add_hold(self, hold_id: str, matter: str, reason: str, actor: str,
                 product: str | None, scope_json: str, seq: int, time: str) -> None: ...
    def add_hold_release(self, hold_id: str, reason: str, actor: str, seq: int,
                         time: str) -> None: ...
    def holds(self) -> list[tuple[str, str | None, dict[str, Any], int | None]]:
        """Every hold: (id, product, scope, release log_idx or None)."""
    def live_file_copies(self, sha256: str, except_id: str) -> int: ...
    def add_disposal(self, aid: str, sha256: str, seq: int, time: str) -> None: ...
    def drop_inline(self, log_idx: int) -> None: ...
    def add_governance(self, seq: int, state: str, reason: str, actor: str,
                       time: str) -> None: ...
    def token_row(self, token_id: str) -> TokenRow | None:
        """A token's row and its revocation's log index (see ``_authority``), or None."""
    def add_token(self, token_id: str, role: str, product: str | None,
                  expires: str | None, secret_sha256: str, note: str, actor: str, seq: int,
                  time: str) -> None: ...
    def add_token_revoke(self, token_id: str, reason: str, actor: str, seq: int,
                         time: str) -> None: ...
    def add_checkpoint(self, size: int, root: bytes, note: bytes, time: str) -> None:
        """Store a signed checkpoint (its own transaction)."""
    def checkpoint_note(self, size: int) -> bytes | None: ...


# A token's row and its revocation's log index, as ``explain_token`` takes them (the
# writer's LogStorage and StoreReads run the same query).
TOKEN_ROW_SQL = (
    "SELECT t.role, t.product, t.expires, t.secret_sha256, t.issued_idx, r.log_idx "
    "FROM token t LEFT JOIN token_revoke r ON r.token_id = t.id WHERE t.id = ?")


def token_row_of(row: Sequence[Any] | None) -> TokenRow | None:
    """A :data:`TOKEN_ROW_SQL` result as ``explain_token`` takes it."""
    return None if row is None else (str(row[0]), row[1], row[2], str(row[3]), int(row[4]),
                                     None if row[5] is None else int(row[5]))


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def create_database(path: Path, *, origin: str, verifier_key: str) -> None:
    """A new store's database: the schema and its ``meta`` rows."""
    conn = connect(path / DB_NAME)
    try:
        with conn:
            _schema.create(conn)
            conn.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                         (str(_schema.SCHEMA_VERSION),))
            conn.execute("INSERT INTO meta VALUES ('origin', ?)", (origin,))
            conn.execute("INSERT INTO meta VALUES ('verifier_key', ?)", (verifier_key,))
    finally:
        conn.close()


def check_schema_version(db: Path) -> None:
    """Refuse a store whose tables are laid out for another schema version.

    Version 1 stores (before ADR 0004) are not migrated: none was put into production,
    and a migration would have to re-derive every table from the log anyway.
    """
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                               ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the store database {db}: {exc}") from exc
    found = None if row is None else str(row[0])
    if found != str(_schema.SCHEMA_VERSION):
        raise SchemaMismatchError(
            f"store {db.parent} has SQL schema version {found}, but this version of "
            f"Depository ({__version__}) reads schema version {_schema.SCHEMA_VERSION} only "
            "(see docs/adr/0004-schema-v2.md). Nothing was changed. Open it with the "
            "Depository release that created it, or create a new store with `depository "
            "init` and ingest the artifacts again."
        )


def sqlite_error(exc: BaseException) -> StoreError:
    text = str(exc)
    if isinstance(exc, sqlite3.Error) and "full" in text.lower():
        return DiskFullError(
            f"the disk is full ({text}); nothing was written and the log is unchanged. "
            "Free space, then retry."
        )
    if isinstance(exc, OSError):
        return disk_error(exc, "store")
    return StoreError(f"storage error: {text}; nothing was written")


class PortableLogStorage:
    """The :class:`LogStorage` methods whose SQL is the same on every engine.

    Each statement is written once, in SQLite's dialect (``?`` placeholders), as a class
    attribute ``_sql_*``. An engine whose driver wants another placeholder style names a
    ``translate`` function in its class statement
    (``class PgLogStorage(PortableLogStorage, translate=POSTGRESQL.sql)``): every ``_sql_*``
    text is rewritten once, when the class is defined, never per call. The engine class
    sets :attr:`conn` (a DB-API connection whose ``execute`` returns its cursor) and
    supplies the rest of :class:`LogStorage` (transactions, errors, the bulk writes and
    the per-put artifact lookups, which are tuned per engine).
    """

    conn: Any

    # ------------------------------------------------------------ state at open
    _sql_size = "SELECT max(idx) FROM log"
    _sql_last_leaf = "SELECT leaf FROM log ORDER BY idx DESC LIMIT 1"
    _sql_leaf = "SELECT leaf FROM log WHERE idx = ?"
    _sql_leaf_hash = "SELECT leaf_hash FROM log WHERE idx = ?"
    _sql_node = "SELECT hash FROM node WHERE level = ? AND k = ?"
    _sql_usage = (
        "SELECT a.product, sum(a.size), count(*) FROM artifact a WHERE NOT EXISTS "
        "(SELECT 1 FROM disposal d WHERE d.artifact_id = a.id) GROUP BY a.product")
    _sql_lock_reason = "SELECT state, reason FROM governance ORDER BY log_idx DESC LIMIT 1"
    _sql_last_checkpoint = "SELECT size, root FROM checkpoint ORDER BY size DESC LIMIT 1"
    # ---------------------------------------------------------------- writing
    _sql_effective_retention = "SELECT max(retain_until) FROM retention WHERE artifact_id = ?"
    _sql_add_retention = "INSERT INTO retention VALUES (?,?,?)"
    _sql_hold_state = (
        "SELECT h.matter, h.product, h.placed_idx, r.log_idx FROM hold h "
        "LEFT JOIN hold_release r ON r.hold_id = h.id WHERE h.id = ?")
    _sql_add_hold = "INSERT INTO hold VALUES (?,?,?,?,?,?,?,?)"
    _sql_add_hold_release = "INSERT INTO hold_release VALUES (?,?,?,?,?)"
    _sql_holds = ("SELECT h.id, h.product, h.scope, r.log_idx FROM hold h "
                  "LEFT JOIN hold_release r ON r.hold_id = h.id")
    # Live file-backed artifacts other than one sharing these bytes (the partial index).
    _sql_live_file_copies = (
        "SELECT count(*) FROM artifact a WHERE a.sha256 = ? AND a.storage = 'file' "
        "AND a.id != ? AND NOT EXISTS "
        "(SELECT 1 FROM disposal d WHERE d.artifact_id = a.id)")
    _sql_add_disposal = "INSERT INTO disposal VALUES (?,?,?,?)"
    # The trigger allows this only once the disposal row exists.
    _sql_drop_inline = "DELETE FROM inline_blob WHERE log_idx = ?"
    _sql_add_governance = "INSERT INTO governance VALUES (?,?,?,?,?)"
    _sql_token_row = TOKEN_ROW_SQL
    _sql_add_token = "INSERT INTO token VALUES (?,?,?,?,?,?,?,?,?)"
    _sql_add_token_revoke = "INSERT INTO token_revoke VALUES (?,?,?,?,?)"
    _sql_checkpoint_note = "SELECT note FROM checkpoint WHERE size = ?"

    def __init_subclass__(cls, translate: Callable[[str], str] | None = None,
                          **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if translate is not None:
            for name, text in vars(PortableLogStorage).items():
                if name.startswith("_sql_"):
                    setattr(cls, name, translate(text))

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, args).fetchone()

    # ------------------------------------------------------------ state at open
    def size(self) -> int:
        row = self._one(self._sql_size)
        return 0 if row[0] is None else int(row[0]) + 1

    def leaf(self, idx: int) -> bytes | None:
        row = (self._one(self._sql_last_leaf) if idx < 0
               else self._one(self._sql_leaf, (idx,)))
        return None if row is None else bytes(row[0])

    def node(self, level: int, k: int) -> bytes:
        if level == 0:
            row = self._one(self._sql_leaf_hash, (k,))
        else:
            row = self._one(self._sql_node, (level, k))
        if row is None:
            raise StoreError(f"Merkle node ({level}, {k}) is missing from storage")
        return bytes(row[0])

    def usage(self) -> dict[str, list[int]]:
        return {str(pid): [int(b), int(n)]
                for pid, b, n in self.conn.execute(self._sql_usage)}

    def lock_reason(self) -> str | None:
        gov = self._one(self._sql_lock_reason)
        return str(gov[1]) if gov and gov[0] == "locked" else None

    def last_checkpoint(self) -> tuple[int, bytes] | None:
        cp = self._one(self._sql_last_checkpoint)
        return None if cp is None else (int(cp[0]), bytes(cp[1]))

    # ---------------------------------------------------------------- writing
    def leaf_hash(self, idx: int) -> bytes:
        return bytes(self._one(self._sql_leaf_hash, (idx,))[0])

    def effective_retention(self, aid: str, base: str) -> str:
        row = self._one(self._sql_effective_retention, (aid,))
        return max(base, row[0]) if row[0] else base

    def add_retention(self, seq: int, aid: str, until: str) -> None:
        self.conn.execute(self._sql_add_retention, (seq, aid, until))

    def hold_state(self, hold_id: str) -> tuple[str, str | None, int, int | None] | None:
        row = self._one(self._sql_hold_state, (hold_id,))
        return None if row is None else (row[0], row[1], int(row[2]), row[3])

    def add_hold(self, hold_id: str, matter: str, reason: str, actor: str,
                 product: str | None, scope_json: str, seq: int, time: str) -> None:
        self.conn.execute(self._sql_add_hold, (
            hold_id, matter, reason, actor, product, scope_json, seq, time))

    def add_hold_release(self, hold_id: str, reason: str, actor: str, seq: int,
                         time: str) -> None:
        self.conn.execute(self._sql_add_hold_release, (hold_id, reason, actor, seq, time))

    def holds(self) -> list[tuple[str, str | None, dict[str, Any], int | None]]:
        return [(r[0], r[1], json.loads(r[2]), r[3])
                for r in self.conn.execute(self._sql_holds)]

    def live_file_copies(self, sha256: str, except_id: str) -> int:
        return int(self._one(self._sql_live_file_copies, (sha256, except_id))[0])

    def add_disposal(self, aid: str, sha256: str, seq: int, time: str) -> None:
        self.conn.execute(self._sql_add_disposal, (aid, sha256, seq, time))

    def drop_inline(self, log_idx: int) -> None:
        self.conn.execute(self._sql_drop_inline, (log_idx,))

    def add_governance(self, seq: int, state: str, reason: str, actor: str,
                       time: str) -> None:
        self.conn.execute(self._sql_add_governance, (seq, state, reason, actor, time))

    def token_row(self, token_id: str) -> TokenRow | None:
        return token_row_of(self._one(self._sql_token_row, (token_id,)))

    def add_token(self, token_id: str, role: str, product: str | None,
                  expires: str | None, secret_sha256: str, note: str, actor: str, seq: int,
                  time: str) -> None:
        self.conn.execute(self._sql_add_token, (
            token_id, role, product, expires, secret_sha256, note, actor, seq, time))

    def add_token_revoke(self, token_id: str, reason: str, actor: str, seq: int,
                         time: str) -> None:
        self.conn.execute(self._sql_add_token_revoke, (token_id, reason, actor, seq, time))

    def checkpoint_note(self, size: int) -> bytes | None:
        row = self._one(self._sql_checkpoint_note, (size,))
        return None if row is None else bytes(row[0])


class SqliteLogStorage(PortableLogStorage):
    """The SQLite engine of :class:`LogStorage` over ``STORE/depository.db``."""

    failures: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)

    def __init__(self, store_path: Path) -> None:
        self.conn = connect(store_path / DB_NAME)
        self.conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")

    # ------------------------------------------------------------- transactions
    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.rollback()

    def close(self) -> None:
        self.conn.close()

    def storage_error(self, exc: BaseException) -> StoreError:
        return sqlite_error(exc)

    def bypass_attempt(self, exc: BaseException) -> str | None:
        # The WORM triggers raise "depository: ..." (see _schema).
        if isinstance(exc, sqlite3.IntegrityError) and "depository:" in str(exc):
            return str(exc)
        return None

    # ------------------------------------------------------------ state at open
    def schema_fingerprint(self) -> str:
        return _schema.schema_fingerprint(self.conn)

    # ---------------------------------------------------------------- writing
    def write_rows(self, leaves: list[LeafRow], nodes: list[NodeRow],
                   artifacts: list[tuple[Any, ...]], meta: list[tuple[str, str, str, int]],
                   inline: list[tuple[int, bytes]]) -> None:
        conn = self.conn
        if leaves:
            conn.executemany("INSERT INTO log VALUES (?,?,?)", leaves)
        if nodes:
            conn.executemany("INSERT INTO node VALUES (?,?,?)", nodes)
        if artifacts:
            conn.executemany("INSERT INTO artifact VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                             artifacts)
        if meta:
            conn.executemany("INSERT INTO artifact_meta VALUES (?,?,?,?)", meta)
        if inline:
            conn.executemany("INSERT INTO inline_blob VALUES (?,?)", inline)

    def artifact(self, aid: str) -> ArtifactRow | None:
        row = self.conn.execute(
            "SELECT sha256, size, log_idx, created, retain_until FROM artifact WHERE id = ?",
            (aid,)).fetchone()
        return None if row is None else (*row, None)

    def artifacts(self, aids: Sequence[str]) -> dict[str, ArtifactRow]:
        """Many ids with a few IN queries instead of one statement per put."""
        out: dict[str, ArtifactRow] = {}
        for i in range(0, len(aids), 500):
            chunk = aids[i:i + 500]
            for row in self.conn.execute(
                "SELECT id, sha256, size, log_idx, created, retain_until FROM artifact "
                f"WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ):
                out[row[0]] = (*row[1:], None)
        return out

    def add_checkpoint(self, size: int, root: bytes, note: bytes, time: str) -> None:
        with self.conn:
            self.conn.execute("INSERT OR IGNORE INTO checkpoint VALUES (?,?,?,?)",
                              (size, root, note, time))
