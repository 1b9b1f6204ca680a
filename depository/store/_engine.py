"""The group-commit writer: one thread, one transaction per batch, fsync before any ack.

Callers submit operations (:meth:`WriterEngine.submit`); the writer thread runs every
queued operation in one transaction of its :class:`~depository.store._logstore.LogStorage`
(group commit), commits durably, and only then resolves each caller's future. An
acknowledged write is therefore durable, and a crash loses only writes nobody was told
succeeded. Signed checkpoints are made here too, on the configured cadence.

An operation is a function of a :class:`Txn`: it appends records (:meth:`Txn.append`),
writes derived rows through ``txn.db`` and returns its result -- or returns (not raises)
a :class:`StoreError` to refuse, which leaves the rest of the batch alone.
"""

from __future__ import annotations

import _thread
import contextlib
import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from depository.signing import sign_note
from depository.store import _native
from depository.store._authority import UnexplainedRowError, WriterAuthority
from depository.store._backend import AnchorSink
from depository.store._errors import GovernanceLockedError, StoreClosedError, StoreError
from depository.store._logstore import ArtifactRow, LeafRow, LogStorage
from depository.store._model import Clock, format_time, parse_time
from depository.store._prepared import PreparedPut
from depository.store._tree import Frontier, NodeRow
from depository.tlog import merkle
from depository.tlog.checkpoint import Checkpoint, format_checkpoint
from depository.tlog.record import Record, canonical_json, encode_record, parse_record

MAX_BATCH = 5000


@dataclass
class WriterState:
    """Writer-owned state, snapshotted so a failed batch can be undone."""

    tree: Frontier
    usage: dict[str, list[int]]  # product -> [bytes, artifacts]
    locked: str | None

    def copy(self) -> WriterState:
        return WriterState(self.tree.copy(), {k: list(v) for k, v in self.usage.items()},
                           self.locked)


class Txn:
    """What an operation sees inside the writer's transaction."""

    def __init__(self, db: LogStorage, state: WriterState, now: datetime,
                 authority: WriterAuthority | None = None) -> None:
        self.db = db
        self.state = state
        self.authority = authority if authority is not None else WriterAuthority()
        self.now = now
        self.now_text = format_time(now)
        self.now_json = canonical_json(self.now_text)
        self.leaves: list[LeafRow] = []
        self.nodes: list[NodeRow] = []
        self.leaves_added = False
        # True when the store's clock read earlier than the last record (see _try_batch).
        self.clamped = False
        # Rows of puts, written in bulk by flush().
        self.art_rows: list[tuple[Any, ...]] = []
        self.meta_rows: list[tuple[str, str, str, int]] = []
        self.blob_rows: list[tuple[int, bytes]] = []
        # Artifacts by id: committed ones the batch's puts asked about (None: absent), and
        # those this transaction has put (not yet visible to the storage before a flush).
        self.known: dict[str, ArtifactRow | None] = {}
        self.pending: dict[str, ArtifactRow] = {}
        self.after_commit: list[Callable[[], None]] = []
        # Blob files this transaction's disposals will remove once it commits.
        self.removing: set[str] = set()
        # Puts accepted at seq = tree.size + position whose rows are not built yet: one
        # native call builds them (materialize), before anything else is appended.
        self.deferred: list[PreparedPut] = []

    @property
    def next_seq(self) -> int:
        return self.state.tree.size + len(self.deferred)

    def reserve_put(self, pp: PreparedPut) -> int:
        """Accept a put at the next sequence number; its rows are built by
        :meth:`materialize` (the caller records it in ``pending`` with leaf hash ``b""``
        until then)."""
        seq = self.state.tree.size + len(self.deferred)
        self.deferred.append(pp)
        return seq

    def materialize(self) -> None:
        """Build the records and rows of the reserved puts (leaf, tree nodes, artifact,
        metadata and inline rows) and fill in their leaf hashes in ``pending``."""
        puts = self.deferred
        if not puts:
            return
        self.deferred = []
        tree = self.state.tree
        seq = tree.size
        hashes = _native.put_rows(puts, seq, tree.stack, self.now_json, _native.PUT_TAIL,
                                  self.now_text, self.leaves, self.nodes, self.art_rows,
                                  self.meta_rows, self.blob_rows)
        tree.size = seq + len(puts)
        self.leaves_added = True
        pending = self.pending
        for pp, lh in zip(puts, hashes, strict=True):
            row = pending[pp.aid]
            pending[pp.aid] = (row[0], row[1], row[2], row[3], row[4], lh)

    def append(self, type_: str, actor: str, product: str | None, body: dict[str, Any]) -> int:
        """Append a record; refused (raised) if ``actor`` is a token the log does not
        authorize to cause it (puts are judged in ``apply_put``, before write-once)."""
        err = self.refusal(actor, type_, product)
        if err is not None:
            raise err
        self.materialize()
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
        self.materialize()
        lh = merkle.leaf_hash(leaf)
        seq = self.state.tree.size
        self.state.tree.append(lh, self.nodes)
        self.leaves.append((seq, leaf, lh))
        self.leaves_added = True
        return lh

    def refusal(self, actor: str, typ: str, product: str | None) -> StoreError | None:
        """Whether ``actor`` may cause a ``typ`` record now, judged from the log (see
        ``_authority``); a row the log does not explain locks the store."""
        if not actor.startswith("token:"):
            return None
        try:
            return self.authority.refuse(actor, typ, product, self.now, self.db)
        except UnexplainedRowError as exc:
            return self.tampered(str(exc))

    def tampered(self, reason: str) -> StoreError:
        """Refuse a write decided by a row the log does not explain, and lock the store
        (the lock record commits with the batch)."""
        if not self.state.locked:
            apply_lock(self, f"tampering: {reason}", "tamper", "depository")
        return GovernanceLockedError.of(self.state.locked or reason)

    def lookup(self, aid: str) -> ArtifactRow | None:
        """The artifact with this id as this transaction sees it, or None."""
        hit = self.pending.get(aid)
        if hit is not None:
            if hit[5] == b"":  # reserved in this call: its leaf hash is needed now
                self.materialize()
                hit = self.pending[aid]
            return hit
        if aid in self.known:
            return self.known[aid]
        self.known[aid] = self.db.artifact(aid)
        return self.known[aid]

    def prefetch(self, aids: Sequence[str]) -> None:
        want = [a for a in dict.fromkeys(aids) if a not in self.known]
        if want:
            found = self.db.artifacts(want)
            for a in want:
                self.known[a] = found.get(a)

    def flush(self) -> None:
        """Write the accumulated rows, so queries run after this see them."""
        self.materialize()
        if not (self.leaves or self.art_rows or self.nodes):
            return  # (metadata and inline rows come only with artifact rows)
        self.db.write_rows(self.leaves, self.nodes, self.art_rows, self.meta_rows,
                           self.blob_rows)
        self.leaves, self.nodes, self.art_rows, self.meta_rows, self.blob_rows = (
            [], [], [], [], [])


Apply = Callable[[Txn], Any]


class Waiter:
    """A one-shot result for one blocked caller: a pre-acquired lock the writer releases
    (``Store.put``'s cheaper stand-in for a :class:`Future`, which allocates a condition
    and a waiter lock per call)."""

    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._value: Any = None
        self._error: BaseException | None = None

    def set_result(self, value: Any) -> None:
        self._value = value
        self._done.release()

    def set_exception(self, exc: BaseException) -> None:
        self._error = exc
        self._done.release()

    def result(self) -> Any:
        with self._done:  # blocks until the writer resolved it
            pass
        if self._error is not None:
            raise self._error
        return self._value


class Op:
    """A queued operation. Puts only add rows, so their inserts may wait for the batch's
    end; any other op (which may query tables) first flushes them (``bulk``). ``aids``:
    ids to look up in advance. ``put``: a single prepared put, run with its neighbours
    through the engine's ``put_handler`` (one call for a run of them)."""

    __slots__ = ("aids", "apply", "bulk", "future", "put")

    def __init__(self, apply: Apply | None, future: Future[Any] | Waiter | None = None, *,
                 bulk: bool = False, aids: Sequence[str] = (),
                 put: PreparedPut | None = None) -> None:
        self.apply = apply
        self.future: Future[Any] | Waiter = Future() if future is None else future
        self.bulk = bulk
        self.aids = aids
        self.put = put


PutHandler = Callable[[Txn, list[PreparedPut]], list[Any]]
# Group commit: after a batch commits, its callers come back with their next operations
# one at a time (each prepares its put first, holding the GIL). The writer waits up to
# this long for as many as the last batch had, so one commit carries them all instead of
# a large batch alternating with a handful (each commit rewrites the same tail pages).
GATHER_S = 0.002
GATHER_MAX = 1024


def apply_lock(txn: Txn, reason: str, check: str, actor: str) -> int:
    """Record a governance lock (also the writer's own answer to a WORM bypass)."""
    seq = txn.append("governance.lock", actor, None, {"reason": reason, "check": check})
    txn.db.add_governance(seq, "locked", reason, actor, txn.now_text)
    txn.state.locked = reason
    return seq


class WriterEngine:
    """The writer thread over one :class:`LogStorage` (which it owns and closes)."""

    def __init__(self, db: LogStorage, *, origin: str, signer: str, clock: Clock,
                 anchors: AnchorSink | None, checkpoint_every_ms: int,
                 checkpoint_every_entries: int, products: Sequence[str],
                 start: bool = True) -> None:
        self.db = db
        self.origin = origin
        self.clock = clock
        self.anchors = anchors
        self.anchor_errors: list[str] = []
        self._signer = signer
        self._every_s = checkpoint_every_ms / 1000
        self._every_entries = checkpoint_every_entries
        self._queue: deque[Op] = deque()
        self.cv = threading.Condition()
        # How many queued operations wake the writer (1, or the batch it gathers).
        self._want = 1
        self._expect = 1  # operations in the last batch: how many may come back
        # Runs a run of single-put operations (set by the LocalWriter).
        self.put_handler: PutHandler | None = None
        self.closed = False
        self._cp_waiters: list[Future[bytes]] = []
        self._bypass_attempt: str | None = None
        self._tamper: str | None = None  # a row the log does not explain, seen by a reader
        # Token grants checked against the log, kept for the writer's lifetime.
        self.authority = WriterAuthority()
        # Blob files removed by disposals: an upload of the same bytes that found the
        # file just before its removal is refused rather than recorded against nothing.
        self.removed: set[str] = set()
        size = db.size()
        usage = {pid: [0, 0] for pid in products}
        usage.update(db.usage())
        self.state = WriterState(Frontier.load(size, db.node), usage, db.lock_reason())
        cp = db.last_checkpoint()
        self.last_cp_size = 0 if cp is None else cp[0]
        self._last_cp_time = time.monotonic()
        self._last_time = self._last_record_time()
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._run, name="depository-writer",
                                            daemon=True)
            self._thread.start()

    # ---------------------------------------------------------------- callers
    def report_tamper(self, reason: str) -> None:
        """A reader saw a row the log does not explain: record a governance lock (once)."""
        with self.cv:
            self._tamper = reason
            self.cv.notify()

    def submit(self, apply: Apply, *, bulk: bool = False, aids: Sequence[str] = ()
               ) -> Future[Any]:
        op = Op(apply, bulk=bulk, aids=aids)
        self._enqueue(op)
        assert isinstance(op.future, Future)
        return op.future

    def submit_put(self, pp: PreparedPut, waiter: Future[Any] | Waiter | None = None
                   ) -> Future[Any] | Waiter:
        """Queue one prepared put for :attr:`put_handler`; resolved with its result."""
        op = Op(None, waiter, bulk=True, aids=(pp.aid,), put=pp)
        self._enqueue(op)
        return op.future

    def _enqueue(self, op: Op) -> None:
        with self.cv:
            if self.closed:
                raise StoreClosedError("store is closed")
            queue = self._queue
            queue.append(op)
            if len(queue) >= self._want:
                self.cv.notify()

    def queue_depth(self) -> int:
        with self.cv:
            return len(self._queue)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the writer off: operations submitted inside commit as one batch."""
        with self.cv:
            yield

    def checkpoint(self) -> bytes:
        """Sign a checkpoint over the current log now; returns the signed note."""
        fut: Future[bytes] = Future()

        def op(txn: Txn) -> None:
            self._cp_waiters.append(fut)

        self.submit(op).result()
        return fut.result()

    def close(self) -> None:
        """Drain the queue, sign a final checkpoint if needed, stop, close the storage."""
        if self._thread is not None and not self.closed:
            try:
                if self.state.tree.size > self.last_cp_size:
                    self.checkpoint()
            except StoreError:
                pass
            with self.cv:
                self.closed = True
                self.cv.notify_all()
            self._thread.join()
        self.closed = True
        self.db.close()

    # ---------------------------------------------------------- writer thread
    def _run(self) -> None:
        while True:
            with self.cv:
                if not self._queue and not self.closed:
                    self.cv.wait(timeout=self._every_s)
                if self._queue and len(self._queue) < self._expect and not self.closed:
                    self._gather()
                batch: list[Op] = []
                while self._queue and len(batch) < MAX_BATCH:
                    batch.append(self._queue.popleft())
                closing = self.closed and not self._queue
            if batch:
                self._run_batch(batch)
            if self._bypass_attempt:
                reason = f"a write tried to bypass WORM ({self._bypass_attempt})"
                self._bypass_attempt = None
                self._run_batch([Op(functools.partial(
                    apply_lock, reason=reason, check="worm", actor="depository"))])
            if self._tamper:
                reason, self._tamper = f"tampering: {self._tamper}", None
                if self.state.locked is None:
                    self._run_batch([Op(functools.partial(
                        apply_lock, reason=reason, check="tamper", actor="depository"))])
            self._maybe_checkpoint()
            if closing:
                return

    def _gather(self) -> None:
        """Wait (holding ``cv``, briefly) until as many operations are queued as the last
        batch had; see :data:`GATHER_S`."""
        deadline = time.monotonic() + GATHER_S
        self._want = self._expect
        try:
            while len(self._queue) < self._expect and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.cv.wait(left)
        finally:
            self._want = 1

    def _run_batch(self, batch: list[Op]) -> None:
        self._expect = min(len(batch), GATHER_MAX)
        results = self._try_batch(batch)
        if results is None:
            # Something failed below the operations (disk full, I/O error): run them one
            # at a time so only the one that cannot be written fails.
            if len(batch) == 1:
                return
            for op in batch:
                self._run_batch([op])

    def _try_batch(self, batch: list[Op]) -> list[Any] | None:
        db = self.db
        snapshot = self.state.copy()
        # Record times never go backwards in log order, even if the wall clock steps back:
        # a batch is stamped at least at the previous record's time. So artifact.created
        # rises with log_idx, and ls walks (product, created) in log order (no sort).
        now = self.clock()
        clamped = now < self._last_time
        txn = Txn(db, self.state, self._last_time if clamped else now, self.authority)
        txn.clamped = clamped
        results: list[Any] = []
        try:
            db.begin()
            txn.prefetch([a for op in batch for a in op.aids])
            i, n = 0, len(batch)
            while i < n:
                op = batch[i]
                if op.put is not None and self.put_handler is not None:
                    j = i + 1
                    while j < n and batch[j].put is not None:
                        j += 1
                    puts = [o.put for o in batch[i:j] if o.put is not None]
                    try:
                        results.extend(self.put_handler(txn, puts))
                    except StoreError as exc:
                        results.extend([exc] * len(puts))
                    i = j
                    continue
                if not op.bulk:
                    txn.flush()  # it may query what the puts before it wrote
                try:
                    assert op.apply is not None
                    results.append(op.apply(txn))
                except StoreError as exc:
                    results.append(exc)
                i += 1
            txn.flush()
            db.commit()
        except db.failures as exc:
            db.rollback()
            self.state = snapshot
            self.authority.clear()  # the batch's issues and revocations are undone too
            bypass = db.bypass_attempt(exc)
            if bypass:  # a WORM guard fired: something tried to update or delete a record
                self._bypass_attempt = bypass
            if len(batch) == 1:
                batch[0].future.set_exception(db.storage_error(exc))
            return None
        except BaseException as exc:
            db.rollback()
            self.state = snapshot
            self.authority.clear()
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

    def _maybe_checkpoint(self) -> None:
        size = self.state.tree.size
        waiters, self._cp_waiters = self._cp_waiters, []
        due = size > self.last_cp_size and (
            size - self.last_cp_size >= self._every_entries
            or time.monotonic() - self._last_cp_time >= self._every_s
        )
        if not (waiters or due):
            return
        try:
            note = self._sign_checkpoint()
        except Exception as exc:
            if not isinstance(exc, (StoreError, *self.db.failures)):
                raise
            err = exc if isinstance(exc, StoreError) else self.db.storage_error(exc)
            for fut in waiters:
                fut.set_exception(err)
            return
        for fut in waiters:
            fut.set_result(note)

    def _sign_checkpoint(self) -> bytes:
        size = self.state.tree.size
        if size == self.last_cp_size and size > 0:
            stored = self.db.checkpoint_note(size)
            if stored is not None:
                return stored
        root = self.state.tree.root()
        note = sign_note(format_checkpoint(Checkpoint(self.origin, size, root)), self._signer)
        self.db.add_checkpoint(size, root, note, format_time(self.clock()))
        if self.anchors is not None:
            # WORM anchor (checkpoints/<size> under COMPLIANCE retention). A failure leaves
            # the checkpoint signed and stored; the next one is anchored anew.
            try:
                self.anchors.write(size, note, self.clock())
            except Exception as exc:
                self.anchor_errors[:] = [*self.anchor_errors[-99:], f"size {size}: {exc}"]
        self.last_cp_size = size
        self._last_cp_time = time.monotonic()
        return note

    def _last_record_time(self) -> datetime:
        leaf = self.db.leaf(-1)
        if leaf is None:
            return datetime.min.replace(tzinfo=UTC)
        try:
            return parse_time(parse_record(leaf).time)
        except Exception:
            # A damaged last record: the open checks and verify report it; do not clamp.
            return datetime.min.replace(tzinfo=UTC)
