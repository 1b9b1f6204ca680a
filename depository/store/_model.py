"""The store's records as callers see them, and the small pure helpers around them.

No I/O here: times, ids, receipts, artifacts, holds, tokens, and which hold covers what.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

from depository.tlog.record import canonical_json

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(t: datetime) -> str:
    """RFC 3339 UTC with microseconds and a Z, the only form records carry."""
    if t.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    # isoformat is C code, several times faster than strftime on the put path; for years
    # 1000-9999 the text is the same as strftime("%Y-%m-%dT%H:%M:%S.%fZ").
    if t.tzinfo is not UTC:  # the store's clock already gives UTC: no conversion
        t = t.astimezone(UTC)
    return t.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


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
                                  "certification.result", "alert.delivery", "alert.ack"})
# Informational events a governance lock does not refuse: telling people about the lock
# (and their acknowledgement) must still be recorded while writes are halted.
UNDER_LOCK_EVENTS = frozenset({"alert.delivery", "alert.ack"})


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


def hold_covers(product: str | None, scope: Mapping[str, Any], art: Artifact) -> bool:
    """Whether a hold of ``product`` (None: store-wide) and ``scope`` covers ``art``."""
    if product is not None and product != art.product:
        return False
    if "artifact_ids" in scope:
        return art.id in scope["artifact_ids"]
    lo, hi = scope.get("from"), scope.get("to")
    return (lo is None or art.created >= lo) and (hi is None or art.created < hi)
