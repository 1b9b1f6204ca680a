"""Canonical audit records (RFC 8785)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from depository.verifier import RecordError
from depository.verifier.record import Record, canonical_json, encode_record, parse_record


def _rec(seq: int = 0, **kw: Any) -> Record:
    base: dict[str, Any] = dict(
        seq=seq, time="2026-11-28T10:00:00.123456Z", type="artifact.put",
        actor="writer@gurukul", product="gurukul", body={"name": "é→x", "size": 3},
    )
    base.update(kw)
    return Record(**base)


def test_round_trip() -> None:
    leaf = encode_record(_rec(7))
    assert parse_record(leaf, index=7) == _rec(7)
    assert leaf == rfc8785.dumps(_rec(7).to_json())


def test_rejects_non_canonical_whitespace_and_order() -> None:
    obj = _rec(1).to_json()
    with pytest.raises(RecordError, match="canonical"):
        parse_record(json.dumps(obj).encode(), index=1)
    reordered = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    with pytest.raises(RecordError, match="canonical"):
        parse_record(reordered.encode(), index=1)


def test_rejects_duplicate_keys() -> None:
    leaf = encode_record(_rec(1))
    forged = leaf[:-1] + b',"v":1}'
    with pytest.raises(RecordError):
        parse_record(forged, index=1)


def test_rejects_wrong_seq() -> None:
    with pytest.raises(RecordError, match="log index 4"):
        parse_record(encode_record(_rec(3)), index=4)


@pytest.mark.parametrize(
    "change",
    [
        {"time": "2026-11-28T10:00:00+00:00"},
        {"time": "yesterday"},
        {"type": "Artifact Put"},
        {"actor": ""},
        {"product": ""},
    ],
)
def test_rejects_bad_envelope(change: dict[str, Any]) -> None:
    obj = _rec(0).to_json() | change
    with pytest.raises(RecordError):
        parse_record(rfc8785.dumps(obj), index=0)


@pytest.mark.parametrize(
    "leaf", [b"", b"\xff\xfe", b"[]", b"null", b'{"v":1}', b"{" * 100000, b"1e400"]
)
def test_garbage_is_a_record_error(leaf: bytes) -> None:
    with pytest.raises(RecordError):
        parse_record(leaf, index=0)


def test_floats_and_big_ints_follow_rfc8785() -> None:
    assert canonical_json({"a": 1.0, "b": 1e21}) == b'{"a":1,"b":1e+21}'
    with pytest.raises(ValueError):
        canonical_json({"a": 2**60})


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_fast_path_equals_rfc8785(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)
