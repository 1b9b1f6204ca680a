"""Check checkpoints anchored in WORM storage against a store.

Each anchor is a signed checkpoint the store wrote, on its checkpoint cadence, as an
object under S3 Object Lock COMPLIANCE retention (``checkpoints/<size>``) or as a file in
an anchor directory. Nobody, the store's administrator included, can delete or replace
a locked anchor, so a store whose history was rewritten or rolled back contradicts
anchors it once wrote, even if the attacker holds the log's signing key and even when
the auditor saved nothing of their own.

For every anchor:

- it must be a checkpoint signed by a trusted verifier key (an unverifiable object in the
  anchor space is itself an incident: only the store writes there);
- its origin must be the store's (anchors of other logs are skipped, not failed);
- its size must not exceed the store's log (else the log was rolled back or truncated);
- the store's Merkle root at that size must equal the anchor's root (else history was
  rewritten);
- no two anchors of the same size may name different roots (a fork: the key signed two
  histories).

This uses the Store API only (``root_at``, ``size``); the offline verifier applies the
same rules to its replayed tree (see ``docs/threat-model.md``).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from depository.tlog.checkpoint import parse_checkpoint, verify_checkpoint

if TYPE_CHECKING:
    from depository.store._store import Store


@dataclass
class AnchorReport:
    """The outcome of :func:`check_anchors`; ``ok`` when nothing contradicts the store."""

    anchors: int = 0
    consistent: int = 0
    latest_anchored: int = 0
    store_size: int = 0
    findings: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings and self.anchors > 0

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "anchors": self.anchors, "consistent": self.consistent,
                "latest_anchored": self.latest_anchored, "store_size": self.store_size,
                "findings": self.findings, "skipped": self.skipped}


def check_anchors(store: Store, anchors: Sequence[bytes], *,
                  verifier_keys: Sequence[str] | None = None) -> AnchorReport:
    """Check every anchored checkpoint against ``store``.

    ``verifier_keys`` are the keys the auditor trusts (default: the store's own key, which
    an attacker who rewrote history may have replaced: pass the key you trust).
    No anchors at all is not ``ok``: the check proved nothing.
    """
    keys = list(verifier_keys) if verifier_keys else [store.verifier_key]
    report = AnchorReport(anchors=len(anchors), store_size=store.size())
    roots: dict[int, bytes] = {}
    for n, note in enumerate(anchors):
        try:
            origin = parse_checkpoint(note.split(b"\n\n", 1)[0] + b"\n").origin
        except Exception:
            origin = None
        if origin is not None and origin != store.origin:
            report.skipped.append({"anchor": n, "reason": f"origin {origin!r} is another log"})
            continue
        try:
            cp, _ = verify_checkpoint(note, keys)
        except Exception as exc:
            first = note.split(b"\n", 1)[0][:200].decode("utf-8", "replace")
            report.findings.append({
                "anchor": n, "size": None,
                "problem": f"not a checkpoint signed by a trusted key ({exc}); only the store "
                           f"writes anchors, so this is an incident (first line {first!r})",
            })
            continue
        root_b64 = base64.b64encode(cp.root_hash).decode()
        prior = roots.setdefault(cp.size, cp.root_hash)
        if prior != cp.root_hash:
            report.findings.append({
                "anchor": n, "size": cp.size,
                "problem": f"fork: two signed checkpoints of size {cp.size} with different "
                           "roots; the log key signed two histories",
            })
        report.latest_anchored = max(report.latest_anchored, cp.size)
        if cp.size > report.store_size:
            report.findings.append({
                "anchor": n, "size": cp.size,
                "problem": f"an anchored checkpoint covers {cp.size} records but the store has "
                           f"only {report.store_size}: the log was rolled back or truncated",
            })
            continue
        if cp.size == 0:
            report.consistent += 1
            continue
        root = store.root_at(cp.size)
        if root != cp.root_hash:
            report.findings.append({
                "anchor": n, "size": cp.size,
                "problem": f"the store's root at size {cp.size} is "
                           f"{base64.b64encode(root).decode()}, the anchor's is {root_b64}: the "
                           "history up to there was rewritten",
            })
            continue
        report.consistent += 1
    return report
