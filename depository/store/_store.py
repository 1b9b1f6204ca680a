"""The WORM store: artifacts, the audit log, checkpoints, retention, holds, governance.

One writer thread owns the SQLite write connection. Callers submit operations; the
writer runs every queued operation in one transaction (group commit), commits with
``synchronous=FULL`` (fsync), and only then acknowledges each caller. An acknowledged
write is therefore durable, and a crash loses only writes nobody was told succeeded.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import io
import json
import os
import re
import sqlite3
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, cast

import jsonschema
import yaml

from depository import __version__
from depository.signing import generate_key, sign_note, verifier_key_from_signer
from depository.store import _encode, _schema
from depository.store._authority import (
    TokenRow,
    UnexplainedRowError,
    WriterAuthority,
    explain_artifact,
    explain_token,
)
from depository.store._backend import (
    AnchorSink,
    BlobBackend,
    ObjectLocks,
    check_backend,
    log_retention_days,
    open_anchor_sink,
    open_backend,
)
from depository.store._blobs import BlobDir, _disk_error
from depository.store._errors import (
    ConfigError,
    DiskFullError,
    GovernanceLockedError,
    HoldError,
    MetadataError,
    NotFoundError,
    QuotaError,
    RetentionError,
    SchemaMismatchError,
    StoreClosedError,
    StoreError,
    StoreExistsError,
    StoreNotFoundError,
    UnknownProductError,
    WriteOnceError,
)
from depository.store._tree import Frontier, NodeRow
from depository.store.config import Config, Product, default_config_dict, dump_config, load_config
from depository.store.limits import check_metadata
from depository.tlog import merkle
from depository.tlog.checkpoint import Checkpoint, format_checkpoint, format_proof_file
from depository.tlog.record import Record, canonical_json, encode_record, parse_record

Clock = Callable[[], datetime]
DB_NAME = "depository.db"
CONFIG_NAME = "depository.yaml"
KEY_DIR = "keys"
SIGNER_KEY_NAME = "log.key"
VERIFIER_KEY_NAME = "log.vkey"
_MAX_BATCH = 5000
_CONTROL = re.compile(r"[\x00-\x1f]")
# Page cache of the writer connection (KiB, negative = size): the artifact id index and the
# tree tails stay in memory during bulk ingest (~+50 % measured). Readers get less each.
_WRITER_CACHE_KIB = 262144
_READER_CACHE_KIB = 65536
# put_many: items (and inline bytes) per writer operation, and the chunks queued at once.
# Several queued chunks let the writer commit more than one per fsync; measured on the
# 2-core benchmark machine, 2,000 x 4 ran ~1.5x faster than 1,000 x 2. Memory stays
# bounded: at most _BULK_INFLIGHT chunks of _BULK_CHUNK_BYTES inline bytes each.
_BULK_CHUNK = 2000
_BULK_CHUNK_BYTES = 16 * 1024 * 1024
_BULK_INFLIGHT = 4
_PUT_TAIL = _encode.envelope_parts("artifact.put", "x", None, b"{}")[1]


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


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(t: datetime) -> str:
    """RFC 3339 UTC with microseconds and a Z, the only form records carry."""
    if t.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    # isoformat is C code, several times faster than strftime on the put path; for years
    # 1000-9999 the text is the same as strftime("%Y-%m-%dT%H:%M:%S.%fZ").
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time or a date (``2033-01-31`` means its start, UTC)."""
    value = text.strip()
    if len(value) == 10:
        value += "T00:00:00Z"
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not an RFC 3339 time or YYYY-MM-DD date: {text!r}") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC)


def artifact_id(product: str, name: str) -> str:
    """Stable artifact id: derived from (product, name), which is written once."""
    digest = hashlib.sha256(product.encode() + b"\x00" + name.encode()).digest()
    # Lower-case base32 of 120 bits, 10 bits (two characters) at a time: the same text as
    # base64.b32encode(digest[:15]).lower(), without its pure-Python loop.
    n = int.from_bytes(digest[:15], "big")
    return "art_" + "".join([_B32_PAIRS[(n >> shift) & 1023] for shift in range(110, -1, -10)])


_B32_PAIRS = [a + b for a in "abcdefghijklmnopqrstuvwxyz234567"
              for b in "abcdefghijklmnopqrstuvwxyz234567"]


@dataclass(frozen=True)
class Receipt:
    """What a caller gets for an acknowledged (durable) write."""

    artifact_id: str
    product: str
    name: str
    sha256: str
    size: int
    log_index: int
    leaf_hash: bytes
    created: str
    retain_until: str
    duplicate: bool = False
    checkpoint: bytes | None = None
    proof: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "artifact_id": self.artifact_id,
            "product": self.product,
            "name": self.name,
            "sha256": self.sha256,
            "size": self.size,
            "log_index": self.log_index,
            "leaf_hash": self.leaf_hash.hex(),
            "created": self.created,
            "retain_until": self.retain_until,
            "duplicate": self.duplicate,
        }
        if self.checkpoint is not None:
            out["checkpoint"] = self.checkpoint.decode()
        if self.proof is not None:
            out["tlog_proof"] = self.proof.decode()
        return out


@dataclass(frozen=True)
class Artifact:
    """One artifact as the index serves it."""

    id: str
    product: str
    name: str
    sha256: str
    size: int
    media_type: str
    metadata: Mapping[str, Any]
    provenance: Mapping[str, Any]
    retain_until: str
    storage: str
    actor: str
    created: str
    log_index: int
    disposed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "artifact_id": self.id, "product": self.product, "name": self.name,
            "sha256": self.sha256, "size": self.size, "media_type": self.media_type,
            "metadata": dict(self.metadata), "provenance": dict(self.provenance),
            "retain_until": self.retain_until, "storage": self.storage, "actor": self.actor,
            "created": self.created, "log_index": self.log_index, "disposed": self.disposed,
        }


@dataclass(frozen=True)
class Hold:
    id: str
    matter: str
    reason: str
    actor: str
    product: str | None
    scope: Mapping[str, Any]
    placed_index: int
    placed_time: str
    released: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "hold_id": self.id, "matter": self.matter, "reason": self.reason,
            "actor": self.actor, "product": self.product, "scope": dict(self.scope),
            "placed_index": self.placed_index, "placed_time": self.placed_time,
            "released": self.released,
        }


ROLES = ("writer", "reader", "auditor", "legal", "admin")
# Roles that act within one product; the others are store-wide (legal may be either).
PRODUCT_ROLES = ("writer", "reader")
# Events with no derived table that other parts of the toolkit may append.
INFORMATIONAL_EVENTS = frozenset({"evidence.export", "certification.run",
                                  "certification.result"})


@dataclass(frozen=True)
class Token:
    """A bearer token's record (the secret itself is never stored)."""

    id: str
    role: str
    product: str | None
    expires: str | None
    note: str
    actor: str
    issued_index: int
    issued_time: str
    revoked: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "token_id": self.id, "role": self.role, "product": self.product,
            "expires": self.expires, "note": self.note, "actor": self.actor,
            "issued_index": self.issued_index, "issued_time": self.issued_time,
            "revoked": self.revoked,
        }

    def valid_at(self, now: datetime) -> bool:
        return not self.revoked and (self.expires is None or format_time(now) < self.expires)


def token_secret_hash(secret: str) -> str:
    """What the store keeps of a token: SHA-256 hex of the whole token string."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class _State:
    """Writer-owned state, snapshotted so a failed batch can be undone."""

    tree: Frontier
    usage: dict[str, list[int]]  # product -> [bytes, artifacts]
    locked: str | None

    def copy(self) -> _State:
        return _State(self.tree.copy(), {k: list(v) for k, v in self.usage.items()}, self.locked)


class _Txn:
    """What an operation sees inside the writer's transaction."""

    def __init__(self, store: Store, conn: sqlite3.Connection, state: _State, now: datetime):
        self.store = store
        self.conn = conn
        self.state = state
        self.now = now
        self.now_text = format_time(now)
        self.now_json = canonical_json(self.now_text)
        self.leaves: list[tuple[int, bytes, bytes]] = []
        self.nodes: list[NodeRow] = []
        self.leaves_added = False
        # True when the store's clock read earlier than the last record (see _try_batch).
        self.clamped = False
        # Rows of puts, inserted with one executemany per table by flush().
        self.art_rows: list[tuple[Any, ...]] = []
        self.meta_rows: list[tuple[str, str, str, int]] = []
        self.blob_rows: list[tuple[int, bytes]] = []
        # Artifacts by id: committed ones the batch's puts asked about (None: absent), and
        # those this transaction has put (not yet visible to SQL before a flush). Each is
        # (sha256, size, log_idx, created, retain_until, leaf_hash or None).
        self.known: dict[str, tuple[Any, ...] | None] = {}
        self.pending: dict[str, tuple[Any, ...]] = {}
        self.after_commit: list[Callable[[], None]] = []
        # Blob files this transaction's disposals will remove once it commits.
        self.removing: set[str] = set()

    @property
    def next_seq(self) -> int:
        return self.state.tree.size

    def append(self, type_: str, actor: str, product: str | None, body: dict[str, Any]) -> int:
        """Append a record; refused (raised) if ``actor`` is a token the log does not
        authorize to cause it (puts are judged in _apply_put, before write-once)."""
        err = self.store._authorize(self, actor, type_, product)
        if err is not None:
            raise err
        seq = self.state.tree.size
        leaf = encode_record(Record(
            seq=seq, time=self.now_text, type=type_, actor=actor, product=product, body=body,
        ))
        lh = merkle.leaf_hash(leaf)
        self.state.tree.append(lh, self.nodes)
        self.leaves.append((seq, leaf, lh))
        self.leaves_added = True
        return seq

    def append_leaf(self, leaf: bytes) -> bytes:
        """Append pre-encoded leaf bytes at ``next_seq``; returns the leaf hash."""
        lh = merkle.leaf_hash(leaf)
        seq = self.state.tree.size
        self.state.tree.append(lh, self.nodes)
        self.leaves.append((seq, leaf, lh))
        self.leaves_added = True
        return lh

    def token_row(self, token_id: str) -> TokenRow | None:
        return _token_row(self.conn, token_id)

    def leaf(self, idx: int) -> bytes | None:
        return _leaf(self.conn, idx)

    def lookup(self, aid: str) -> tuple[Any, ...] | None:
        """The artifact with this id as this transaction sees it, or None."""
        hit = self.pending.get(aid)
        if hit is not None:
            return hit
        if aid in self.known:
            return self.known[aid]
        row = self.conn.execute(
            "SELECT sha256, size, log_idx, created, retain_until FROM artifact WHERE id = ?",
            (aid,)).fetchone()
        self.known[aid] = None if row is None else (*row, None)
        return self.known[aid]

    def prefetch(self, aids: Sequence[str]) -> None:
        """Look up many ids with a few IN queries instead of one statement per put."""
        want = [a for a in dict.fromkeys(aids) if a not in self.known]
        for a in want:
            self.known[a] = None
        for i in range(0, len(want), 500):
            chunk = want[i:i + 500]
            for row in self.conn.execute(
                "SELECT id, sha256, size, log_idx, created, retain_until FROM artifact "
                f"WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ):
                self.known[row[0]] = (*row[1:], None)

    def flush(self) -> None:
        """Write the accumulated rows, so SQL run after this sees them."""
        conn = self.conn
        if self.leaves:
            conn.executemany("INSERT INTO log VALUES (?,?,?)", self.leaves)
            self.leaves = []
        if self.nodes:
            conn.executemany("INSERT INTO node VALUES (?,?,?)", self.nodes)
            self.nodes = []
        if self.art_rows:
            conn.executemany("INSERT INTO artifact VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                             self.art_rows)
            self.art_rows = []
        if self.meta_rows:
            conn.executemany("INSERT INTO artifact_meta VALUES (?,?,?,?)", self.meta_rows)
            self.meta_rows = []
        if self.blob_rows:
            conn.executemany("INSERT INTO inline_blob VALUES (?,?)", self.blob_rows)
            self.blob_rows = []


@dataclass
class _Op:
    apply: Callable[[_Txn], Any]
    future: Future[Any] = field(default_factory=Future)
    # Puts only add rows, so their inserts may wait for the batch's end; any other op
    # (which may query tables) first flushes them. ``aids``: ids to look up in advance.
    bulk: bool = False
    aids: Sequence[str] = ()


@dataclass(frozen=True)
class PutItem:
    """One artifact for :meth:`Store.put_many`."""

    product: str
    name: str
    data: bytes | BinaryIO
    metadata: Mapping[str, Any] | None = None
    provenance: Mapping[str, Any] | None = None
    media_type: str = "application/octet-stream"
    retain_until: datetime | None = None


class _Prepared(NamedTuple):
    """A put validated, stored (bytes) and encoded in the caller's thread (a tuple: it is
    built once per artifact on the hot path)."""

    prod: Product
    name: str
    aid: str
    sha256: str
    size: int
    data: bytes | None  # inline bytes, or None when stored as a file
    media_type: str
    meta_json: str
    prov_json: str
    meta_rows: tuple[tuple[str, str, str], ...]  # (product, key, value)
    retain: str
    actor: str
    head: bytes  # the record up to its seq (see _encode)


class Store:
    """A Depository store directory. Use :meth:`init` or :meth:`open`."""

    def __init__(
        self, path: Path, config: Config, *, signer_key: str | None, clock: Clock,
        readonly: bool, start_writer: bool = True,
    ) -> None:
        self.path = path
        self.config = config
        self.clock = clock
        self.readonly = readonly
        self.blobs: BlobBackend = open_backend(path / "objects", config.backend,
                                               readonly=readonly)
        # With Object Lock (s3) the cluster mirrors retention and holds of the catalog.
        self._locks: ObjectLocks | None = (
            cast(ObjectLocks, self.blobs) if self.blobs.object_lock else None)
        self.anchors: AnchorSink | None = None if readonly else open_anchor_sink(
            config.anchors, config.backend,
            retention_days=log_retention_days(config.default_retention_days,
                                              config.scale_limits))
        self.anchor_errors: list[str] = []
        self._signer = signer_key
        self._local = threading.local()
        self._validators = {
            pid: jsonschema.Draft202012Validator(p.metadata_schema)
            for pid, p in config.products.items()
        }
        self._closed = False
        self._queue: deque[_Op] = deque()
        self._cv = threading.Condition()
        self._writer: threading.Thread | None = None
        self._wconn: sqlite3.Connection | None = None
        self._last_cp_size = 0
        self._last_cp_time = time.monotonic()
        self._cp_waiters: list[tuple[int, Future[bytes]]] = []
        self._bypass_attempt: str | None = None
        self._authority = WriterAuthority()
        self._tamper: str | None = None  # a row the log does not explain, seen by a reader
        self._removed: set[str] = set()
        self._token_generation = 0
        self._token_lock = threading.Lock()
        self._lock_fd = -1
        if not readonly:
            self._lock_fd = _take_writer_lock(path)
            self._clear_stale_uploads()
            self._wconn = _connect(path / DB_NAME)
            self._wconn.execute(f"PRAGMA cache_size=-{_WRITER_CACHE_KIB}")
            self._state = self._load_state(self._wconn)
            self._last_time = self._last_record_time(self._wconn)
            if start_writer:
                self._writer = threading.Thread(
                    target=self._run_writer, name="depository-writer", daemon=True
                )
                self._writer.start()

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def init(
        cls, path: Path, *, config: Mapping[str, Any] | None = None, origin: str | None = None,
        signer_key_file: Path | None = None, clock: Clock = utc_now, actor: str = "admin",
    ) -> Store:
        """Create a new store directory and write its first, schema-freezing record."""
        path = Path(path)
        if (path / DB_NAME).exists():
            raise StoreExistsError(f"{path} already holds a store ({DB_NAME}); nothing changed")
        if config is None:
            data = default_config_dict(origin or "depository.local/log")
        else:
            data = dict(config)
            if origin is not None:
                data["origin"] = origin
        from depository.store.config import parse_config

        cfg = parse_config(data)
        check_backend(cfg.backend)  # e.g. refuse a bucket without Object Lock, before writing
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_NAME).write_text(dump_config(data), encoding="utf-8")
        BlobDir(path / "objects").create()
        signer, vkey = generate_key(cfg.origin)
        key_path = signer_key_file or (path / KEY_DIR / SIGNER_KEY_NAME)
        key_path.parent.mkdir(parents=True, exist_ok=True)
        _write_secret(key_path, signer + "\n")
        (path / KEY_DIR).mkdir(exist_ok=True)
        (path / KEY_DIR / VERIFIER_KEY_NAME).write_text(vkey + "\n")
        conn = _connect(path / DB_NAME)
        try:
            with conn:
                _schema.create(conn)
                conn.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                             (str(_schema.SCHEMA_VERSION),))
                conn.execute("INSERT INTO meta VALUES ('origin', ?)", (cfg.origin,))
                conn.execute("INSERT INTO meta VALUES ('verifier_key', ?)", (vkey,))
        finally:
            conn.close()
        store = cls(path, cfg, signer_key=signer, clock=clock, readonly=False)
        frozen = cfg.frozen_json()
        body = {
            "origin": cfg.origin,
            "verifier_key": vkey,
            "tool_version": __version__,
            "schema_version": _schema.SCHEMA_VERSION,
            "sql_schema_sha256": store._schema_fingerprint(),
            "frozen_config_sha256": hashlib.sha256(canonical_json(frozen)).hexdigest(),
            "products": {
                pid: {"name": p.name, "metadata_schema_sha256": p.schema_sha256(),
                      "quota_bytes": p.quota_bytes, "quota_artifacts": p.quota_artifacts}
                for pid, p in sorted(cfg.products.items())
            },
            "default_retention_days": cfg.default_retention_days,
            "max_artifact_size": cfg.max_artifact_size,
        }

        def op(txn: _Txn) -> None:
            txn.append("store.init", actor, None, body)

        store._submit(op).result()
        store.checkpoint()
        return store

    @classmethod
    def open(
        cls, path: Path, *, signer_key_file: Path | None = None, clock: Clock = utc_now,
        readonly: bool = False,
    ) -> Store:
        """Open an existing store; for writing unless ``readonly``.

        Opening for writing checks the frozen schemas and the tree against the last
        checkpoint; a mismatch is logged as a governance lock and refused.
        """
        path = Path(path)
        if not (path / DB_NAME).is_file():
            raise StoreNotFoundError(
                f"no store at {path} (no {DB_NAME}); create one with `depository init`"
            )
        _check_schema_version(path / DB_NAME)
        cfg = load_config(path / CONFIG_NAME)
        signer = None
        if not readonly:
            key_path = signer_key_file or _env_path("DEPOSITORY_SIGNER_KEY") or (
                path / KEY_DIR / SIGNER_KEY_NAME
            )
            try:
                signer = key_path.read_text().strip()
            except OSError as exc:
                raise StoreError(
                    f"cannot read the log signer key {key_path}: {exc.strerror}; pass "
                    "--signer-key FILE or set DEPOSITORY_SIGNER_KEY"
                ) from exc
        store = cls(path, cfg, signer_key=signer, clock=clock, readonly=readonly)
        if not readonly:
            try:
                store._check_on_open()
            except BaseException:
                store.close()
                raise
        return store

    def close(self) -> None:
        """Drain the writer, sign a final checkpoint if needed, and close."""
        if self._closed:
            return
        if self._writer is not None:
            try:
                if self._state.tree.size > self._last_cp_size:
                    self.checkpoint()
            except StoreError:
                pass
            with self._cv:
                self._closed = True
                self._cv.notify_all()
            self._writer.join()
        self._closed = True
        if self._wconn is not None:
            self._wconn.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the writer lock
            self._lock_fd = -1
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _clear_stale_uploads(self) -> None:
        # Only the lock holder writes here, so leftovers are uploads a crash interrupted:
        # none was acknowledged, and none is referenced by a record.
        for p in self.blobs.tmp.glob("upload-*"):
            with contextlib.suppress(OSError):
                p.unlink()
        self.blobs.clear_stale()

    # ------------------------------------------------------------------ reading
    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                f"file:{self.path / DB_NAME}?mode=ro", uri=True, check_same_thread=False
            )
            conn.execute("PRAGMA query_only=1")
            conn.execute(f"PRAGMA cache_size=-{_READER_CACHE_KIB}")
            self._local.conn = conn
        return conn

    @property
    def verifier_key(self) -> str:
        row = self._reader().execute("SELECT value FROM meta WHERE key='verifier_key'").fetchone()
        return str(row[0])

    @property
    def origin(self) -> str:
        return self.config.origin

    def size(self) -> int:
        row = self._reader().execute("SELECT max(idx) FROM log").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def product(self, product: str) -> Product:
        try:
            return self.config.products[product]
        except KeyError:
            raise UnknownProductError(
                f"unknown product {product!r}; configured products: "
                f"{', '.join(sorted(self.config.products))}"
            ) from None

    def get(self, product: str, name_or_id: str) -> Artifact:
        """An artifact of ``product`` by name or id (another product's is 'not found')."""
        self.product(product)
        # Both through the id index: a name is found by the id derived from it.
        derived = artifact_id(product, name_or_id)
        row = self._reader().execute(
            f"{_ARTIFACT_SELECT} WHERE a.id IN (?, ?) AND a.product = ? "
            "ORDER BY a.id = ? DESC LIMIT 1",
            (derived, name_or_id, product, derived),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no artifact {name_or_id!r} in product {product!r}")
        return _artifact(row)

    def get_by_id(self, artifact_id_: str) -> Artifact:
        row = self._reader().execute(f"{_ARTIFACT_SELECT} WHERE a.id = ?", (artifact_id_,)
                                     ).fetchone()
        if row is None:
            raise NotFoundError(f"no artifact {artifact_id_!r}")
        return _artifact(row)

    def open_content(self, art: Artifact) -> BinaryIO:
        """A reader over an artifact's bytes (refused once disposed)."""
        if art.disposed:
            raise NotFoundError(
                f"artifact {art.id} ({art.product}/{art.name}) was disposed after its "
                "retention; its record and proofs remain in the log"
            )
        if art.storage == "inline":
            row = self._reader().execute("SELECT data FROM inline_blob WHERE log_idx = ?",
                                         (art.log_index,)).fetchone()
            if row is None:
                raise StoreError(f"artifact {art.id}: inline bytes are missing (run scrub)")
            return io.BytesIO(row[0])
        try:
            return self.blobs.open(art.sha256)
        except OSError as exc:
            raise StoreError(f"artifact {art.id}: blob file unreadable: {exc.strerror}") from exc

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
                "FROM artifact a", "FROM artifact_meta m0 CROSS JOIN artifact a "
                "ON a.log_idx = m0.log_idx")
            products = [product] if product is not None else sorted(self.config.products)
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
        return [_artifact(r) for r in self._reader().execute(sql, args)]

    def log_entries(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """Raw leaves ``[start, end)`` in order."""
        for idx, leaf in self._reader().execute(
            "SELECT idx, leaf FROM log WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
        ):
            yield int(idx), bytes(leaf)

    def record(self, index: int) -> Record:
        row = self._reader().execute("SELECT leaf FROM log WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise NotFoundError(f"no log record at index {index} (log size {self.size()})")
        return parse_record(bytes(row[0]), index=index)

    def latest_checkpoint(self) -> tuple[int, bytes]:
        row = self._reader().execute(
            "SELECT size, note FROM checkpoint ORDER BY size DESC LIMIT 1"
        ).fetchone()
        if row is None:
            raise NotFoundError("no checkpoint has been signed yet")
        return int(row[0]), bytes(row[1])

    def checkpoint_at(self, size: int) -> bytes:
        row = self._reader().execute("SELECT note FROM checkpoint WHERE size = ?", (size,)
                                     ).fetchone()
        if row is None:
            raise NotFoundError(f"no signed checkpoint at size {size}")
        return bytes(row[0])

    def _node_fn(self, conn: sqlite3.Connection) -> Callable[[int, int], bytes]:
        def node(level: int, k: int) -> bytes:
            if level == 0:
                row = conn.execute("SELECT leaf_hash FROM log WHERE idx = ?", (k,)).fetchone()
            else:
                row = conn.execute("SELECT hash FROM node WHERE level = ? AND k = ?",
                                   (level, k)).fetchone()
            if row is None:
                raise StoreError(f"Merkle node ({level}, {k}) is missing from storage")
            return bytes(row[0])

        return node

    def _merkle(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Hashes of leaf ranges ``[lo, hi)``, their stored nodes fetched in two queries.

        One round trip per table instead of one per node (~2·log2 n) keeps a proof at a
        10M-record log well under a millisecond.
        """
        plan = [merkle.subtrees(lo, hi) for lo, hi in ranges]
        wanted = {p for parts in plan for p in parts}
        leaves = [k for level, k in wanted if level == 0]
        inner = [x for p in wanted if p[0] > 0 for x in p]
        conn = self._reader()
        got: dict[tuple[int, int], bytes] = {}
        if leaves:
            for idx, h in conn.execute(_LEAVES_SQL[len(leaves)], leaves):
                got[0, idx] = h
        if inner:
            for level, k, h in conn.execute(_NODES_SQL[len(inner) // 2], inner):
                got[level, k] = h
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

    def holds(self, *, include_released: bool = False) -> list[Hold]:
        rows = self._reader().execute(
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
        return [h for h in self.holds() if _hold_covers(h.product, h.scope, art)]

    def governance_status(self) -> dict[str, Any]:
        rows = self._reader().execute(
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

    def usage(self) -> dict[str, dict[str, int]]:
        """Live bytes and artifact counts per product (disposed artifacts excluded)."""
        out = {pid: {"bytes": 0, "artifacts": 0} for pid in self.config.products}
        for pid, b, n in self._reader().execute(
            "SELECT a.product, sum(a.size), count(*) FROM artifact a WHERE NOT EXISTS "
            "(SELECT 1 FROM disposal d WHERE d.artifact_id = a.id) GROUP BY a.product"
        ):
            out.setdefault(pid, {})
            out[pid] = {"bytes": int(b), "artifacts": int(n)}
        return out

    def queue_depth(self) -> int:
        """Operations waiting for the writer (a monitoring figure)."""
        with self._cv:
            return len(self._queue)

    # ------------------------------------------------------------------ writing
    def _require_writable(self) -> None:
        if self.readonly:
            raise StoreError("store was opened read-only")
        if self._closed:
            raise StoreClosedError("store is closed")

    def _submit(self, apply: Callable[[_Txn], Any], *, bulk: bool = False,
                aids: Sequence[str] = ()) -> Future[Any]:
        self._require_writable()
        op = _Op(apply, bulk=bulk, aids=aids)
        with self._cv:
            if self._closed:
                raise StoreClosedError("store is closed")
            self._queue.append(op)
            self._cv.notify()
        return op.future

    def put(
        self, product: str, name: str, stream: BinaryIO | bytes, *,
        metadata: Mapping[str, Any] | None = None, provenance: Mapping[str, Any] | None = None,
        media_type: str = "application/octet-stream", retain_until: datetime | None = None,
        actor: str = "cli", wait_checkpoint: bool = False,
    ) -> Receipt:
        """Store an artifact once; see :meth:`put_async`. Blocks until durable."""
        receipt: Receipt = self.put_async(
            product, name, stream, metadata=metadata, provenance=provenance,
            media_type=media_type, retain_until=retain_until, actor=actor,
        ).result()
        if wait_checkpoint:
            receipt = self.with_proof(receipt)
        return receipt

    def with_proof(self, receipt: Receipt) -> Receipt:
        """The receipt plus a signed checkpoint covering it and its tlog-proof."""
        size, note = self.latest_checkpoint()
        if size <= receipt.log_index:
            note = self.checkpoint()
            size = int(note.split(b"\n")[1])
        proof = format_proof_file(
            receipt.log_index, self.inclusion_proof(receipt.log_index, size), note
        )
        from dataclasses import replace

        return replace(receipt, checkpoint=note, proof=proof)

    def put_async(
        self, product: str, name: str, stream: BinaryIO | bytes, *,
        metadata: Mapping[str, Any] | None = None, provenance: Mapping[str, Any] | None = None,
        media_type: str = "application/octet-stream", retain_until: datetime | None = None,
        actor: str = "cli",
    ) -> Future[Receipt]:
        """Stream, hash and store the bytes, then queue the log append.

        The future resolves to a :class:`Receipt` once the record is committed and
        fsynced, or raises a :class:`StoreError` (write-once conflict, quota, lock...).
        """
        self._require_writable()
        pp = self._prepare_put(product, name, stream, metadata=metadata,
                               provenance=provenance, media_type=media_type,
                               retain_until=retain_until, actor=actor)

        def op(txn: _Txn) -> Receipt | StoreError:
            return self._apply_put(txn, pp)

        return self._submit(op, bulk=True, aids=(pp.aid,))

    def put_many(
        self, items: Iterable[PutItem], *, actor: str = "cli", chunk_size: int = _BULK_CHUNK,
    ) -> list[Receipt | StoreError]:
        """Store many (typically small) artifacts; one result per item, in order.

        See :meth:`iter_put_many`; this collects its results.
        """
        return list(self.iter_put_many(items, actor=actor, chunk_size=chunk_size))

    def iter_put_many(
        self, items: Iterable[PutItem], *, actor: str = "cli", chunk_size: int = _BULK_CHUNK,
    ) -> Iterator[Receipt | StoreError]:
        """Bulk ingestion: yields, per item and in order, its :class:`Receipt` or the
        :class:`StoreError` that refused it.

        Items are validated, stored and encoded in the caller's thread, ``chunk_size`` at a
        time (or 16 MiB of inline bytes); each chunk is one writer operation (one
        transaction with whatever else is queued). A result is yielded only once its
        chunk is committed and fsynced. An item refused for itself (metadata schema, name,
        retention, write-once conflict, quota, governance lock) gets its error, naming it
        by position and name, and writes no artifact; the other items of its chunk are
        stored. A failure below the items (disk full, I/O) fails its whole chunk: every
        item of it gets that error and none of it is written. At most four chunks are
        queued at once, so memory stays bounded however long ``items`` is; stopping the
        iteration early still lets queued chunks commit.
        """
        self._require_writable()
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        inflight: deque[tuple[list[_Prepared | StoreError], Future[Any] | None]] = deque()
        chunk: list[_Prepared | StoreError] = []
        held = 0  # inline bytes in this chunk
        for n, item in enumerate(items):
            try:
                pp = self._prepare_put(
                    item.product, item.name, item.data, metadata=item.metadata,
                    provenance=item.provenance, media_type=item.media_type,
                    retain_until=item.retain_until, actor=actor)
                held += len(pp.data) if pp.data is not None else 0
                chunk.append(pp)
            except StoreError as exc:
                chunk.append(_name_item(exc, n, item))
            if len(chunk) >= chunk_size or held >= _BULK_CHUNK_BYTES:
                inflight.append((chunk, self._submit_chunk(chunk)))
                chunk, held = [], 0
                while len(inflight) >= _BULK_INFLIGHT:
                    yield from _chunk_results(*inflight.popleft())
        if chunk:
            inflight.append((chunk, self._submit_chunk(chunk)))
        while inflight:
            yield from _chunk_results(*inflight.popleft())

    def _submit_chunk(self, chunk: list[_Prepared | StoreError]) -> Future[Any] | None:
        todo = [p for p in chunk if isinstance(p, _Prepared)]
        if not todo:
            return None

        def op(txn: _Txn) -> list[Receipt | StoreError]:
            return [self._apply_put(txn, pp) for pp in todo]

        return self._submit(op, bulk=True, aids=[p.aid for p in todo])

    def submit_prepared(self, pp: _Prepared) -> Future[Receipt]:
        """Queue a put already prepared elsewhere (:meth:`_prepare_put`, e.g. in an HTTP
        worker process): exactly what :meth:`put_async` does after preparing. The
        writer re-checks everything that depends on the log (write-once, quota, lock)."""
        self._require_writable()

        def op(txn: _Txn) -> Receipt | StoreError:
            return self._apply_put(txn, pp)

        return self._submit(op, bulk=True, aids=(pp.aid,))

    def _prepare_put(
        self, product: str, name: str, stream: BinaryIO | bytes, *,
        metadata: Mapping[str, Any] | None, provenance: Mapping[str, Any] | None,
        media_type: str, retain_until: datetime | None, actor: str,
    ) -> _Prepared:
        """Everything about a put that needs no writer: checks, bytes, encodings."""
        prod = self.product(product)
        if not isinstance(name, str) or not name or len(name) > 1024 or _CONTROL.search(name):
            raise MetadataError(f"artifact {name!r} in product {product!r}: name must be "
                                "1-1024 printable characters")
        what = f"artifact {name!r} in product {product!r}"
        if not isinstance(actor, str) or not actor:
            raise MetadataError(f"{what}: the actor must be a non-empty string")
        if not isinstance(media_type, str):
            raise MetadataError(f"{what}: media type must be a string")
        for field_, text in (("name", name), ("actor", actor), ("media type", media_type)):
            if not _is_utf8(text):
                raise MetadataError(f"{what}: the {field_} holds a lone surrogate (not valid "
                                    "Unicode text); give it as proper UTF-8")
        meta = dict(metadata or {})
        check_metadata(what, meta, provenance)
        meta_json = self._validate_json(meta, prod, what)
        if not isinstance(provenance or {}, Mapping):
            raise MetadataError(f"{what}: provenance must be a JSON object")
        try:
            prov_json = canonical_json(dict(provenance)) if provenance else b"{}"
        except ValueError as exc:
            raise MetadataError(f"{what}: provenance: {exc}") from exc
        if self._state.locked:
            raise GovernanceLockedError(self._lock_message())
        created_floor = self.clock()
        minimum = created_floor + timedelta(days=self.config.default_retention_days)
        if retain_until is None:
            retain = minimum
        else:
            retain = retain_until.astimezone(UTC)
            if retain < minimum - timedelta(seconds=60):
                raise RetentionError(
                    f"{what}: retain-until {format_time(retain)} is before the minimum "
                    f"retention ({self.config.default_retention_days} days, "
                    f"{format_time(minimum)}); give a later date or omit it"
                )
        if isinstance(stream, bytes | bytearray):
            stream = io.BytesIO(bytes(stream))
        ing = self.blobs.ingest(stream, max_size=self.config.max_artifact_size,
                                inline_max=self.config.inline_max, what=what,
                                retain_until=retain)
        aid = artifact_id(product, name)
        retain_text = format_time(retain)
        storage = "inline" if ing.data is not None else "file"
        # Retention runs from receipt; the record carries that time so the minimum can be
        # checked however long the upload and the queue took.
        body = _encode.put_body(
            artifact_id=aid, name=name, sha256=ing.sha256, size=ing.size,
            media_type=media_type, metadata_json=meta_json, provenance_json=prov_json,
            retain_until=retain_text, storage=storage, received=format_time(created_floor))
        head, _ = _encode.envelope_parts("artifact.put", actor, prod.id, body)
        return _Prepared(
            prod=prod, name=name, aid=aid, sha256=ing.sha256, size=ing.size, data=ing.data,
            media_type=media_type, meta_json=meta_json.decode(), prov_json=prov_json.decode(),
            meta_rows=tuple(meta_index_rows(prod.id, meta)), retain=retain_text, actor=actor,
            head=head)

    def _validate_json(self, meta: dict[str, Any], prod: Product, what: str) -> bytes:
        try:
            encoded = canonical_json(meta)
        except ValueError as exc:
            raise MetadataError(f"{what}: metadata: {exc}") from exc
        errors = list(self._validators[prod.id].iter_errors(meta))
        if errors:
            errors.sort(key=lambda e: e.path)
            e = errors[0]
            where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
            raise MetadataError(
                f"{what}: metadata field {where}: {e.message} (product {prod.id} schema); "
                "fix the metadata to match the product's schema"
            )
        return encoded

    def _apply_put(self, txn: _Txn, pp: _Prepared) -> Receipt | StoreError:
        prod, name, aid, sha = pp.prod, pp.name, pp.aid, pp.sha256
        if txn.state.locked:
            return GovernanceLockedError(self._lock_message(txn.state.locked))
        denied = self._authorize(txn, pp.actor, "artifact.put", prod.id)
        if denied is not None:
            return denied
        # Write-once: the id index (committed rows) and this transaction's own puts (the
        # same name twice in one batch). A retried batch starts a fresh transaction.
        row = txn.lookup(aid)
        if row is not None and row[5] is None:  # a committed row: the log must explain it
            try:
                explain_artifact(aid, row[0], row[2], txn.leaf)
            except UnexplainedRowError as exc:
                return self._unexplained(txn, str(exc))
        if row is not None:
            if row[0] == sha:
                lh = row[5]
                if lh is None:
                    lh = txn.conn.execute("SELECT leaf_hash FROM log WHERE idx = ?",
                                          (row[2],)).fetchone()[0]
                return Receipt(aid, prod.id, name, row[0], row[1], row[2], bytes(lh),
                               row[3], row[4], duplicate=True)
            txn.append("artifact.refused", pp.actor, prod.id, {
                "artifact_id": aid, "name": name, "sha256": sha, "size": pp.size,
                "reason": "write-once: the name already holds different bytes",
                "existing_sha256": row[0],
            })
            return WriteOnceError(
                f"artifact {name!r} in product {prod.id!r} already exists with different "
                f"bytes (sha256 {row[0]}); artifacts are write-once: store the new version "
                "under a new name"
            )
        used = txn.state.usage.setdefault(prod.id, [0, 0])
        if used[0] + pp.size > prod.quota_bytes:
            return QuotaError(
                f"product {prod.id!r} storage quota exceeded: {used[0]} of {prod.quota_bytes} "
                f"bytes used, this artifact needs {pp.size}",
                kind="bytes", used=used[0], limit=prod.quota_bytes,
            )
        if used[1] + 1 > prod.quota_artifacts:
            return QuotaError(
                f"product {prod.id!r} artifact-count quota exceeded: {used[1]} of "
                f"{prod.quota_artifacts} artifacts",
                kind="artifacts", used=used[1], limit=prod.quota_artifacts,
            )
        inline = pp.data is not None
        if not inline and sha in self._removed and self.blobs.exists(sha):
            self._removed.discard(sha)  # uploaded again after the disposal
        if not inline and (sha in txn.removing or sha in self._removed):
            # The same bytes were just disposed of under another artifact; the upload found
            # the old file and kept none of its own. Nothing is stored: the client retries.
            return StoreError(
                f"{name!r} in product {prod.id!r}: identical bytes were disposed of while "
                "this upload was in flight; nothing was stored, retry the upload"
            )
        seq = txn.state.tree.size
        now = txn.now_text
        lh = txn.append_leaf(_encode.splice(pp.head, seq, txn.now_json, _PUT_TAIL))
        txn.art_rows.append((seq, aid, prod.id, name, sha, pp.size, pp.media_type,
                             pp.meta_json, pp.prov_json, pp.retain,
                             "inline" if inline else "file", pp.actor, now))
        if pp.meta_rows:
            txn.meta_rows.extend([(p, k, v, seq) for p, k, v in pp.meta_rows])
        if pp.data is not None:
            txn.blob_rows.append((seq, pp.data))
        txn.pending[aid] = (sha, pp.size, seq, now, pp.retain, lh)
        used[0] += pp.size
        used[1] += 1
        if self._locks is not None and not inline:
            txn.after_commit.append(functools.partial(self._locks.after_put, self, aid))
        return Receipt(aid, prod.id, name, sha, pp.size, seq, lh, now, pp.retain)

    def checkpoint(self) -> bytes:
        """Sign a checkpoint over the current log now; returns the signed note."""
        fut: Future[bytes] = Future()

        def op(txn: _Txn) -> None:
            self._cp_waiters.append((0, fut))

        self._submit(op).result()
        return fut.result()

    def extend_retention(
        self, product: str, name_or_id: str, until: datetime, *, actor: str, reason: str,
    ) -> int:
        """Extend an artifact's retention. Shortening is refused and the attempt logged."""
        art = self.get(product, name_or_id)
        until_text = format_time(until.astimezone(UTC))
        if self._locks is not None and art.storage == "file" and not art.disposed and (
                until_text > art.retain_until and not self._state.locked):
            # Write-ahead: the object's COMPLIANCE retention is extended before the record.
            self.blobs.extend_retention(art.sha256, until)

        def op(txn: _Txn) -> int | StoreError:
            current = self._effective_retention(txn.conn, art.id, art.retain_until)
            if txn.state.locked:
                return GovernanceLockedError(self._lock_message(txn.state.locked))
            if until_text <= current:
                txn.append("retention.refused", actor, art.product, {
                    "artifact_id": art.id, "current": current, "requested": until_text,
                    "reason": reason,
                })
                return RetentionError(
                    f"artifact {art.id} ({art.product}/{art.name}): retention can only be "
                    f"extended; it runs until {current}, {until_text} was asked. The attempt "
                    "is recorded in the audit log."
                )
            seq = txn.append("retention.extend", actor, art.product, {
                "artifact_id": art.id, "previous": current, "retain_until": until_text,
                "reason": reason,
            })
            txn.conn.execute("INSERT INTO retention VALUES (?,?,?)", (seq, art.id, until_text))
            return seq

        return int(self._submit(op).result())

    @staticmethod
    def _effective_retention(conn: sqlite3.Connection, aid: str, base: str) -> str:
        row = conn.execute("SELECT max(retain_until) FROM retention WHERE artifact_id = ?",
                           (aid,)).fetchone()
        return max(base, row[0]) if row[0] else base

    def place_hold(
        self, *, matter: str, reason: str, actor: str, artifact_ids: Sequence[str] = (),
        product: str | None = None, since: datetime | None = None,
        until: datetime | None = None,
    ) -> Hold:
        """Place a legal hold over listed artifacts, or a product's artifacts in a time range."""
        if not matter.strip() or not reason.strip():
            raise HoldError("a hold needs a matter id and a reason")
        if bool(artifact_ids) == (product is not None):
            raise HoldError("give either artifact ids or a product (with an optional time range)")
        scope: dict[str, Any]
        if artifact_ids:
            arts = [self.get_by_id(a) for a in artifact_ids]
            products = {a.product for a in arts}
            if len(products) != 1:
                raise HoldError("a hold's artifacts must all belong to one product")
            product = products.pop()
            scope = {"artifact_ids": sorted(set(artifact_ids))}
        else:
            assert product is not None
            self.product(product)
            scope = {"from": format_time(since) if since else None,
                     "to": format_time(until) if until else None}

        def op(txn: _Txn) -> Hold:
            hid = f"hold-{txn.next_seq}"
            seq = txn.append("hold.place", actor, product, {
                "hold_id": hid, "matter": matter, "reason": reason, "scope": scope,
            })
            txn.conn.execute("INSERT INTO hold VALUES (?,?,?,?,?,?,?,?)", (
                hid, matter, reason, actor, product, canonical_json(scope).decode(), seq,
                txn.now_text))
            return Hold(hid, matter, reason, actor, product, scope, seq, txn.now_text, False)

        # Object Lock: legal hold on every covered object before the record (write-ahead).
        mark = self._locks.before_hold(self, product, scope) if self._locks else -1
        hold: Hold = self._submit(op).result()
        if self._locks is not None:
            self._locks.after_hold(self, product, scope, mark)
        return hold

    def release_hold(self, hold_id: str, *, reason: str, actor: str) -> int:
        """Release a hold; the hold and its release both stay in the log."""
        if not reason.strip():
            raise HoldError("releasing a hold needs a reason")

        def op(txn: _Txn) -> int | StoreError:
            row = txn.conn.execute(
                "SELECT h.matter, h.product, r.hold_id FROM hold h "
                "LEFT JOIN hold_release r ON r.hold_id = h.id WHERE h.id = ?", (hold_id,)
            ).fetchone()
            if row is None:
                return HoldError(f"no hold {hold_id!r}; list them with `depository hold list`")
            if row[2] is not None:
                return HoldError(f"hold {hold_id} is already released")
            if txn.state.locked:
                return GovernanceLockedError(self._lock_message(txn.state.locked))
            seq = txn.append("hold.release", actor, row[1], {
                "hold_id": hold_id, "matter": row[0], "reason": reason,
            })
            txn.conn.execute("INSERT INTO hold_release VALUES (?,?,?,?,?)",
                             (hold_id, reason, actor, seq, txn.now_text))
            return seq

        seq = int(self._submit(op).result())
        if self._locks is not None:
            self._locks.after_release(self, hold_id)
        return seq

    def disposable(self, now: datetime) -> list[Artifact]:
        """Artifacts whose retention has expired at ``now`` and that no hold covers."""
        now_text = format_time(now)
        holds = self.holds()
        out = []
        for row in self._reader().execute(
            f"{_ARTIFACT_SELECT} WHERE d.artifact_id IS NULL AND a.retain_until < ? "
            "ORDER BY a.log_idx", (now_text,)
        ):
            art = _artifact(row)
            if self._effective_retention(self._reader(), art.id, art.retain_until) >= now_text:
                continue
            if any(_hold_covers(h.product, h.scope, art) for h in holds):
                continue
            out.append(art)
        return out

    def dispose(self, now: datetime | None = None, *, actor: str,
                artifact_ids: Sequence[str] | None = None) -> list[int]:
        """Dispose expired, unheld artifacts' bytes; each disposal is a log record.

        Expiry is judged at the store's clock (``now`` defaults to it and may not run
        ahead of it), and checked again when the disposal record is written.
        """
        clock_now = self.clock()
        if now is None:
            now = clock_now
        elif now > clock_now + timedelta(seconds=1):
            raise RetentionError(
                f"cannot dispose as of {format_time(now)}: the store's clock reads "
                f"{format_time(clock_now)}, and a disposal is judged at the time it is "
                "recorded. Preview with `dispose --dry-run --now ...`; dispose once the "
                "retention has run out."
            )
        candidates = self.disposable(now)
        if artifact_ids is not None:
            wanted = set(artifact_ids)
            found = {a.id for a in candidates}
            blocked = sorted(wanted - found)
            if blocked:
                raise RetentionError(
                    f"cannot dispose {', '.join(blocked)}: not expired at {format_time(now)}, "
                    "under a legal hold, already disposed, or unknown"
                )
            candidates = [a for a in candidates if a.id in wanted]
        results = []
        for art in candidates:
            results.append(self._submit(self._dispose_op(art, actor)).result())
        return [int(r) for r in results]

    def _dispose_op(self, art: Artifact, actor: str) -> Callable[[_Txn], Any]:
        def op(txn: _Txn) -> int | StoreError:
            if txn.state.locked:
                return GovernanceLockedError(self._lock_message(txn.state.locked))
            if txn.clamped:
                # The clock stepped back behind the log: judging expiry at the (later)
                # time the record would carry could dispose early. Wait for the clock.
                return RetentionError(
                    f"artifact {art.id}: the store's clock reads earlier than its last "
                    f"record ({txn.now_text}); disposal waits until the clock catches up")
            # Re-check under the writer: a hold or extension may have landed meanwhile.
            current = self._effective_retention(txn.conn, art.id, art.retain_until)
            held = [
                r[0] for r in txn.conn.execute(
                    "SELECT h.id, h.product, h.scope FROM hold h WHERE NOT EXISTS "
                    "(SELECT 1 FROM hold_release r WHERE r.hold_id = h.id)"
                ) if _hold_covers(r[1], json.loads(r[2]), art)
            ]
            if current >= txn.now_text or held:
                return RetentionError(
                    f"artifact {art.id} ({art.product}/{art.name}) is not disposable at "
                    f"{txn.now_text}: retained until {current}"
                    + (f", under legal hold {', '.join(held)}" if held else ""))
            # Inline bytes belong to this artifact alone; a file is shared by every
            # file-backed artifact with the same bytes (counted by the partial index).
            others = 0 if art.storage == "inline" else txn.conn.execute(
                "SELECT count(*) FROM artifact a WHERE a.sha256 = ? AND a.storage = 'file' "
                "AND a.id != ? AND NOT EXISTS "
                "(SELECT 1 FROM disposal d WHERE d.artifact_id = a.id)",
                (art.sha256, art.id),
            ).fetchone()[0]
            seq = txn.append("artifact.dispose", actor, art.product, {
                "artifact_id": art.id, "sha256": art.sha256, "retain_until": current,
                "bytes_removed": others == 0,
            })
            txn.conn.execute("INSERT INTO disposal VALUES (?,?,?,?)",
                             (art.id, art.sha256, seq, txn.now_text))
            if art.storage == "inline":
                # The trigger allows this only now the disposal row exists.
                txn.conn.execute("DELETE FROM inline_blob WHERE log_idx = ?",
                                 (art.log_index,))
            elif others == 0:
                txn.removing.add(art.sha256)
                txn.after_commit.append(lambda: self._remove_blob(art.sha256))
            txn.state.usage[art.product][0] -= art.size
            txn.state.usage[art.product][1] -= 1
            return seq

        return op

    def _remove_blob(self, sha256_hex: str) -> None:
        # Remembered so an upload of the same bytes that found the file just before its
        # removal is refused rather than recorded against missing bytes.
        self._removed.add(sha256_hex)
        self.blobs.remove(sha256_hex)

    def lock(self, reason: str, *, check: str, actor: str = "depository") -> int:
        """Record a governance lock: writes are refused until an admin unlocks."""

        def op(txn: _Txn) -> int:
            return self._apply_lock(txn, reason, check, actor)

        return int(self._submit(op).result())

    def _apply_lock(self, txn: _Txn, reason: str, check: str, actor: str) -> int:
        seq = txn.append("governance.lock", actor, None, {"reason": reason, "check": check})
        txn.conn.execute("INSERT INTO governance VALUES (?,?,?,?,?)",
                         (seq, "locked", reason, actor, txn.now_text))
        txn.state.locked = reason
        return seq

    def unlock(self, *, reason: str, actor: str) -> int:
        """Lift a governance lock (logged). The cause must be fixed first."""
        if not reason.strip():
            raise StoreError("unlocking needs a reason (it is recorded in the audit log)")

        def op(txn: _Txn) -> int | StoreError:
            if not txn.state.locked:
                return StoreError("the store is not locked")
            seq = txn.append("governance.unlock", actor, None, {
                "reason": reason, "lock_reason": txn.state.locked,
            })
            txn.conn.execute("INSERT INTO governance VALUES (?,?,?,?,?)",
                             (seq, "unlocked", reason, actor, txn.now_text))
            txn.state.locked = None
            return seq

        return int(self._submit(op).result())

    def _lock_message(self, reason: str | None = None) -> str:
        return (
            f"the store is under a governance lock: {reason or self._state.locked}. Writes are "
            "refused until an admin investigates and runs `depository governance unlock "
            "--reason ...`"
        )

    # ------------------------------------------------------------------ tokens
    def create_token(
        self, *, role: str, actor: str, product: str | None = None,
        expires: datetime | None = None, note: str = "",
    ) -> tuple[str, Token]:
        """Issue a bearer token; returns (secret, record). The secret is shown only now."""
        if role not in ROLES:
            raise StoreError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        if role in PRODUCT_ROLES and product is None:
            raise StoreError(f"a {role} token needs a product (--product)")
        if role in ("auditor", "admin") and product is not None:
            raise StoreError(f"an {role} token is store-wide; omit --product")
        if product is not None:
            self.product(product)
        expires_text = format_time(expires) if expires else None
        if expires is not None and expires <= self.clock():
            raise StoreError("the token's expiry is in the past")
        import secrets as _secrets

        def op(txn: _Txn) -> tuple[str, Token]:
            tid = f"tok-{txn.next_seq}"
            secret = f"dep_{tid}_{_secrets.token_urlsafe(32)}"
            digest = token_secret_hash(secret)
            seq = txn.append("token.issue", actor, product, {
                "token_id": tid, "role": role, "expires": expires_text,
                "secret_sha256": digest, "note": note,
            })
            txn.conn.execute("INSERT INTO token VALUES (?,?,?,?,?,?,?,?,?)", (
                tid, role, product, expires_text, digest, note, actor, seq, txn.now_text))
            self._authority.issued(tid, role, product, expires_text, seq)
            return secret, Token(tid, role, product, expires_text, note, actor, seq,
                                 txn.now_text)

        result: tuple[str, Token] = self._submit(op).result()
        self._tokens_changed()
        return result

    def revoke_token(self, token_id: str, *, reason: str, actor: str) -> int:
        """Revoke a token (logged); it stops working at once."""
        if not reason.strip():
            raise StoreError("revoking a token needs a reason")

        def op(txn: _Txn) -> int | StoreError:
            row = _token_row(txn.conn, token_id)
            if row is None:
                return NotFoundError(f"no token {token_id!r}; list them with "
                                     "`depository token list`")
            try:
                grant = explain_token(token_id, row, txn.leaf)
            except UnexplainedRowError as exc:
                return self._unexplained(txn, str(exc))
            if grant.revoked is not None:
                return StoreError(f"token {token_id} is already revoked")
            seq = txn.append("token.revoke", actor, grant.product, {
                "token_id": token_id, "reason": reason})
            txn.conn.execute("INSERT INTO token_revoke VALUES (?,?,?,?,?)",
                             (token_id, reason, actor, seq, txn.now_text))
            self._authority.revoked(grant, seq)
            return seq

        try:
            return int(self._submit(op).result())
        finally:
            self._tokens_changed()

    @property
    def token_generation(self) -> int:
        """Changes after every token issued or revoked through this instance (committed).

        A cache of :meth:`authenticate` answers stays correct by reading this *before*
        each lookup and dropping entries whose generation is no longer current.
        """
        return self._token_generation

    def _tokens_changed(self) -> None:
        with self._token_lock:  # two revocations at once must both move it
            self._token_generation += 1

    def tokens(self) -> list[Token]:
        return [_token(r) for r in self._reader().execute(f"{_TOKEN_SELECT} ORDER BY t.issued_idx")]

    def authenticate(self, secret: str, now: datetime) -> Token | None:
        """The live token for this secret at ``now``, or None (unknown, expired, revoked,
        or a token row the log does not explain: that is reported as tampering)."""
        conn = self._reader()
        row = conn.execute(f"{_TOKEN_SELECT} WHERE t.secret_sha256 = ?",
                           (token_secret_hash(secret),)).fetchone()
        if row is None:
            return None
        tok = _token(row)
        found = _token_row(conn, tok.id)
        try:
            if found is None:
                raise UnexplainedRowError(f"token {tok.id}: its row changed while it was read")
            grant = explain_token(tok.id, found, functools.partial(_leaf, conn))
        except UnexplainedRowError as exc:
            self._report_tamper(str(exc))
            return None
        if grant.revoked is not None:
            return None
        return tok if tok.valid_at(now) else None

    # ------------------------------------------------------------ authority
    def _authorize(self, txn: _Txn, actor: str, typ: str, product: str | None
                   ) -> StoreError | None:
        """Whether ``actor`` may cause a ``typ`` record now, judged from the log (see
        :mod:`depository.store._authority`); a row the log does not explain locks."""
        if not actor.startswith("token:"):
            return None
        try:
            return self._authority.refuse(actor, typ, product, txn.now, txn)
        except UnexplainedRowError as exc:
            return self._unexplained(txn, str(exc))

    def _unexplained(self, txn: _Txn, reason: str) -> StoreError:
        """Refuse a write decided by a row the log does not explain, and lock the store
        (the lock record commits with the batch)."""
        if not txn.state.locked:
            self._apply_lock(txn, f"tampering: {reason}", "tamper", "depository")
        return GovernanceLockedError(self._lock_message(txn.state.locked))

    def _report_tamper(self, reason: str) -> None:
        """A reader saw a row the log does not explain: the writer (if this instance runs
        one) records a governance lock."""
        if self._writer is not None:
            self._tamper = reason
            with self._cv:
                self._cv.notify_all()

    # ------------------------------------------------------------ other events
    def append_event(
        self, type_: str, *, actor: str, product: str | None, body: Mapping[str, Any],
    ) -> tuple[int, bytes]:
        """Append an informational record (e.g. ``evidence.export``); returns
        (log index, leaf hash). Only types without derived state are allowed."""
        if type_ not in INFORMATIONAL_EVENTS:
            raise StoreError(f"event type {type_!r} cannot be appended directly")
        if product is not None:
            self.product(product)
        data = dict(body)

        def op(txn: _Txn) -> tuple[int, bytes] | StoreError:
            if txn.state.locked:
                return GovernanceLockedError(self._lock_message(txn.state.locked))
            seq = txn.append(type_, actor, product, data)
            return seq, txn.leaves[-1][2]

        result: tuple[int, bytes] = self._submit(op).result()
        return result

    # ----------------------------------------------------------- writer thread
    def _run_writer(self) -> None:
        assert self._wconn is not None
        every_ms = self.config.checkpoint_every_ms / 1000
        while True:
            with self._cv:
                if not self._queue and not self._closed:
                    self._cv.wait(timeout=every_ms)
                batch: list[_Op] = []
                while self._queue and len(batch) < _MAX_BATCH:
                    batch.append(self._queue.popleft())
                closing = self._closed and not self._queue
            if batch:
                self._run_batch(batch)
            if self._bypass_attempt:
                reason = f"a write tried to bypass WORM ({self._bypass_attempt})"
                self._bypass_attempt = None
                self._run_batch([_Op(functools.partial(
                    self._apply_lock, reason=reason, check="worm", actor="depository"))])
            if self._tamper:
                reason, self._tamper = f"tampering: {self._tamper}", None
                if self._state.locked is None:
                    self._run_batch([_Op(functools.partial(
                        self._apply_lock, reason=reason, check="tamper", actor="depository"))])
            self._maybe_checkpoint(force=False)
            if closing:
                return

    def _run_batch(self, batch: list[_Op]) -> None:
        results = self._try_batch(batch)
        if results is None:
            # Something failed below the operations (disk full, I/O error): run them one
            # at a time so only the one that cannot be written fails.
            if len(batch) == 1:
                return
            for op in batch:
                self._run_batch([op])

    def _try_batch(self, batch: list[_Op]) -> list[Any] | None:
        assert self._wconn is not None
        conn = self._wconn
        snapshot = self._state.copy()
        # Record times never go backwards in log order, even if the wall clock steps back:
        # a batch is stamped at least at the previous record's time. So artifact.created
        # rises with log_idx, and ls walks (product, created) in log order (no sort).
        now = self.clock()
        clamped = now < self._last_time
        txn = _Txn(self, conn, self._state, self._last_time if clamped else now)
        txn.clamped = clamped
        results: list[Any] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            txn.prefetch([a for op in batch for a in op.aids])
            for op in batch:
                if not op.bulk:
                    txn.flush()  # it may query what the puts before it wrote
                try:
                    results.append(op.apply(txn))
                except StoreError as exc:
                    results.append(exc)
            txn.flush()
            conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            if conn.in_transaction:
                conn.rollback()
            self._state = snapshot
            self._authority.clear()
            if isinstance(exc, sqlite3.IntegrityError) and "depository:" in str(exc):
                # A WORM trigger fired: something tried to update or delete a record.
                self._bypass_attempt = str(exc)
            if len(batch) == 1:
                batch[0].future.set_exception(_sqlite_error(exc))
            return None
        except BaseException as exc:
            if conn.in_transaction:
                conn.rollback()
            self._state = snapshot
            self._authority.clear()
            for op in batch:
                op.future.set_exception(exc)
            return []
        if txn.leaves_added:
            self._last_time = txn.now
        for fn in txn.after_commit:
            # A disposed file left behind by a failure here is removed by the next scrub.
            with contextlib.suppress(OSError):
                fn()
        for op, res in zip(batch, results, strict=True):
            if isinstance(res, BaseException):
                op.future.set_exception(res)
            else:
                op.future.set_result(res)
        return results

    def _maybe_checkpoint(self, *, force: bool) -> None:
        size = self._state.tree.size
        waiters, self._cp_waiters = self._cp_waiters, []
        due = size > self._last_cp_size and (
            size - self._last_cp_size >= self.config.checkpoint_every_entries
            or time.monotonic() - self._last_cp_time >= self.config.checkpoint_every_ms / 1000
        )
        if not (force or waiters or due):
            return
        try:
            note = self._sign_checkpoint()
        except (StoreError, sqlite3.Error, OSError) as exc:
            err = exc if isinstance(exc, StoreError) else _sqlite_error(exc)
            for _, fut in waiters:
                fut.set_exception(err)
            return
        for _, fut in waiters:
            fut.set_result(note)

    def _sign_checkpoint(self) -> bytes:
        assert self._wconn is not None and self._signer is not None
        size = self._state.tree.size
        if size == self._last_cp_size and size > 0:
            note = self._wconn.execute("SELECT note FROM checkpoint WHERE size = ?", (size,)
                                       ).fetchone()
            if note is not None:
                return bytes(note[0])
        root = self._state.tree.root()
        note = sign_note(format_checkpoint(Checkpoint(self.origin, size, root)), self._signer)
        with self._wconn:
            self._wconn.execute("INSERT OR IGNORE INTO checkpoint VALUES (?,?,?,?)",
                                (size, root, note, format_time(self.clock())))
        if self.anchors is not None:
            # WORM anchor (checkpoints/<size> under COMPLIANCE retention). A failure leaves
            # the checkpoint signed and stored; the next one is anchored anew.
            try:
                self.anchors.write(size, note, self.clock())
            except Exception as exc:
                self.anchor_errors[:] = [*self.anchor_errors[-99:], f"size {size}: {exc}"]
        self._last_cp_size = size
        self._last_cp_time = time.monotonic()
        return note

    # ------------------------------------------------------------- open checks
    def _load_state(self, conn: sqlite3.Connection) -> _State:
        row = conn.execute("SELECT max(idx) FROM log").fetchone()
        size = 0 if row[0] is None else int(row[0]) + 1
        tree = Frontier.load(size, self._node_fn(conn))
        usage: dict[str, list[int]] = {pid: [0, 0] for pid in self.config.products}
        for pid, b, n in conn.execute(
            "SELECT a.product, sum(a.size), count(*) FROM artifact a WHERE NOT EXISTS "
            "(SELECT 1 FROM disposal d WHERE d.artifact_id = a.id) GROUP BY a.product"
        ):
            usage[pid] = [int(b), int(n)]
        gov = conn.execute(
            "SELECT state, reason FROM governance ORDER BY log_idx DESC LIMIT 1"
        ).fetchone()
        cp = conn.execute("SELECT max(size) FROM checkpoint").fetchone()
        self._last_cp_size = int(cp[0] or 0)
        return _State(tree, usage, gov[1] if gov and gov[0] == "locked" else None)

    @staticmethod
    def _last_record_time(conn: sqlite3.Connection) -> datetime:
        row = conn.execute("SELECT leaf FROM log ORDER BY idx DESC LIMIT 1").fetchone()
        if row is None:
            return datetime.min.replace(tzinfo=UTC)
        try:
            return parse_time(parse_record(bytes(row[0])).time)
        except Exception:
            # A damaged last record: _check_on_open/verify report it; do not clamp to it.
            return datetime.min.replace(tzinfo=UTC)

    def _schema_fingerprint(self) -> str:
        assert self._wconn is not None
        return _schema.schema_fingerprint(self._wconn)

    def _check_on_open(self) -> None:
        """Frozen schemas, the tree against the last checkpoint; lock on a mismatch."""
        assert self._wconn is not None
        problems: list[tuple[str, str]] = []
        row = self._wconn.execute("SELECT leaf FROM log WHERE idx = 0").fetchone()
        if row is None:
            raise StoreError("the store has no init record; it was not created by "
                             "`depository init` or its log was truncated")
        init = parse_record(bytes(row[0]), index=0).body
        if init.get("sql_schema_sha256") != self._schema_fingerprint():
            problems.append(("schema", "the SQL schema (tables, indexes or WORM triggers) no "
                             "longer matches the one frozen at init"))
        frozen = hashlib.sha256(canonical_json(self.config.frozen_json())).hexdigest()
        if init.get("frozen_config_sha256") != frozen:
            changed = [
                pid for pid, p in self.config.products.items()
                if init.get("products", {}).get(pid, {}).get("metadata_schema_sha256")
                != p.schema_sha256()
            ]
            problems.append(("schema", "the origin or products (metadata schemas, quotas) in "
                             f"{CONFIG_NAME} differ from those frozen at init"
                             + (f" (schemas changed: {', '.join(changed)})" if changed else "")
                             + "; restore the original configuration"))
        cp = self._wconn.execute(
            "SELECT size, root FROM checkpoint ORDER BY size DESC LIMIT 1"
        ).fetchone()
        if cp is not None:
            try:
                root = merkle.root_from_nodes(self._node_fn(self._wconn), int(cp[0]))
            except StoreError as exc:
                root = b""
                problems.append(("integrity", f"tree storage incomplete: {exc}"))
            if root and root != bytes(cp[1]):
                problems.append(("integrity", f"the stored tree at size {cp[0]} does not match "
                                 "its signed checkpoint root"))
        if cp is not None and self._state.tree.size < int(cp[0]):
            problems.append(("integrity", f"the log has {self._state.tree.size} records but a "
                             f"checkpoint covers {cp[0]}: records were removed"))
        if not problems:
            return
        reason = "; ".join(p for _, p in problems)
        if self._state.locked != reason:
            self.lock(reason, check=problems[0][0])
        raise SchemaMismatchError(
            f"store {self.path} refuses to open for writing: {reason}. The event is "
            "recorded as a governance lock; run `depository verify store` to investigate."
        )

    # ------------------------------------------------------------------- scrub
    def scrub(self, *, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Re-hash every live blob against its record and run SQLite's integrity check."""
        conn = self._reader()
        total = conn.execute("SELECT count(*) FROM artifact").fetchone()[0]
        problems: list[dict[str, Any]] = []
        leftovers: list[str] = []
        checked = 0
        for n, row in enumerate(conn.execute(
            f"{_ARTIFACT_SELECT} ORDER BY a.log_idx"
        ), 1):
            art = _artifact(row)
            if progress and n % 100 == 0:
                progress(n, total)
            if art.disposed:
                live = art.storage == "file" and conn.execute(
                    "SELECT count(*) FROM artifact a WHERE a.sha256 = ? AND a.storage = 'file' "
                    "AND NOT EXISTS (SELECT 1 FROM disposal d WHERE d.artifact_id = a.id)",
                    (art.sha256,)
                ).fetchone()[0]
                if art.storage == "file" and not live and self.blobs.exists(art.sha256):
                    # The disposal is committed and logged; finish removing its bytes.
                    if not self.readonly:
                        self.blobs.remove(art.sha256)
                    leftovers.append(art.id)
                continue
            if art.storage == "inline":
                blob = conn.execute("SELECT data FROM inline_blob WHERE log_idx = ?",
                                    (art.log_index,)).fetchone()
                got = hashlib.sha256(blob[0]).hexdigest() if blob else None
            else:
                got = self.blobs.hash(art.sha256)
            checked += 1
            if got != art.sha256:
                problems.append({
                    "artifact_id": art.id, "product": art.product, "name": art.name,
                    "log_index": art.log_index,
                    "problem": "bytes missing" if got is None else f"bytes hash to {got}",
                })
        if progress:
            progress(total, total)
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        backend = self.blobs.audit(self, fix=not self.readonly)  # orphans; s3: lock drift
        problems += backend.get("lock_problems", [])
        report = {"artifacts": total, "checked": checked, "problems": problems,
                  "sqlite_integrity": integrity, "disposed_bytes_removed": leftovers,
                  "backend": backend}
        if (problems or integrity != ["ok"]) and not self.readonly and not self._state.locked:
                self.lock(f"scrub found {len(problems)} damaged artifacts; integrity "
                          f"{integrity[0]}", check="scrub")
        return report


def meta_index_rows(product: str, meta: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(product, key, value) of the metadata index: top-level scalar fields (strings as
    themselves, other scalars as their canonical JSON)."""
    rows: list[tuple[str, str, str]] = []
    for k, v in meta.items():
        if isinstance(v, str):
            rows.append((product, k, v))
        elif isinstance(v, bool | int | float) or v is None:
            rows.append((product, k, canonical_json(v).decode()))
    return rows


def _name_item(exc: StoreError, n: int, item: PutItem) -> StoreError:
    """The error refusing bulk item ``n``, its message naming the item."""
    exc.args = (f"item {n} ({item.product}/{item.name}): {exc}", *exc.args[1:])
    return exc


def _chunk_results(chunk: list[_Prepared | StoreError], fut: Future[Any] | None
                   ) -> Iterator[Receipt | StoreError]:
    """Per-item results of a put_many chunk, once it is durable (or failed as a whole)."""
    results: list[Receipt | StoreError] = []
    if fut is not None:
        try:
            results = list(fut.result())
        except StoreError as exc:
            # Below the items (disk full, I/O): the chunk's transaction rolled back.
            results = [exc] * sum(isinstance(p, _Prepared) for p in chunk)
    done = iter(results)
    for p in chunk:
        yield next(done) if isinstance(p, _Prepared) else p


def _is_utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (no lone surrogates): records are UTF-8 JSON."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _hold_covers(product: str | None, scope: Mapping[str, Any], art: Artifact) -> bool:
    if product is not None and product != art.product:
        return False
    if "artifact_ids" in scope:
        return art.id in scope["artifact_ids"]
    lo, hi = scope.get("from"), scope.get("to")
    return (lo is None or art.created >= lo) and (hi is None or art.created < hi)


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


def _token_row(conn: sqlite3.Connection, token_id: str) -> TokenRow | None:
    """A token's row and its revocation's log index, as :func:`explain_token` takes them."""
    row = conn.execute(
        "SELECT t.role, t.product, t.expires, t.secret_sha256, t.issued_idx, r.log_idx "
        "FROM token t LEFT JOIN token_revoke r ON r.token_id = t.id WHERE t.id = ?",
        (token_id,)).fetchone()
    return None if row is None else (str(row[0]), row[1], row[2], str(row[3]), int(row[4]),
                                     None if row[5] is None else int(row[5]))


def _leaf(conn: sqlite3.Connection, idx: int) -> bytes | None:
    row = conn.execute("SELECT leaf FROM log WHERE idx = ?", (idx,)).fetchone()
    return None if row is None else bytes(row[0])


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


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def _check_schema_version(db: Path) -> None:
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


def _sqlite_error(exc: BaseException) -> StoreError:
    text = str(exc)
    if isinstance(exc, sqlite3.Error) and "full" in text.lower():
        return DiskFullError(
            f"the disk is full ({text}); nothing was written and the log is unchanged. "
            "Free space, then retry."
        )
    if isinstance(exc, OSError):
        return _disk_error(exc, "store")
    return StoreError(f"storage error: {text}; nothing was written")


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _take_writer_lock(path: Path) -> int:
    """Hold an exclusive lock on the store: one writer process at a time."""
    fd = os.open(path / ".writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(
            f"another process has the store {path} open for writing; stop it or use that "
            "process (read-only commands work alongside it)"
        ) from None
    return fd


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def read_config_file(path: Path) -> dict[str, Any]:
    """Load a YAML configuration file as a dict (validated later by ``init``)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping at the top level")
    return data


__all__ = [
    "INFORMATIONAL_EVENTS",
    "PRODUCT_ROLES",
    "ROLES",
    "Artifact",
    "Hold",
    "PutItem",
    "Receipt",
    "Store",
    "Token",
    "artifact_id",
    "format_time",
    "parse_time",
    "read_config_file",
    "token_secret_hash",
    "utc_now",
    "verifier_key_from_signer",
]


# A prepared put on the wire (serve --workers): a JSON header, then the encoded record
# head and the inline bytes as raw bytes (no base64 on the hot path).
_WIRE_LEN = struct.Struct("!III")


def encode_prepared(pp: _Prepared) -> bytes:
    """``pp`` as bytes for another process; see :func:`decode_prepared`."""
    header = json.dumps([
        pp.prod.id, pp.name, pp.aid, pp.sha256, pp.size, pp.media_type, pp.meta_json,
        pp.prov_json, pp.meta_rows, pp.retain, pp.actor, pp.data is not None,
    ], ensure_ascii=False, separators=(",", ":")).encode()
    data = pp.data if pp.data is not None else b""
    return b"".join((_WIRE_LEN.pack(len(header), len(pp.head), len(data)), header, pp.head,
                     data))


def decode_prepared(store: Store, buf: bytes | memoryview) -> _Prepared:
    """The :class:`_Prepared` that :func:`encode_prepared` encoded, for ``store``.

    The product comes from this store's configuration (the same file both processes
    read), so an unknown product id fails here rather than at the writer."""
    mv = memoryview(buf)
    n_header, n_head, n_data = _WIRE_LEN.unpack_from(mv)
    at = _WIRE_LEN.size
    h = json.loads(bytes(mv[at:at + n_header]))
    at += n_header
    head = bytes(mv[at:at + n_head])
    at += n_head
    data = bytes(mv[at:at + n_data]) if h[11] else None
    return _Prepared(
        prod=store.product(h[0]), name=h[1], aid=h[2], sha256=h[3], size=int(h[4]),
        data=data, media_type=h[5], meta_json=h[6], prov_json=h[7],
        meta_rows=tuple((str(a), str(b), str(c)) for a, b, c in h[8]), retain=h[9],
        actor=h[10], head=head)
