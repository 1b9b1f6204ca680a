"""Object Lock mirroring: the blob backend's retention and legal holds follow the catalog.

With a backend that enforces WORM itself (``s3``), each object's legal hold must be on
while any active hold covers a live artifact with those bytes, and its retention must be
at least the longest of theirs. The store works out the desired state from the catalog
(:class:`~depository.store._reads.StoreReads`) and tells the backend with its narrow
verbs, ``set_legal_hold(sha, on)`` and ``extend_retention(sha, until)``; the backend
never reads the catalog. Best-effort steps after a commit never raise: a failure is
handed to ``blobs.defer`` and scrub re-applies the state (:func:`expected_locks`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from depository.store._backend import BlobBackend
from depository.store._model import Artifact, Hold, hold_covers
from depository.store._reads import StoreReads


def _covers(h: Hold, art: Artifact) -> bool:
    return not art.disposed and hold_covers(h.product, h.scope, art)


class LockMirror:
    """The catalog-to-backend lock steps around puts and holds (Object Lock only)."""

    def __init__(self, reads: StoreReads, blobs: BlobBackend) -> None:
        self.reads = reads
        self.blobs = blobs

    def after_put(self, artifact_id: str) -> None:
        """After a put commits: a hold already covering the new artifact holds its object."""
        try:
            art = self.reads.get_by_id(artifact_id)
            if any(_covers(h, art) for h in self.reads.holds()):
                self.blobs.set_legal_hold(art.sha256, True)
        except Exception as exc:
            self.blobs.defer(f"legal hold for {artifact_id}: {exc} (scrub re-applies it)")

    def before_hold(self, product: str | None, scope: Mapping[str, Any]) -> int:
        """Before a hold is recorded: legal hold ON for every live object it covers
        (write-ahead; a failure refuses the hold). Returns the highest log index seen."""
        last = -1
        for art in self._covered(product, scope, after=None):
            last = max(last, art.log_index)
            self.blobs.set_legal_hold(art.sha256, True)
        return last

    def after_hold(self, product: str | None, scope: Mapping[str, Any], after: int) -> None:
        """After the hold record: cover artifacts written while it was being placed."""
        try:
            for art in self._covered(product, scope, after=after if after >= 0 else None):
                self.blobs.set_legal_hold(art.sha256, True)
        except Exception as exc:
            self.blobs.defer(f"legal hold sweep: {exc} (scrub re-applies it)")

    def after_release(self, hold_id: str) -> None:
        """After a release: legal hold OFF where no other active hold needs the object."""
        try:
            released = [h for h in self.reads.holds(include_released=True) if h.id == hold_id]
            if not released:
                return
            active = self.reads.holds()
            h = released[0]
            for art in self._covered(h.product, h.scope, after=None):
                if not any(any(_covers(a, x) for a in active)
                           for x in self.reads.live_files_with_sha(art.sha256)):
                    self.blobs.set_legal_hold(art.sha256, False)
        except Exception as exc:
            self.blobs.defer(f"releasing legal holds of {hold_id}: {exc} (scrub re-syncs "
                             "them)")

    def _covered(self, product: str | None, scope: Mapping[str, Any], *,
                 after: int | None) -> Iterator[Artifact]:
        """Live artifacts with bytes in the backend that a hold of this scope covers."""
        if "artifact_ids" in scope:
            for aid in scope["artifact_ids"]:
                art = self.reads.get_by_id(aid)
                if not art.disposed and art.storage == "file" and (
                        after is None or art.log_index > after):
                    yield art
            return
        for art in self.reads.iter_artifacts(product=product, since=scope.get("from"),
                                             until=scope.get("to"), after=after):
            if not art.disposed and art.storage == "file":
                yield art


def expect_lock(expected: dict[str, tuple[str, bool]], art: Artifact, holds: list[Hold]
                ) -> None:
    """Add a live file-backed artifact to ``expected``: per blob (SHA-256 hex), the longest
    retention of the artifacts sharing it and whether an active hold covers any of them
    -- what the backend should hold."""
    held = any(_covers(h, art) for h in holds)
    until, was = expected.get(art.sha256, ("", False))
    expected[art.sha256] = (max(until, art.retain_until), was or held)
