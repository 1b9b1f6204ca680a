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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

from depository.tlog.errors import RecordError
from depository.tlog.safejson import MAX_DEPTH, text_depth

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


def _no_default(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _make_quick_encode() -> Callable[[Any], str]:
    """``_ENCODER.encode`` without its per-call set-up (one C encoder, built once).

    Only for values decoded from JSON: there are no cycles to guard against (no markers),
    and anything not JSON raises TypeError as ``encode`` would.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    basestring = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or basestring is None:  # an interpreter without the C accelerator
        return _ENCODER.encode
    enc = make(None, _no_default, basestring, None, ":", ",", True, False, False)

    def quick(value: Any) -> str:
        if isinstance(value, str):  # the C encoder wants a container at the top
            return _ENCODER.encode(value)
        return "".join(enc(value, 0))

    return quick


quick_encode = _make_quick_encode()
"""Python's sorted compact JSON text of a decoded JSON value (RFC 8785 only when
:func:`canonical_json`'s quick-path conditions hold; callers must check them)."""


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
        return quick_encode(value).encode("utf-8")
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


class _SlowPath(Exception):
    """A token the quick comparison cannot judge: a float (Python's float repr is not
    RFC 8785's), NaN/Infinity, or an integer of 16 or more digits (2^53 and beyond,
    which RFC 8785 cannot carry exactly but Python would print)."""


def _refuse_float(text: str) -> Any:
    raise _SlowPath(text)


def _small_int(text: str) -> int:
    # A str's length is the digit count (plus a sign): 15 digits stay below 2^53.
    if len(text) > 15:
        raise _SlowPath(text)
    return int(text)


# Decodes like json.loads but stops at the first token only the exact path may judge.
_FAST_DECODER = json.JSONDecoder(
    parse_float=_refuse_float, parse_int=_small_int, parse_constant=_refuse_float
)

# A UTF-8 lead byte of U+E000 or above: object keys sort by UTF-16 code unit in RFC 8785
# and by code point in Python, and the two orders agree below U+E000. (Checked only on
# non-ASCII leaves; a match inside a string value only costs the exact path.)
_HIGH = re.compile(rb"[\xee-\xff]")


def _canonical_value(leaf: bytes, where: str) -> Any:
    """Decode ``leaf`` and check it is the RFC 8785 encoding of the decoded value.

    The quick path compares the leaf with Python's sorted, compact encoding of what
    ``json.loads`` made of it. For a value of strings, integers of at most 15 digits
    (below 2^53), booleans, null, arrays and objects whose keys hold no character from
    U+E000 up, that encoding *is* RFC 8785 (same escapes, same key order, same integer
    spelling), so equality proves canonical form. Duplicate keys need no separate check: the decoded
    object keeps one member per key, so its encoding is shorter than the leaf and the
    comparison fails. Anything else (floats, big numbers, high code points) goes through
    ``rfc8785`` itself.
    """
    try:
        text = leaf.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"{where}: leaf is not UTF-8 JSON: {exc}") from exc
    # Refused by measured depth before any recursive parse or encode (two byte counts
    # settle it for nearly every record).
    if leaf.count(b"[") + leaf.count(b"{") > MAX_DEPTH and text_depth(
            leaf, stop_above=MAX_DEPTH) > MAX_DEPTH:
        raise RecordError(f"{where}: nested more than {MAX_DEPTH} deep (arrays/objects); "
                          "no record the store writes is, so it is refused unparsed")
    if leaf.isascii() or _HIGH.search(leaf) is None:
        try:
            obj = _FAST_DECODER.decode(text)
            again = quick_encode(obj)
        except (_SlowPath, ValueError):
            pass  # the exact path decides, and words the error
        else:
            if again == text:
                return obj
            canon = again.encode("utf-8", "surrogatepass")  # a decoded lone surrogate
            raise RecordError(
                f"{where}: leaf bytes are not the RFC 8785 canonical encoding of themselves "
                f"(first difference at byte {_first_difference(canon, leaf)})"
            )
    try:
        obj = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise RecordError(f"{where}: leaf is not UTF-8 JSON: {exc}") from exc
    try:
        canon = canonical_json(obj)
    except ValueError as exc:
        raise RecordError(f"{where}: {exc}") from exc
    if canon != leaf:
        raise RecordError(
            f"{where}: leaf bytes are not the RFC 8785 canonical encoding of themselves "
            f"(first difference at byte {_first_difference(canon, leaf)})"
        )
    return obj


def parse_record_json(leaf: bytes, *, index: int | None = None) -> dict[str, Any]:
    """Like :func:`parse_record`, but return the checked envelope as a dict.

    The store replay's hot path: it spares building a :class:`Record` per leaf.
    """
    where = f"record {index}" if index is not None else "record"
    if not isinstance(leaf, bytes):
        if not isinstance(leaf, bytearray | memoryview):
            raise RecordError(f"{where}: leaf must be bytes, got {type(leaf).__name__}")
        leaf = bytes(leaf)
    obj = _canonical_value(leaf, where)
    _check_envelope(obj, expected_seq=index)
    out: dict[str, Any] = obj
    return out


def check_record_json(obj: Any, *, index: int | None = None) -> dict[str, Any]:
    """The envelope checks of :func:`parse_record_json` for a value already decoded from a
    leaf proven canonical (the native verifier's decoder); raises :class:`RecordError`."""
    _check_envelope(obj, expected_seq=index)
    out: dict[str, Any] = obj
    return out


def parse_record(leaf: bytes, *, index: int | None = None) -> Record:
    """Decode a leaf, checking it is canonical and a valid version-1 envelope.

    ``index``, when given, is the leaf's position in the log and must equal ``seq``.
    Raises :class:`RecordError` naming the index and what is wrong.
    """
    obj = parse_record_json(leaf, index=index)
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
    # One expression for the envelope every valid record has; the checks below only run
    # to word what is wrong (and must agree with this one).
    if (
        type(obj) is dict
        and obj.keys() == ENVELOPE_KEYS
        and type(obj["v"]) is int and obj["v"] == RECORD_VERSION
        and type(obj["seq"]) is int and obj["seq"] >= 0
        and (expected_seq is None or obj["seq"] == expected_seq)
        and type(obj["time"]) is str and _TIME_RE.match(obj["time"]) is not None
        and type(obj["type"]) is str and _TYPE_RE.match(obj["type"]) is not None
        and type(obj["actor"]) is str and obj["actor"] != ""
        and (obj["product"] is None or (type(obj["product"]) is str and obj["product"] != ""))
        and type(obj["body"]) is dict
    ):
        return
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
