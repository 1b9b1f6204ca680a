"""Scrub: re-hash every live artifact's bytes against its record, finish interrupted
disposals, run SQLite's integrity check, and let the blob backend audit itself against
the catalog (orphans; with Object Lock, each object's retention and hold)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from depository.store._backend import BlobBackend
from depository.store._locks import expect_lock
from depository.store._reads import StoreReads


def scrub(reads: StoreReads, blobs: BlobBackend, *, fix: bool,
          progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The scrub report; ``fix``: remove disposed leftovers and re-apply object locks.

    ``problems`` (damaged artifacts, failed lock repairs) and a failed integrity check
    are what the caller locks the store for.
    """
    total = reads.artifact_count()
    problems: list[dict[str, Any]] = []
    leftovers: list[str] = []
    holds = reads.holds() if blobs.object_lock else []
    expected: dict[str, tuple[str, bool]] = {}
    checked = 0
    for n, art in enumerate(reads.all_artifacts(), 1):
        if progress and n % 100 == 0:
            progress(n, total)
        if art.disposed:
            if art.storage == "file" and not reads.live_file_count(art.sha256) and (
                    blobs.exists(art.sha256)):
                # The disposal is committed and logged; finish removing its bytes.
                if fix:
                    blobs.remove(art.sha256)
                leftovers.append(art.id)
            continue
        if art.storage == "inline":
            data = reads.inline_bytes(art.log_index)
            got = hashlib.sha256(data).hexdigest() if data is not None else None
        else:
            expect_lock(expected, art, holds)
            got = blobs.hash(art.sha256)
        checked += 1
        if got != art.sha256:
            problems.append({
                "artifact_id": art.id, "product": art.product, "name": art.name,
                "log_index": art.log_index,
                "problem": "bytes missing" if got is None else f"bytes hash to {got}",
            })
    if progress:
        progress(total, total)
    integrity = reads.integrity_check()
    backend = blobs.audit(expected, disposed=reads.disposed_shas(), fix=fix)
    problems += backend.get("lock_problems", [])
    return {"artifacts": total, "checked": checked, "problems": problems,
            "sqlite_integrity": integrity, "disposed_bytes_removed": leftovers,
            "backend": backend}
