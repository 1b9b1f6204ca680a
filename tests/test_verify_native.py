"""The native verifier engine (``depository.verifier._cverify``) against its pure-Python
specification (``depository.tlog.record`` and ``depository.verifier.store``).

The rule (ADR 0012): the C decoder only *confirms*. Whatever it accepts, the Python
parser accepts too and decodes to an equal value; whatever it returns None for goes to
the Python parser, which decides and words the error. So a leaf the C code accepts but
Python refuses is a bug (a forged record would pass), and so is a canonical record in
the C code's domain that it does not accept (the fast path would be dead code).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import depository.verifier.store as vstore
from depository.store import artifact_id as artifact_id_of
from depository.tlog import merkle, safejson
from depository.tlog.authority import TOKEN_ACTOR
from depository.tlog.errors import RecordError
from depository.tlog.record import _canonical_value, canonical_json, parse_record_json

ROOT = Path(__file__).resolve().parent.parent

native = vstore._NATIVE
needs_native = pytest.mark.skipif(native is None, reason="native engine not built/disabled")


def test_native_engine_is_built() -> None:
    """``make test`` builds the extension (``make setup``); the differential tests below
    must not silently skip. ``DEPOSITORY_NATIVE=0`` is the one way to turn it off."""
    if os.environ.get("DEPOSITORY_NATIVE") == "0":
        assert native is None and vstore.engine() == vstore.ENGINE_PYTHON
        return
    assert native is not None, "run `make native`: depository/verifier/_cverify*.so is missing"
    assert vstore.engine() == vstore.ENGINE_NATIVE
    assert vstore.engine(False) == vstore.ENGINE_PYTHON


def python_verdict(leaf: bytes) -> tuple[bool, Any]:
    try:
        return True, _canonical_value(leaf, "record")
    except RecordError as exc:
        return False, str(exc)


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values, with exact types (True is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def check_leaf(leaf: bytes) -> Any:
    """The engine rule for one leaf; returns what the C decoder returned."""
    got = native.loads(leaf)
    if got is not None:
        ok, value = python_verdict(leaf)
        assert ok, f"C accepted {leaf[:200]!r}, Python refuses it: {value}"
        assert same_json(got, value), f"{leaf[:200]!r}: C {got!r} != Python {value!r}"
    return got


def in_native_domain(leaf: bytes) -> bool:
    """Canonical leaves the C decoder must accept: no float, no integer of 16+ digits,
    no byte from 0xEE up (UTF-16 key order), nesting within the limit."""
    if any(b >= 0xEE for b in leaf):
        return False
    value = json.loads(leaf)
    stack = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool)
                                    and len(str(abs(v))) > 15):
            return False
        if isinstance(v, dict | list):
            if d + 1 > safejson.MAX_DEPTH:
                return False
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return True


# ----------------------------------------------------------------- property tests

_scalars = (st.none() | st.booleans() | st.integers(-(2**60), 2**60)
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=12) | st.sampled_from(["\u2028", "\x7f", "\x00\x1f", "é",
                                                      "\ufb01", "\U0001f600", '"\\/']))
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=20,
)


@needs_native
@settings(max_examples=400, deadline=None)
@given(_values)
def test_canonical_values_agree(value: Any) -> None:
    try:  # wrapped: None is also the C decoder's "not proven" (records are objects)
        leaf = canonical_json({"x": value})
    except ValueError:
        return  # not representable (integers beyond 2^53): no leaf to compare
    got = check_leaf(leaf)
    if in_native_domain(leaf):
        assert got is not None, f"C refused canonical {leaf[:200]!r}"


@needs_native
@settings(max_examples=400, deadline=None)
@given(_values, st.data())
def test_mutated_leaves_never_accepted_beyond_python(value: Any, data: st.DataObject) -> None:
    try:
        leaf = bytearray(canonical_json({"body": value, "seq": 1}))
    except ValueError:
        return
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.integers(0, 3))
        pos = data.draw(st.integers(0, max(0, len(leaf) - 1)))
        if op == 0 and leaf:
            leaf[pos] = data.draw(st.integers(0, 255))
        elif op == 1:
            leaf[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        elif op == 2 and leaf:
            del leaf[pos]
        else:
            leaf[pos:pos] = data.draw(st.sampled_from(
                [b" ", b"\\u0041", b"\\/", b"-0", b"01", b"1.0", b"1e3", b'"a":1,',
                 b"\xed\xa0\x80", b"\xc0\xaf", b"\\ud800", b"\\u001F", b"\\u000a",
                 b"[" * 3, b"9" * 20, b"\xff"]))
    check_leaf(bytes(leaf))


@needs_native
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes(leaf: bytes) -> None:
    check_leaf(leaf)


# ----------------------------------------------------------------- hostile bytes

HOSTILE: list[tuple[bytes, bool]] = [
    # (leaf, C must accept)
    (b'{"a":1,"b":[true,false,null],"c":"x"}', True),
    (b'{"a":"\\n\\t\\"\\\\\\u001f\\b\\f\\r"}', True),
    (b'{"a":"\x7f\xe2\x80\xa8\xc3\xa9"}', True),  # DEL, U+2028, é are written raw
    (b'{"n":-999999999999999,"z":0}', True),
    (b'{}', True),
    (b'[]', True),
    (b'{"a":1,"a":1}', False),  # duplicate key
    (b'{"b":1,"a":1}', False),  # key order
    (b'{"a": 1}', False),  # whitespace
    (b' {"a":1}', False),
    (b'{"a":1}\n', False),
    (b'{"a":"\\/"}', False),  # escapes the encoder never writes
    (b'{"a":"\\u0041"}', False),
    (b'{"a":"\\u001F"}', False),  # upper-case hex
    (b'{"a":"\\u000a"}', False),  # \n has a short form
    (b'{"a":"\\ud800"}', False),  # lone surrogates, escaped and raw
    (b'{"a":"\\udc80x"}', False),
    (b'{"a":"\xed\xa0\x80"}', False),
    (b'{"a":"\xc0\xaf"}', False),  # overlong
    (b'{"a":"\xff"}', False),
    (b'{"a":"\xc3"}', False),  # truncated sequence
    (b'{"a":"\x01"}', False),  # raw control character
    (b'{"a":-0}', False),
    (b'{"a":01}', False),
    (b'{"a":1.0}', False),
    (b'{"a":1e3}', False),
    (b'{"a":9007199254740993}', False),
    (b'{"a":' + b"9" * 5000 + b"}", False),
    (b'{"a":NaN}', False),
    (b'{"a":Infinity}', False),
    (b'{"a":tru}', False),
    (b'{"a":1', False),
    (b'{"a":"x', False),
    (b'{"a":"x\\', False),
    (b'{"a"', False),
    (b'{"a":[1,]}', False),
    (b'{,}', False),
    (b'', False),
    (b'\xef\xbb\xbf{}', False),  # BOM
    (b'{"\xef\xac\x81":1,"\xf0\x9f\x98\x80":2}', False),  # UTF-16 order: exact path
    (b"[" * 100_000 + b"]" * 100_000, False),  # deep nesting: bounded, no recursion crash
    (b'{"a":' * 129 + b"1" + b"}" * 129, False),
    (b'{"a":' * 127 + b"1" + b"}" * 127, True),
]


@needs_native
@pytest.mark.parametrize(("leaf", "accept"), HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_leaves(leaf: bytes, accept: bool) -> None:
    got = check_leaf(leaf)
    assert (got is not None) == accept, (leaf[:80], got)


@needs_native
def test_loads_refuses_non_bytes() -> None:
    with pytest.raises(TypeError):
        native.loads("{}")
    with pytest.raises(TypeError):
        native.scan([(0, b"{}")])


@needs_native
@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=0, max_size=70), st.data())
def test_hashes_and_nodes_match_the_python_tree(leaves: list[bytes], data: st.DataObject
                                                ) -> None:
    hashes = [merkle.leaf_hash(x) for x in leaves]
    cols: list[Any] = list(hashes)
    for i in data.draw(st.lists(st.integers(0, max(0, len(leaves) - 1)), max_size=3)):
        if leaves:
            cols[i] = data.draw(st.sampled_from([b"\x00" * 32, None, "x", hashes[i][:31]]))
    rows = [(i, leaf, col) for i, (leaf, col) in enumerate(zip(leaves, cols, strict=True))]
    values, cat, bad = native.scan(rows)
    assert cat == b"".join(hashes)
    assert bad == [i for i, c in enumerate(cols) if c != hashes[i]]
    assert len(values) == len(leaves)
    for leaf in leaves:
        assert native.leaf_hash(leaf) == merkle.leaf_hash(leaf)
    levels = native.nodes(cat, len(leaves))
    layer = hashes
    for got in levels:
        layer = [merkle.node_hash(layer[2 * k], layer[2 * k + 1])
                 for k in range(len(layer) // 2)]
        assert got == b"".join(layer)
    assert len(levels) == max(0, len(leaves).bit_length() - 1)
    if leaves and len(leaves) & (len(leaves) - 1) == 0:
        assert (levels[-1] if levels else hashes[0]) == merkle.root(hashes)


@needs_native
def test_nodes_refuses_a_count_beyond_the_hashes() -> None:
    with pytest.raises(ValueError):
        native.nodes(b"\x00" * 64, 3)
    with pytest.raises(ValueError):
        native.nodes(b"", -1)


def test_forced_pure_python_in_a_subprocess(tmp_path: Path) -> None:
    """``DEPOSITORY_NATIVE=0``: the verifier runs, and says so, without the extension."""
    code = ("import depository.verifier.store as s, sys; "
            "sys.exit(0 if s._NATIVE is None and s.engine() == s.ENGINE_PYTHON else 3)")
    env = {**os.environ, "DEPOSITORY_NATIVE": "0"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0


def test_absent_extension_falls_back_silently() -> None:
    """No compiled module (a checkout without `make native`): pure Python, reported."""
    code = ("import sys; sys.modules['depository.verifier._cverify'] = None; "
            "import depository.verifier.store as s; "
            "sys.exit(0 if s._NATIVE is None and s.engine(True) == s.ENGINE_PYTHON else 3)")
    env = {k: v for k, v in os.environ.items() if k != "DEPOSITORY_NATIVE"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0


def test_the_fast_path_decodes_like_json() -> None:
    """The accepted values are what ``json`` makes of them, exact types included."""
    if native is None:
        pytest.skip("native engine not built")
    rng = random.Random(7)
    for _ in range(200):
        v = {"i": rng.randrange(-(10**15) + 1, 10**15), "s": "".join(
            chr(rng.choice([0x41, 0xE9, 0x10, 0x2028, 0x7F])) for _ in range(5)),
             "b": rng.random() < 0.5, "n": None, "l": [rng.randrange(10)]}
        leaf = canonical_json(v)
        got = native.loads(leaf)
        assert same_json(got, json.loads(leaf))


# ----------------------------------------------------------------- artifact.put items

_PRODUCTS = frozenset({"ai-assistant", "gurukul"})
_MIN = timedelta(days=2557, minutes=-1)
_SPEC = (_PRODUCTS, _MIN // timedelta(microseconds=1), TOKEN_ACTOR)

_times = st.sampled_from([
    "2026-12-04T17:43:27.312063Z", "2026-12-04T17:43:27Z", "2026-12-04T17:43:27.3Z",
    "2026-12-04T17:43:27.312063123Z", "2026-02-29T00:00:00.000000Z",
    "2024-02-29T23:59:59.999999Z", "2026-13-01T00:00:00.000000Z",
    "2026-12-04T24:00:00.000000Z", "2026-12-04T17:60:00.000000Z",
    "2026-12-04T17:43:60.000000Z", "0000-01-01T00:00:00.000000Z",
    "9999-12-31T23:59:59.999999Z", "2026-12-04 17:43:27.312063Z",
    "2026-12-04T17:43:27.312063+00:00", "٢٠٢٦-12-04T17:43:27.312063Z",
    "2033-12-04T17:43:27.312063Z", "2033-12-02T17:42:27.312063Z", "1999-01-01T00:00:00.000000Z",
])
_meta_values = st.one_of(st.text(max_size=5), st.integers(-(10**15) + 1, 10**15 - 1),
                         st.booleans(), st.none(), st.floats(allow_nan=False,
                                                             allow_infinity=False),
                         st.lists(st.integers(0, 3), max_size=2),
                         st.dictionaries(st.text(max_size=2), st.integers(0, 3), max_size=2))


_HOSTILE_FIELDS: dict[str, list[Any]] = {
    "product": ["other", None, ""],
    "name": ["", "é/ü", "a\nb"],
    "artifact_id": ["art_aaaaaaaaaaaaaaaaaaaaaaaa", "", "x"],
    "sha256": ["AB" * 32, "ab" * 31, "g" * 64, 5],
    "size": [-1, True, 1.5, "3", 10**15 - 1],
    "media_type": ["", 3, None],
    "metadata": [[], "x", {}],
    "provenance": [[], {"a": 1.5}],
    "storage": ["s3", None],
    "v": [2, True], "seq": [0], "type": ["artifact.dispose", "x.y"],
    "actor": ["token:t-1", "token:", "", 7],
}


@st.composite
def put_records(draw: st.DrawFn) -> tuple[bytes, int]:
    """A sound artifact.put, then up to two fields made hostile (times included)."""
    idx = draw(st.integers(1, 10**6))
    env = {"product": "gurukul", "name": "conversations/c-1.json", "v": 1, "seq": idx,
           "type": "artifact.put", "actor": "bench", "time": "2026-12-04T17:43:28.000000Z"}
    body: dict[str, Any] = {
        "sha256": "ab" * 32, "size": 300, "media_type": "application/octet-stream",
        "metadata": draw(st.dictionaries(st.text(max_size=4), _meta_values, max_size=4)),
        "provenance": draw(st.dictionaries(st.text(max_size=3), _meta_values, max_size=2)),
        "retain_until": "2033-12-04T17:43:27.312063Z",
        "received": "2026-12-04T17:43:27.312063Z", "storage": "inline",
    }
    fields = [*sorted(_HOSTILE_FIELDS), "time", "retain_until", "received", "drop", "extra"]
    for what in draw(st.lists(st.sampled_from(fields), max_size=2)):
        if what in ("time", "retain_until", "received"):
            (env if what == "time" else body)[what] = draw(_times)
        elif what == "drop":
            del body[draw(st.sampled_from(sorted(body)))]
        elif what == "extra":
            body["extra"] = draw(_meta_values)
        elif what in env:
            env[what] = draw(st.sampled_from(_HOSTILE_FIELDS[what]))
        else:
            body[what] = draw(st.sampled_from(_HOSTILE_FIELDS[what]))
    name = env.pop("name")
    body.setdefault("name", name)
    if "artifact_id" not in body:
        body["artifact_id"] = artifact_id_of(env["product"] or "", body["name"]) if isinstance(
            body["name"], str) else "x"
    try:
        leaf = canonical_json({**env, "body": body})
    except ValueError:  # a float RFC 8785 cannot carry (never: they are finite)
        leaf = canonical_json({**env, "body": {}})
    return leaf, idx


def python_item(leaf: bytes, idx: int) -> tuple[Any, list[vstore.Finding]]:
    try:
        rec = parse_record_json(leaf, index=idx)
    except RecordError as exc:
        return None, [vstore.Finding("record", str(exc))]
    out: list[vstore.Finding] = []
    try:
        item = vstore._prepare(rec, leaf, (_PRODUCTS, _MIN), out)
    except OverflowError as exc:  # datetime beyond year 9999: Python's own refusal
        return None, [vstore.Finding("record", str(exc))]
    return item, out


@needs_native
@settings(max_examples=1500, deadline=None)
@given(put_records())
def test_put_items_agree_with_prepare(case: tuple[bytes, int]) -> None:
    leaf, idx = case
    got = native.prepare_put(leaf, idx, _SPEC)
    want, findings = python_item(leaf, idx)
    if got is not None:
        assert not findings, f"C accepted a put Python finds wrong: {findings}"
        assert got == want, f"\nC      {got}\nPython {want}"


def test_put_items_for_ordinary_records() -> None:
    """The fast path really takes the records the store writes (both engines agree)."""
    if native is None:
        pytest.skip("native engine not built")
    for i, actor in enumerate(["bench", "token:tok-1"]):
        body = {"artifact_id": artifact_id_of("gurukul", f"n/{i}"), "name": f"n/{i}",
                "sha256": "ab" * 32, "size": 3, "media_type": "text/plain",
                "metadata": {"k": "v", "n": 5, "f": False, "z": None, "l": [1]},
                "provenance": {"by": {"x": 1}}, "retain_until": "2033-12-04T17:43:27.312063Z",
                "received": "2026-12-04T17:43:27.000001Z", "storage": "inline"}
        leaf = canonical_json({"v": 1, "seq": 7, "time": "2026-12-04T17:43:28.000000Z",
                               "type": "artifact.put", "actor": actor, "product": "gurukul",
                               "body": body})
        got = native.prepare_put(leaf, 7, _SPEC)
        want, findings = python_item(leaf, 7)
        assert not findings and want is not None
        assert got == want
        assert got[5] == (None if i == 0 else "tok-1")


# ----------------------------------------------------------------- whole replays

from test_verify_store import Built, attack, built, copy  # noqa: E402, F401  (fixtures)


def _runs(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record each replay pass: True for the set-wise (fast) one."""
    seen: list[bool] = []
    orig = vstore._Replay.run

    def run(self: vstore._Replay) -> vstore.StoreResult:
        seen.append(self.fast)
        return orig(self)

    monkeypatch.setattr(vstore._Replay, "run", run)
    return seen


@needs_native
@pytest.mark.parametrize("jobs", [1, 2])
def test_clean_store_is_confirmed_set_wise(built: Built,  # noqa: F811
                                           monkeypatch: pytest.MonkeyPatch, jobs: int) -> None:
    monkeypatch.setattr(vstore, "CHUNK_LEVEL", 2)  # many chunks, subtrees above them
    seen = _runs(monkeypatch)
    nat = vstore.store_result(built.path, [built.vkey], native=True, jobs=jobs)
    assert seen == [True], "the native engine should not need the row-by-row pass"
    py = vstore.store_result(built.path, [built.vkey], native=False, jobs=jobs)
    assert nat.ok and py.ok and nat.engine != py.engine
    assert dataclasses.replace(nat, engine=py.engine) == py


@needs_native
@pytest.mark.parametrize("attack_sql", [
    "DELETE FROM artifact_meta WHERE (product, key, value, log_idx) IN "
    "(SELECT product, key, value, log_idx FROM artifact_meta LIMIT 1)",
    "INSERT INTO artifact_meta SELECT product, key, value || 'x', log_idx FROM artifact_meta "
    "LIMIT 1",
    "INSERT INTO artifact_meta SELECT product, key, value, log_idx + 100000 FROM artifact_meta "
    "LIMIT 1",
    "UPDATE artifact SET log_idx = log_idx + 100000 WHERE log_idx = (SELECT max(log_idx) "
    "FROM artifact)",
], ids=["meta-deleted", "meta-added", "meta-beyond-log", "artifact-moved"])
def test_tampered_rows_fall_back_to_row_by_row(built: Built, copy: Path,  # noqa: F811
                                               attack_sql: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with attack(copy) as conn:
        conn.execute(attack_sql)
    seen = _runs(monkeypatch)
    nat = vstore.store_result(copy, [built.vkey], native=True)
    assert seen == [True, False], seen
    py = vstore.store_result(copy, [built.vkey], native=False)
    assert not py.ok and any(f.check == "derived" for f in py.findings)
    assert dataclasses.replace(nat, engine=py.engine) == py


@pytest.mark.parametrize("forced", ["0", ""])
def test_cli_says_which_engine(built: Built, forced: str) -> None:  # noqa: F811
    env = {**os.environ, "DEPOSITORY_NATIVE": forced}
    want = (vstore.ENGINE_PYTHON if forced == "0" or native is None
            else vstore.ENGINE_NATIVE)
    base = [sys.executable, "-m", "depository.verifier", "store", str(built.path), "--key",
            built.vkey]
    human = subprocess.run(base, env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    assert human.returncode == 0, human.stdout + human.stderr
    assert f"engine: {want}" in human.stdout.splitlines()[0]
    js = subprocess.run([*base, "--json"], env=env, cwd=ROOT, capture_output=True,
                        text=True, timeout=120)
    assert js.returncode == 0 and json.loads(js.stdout)["engine"] == want
