"""The writer's contract, :class:`StoreWriter`, and its in-process implementation.

Every mutation of a store goes through a ``StoreWriter``. :class:`LocalWriter` owns the
group-commit engine (:mod:`depository.store._engine`) over a
:class:`~depository.store._logstore.LogStorage`; ``serve --workers`` gives each HTTP
worker a :class:`~depository.store._remote.RemoteWriter`, which sends the same calls to
the parent's ``LocalWriter`` over a Unix socket. :class:`~depository.store.Store` is a
façade over a writer and :class:`~depository.store._reads.StoreReads`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime
from typing import Any, Protocol

from depository.store import _decisions
from depository.store._backend import BlobBackend
from depository.store._engine import Txn, Waiter, WriterEngine
from depository.store._errors import StoreError
from depository.store._governance import Governance
from depository.store._locks import LockMirror
from depository.store._model import Clock, Hold, Receipt, Token
from depository.store._prepared import PreparedPut
from depository.store._reads import StoreReads
from depository.store._tokens import Tokens


class StoreWriter(Protocol):
    """Where a store's mutations go. Every call returns once the change is durable (or
    the returned future resolves then) and raises the :class:`StoreError` refusing it."""

    def submit_put(self, pp: PreparedPut) -> Future[Receipt]:
        """Queue a prepared put; the writer re-checks write-once, quota and the lock."""

    def submit_puts(self, pps: Sequence[PreparedPut]
                    ) -> Future[list[Receipt | StoreError]]:
        """Queue prepared puts as one operation; one result per put, in order."""

    def known_lock(self) -> str | None:
        """The governance lock this writer knows of without asking anyone (None when it
        cannot tell cheaply); puts are refused early under it."""

    def before_stream(self) -> None:
        """Raise ``GovernanceLockedError`` now if a streamed body would be refused anyway
        (so it is not stored first); may do nothing."""

    def report_tamper(self, reason: str) -> None:
        """A reader found a row the log does not explain: record a governance lock
        (``check: tamper``) unless the store is locked already. Never raises."""

    def checkpoint(self) -> bytes: ...
    def extend_retention(self, product: str, name_or_id: str, until: datetime, *,
                         actor: str, reason: str) -> int: ...
    def place_hold(self, *, matter: str, reason: str, actor: str,
                   artifact_ids: Sequence[str] = (), product: str | None = None,
                   since: datetime | None = None, until: datetime | None = None) -> Hold: ...
    def release_hold(self, hold_id: str, *, reason: str, actor: str) -> int: ...
    def dispose(self, now: datetime | None = None, *, actor: str,
                artifact_ids: Sequence[str] | None = None) -> list[int]: ...
    def lock(self, reason: str, *, check: str, actor: str = "depository") -> int: ...
    def unlock(self, *, reason: str, actor: str) -> int: ...
    def create_token(self, *, role: str, actor: str, product: str | None = None,
                     expires: datetime | None = None, note: str = "") -> tuple[str, Token]: ...
    def revoke_token(self, token_id: str, *, reason: str, actor: str) -> int: ...
    def append_event(self, type_: str, *, actor: str, product: str | None,
                     body: Mapping[str, Any]) -> tuple[int, bytes]: ...
    def queue_depth(self) -> int: ...
    @property
    def token_generation(self) -> int:
        """Moves after every token issued or revoked that this writer can see."""
    def close(self) -> None: ...


class LocalWriter:
    """The in-process :class:`StoreWriter`: one group-commit engine, one storage."""

    def __init__(self, engine: WriterEngine, reads: StoreReads, blobs: BlobBackend,
                 clock: Clock) -> None:
        self.engine = engine
        self.blobs = blobs
        # With Object Lock the backend mirrors the catalog's retention and holds.
        self.mirror = LockMirror(reads, blobs) if blobs.object_lock else None
        self.governance = Governance(engine, reads, blobs, self.mirror, clock)
        self.tokens = Tokens(engine, reads.product, clock)
        self._after_put = self.mirror.after_put if self.mirror is not None else None
        engine.put_handler = self._apply_puts

    # ------------------------------------------------------------------- puts
    def _apply_puts(self, txn: Txn, pps: list[PreparedPut]) -> list[Receipt | StoreError]:
        return _decisions.apply_puts(txn, pps, blobs=self.blobs,
                                     removed=self.engine.removed, after_put=self._after_put)

    def submit_put(self, pp: PreparedPut) -> Future[Receipt]:
        fut: Future[Receipt] = Future()
        self.engine.submit_put(pp, fut)
        return fut

    def put(self, pp: PreparedPut) -> Receipt:
        """:meth:`submit_put` and wait: the receipt once durable, or raise the refusal
        (no :class:`Future` is made; see ``_engine.Waiter``)."""
        res = self.engine.submit_put(pp, Waiter()).result()
        if isinstance(res, BaseException):
            raise res
        receipt: Receipt = res
        return receipt

    def submit_puts(self, pps: Sequence[PreparedPut]
                    ) -> Future[list[Receipt | StoreError]]:
        todo = list(pps)
        return self.engine.submit(lambda txn: self._apply_puts(txn, todo), bulk=True,
                                  aids=[p.aid for p in todo])

    def known_lock(self) -> str | None:
        return self.engine.state.locked

    def before_stream(self) -> None:
        """The lock is checked with the other fields (see :meth:`known_lock`)."""

    def report_tamper(self, reason: str) -> None:
        self.engine.report_tamper(reason)

    # ----------------------------------------------------------- the others
    def checkpoint(self) -> bytes:
        return self.engine.checkpoint()

    def extend_retention(self, product: str, name_or_id: str, until: datetime, *,
                         actor: str, reason: str) -> int:
        return self.governance.extend_retention(product, name_or_id, until, actor=actor,
                                                reason=reason)

    def place_hold(self, *, matter: str, reason: str, actor: str,
                   artifact_ids: Sequence[str] = (), product: str | None = None,
                   since: datetime | None = None, until: datetime | None = None) -> Hold:
        return self.governance.place_hold(matter=matter, reason=reason, actor=actor,
                                          artifact_ids=artifact_ids, product=product,
                                          since=since, until=until)

    def release_hold(self, hold_id: str, *, reason: str, actor: str) -> int:
        return self.governance.release_hold(hold_id, reason=reason, actor=actor)

    def dispose(self, now: datetime | None = None, *, actor: str,
                artifact_ids: Sequence[str] | None = None) -> list[int]:
        return self.governance.dispose(now, actor=actor, artifact_ids=artifact_ids)

    def lock(self, reason: str, *, check: str, actor: str = "depository") -> int:
        return self.governance.lock(reason, check=check, actor=actor)

    def unlock(self, *, reason: str, actor: str) -> int:
        return self.governance.unlock(reason=reason, actor=actor)

    def create_token(self, *, role: str, actor: str, product: str | None = None,
                     expires: datetime | None = None, note: str = "") -> tuple[str, Token]:
        return self.tokens.create(role=role, actor=actor, product=product, expires=expires,
                                  note=note)

    def revoke_token(self, token_id: str, *, reason: str, actor: str) -> int:
        return self.tokens.revoke(token_id, reason=reason, actor=actor)

    def append_event(self, type_: str, *, actor: str, product: str | None,
                     body: Mapping[str, Any]) -> tuple[int, bytes]:
        return self.governance.append_event(type_, actor=actor, product=product, body=body)

    def queue_depth(self) -> int:
        return self.engine.queue_depth()

    @property
    def token_generation(self) -> int:
        return self.tokens.generation

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the writer off: operations queued inside commit as one batch (tests and
        benchmarks use it to build a batch on purpose)."""
        with self.engine.paused():
            yield

    def close(self) -> None:
        self.engine.close()
