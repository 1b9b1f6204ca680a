"""The store's reads: :class:`StoreReads`, one read-only connection per thread, over
either engine.

Every query the store, the HTTP service and the blob-lock mirror run against a store's
database lives here: artifacts and listings, log entries and records, checkpoints and
Merkle proofs (also the tile ranges the service serves), holds, governance, usage,
tokens. The SQL is written once, in SQLite's dialect with ``?`` placeholders; a
:class:`ReadConnections` gives the engine's connections and its :class:`Dialect` (the
placeholder style and the few phrases the engines spell differently). SQLite's
connections (:class:`SqliteReadConnections`) are opened ``mode=ro`` with ``query_only``:
WAL readers never block the writer and never write; PostgreSQL's are
``depository.store._pg.PgReadConnections``. The write side is
:mod:`depository.store._logstore`.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from depository.store._authority import TokenRow, explain_token
from depository.store._errors import NotFoundError, StoreError
from depository.store._logstore import DB_NAME, READER_CACHE_KIB, TOKEN_ROW_SQL, token_row_of
from depository.store._model import (
    Artifact,
    Hold,
    Token,
    artifact_id,
    format_time,
    hold_covers,
    token_secret_hash,
)
from depository.store.config import Product
from depository.tlog import merkle
from depository.tlog.checkpoint import format_proof_file
from depository.tlog.record import Record, parse_record


@dataclass(frozen=True)
class Dialect:
    """What differs between the engines' SQL for the same query."""

    name: str
    # True: placeholders are ``%s`` (psycopg), so ``?`` is rewritten and ``%`` doubled.
    pyformat: bool
    # Join keeping the left table's order as the plan's driver (SQLite plans CROSS JOIN
    # in the written order; PostgreSQL has no ``CROSS JOIN ... ON`` and plans itself).
    ordered_join: str
    # ``{col}`` contains the bytes of the one parameter.
    contains: str
    # Starts a read transaction whose statements all see one snapshot.
    snapshot_begin: str

    def sql(self, text: str) -> str:
        return _to_pyformat(text) if self.pyformat else text


@functools.lru_cache(maxsize=4096)
def _to_pyformat(text: str) -> str:
    # Our SQL has no '?' or '%' inside string literals, so a plain rewrite is exact.
    return re.sub(r"\?", "%s", text.replace("%", "%%"))


SQLITE = Dialect("sqlite", pyformat=False, ordered_join="CROSS JOIN",
                 contains="instr({col}, ?) > 0", snapshot_begin="BEGIN")
POSTGRESQL = Dialect("postgresql", pyformat=True, ordered_join="JOIN",
                     contains="position(? in {col}) > 0",
                     snapshot_begin="BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")


class ReadConnections(Protocol):
    """One engine's read-only connections, one per thread."""

    dialect: Dialect

    def conn(self) -> Any:
        """This thread's connection (a DB-API connection with ``execute``)."""

    def close(self) -> None:
        """Close every connection; a later :meth:`conn` opens a fresh one."""

    def integrity_check(self) -> list[str]:
        """The engine's own integrity check: ``["ok"]`` or the problems found."""

    def lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` means this thread's connection is gone (a server restart): the
        read is then retried once on a new connection (reads have no side effects)."""


class _Closable(Protocol):
    def close(self) -> None: ...


_Conn = TypeVar("_Conn", bound=_Closable)


class PerThreadConnections(Generic[_Conn]):
    """An engine's connections, one per thread, all closed by :meth:`close`: the
    generation count tells each thread its own was closed, so it opens a fresh one. An
    engine's ``conn()`` returns ``self._local.conn[1]`` while its generation is current
    (inline: this runs per query) and otherwise opens one and :meth:`_adopt` s it."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[_Conn] = []
        self._lock = threading.Lock()
        self._generation = 0

    def _adopt(self, c: _Conn) -> _Conn:
        with self._lock:
            self._local.conn = (self._generation, c)
            self._all.append(c)
        return c

    def close(self) -> None:
        with self._lock:
            self._generation += 1
            for c in self._all:
                c.close()
            self._all.clear()


class SqliteReadConnections(PerThreadConnections[sqlite3.Connection]):
    """Read-only SQLite connections (``mode=ro``, ``query_only``) to ``STORE/depository.db``."""

    dialect = SQLITE

    def __init__(self, store_path: Path) -> None:
        super().__init__()
        self._uri = f"file:{Path(store_path) / DB_NAME}?mode=ro"

    def conn(self) -> sqlite3.Connection:
        mine: tuple[int, sqlite3.Connection] | None = getattr(self._local, "conn", None)
        if mine is not None and mine[0] == self._generation:
            return mine[1]
        c = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
        c.execute("PRAGMA query_only=1")
        c.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")
        return self._adopt(c)

    def integrity_check(self) -> list[str]:
        return [str(r[0]) for r in self.conn().execute("PRAGMA integrity_check")]

    def lost(self, exc: BaseException) -> bool:
        return False  # a file: nothing to reconnect to


class _SqlByCount(dict[int, str]):
    """SQL text per number of placeholders, built once (the texts are the statement cache's
    keys, and building a 60-term OR per proof showed in profiles)."""

    def __init__(self, make: Callable[[int], str]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, n: int) -> str:
        self[n] = sql = self._make(n)
        return sql


_LEAVES_SQL = _SqlByCount(
    lambda n: f"SELECT idx, leaf_hash FROM log WHERE idx IN ({','.join('?' * n)})")
# Row-value IN (VALUES ...) scans the whole table in SQLite 3.40; an OR of primary-key
# equalities is planned as one index search per pair.
_NODES_SQL = _SqlByCount(
    lambda n: "SELECT level, k, hash FROM node WHERE "
    + " OR ".join(["(level = ? AND k = ?)"] * n))


class StoreReads:
    """Read-only queries over a store's database, a connection per thread.

    ``product`` resolves a product id (raising ``UnknownProductError``); ``products`` are
    the configured ids.
    """

    def __init__(self, source: Path | ReadConnections, product: Callable[[str], Product],
                 products: Sequence[str]) -> None:
        """``source``: a SQLite store's directory, or an engine's :class:`ReadConnections`."""
        self.source: ReadConnections = (
            SqliteReadConnections(source) if isinstance(source, Path) else source)
        self.dialect = self.source.dialect
        self.product = product
        self.products = sorted(products)

    def conn(self) -> Any:
        """This thread's connection (opened on first use, and again after close)."""
        return self.source.conn()

    def close(self) -> None:
        """Close every connection; a later call to :meth:`conn` opens a fresh one."""
        self.source.close()

    def _q(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """Run one query (SQLite's dialect, ``?`` placeholders) on this thread's connection."""
        text = self.dialect.sql(sql)
        try:
            return self.source.conn().execute(text, args)
        except Exception as exc:
            if not self.source.lost(exc):
                raise
        return self.source.conn().execute(text, args)

    # -------------------------------------------------------------- artifacts
    @property
    def verifier_key(self) -> str:
        row = self._q("SELECT value FROM meta WHERE key='verifier_key'").fetchone()
        return str(row[0])

    def size(self) -> int:
        row = self._q("SELECT max(idx) FROM log").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def get(self, product: str, name_or_id: str) -> Artifact:
        """An artifact of ``product`` by name or id (another product's is 'not found')."""
        self.product(product)
        # Both through the id index: a name is found by the id derived from it.
        derived = artifact_id(product, name_or_id)
        row = self._q(
            f"{_ARTIFACT_SELECT} WHERE a.id IN (?, ?) AND a.product = ? "
            "ORDER BY a.id = ? DESC LIMIT 1",
            (derived, name_or_id, product, derived),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no artifact {name_or_id!r} in product {product!r}")
        return _artifact(row)

    def get_by_id(self, artifact_id_: str) -> Artifact:
        row = self._q(f"{_ARTIFACT_SELECT} WHERE a.id = ?", (artifact_id_,)
                                  ).fetchone()
        if row is None:
            raise NotFoundError(f"no artifact {artifact_id_!r}")
        return _artifact(row)

    def inline_bytes(self, log_index: int) -> bytes | None:
        row = self._q("SELECT data FROM inline_blob WHERE log_idx = ?",
                                  (log_index,)).fetchone()
        return None if row is None else bytes(row[0])

    def ls(
        self, *, product: str | None = None, prefix: str | None = None,
        since: str | None = None, until: str | None = None,
        meta: Mapping[str, str] | None = None, after: int | None = None, limit: int = 100,
    ) -> list[Artifact]:
        """Artifacts matching every filter, in log order, ``limit`` at most after cursor.

        Plans (schema v2, checked with EXPLAIN QUERY PLAN in tests/test_store.py): a
        metadata filter walks ``artifact_meta`` (product, key, value, log_idx), whose
        matches come in log order; a product's time range walks the (product, created)
        index in (created, log_idx) order, which is log order because record times never
        decrease along the log (the writer clamps them). Either way no sort: the page
        stops after ``limit`` rows.
        """
        where: list[str] = []
        args: list[Any] = []
        source = _ARTIFACT_SELECT
        order = "a.log_idx"
        if product is not None:
            self.product(product)
        metas = list((meta or {}).items())
        if metas:
            # The first field drives the query, in log order.
            k0, v0 = metas.pop(0)
            source = _ARTIFACT_SELECT.replace(
                "FROM artifact a", f"FROM artifact_meta m0 {self.dialect.ordered_join} artifact a "
                "ON a.log_idx = m0.log_idx")
            products = [product] if product is not None else self.products
            where.append(f"m0.product IN ({','.join('?' * len(products))}) AND m0.key = ? "
                         "AND m0.value = ?")
            args += [*products, k0, v0]
            if after is not None:
                where.append("m0.log_idx > ?")
                args.append(after)
            order = "m0.log_idx"
        elif product is not None:
            # Log order too, without a sort even when nothing narrows the product.
            order = "a.created, a.log_idx"
            if after is not None:
                # Everything after the cursor was created no earlier than the last
                # artifact at or before it (times rise along the log).
                where.append("a.created >= coalesce((SELECT created FROM artifact "
                             "WHERE log_idx <= ? ORDER BY log_idx DESC LIMIT 1), '')")
                args.append(after)
        if product is not None:
            where.append("a.product = ?")
            args.append(product)
        if prefix:
            where.append("a.name >= ? AND a.name < ?")
            args += [prefix, prefix + "\U0010ffff"]
        if since:
            where.append("a.created >= ?")
            args.append(since)
        if until:
            where.append("a.created < ?")
            args.append(until)
        for k, v in metas:
            where.append("EXISTS (SELECT 1 FROM artifact_meta m WHERE m.product = a.product "
                         "AND m.key = ? AND m.value = ? AND m.log_idx = a.log_idx)")
            args += [k, v]
        if after is not None:
            where.append("a.log_idx > ?")
            args.append(after)
        sql = source + (" WHERE " + " AND ".join(where) if where else "")
        sql += f" ORDER BY {order} LIMIT ?"
        args.append(limit)
        return [_artifact(r) for r in self._q(sql, args)]

    def iter_artifacts(self, *, product: str | None = None, since: str | None = None,
                       until: str | None = None, after: int | None = None
                       ) -> Iterator[Artifact]:
        """Every artifact matching, in log order, a page at a time."""
        while True:
            page = self.ls(product=product, since=since, until=until, after=after,
                           limit=1000)
            yield from page
            if len(page) < 1000:
                return
            after = page[-1].log_index

    def live_files_with_sha(self, sha256_hex: str) -> list[Artifact]:
        """Live file-backed artifacts whose bytes are ``sha256_hex``."""
        ids = [r[0] for r in self._q(
            "SELECT id FROM artifact WHERE sha256 = ? AND storage = 'file'", (sha256_hex,))]
        return [a for a in (self.get_by_id(i) for i in ids) if not a.disposed]

    def live_file_count(self, sha256_hex: str) -> int:
        return int(self._q(
            "SELECT count(*) FROM artifact a WHERE a.sha256 = ? AND a.storage = 'file' "
            "AND NOT EXISTS (SELECT 1 FROM disposal d WHERE d.artifact_id = a.id)",
            (sha256_hex,)).fetchone()[0])

    def disposed_shas(self) -> set[str]:
        return {str(r[0]) for r in self._q("SELECT sha256 FROM disposal")}

    def artifact_count(self) -> int:
        return int(self._q("SELECT count(*) FROM artifact").fetchone()[0])

    def all_artifacts(self) -> Iterator[Artifact]:
        """Every artifact, disposed ones included, in log order (one query)."""
        for row in self._q(f"{_ARTIFACT_SELECT} ORDER BY a.log_idx"):
            yield _artifact(row)

    def integrity_check(self) -> list[str]:
        """The engine's integrity check (SQLite ``PRAGMA integrity_check``):
        ``["ok"]`` or the problems."""
        return self.source.integrity_check()

    def effective_retention(self, aid: str, base: str) -> str:
        row = self._q(
            "SELECT max(retain_until) FROM retention WHERE artifact_id = ?", (aid,)).fetchone()
        return max(base, row[0]) if row[0] else base

    def disposable(self, now: datetime) -> list[Artifact]:
        """Artifacts whose retention has expired at ``now`` and that no hold covers."""
        now_text = format_time(now)
        holds = self.holds()
        out = []
        for row in self._q(
            f"{_ARTIFACT_SELECT} WHERE d.artifact_id IS NULL AND a.retain_until < ? "
            "ORDER BY a.log_idx", (now_text,)
        ):
            art = _artifact(row)
            if self.effective_retention(art.id, art.retain_until) >= now_text:
                continue
            if any(hold_covers(h.product, h.scope, art) for h in holds):
                continue
            out.append(art)
        return out

    # ------------------------------------------------------------------- log
    def log_entries(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """Raw leaves ``[start, end)`` in order."""
        for idx, leaf in self._q(
            "SELECT idx, leaf FROM log WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
        ):
            yield int(idx), bytes(leaf)

    def record(self, index: int) -> Record:
        row = self._q("SELECT leaf FROM log WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise NotFoundError(f"no log record at index {index} (log size {self.size()})")
        return parse_record(bytes(row[0]), index=index)

    def latest_checkpoint(self) -> tuple[int, bytes]:
        row = self._q(
            "SELECT size, note FROM checkpoint ORDER BY size DESC LIMIT 1"
        ).fetchone()
        if row is None:
            raise NotFoundError("no checkpoint has been signed yet")
        return int(row[0]), bytes(row[1])

    def checkpoint_at(self, size: int) -> bytes:
        row = self._q("SELECT note FROM checkpoint WHERE size = ?", (size,)
                                     ).fetchone()
        if row is None:
            raise NotFoundError(f"no signed checkpoint at size {size}")
        return bytes(row[0])

    def _merkle(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Hashes of leaf ranges ``[lo, hi)``, their stored nodes fetched in two queries.

        One round trip per table instead of one per node (~2·log2 n) keeps a proof at a
        10M-record log well under a millisecond.
        """
        plan = [merkle.subtrees(lo, hi) for lo, hi in ranges]
        wanted = {p for parts in plan for p in parts}
        leaves = [k for level, k in wanted if level == 0]
        inner = [x for p in wanted if p[0] > 0 for x in p]
        got: dict[tuple[int, int], bytes] = {}
        if leaves:
            for idx, h in self._q(_LEAVES_SQL[len(leaves)], leaves):
                got[0, idx] = bytes(h)
        if inner:
            for level, k, h in self._q(_NODES_SQL[len(inner) // 2], inner):
                got[level, k] = bytes(h)
        try:
            return [merkle.combine([got[p] for p in parts]) for parts in plan]
        except KeyError as exc:
            level, k = exc.args[0]
            raise StoreError(f"Merkle node ({level}, {k}) is missing from storage") from None

    def root_at(self, size: int) -> bytes:
        self._check_size(size)
        return self._merkle([(0, size)])[0]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"index {index} is not below tree size {size}")
        return self._merkle(merkle.inclusion_ranges(index, size))

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        self._check_size(size2)
        if not 0 < size1 <= size2:
            raise ValueError(f"need 0 < size1 <= size2, got {size1} and {size2}")
        return self._merkle(merkle.consistency_ranges(size1, size2))

    def proof_file(self, index: int, size: int | None = None) -> bytes:
        """A C2SP tlog-proof for leaf ``index`` under the signed checkpoint of ``size``.

        Without ``size``, the latest checkpoint covering the leaf is used.
        """
        if size is None:
            size, note = self.latest_checkpoint()
            if index >= size:
                raise NotFoundError(
                    f"record {index} is not yet covered by a checkpoint (latest covers "
                    f"{size}); run `depository checkpoint` or wait for the cadence"
                )
        else:
            note = self.checkpoint_at(size)
        return format_proof_file(index, self.inclusion_proof(index, size), note)

    def _check_size(self, size: int) -> None:
        n = self.size()
        if not 0 < size <= n:
            raise ValueError(f"tree size {size} is out of range (the log has {n} records)")

    # ---------------------------------------------------------- holds and state
    def holds(self, *, include_released: bool = False) -> list[Hold]:
        rows = self._q(
            "SELECT h.id, h.matter, h.reason, h.actor, h.product, h.scope, h.placed_idx, "
            "h.placed_time, r.hold_id IS NOT NULL FROM hold h "
            "LEFT JOIN hold_release r ON r.hold_id = h.id ORDER BY h.placed_idx"
        ).fetchall()
        out = [
            Hold(id=r[0], matter=r[1], reason=r[2], actor=r[3], product=r[4],
                 scope=json.loads(r[5]), placed_index=r[6], placed_time=r[7], released=bool(r[8]))
            for r in rows
        ]
        return out if include_released else [h for h in out if not h.released]

    def holds_covering(self, art: Artifact) -> list[Hold]:
        return [h for h in self.holds() if hold_covers(h.product, h.scope, art)]

    def governance_status(self) -> dict[str, Any]:
        rows = self._q(
            "SELECT log_idx, state, reason, actor, time FROM governance ORDER BY log_idx"
        ).fetchall()
        last = rows[-1] if rows else None
        return {
            "locked": bool(last and last[1] == "locked"),
            "reason": last[2] if last and last[1] == "locked" else None,
            "history": [
                {"log_index": r[0], "state": r[1], "reason": r[2], "actor": r[3], "time": r[4]}
                for r in rows
            ],
        }

    def lock_reason(self) -> str | None:
        """The committed governance lock's reason, or None (one indexed row)."""
        row = self._q(
            "SELECT state, reason FROM governance ORDER BY log_idx DESC LIMIT 1").fetchone()
        return str(row[1]) if row is not None and row[0] == "locked" else None

    def usage(self) -> dict[str, dict[str, int]]:
        """Live bytes and artifact counts per product (disposed artifacts excluded)."""
        out = {pid: {"bytes": 0, "artifacts": 0} for pid in self.products}
        for pid, b, n in self._q(
            "SELECT a.product, sum(a.size), count(*) FROM artifact a WHERE NOT EXISTS "
            "(SELECT 1 FROM disposal d WHERE d.artifact_id = a.id) GROUP BY a.product"
        ):
            out[pid] = {"bytes": int(b), "artifacts": int(n)}
        return out

    def usage_since(self, artifact_idx: int, disposal_idx: int
                    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Rows added since the given log indexes (``artifact`` and ``disposal`` are
        append-only, in log order), read in one snapshot: per product (bytes, count,
        largest size, last log index) of new artifacts, and (bytes, count, last log index)
        of new disposals."""
        c = self.conn()
        c.execute(self.dialect.snapshot_begin)
        try:
            rows = c.execute(self.dialect.sql(
                "SELECT product, sum(size), count(*), max(size), max(log_idx) FROM artifact "
                "WHERE log_idx > ? GROUP BY product"), (artifact_idx,)).fetchall()
            drows = c.execute(self.dialect.sql(
                "SELECT a.product, sum(a.size), count(*), max(d.log_idx) FROM disposal d "
                "JOIN artifact a ON a.id = d.artifact_id WHERE d.log_idx > ? "
                "GROUP BY a.product"), (disposal_idx,)).fetchall()
        finally:
            c.execute("COMMIT")
        return rows, drows

    # ----------------------------------------------------------------- tokens
    def tokens(self) -> list[Token]:
        return [_token(r) for r in self._q(f"{_TOKEN_SELECT} ORDER BY t.issued_idx")]

    def authenticate(self, secret: str, now: datetime) -> Token | None:
        """The live token for this secret at ``now``, or None (unknown, expired, revoked).

        The token row is honoured only if the log explains it (its ``token.issue``
        record, and its ``token.revoke`` if revoked); raises
        :class:`~depository.store._authority.UnexplainedRowError` if not."""
        row = self._q(f"{_TOKEN_SELECT} WHERE t.secret_sha256 = ?",
                      (token_secret_hash(secret),)).fetchone()
        if row is None:
            return None
        tok = _token(row)
        found = self._token_row(tok.id)
        if found is None:
            return None  # gone since the first read
        grant = explain_token(tok.id, found, self._leaf_at)
        if grant.revoked is not None:
            return None
        return tok if tok.valid_at(now) else None

    def _token_row(self, token_id: str) -> TokenRow | None:
        return token_row_of(self._q(TOKEN_ROW_SQL, (token_id,)).fetchone())

    def _leaf_at(self, idx: int) -> bytes | None:
        row = self._q("SELECT leaf FROM log WHERE idx = ?", (idx,)).fetchone()
        return None if row is None else bytes(row[0])

    def token_generation(self) -> int:
        """Moves with every token issued or revoked by any process (two indexed maxima)."""
        row = self._q(
            "SELECT (SELECT max(issued_idx) FROM token), "
            "(SELECT max(log_idx) FROM token_revoke)").fetchone()
        return int(row[0] or 0) + int(row[1] or 0)

    # ------------------------------------------------------------ tile ranges
    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """``log.leaf_hash`` for indexes ``[start, end)`` (level 0 of the tree)."""
        return [bytes(r[0]) for r in self._q(
            "SELECT leaf_hash FROM log WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))]

    def node_hashes(self, level: int, k0: int, k1: int) -> list[bytes]:
        """Perfect subtree hashes ``node(level, k)`` for ``k`` in ``[k0, k1)``, level >= 1."""
        return [bytes(r[0]) for r in self._q(
            "SELECT hash FROM node WHERE level = ? AND k >= ? AND k < ? ORDER BY k",
            (level, k0, k1))]

    def leaves(self, start: int, end: int) -> list[bytes]:
        return [bytes(r[0]) for r in self._q(
            "SELECT leaf FROM log WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))]

    def records_containing(self, needle: bytes, start: int) -> tuple[list[tuple[int, bytes]],
                                                                      int]:
        """Leaves at or after ``start`` containing ``needle``; and the log size scanned to."""
        end = self.size()
        contains = self.dialect.contains.format(col="leaf")
        found = [(int(i), bytes(leaf)) for i, leaf in self._q(
            f"SELECT idx, leaf FROM log WHERE idx >= ? AND idx < ? AND {contains} "
            "ORDER BY idx", (start, end, needle))]
        return found, end


_ARTIFACT_SELECT = (
    "SELECT a.id, a.product, a.name, a.sha256, a.size, a.media_type, a.metadata, "
    "a.provenance, coalesce((SELECT max(r.retain_until) FROM retention r WHERE "
    "r.artifact_id = a.id AND r.retain_until > a.retain_until), a.retain_until), a.storage, "
    "a.actor, a.created, a.log_idx, d.artifact_id IS NOT NULL "
    "FROM artifact a LEFT JOIN disposal d ON d.artifact_id = a.id"
)


_TOKEN_SELECT = (
    "SELECT t.id, t.role, t.product, t.expires, t.note, t.actor, t.issued_idx, "
    "t.issued_time, r.token_id IS NOT NULL FROM token t "
    "LEFT JOIN token_revoke r ON r.token_id = t.id"
)


def _token(row: Sequence[Any]) -> Token:
    return Token(id=row[0], role=row[1], product=row[2], expires=row[3], note=row[4],
                 actor=row[5], issued_index=row[6], issued_time=row[7], revoked=bool(row[8]))


def _artifact(row: Sequence[Any]) -> Artifact:
    return Artifact(
        id=row[0], product=row[1], name=row[2], sha256=row[3], size=row[4], media_type=row[5],
        metadata=json.loads(row[6]), provenance=json.loads(row[7]), retain_until=row[8],
        storage=row[9], actor=row[10], created=row[11], log_index=row[12],
        disposed=bool(row[13]),
    )
