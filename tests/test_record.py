"""Canonical audit records (RFC 8785)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from depository.tlog import RecordError
from depository.tlog import record as record_module
from depository.tlog.record import (
    Record,
    _canonical_value,
    canonical_json,
    encode_record,
    parse_record,
)


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


# --------------------------------------------------------------------------- quick path
# parse_record decides canonical form by comparing the leaf with Python's own sorted,
# compact encoding of what json.loads made of it, and hands only floats, 16+ digit
# numbers and keys from U+E000 up to rfc8785. The oracle below is the definition: a leaf
# is canonical iff it decodes and rfc8785 re-encodes the decoded value to the same bytes
# (json.loads keeps one member per duplicate key, so duplicates fail the oracle too).

_KEY_CHARS = "ab\x00\x1f\x7f\"\\é\u2028\ud7ff\ue000\uffff\U0001f600"
_nasty_text = st.text(alphabet=_KEY_CHARS, max_size=4)
_nasty = st.recursive(
    st.none() | st.booleans()
    | st.integers(-(2**53) - 5, 2**53 + 5) | st.integers() | _nasty_text
    | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 1.0]),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_nasty_text, kids, max_size=4),
    max_leaves=12,
)


def _oracle(leaf: bytes) -> bool:
    try:
        return bool(rfc8785.dumps(json.loads(leaf)) == leaf)
    except (ValueError, TypeError, RecursionError, rfc8785.CanonicalizationError):
        return False


def _spellings(value: Any) -> list[bytes]:
    """The canonical bytes (when there are any) and several non-canonical spellings."""
    out: list[bytes] = []
    with contextlib.suppress(rfc8785.CanonicalizationError, ValueError, TypeError):
        out.append(rfc8785.dumps(value))
    for kw in (
        {},
        {"ensure_ascii": False},
        {"sort_keys": True, "ensure_ascii": False},
        {"sort_keys": True, "separators": (",", ":")},
        {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False},
        {"separators": (",", ":"), "ensure_ascii": False},
    ):
        with contextlib.suppress(ValueError, TypeError):
            out.append(json.dumps(value, **kw).encode("utf-8", "surrogatepass"))
    return out


def _mutations(leaf: bytes) -> list[bytes]:
    """Edits that keep the JSON valid but may break canonical form."""
    out = []
    if leaf.startswith(b"{") and len(leaf) > 2:
        first = leaf[1:].split(b",", 1)[0].rstrip(b"}")
        out.append(b"{" + first + b"," + leaf[1:])  # the first member twice
        out.append(leaf[:-1] + b"," + first + b"}")  # ... at the end
    for old, new in (
        (b"1", b"1.0"), (b"0", b"-0"), (b"0", b"0e0"), (b"a", b"\\u0061"), (b"/", b"\\/"),
        (b"\\u001f", b"\\u001F"), (b"\\n", b"\\u000a"), ("é".encode(), b"\\u00e9"),
        ("\U0001f600".encode(), b"\\ud83d\\ude00"), (b":", b": "), (b",", b" ,"),
        (b"true", b"tru\\u0065"),
    ):
        if old in leaf:
            out.append(leaf.replace(old, new, 1))
    return out


@settings(max_examples=600, deadline=None)
@given(_nasty)
def test_parse_decides_exactly_like_rfc8785(value: Any) -> None:
    for spelling in _spellings(value):
        for leaf in [spelling, *_mutations(spelling)]:
            try:
                obj = _canonical_value(leaf, "record")
            except RecordError:
                assert not _oracle(leaf), leaf
            else:
                assert _oracle(leaf), leaf
                assert rfc8785.dumps(obj) == leaf


@settings(max_examples=600, deadline=None)
@given(_nasty)
def test_quick_path_acceptance_is_rfc8785(value: Any) -> None:
    # With the exact path switched off, whatever still passes passed on the quick path
    # alone: it must be byte-identical to rfc8785's encoding of the decoded value.
    def off(value: Any) -> bytes:
        raise AssertionError("exact path")

    with pytest.MonkeyPatch.context() as m:
        m.setattr(record_module, "canonical_json", off)
        for spelling in _spellings(value):
            for leaf in [spelling, *_mutations(spelling)]:
                try:
                    obj = _canonical_value(leaf, "record")
                except (RecordError, AssertionError):
                    continue
                assert rfc8785.dumps(obj) == leaf, leaf


def test_quick_path_takes_ordinary_records(monkeypatch: pytest.MonkeyPatch) -> None:
    def off(value: Any) -> bytes:
        raise AssertionError("exact path")

    leaf = encode_record(_rec(3, body={"name": "é→x", "size": 3, "m": {"k": "v\n"}}))
    monkeypatch.setattr(record_module, "canonical_json", off)
    assert parse_record(leaf, index=3).body["m"] == {"k": "v\n"}


@pytest.mark.parametrize(
    ("leaf", "canonical"),
    [
        (b'{"a":1,"a":1}', False),  # duplicate keys, identical values
        (b'{"a":1,"b":{"c":2,"c":3}}', False),  # nested duplicate
        (b'{"b":1,"a":2}', False),
        (b'{"a":1.0}', False),
        (b'{"a":-0}', False),
        (b'{"a":1e2}', False),
        (b'{"a":100}', True),
        (b'{"a":"\\u0041"}', False),
        (b'{"a":"\\u001F"}', False),
        (b'{"a":"\\u001f"}', True),
        (b'{"a":"\\/"}', False),
        (b'{"a":"\\ud800"}', False),  # lone surrogate
        (b'{"a":9007199254740991}', True),  # 2^53 - 1
        (b'{"a":9007199254740992}', False),  # 2^53
        (b'{"a":-9007199254740991}', True),
        (b'{"a":123456789012345678901234567890}', False),
        (b'{"a":NaN}', False),
        (b'{"a":Infinity}', False),
        # U+1F600 is D83D DE00 in UTF-16, so it sorts before U+E000 (code point order
        # would put it after).
        ('{"\U0001f600":2,"\ue000":1}'.encode(), True),
        ('{"\ue000":1,"\U0001f600":2}'.encode(), False),
        ('{"\u00e9":1}'.encode(), True),
        (b'{"a":1} ', False),
        (b' {"a":1}', False),
    ],
)
def test_canonical_decisions(leaf: bytes, canonical: bool) -> None:
    assert _oracle(leaf) is canonical  # the table itself is right
    if canonical:
        assert _canonical_value(leaf, "record") == json.loads(leaf)
    else:
        with pytest.raises(RecordError):
            _canonical_value(leaf, "record")
