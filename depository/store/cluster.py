"""Several ``serve`` nodes on one PostgreSQL database: one sequencer, fenced (ADR 0014).

- **Leadership** is the PostgreSQL engine's writer lock: a session-level advisory lock
  (:data:`~depository.store._pg.WRITER_LOCK_KEY`) held by the *writer's own session*
  (:class:`SequencerStorage`). The session that commits the log is the session that holds
  the lock, so a node whose session has ended (killed, partitioned and timed out by the
  server) can commit nothing more; the lock is released by the server when the session
  ends, and a waiting node takes it.
- **Epochs.** A new sequencer's first transaction inserts a row into the append-only
  ``sequencer`` table (epoch = the last one + 1, its node id and peer address) and appends
  a ``sequencer.elected`` record naming its predecessor, atomically.
- **Fencing.** Every later transaction of the sequencer begins by reading the newest
  epoch, inside the transaction, and rolls back with :class:`FencedError` if it is not its
  own; a checkpoint is stored only under the same check. So even a sequencer that has not
  noticed it was replaced (a session kept alive by some other path, a reconnect, a bug)
  cannot commit after a newer election.
- **Followers** forward every mutation to the sequencer's ``--advertise`` address over
  the authenticated TCP writer channel (:mod:`._remote`); with no sequencer reachable they
  refuse with :class:`NotSequencerError` (HTTP 503, ``Retry-After``), nothing written.
  Reads and proofs come from the database on every node. Only the sequencer signs
  checkpoints: a follower has no writer engine and never uses the signer key.

An acknowledgement is the PostgreSQL commit (``synchronous_commit = on``), forwarded
back to the follower that took the request, so a node killed mid-batch loses nothing it
acknowledged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from depository.store._backend import log_retention_days, open_anchor_sink
from depository.store._engine import Txn, WriterEngine
from depository.store._errors import (
    ConfigError,
    FencedError,
    GovernanceLockedError,
    NotSequencerError,
    SchemaMismatchError,
    StoreError,
)
from depository.store._frozen import open_problems
from depository.store._model import Clock, Hold, Receipt, Token, utc_now
from depository.store._pg import PgLogStorage, connect, describe_dsn
from depository.store._prepared import PreparedPut
from depository.store._reads import StoreReads
from depository.store._remote import RemoteWriter, WriterServer
from depository.store._writer import LocalWriter, StoreWriter
from depository.store.config import Product
from depository.tlog.authority import SEQUENCER_ELECTED
from depository.tlog.record import parse_record

if TYPE_CHECKING:
    from depository.store._store import Store

log = logging.getLogger("depository.cluster")

ELECT_ACTOR = "depository"
_LATEST = "SELECT epoch, node_id, advertise FROM sequencer ORDER BY epoch DESC LIMIT 1"


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[V6]:PORT``) as a (host, port) pair; ValueError if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class SequencerStorage(PgLogStorage):
    """The sequencer's :class:`PgLogStorage`: holds the writer lock (raises
    :class:`StoreError` if another session has it) and fences every transaction by epoch."""

    def __init__(self, dsn: str, node_id: str) -> None:
        super().__init__(dsn)
        self.node_id = node_id
        self.epoch: int | None = None  # set when this node's election commits
        self.fenced = False
        with contextlib.suppress(psycopg.Error):
            self.conn.execute("SELECT set_config('application_name', %s, false)",
                              (f"depository-sequencer {node_id}"[:63],))

    def begin(self) -> None:
        super().begin()
        # The fence reads the newest epoch with a snapshot taken now, inside the
        # transaction that will commit (READ COMMITTED: each statement's own snapshot).
        self.conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        if self.epoch is not None:
            self.check_fence()

    def latest(self) -> tuple[int, str, str] | None:
        row = self._one(_LATEST)
        return None if row is None else (int(row[0]), str(row[1]), str(row[2]))

    def check_fence(self) -> None:
        """Raise :class:`FencedError` unless this node's epoch is still the newest."""
        cur = self.latest()
        if cur is None or cur[0] != self.epoch:
            self.fenced = True
            who = "nobody" if cur is None else f"node {cur[1]!r} (epoch {cur[0]})"
            raise FencedError(
                f"node {self.node_id!r} is no longer the sequencer: its epoch {self.epoch} "
                f"was superseded by {who}; this transaction was rolled back and nothing of "
                "it was committed. Retry: the write goes to the new sequencer")

    def add_checkpoint(self, size: int, root: bytes, note: bytes, time: str) -> None:
        """Stored only while this node's epoch is the newest (checked in the same
        transaction)."""
        self.conn.execute("BEGIN")
        try:
            if self.epoch is not None:
                self.check_fence()
            super().add_checkpoint(size, root, note, time)
            self.conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def last_logged_election(self) -> tuple[int, str] | None:
        """(epoch, node) of the newest ``sequencer.elected`` record in the log, found by
        the server (a scan, run only while the ``sequencer`` table is empty: a database
        a clustered store was migrated into keeps the log's elections but not the table)."""
        needle = b'"type":"' + SEQUENCER_ELECTED.encode() + b'"'
        for (leaf,) in self.conn.execute(
                "SELECT leaf FROM log WHERE position(%s IN leaf) > 0 ORDER BY idx DESC",
                (needle,)):
            try:
                rec = parse_record(bytes(leaf))
            except Exception:
                continue  # the verifier reports a damaged record
            if rec.type == SEQUENCER_ELECTED:  # not the words inside some metadata
                return int(rec.body["epoch"]), str(rec.body["node_id"])
        return None

    def elect(self, txn: Txn, advertise: str) -> int:
        """The election, as the first operation of this node's writer: the next epoch's
        row and its ``sequencer.elected`` record, in one transaction."""
        prev = self.latest()
        if prev is None:
            logged = self.last_logged_election()
            prev = None if logged is None else (logged[0], logged[1], "")
        epoch = 1 if prev is None else prev[0] + 1
        seq = txn.append(SEQUENCER_ELECTED, ELECT_ACTOR, None, {
            "node_id": self.node_id, "epoch": epoch,
            "previous": None if prev is None else prev[1],
            "previous_epoch": None if prev is None else prev[0]})
        self.conn.execute("INSERT INTO sequencer VALUES (%s, %s, %s, %s, %s)",
                          (epoch, self.node_id, advertise, seq, txn.now_text))

        def elected() -> None:
            self.epoch = epoch

        txn.after_commit.append(elected)
        return epoch


def current_sequencer(dsn: str) -> tuple[int, str, str] | None:
    """(epoch, node id, peer address) of the newest election, or None."""
    conn = connect(dsn, read_only=True)
    try:
        row = conn.execute(_LATEST).fetchone()
    finally:
        conn.close()
    return None if row is None else (int(row[0]), str(row[1]), str(row[2]))


class ClusterWriter:
    """A node's :class:`StoreWriter`: its own :class:`LocalWriter` while it is the
    sequencer, else a :class:`RemoteWriter` to the sequencer named by the newest epoch.

    :meth:`start` runs the elector thread: every ``interval`` seconds a follower tries to
    take the writer lock; the sequencer watches for being fenced or losing its session and
    then steps down.
    """

    def __init__(self, reads: StoreReads, *, dsn: str, node_id: str, advertise: str,
                 secret: bytes, interval: float = 0.5) -> None:
        self._reads = reads
        self._dsn = dsn
        self.node_id = node_id
        self.advertise = advertise
        self._listen = parse_address(advertise)
        self._secret = secret
        self._interval = interval
        self._mu = threading.RLock()
        self.local: LocalWriter | None = None
        self.epoch: int | None = None
        self._storage: SequencerStorage | None = None
        self._server: WriterServer | None = None
        self._remote: RemoteWriter | None = None
        self._remote_epoch: int | None = None
        self._watch: psycopg.Connection[Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._make_local: Callable[[SequencerStorage], LocalWriter] | None = None
        self._product: Callable[[str], Product] | None = None
        self._path = Path(".")
        self._closed = False

    # ----------------------------------------------------------------- roles
    def start(self, make_local: Callable[[SequencerStorage], LocalWriter],
              product: Callable[[str], Product], path: Path) -> None:
        """Become the sequencer now if no node is, and keep trying in the background."""
        self._path = path
        self._make_local = make_local
        self._product = product
        self._try_lead()
        self._thread = threading.Thread(target=self._elector, daemon=True,
                                        name="depository-elector")
        self._thread.start()

    @property
    def is_sequencer(self) -> bool:
        return self.local is not None

    def _elector(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if self.local is None:
                    self._try_lead()
                elif self._storage is not None and (
                        self._storage.fenced or self._storage.conn.broken
                        or self._storage.conn.closed):
                    log.warning("node %s: lost the sequencer role (fenced or session "
                                "ended); following", self.node_id)
                    self._step_down()
            except StoreError as exc:
                log.warning("node %s: %s", self.node_id, exc)
            except Exception:
                log.exception("node %s: elector", self.node_id)

    def _try_lead(self) -> None:
        assert self._make_local is not None and self._product is not None
        # Only a node that can serve its peers may be elected: an election whose peer
        # port then fails to bind would be logged for nothing, again and again.
        family = socket.AF_INET6 if ":" in self._listen[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(self._listen)
            except OSError as exc:
                raise NotSequencerError(
                    f"node {self.node_id!r} cannot listen on its --advertise address "
                    f"{self.advertise} ({exc.strerror}), so it does not stand for "
                    "election") from None
        try:
            storage = SequencerStorage(self._dsn, self.node_id)
        except StoreError:
            return  # another node holds the writer lock
        try:
            lw = self._make_local(storage)
        except BaseException:
            storage.close()
            raise
        try:
            epoch = lw.engine.submit(lambda txn: storage.elect(txn, self.advertise)).result()
            server = WriterServer(lw, self._product, self._path, listen=self._listen,
                                  secret=self._secret)
        except BaseException:
            lw.close()
            raise
        with self._mu:
            self.local, self._storage, self._server, self.epoch = lw, storage, server, epoch
            remote, self._remote, self._remote_epoch = self._remote, None, None
        if remote is not None:
            remote.close()
        log.warning("node %s: elected sequencer, epoch %d, peers at %s", self.node_id, epoch,
                    self.advertise)

    def _step_down(self) -> None:
        with self._mu:
            lw, server = self.local, self._server
            self.local = self._server = self._storage = None
            self.epoch = None
        if server is not None:
            server.close()
        if lw is not None:
            lw.close()  # a final checkpoint if still the sequencer; closes the session

    def _follow(self) -> StoreWriter:
        """The sequencer's writer as seen from here (a RemoteWriter), or a refusal."""
        with self._mu:
            # Connected and not lost: a new election always ends the old sequencer's
            # connections (it died, or stepped down and closed its server).
            if self._remote is not None and self._remote_epoch is not None:
                return self._remote
        try:
            cur = self._latest()
        except (psycopg.Error, StoreError) as exc:
            raise NotSequencerError(f"node {self.node_id!r} cannot read the sequencer from "
                                    f"PostgreSQL ({exc}); nothing was written") from None
        if cur is None:
            raise NotSequencerError("no sequencer has been elected yet; nothing was written. "
                                    "Retry shortly")
        epoch, node, address = cur
        with self._mu:
            if self.local is not None:
                return self.local
            if self._remote is not None and self._remote_epoch == epoch:
                return self._remote
            old, self._remote = self._remote, None
        if old is not None:
            old.close()
        try:
            remote = RemoteWriter(parse_address(address), self._reads, self._lost,
                                  secret=self._secret)
        except (OSError, ValueError, StoreError) as exc:
            raise NotSequencerError(
                f"the sequencer (node {node!r}, epoch {epoch}, at {address}) cannot be "
                f"reached from node {self.node_id!r} ({exc}); nothing was written. A "
                "failover takes about a second: retry") from None
        with self._mu:
            self._remote, self._remote_epoch = remote, epoch
        return remote

    def _lost(self) -> None:
        with self._mu:
            self._remote_epoch = None  # reconnect (or find the new sequencer) next time

    def _latest(self) -> tuple[int, str, str] | None:
        with self._mu:
            if self._watch is None or self._watch.closed or self._watch.broken:
                self._watch = connect(self._dsn, read_only=True)
            row = self._watch.execute(_LATEST).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), str(row[2]))

    def _target(self) -> StoreWriter:
        if self._closed:
            raise NotSequencerError("this node is shutting down; nothing was written")
        local = self.local
        return local if local is not None else self._follow()

    # ------------------------------------------------------------ StoreWriter
    def submit_put(self, pp: PreparedPut) -> Future[Receipt]:
        return self._target().submit_put(pp)

    def submit_puts(self, pps: Sequence[PreparedPut]
                    ) -> Future[list[Receipt | StoreError]]:
        return self._target().submit_puts(pps)

    def known_lock(self) -> str | None:
        local = self.local
        return local.known_lock() if local is not None else None

    def before_stream(self) -> None:
        reason = self._reads.lock_reason()
        if reason is not None:
            raise GovernanceLockedError.of(reason)

    def report_tamper(self, reason: str) -> None:
        with contextlib.suppress(StoreError):
            self._target().report_tamper(reason)

    def checkpoint(self) -> bytes:
        """Signed by the sequencer (here or there); a follower never signs."""
        return self._target().checkpoint()

    def extend_retention(self, product: str, name_or_id: str, until: datetime, *,
                         actor: str, reason: str) -> int:
        return self._target().extend_retention(product, name_or_id, until, actor=actor,
                                               reason=reason)

    def place_hold(self, *, matter: str, reason: str, actor: str,
                   artifact_ids: Sequence[str] = (), product: str | None = None,
                   since: datetime | None = None, until: datetime | None = None) -> Hold:
        return self._target().place_hold(matter=matter, reason=reason, actor=actor,
                                         artifact_ids=artifact_ids, product=product,
                                         since=since, until=until)

    def release_hold(self, hold_id: str, *, reason: str, actor: str) -> int:
        return self._target().release_hold(hold_id, reason=reason, actor=actor)

    def dispose(self, now: datetime | None = None, *, actor: str,
                artifact_ids: Sequence[str] | None = None) -> list[int]:
        return self._target().dispose(now, actor=actor, artifact_ids=artifact_ids)

    def lock(self, reason: str, *, check: str, actor: str = "depository") -> int:
        return self._target().lock(reason, check=check, actor=actor)

    def unlock(self, *, reason: str, actor: str) -> int:
        return self._target().unlock(reason=reason, actor=actor)

    def create_token(self, *, role: str, actor: str, product: str | None = None,
                     expires: datetime | None = None, note: str = "") -> tuple[str, Token]:
        return self._target().create_token(role=role, actor=actor, product=product,
                                           expires=expires, note=note)

    def revoke_token(self, token_id: str, *, reason: str, actor: str) -> int:
        return self._target().revoke_token(token_id, reason=reason, actor=actor)

    def append_event(self, type_: str, *, actor: str, product: str | None,
                     body: Mapping[str, Any]) -> tuple[int, bytes]:
        return self._target().append_event(type_, actor=actor, product=product, body=body)

    def queue_depth(self) -> int:
        local = self.local
        return local.queue_depth() if local is not None else 0

    @property
    def token_generation(self) -> int:
        """The sequencer's writer knows it; a follower reads it from the database, so a
        revocation through any node is seen on its next request (as ADR 0005's workers)."""
        local = self.local
        return local.token_generation if local is not None else self._reads.token_generation()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._step_down()
        with self._mu:
            remote, self._remote = self._remote, None
            watch, self._watch = self._watch, None
        if remote is not None:
            remote.close()
        if watch is not None:
            watch.close()

    def describe(self) -> str:
        role = f"sequencer, epoch {self.epoch}" if self.local is not None else "follower"
        return (f"node {self.node_id} ({role}; peers at {self.advertise}; database "
                f"{describe_dsn(self._dsn)})")


def open_node(path: Path, *, node_id: str, advertise: str, secret: bytes,
              signer_key_file: Path | None = None, clock: Clock = utc_now,
              interval: float = 0.5) -> Store:
    """Open a PostgreSQL-backed store as one node of a cluster: reads here, writes through
    :class:`ClusterWriter` (this node's engine while it is the sequencer, else forwarded).

    The signer key is read now (every node needs it to be able to take over) but used only
    by this node's engine, i.e. only while it is the sequencer.
    """
    from depository.store._store import (
        KEY_DIR,
        SIGNER_KEY_NAME,
        Store,
        _open_config,
        engine_dsn,
    )

    path = Path(path)
    cfg = _open_config(path)
    if cfg.engine.type != "postgresql":
        raise ConfigError(
            f"{path}: several serve nodes need the PostgreSQL engine (engine: {{type: "
            "postgresql, dsn: ...}} in depository.yaml); this store is "
            f"{cfg.engine.type}, which has one writer process (serve without --node-id)")
    if not node_id or len(node_id) > 64 or not node_id.isprintable():
        raise ConfigError(f"node id {node_id!r}: must be 1-64 printable characters")
    try:
        parse_address(advertise)
    except ValueError as exc:
        raise ConfigError(f"--advertise: {exc}, e.g. 10.0.0.5:7400") from None
    if len(secret) < 16:
        raise ConfigError("the peer secret must be at least 16 bytes (e.g. `head -c 32 "
                          "/dev/urandom | base64 > peer.secret`, the same file on every node)")
    key_path = signer_key_file or (Path(os.environ["DEPOSITORY_SIGNER_KEY"])
                                   if os.environ.get("DEPOSITORY_SIGNER_KEY")
                                   else path / KEY_DIR / SIGNER_KEY_NAME)
    try:
        signer = key_path.read_text().strip()
    except OSError as exc:
        raise StoreError(f"cannot read the log signer key {key_path}: {exc.strerror}; every "
                         "node needs it to take over as sequencer (--signer-key FILE)") from exc
    dsn = engine_dsn(cfg)
    store = Store.attach(path, lambda reads: ClusterWriter(
        reads, dsn=dsn, node_id=node_id, advertise=advertise, secret=secret,
        interval=interval), clock=clock)
    writer = store.writer
    assert isinstance(writer, ClusterWriter)

    def make_local(storage: SequencerStorage) -> LocalWriter:
        anchors = open_anchor_sink(
            cfg.anchors, cfg.backend,
            retention_days=log_retention_days(cfg.default_retention_days, cfg.scale_limits))
        engine = WriterEngine(
            storage, origin=cfg.origin, signer=signer, clock=store.clock, anchors=anchors,
            checkpoint_every_ms=cfg.checkpoint_every_ms,
            checkpoint_every_entries=cfg.checkpoint_every_entries,
            products=list(cfg.products))
        problems = open_problems(storage, engine.state.tree.size, cfg)
        if problems:
            engine.close()
            raise SchemaMismatchError(
                f"node {node_id!r} will not become the sequencer: "
                + "; ".join(p for _, p in problems)
                + ". Run `depository verify store` to investigate")
        return LocalWriter(engine, store.reads, store.blobs, store.clock)

    try:
        writer.start(make_local, store.product, path)
    except BaseException:
        store.close()
        raise
    return store
