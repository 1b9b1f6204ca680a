"""Canonical audit records: the exact bytes of every log leaf.

A record is a JSON object encoded with RFC 8785 (JSON Canonicalization Scheme). The leaf
is those canonical bytes, so a leaf that is not the canonical encoding of itself is
rejected: there is exactly one byte string per record, and nobody can smuggle a second
meaning into whitespace, key order, duplicate keys or number spelling.

Envelope (version 1)::

    {"v": 1, "seq": <leaf index>, "time": "<RFC 3339 UTC, ...Z>", "type": "<event type>",
     "actor": "<who>", "product": "<product id>" | null, "body": {...}}

See ``docs/formats.md`` for the event types and their bodies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

from depository.verifier._errors import RecordError

RECORD_VERSION = 1
ENVELOPE_KEYS = frozenset({"v", "seq", "time", "type", "actor", "product", "body"})
_MAX_SAFE_INT = 2**53 - 1
# RFC 3339 UTC with an explicit Z and optional fraction; offsets are refused so that
# string order is time order.
_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z\Z")
_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\Z")
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)


@dataclass(frozen=True)
class Record:
    """One decoded audit record."""

    seq: int
    time: str
    type: str
    actor: str
    product: str | None
    body: Mapping[str, Any]
    v: int = RECORD_VERSION

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (the envelope)."""
        return {
            "v": self.v,
            "seq": self.seq,
            "time": self.time,
            "type": self.type,
            "actor": self.actor,
            "product": self.product,
            "body": dict(self.body),
        }


def _fast_path_ok(value: Any) -> bool:
    """Whether Python's C JSON encoder gives the RFC 8785 bytes for ``value``.

    It does for strings, safe integers, booleans, null, lists and objects whose keys sort
    the same by code point as by UTF-16 code unit (true below U+D800). Floats and large
    integers take the slow, exact path.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) or item is None or isinstance(item, bool):
            continue
        if isinstance(item, int):
            if -_MAX_SAFE_INT <= item <= _MAX_SAFE_INT:
                continue
            return False
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str) or (key and max(key) >= "\ud800"):
                    return False
                stack.append(sub)
            continue
        if isinstance(item, list | tuple):
            stack.extend(item)
            continue
        return False
    return True


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical bytes of a JSON value.

    Raises ``ValueError`` for values JSON cannot carry exactly (NaN, integers beyond
    2^53 - 1, non-string keys).
    """
    if _fast_path_ok(value):
        return _ENCODER.encode(value).encode("utf-8")
    try:
        out: bytes = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError) as exc:
        raise ValueError(f"value cannot be canonically encoded: {exc}") from exc
    return out


def encode_record(record: Record) -> bytes:
    """The leaf bytes of ``record``, after checking the envelope."""
    _check_envelope(record.to_json(), expected_seq=None)
    try:
        return canonical_json(record.to_json())
    except ValueError as exc:
        raise RecordError(f"record {record.seq}: {exc}") from exc


def parse_record(leaf: bytes, *, index: int | None = None) -> Record:
    """Decode a leaf, checking it is canonical and a valid version-1 envelope.

    ``index``, when given, is the leaf's position in the log and must equal ``seq``.
    Raises :class:`RecordError` naming the index and what is wrong.
    """
    where = f"record {index}" if index is not None else "record"
    if not isinstance(leaf, bytes | bytearray | memoryview):
        raise RecordError(f"{where}: leaf must be bytes, got {type(leaf).__name__}")
    leaf = bytes(leaf)
    try:
        obj = json.loads(leaf.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RecordError(f"{where}: leaf is not UTF-8 JSON: {exc}") from exc
    try:
        again = canonical_json(obj)
    except ValueError as exc:
        raise RecordError(f"{where}: {exc}") from exc
    if again != leaf:
        raise RecordError(
            f"{where}: leaf bytes are not the RFC 8785 canonical encoding of themselves "
            f"(first difference at byte {_first_difference(again, leaf)})"
        )
    _check_envelope(obj, expected_seq=index)
    return Record(
        v=obj["v"],
        seq=obj["seq"],
        time=obj["time"],
        type=obj["type"],
        actor=obj["actor"],
        product=obj["product"],
        body=obj["body"],
    )


def _first_difference(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


def _check_envelope(obj: Any, *, expected_seq: int | None) -> None:
    where = f"record {expected_seq}" if expected_seq is not None else "record"
    if not isinstance(obj, dict):
        raise RecordError(f"{where}: must be a JSON object, got {type(obj).__name__}")
    keys = set(obj)
    if keys != ENVELOPE_KEYS:
        missing = sorted(ENVELOPE_KEYS - keys)
        extra = sorted(keys - ENVELOPE_KEYS)
        raise RecordError(f"{where}: envelope keys wrong (missing {missing}, unexpected {extra})")
    if obj["v"] != RECORD_VERSION or isinstance(obj["v"], bool):
        raise RecordError(f"{where}: unsupported record version {obj['v']!r}")
    seq = obj["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise RecordError(f"{where}: seq must be a non-negative integer, got {seq!r}")
    if expected_seq is not None and seq != expected_seq:
        raise RecordError(f"{where}: seq is {seq}, but the record is at log index {expected_seq}")
    if not isinstance(obj["time"], str) or not _TIME_RE.match(obj["time"]):
        raise RecordError(f"{where}: time {obj['time']!r} is not RFC 3339 UTC (…Z)")
    if not isinstance(obj["type"], str) or not _TYPE_RE.match(obj["type"]):
        raise RecordError(f"{where}: type {obj['type']!r} is not a dotted lower-case name")
    if not isinstance(obj["actor"], str) or not obj["actor"]:
        raise RecordError(f"{where}: actor must be a non-empty string")
    if obj["product"] is not None and (not isinstance(obj["product"], str) or not obj["product"]):
        raise RecordError(f"{where}: product must be null or a non-empty string")
    if not isinstance(obj["body"], dict):
        raise RecordError(f"{where}: body must be a JSON object")
