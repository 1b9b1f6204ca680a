"""Retention, legal holds, disposal, governance locks and informational events.

The writer-side operations of :class:`~depository.store._writer.LocalWriter` that are
about keeping (or ceasing to keep) what was written. Each checks what it can before
queueing, then decides again inside the writer's transaction (a hold or an extension may
land meanwhile). With Object Lock, the backend is told first (write-ahead) where a record
promises more protection, and after the commit where it promises less.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from depository.store._authority import UnexplainedRowError, explain, explain_artifact
from depository.store._backend import BlobBackend
from depository.store._engine import Txn, WriterEngine, apply_lock
from depository.store._errors import (
    GovernanceLockedError,
    HoldError,
    RetentionError,
    StoreError,
)
from depository.store._locks import LockMirror
from depository.store._model import (
    INFORMATIONAL_EVENTS,
    UNDER_LOCK_EVENTS,
    Artifact,
    Clock,
    Hold,
    format_time,
    hold_covers,
)
from depository.store._reads import StoreReads
from depository.tlog.record import canonical_json


class Governance:
    """Retention, holds, disposal, locks and events, queued on one writer engine."""

    def __init__(self, engine: WriterEngine, reads: StoreReads, blobs: BlobBackend,
                 mirror: LockMirror | None, clock: Clock) -> None:
        self.engine = engine
        self.reads = reads
        self.blobs = blobs
        self.mirror = mirror  # set with Object Lock
        self.clock = clock

    def _run(self, op: Callable[[Txn], Any]) -> Any:
        return self.engine.submit(op).result()

    # -------------------------------------------------------------- retention
    def extend_retention(self, product: str, name_or_id: str, until: datetime, *,
                         actor: str, reason: str) -> int:
        """Extend an artifact's retention. Shortening is refused and the attempt logged."""
        art = self.reads.get(product, name_or_id)
        until_text = format_time(until.astimezone(UTC))
        if self.mirror is not None and art.storage == "file" and not art.disposed and (
                until_text > art.retain_until and not self.engine.state.locked):
            # Write-ahead: the object's COMPLIANCE retention is extended before the record.
            self.blobs.extend_retention(art.sha256, until)

        def op(txn: Txn) -> int | StoreError:
            current = txn.db.effective_retention(art.id, art.retain_until)
            if txn.state.locked:
                return GovernanceLockedError.of(txn.state.locked)
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
            txn.db.add_retention(seq, art.id, until_text)
            return seq

        return int(self._run(op))

    # ------------------------------------------------------------------ holds
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
            arts = [self.reads.get_by_id(a) for a in artifact_ids]
            products = {a.product for a in arts}
            if len(products) != 1:
                raise HoldError("a hold's artifacts must all belong to one product")
            product = products.pop()
            scope = {"artifact_ids": sorted(set(artifact_ids))}
        else:
            assert product is not None
            self.reads.product(product)
            scope = {"from": format_time(since) if since else None,
                     "to": format_time(until) if until else None}

        def op(txn: Txn) -> Hold:
            hid = f"hold-{txn.next_seq}"
            seq = txn.append("hold.place", actor, product, {
                "hold_id": hid, "matter": matter, "reason": reason, "scope": scope,
            })
            txn.db.add_hold(hid, matter, reason, actor, product, canonical_json(scope).decode(),
                            seq, txn.now_text)
            return Hold(hid, matter, reason, actor, product, scope, seq, txn.now_text, False)

        # Object Lock: legal hold on every covered object before the record (write-ahead).
        mark = self.mirror.before_hold(product, scope) if self.mirror else -1
        hold: Hold = self._run(op)
        if self.mirror is not None:
            self.mirror.after_hold(product, scope, mark)
        return hold

    def release_hold(self, hold_id: str, *, reason: str, actor: str) -> int:
        """Release a hold; the hold and its release both stay in the log."""
        if not reason.strip():
            raise HoldError("releasing a hold needs a reason")

        def op(txn: Txn) -> int | StoreError:
            state = txn.db.hold_state(hold_id)
            if state is None:
                return HoldError(f"no hold {hold_id!r}; list them with `depository hold list`")
            matter, product, placed, released = state
            try:  # only a hold (and a release) the log explains decides anything
                explain(txn.db.leaf, placed, "hold.place",
                        {"hold_id": hold_id, "matter": matter},
                        f"hold {hold_id}: its row in table hold (placed_idx {placed})",
                        product=product)
                if released is not None:
                    _explain_release(txn, hold_id, released)
            except UnexplainedRowError as exc:
                return txn.tampered(str(exc))
            if released is not None:
                return HoldError(f"hold {hold_id} is already released")
            if txn.state.locked:
                return GovernanceLockedError.of(txn.state.locked)
            seq = txn.append("hold.release", actor, product, {
                "hold_id": hold_id, "matter": matter, "reason": reason,
            })
            txn.db.add_hold_release(hold_id, reason, actor, seq, txn.now_text)
            return seq

        seq = int(self._run(op))
        if self.mirror is not None:
            self.mirror.after_release(hold_id)
        return seq

    # --------------------------------------------------------------- disposal
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
        candidates = self.reads.disposable(now)
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
        return [int(self._run(self._dispose_op(art, actor))) for art in candidates]

    def _dispose_op(self, art: Artifact, actor: str) -> Callable[[Txn], Any]:
        def op(txn: Txn) -> int | StoreError:
            if txn.state.locked:
                return GovernanceLockedError.of(txn.state.locked)
            if txn.clamped:
                # The clock stepped back behind the log: judging expiry at the (later)
                # time the record would carry could dispose early. Wait for the clock.
                return RetentionError(
                    f"artifact {art.id}: the store's clock reads earlier than its last "
                    f"record ({txn.now_text}); disposal waits until the clock catches up")
            # Re-check under the writer: a hold or extension may have landed meanwhile.
            current = txn.db.effective_retention(art.id, art.retain_until)
            held = []
            try:  # the artifact, and every release that would free it, from the log
                explain_artifact(art.id, art.sha256, art.log_index, txn.db.leaf)
                for hid, product, scope, released in txn.db.holds():
                    if hold_covers(product, scope, art):
                        if released is None:
                            held.append(hid)
                        else:
                            _explain_release(txn, hid, released)
            except UnexplainedRowError as exc:
                return txn.tampered(str(exc))
            if current >= txn.now_text or held:
                return RetentionError(
                    f"artifact {art.id} ({art.product}/{art.name}) is not disposable at "
                    f"{txn.now_text}: retained until {current}"
                    + (f", under legal hold {', '.join(held)}" if held else ""))
            # Inline bytes belong to this artifact alone; a file is shared by every
            # file-backed artifact with the same bytes.
            others = 0 if art.storage == "inline" else txn.db.live_file_copies(
                art.sha256, art.id)
            seq = txn.append("artifact.dispose", actor, art.product, {
                "artifact_id": art.id, "sha256": art.sha256, "retain_until": current,
                "bytes_removed": others == 0,
            })
            txn.db.add_disposal(art.id, art.sha256, seq, txn.now_text)
            if art.storage == "inline":
                txn.db.drop_inline(art.log_index)
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
        self.engine.removed.add(sha256_hex)
        self.blobs.remove(sha256_hex)

    # ------------------------------------------------------------------ locks
    def lock(self, reason: str, *, check: str, actor: str = "depository") -> int:
        """Record a governance lock: writes are refused until an admin unlocks."""
        return int(self._run(lambda txn: apply_lock(txn, reason, check, actor)))

    def unlock(self, *, reason: str, actor: str) -> int:
        """Lift a governance lock (logged). The cause must be fixed first."""
        if not reason.strip():
            raise StoreError("unlocking needs a reason (it is recorded in the audit log)")

        def op(txn: Txn) -> int | StoreError:
            if not txn.state.locked:
                return StoreError("the store is not locked")
            seq = txn.append("governance.unlock", actor, None, {
                "reason": reason, "lock_reason": txn.state.locked,
            })
            txn.db.add_governance(seq, "unlocked", reason, actor, txn.now_text)
            txn.state.locked = None
            return seq

        return int(self._run(op))

    # ------------------------------------------------------------- other events
    def append_event(self, type_: str, *, actor: str, product: str | None,
                     body: Mapping[str, Any]) -> tuple[int, bytes]:
        """Append an informational record (e.g. ``evidence.export``); returns
        (log index, leaf hash). Only types without derived state are allowed."""
        if type_ not in INFORMATIONAL_EVENTS:
            raise StoreError(f"event type {type_!r} cannot be appended directly")
        if product is not None:
            self.reads.product(product)
        data = dict(body)

        def op(txn: Txn) -> tuple[int, bytes] | StoreError:
            if txn.state.locked and type_ not in UNDER_LOCK_EVENTS:
                return GovernanceLockedError.of(txn.state.locked)
            seq = txn.append(type_, actor, product, data)
            return seq, txn.leaves[-1][2]

        result: tuple[int, bytes] = self._run(op)
        return result


def _explain_release(txn: Txn, hold_id: str, log_idx: int) -> None:
    explain(txn.db.leaf, log_idx, "hold.release", {"hold_id": hold_id},
            f"hold {hold_id}: its release row (log_idx {log_idx})")
