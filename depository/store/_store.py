"""The WORM store: a façade over the reads, the writer and the blob backend.

:class:`Store` opens a store directory and wires its components (each with a written
contract, see ``docs/adr/0009-store-components.md``):

- :class:`~depository.store._reads.StoreReads`: every query (artifacts, log, proofs,
  checkpoints, holds, governance, tokens), read-only connections per thread;
- a :class:`~depository.store._writer.StoreWriter` for every mutation: in process, a
  :class:`~depository.store._writer.LocalWriter` (group commit over a
  :class:`~depository.store._logstore.LogStorage`); in a ``serve --workers`` HTTP worker,
  a :class:`~depository.store._remote.RemoteWriter` to the parent's writer;
- a :class:`~depository.store._backend.BlobBackend` for artifacts' bytes, which never
  sees the catalog;
- :class:`~depository.store._artifacts.Preparer`: a put's checks, bytes and encoding,
  done in the caller's thread before the writer sees it.

Every mutating call is durable when it returns (fsync before acknowledging).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from depository.signing import generate_key
from depository.store._artifacts import BULK_CHUNK, Preparer, iter_put_many
from depository.store._authority import UnexplainedRowError
from depository.store._backend import (
    AnchorSink,
    BlobBackend,
    check_backend,
    log_retention_days,
    open_anchor_sink,
    open_backend,
)
from depository.store._blobs import BlobDir
from depository.store._engine import WriterEngine
from depository.store._errors import (
    ConfigError,
    SchemaMismatchError,
    StoreClosedError,
    StoreError,
    StoreExistsError,
    StoreNotFoundError,
    UnknownProductError,
)
from depository.store._frozen import CONFIG_NAME, init_body, open_problems
from depository.store._logstore import (
    DB_NAME,
    LogStorage,
    SqliteLogStorage,
    check_schema_version,
    create_database,
)
from depository.store._model import (
    Artifact,
    Clock,
    Hold,
    PutItem,
    Receipt,
    Token,
    utc_now,
)
from depository.store._prepared import PreparedPut
from depository.store._reads import ReadConnections, StoreReads
from depository.store._scrub import scrub
from depository.store._writer import LocalWriter, StoreWriter
from depository.store.config import Config, Product, default_config_dict, dump_config, load_config
from depository.tlog.checkpoint import format_proof_file
from depository.tlog.record import Record

KEY_DIR = "keys"
SIGNER_KEY_NAME = "log.key"
VERIFIER_KEY_NAME = "log.vkey"


class Store:
    """A Depository store directory. Use :meth:`init`, :meth:`open` or :meth:`attach`."""

    def __init__(
        self, path: Path, config: Config, *, signer_key: str | None, clock: Clock,
        readonly: bool, start_writer: bool = True,
        writer: Callable[[StoreReads], StoreWriter] | None = None,
    ) -> None:
        self.path = path
        self.config = config
        self.clock = clock
        # With a writer of its own or attached, this process stores uploads' bytes.
        self.readonly = readonly and writer is None
        self.blobs: BlobBackend = open_backend(path / "objects", config.backend,
                                               readonly=self.readonly)
        self.reads = StoreReads(_read_source(path, config), self.product,
                                list(config.products))
        self.local_writer: LocalWriter | None = None
        self.writer: StoreWriter | None = None
        self.anchors: AnchorSink | None = None
        self._closed = False
        self._lock_fd = -1
        now = self._now
        if writer is not None:
            self.writer = writer(self.reads)
        elif not readonly:
            assert signer_key is not None
            self.anchors = open_anchor_sink(
                config.anchors, config.backend,
                retention_days=log_retention_days(config.default_retention_days,
                                                  config.scale_limits))
            if config.engine.type == "sqlite":
                # (PostgreSQL: the writer session's advisory lock, see _pg.PgLogStorage)
                self._lock_fd = _take_writer_lock(path)
            storage = _log_storage(path, config)
            self._clear_stale_uploads()
            engine = WriterEngine(
                storage, origin=config.origin, signer=signer_key, clock=now,
                anchors=self.anchors, checkpoint_every_ms=config.checkpoint_every_ms,
                checkpoint_every_entries=config.checkpoint_every_entries,
                products=list(config.products), start=start_writer)
            self.local_writer = LocalWriter(engine, self.reads, self.blobs, now)
            self.writer = self.local_writer
        self._preparer = Preparer(
            config, self.blobs, now, self.product,
            known_lock=self.writer.known_lock if self.writer else lambda: None,
            before_stream=self.writer.before_stream if self.writer else lambda: None)

    def _now(self) -> datetime:
        return self.clock()  # read late: tests and drills set store.clock

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def init(
        cls, path: Path, *, config: Mapping[str, Any] | None = None, origin: str | None = None,
        signer_key_file: Path | None = None, clock: Clock = utc_now, actor: str = "admin",
        admin_dsn: str | None = None,
    ) -> Store:
        """Create a new store directory and write its first, schema-freezing record.

        With ``engine: {type: postgresql}`` in the configuration, ``admin_dsn`` connects
        as the role that will own the tables (used only here, to create them); the store
        then runs as the role named in the engine's DSN (ADR 0013)."""
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
        signer, vkey = generate_key(cfg.origin)
        if cfg.engine.type == "postgresql":
            if (path / CONFIG_NAME).exists():
                raise StoreExistsError(f"{path} already holds a store ({CONFIG_NAME}); "
                                       "nothing changed")
            if not admin_dsn:
                raise ConfigError(
                    "creating a PostgreSQL store needs the DSN of the role that will own its "
                    "tables (--admin-dsn); the store itself runs as the role in engine.dsn")
            from depository.store import _pg

            # First (the service role's session, then the schema in one transaction): a
            # refusal here leaves nothing behind.
            _pg.connect(engine_dsn(cfg)).close()
            _pg.create_database(admin_dsn, engine_dsn(cfg), origin=cfg.origin,
                                verifier_key=vkey)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_NAME).write_text(dump_config(data), encoding="utf-8")
        BlobDir(path / "objects").create()
        key_path = signer_key_file or (path / KEY_DIR / SIGNER_KEY_NAME)
        key_path.parent.mkdir(parents=True, exist_ok=True)
        _write_secret(key_path, signer + "\n")
        (path / KEY_DIR).mkdir(exist_ok=True)
        (path / KEY_DIR / VERIFIER_KEY_NAME).write_text(vkey + "\n")
        if cfg.engine.type == "sqlite":
            create_database(path, origin=cfg.origin, verifier_key=vkey)
        store = cls(path, cfg, signer_key=signer, clock=clock, readonly=False)
        engine = store._engine()
        body = init_body(cfg, vkey, engine.db.schema_fingerprint())
        engine.submit(lambda txn: txn.append("store.init", actor, None, body)).result()
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
        cfg = _open_config(path)
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

    @classmethod
    def attach(cls, path: Path, writer: Callable[[StoreReads], StoreWriter], *,
               clock: Clock = utc_now) -> Store:
        """Open a store whose writer runs elsewhere (``serve --workers``): reads here,
        uploads' bytes stored here, every mutation through ``writer(reads)``."""
        path = Path(path)
        return cls(path, _open_config(path), signer_key=None, clock=clock, readonly=True,
                   writer=writer)

    def close(self) -> None:
        """Drain the writer, sign a final checkpoint if needed, and close."""
        if self._closed:
            return
        self._closed = True
        if self.writer is not None:
            self.writer.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the writer lock
            self._lock_fd = -1
        self.reads.close()

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

    def _engine(self) -> WriterEngine:
        if self.local_writer is None:
            raise StoreError("this store's writer runs in another process")
        return self.local_writer.engine

    def _writable(self) -> StoreWriter:
        if self.writer is None:
            raise StoreError("store was opened read-only")
        if self._closed:
            raise StoreClosedError("store is closed")
        return self.writer

    def _check_on_open(self) -> None:
        """Frozen schemas, the tree against the last checkpoint; lock on a mismatch."""
        engine = self._engine()
        problems = open_problems(engine.db, engine.state.tree.size, self.config)
        if not problems:
            return
        reason = "; ".join(p for _, p in problems)
        if engine.state.locked != reason:
            self.lock(reason, check=problems[0][0])
        raise SchemaMismatchError(
            f"store {self.path} refuses to open for writing: {reason}. The event is "
            "recorded as a governance lock; run `depository verify store` to investigate."
        )

    # ------------------------------------------------------------------ reading
    @property
    def verifier_key(self) -> str:
        return self.reads.verifier_key

    @property
    def origin(self) -> str:
        return self.config.origin

    @property
    def anchor_errors(self) -> list[str]:
        return self.local_writer.engine.anchor_errors if self.local_writer else []

    def product(self, product: str) -> Product:
        try:
            return self.config.products[product]
        except KeyError:
            raise UnknownProductError(
                f"unknown product {product!r}; configured products: "
                f"{', '.join(sorted(self.config.products))}"
            ) from None

    def size(self) -> int:
        return self.reads.size()

    def get(self, product: str, name_or_id: str) -> Artifact:
        """An artifact of ``product`` by name or id (another product's is 'not found')."""
        return self.reads.get(product, name_or_id)

    def get_by_id(self, artifact_id_: str) -> Artifact:
        return self.reads.get_by_id(artifact_id_)

    def open_content(self, art: Artifact) -> BinaryIO:
        """A reader over an artifact's bytes (refused once disposed)."""
        from depository.store._errors import NotFoundError

        if art.disposed:
            raise NotFoundError(
                f"artifact {art.id} ({art.product}/{art.name}) was disposed after its "
                "retention; its record and proofs remain in the log"
            )
        if art.storage == "inline":
            data = self.reads.inline_bytes(art.log_index)
            if data is None:
                raise StoreError(f"artifact {art.id}: inline bytes are missing (run scrub)")
            return io.BytesIO(data)
        try:
            return self.blobs.open(art.sha256)
        except OSError as exc:
            raise StoreError(f"artifact {art.id}: blob file unreadable: {exc.strerror}") from exc

    def ls(
        self, *, product: str | None = None, prefix: str | None = None,
        since: str | None = None, until: str | None = None,
        meta: Mapping[str, str] | None = None, after: int | None = None, limit: int = 100,
    ) -> list[Artifact]:
        """Artifacts matching every filter, in log order, ``limit`` at most after cursor."""
        return self.reads.ls(product=product, prefix=prefix, since=since, until=until,
                             meta=meta, after=after, limit=limit)

    def log_entries(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """Raw leaves ``[start, end)`` in order."""
        return self.reads.log_entries(start, end)

    def record(self, index: int) -> Record:
        return self.reads.record(index)

    def latest_checkpoint(self) -> tuple[int, bytes]:
        return self.reads.latest_checkpoint()

    def checkpoint_at(self, size: int) -> bytes:
        return self.reads.checkpoint_at(size)

    def root_at(self, size: int) -> bytes:
        return self.reads.root_at(size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.reads.inclusion_proof(index, size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        return self.reads.consistency_proof(size1, size2)

    def proof_file(self, index: int, size: int | None = None) -> bytes:
        """A C2SP tlog-proof for leaf ``index`` under the signed checkpoint of ``size``
        (without ``size``, the latest checkpoint covering the leaf)."""
        return self.reads.proof_file(index, size)

    def holds(self, *, include_released: bool = False) -> list[Hold]:
        return self.reads.holds(include_released=include_released)

    def holds_covering(self, art: Artifact) -> list[Hold]:
        return self.reads.holds_covering(art)

    def governance_status(self) -> dict[str, Any]:
        return self.reads.governance_status()

    def usage(self) -> dict[str, dict[str, int]]:
        """Live bytes and artifact counts per product (disposed artifacts excluded)."""
        return self.reads.usage()

    def disposable(self, now: datetime) -> list[Artifact]:
        """Artifacts whose retention has expired at ``now`` and that no hold covers."""
        return self.reads.disposable(now)

    def tokens(self) -> list[Token]:
        return self.reads.tokens()

    def authenticate(self, secret: str, now: datetime) -> Token | None:
        """The live token for this secret at ``now``, or None (unknown, expired, revoked,
        or a row the log does not explain: then the writer records a tamper lock)."""
        try:
            return self.reads.authenticate(secret, now)
        except UnexplainedRowError as exc:
            if self.writer is not None:
                self.writer.report_tamper(str(exc))
            return None

    def queue_depth(self) -> int:
        """Operations waiting for the writer (a monitoring figure)."""
        return self.writer.queue_depth() if self.writer is not None else 0

    @property
    def token_generation(self) -> int:
        """Changes after every token issued or revoked (committed) that this store's
        writer sees. A cache of :meth:`authenticate` answers stays correct by reading this
        *before* each lookup and dropping entries whose generation is no longer current."""
        return self.writer.token_generation if self.writer is not None else 0

    # ------------------------------------------------------------------ writing
    def prepare_put(
        self, product: str, name: str, stream: BinaryIO | bytes, *,
        metadata: Mapping[str, Any] | None = None, provenance: Mapping[str, Any] | None = None,
        media_type: str = "application/octet-stream", retain_until: datetime | None = None,
        actor: str = "cli",
    ) -> PreparedPut:
        """Check, store and encode a put without the writer (see :class:`PreparedPut`)."""
        self._writable()
        return self._preparer.prepare(product, name, stream, metadata=metadata,
                                      provenance=provenance, media_type=media_type,
                                      retain_until=retain_until, actor=actor)

    def put(
        self, product: str, name: str, stream: BinaryIO | bytes, *,
        metadata: Mapping[str, Any] | None = None, provenance: Mapping[str, Any] | None = None,
        media_type: str = "application/octet-stream", retain_until: datetime | None = None,
        actor: str = "cli", wait_checkpoint: bool = False,
    ) -> Receipt:
        """Store an artifact once; see :meth:`put_async`. Blocks until durable."""
        writer = self._writable()
        pp = self._preparer.prepare(product, name, stream, metadata=metadata,
                                    provenance=provenance, media_type=media_type,
                                    retain_until=retain_until, actor=actor)
        if writer is self.local_writer:  # in-process: wait on a lock, not a Future
            receipt = self.local_writer.put(pp)
        else:
            receipt = writer.submit_put(pp).result()
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
        writer = self._writable()
        pp = self._preparer.prepare(product, name, stream, metadata=metadata,
                                    provenance=provenance, media_type=media_type,
                                    retain_until=retain_until, actor=actor)
        return writer.submit_put(pp)

    def submit_prepared(self, pp: PreparedPut) -> Future[Receipt]:
        """Queue a put already prepared elsewhere (:meth:`prepare_put`, e.g. in an HTTP
        worker process); the writer re-checks what depends on the log."""
        return self._writable().submit_put(pp)

    def put_many(
        self, items: Iterable[PutItem], *, actor: str = "cli", chunk_size: int = BULK_CHUNK,
    ) -> list[Receipt | StoreError]:
        """Store many (typically small) artifacts; one result per item, in order.

        See :meth:`iter_put_many`; this collects its results.
        """
        return list(self.iter_put_many(items, actor=actor, chunk_size=chunk_size))

    def iter_put_many(
        self, items: Iterable[PutItem], *, actor: str = "cli", chunk_size: int = BULK_CHUNK,
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
        writer = self._writable()

        def prepare(item: PutItem) -> PreparedPut:
            return self._preparer.prepare(
                item.product, item.name, item.data, metadata=item.metadata,
                provenance=item.provenance, media_type=item.media_type,
                retain_until=item.retain_until, actor=actor)

        return iter_put_many(prepare, writer.submit_puts, items, chunk_size)

    def checkpoint(self) -> bytes:
        """Sign a checkpoint over the current log now; returns the signed note."""
        return self._writable().checkpoint()

    def extend_retention(
        self, product: str, name_or_id: str, until: datetime, *, actor: str, reason: str,
    ) -> int:
        """Extend an artifact's retention. Shortening is refused and the attempt logged."""
        return self._writable().extend_retention(product, name_or_id, until, actor=actor,
                                                 reason=reason)

    def place_hold(
        self, *, matter: str, reason: str, actor: str, artifact_ids: Sequence[str] = (),
        product: str | None = None, since: datetime | None = None,
        until: datetime | None = None,
    ) -> Hold:
        """Place a legal hold over listed artifacts, or a product's artifacts in a time range."""
        return self._writable().place_hold(matter=matter, reason=reason, actor=actor,
                                           artifact_ids=artifact_ids, product=product,
                                           since=since, until=until)

    def release_hold(self, hold_id: str, *, reason: str, actor: str) -> int:
        """Release a hold; the hold and its release both stay in the log."""
        return self._writable().release_hold(hold_id, reason=reason, actor=actor)

    def dispose(self, now: datetime | None = None, *, actor: str,
                artifact_ids: Sequence[str] | None = None) -> list[int]:
        """Dispose expired, unheld artifacts' bytes; each disposal is a log record."""
        return self._writable().dispose(now, actor=actor, artifact_ids=artifact_ids)

    def lock(self, reason: str, *, check: str, actor: str = "depository") -> int:
        """Record a governance lock: writes are refused until an admin unlocks."""
        return self._writable().lock(reason, check=check, actor=actor)

    def unlock(self, *, reason: str, actor: str) -> int:
        """Lift a governance lock (logged). The cause must be fixed first."""
        return self._writable().unlock(reason=reason, actor=actor)

    def create_token(
        self, *, role: str, actor: str, product: str | None = None,
        expires: datetime | None = None, note: str = "",
    ) -> tuple[str, Token]:
        """Issue a bearer token; returns (secret, record). The secret is shown only now."""
        return self._writable().create_token(role=role, actor=actor, product=product,
                                             expires=expires, note=note)

    def revoke_token(self, token_id: str, *, reason: str, actor: str) -> int:
        """Revoke a token (logged); it stops working at once."""
        return self._writable().revoke_token(token_id, reason=reason, actor=actor)

    def append_event(
        self, type_: str, *, actor: str, product: str | None, body: Mapping[str, Any],
    ) -> tuple[int, bytes]:
        """Append an informational record (e.g. ``evidence.export``); returns
        (log index, leaf hash). Only types without derived state are allowed."""
        return self._writable().append_event(type_, actor=actor, product=product, body=body)

    def scrub(self, *, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Re-hash every live blob against its record and run SQLite's integrity check;
        damage locks the store (when open for writing)."""
        report = scrub(self.reads, self.blobs, fix=not self.readonly, progress=progress)
        problems, integrity = report["problems"], report["sqlite_integrity"]
        if (problems or integrity != ["ok"]) and self.writer is not None and (
                not self.reads.lock_reason()):
            self.lock(f"scrub found {len(problems)} damaged artifacts; integrity "
                      f"{integrity[0]}", check="scrub")
        return report


def _open_config(path: Path) -> Config:
    if (path / CONFIG_NAME).is_file() and not (path / DB_NAME).is_file():
        cfg = load_config(path / CONFIG_NAME)
        if cfg.engine.type == "postgresql":
            from depository.store import _pg

            _pg.check_schema_version(engine_dsn(cfg))
            return cfg
    if not (path / DB_NAME).is_file():
        raise StoreNotFoundError(
            f"no store at {path} (no {DB_NAME}); create one with `depository init`"
        )
    check_schema_version(path / DB_NAME)
    cfg = load_config(path / CONFIG_NAME)
    if cfg.engine.type == "postgresql":
        from depository.store import _pg

        _pg.check_schema_version(engine_dsn(cfg))
    return cfg


def engine_dsn(cfg: Config) -> str:
    """The PostgreSQL DSN of a store: ``DEPOSITORY_PG_DSN`` if set, else ``engine.dsn``."""
    dsn = os.environ.get("DEPOSITORY_PG_DSN") or cfg.engine.dsn
    if not dsn:
        raise ConfigError("engine.type is postgresql but no DSN is given: set engine.dsn in "
                          f"{CONFIG_NAME} (without the password) or DEPOSITORY_PG_DSN")
    return dsn


def _log_storage(path: Path, cfg: Config) -> LogStorage:
    """The writer's storage engine as configured (``engine.type``)."""
    if cfg.engine.type == "postgresql":
        from depository.store._pg import PgLogStorage

        return PgLogStorage(engine_dsn(cfg))
    return SqliteLogStorage(path)


def _read_source(path: Path, cfg: Config) -> Path | ReadConnections:
    if cfg.engine.type == "postgresql":
        from depository.store._pg import PgReadConnections

        return PgReadConnections(engine_dsn(cfg))
    return path


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


