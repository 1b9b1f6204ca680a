"""Offline replay of a whole store directory (``verify store``).

The auditor points this at a copy of ``STORE/`` and the verifier key they trust. Nothing
here imports the store package: every rule is re-derived from the log's records, and
every other table, file and signature is checked against them.

1. **Records.** Every leaf is the canonical bytes of a valid record whose ``seq`` is its
   index, indexes run 0..n-1 without gaps, the ``leaf_hash`` column is its RFC 6962 leaf
   hash, record 0 is ``store.init`` and names the verifier key the auditor trusts.
2. **Tree and checkpoints.** The tree is replayed leaf by leaf; every stored ``node`` row
   must equal the recomputed perfect subtree (and no other rows exist), every checkpoint
   row's note must verify against the trusted key and the init record's origin, and its
   root must equal both the row's root and the replayed root at its size. Checkpoints
   beyond the log mean a truncated log; records beyond the last checkpoint are unsigned.
3. **Saved checkpoint** (``since_checkpoint``): the auditor's earlier checkpoint must be
   a prefix of this log (a restored older copy, or a rewritten history, is caught).
4. **Derived tables** are re-derived from the records and compared row by row.
5. **Semantics**: retention is only ever extended; no disposal before retention ran out
   or under an unreleased legal hold; names are written once; the put's retention meets
   the store's minimum; no state-changing write under a governance lock; every refusal
   record names what the log says was stored (:data:`CHECK_REFUSAL`).
6. **Authority** (:mod:`depository.tlog.authority`): every record by a ``token:<id>``
   actor was caused by a token an earlier, itself authorized, record issued, not revoked
   or expired at that record, whose role and product permit it; token issues and
   revocations meet their preconditions.
7. **Blobs**: every live artifact's bytes hash to its record; disposed bytes are gone;
   the ``inline_blob`` table holds nothing unreferenced.
8. **SQLite** ``PRAGMA integrity_check`` and the schema fingerprint frozen in record 0.

With ``jobs > 1`` the per-leaf work (canonical parsing, leaf hashing, subtree hashing)
and blob hashing run in worker processes over aligned chunks of the log; the result is
identical to ``jobs=1``.

Only the standard library, ``cryptography`` and ``rfc8785`` are used (via the sibling
verifier modules).
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import os
import re
import sqlite3
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from depository.tlog import merkle, safejson
from depository.tlog.authority import (
    SEQUENCER_ELECTED,
    TOKEN_ACTOR,
    Grant,
    election_problem,
    issue_problem,
    refusal,
    token_id_of,
)
from depository.tlog.checkpoint import verify_checkpoint
from depository.tlog.errors import (
    MalformedInputError,
    RecordError,
    StoreVerificationError,
    VerificationError,
)
from depository.tlog.note import parse_verifier_key
from depository.tlog.record import (
    Record,
    canonical_json,
    check_record_json,
    parse_record,
    parse_record_json,
    quick_encode,
)
from depository.verifier.files import InputFileError, hash_file

__all__ = [
    "CHECKS",
    "ENGINE_NATIVE",
    "ENGINE_PYTHON",
    "Finding",
    "StoreResult",
    "engine",
    "store_result",
    "verify_store",
]

DB_NAME = "depository.db"
OBJECTS_DIR = "objects"

CHUNK_LEVEL = 12
"""Chunks of the log are ``2**CHUNK_LEVEL`` leaves, aligned, so each is a perfect subtree."""

MAX_FINDINGS = 1000
"""Findings kept in a result (all are counted in ``findings_total``)."""

_MISSING_LEAF = b"\xff" * 32  # stands in for a missing record so the replay can go on
_HUGE_GAP = 1_000_000

# --------------------------------------------------------------------------- check names

CHECK_RECORD = "record"
CHECK_LOG = "log"
CHECK_LEAF_HASH = "leaf-hash"
CHECK_INIT = "init"
CHECK_KEY = "trusted-key"
CHECK_CHECKPOINT = "checkpoint"
CHECK_TRUNCATED = "truncated"
CHECK_UNSIGNED = "unsigned-tail"
CHECK_NODE = "node"
CHECK_SINCE = "since-checkpoint"
CHECK_ANCHOR = "anchor"
CHECK_DERIVED = "derived"
CHECK_ARTIFACT_ID = "artifact-id"
CHECK_NAME = "name-unique"
CHECK_RETENTION = "retention"
CHECK_HOLD = "hold"
CHECK_DISPOSAL = "disposal"
CHECK_GOVERNANCE = "governance"
CHECK_BLOB = "blob"
CHECK_INTEGRITY = "sqlite-integrity"
CHECK_SCHEMA = "schema"
CHECK_AUTHORITY = "authority"
CHECK_REFUSAL = "refusal"

CHECKS = (
    CHECK_RECORD, CHECK_LOG, CHECK_LEAF_HASH, CHECK_INIT, CHECK_KEY, CHECK_CHECKPOINT,
    CHECK_TRUNCATED, CHECK_UNSIGNED, CHECK_NODE, CHECK_SINCE, CHECK_ANCHOR, CHECK_DERIVED,
    CHECK_ARTIFACT_ID, CHECK_NAME, CHECK_RETENTION, CHECK_HOLD, CHECK_DISPOSAL,
    CHECK_GOVERNANCE, CHECK_BLOB, CHECK_INTEGRITY, CHECK_SCHEMA, CHECK_AUTHORITY,
    CHECK_REFUSAL,
)
"""Every value :attr:`Finding.check` can take."""


# --------------------------------------------------------------------------- engines

ENGINE_NATIVE = "native (depository.verifier._cverify)"
ENGINE_PYTHON = "pure Python"


def _load_native() -> Any:
    """The C twin of the per-leaf work, or None: absent, failed to import, or disabled with
    ``DEPOSITORY_NATIVE=0`` (the pure-Python code is the specification either way)."""
    if os.environ.get("DEPOSITORY_NATIVE", "").strip() == "0":
        return None
    try:
        from depository.verifier import _cverify
    except ImportError:
        return None
    _cverify.set_max_depth(safejson.MAX_DEPTH)
    return _cverify


_NATIVE = _load_native()


def engine(native: bool | None = None) -> str:
    """The engine a replay uses: ``native`` True/False asks for one (True falls back to
    pure Python when the extension is not available), None takes the default."""
    use = _NATIVE is not None if native is None else bool(native) and _NATIVE is not None
    return ENGINE_NATIVE if use else ENGINE_PYTHON


@dataclass
class Finding:
    """One problem: which check failed, what is wrong and what it means, and where."""

    check: str
    message: str
    index: int | None = None
    artifact_id: str | None = None
    table: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"[{self.check}] {self.message}"


@dataclass
class StoreResult:
    """What a store replay found.

    ``checkpoints`` counts the signed checkpoints that verified and matched the replay;
    ``latest_checkpoint`` is the largest of them (save it and pass it as
    ``since_checkpoint`` next time). ``checks`` describes each check that passed.
    """

    ok: bool
    size: int
    checkpoints: int
    artifacts: int
    checks: list[str]
    findings: list[Finding]
    latest_checkpoint: bytes | None
    latest_checkpoint_size: int = 0
    origin: str | None = None
    verifier_key: str | None = None
    disposed: int = 0
    blobs_checked: int = 0
    findings_total: int = 0
    engine: str = ENGINE_PYTHON

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": self.ok,
            "engine": self.engine,
            "size": self.size,
            "checkpoints": self.checkpoints,
            "artifacts": self.artifacts,
            "disposed": self.disposed,
            "blobs_checked": self.blobs_checked,
            "origin": self.origin,
            "verifier_key": self.verifier_key,
            "latest_checkpoint_size": self.latest_checkpoint_size,
            "latest_checkpoint": (
                self.latest_checkpoint.decode("utf-8", "replace")
                if self.latest_checkpoint is not None else None
            ),
            "checks": list(self.checks),
            "findings": [f.to_json() for f in self.findings],
            "findings_total": self.findings_total,
        }


# --------------------------------------------------------------------------- public API


def verify_store(
    path: str | Path,
    verifier_keys: Sequence[str],
    *,
    since_checkpoint: bytes | None = None,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
    check_blobs: bool = True,
    native: bool | None = None,
) -> None:
    """Replay the store at ``path``; raise :class:`StoreVerificationError` if anything fails.

    The message lists the first findings; use :func:`store_result` for all of them.
    """
    res = store_result(
        path, verifier_keys, since_checkpoint=since_checkpoint, jobs=jobs,
        progress=progress, check_blobs=check_blobs, native=native,
    )
    if not res.ok:
        shown = res.findings[:10]
        more = res.findings_total - len(shown)
        text = "; ".join(str(f) for f in shown)
        if more > 0:
            text += f"; and {more} more"
        raise StoreVerificationError(
            f"store {path} failed verification ({res.findings_total} problems): {text}"
        )


def store_result(
    path: str | Path,
    verifier_keys: Sequence[str],
    *,
    since_checkpoint: bytes | None = None,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
    check_blobs: bool = True,
    anchors: Sequence[bytes] | None = None,
    blob_hasher: Callable[[str], str | None] | None = None,
    blob_exists: Callable[[str], bool] | None = None,
    native: bool | None = None,
) -> StoreResult:
    """Replay the store at ``path`` against the trusted ``verifier_keys``.

    ``anchors`` are signed checkpoints the store wrote to WORM storage (each must be
    consistent with the replayed log; ``[]`` means anchors were asked for and none found,
    which is itself a finding). ``blob_hasher``/``blob_exists`` read bytes kept outside
    ``objects/`` (an S3 backend): SHA-256 hex of the object, or None when it is missing.
    ``native`` picks the engine (:func:`engine`); both give the same findings.

    Raises :class:`FileNotFoundError` when there is no ``depository.db``,
    :class:`MalformedInputError` for unusable keys or ``jobs``, and
    :class:`StoreVerificationError` when the database cannot be read at all. Every
    problem found in a readable store is a :class:`Finding` in the result.
    """
    root = Path(path)
    db = root / DB_NAME
    if not db.is_file():
        raise FileNotFoundError(f"no store at {root}: {DB_NAME} is missing")
    if isinstance(verifier_keys, str | bytes):
        raise MalformedInputError("verifier_keys must be a sequence of key strings")
    keys = [k.strip() for k in verifier_keys if k.strip()]
    if not keys:
        raise MalformedInputError("no trusted verifier key given")
    for k in keys:
        parse_verifier_key(k)
    if not isinstance(jobs, int) or jobs < 1:
        raise MalformedInputError(f"jobs must be a positive integer, got {jobs!r}")
    conn = _open_ro(db)
    try:
        use_native = engine(native) == ENGINE_NATIVE
        for fast in ((True, False) if use_native else (False,)):
            rp = _Replay(root, db, conn, keys, since_checkpoint, jobs, progress, check_blobs)
            rp.native = use_native
            rp.fast = fast
            rp.anchors = None if anchors is None else [bytes(a) for a in anchors]
            rp.blob_hasher = blob_hasher
            rp.blob_exists = blob_exists
            try:
                return rp.run()
            except _Unconfirmed:
                # Something differs from what the records imply (or could not be shown
                # not to): replay again comparing row by row, which finds and words it.
                conn.execute("ROLLBACK")
        raise AssertionError("unreachable: the row-by-row replay always returns")
    except sqlite3.Error as exc:
        raise StoreVerificationError(
            f"store {root}: the database could not be read ({exc}); it is damaged or not a "
            "Depository store"
        ) from exc
    finally:
        conn.close()


# --------------------------------------------------------------------------- SQLite access


def _open_ro(db: Path) -> sqlite3.Connection:
    """Open read-only; fall back to ``immutable=1`` (e.g. a copy on read-only media)."""
    base = "file:" + quote(str(db.absolute()))
    last: Exception | None = None
    for mode in ("mode=ro", "immutable=1"):
        try:
            conn = sqlite3.connect(f"{base}?{mode}", uri=True, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            last = exc
            continue
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            conn.execute("PRAGMA query_only=1")
            # Pages read through a memory map, not a pread() each (the replay reads the whole
            # file, integrity_check again); SQLite caps it at its compiled maximum.
            conn.execute(f"PRAGMA mmap_size={os.environ.get('XMMAP', '1099511627776')}")
        except sqlite3.Error as exc:
            conn.close()
            last = exc
            continue
        return conn
    raise StoreVerificationError(f"cannot open {db} read-only as a SQLite database: {last}")


_WORKER_CONNS: dict[tuple[int, str], sqlite3.Connection] = {}


def _worker_conn(db: str) -> sqlite3.Connection:
    key = (os.getpid(), db)
    conn = _WORKER_CONNS.get(key)
    if conn is None:
        conn = _open_ro(Path(db))
        _WORKER_CONNS[key] = conn
    return conn


def _schema_fingerprint(conn: sqlite3.Connection) -> str:
    """SHA-256 over the stored definitions of every table, index and trigger.

    The same algorithm the store hashes into ``store.init`` (its ``sql_schema_sha256``).
    """
    rows = conn.execute(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master "
        "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
    ).fetchall()
    h = hashlib.sha256()
    for row in rows:
        h.update("\x1f".join(str(x) for x in row).encode() + b"\x1e")
    return h.hexdigest()


def _integrity(conn: sqlite3.Connection) -> list[str]:
    return [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]


def _integrity_worker(db: str) -> list[str]:
    return _integrity(_worker_conn(db))


def _open_native(db: Path) -> Any:
    """The native engine's own read-only connection (``_cverify.Db``), or None when the
    extension is absent or cannot read the file (the Python scan then does the work)."""
    if _NATIVE is None:
        return None
    base = "file:" + quote(str(db.absolute()))
    for mode in ("mode=ro", "immutable=1"):
        try:
            return _NATIVE.Db(f"{base}?{mode}")
        except OSError:
            continue
    return None


_WORKER_NATIVE: dict[tuple[int, str], Any] = {}


def _worker_native(db: str) -> Any:
    key = (os.getpid(), db)
    if key not in _WORKER_NATIVE:
        _WORKER_NATIVE[key] = _open_native(Path(db))
    return _WORKER_NATIVE[key]


def _meta_digest_worker(db: str, key: bytes, n: int) -> tuple[int, int, int] | None:
    return _meta_table_digest(_worker_conn(db), _worker_native(db), key, n)


# --------------------------------------------------------------------------- chunk scan

_StackEntry = tuple[int, bytes, bool]  # (level, hash, tainted: a problem below is reported)


@dataclass
class _Chunk:
    """One aligned chunk of the log, scanned: records, findings, right-edge stacks."""

    start: int
    end: int
    items: list[_Item]
    findings: list[Finding]
    stacks: dict[int, list[_StackEntry]]
    final: list[_StackEntry]
    nodes_checked: int = 0
    # Set by the native engine: the chunk's artifact rows were confirmed to be exactly
    # those its records imply (None: not tried or not confirmed): (artifact rows, the
    # artifact_meta rows its records imply, their keyed digest, see _meta_digest).
    confirmed: tuple[int, int, int] | None = None
    # Set by the native engine's own scan: the number of inline puts whose inline_blob row
    # hashes to the record, when those are all the chunk's inline_blob rows and none is
    # missing (None: not shown; _check_blobs then hashes every row itself).
    blobs: int | None = None


def _scan_chunk_worker(db: str, start: int, end: int, level: int, sizes: Sequence[int],
                       ctx: _Context, native: bool = False, confirm: bool = False,
                       key: bytes = b"") -> _Chunk:
    ch = _scan_chunk(_worker_conn(db), start, end, level, sizes, ctx, native, confirm,
                     key, _worker_native(db) if native and confirm else None)
    if ch.confirmed is not None:
        # The rows are confirmed here: the parent's _put needs only the artifact's id,
        # name, digest, size and storage, so pickle no more than that (runs of such puts
        # packed into one item each, when the native engine is there to unpack them).
        ch.items = [_compact(item) if item[1] == "artifact.put" and len(item[4][0]) > 10
                    else item for item in ch.items]
        if _NATIVE is not None:
            ch.items = _NATIVE.pack_puts(ch.items)
    return ch


_PACKED = "*puts"  # a run of compact puts packed for the pipe (_cverify.pack_puts)
_PACKED_ENTRY = struct.Struct(">Q32sBq")


def _unpack(item: Any, start: int, name_of: Callable[[int], tuple[str, str, str]]
            ) -> Iterator[_Item]:
    """The compact put items of a packed run, from entry ``start`` (the name, which only a
    finding's message needs, read back from the log)."""
    _first, _, aids, products, blob, sizes = item
    for j in range(start, len(aids)):
        idx, digest, file, _ = _PACKED_ENTRY.unpack_from(blob, j * _PACKED_ENTRY.size)
        row = (aids[j], None, name_of(idx)[0], digest.hex(), sizes[j], None, None, None, None,
               "file" if file else "inline")
        yield (idx, "artifact.put", products[j], "", (row, ()), None)


def _compact(item: _Item) -> _Item:
    row = item[4][0]
    small = (row[0], None, row[2], row[3], row[4], None, None, None, None, row[9])
    return (item[0], item[1], item[2], item[3], (small, ()), item[5])


def _scan_chunk(
    conn: sqlite3.Connection, start: int, end: int, level: int, sizes: Sequence[int],
    ctx: _Context, native: bool = False, confirm: bool = False, key: bytes = b"",
    cdb: Any = None,
) -> _Chunk:
    """:func:`_scan_chunk_py`, through the native engine when asked for and available.

    The native scan only ever confirms: a chunk with anything it does not prove sound (a
    gap, a leaf_hash or node mismatch) is scanned again by the pure-Python code, which
    finds and words every problem; a leaf it does not prove canonical is parsed by Python.
    With ``confirm`` the chunk's derived rows are confirmed too (``key``: the replay's
    digest key, :func:`_meta_digest`); ``cdb`` is the native engine's own connection, which
    reads the leaves and artifact rows without a Python object per row.
    """
    if native and _NATIVE is not None:
        got = None
        if cdb is not None and confirm:
            got = _scan_chunk_db(_NATIVE, cdb, conn, start, end, level, sizes, ctx, key)
            if got is not None:
                return got
        got = _scan_chunk_native(_NATIVE, conn, start, end, level, sizes, ctx)
        if got is None:
            got = _scan_chunk_py(conn, start, end, level, sizes, ctx)
        if confirm:
            got.confirmed = _confirm_rows(conn, got, key)
        return got
    return _scan_chunk_py(conn, start, end, level, sizes, ctx)


_ARTIFACT_COLUMNS = ("log_idx, id, product, name, sha256, size, media_type, metadata, "
                     "provenance, retain_until, storage, actor, created, log_idx")
_META_FIELDS = "product, key, value, log_idx"
_MOD256 = 1 << 256
_I64 = (1 << 64) - 1


def _enc(v: Any) -> bytes:
    """One value of a metadata row, unambiguously (the C twin's ``row_digest``): text
    ``t``, integer ``i`` (64-bit two's complement), anything else a tag of its own."""
    if type(v) is str:
        b = v.encode("utf-8", "surrogatepass")
        return b"t" + len(b).to_bytes(8, "big") + b
    if type(v) is int:
        return b"i" + (v & _I64).to_bytes(8, "big")
    if isinstance(v, bytes):
        return b"b" + len(v).to_bytes(8, "big") + v
    if v is None:
        return b"n" + bytes(8)
    b = repr(v).encode()
    return b"f" + len(b).to_bytes(8, "big") + b


def _meta_digest(key: bytes, rows: Iterable[Sequence[Any]]) -> tuple[int, int]:
    """(rows, keyed multiset digest) of ``artifact_meta`` rows (product, key, value, log_idx):
    the sum mod 2**256 of SHA-256(key || each value encoded). With a key the replay draws at
    random (``os.urandom``) after the store was written, a different set of rows gives the
    same sum with negligible probability (a keyed additive multiset hash), so both sides can
    be folded in any order: the records' rows chunk by chunk, the table in one sequential
    scan with no lookup by key."""
    total = count = 0
    keyed = hashlib.sha256(key)  # 64 bytes: the first block, hashed once
    for row in rows:
        h = keyed.copy()
        h.update(b"".join([_enc(v) for v in row]))
        total += int.from_bytes(h.digest(), "big")
        count += 1
    return count, total % _MOD256


def _meta_table_digest(conn: sqlite3.Connection, cdb: Any, key: bytes, n: int
                       ) -> tuple[int, int, int] | None:
    """(rows with log_idx < n, their digest, rows at log_idx >= n) of table artifact_meta,
    natively when ``cdb`` is given; None when it cannot be read."""
    try:
        if cdb is not None:
            rows, digest, beyond = cdb.meta_digest(key, n)
            return rows, int.from_bytes(digest, "big"), beyond
        below: list[Any] = []
        beyond = 0
        for row in conn.execute(f"SELECT {_META_FIELDS} FROM artifact_meta"):
            if type(row[3]) is int and row[3] >= n:
                beyond += 1
            else:
                below.append(row)
        rows, d = _meta_digest(key, below)
        return rows, d, beyond
    except (sqlite3.Error, OSError):  # a table dropped or altered: the row-by-row path words it
        return None


def _confirm_rows(conn: sqlite3.Connection, ch: _Chunk, key: bytes,
                  only: Sequence[_Item] | None = None) -> tuple[int, int, int] | None:
    """Whether the ``artifact`` rows with log_idx in the chunk are exactly the rows its
    put records imply: (artifact rows, metadata rows implied, their digest), or None.
    ``only``: compare just these puts' rows (the others were confirmed natively). The
    metadata rows are confirmed for the whole table at the end (:func:`_meta_digest`), the
    row counts too, and any doubt sends the whole replay to the row-by-row comparison
    (which words the findings)."""
    want = []
    meta: list[tuple[Any, ...]] = []
    for item in (ch.items if only is None else only):
        if item[1] == "artifact.put":
            row, meta_rows = item[4]
            want.append((row[12], *row))
            for _aid, product, k, value in meta_rows:
                meta.append((product, k, value, row[12]))
    try:
        if only is None:
            got = conn.execute(
                f"SELECT {_ARTIFACT_COLUMNS} FROM artifact WHERE log_idx >= ? AND log_idx < ? "
                "ORDER BY log_idx", (ch.start, ch.end)).fetchall()
        else:
            got = [conn.execute(f"SELECT {_ARTIFACT_COLUMNS} FROM artifact WHERE log_idx = ?",
                                (w[0],)).fetchone() for w in want]
        if got != want:
            return None
    except sqlite3.Error:  # a table dropped or altered: the row-by-row path words it
        return None
    count, digest = _meta_digest(key, meta)
    return len(want), count, digest


def _check_levels(nat: Any, conn: sqlite3.Connection, start: int, count: int,
                  hashes: bytes, cdb: Any = None) -> tuple[list[bytes], int] | None:
    """Every perfect subtree of the chunk against the stored node rows: (levels, nodes
    checked), or None when any differs (compared in C with the native connection)."""
    checked = 0
    levels: list[bytes] = nat.nodes(hashes, count)
    for lv, want in enumerate(levels, 1):
        lo, m = start >> lv, len(want) // 32
        if cdb is not None:
            if not cdb.nodes_equal(lv, lo, want):
                return None
            checked += m
            continue
        got = conn.execute(
            "SELECT hash FROM node WHERE level = ? AND k >= ? AND k < ? ORDER BY k",
            (lv, lo, lo + m),
        ).fetchall()
        try:
            if len(got) != m or b"".join([r[0] for r in got]) != want:
                return None
        except TypeError:  # a hash that is not a blob
            return None
        checked += m
    return levels, checked


def _stack_at(allh: Sequence[bytes], start: int, size: int) -> list[_StackEntry]:
    """The chunk-local right-edge stack of the tree of ``size`` leaves."""
    out: list[_StackEntry] = []
    off = 0
    width = size - start
    for lv in range(width.bit_length() - 1, -1, -1):
        if width >> lv & 1:
            k = off >> lv
            out.append((lv, allh[lv][32 * k:32 * k + 32], False))
            off += 1 << lv
    return out


def _scan_chunk_db(
    nat: Any, cdb: Any, conn: sqlite3.Connection, start: int, end: int, level: int,
    sizes: Sequence[int], ctx: _Context, key: bytes,
) -> _Chunk | None:
    """The fastest path of :func:`_scan_chunk`: the native engine reads the chunk's leaves
    and artifact rows itself (``_cverify.Db.chunk``), proves each put sound and its row
    equal, folds its metadata rows into the digest; Python prepares the other records and
    compares their rows. None: let the slower paths decide."""
    products, min_retention = ctx
    spec = (products, None if min_retention is None else min_retention // _MICROSECOND,
            TOKEN_ACTOR)
    try:
        got = cdb.chunk(start, end, spec, key)
    except (OSError, ValueError):
        return None
    if got is None:
        return None
    values, hashes, leaves, ok, artifacts, skipped, meta_count, meta_sum, blobs = got
    count = end - start
    lv = _check_levels(nat, conn, start, count, hashes, cdb)
    if lv is None:
        return None
    levels, checked = lv
    findings: list[Finding] = []
    others: list[_Item] = []  # puts Python prepared: their rows are compared here
    if leaves:
        items, prepared = _finish_items(values, lambda k: (start + k, leaves[k]), ctx,
                                        findings)
        others = [item for item in prepared if item[1] == "artifact.put"]
    else:
        items = values  # every record an item made in C (no leaf left for Python)
    allh = [hashes, *levels]
    stacks = {sz: _stack_at(allh, start, sz) for sz in sizes if start < sz <= end}
    ch = _Chunk(start, end, items, findings, stacks, _stack_at(allh, start, end), checked)
    if blobs >= 0 and not any(item[4][0][9] == "inline" for item in others):
        ch.blobs = blobs
    if ok and skipped == [item[0] for item in others]:
        rest = _confirm_rows(conn, ch, key, others) if others else (0, 0, 0)
        if rest is not None:
            ch.confirmed = (artifacts + rest[0], meta_count + rest[1],
                            (int.from_bytes(meta_sum, "big") + rest[2]) % _MOD256)
    return ch


def _scan_chunk_native(
    nat: Any, conn: sqlite3.Connection, start: int, end: int, level: int,
    sizes: Sequence[int], ctx: _Context,
) -> _Chunk | None:
    """The fast path of :func:`_scan_chunk`; None: let the pure-Python scan decide."""
    count = end - start
    rows = conn.execute(
        "SELECT idx, leaf, leaf_hash FROM log WHERE idx >= ? AND idx < ? ORDER BY idx",
        (start, end),
    ).fetchall()
    # idx is the INTEGER PRIMARY KEY: count rows from start to end - 1 leave no gap.
    if len(rows) != count or (count and (rows[0][0] != start or rows[-1][0] != end - 1)):
        return None
    products, min_retention = ctx
    spec = (products, None if min_retention is None else min_retention // _MICROSECOND,
            TOKEN_ACTOR)
    # values[i]: the replay item of a sound artifact.put (what _prepare returns), the
    # decoded record, or None (not proven canonical: Python parses it).
    values, hashes, bad = nat.scan(rows, spec)
    if bad:
        return None
    lv = _check_levels(nat, conn, start, count, hashes)
    if lv is None:
        return None
    levels, checked = lv
    allh = [hashes, *levels]
    findings: list[Finding] = []
    if len(values) != len(rows):
        raise ValueError("the native scan did not return one value per row")
    items, _ = _finish_items(values, lambda k: (rows[k][0], rows[k][1]), ctx, findings)
    stacks = {sz: _stack_at(allh, start, sz) for sz in sizes if start < sz <= end}
    return _Chunk(start, end, items, findings, stacks, _stack_at(allh, start, end), checked)


_MICROSECOND = timedelta(microseconds=1)


def _finish_items(values: Sequence[Any], record_at: Callable[[int], tuple[int, bytes]],
                  ctx: _Context, findings: list[Finding]) -> tuple[list[_Item], list[_Item]]:
    """The replay items of a chunk from the native scan's values: an item it made is kept
    as it is; a record it decoded (or left as None: not proven canonical) is checked (or
    parsed) and prepared here, ``record_at(k)`` giving its (index, leaf). Returns (every
    item, the items prepared here)."""
    items: list[_Item] = []
    prepared: list[_Item] = []
    prepare = _prepare
    for k, value in enumerate(values):
        if type(value) is tuple:
            items.append(value)
            continue
        idx, leaf = record_at(k)
        rec: dict[str, Any] | None
        try:
            rec = (parse_record_json(leaf, index=idx) if value is None
                   else check_record_json(value, index=idx))
        except RecordError as exc:
            findings.append(_record_finding(idx, leaf, exc))
            continue
        item = prepare(rec, leaf, ctx, findings)
        if item is not None:
            items.append(item)
            prepared.append(item)
    return items, prepared


def _record_finding(idx: int, leaf: bytes, exc: RecordError) -> Finding:
    hint, aid = _leaf_hint(leaf)
    msg = str(exc)
    prefix = f"record {idx}: "
    if msg.startswith(prefix):
        msg = msg[len(prefix):]
    return Finding(
        CHECK_RECORD,
        f"record {idx}{hint}: {msg}; the store never writes such a record, so its "
        "bytes were edited (or records were moved)",
        index=idx, artifact_id=aid, table="log",
    )


def _scan_chunk_py(
    conn: sqlite3.Connection, start: int, end: int, level: int, sizes: Sequence[int],
    ctx: _Context,
) -> _Chunk:
    """Parse and hash leaves ``[start, end)``, rebuild their subtrees, check node rows,
    and prepare each record for the (stateful) replay of the derived state.

    ``start`` is a multiple of ``2**level`` and ``end - start <= 2**level``, so every node
    completed here lies inside the chunk. ``sizes`` are tree sizes in ``(start, end]``
    whose right-edge stack (local to the chunk) the caller needs for a root.
    """
    findings: list[Finding] = []
    items: list[_Item] = []
    stored: dict[int, dict[int, bytes]] = {}
    for lv in range(1, level + 1):
        lo, hi = start >> lv, end >> lv
        if hi > lo:
            stored[lv] = {
                int(k): bytes(h) for k, h in conn.execute(
                    "SELECT k, hash FROM node WHERE level = ? AND k >= ? AND k < ?",
                    (lv, lo, hi),
                )
            }
    want = set(sizes)
    stacks: dict[int, list[_StackEntry]] = {}
    stack: list[_StackEntry] = []
    checked = 0
    node = merkle._node

    def push(idx: int, lh: bytes, tainted: bool) -> None:
        nonlocal checked
        lv = 0
        h = lh
        t = tainted
        while stack and stack[-1][0] == lv:
            _, left, left_t = stack.pop()
            h = node(left, h)
            lv += 1
            below = t or left_t
            k = idx >> lv
            got = stored.get(lv, {}).pop(k, None)
            checked += 1
            lo, hi = k << lv, (k + 1) << lv
            if got is None:
                findings.append(Finding(
                    CHECK_NODE,
                    f"node table has no row for the subtree over records {lo}..{hi - 1} "
                    f"(level {lv}, k {k}): it was deleted, so proofs over these records "
                    "cannot be served",
                    index=lo, table="node",
                ))
                t = True
            elif got != h:
                if not below:
                    findings.append(Finding(
                        CHECK_NODE,
                        f"node table: the stored hash of the subtree over records "
                        f"{lo}..{hi - 1} (level {lv}, k {k}) is {got.hex()[:16]}…, but the "
                        f"records hash to {h.hex()[:16]}…: a record in that range was "
                        "changed after it was written (leaf and leaf_hash edited together), "
                        "or the node row was edited",
                        index=lo, table="node",
                    ))
                t = True
            else:
                t = below
        stack.append((lv, h, t))
        if idx + 1 in want:
            stacks[idx + 1] = list(stack)

    def gap(first: int, last: int) -> None:
        what = f"record {first} is" if first == last else f"records {first}..{last} are"
        findings.append(Finding(
            CHECK_LOG,
            f"{what} missing from the log (indexes must run 0..n-1 without gaps): records "
            "were deleted",
            index=first, table="log",
        ))
        for i in range(first, last + 1):
            push(i, _MISSING_LEAF, True)

    pos = start
    for idx, leaf_raw, col in conn.execute(
        "SELECT idx, leaf, leaf_hash FROM log WHERE idx >= ? AND idx < ? ORDER BY idx",
        (start, end),
    ):
        if idx > pos:
            gap(pos, idx - 1)
        pos = idx + 1
        leaf = bytes(leaf_raw) if not isinstance(leaf_raw, bytes) else leaf_raw
        lh = merkle.leaf_hash(leaf)
        tainted = False
        try:
            rec = parse_record_json(leaf, index=idx)
        except RecordError as exc:
            rec = None
            findings.append(_record_finding(idx, leaf, exc))
            tainted = True
        if rec is not None:
            item = _prepare(rec, leaf, ctx, findings)
            if item is not None:
                items.append(item)
        if not isinstance(col, bytes) or col != lh:
            hint, aid = _leaf_hint(leaf)
            shown = col.hex()[:16] + "…" if isinstance(col, bytes) else repr(col)
            findings.append(Finding(
                CHECK_LEAF_HASH,
                f"record {idx}{hint}: the stored leaf_hash {shown} is not the hash of the "
                f"record's bytes ({lh.hex()[:16]}…): the record or its hash was edited",
                index=idx, artifact_id=aid, table="log",
            ))
            tainted = True
        push(idx, lh, tainted)
    if pos < end:
        gap(pos, end - 1)
    return _Chunk(start, end, items, findings, stacks, list(stack), checked)


def _leaf_hint(leaf: bytes) -> tuple[str, str | None]:
    """Best effort ``" (artifact art_x, product/name)"`` for a leaf that failed to parse."""
    try:
        obj = safejson.loads(leaf)
    except ValueError:  # not JSON, or over the depth/size limits (JSONLimitError)
        return "", None
    if not isinstance(obj, dict):
        return "", None
    body = obj.get("body")
    if isinstance(body, dict) and isinstance(body.get("artifact_id"), str):
        aid = body["artifact_id"]
        name, product = body.get("name"), obj.get("product")
        if isinstance(name, str) and isinstance(product, str):
            return f" (artifact {aid}, {product}/{name})", aid
        return f" (artifact {aid})", aid
    if isinstance(obj.get("type"), str):
        return f" ({obj['type']})", None
    return "", None


def _fold(stack: Sequence[_StackEntry]) -> bytes:
    """The RFC 6962 root of a tree given its right-edge perfect subtrees, largest first."""
    if not stack:
        return merkle.EMPTY_ROOT
    h = stack[-1][1]
    for entry in reversed(stack[:-1]):
        h = merkle._node(entry[1], h)
    return h


# The store's SQL schema version this verifier understands (store.init's schema_version).
_SCHEMA_VERSION = 2


# --------------------------------------------------------------------------- blobs


def _hash_path(path: str, size: int) -> str | None:
    """SHA-256 hex of a blob file the log records as ``size`` bytes (None if it does not
    exist); ``!reason`` if it cannot be read or is refused: a symbolic link, FIFO, device
    or other non-regular file (reading it could hang or never end), or a file longer than
    ``size`` (read no further than ``size + 1`` bytes)."""
    try:
        got = hash_file(path, size=size, what="blob file")
    except InputFileError as exc:
        if exc.problem == "no such file":
            return None
        return f"!{exc.problem}; the store writes every blob as a regular file"
    if got.longer:
        return (f"!longer than the {size} bytes its record gives (read no further than "
                f"{size + 1}): the artifact's bytes were altered")
    return got.hexdigests["sha256"]


def _blob_bounds(n: int, parts: int) -> list[tuple[int | None, int | None]]:
    """``parts`` ranges of log index covering every ``inline_blob`` row (even out of range
    ones: the first and last are open)."""
    step = max(1, -(-n // parts))
    cuts = list(range(step, n, step))
    return list(itertools.pairwise([None, *cuts, None]))


def _hash_blob_rows(conn: sqlite3.Connection, lo: int | None, hi: int | None
                    ) -> list[tuple[Any, str, int]]:
    """(log_idx column, hash of data, size) of inline_blob rows with ``lo <= log_idx < hi``,
    in log_idx order."""
    where, args = [], []
    if lo is not None:
        where.append("log_idx >= ?")
        args.append(lo)
    if hi is not None:
        where.append("log_idx < ?")
        args.append(hi)
    sql = "SELECT log_idx, data FROM inline_blob"
    if where:
        sql += " WHERE " + " AND ".join(where)
    out = []
    for idx, data in conn.execute(sql + " ORDER BY log_idx", args):
        raw = data if isinstance(data, bytes) else bytes(data)
        out.append((idx, hashlib.sha256(raw).hexdigest(), len(raw)))
    return out


def _hash_blob_rows_worker(db: str, lo: int | None, hi: int | None
                           ) -> list[tuple[Any, str, int]]:
    return _hash_blob_rows(_worker_conn(db), lo, hi)


# --------------------------------------------------------------------------- record bodies

_TIME_RE = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")


# Each put's times are parsed by the body check and again by the retention checks, and
# a batch of records shares one time: a small memo halves the parsing.
_TS_MEMO: dict[str, datetime | None] = {}
_TS_MEMO_MAX = 4096


def _ts(text: Any) -> datetime | None:
    """An RFC 3339 UTC time as the records carry it (``...Z``), or None."""
    if type(text) is not str:
        return None
    try:
        return _TS_MEMO[text]
    except KeyError:
        pass
    got: datetime | None = None
    if _TIME_RE.match(text) is not None:
        try:
            got = datetime.fromisoformat(text)  # 3.11+: takes the Z, truncates past µs
        except ValueError:
            got = None
    if len(_TS_MEMO) >= _TS_MEMO_MAX:
        _TS_MEMO.clear()
    _TS_MEMO[text] = got
    return got


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_nonempty(v: Any) -> bool:
    return isinstance(v, str) and bool(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_dict(v: Any) -> bool:
    return isinstance(v, dict)


def _is_time(v: Any) -> bool:
    return _ts(v) is not None


def _is_opt_time(v: Any) -> bool:
    return v is None or _ts(v) is not None


def _is_opt_str(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _is_hex(v: Any) -> bool:
    return isinstance(v, str) and bool(_HEX64.match(v))


def _is_storage(v: Any) -> bool:
    return v in ("inline", "file")


def _is_scope(v: Any) -> bool:
    if not isinstance(v, dict):
        return False
    if "artifact_ids" in v:
        ids = v["artifact_ids"]
        return isinstance(ids, list) and all(isinstance(x, str) for x in ids)
    return all(_is_opt_time(v.get(k)) for k in ("from", "to"))


_Check = tuple[Callable[[Any], bool], str]
_S: _Check = (_is_str, "a string")
_NE: _Check = (_is_nonempty, "a non-empty string")
_I: _Check = (_is_int, "a non-negative integer")
_B: _Check = (_is_bool, "true or false")
_D: _Check = (_is_dict, "a JSON object")
_T: _Check = (_is_time, "an RFC 3339 UTC time")
_OT: _Check = (_is_opt_time, "null or an RFC 3339 UTC time")
_OS: _Check = (_is_opt_str, "null or a string")
_H: _Check = (_is_hex, "64 lower-case hex digits")

_BODIES: dict[str, dict[str, _Check]] = {
    "store.init": {
        "origin": _NE, "verifier_key": _NE, "schema_version": _I, "sql_schema_sha256": _H,
        "products": _D, "default_retention_days": _I,
    },
    "artifact.put": {
        "artifact_id": _NE, "name": _NE, "sha256": _H, "size": _I, "media_type": _S,
        "metadata": _D, "provenance": _D, "retain_until": _T, "received": _T,
        "storage": (_is_storage, "'inline' or 'file'"),
    },
    "artifact.refused": {
        "artifact_id": _NE, "name": _NE, "sha256": _H, "size": _I, "reason": _S,
        "existing_sha256": _H,
    },
    "retention.extend": {"artifact_id": _NE, "previous": _T, "retain_until": _T, "reason": _S},
    "retention.refused": {"artifact_id": _NE, "current": _T, "requested": _T, "reason": _S},
    "hold.place": {
        "hold_id": _NE, "matter": _S, "reason": _S,
        "scope": (_is_scope, "{artifact_ids: [...]} or {from, to}"),
    },
    "hold.release": {"hold_id": _NE, "matter": _S, "reason": _S},
    "artifact.dispose": {"artifact_id": _NE, "sha256": _H, "retain_until": _T,
                         "bytes_removed": _B},
    "governance.lock": {"reason": _S, "check": _S},
    "governance.unlock": {"reason": _S, "lock_reason": _S},
    "token.issue": {"token_id": _NE, "role": _NE, "expires": _OT, "secret_sha256": _H,
                    "note": _S},
    "token.revoke": {"token_id": _NE, "reason": _S},
    # Informational events: no derived state, free-form bodies.
    "evidence.export": {},
    "certification.run": {},
    "certification.result": {},
    # Alert deliveries and acknowledgements: no derived state; allowed under a lock.
    "alert.delivery": {"alertname": _NE, "fingerprint": _NE, "status": _NE, "scenario": _S,
                       "role": _S, "channel": _NE, "receiver": _S, "attempt": _I,
                       "result": _NE},
    "alert.ack": {"alertname": _S, "fingerprint": _NE, "reason": _S},
    # Several nodes on one database (ADR 0014): a new sequencer's first record.
    SEQUENCER_ELECTED: {"node_id": _NE, "epoch": _I, "previous": _OS,
                        "previous_epoch": (lambda v: v is None or _is_int(v),
                                           "null or a non-negative integer")},
}
_PRODUCT_REQUIRED = frozenset({
    "artifact.put", "artifact.refused", "retention.extend", "retention.refused", "hold.place",
    "hold.release", "artifact.dispose",
})
_PRODUCT_NULL = frozenset({"store.init", "governance.lock", "governance.unlock",
                           "alert.delivery", "alert.ack", SEQUENCER_ELECTED})


_B32_PAIRS = [a + b for a in "abcdefghijklmnopqrstuvwxyz234567"
              for b in "abcdefghijklmnopqrstuvwxyz234567"]


def _artifact_id(product: str, name: str) -> str:
    """The artifact id the store derives from (product, name): ``art_`` and the lower-case
    base32 of the first 15 bytes of SHA-256(product NUL name) (24 characters, no padding)."""
    digest = hashlib.sha256(product.encode() + b"\x00" + name.encode()).digest()
    n = int.from_bytes(digest[:15], "big")
    pairs = _B32_PAIRS
    return "art_" + "".join([pairs[(n >> shift) & 1023] for shift in range(110, -1, -10)])


# (configured products, minimum retention at put: default_retention_days less a minute)
_Context = tuple[frozenset[str] | None, timedelta | None]
# (index, type, product, time, payload, token id when the actor is ``token:<id>``)
_Item = tuple[int, str, str | None, str, Any, str | None]


def _canonical_in(value: Any, leaf: bytes) -> str:
    """RFC 8785 text of ``value``, a JSON object inside the canonical ``leaf``.

    The quick encoding is the canonical one whenever it occurs in the leaf: text that
    contains a quote cannot start inside a JSON string, so an occurrence is a complete
    sub-value of a canonical document, which is itself canonical. Otherwise (floats,
    astral-plane keys) take the exact path.
    """
    if type(value) is dict and not value:
        return "{}"  # the one spelling of an empty object (most provenance)
    try:
        text = quick_encode(value)
    except (TypeError, ValueError):
        text = ""
    if text and text.encode() in leaf:
        return text
    return canonical_json(value).decode()


def _scalar_text(v: Any) -> str | None:
    """How the metadata index stores a top-level field (None: not indexed)."""
    if isinstance(v, str):
        return v
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int) and -(2**53) < v < 2**53:
        return str(v)
    if isinstance(v, int | float):
        return canonical_json(v).decode()
    return None


def _prepare(rec: dict[str, Any], leaf: bytes, ctx: _Context, out: list[Finding]
             ) -> _Item | None:
    """The stateless part of a record's replay: validate its body and product, check what
    needs no history (id derivation, minimum retention), and compute the derived rows it
    implies. Findings go to ``out``; None means there is nothing more to replay."""
    idx, typ, product = rec["seq"], rec["type"], rec["product"]
    products, min_retention = ctx
    body = rec["body"]
    if typ not in _BODIES:
        out.append(Finding(CHECK_RECORD, f"record {idx} has type {typ!r}, which the store "
                           "never writes: it was forged or inserted", index=idx, table="log"))
        return None
    problem = _body_problem(typ, body)
    if problem:
        aid = body.get("artifact_id")
        out.append(Finding(CHECK_RECORD, f"record {idx} ({typ}): {problem}; the store never "
                           "writes such a record", index=idx,
                           artifact_id=aid if isinstance(aid, str) else None, table="log"))
        return None
    if typ in _PRODUCT_REQUIRED and products is not None and product not in products:
        out.append(Finding(CHECK_RECORD, f"record {idx} ({typ}) names product {product!r}, "
                           "which store.init does not configure "
                           f"({', '.join(sorted(products))})", index=idx, table="log"))
    if typ in _PRODUCT_NULL and product is not None:
        out.append(Finding(CHECK_RECORD, f"record {idx} ({typ}) names a product "
                           f"({product!r}); this record type is store-wide", index=idx,
                           table="log"))
    t, actor = rec["time"], rec["actor"]
    tok = token_id_of(actor)
    payload: Any
    if typ == "store.init":
        if idx != 0:
            out.append(Finding(CHECK_INIT, f"record {idx} is a second store.init: a store is "
                               "initialised once, so it was forged or inserted", index=idx,
                               table="log"))
        return None
    if typ == "artifact.put":
        aid, name, meta = body["artifact_id"], body["name"], body["metadata"]
        p = product or ""
        _check_id(idx, aid, p, name, out)
        received, recorded = _ts(body["received"]), _ts(t)
        if received is not None and recorded is not None and received > recorded:
            out.append(Finding(CHECK_RETENTION, f"record {idx} (artifact {aid}, {p}/{name}): "
                               f"received {body['received']} is after the record's time {t}",
                               index=idx, artifact_id=aid, table="log"))
        if min_retention is not None:
            retain = _ts(body["retain_until"])
            if received is not None and retain is not None and retain < received + min_retention:
                days = (min_retention + timedelta(minutes=1)).days
                out.append(Finding(CHECK_RETENTION, f"record {idx} (artifact {aid}, "
                                   f"{p}/{name}): retain-until {body['retain_until']} is "
                                   f"shorter than the store's minimum retention ({days} days "
                                   f"from receipt at {body['received']})", index=idx,
                                   artifact_id=aid, table="log"))
        row = (aid, product, name, body["sha256"], body["size"], body["media_type"],
               _canonical_in(meta, leaf), _canonical_in(body["provenance"], leaf),
               body["retain_until"], body["storage"], actor, t, idx)
        meta_rows = []
        for k in sorted(meta):
            v = _scalar_text(meta[k])
            if v is not None:
                meta_rows.append((aid, p, k, v))
        payload = (row, meta_rows)
    elif typ == "retention.extend":
        payload = (body["artifact_id"], body["previous"], body["retain_until"])
    elif typ == "hold.place":
        scope = body["scope"]
        payload = (scope, (body["hold_id"], body["matter"], body["reason"], actor, product,
                           _canonical_in(scope, leaf), idx, t))
    elif typ == "hold.release":
        payload = (body["matter"], (body["hold_id"], body["reason"], actor, idx, t))
    elif typ == "artifact.dispose":
        payload = (body["retain_until"], bool(body["bytes_removed"]),
                   (body["artifact_id"], body["sha256"], idx, t))
    elif typ == "governance.lock":
        payload = (None, (idx, "locked", body["reason"], actor, t))
    elif typ == "governance.unlock":
        payload = (body["lock_reason"], (idx, "unlocked", body["reason"], actor, t))
    elif typ == "token.issue":
        payload = (body["token_id"], body["role"], product, body["expires"],
                   body["secret_sha256"], body["note"], actor, idx, t)
    elif typ == "token.revoke":
        payload = (body["token_id"], body["reason"], actor, idx, t)
    elif typ == "artifact.refused":
        aid, name = body["artifact_id"], body["name"]
        _check_id(idx, aid, product or "", name, out)
        payload = (aid, name, body["sha256"], body["existing_sha256"])
    elif typ == "retention.refused":
        payload = (body["artifact_id"], body["current"], body["requested"])
    elif typ == SEQUENCER_ELECTED:
        payload = (body["node_id"], body["epoch"], body["previous"], body["previous_epoch"])
    elif tok is None:
        return None  # informational: no derived state, and no token to judge
    else:
        payload = None
    return (idx, typ, product, t, payload, tok)


def _check_id(idx: int, aid: str, product: str, name: str, out: list[Finding]) -> None:
    derived = _artifact_id(product, name)
    if aid != derived:
        out.append(Finding(CHECK_ARTIFACT_ID, f"record {idx} (artifact {aid}, {product}/{name}): "
                           "the artifact id is not the one derived from its product and name "
                           f"({derived}): the record was forged", index=idx, artifact_id=aid,
                           table="log"))


# --------------------------------------------------------------------------- state


class _Findings:
    def __init__(self) -> None:
        self.items: list[Finding] = []
        self.total = 0
        self.failed: set[str] = set()

    def add(self, check: str, message: str, *, index: int | None = None,
            artifact_id: str | None = None, table: str | None = None) -> None:
        self.append(Finding(check, message, index, artifact_id, table))

    def append(self, f: Finding) -> None:
        self.total += 1
        self.failed.add(f.check)
        if len(self.items) < MAX_FINDINGS:
            self.items.append(f)


# One artifact in the replay's state: log index of its put, product code, sha256 digest,
# storage (0 inline, 1 file). 43 bytes each; the rest is read back from the log on demand.
_ART = struct.Struct(">QH32sB")


class _Art:
    """A view of one artifact's replayed state, built on demand from the compact state."""

    __slots__ = ("_info", "_rp", "digest", "disposed", "id", "idx", "product", "removed",
                 "storage")

    def __init__(self, rp: _Replay, aid: str, packed: bytes) -> None:
        idx, code, digest, storage = _ART.unpack(packed)
        self._rp = rp
        self.id = aid
        self.idx: int = idx
        self.product: str | None = rp.product_names[code]
        self.digest: bytes = digest
        self.storage = "file" if storage else "inline"
        self.disposed, self.removed = rp.gone.get(aid, (-1, False))
        self._info: tuple[str, str, str] | None = None

    @property
    def sha256(self) -> str:
        return self.digest.hex()

    def info(self) -> tuple[str, str, str]:
        """(name, created, retain-until at put), from the put record."""
        if self._info is None:
            self._info = self._rp.put_info(self.idx)
        return self._info

    @property
    def name(self) -> str:
        return self.info()[0]

    @property
    def created(self) -> str:
        return self.info()[1]

    @property
    def eff(self) -> str:
        """The retention in force: the put's, or the latest extension."""
        return self._rp.eff.get(self.id) or self.info()[2]

    def where(self, idx: int | None = None) -> str:
        i = self.idx if idx is None else idx
        return f"record {i} (artifact {self.id}, {self.product}/{self.name})"


class _HoldState:
    __slots__ = ("idx", "matter", "product", "released", "scope")

    def __init__(self, product: str | None, scope: dict[str, Any], matter: str, idx: int
                 ) -> None:
        self.product = product
        self.scope = scope
        self.matter = matter
        self.idx = idx
        self.released = False

    def covers(self, art: _Art) -> bool:
        if self.product is not None and self.product != art.product:
            return False
        if "artifact_ids" in self.scope:
            return art.id in self.scope["artifact_ids"]
        created = _ts(art.created)
        lo, hi = _ts(self.scope.get("from")), _ts(self.scope.get("to"))
        if created is None:
            return True
        return (lo is None or created >= lo) and (hi is None or created < hi)


class _Table:
    """Merge-compare one derived table (read in key order) with the rows records imply."""

    def __init__(self, rp: _Replay, name: str, sql: str, columns: Sequence[str],
                 keylen: int = 1, *, confirmed: bool = False) -> None:
        """``confirmed``: the rows are compared set-wise per chunk (:func:`_confirm_rows`),
        so this merge reads nothing and expects nothing."""
        self.rp = rp
        self.name = name
        self.columns = columns
        self.keylen = keylen
        self.rows = 0
        self.exists = rp.has_table(name) and not confirmed
        self._it: Iterator[Any] = iter(rp.conn.execute(sql)) if self.exists else iter(())
        self._pending: tuple[tuple[Any, ...], tuple[Any, ...]] | None = None
        if not self.exists and not confirmed:
            rp.f.add(CHECK_DERIVED, f"table {name} is missing from the database: it was "
                     "dropped", table=name)
        self._advance()

    def _advance(self) -> None:
        row = next(self._it, None)
        if row is None:
            self._pending = None
        else:
            self._pending = (row[:self.keylen], row[self.keylen:])  # rows are tuples

    def expect(self, key: tuple[Any, ...], row: tuple[Any, ...],
               where: str | Callable[[], str], *, index: int,
               artifact_id: str | None = None, meta_key: str | None = None) -> None:
        """``where`` names the record for a message (a callable: only built if needed);
        ``meta_key`` adds the metadata field to it."""
        if not self.exists:
            return
        self.rows += 1
        pending = self._pending
        if pending is not None and pending[0] == key and pending[1] == row:
            self._advance()  # the common case, before any message is worded
            return
        if not isinstance(where, str):
            where = where()
        if meta_key is not None:
            where = _meta_where(lambda: str(where), meta_key)
        while self._pending is not None and self._pending[0] < key:
            self._extra(self._pending)
            self._advance()
        if self._pending is not None and self._pending[0] == key:
            got = self._pending[1]
            self._advance()
            if got != row:
                diffs = [
                    f"{c} is {_show(g)} but the record says {_show(w)}"
                    for c, g, w in zip(self.columns, got, row, strict=False) if g != w
                ]
                self.rp.f.add(
                    CHECK_DERIVED,
                    f"table {self.name}, row of {where}: {'; '.join(diffs)}: the derived row "
                    "was edited after the record was written",
                    index=index, artifact_id=artifact_id, table=self.name,
                )
            return
        self.rp.f.add(
            CHECK_DERIVED,
            f"table {self.name} has no row for {where}: the row was deleted (the store writes "
            "it in the same transaction as the record)",
            index=index, artifact_id=artifact_id, table=self.name,
        )

    def _extra(self, pending: tuple[tuple[Any, ...], tuple[Any, ...]]) -> None:
        key, row = pending
        shown = ", ".join(f"{c}={_show(v)}" for c, v in zip(self.columns, row, strict=False))
        idx = key[0] if isinstance(key[0], int) and key[0] >= 0 else None
        aid = None
        for c, v in zip(self.columns, row, strict=False):
            if c in ("id", "artifact_id") and isinstance(v, str) and v.startswith("art_"):
                aid = v
        self.rp.f.add(
            CHECK_DERIVED,
            f"table {self.name} has a row ({shown}) that no record in the log accounts for: "
            "it was inserted, or its record was removed from the log",
            index=idx, artifact_id=aid, table=self.name,
        )

    def finish(self) -> None:
        while self._pending is not None:
            self._extra(self._pending)
            self._advance()


def _meta_where(where: Callable[[], str], key: str) -> str:
    return f"{where()}, metadata field {key!r}"


def _show(v: Any) -> str:
    if isinstance(v, bytes):
        return f"<{len(v)} bytes>"
    text = repr(v)
    return text if len(text) <= 120 else text[:117] + "…"


# --------------------------------------------------------------------------- the replay


class _Unconfirmed(Exception):
    """The set-wise confirmation of the derived rows failed: replay row by row instead."""


class _Replay:
    def __init__(
        self, root: Path, db: Path, conn: sqlite3.Connection, keys: list[str],
        since: bytes | None, jobs: int, progress: Callable[[int, int], None] | None,
        check_blobs: bool,
    ) -> None:
        self.root = root
        self.db = db
        self.conn = conn
        self.keys = keys
        self.since = since
        self.jobs = jobs
        self.progress = progress
        self.check_blobs = check_blobs
        self.native = False
        self.fast = False  # artifact/artifact_meta confirmed set-wise (see _confirm_rows)
        self.confirmed_rows = [0, 0, 0]  # artifact rows, artifact_meta rows, their digest
        self.key = os.urandom(64)  # the metadata digest's key (_meta_digest), this run only
        self.cdb: Any = None  # the native engine's own connection (jobs=1)
        self.meta_future: Future[tuple[int, int, int] | None] | None = None
        self.blobs_seen: int | None = 0  # inline blobs the chunks confirmed (None: not all)
        self.f = _Findings()
        self.pool: ProcessPoolExecutor | None = None
        self.tables: set[str] = set()
        self.init: dict[str, Any] | None = None
        self.origin: str | None = None
        self.ctx: _Context = (None, None)
        self.arts: dict[str, bytes] = {}  # artifact id -> _ART
        self.product_codes: dict[str | None, int] = {}
        self.product_names: list[str | None] = []
        self.eff: dict[str, str] = {}  # extended retention, by artifact id
        self.gone: dict[str, tuple[int, bool]] = {}  # disposed: (record, bytes_removed)
        self.live_by_sha: dict[bytes, int] = {}  # live artifacts per digest (0: none left)
        self.file_shas: dict[bytes, int] = {}  # digests stored as files -> recorded size
        self._by_digest: dict[bytes, str] | None = None
        self.holds: dict[str, _HoldState] = {}
        self.locked: tuple[str, int] | None = None
        self.grants: dict[str, Grant] = {}  # tokens issued so far in the log, by id
        self.elected: tuple[int, str] | None = None  # last sequencer.elected (epoch, node)
        self.void: dict[str, int] = {}  # tokens issued by an unauthorized record: its index
        self.authorized = 0  # records judged on a token's authority
        self.refusals = 0  # artifact.refused and retention.refused records
        self.disposed = 0
        self.good_cps = 0
        self.signed_max = 0  # largest size of a validly signed checkpoint, matching or not
        self.diverged: list[int] = []  # sizes of later checkpoints that cannot match either
        self._first_divergence: int | None = None
        self.untrusted = 0
        self.latest: tuple[int, bytes] | None = None
        self.since_cp: tuple[int, bytes] | None = None
        self.since_root: bytes | None = None
        self.anchors: list[bytes] | None = None
        self.anchor_cps: dict[int, bytes] = {}  # anchored size -> signed root
        self.anchor_roots: dict[int, bytes] = {}  # anchored size -> replayed root
        self.anchors_checked = 0
        self.blob_hasher: Callable[[str], str | None] | None = None
        self.blob_exists: Callable[[str], bool] | None = None
        self.nodes_checked = 0
        self.blobs_checked = 0
        self.removed_checked = 0
        self.n = 0

    def has_table(self, name: str) -> bool:
        return name in self.tables

    def art(self, aid: str) -> _Art | None:
        packed = self.arts.get(aid)
        return None if packed is None else _Art(self, aid, packed)

    def put_info(self, idx: int) -> tuple[str, str, str]:
        """(name, time, retain_until) of the put record at ``idx`` (it parsed before)."""
        row = self.conn.execute("SELECT leaf FROM log WHERE idx = ?", (idx,)).fetchone()
        try:
            rec = parse_record(bytes(row[0]), index=idx)
            return str(rec.body["name"]), rec.time, str(rec.body["retain_until"])
        except (TypeError, KeyError, VerificationError):
            return "?", "", ""

    def _in_snapshot(self, idx: Any) -> bool:
        """Whether an inline_blob row a worker saw is in this replay's snapshot too (workers
        read their own, possibly later, snapshot of a store that is still being written)."""
        if self.pool is None:
            return True
        return self.conn.execute("SELECT 1 FROM inline_blob WHERE log_idx = ?", (idx,)
                                 ).fetchone() is not None

    def owner(self, digest: bytes) -> _Art:
        """The first artifact holding these bytes (a live one if any), for a message."""
        if self._by_digest is None:
            by: dict[bytes, str] = {}
            for aid, packed in self.arts.items():  # log order
                d = packed[10:42]
                cur = by.get(d)
                if cur is None or (cur in self.gone and aid not in self.gone):
                    by[d] = aid
            self._by_digest = by
        aid = self._by_digest[digest]
        return _Art(self, aid, self.arts[aid])

    # ---------------------------------------------------------------- driver
    def run(self) -> StoreResult:
        # The replay builds millions of small objects and no reference cycles: the cyclic
        # collector would only walk the growing state again and again.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._run()
        finally:
            if was_enabled:
                gc.enable()

    def _run(self) -> StoreResult:
        conn = self.conn
        conn.execute("BEGIN")  # one read snapshot for the whole replay
        self.tables = {
            str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        for t in ("log", "node", "checkpoint"):
            if t not in self.tables:
                raise StoreVerificationError(
                    f"store {self.root}: table {t} is missing: this is not a Depository store "
                    "(or its log was dropped)"
                )
        self._read_init()
        if self.init is not None and self.init.get("schema_version") != _SCHEMA_VERSION:
            # The derived tables' layout depends on it (ADR 0004); v1 stores are not read.
            raise StoreVerificationError(
                f"store {self.root}: record 0 says SQL schema version "
                f"{self.init.get('schema_version')!r}; this verifier reads schema version "
                f"{_SCHEMA_VERSION} only (use the Depository release that created the store)"
            )
        self._check_since()
        self._check_anchors()
        try:
            integrity: Future[list[str]] | None = None
            if self.jobs > 1:
                self.pool = ProcessPoolExecutor(max_workers=self.jobs)
                # The full-file scan runs beside the replay.
                integrity = self.pool.submit(_integrity_worker, str(self.db))
            elif self.native and self.fast:
                self.cdb = _open_native(self.db)
            self._replay()
            self._after_replay()
            if self.check_blobs:
                self._check_blobs()
            self._check_integrity(
                integrity.result() if integrity is not None else _integrity(self.conn)
            )
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
            if self.cdb is not None:
                self.cdb.close()
        conn.execute("COMMIT")
        return self._result()

    # ---------------------------------------------------------------- setup
    def _check_integrity(self, rows: list[str]) -> None:
        if rows != ["ok"]:
            self.f.add(CHECK_INTEGRITY, "SQLite integrity_check reports: " + "; ".join(rows[:5])
                       + ("…" if len(rows) > 5 else "") + ": the database file is damaged")

    def _read_init(self) -> None:
        f = self.f
        row = self.conn.execute(
            "SELECT min(idx), max(idx), count(*) FROM log"
        ).fetchone()
        lo, hi, count = row
        count = int(count)
        if lo is not None and int(lo) < 0:
            f.add(CHECK_LOG, f"the log has rows at negative indexes (from {lo}): they were "
                  "inserted; a log starts at index 0", index=int(lo), table="log")
        n = 0 if hi is None else int(hi) + 1
        if n - count > _HUGE_GAP:
            f.add(CHECK_LOG, f"the log's highest index is {hi} but it holds only {count} "
                  f"records: a record was inserted far beyond the end; only indexes "
                  f"0..{count - 1} are replayed", index=count, table="log")
            n = count
        self.n = n
        first = self.conn.execute("SELECT leaf FROM log WHERE idx = 0").fetchone()
        rec: Record | None = None
        if first is not None:
            try:
                rec = parse_record(bytes(first[0]), index=0)
            except RecordError:
                rec = None
        if rec is None or rec.type != "store.init":
            what = ("missing" if first is None else "not a valid record" if rec is None
                    else f"a {rec.type} record")
            f.add(CHECK_INIT, f"record 0 is {what}, not the store.init record every store "
                  "starts with: the store's origin, key and schema cannot be established",
                  index=0, table="log")
            return
        body = dict(rec.body)
        problem = _body_problem(rec.type, body)
        if problem:
            f.add(CHECK_INIT, f"record 0 (store.init): {problem}", index=0, table="log")
            return
        self.init = body
        self.origin = str(body["origin"])
        products = body.get("products")
        self.ctx = (frozenset(products) if isinstance(products, dict) else frozenset(),
                    timedelta(days=int(body["default_retention_days"]), minutes=-1))
        if str(body["verifier_key"]).strip() not in self.keys:
            f.add(CHECK_KEY, f"the store's key is not the one you trust: record 0 names "
                  f"{body['verifier_key']}, but you trust {', '.join(self.keys)}. Either "
                  "this is a different store than you think, or its log was replaced",
                  index=0, table="log")
        got = _schema_fingerprint(self.conn)
        if got != body["sql_schema_sha256"]:
            f.add(CHECK_SCHEMA, f"the SQL schema (tables, indexes, WORM triggers) hashes to "
                  f"{got[:16]}…, not the {str(body['sql_schema_sha256'])[:16]}… frozen in "
                  "store.init: a trigger was dropped or a table or index altered, so the "
                  "database no longer refuses updates and deletes", table="sqlite_master")

    def _verify_cp(self, note: bytes) -> tuple[int, bytes] | str:
        try:
            cp, _ = verify_checkpoint(note, self.keys, origin=self.origin)
        except VerificationError as exc:
            return str(exc)
        return cp.size, cp.root_hash

    def _check_since(self) -> None:
        if self.since is None:
            return
        got = self._verify_cp(bytes(self.since))
        if isinstance(got, str):
            self.f.add(CHECK_SINCE, f"your saved checkpoint does not verify with the trusted "
                       f"key and this store's origin: {got}")
            return
        self.since_cp = got
        size, _ = got
        if size > self.n:
            self.f.add(CHECK_SINCE, f"rolled back or forked: your saved checkpoint covers "
                       f"{size} records, but the store's log has only {self.n}: records "
                       "were removed, or an older copy of the store was restored",
                       index=self.n, table="log")
            self.since_cp = None

    def _check_anchors(self) -> None:
        """Anchored checkpoints: signed, of this log, not beyond it, never two roots."""
        if self.anchors is None:
            return
        if not self.anchors:
            self.f.add(CHECK_ANCHOR, "no anchored checkpoint was found where anchors were "
                       "expected: nothing could be checked against WORM storage")
            return
        for n, note in enumerate(self.anchors):
            head = note.split(b"\n", 1)[0].decode("utf-8", "replace")
            if self.origin is not None and head != self.origin:
                continue  # another log's anchor: not ours to judge
            got = self._verify_cp(note)
            if isinstance(got, str):
                self.f.add(CHECK_ANCHOR, f"anchor {n} is not a checkpoint signed by the "
                           f"trusted key for this log ({got}); only the store writes anchors, "
                           "so this is an incident")
                continue
            size, root = got
            other = self.anchor_cps.get(size)
            if other is not None and other != root:
                self.f.add(CHECK_ANCHOR, f"forked: two anchored checkpoints of size {size} "
                           f"name different roots ({other.hex()[:16]}… and "
                           f"{root.hex()[:16]}…): the log key signed two histories",
                           index=size - 1 if size else None, table="log")
                continue
            self.anchors_checked += 1
            if size > self.n:
                self.f.add(CHECK_ANCHOR, f"rolled back: an anchored checkpoint covers {size} "
                           f"records, but the store's log has only {self.n}: records were "
                           "removed, or an older copy of the store was restored",
                           index=self.n, table="log")
                continue
            self.anchor_cps[size] = root

    # ---------------------------------------------------------------- replay
    def _sizes(self, start: int, end: int) -> list[int]:
        sizes = [int(r[0]) for r in self.conn.execute(
            "SELECT size FROM checkpoint WHERE size > ? AND size <= ? ORDER BY size",
            (start, end),
        )]
        if self.since_cp is not None and start < self.since_cp[0] <= end:
            sizes.append(self.since_cp[0])
        sizes.extend(sz for sz in self.anchor_cps if start < sz <= end)
        return sorted(set(sizes))

    def _chunks(self) -> Iterator[_Chunk]:
        """The scanned chunks in log order. With a pool the first ones are submitted
        here, before the caller iterates, so workers scan while the parent opens the
        derived tables (SQLite sorts some of them before the first row)."""
        level = CHUNK_LEVEL
        step = 1 << level
        starts = range(0, self.n, step)
        if self.pool is None:
            return (
                _scan_chunk(self.conn, s, min(s + step, self.n), level,
                            self._sizes(s, min(s + step, self.n)), self.ctx, self.native,
                            self.fast, self.key, self.cdb)
                for s in starts
            )
        pool = self.pool
        it = iter(starts)
        pending: deque[Future[_Chunk]] = deque()

        def submit() -> None:
            s = next(it, None)
            if s is not None:
                e = min(s + step, self.n)
                pending.append(pool.submit(_scan_chunk_worker, str(self.db), s, e, level,
                                           self._sizes(s, e), self.ctx, self.native,
                                           self.fast, self.key))

        for _ in range(self.jobs * 3):
            submit()
        if self.fast:
            # The artifact_meta table's side of the digest, beside the scan.
            self.meta_future = pool.submit(_meta_digest_worker, str(self.db), self.key,
                                           self.n)

        def results() -> Iterator[_Chunk]:
            while pending:
                res = pending.popleft().result()
                submit()
                yield res

        return results()

    def _replay(self) -> None:
        chunks = self._chunks()
        self._open_tables()
        cps = self.conn.execute(
            "SELECT size, root, note FROM checkpoint WHERE size <= 0 ORDER BY size"
        ).fetchall()
        for size, root, note in cps:
            self._check_cp_row(int(size), root, note, merkle.EMPTY_ROOT)
        if self.since_cp is not None and self.since_cp[0] == 0:
            self.since_root = merkle.EMPTY_ROOT
        level = CHUNK_LEVEL
        glob: list[_StackEntry] = []
        bulk = _NATIVE.apply_puts if self.fast and _NATIVE is not None else None
        for ch in chunks:
            if self.fast:
                if ch.confirmed is None:
                    raise _Unconfirmed(f"chunk {ch.start}..{ch.end - 1}")
                self.confirmed_rows[0] += ch.confirmed[0]
                self.confirmed_rows[1] += ch.confirmed[1]
                self.confirmed_rows[2] = (self.confirmed_rows[2] + ch.confirmed[2]) % _MOD256
            if ch.blobs is None or self.blobs_seen is None:
                self.blobs_seen = None
            else:
                self.blobs_seen += ch.blobs
            for fnd in ch.findings:
                self.f.append(fnd)
            self.nodes_checked += ch.nodes_checked
            self._apply_items(ch.items, bulk)
            roots = {size: _fold(glob + st) for size, st in ch.stacks.items()}
            for size, root_, note in self.conn.execute(
                "SELECT size, root, note FROM checkpoint WHERE size > ? AND size <= ? "
                "ORDER BY size", (ch.start, ch.end),
            ).fetchall():
                self._check_cp_row(int(size), root_, note, roots.get(int(size)))
            if self.since_cp is not None and self.since_cp[0] in roots:
                self.since_root = roots[self.since_cp[0]]
            for sz in self.anchor_cps:
                if sz in roots:
                    self.anchor_roots[sz] = roots[sz]
            if ch.end - ch.start == 1 << level:
                self._push_global(glob, ch.final[0], ch.start)
            else:
                glob = glob + ch.final
            if self.progress is not None:
                self.progress(ch.end, self.n)
        if self.fast:
            # Every chunk's artifact rows are confirmed; no row may lie outside them.
            total = self.conn.execute("SELECT count(*) FROM artifact").fetchone()[0]
            if total != self.confirmed_rows[0]:
                raise _Unconfirmed(f"artifact holds {total} rows, {self.confirmed_rows[0]} "
                                   "confirmed")
            # artifact_meta holds exactly the rows the records imply: same digest, same count,
            # none beyond the log.
            table = (self.meta_future.result() if self.meta_future is not None
                     else _meta_table_digest(self.conn, self.cdb, self.key, self.n))
            if table is None or table != (self.confirmed_rows[1], self.confirmed_rows[2], 0):
                raise _Unconfirmed(f"artifact_meta: {table!r} is not what the records imply")
        self._finish_tables()

    def _apply_items(self, items: list[_Item],
                     bulk: Callable[..., tuple[int, int]] | None) -> None:
        """Apply a chunk's items in log order. ``bulk`` (``_cverify.apply_puts``, only once
        the derived rows are confirmed set-wise, so _put compares nothing) applies _put's
        common case in C and stops at any item it does not handle, which Python applies."""
        apply, put = self._apply, self._put
        pos, inner, count = 0, 0, len(items)
        while pos < count:
            if bulk is not None and self.locked is None:
                pos, inner = bulk(items, pos, inner, self.arts, self.product_codes,
                                  self.product_names, self.live_by_sha, self.file_shas)
                if pos >= count:
                    break
            item = items[pos]
            pos += 1
            if item[1] == _PACKED:
                for one in _unpack(item, inner, self.put_info):
                    put(one[0], one[2], one[3], *one[4])
                inner = 0
            elif item[5] is None and item[1] == "artifact.put":
                put(item[0], item[2], item[3], *item[4])  # what _apply does, one call less
            else:
                apply(item)

    def _push_global(self, glob: list[_StackEntry], entry: _StackEntry, start: int) -> None:
        """Add a full chunk's subtree; check every node it completes above the chunk level."""
        lv, h, t = entry
        idx = start
        while glob and glob[-1][0] == lv:
            _, left, left_t = glob.pop()
            h = merkle._node(left, h)
            lv += 1
            below = t or left_t
            k = idx >> lv
            lo, hi = k << lv, (k + 1) << lv
            row = self.conn.execute("SELECT hash FROM node WHERE level = ? AND k = ?",
                                    (lv, k)).fetchone()
            self.nodes_checked += 1
            if row is None:
                self.f.add(CHECK_NODE, f"node table has no row for the subtree over records "
                           f"{lo}..{hi - 1} (level {lv}, k {k}): it was deleted, so proofs "
                           "over these records cannot be served", index=lo, table="node")
                t = True
            elif bytes(row[0]) != h:
                if not below:
                    self.f.add(
                        CHECK_NODE,
                        f"node table: the stored hash of the subtree over records "
                        f"{lo}..{hi - 1} (level {lv}, k {k}) is {bytes(row[0]).hex()[:16]}…, "
                        f"but the records hash to {h.hex()[:16]}…: a record in that range was "
                        "changed after it was written, or the node row was edited",
                        index=lo, table="node")
                t = True
            else:
                t = below
        glob.append((lv, h, t))

    def _check_cp_row(self, size: int, row_root: Any, note: Any, computed: bytes | None
                      ) -> None:
        f = self.f
        note_b = note if isinstance(note, bytes) else str(note).encode()
        if size < 0:
            f.add(CHECK_CHECKPOINT, f"checkpoint row with negative size {size}: it was "
                  "inserted", table="checkpoint")
            return
        got = self._verify_cp(note_b)
        if isinstance(got, str) and CHECK_KEY in f.failed:
            self.untrusted += 1  # explained by the key finding; summarised once
            return
        if isinstance(got, str):
            f.add(CHECK_CHECKPOINT, f"checkpoint at size {size}: its signed note does not "
                  f"verify with the trusted key and origin {self.origin!r} ({got}): the "
                  "checkpoint was forged or edited", table="checkpoint")
            return
        cp_size, cp_root = got
        self.signed_max = max(self.signed_max, min(size, cp_size))
        ok = True
        if cp_size != size:
            f.add(CHECK_CHECKPOINT, f"checkpoint row at size {size} holds a signed note for "
                  f"size {cp_size}: the row was edited or moved", table="checkpoint")
            ok = False
        if not isinstance(row_root, bytes) or row_root != cp_root:
            f.add(CHECK_CHECKPOINT, f"checkpoint at size {size}: the row's root "
                  f"{_hex(row_root)} differs from the signed root {cp_root.hex()[:16]}…: the "
                  "row was edited", table="checkpoint")
            ok = False
        if computed is None:
            ok = False
        elif computed != cp_root and (self.diverged or self._first_divergence is not None):
            # Once the replayed tree differs from a signed one, every later root differs
            # too: one finding for the first, a summary for the rest.
            self.diverged.append(size)
            ok = False
        elif computed != cp_root:
            self._first_divergence = size
            f.add(CHECK_CHECKPOINT, f"checkpoint at size {size}: records 0..{size - 1} hash "
                  f"to root {computed.hex()[:16]}…, but the log signed root "
                  f"{cp_root.hex()[:16]}… at that size: records were changed, removed, "
                  "reordered or inserted after the checkpoint was signed",
                  index=size - 1 if size else None, table="checkpoint")
            ok = False
        if ok:
            self.good_cps += 1
            if self.latest is None or size >= self.latest[0]:
                self.latest = (size, note_b)

    def _after_replay(self) -> None:
        f, n = self.f, self.n
        if self.untrusted:
            f.add(CHECK_CHECKPOINT, f"none of the store's {self.untrusted} checkpoints is "
                  "signed by the key you trust, so nothing in this store is vouched for by "
                  "it", table="checkpoint")
        if self.diverged:
            f.add(CHECK_CHECKPOINT, f"{len(self.diverged)} later signed checkpoints (sizes "
                  f"{self.diverged[0]}..{self.diverged[-1]}) do not match the replayed log "
                  f"either: the change before size {self._first_divergence} carries forward "
                  "into every later tree", table="checkpoint")
        beyond = self.conn.execute(
            "SELECT size, note FROM checkpoint WHERE size > ? ORDER BY size", (n,)
        ).fetchall()
        if beyond:
            size, note = int(beyond[0][0]), beyond[0][1]
            got = self._verify_cp(note if isinstance(note, bytes) else str(note).encode())
            more = f" ({len(beyond) - 1} more beyond it)" if len(beyond) > 1 else ""
            if isinstance(got, str):
                f.add(CHECK_CHECKPOINT, f"checkpoint row at size {size}, beyond the log's "
                      f"{n} records, does not verify ({got}): it was forged{more}",
                      table="checkpoint")
            else:
                self.signed_max = max(self.signed_max, size)
                f.add(CHECK_TRUNCATED, f"truncated log: a validly signed checkpoint covers "
                      f"{size} records, but the log has only {n}: records {n}..{size - 1} were "
                      f"removed from the end{more}", index=n, table="log")
        latest = self.signed_max
        if n > latest and CHECK_KEY not in f.failed:
            what = (f"record {latest} is" if n - 1 == latest
                    else f"records {latest}..{n - 1} are")
            f.add(CHECK_UNSIGNED, f"{what} not covered by any validly signed checkpoint "
                  f"(the latest covers {latest}): anyone "
                  "with write access to the files could have appended them. If the store is "
                  "being written to right now, sign a checkpoint (`depository checkpoint`) "
                  "and verify again", index=latest, table="log")
        extra = self.conn.execute(
            "SELECT level, k FROM node WHERE k >= (? >> level) ORDER BY level, k LIMIT 1", (n,)
        ).fetchone()
        if extra is not None:
            count = self.conn.execute(
                "SELECT count(*) FROM node WHERE k >= (? >> level)", (n,)
            ).fetchone()[0]
            lv, k = int(extra[0]), int(extra[1])
            lo = k << lv if lv < 64 else 0
            f.add(CHECK_NODE, f"node table has {count} rows for subtrees beyond the log's {n} "
                  f"records (first: level {lv}, k {k}, from record {lo}): left behind by a "
                  "truncation of the log, or inserted", index=lo, table="node")
        if self.since_cp is not None:
            size, want = self.since_cp
            if self.since_root is None:
                f.add(CHECK_SINCE, f"rolled back or forked: could not recompute the root at "
                      f"your saved checkpoint's size {size}", table="log")
            elif self.since_root != want:
                f.add(CHECK_SINCE, f"rolled back or forked: the store's first {size} records "
                      f"hash to {self.since_root.hex()[:16]}…, but your saved checkpoint "
                      f"says {want.hex()[:16]}…: the history you saw was rewritten (or this "
                      "is an older copy, or another store under the same key)",
                      index=size - 1 if size else None, table="log")
        for size, want in sorted(self.anchor_cps.items()):
            replayed = self.anchor_roots.get(size)
            if replayed is None:
                f.add(CHECK_ANCHOR, f"could not recompute the root at anchored size {size}",
                      table="log")
            elif replayed != want:
                f.add(CHECK_ANCHOR, f"rewritten: the store's first {size} records hash to "
                      f"{replayed.hex()[:16]}…, but the checkpoint anchored in WORM storage says "
                      f"{want.hex()[:16]}…: history was rewritten after it was anchored",
                      index=size - 1 if size else None, table="log")
        self._check_meta()

    def _check_meta(self) -> None:
        if self.init is None or "meta" not in self.tables:
            if "meta" not in self.tables:
                self.f.add(CHECK_DERIVED, "table meta is missing: it was dropped", table="meta")
            return
        want = {
            "schema_version": str(self.init["schema_version"]),
            "origin": str(self.init["origin"]),
            "verifier_key": str(self.init["verifier_key"]),
        }
        got = {str(k): v for k, v in self.conn.execute("SELECT key, value FROM meta")}
        for k in sorted(set(want) | set(got)):
            if k not in got:
                self.f.add(CHECK_DERIVED, f"table meta has no {k!r} row (record 0 says "
                           f"{want[k]!r}): it was deleted", index=0, table="meta")
            elif k not in want:
                self.f.add(CHECK_DERIVED, f"table meta has an unexpected row {k!r} = "
                           f"{_show(got[k])}: it was inserted", table="meta")
            elif got[k] != want[k]:
                self.f.add(CHECK_DERIVED, f"table meta: {k} is {_show(got[k])} but record 0 "
                           f"(store.init) says {want[k]!r}: the row was edited", index=0,
                           table="meta")

    # ---------------------------------------------------------------- derived tables
    def _open_tables(self) -> None:
        self.t_artifact = _Table(
            self, "artifact",
            "SELECT log_idx, id, product, name, sha256, size, media_type, metadata, provenance,"
            " retain_until, storage, actor, created, log_idx FROM artifact ORDER BY log_idx",
            ("id", "product", "name", "sha256", "size", "media_type", "metadata", "provenance",
             "retain_until", "storage", "actor", "created", "log_idx"), confirmed=self.fast,
        )
        # Schema v2 keys metadata rows by log index; the artifact id comes from the
        # artifact row at that index (itself compared with its record).
        if "artifact" in self.tables:
            meta_sql = (
                "SELECT m.log_idx, m.key, a.id, m.product, m.key, m.value FROM artifact_meta m "
                "LEFT JOIN artifact a ON a.log_idx = m.log_idx ORDER BY 1, 2"
            )
        else:
            meta_sql = ("SELECT log_idx, key, NULL, product, key, value FROM artifact_meta "
                        "ORDER BY 1, 2")
        self.t_meta = _Table(self, "artifact_meta", meta_sql,
                             ("artifact_id", "product", "key", "value"), keylen=2,
                             confirmed=self.fast)
        self.t_retention = _Table(
            self, "retention",
            "SELECT log_idx, log_idx, artifact_id, retain_until FROM retention ORDER BY log_idx",
            ("log_idx", "artifact_id", "retain_until"),
        )
        self.t_hold = _Table(
            self, "hold",
            "SELECT placed_idx, id, matter, reason, actor, product, scope, placed_idx, "
            "placed_time FROM hold ORDER BY placed_idx",
            ("id", "matter", "reason", "actor", "product", "scope", "placed_idx",
             "placed_time"),
        )
        self.t_release = _Table(
            self, "hold_release",
            "SELECT log_idx, hold_id, reason, actor, log_idx, time FROM hold_release "
            "ORDER BY log_idx",
            ("hold_id", "reason", "actor", "log_idx", "time"),
        )
        self.t_disposal = _Table(
            self, "disposal",
            "SELECT log_idx, artifact_id, sha256, log_idx, time FROM disposal ORDER BY log_idx",
            ("artifact_id", "sha256", "log_idx", "time"),
        )
        self.t_governance = _Table(
            self, "governance",
            "SELECT log_idx, log_idx, state, reason, actor, time FROM governance "
            "ORDER BY log_idx",
            ("log_idx", "state", "reason", "actor", "time"),
        )
        self.t_token: _Table | None = None
        self.t_token_revoke: _Table | None = None
        if "token" in self.tables:
            self.t_token = _Table(
                self, "token",
                "SELECT issued_idx, id, role, product, expires, secret_sha256, note, actor, "
                "issued_idx, issued_time FROM token ORDER BY issued_idx",
                ("id", "role", "product", "expires", "secret_sha256", "note", "actor",
                 "issued_idx", "issued_time"),
            )
        if "token_revoke" in self.tables:
            self.t_token_revoke = _Table(
                self, "token_revoke",
                "SELECT log_idx, token_id, reason, actor, log_idx, time FROM token_revoke "
                "ORDER BY log_idx",
                ("token_id", "reason", "actor", "log_idx", "time"),
            )

    def _finish_tables(self) -> None:
        for t in (self.t_artifact, self.t_meta, self.t_retention, self.t_hold, self.t_release,
                  self.t_disposal, self.t_governance, self.t_token, self.t_token_revoke):
            if t is not None:
                t.finish()

    # ---------------------------------------------------------------- semantics
    def _apply(self, item: _Item) -> None:
        """The stateful part of a record's replay, in log order."""
        idx, typ, product, t, payload, tok = item
        authorized = tok is None or self._authorize(idx, typ, product, t, tok)
        if typ == "artifact.put":
            self._put(idx, product, t, *payload)
        elif typ == "retention.extend":
            self._extend(idx, product, *payload)
        elif typ == "hold.place":
            self._hold(idx, product, *payload)
        elif typ == "hold.release":
            self._release(idx, *payload)
        elif typ == "artifact.dispose":
            self._dispose(idx, product, t, *payload)
        elif typ in ("governance.lock", "governance.unlock"):
            self._governance(idx, typ, *payload)
        elif typ == "token.issue":
            self._issue(idx, product, payload, authorized)
        elif typ == "token.revoke":
            self._revoke(idx, product, payload)
        elif typ == "artifact.refused":
            self._refused(idx, product, *payload)
        elif typ == "retention.refused":
            self._retention_refused(idx, product, *payload)
        elif typ == SEQUENCER_ELECTED:
            node, epoch, previous, previous_epoch = payload
            why = election_problem(self.elected, node, epoch, previous, previous_epoch)
            if why is not None:
                self.f.add(CHECK_RECORD, f"record {idx} ({typ} of node {node!r}): {why}",
                           index=idx, table="log")
            else:
                self.elected = (epoch, node)

    def _authorize(self, idx: int, typ: str, product: str | None, t: str, tok: str) -> bool:
        """A record written on a token's authority: the token as the log defines it up to
        here must permit it (:mod:`depository.tlog.authority`)."""
        self.authorized += 1
        g = self.grants.get(tok)
        why = refusal(g, tok, typ, product,
                      _ts(t) if g is not None and g.expires is not None else None)
        if why is None and self.void and tok in self.void:
            why = (f"token {tok} was issued by record {self.void[tok]}, which was itself "
                   "not authorized")
        if why is not None:
            self.f.add(CHECK_AUTHORITY, f"record {idx} ({typ} by token:{tok}): {why}. The "
                       "store never writes such a record: it was written on forged authority "
                       "(e.g. a token row inserted into the database, which the log does not "
                       "explain) or by a compromised writer", index=idx, table="log")
            return False
        return True

    def _issue(self, idx: int, product: str | None, row: tuple[Any, ...],
               authorized: bool) -> None:
        tid, role, expires = row[0], row[1], row[3]
        where = f"record {idx} (token.issue of {tid})"
        if self.t_token is not None:
            self.t_token.expect((idx,), row, f"record {idx} (token {tid})", index=idx)
        problem = issue_problem(role, product)
        if problem is not None:
            self.f.add(CHECK_AUTHORITY, f"{where}: {problem}; the store never issues such a "
                       "token", index=idx, table="log")
        products = self.ctx[0]
        if product is not None and products is not None and product not in products:
            self.f.add(CHECK_AUTHORITY, f"{where}: scoped to product {product!r}, which "
                       "store.init does not configure", index=idx, table="log")
        old = self.grants.get(tid)
        if old is not None:
            self.f.add(CHECK_AUTHORITY, f"{where}: token {tid} was already issued by record "
                       f"{old.issued}; a token id is issued once, so this record was forged",
                       index=idx, table="log")
            return
        self.grants[tid] = Grant(tid, role, product, _ts(expires), idx)
        if not authorized:
            self.void[tid] = idx

    def _revoke(self, idx: int, product: str | None, row: tuple[Any, ...]) -> None:
        tid = row[0]
        where = f"record {idx} (token.revoke of {tid})"
        if self.t_token_revoke is not None:
            self.t_token_revoke.expect((idx,), row, f"record {idx} (token revocation {tid})",
                                       index=idx)
        g = self.grants.get(tid)
        if g is None:
            self.f.add(CHECK_AUTHORITY, f"{where}: no earlier record issued token {tid}: "
                       "forged", index=idx, table="log")
            return
        if g.revoked is not None:
            self.f.add(CHECK_AUTHORITY, f"{where}: the token was already revoked by record "
                       f"{g.revoked}", index=idx, table="log")
            return
        if product != g.product:
            self.f.add(CHECK_AUTHORITY, f"{where}: names product {product!r}, but record "
                       f"{g.issued} scoped the token to {g.product!r}", index=idx, table="log")
        g.revoked = idx

    def _refused(self, idx: int, product: str | None, aid: str, name: str, sha: str,
                 existing: str) -> None:
        """artifact.refused: a write-once refusal over bytes an earlier put stored."""
        self.refusals += 1
        f = self.f
        where = f"record {idx} (artifact.refused of {aid}, {product}/{name})"
        self._while_locked(idx, where, aid)
        art = self.art(aid)
        if art is None:
            f.add(CHECK_REFUSAL, f"{where}: no earlier record stored {product}/{name}, so "
                  f"there was nothing to refuse the write over, yet the refusal says the name "
                  f"holds sha256 {existing[:16]}…: bytes the log never stored (an artifact "
                  "row the log does not explain)", index=idx, artifact_id=aid, table="log")
            return
        if existing != art.sha256:
            f.add(CHECK_REFUSAL, f"{where}: says the name holds sha256 {existing[:16]}…, but "
                  f"record {art.idx} stored {art.sha256[:16]}… under it", index=idx,
                  artifact_id=aid, table="log")
        elif sha == existing:
            f.add(CHECK_REFUSAL, f"{where}: refuses the very bytes the name already holds "
                  "(the store acknowledges such a write as a duplicate)", index=idx,
                  artifact_id=aid, table="log")

    def _retention_refused(self, idx: int, product: str | None, aid: str, current: str,
                           requested: str) -> None:
        """retention.refused: a refused shortening of the retention the log says is in force."""
        self.refusals += 1
        f = self.f
        art = self.art(aid)
        where = (art.where(idx) if art else f"record {idx} (artifact {aid})") + \
            " (retention.refused)"
        self._while_locked(idx, where, aid)
        if art is None:
            f.add(CHECK_REFUSAL, f"{where}: no earlier record stored this artifact",
                  index=idx, artifact_id=aid, table="log")
            return
        if art.product != product:
            f.add(CHECK_REFUSAL, f"{where}: names product {product!r}, the artifact belongs "
                  f"to {art.product!r}", index=idx, artifact_id=aid, table="log")
        if current != art.eff:
            f.add(CHECK_REFUSAL, f"{where}: says the retention in force was {current}, but "
                  f"the log says {art.eff}", index=idx, artifact_id=aid, table="log")
        req, cur = _ts(requested), _ts(current)
        if req is not None and cur is not None and req > cur:
            f.add(CHECK_REFUSAL, f"{where}: refused {requested}, which extends the retention "
                  f"({current}); the store grants an extension", index=idx, artifact_id=aid,
                  table="log")

    def _while_locked(self, idx: int, what: str, aid: str | None = None) -> None:
        if self.locked is not None:
            reason, at = self.locked
            self.f.add(CHECK_GOVERNANCE, f"{what}: written while the store was under the "
                       f"governance lock of record {at} ({reason!r}); a locked store refuses "
                       "writes, so the record was forged", index=idx, artifact_id=aid,
                       table="log")

    def _put(self, idx: int, product: str | None, t: str, row: tuple[Any, ...],
             meta_rows: list[tuple[str, str, str, str]]) -> None:
        aid, name, sha = row[0], row[2], row[3]

        def where() -> str:  # worded only when something is wrong
            return f"record {idx} (artifact {aid}, {product}/{name})"

        self.t_artifact.expect((idx,), row, where, index=idx, artifact_id=aid)
        meta = self.t_meta
        for mrow in meta_rows:
            meta.expect((idx, mrow[2]), mrow, where, index=idx, artifact_id=aid,
                        meta_key=mrow[2])
        if self.locked is not None:
            self._while_locked(idx, where(), aid)
        old = self.arts.get(aid)
        if old is not None:
            self.f.add(CHECK_NAME, f"{where()}: {product}/{name} was already stored by record "
                       f"{_ART.unpack(old)[0]}; names are write-once, so a second put under "
                       "the same name was forged", index=idx, artifact_id=aid, table="log")
            return
        code = self.product_codes.get(product)
        if code is None:
            code = self.product_codes[product] = len(self.product_names)
            self.product_names.append(product)
        digest = bytes.fromhex(sha)
        file = row[9] == "file"
        self.arts[aid] = _ART.pack(idx, code, digest, file)
        if file:  # only files are shared (deduplicated); inline bytes are per artifact
            live = self.live_by_sha
            live[digest] = live.get(digest, 0) + 1
            size = row[4] if type(row[4]) is int else 0
            self.file_shas[digest] = max(size, self.file_shas.get(digest, 0))

    def _extend(self, idx: int, product: str | None, aid: str, previous: str,
                until: str) -> None:
        f = self.f
        art = self.art(aid)
        where = art.where(idx) if art else f"record {idx} (artifact {aid})"
        self.t_retention.expect((idx,), (idx, aid, until), f"{where} (retention.extend)",
                                index=idx, artifact_id=aid)
        self._while_locked(idx, where, aid)
        if art is None:
            f.add(CHECK_RETENTION, f"{where}: retention.extend for an artifact no earlier "
                  "record stored: forged", index=idx, artifact_id=aid, table="log")
            return
        if art.product != product:
            f.add(CHECK_RETENTION, f"{where}: retention.extend names product {product!r}, "
                  f"the artifact belongs to {art.product!r}", index=idx, artifact_id=aid,
                  table="log")
        if art.disposed >= 0:
            f.add(CHECK_RETENTION, f"{where}: retention.extend after the artifact was "
                  f"disposed at record {art.disposed}", index=idx, artifact_id=aid,
                  table="log")
        if previous != art.eff:
            f.add(CHECK_RETENTION, f"{where}: retention.extend says the retention in force "
                  f"was {previous}, but the log says {art.eff}", index=idx, artifact_id=aid,
                  table="log")
        new, cur = _ts(until), _ts(art.eff)
        if new is not None and cur is not None and new <= cur:
            f.add(CHECK_RETENTION, f"{where}: retention.extend sets retain-until {until}, "
                  f"which is not later than the retention then in force ({art.eff}): "
                  "retention was shortened, and retention may only be extended", index=idx,
                  artifact_id=aid, table="log")
        elif new is not None:
            self.eff[aid] = until

    def _hold(self, idx: int, product: str | None, scope: dict[str, Any],
              row: tuple[Any, ...]) -> None:
        hid, matter = row[0], row[1]
        self.t_hold.expect((idx,), row, f"record {idx} (hold {hid}, matter {matter!r})",
                           index=idx)
        if hid in self.holds:
            self.f.add(CHECK_HOLD, f"record {idx}: hold id {hid} was already placed by record "
                       f"{self.holds[hid].idx}: forged", index=idx, table="log")
            return
        for aid in scope.get("artifact_ids", ()):
            art = self.art(aid)
            if art is None or art.product != product:
                what = ("no earlier record stored it" if art is None
                        else f"it belongs to product {art.product!r}")
                self.f.add(CHECK_HOLD, f"record {idx} (hold {hid}, matter {matter!r}, product "
                           f"{product!r}): names artifact {aid}, but {what}", index=idx,
                           artifact_id=aid, table="log")
        self.holds[hid] = _HoldState(product, dict(scope), matter, idx)

    def _release(self, idx: int, matter: str, row: tuple[Any, ...]) -> None:
        hid = row[0]
        where = f"record {idx} (release of hold {hid})"
        self.t_release.expect((idx,), row, where, index=idx)
        self._while_locked(idx, where)
        h = self.holds.get(hid)
        if h is None:
            self.f.add(CHECK_HOLD, f"{where}: no earlier record placed this hold: forged",
                       index=idx, table="log")
            return
        if h.released:
            self.f.add(CHECK_HOLD, f"{where}: the hold was already released", index=idx,
                       table="log")
        if matter != h.matter:
            self.f.add(CHECK_HOLD, f"{where}: says matter {matter!r}, but record {h.idx} "
                       f"placed it for matter {h.matter!r}", index=idx, table="log")
        h.released = True

    def _dispose(self, idx: int, product: str | None, t: str, retain: str,
                 removed: bool, row: tuple[Any, ...]) -> None:
        f = self.f
        aid, sha = row[0], row[1]
        art = self.art(aid)
        where = art.where(idx) if art else f"record {idx} (artifact {aid})"
        self.t_disposal.expect((idx,), row, f"{where} (artifact.dispose)", index=idx,
                               artifact_id=aid)
        self._while_locked(idx, where, aid)
        if art is None:
            f.add(CHECK_DISPOSAL, f"{where}: disposal of an artifact no earlier record "
                  "stored: forged", index=idx, artifact_id=aid, table="log")
            return
        if art.disposed >= 0:
            f.add(CHECK_DISPOSAL, f"{where}: the artifact was already disposed at record "
                  f"{art.disposed}", index=idx, artifact_id=aid, table="log")
            return
        if sha != art.sha256 or product != art.product:
            f.add(CHECK_DISPOSAL, f"{where}: the disposal names sha256 {sha[:16]}… in "
                  f"product {product!r}, but the artifact is {art.sha256[:16]}… in "
                  f"{art.product!r}", index=idx, artifact_id=aid, table="log")
        when, until = _ts(t), _ts(art.eff)
        if when is not None and until is not None and when < until:
            f.add(CHECK_DISPOSAL, f"{where}: disposed at {t}, before its retention ran out "
                  f"({art.eff}): retention was not honoured", index=idx, artifact_id=aid,
                  table="log")
        if retain != art.eff:
            f.add(CHECK_DISPOSAL, f"{where}: the disposal says the retention was {retain}, "
                  f"but the log says {art.eff}", index=idx, artifact_id=aid, table="log")
        for hid, h in self.holds.items():
            if not h.released and h.covers(art):
                f.add(CHECK_HOLD, f"{where}: disposed while under legal hold {hid} (matter "
                      f"{h.matter!r}, placed at record {h.idx}, not released): a hold "
                      "blocks disposal", index=idx, artifact_id=aid, table="log")
        inline = art.storage == "inline"
        others = 0 if inline else self.live_by_sha.get(art.digest, 0) - 1
        if removed != (others == 0):
            f.add(CHECK_DISPOSAL, f"{where}: bytes_removed is {str(removed).lower()}, but "
                  f"{others} other live artifacts hold the same bytes", index=idx,
                  artifact_id=aid, table="log")
        self.gone[aid] = (idx, removed)
        if not inline:
            self.live_by_sha[art.digest] = others
        self.disposed += 1

    def _governance(self, idx: int, typ: str, lock_reason: str | None,
                    row: tuple[Any, ...]) -> None:
        self.t_governance.expect((idx,), row, f"record {idx} ({typ})", index=idx)
        if typ == "governance.lock":
            self.locked = (str(row[2]), idx)
            return
        if self.locked is None:
            self.f.add(CHECK_GOVERNANCE, f"record {idx}: governance.unlock while the store "
                       "was not locked", index=idx, table="log")
        elif lock_reason != self.locked[0]:
            self.f.add(CHECK_GOVERNANCE, f"record {idx}: governance.unlock names lock reason "
                       f"{lock_reason!r}, but the lock in force (record {self.locked[1]}) "
                       f"says {self.locked[0]!r}", index=idx, table="log")
        self.locked = None

    # ---------------------------------------------------------------- blobs
    def _inline_missing(self, aid: str, packed: bytes) -> None:
        """An inline artifact without an inline_blob row: fine once disposed."""
        art = _Art(self, aid, packed)
        if art.storage != "inline":
            return
        if art.disposed >= 0:
            self.removed_checked += 1
            return
        self.f.add(CHECK_BLOB, f"{art.where()}: its inline bytes are missing from table "
                   "inline_blob although it was never disposed: they were deleted",
                   index=art.idx, artifact_id=aid, table="inline_blob")

    def _inline_row(self, idx: Any, got: str, size: int, art: _Art | None) -> None:
        """One inline_blob row, and the artifact the log put at its index (if any)."""
        f = self.f
        if art is not None and art.storage == "inline" and art.disposed < 0:
            self.blobs_checked += 1
            if got != art.sha256:
                f.add(CHECK_BLOB, f"{art.where()}: its inline bytes (table inline_blob) hash "
                      f"to {got[:16]}…, not the recorded {art.sha256[:16]}…: the artifact's "
                      "bytes were altered", index=art.idx, artifact_id=art.id,
                      table="inline_blob")
        elif art is not None and art.storage == "inline":
            self.removed_checked += 1
            f.add(CHECK_BLOB, f"{art.where()}: disposed bytes remain: table inline_blob "
                  f"still holds its {size} bytes although record {art.disposed} disposed it "
                  "and removed its bytes", index=art.disposed, artifact_id=art.id,
                  table="inline_blob")
        elif not self._in_snapshot(idx):
            return  # written after this replay's snapshot (a live store)
        else:
            what = ("a file-backed artifact" if art is not None
                    else "no artifact in the log")
            f.add(CHECK_BLOB, f"table inline_blob has a row (log_idx {_show(idx)}, {size} "
                  f"bytes, sha256 {got[:16]}…) for {what}: it was inserted, or the record "
                  "that stored it was removed", index=idx if isinstance(idx, int) else None,
                  artifact_id=art.id if art is not None else None, table="inline_blob")

    def _inline_confirmed(self) -> bool:
        """Whether the chunk scans already showed table inline_blob to be exactly the bytes
        of the live inline artifacts: every chunk confirmed its rows (each the bytes of an
        inline put there, hashing to its record, none missing), no inline artifact was
        disposed (its bytes would have to be gone), and no row lies outside the log."""
        if not self.fast or self.blobs_seen is None:
            return False
        for aid in self.gone:
            packed = self.arts.get(aid)
            if packed is None or packed[42] == 0:
                return False
        outside = self.conn.execute("SELECT count(*) FROM inline_blob WHERE log_idx < 0 OR "
                                    "log_idx >= ?", (self.n,)).fetchone()[0]
        if outside:
            return False
        self.blobs_checked += self.blobs_seen
        return True

    def _check_blobs(self) -> None:
        f = self.f
        live = self.live_by_sha
        files = self.file_shas
        # File bytes whose every artifact is disposed, and whose last disposal removed them.
        dead: dict[bytes, _Art] = {}
        for aid, (_, removed) in self.gone.items():
            art = self.art(aid)
            if (art is not None and removed and art.digest in files
                    and live.get(art.digest, 0) == 0):
                dead.setdefault(art.digest, art)
        # Inline bytes: table inline_blob, one row per live inline artifact at its log
        # index, hashed in ranges of log index and merged with the artifacts in log order.
        if "inline_blob" in self.tables and self._inline_confirmed():
            pass
        elif "inline_blob" in self.tables:
            ranges = _blob_bounds(self.n, max(1, self.jobs) * 4)
            parts: Iterable[list[tuple[Any, str, int]]]
            if self.pool is not None:
                parts = self.pool.map(_hash_blob_rows_worker, [str(self.db)] * len(ranges),
                                      [r[0] for r in ranges], [r[1] for r in ranges])
            else:
                parts = (_hash_blob_rows(self.conn, lo, hi) for lo, hi in ranges)
            arts = iter(self.arts.items())  # log order: puts are replayed in order
            cur = next(arts, None)
            disposed = self.gone
            for part in parts:
                for idx, got, size in part:
                    if cur is not None and type(idx) is int:
                        # The common case, before any _Art is built: the live inline
                        # artifact put at this index, whose bytes hash to its record.
                        packed = cur[1]
                        if (int.from_bytes(packed[:8], "big") == idx and packed[42] == 0
                                and cur[0] not in disposed and got == packed[10:42].hex()):
                            self.blobs_checked += 1
                            cur = next(arts, None)
                            continue
                    while cur is not None and isinstance(idx, int) and (
                            _ART.unpack(cur[1])[0] < idx):
                        self._inline_missing(*cur)
                        cur = next(arts, None)
                    art = None
                    if cur is not None and isinstance(idx, int) and (
                            _ART.unpack(cur[1])[0] == idx):
                        art = _Art(self, *cur)
                        cur = next(arts, None)
                    self._inline_row(idx, got, size, art)
            while cur is not None:
                self._inline_missing(*cur)
                cur = next(arts, None)
        else:
            for aid, packed in self.arts.items():
                self._inline_missing(aid, packed)
        # File bytes: objects/ab/cd/<sha256>.
        objects = self.root / OBJECTS_DIR
        shas = sorted(d.hex() for d in files if live.get(d, 0) > 0)
        paths = [str(objects / h[:2] / h[2:4] / h) for h in shas]
        sizes = [files[bytes.fromhex(h)] for h in shas]
        hashes: Iterator[str | None]
        if self.blob_hasher is not None:
            hasher = self.blob_hasher
            hashes = (hasher(h) for h in shas)  # an injected reader (e.g. S3): serial
        elif self.pool is not None and paths:
            hashes = self.pool.map(_hash_path, paths, sizes, chunksize=4)
        else:
            hashes = (_hash_path(p, n) for p, n in zip(paths, sizes, strict=True))
        for hexsha, fpath, fhash in zip(shas, paths, hashes, strict=True):
            rel = os.path.relpath(fpath, self.root)
            if fhash is not None and not fhash.startswith("!"):
                self.blobs_checked += 1
                if fhash == hexsha:
                    continue
            art = self.owner(bytes.fromhex(hexsha))
            if fhash is None:
                f.add(CHECK_BLOB, f"{art.where()}: its blob file {rel} is missing although "
                      "the artifact was never disposed: its bytes were deleted",
                      index=art.idx, artifact_id=art.id, table="objects")
            elif fhash.startswith("!"):
                f.add(CHECK_BLOB, f"{art.where()}: its blob file {rel} is refused: "
                      f"{fhash[1:]}", index=art.idx, artifact_id=art.id, table="objects")
            else:
                f.add(CHECK_BLOB, f"{art.where()}: its blob file {rel} hashes to "
                      f"{fhash[:16]}…, not the recorded {hexsha[:16]}…: the artifact's bytes "
                      "were altered", index=art.idx, artifact_id=art.id, table="objects")
        for digest, d in dead.items():
            self.removed_checked += 1
            if digest not in files:
                continue
            h = digest.hex()
            gone = objects / h[:2] / h[2:4] / h
            if self.blob_exists(h) if self.blob_exists is not None else gone.exists():
                f.add(CHECK_BLOB, f"{d.where()}: disposed bytes remain: blob file "
                      f"{os.path.relpath(gone, self.root)} still exists although record "
                      f"{d.disposed} disposed the artifact and removed its bytes",
                      index=d.disposed, artifact_id=d.id, table="objects")

    # ---------------------------------------------------------------- result
    def _result(self) -> StoreResult:
        failed = self.f.failed
        checks: list[str] = []

        def passed(names: Sequence[str], text: str) -> None:
            if not failed.intersection(names):
                checks.append(text)

        n = self.n
        passed((CHECK_RECORD, CHECK_LOG, CHECK_LEAF_HASH),
               f"log: {n} records at indexes 0..{n - 1}, each the canonical encoding of a "
               "valid record and hashing to its stored leaf_hash")
        if self.init is not None:
            passed((CHECK_INIT, CHECK_KEY),
                   f"record 0 is store.init for origin {self.origin} and names the key you "
                   "trust")
        passed((CHECK_CHECKPOINT, CHECK_TRUNCATED),
               f"{self.good_cps} signed checkpoints verify with the trusted key and match the "
               "replayed tree" + (f" (latest covers {self.latest[0]} records)"
                                  if self.latest else ""))
        passed((CHECK_UNSIGNED,), "every record is covered by a signed checkpoint")
        passed((CHECK_NODE,), f"node table: {self.nodes_checked} stored subtree hashes match "
               "the replay, and there are no others")
        if self.anchors:
            passed((CHECK_ANCHOR,), f"{self.anchors_checked} checkpoints anchored in WORM "
                   "storage are consistent with the log (none rolled back, rewritten or "
                   "forked)")
        if self.since is not None:
            passed((CHECK_SINCE,), f"the log extends your saved checkpoint (size "
                   f"{self.since_cp[0] if self.since_cp else '?'}): nothing you saw was "
                   "rolled back or rewritten")
        passed((CHECK_DERIVED,), "derived tables (artifact, artifact_meta, retention, hold, "
               "hold_release, disposal, governance, tokens, meta) match the records row by row")
        passed((CHECK_ARTIFACT_ID, CHECK_NAME),
               f"{len(self.arts)} artifacts, each name written once, ids derived from names")
        passed((CHECK_RETENTION,), "retention met the minimum at every put and was only ever "
               "extended")
        passed((CHECK_HOLD, CHECK_DISPOSAL),
               f"{self.disposed} disposals, none before retention ran out or under a legal "
               "hold")
        passed((CHECK_GOVERNANCE,), "no write while the store was under a governance lock")
        revoked = sum(1 for g in self.grants.values() if g.revoked is not None)
        passed((CHECK_AUTHORITY,), f"authority: {self.authorized} records written on a "
               "token's authority, each by a token an earlier record issued, not revoked or "
               "expired at that record, whose role and product permit that record type; "
               f"{len(self.grants)} tokens issued, {revoked} revoked")
        passed((CHECK_REFUSAL,), f"refusals: {self.refusals} refusal records, each over an "
               "artifact an earlier record stored, stating the bytes or retention the log "
               "says it held")
        if self.check_blobs:
            passed((CHECK_BLOB,), f"blobs: {self.blobs_checked} live artifacts' bytes hash to "
                   f"their records; {self.removed_checked} disposed artifacts' bytes are gone; "
                   "no unreferenced blob rows")
        passed((CHECK_INTEGRITY,), "SQLite integrity_check: ok")
        if self.init is not None:
            passed((CHECK_SCHEMA,), "SQL schema (tables, indexes, WORM triggers) matches the "
                   "fingerprint frozen in store.init")
        return StoreResult(
            ok=self.f.total == 0,
            size=n,
            checkpoints=self.good_cps,
            artifacts=len(self.arts),
            checks=checks,
            findings=list(self.f.items),
            latest_checkpoint=self.latest[1] if self.latest else None,
            latest_checkpoint_size=self.latest[0] if self.latest else 0,
            origin=self.origin,
            verifier_key=str(self.init["verifier_key"]) if self.init else None,
            disposed=self.disposed,
            blobs_checked=self.blobs_checked,
            findings_total=self.f.total,
            engine=ENGINE_NATIVE if self.native else ENGINE_PYTHON,
        )


def _put_body_ok(b: Mapping[str, Any]) -> bool:
    """``_body_problem`` for an artifact.put, in one expression (most records are puts);
    False only means the loop below must find and word the problem."""
    g = b.get
    size = g("size")
    return (
        type(g("artifact_id")) is str and g("artifact_id") != ""
        and type(g("name")) is str and g("name") != ""
        and type(g("sha256")) is str and _HEX64.match(g("sha256", "")) is not None
        and type(size) is int and size >= 0
        and type(g("media_type")) is str
        and type(g("metadata")) is dict and type(g("provenance")) is dict
        and _ts(g("retain_until")) is not None and _ts(g("received")) is not None
        and g("storage") in ("inline", "file")
    )


def _body_problem(typ: str, body: Mapping[str, Any]) -> str | None:
    if typ == "artifact.put" and _put_body_ok(body):
        return None
    return _spec_problem(typ, body)


def _spec_problem(typ: str, body: Mapping[str, Any]) -> str | None:
    """What is wrong with ``body`` for a record of type ``typ`` (None: nothing)."""
    spec = _BODIES.get(typ)
    if spec is None:
        return f"unknown record type {typ!r}"
    for key, (ok, what) in spec.items():
        v = body.get(key, _ABSENT)
        if v is _ABSENT:
            return f"body has no {key!r}"
        # JSON values have exact types: the common checks inline, the rest by call.
        if ok is _is_nonempty:
            good = type(v) is str and v != ""
        elif ok is _is_str:
            good = type(v) is str
        elif ok is _is_dict:
            good = type(v) is dict
        else:
            good = ok(v)
        if not good:
            return f"body field {key!r} must be {what}, got {_show(v)}"
    return None


_ABSENT = object()


def _hex(v: Any) -> str:
    return v.hex()[:16] + "…" if isinstance(v, bytes) else _show(v)

