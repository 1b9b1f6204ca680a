"""Scrub's pass over the S3 Object Lock backend: each object's retention and legal hold
against what the catalog requires (given as plain values), and the key space."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from depository.store._errors import StoreError
from depository.store._s3client import COMPLIANCE

if TYPE_CHECKING:
    from depository.store._s3 import S3Blobs


def audit(b: S3Blobs, expected: Mapping[str, tuple[str, bool]], *,
          disposed: AbstractSet[str], fix: bool) -> dict[str, Any]:
    """Compare every object's lock state with the catalog; extend or re-hold if ``fix``.

    Also reports objects no record references (a crash before the record: harmless),
    extra versions of a key whose bytes differ (someone wrote into the key space) and
    delete markers.
    """
    findings: list[dict[str, Any]] = []  # lock drift not (or not yet) repaired
    key_space: list[dict[str, Any]] = []  # later versions, delete markers
    fixed: list[dict[str, Any]] = []

    def mend(item: dict[str, Any], repair: Callable[[], None]) -> None:
        """Repair a lock drift when ``fix``; otherwise, or if it fails, report it."""
        if not fix:
            findings.append(item)
            return
        try:
            repair()
            fixed.append(item)
        except StoreError as exc:
            findings.append({**item, "fix_failed": str(exc)})

    for sha, (until_text, held) in sorted(expected.items()):
        versions, markers = b._list_versions(sha)
        if not versions:
            continue  # missing bytes: the hash check reports it
        key = b.key(sha)
        st = b.stat(sha)
        assert st is not None
        until = _parse(until_text)
        short = st.mode != COMPLIANCE or st.retain_until is None or (
            st.retain_until < until - timedelta(seconds=1))
        if short:
            item = {"object": key, "problem": f"retention {st.mode} until "
                    f"{st.retain_until} is shorter than the catalog's {until_text}"}
            mend(item, functools.partial(b.extend_retention, sha, until))
        if st.legal_hold != held:
            item = {"object": key, "problem": "legal hold is "
                    f"{'ON' if st.legal_hold else 'OFF'} but the catalog says "
                    f"{'ON' if held else 'OFF'}"}
            mend(item, functools.partial(b.set_legal_hold, sha, held))
        for v in versions[:-1]:
            got = b._hash_version(key, v.version_id)
            if got != sha:
                key_space.append({"object": key, "problem": f"a later version {v.version_id}"
                                 f" holds other bytes ({got}); the store reads the original"})
        if markers:
            key_space.append({"object": key, "problem": f"{len(markers)} delete marker(s); "
                             "the locked version is intact and still read"})
    orphans = sorted(set(b.iter_objects()) - set(expected) - set(disposed))
    return {"backend": "s3", "bucket": b.bucket, "prefix": b.prefix,
            "lock_problems": findings, "locks_fixed": fixed, "key_space_findings": key_space,
            "orphaned_objects": orphans,
            "deferred": list(b.problems)}


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
