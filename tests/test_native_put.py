"""The native put encoder (store/_cput.c) against its pure-Python specification.

Differential and property tests: the same inputs through the C function and its Python
twin (``depository.store._native.*_py``) give the same bytes, or the same exception type;
where the C code declines (returns None) the Python path decides. Inputs include odd
Unicode (controls, non-BMP, lone surrogates, keys above U+D800), integers beyond 2^53,
floats, tuples, subclasses and metadata nested up to the store's limits.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depository.store import PutItem, Store, WriteOnceError, _native
from depository.store._tree import Frontier
from depository.store.config import default_config_dict
from depository.store.limits import METADATA_MAX_DEPTH
from depository.tlog import merkle
from depository.tlog.record import Record, canonical_json, encode_record, parse_record

# Built by `make setup` (make native); a missing extension fails here, not silently.
_cput: Any = importlib.import_module("depository.store._cput")

# Any code point, surrogates included (they are not valid UTF-8: both engines must refuse).
ANY_CHAR = st.characters(codec=None, categories=None)
ODD_TEXT = st.text(alphabet=ANY_CHAR, max_size=30) | st.sampled_from(
    ["", "é", "\x00\x1f\x7f\"\\/\b\f\n\r\t", "\ud7ff\ue000\uffff", "𝄞🙂", "\ud800", "\udfff",
     "a\u2028b", "x" * 1024])
KEY_TEXT = ODD_TEXT | st.sampled_from(["a", "b", "aa", "B", "\ue000", "𝄞", "\uffff"])
BIG_INTS = st.integers() | st.sampled_from(
    [2**53 - 1, 2**53, -(2**53 - 1), -(2**53), 2**63, -(2**63) - 1, 10**40, 0, -1])
SCALARS = (st.none() | st.booleans() | BIG_INTS | ODD_TEXT
           | st.floats(allow_nan=True, allow_infinity=True))
JSONISH = st.recursive(
    SCALARS,
    lambda kids: (st.lists(kids, max_size=5) | st.lists(kids, max_size=3).map(tuple)
                  | st.dictionaries(KEY_TEXT, kids, max_size=5)),
    max_leaves=40)


# The C functions with the Python fallback the engine adds, whatever DEPOSITORY_NATIVE
# selected for this process (these tests compare the two engines in any case).
def _canonical_c(value: Any) -> bytes:
    out: bytes | None = _cput.canonical(value)
    return out if out is not None else _native.canonical_py(value)


def _format_time_c(t: datetime) -> str:
    out: str | None = _cput.format_time(t)
    return out if out is not None else _native.format_time_py(t)


def _meta_rows_c(product: str, meta: dict[str, Any]) -> Any:
    out = _cput.meta_rows(product, meta)
    return out if out is not None else _native.meta_rows_py(product, meta)


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except Exception as exc:  # the type is what must agree; messages are Python's own
        return "raised", type(exc).__name__


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSONISH)
def test_canonical_matches_python(value: Any) -> None:
    quick = _cput.canonical(value)
    if quick is not None:  # C encoded it: exactly RFC 8785 as the specification says
        assert quick == canonical_json(value)
    assert _outcome(_canonical_c, value) == _outcome(_native.canonical_py, value)


def _nested(depth: int) -> dict[str, Any]:
    value: Any = "leaf"
    for i in range(depth - 1):
        value = {f"k{i}": value} if i % 2 else [value, i]
    return {"top": value}


@pytest.mark.parametrize("value", [
    {"k": "v1", "shard": "s2"}, {}, [], "plain", 0, True, None,
    {"b": 1, "a": 2, "é": 3, "Z": [1, "2", None, False]},
    {"z" * 1000: "y" * 65536},
    _nested(METADATA_MAX_DEPTH), _nested(39), _nested(41), _nested(200),
    {"\ud7ff": 1, "\ue000": 2, "𝄞": 3},  # above U+D800: Python's exact path sorts by UTF-16
    {"f": 1.5}, {"n": 2**53}, {"t": (1, 2)}, {1: "x"}, {"s": "\ud800"},
])
def test_canonical_examples(value: Any) -> None:
    assert _outcome(_canonical_c, value) == _outcome(_native.canonical_py, value)


def test_canonical_declines_what_python_decides() -> None:
    """Floats, big integers, high keys, subclasses and over-deep values go to Python."""
    class D(dict[str, Any]):
        pass

    class S(str):
        pass

    for value in (1.0, 2**53, -(2**53), {"\ue000": 1}, {"𝄞": 1}, D(a=1), S("x"), {1: 2},
                  "\ud800", {"k": "\udfff"}, _nested(200), object()):
        assert _cput.canonical(value) is None, value
    assert _cput.canonical(_nested(METADATA_MAX_DEPTH)) is not None


TIMES = st.sampled_from(["2026-12-04T17:00:00.000000Z", "1970-01-01T00:00:00.000000Z",
                         "9999-12-31T23:59:59.999999Z"])


@settings(max_examples=300, deadline=None)
@given(actor=ODD_TEXT, product=ODD_TEXT, name=ODD_TEXT, media=ODD_TEXT,
       meta=st.dictionaries(KEY_TEXT, st.none() | st.booleans() | ODD_TEXT | BIG_INTS,
                            max_size=4),
       size=st.integers(0, 2**53 - 1), received=TIMES, retain=TIMES,
       storage=st.sampled_from(["inline", "file"]), seq=st.integers(0, 2**53 - 1))
def test_put_head_matches_python_and_encode_record(
        actor: str, product: str, name: str, media: str, meta: dict[str, Any], size: int,
        received: str, retain: str, storage: str, seq: int) -> None:
    meta_out = _outcome(_canonical_c, meta)
    if meta_out[0] != "ok":
        assert meta_out == _outcome(_native.canonical_py, meta)
        return
    meta_json = meta_out[1]
    aid = _outcome(_cput.artifact_id, product, name)
    assert aid == _outcome(_native.artifact_id_py, product, name)
    if aid[0] != "ok":
        return
    args = (actor, product, aid[1], media, meta_json, name, b"{}", received, retain,
            "ab" * 32, size, storage)
    got = _outcome(_cput.put_head, *args)
    assert got == _outcome(_native.put_head_py, *args)
    if got[0] != "ok" or not actor or not product:
        return
    # The spliced record is the record encode_record makes from the same fields.
    tail = b',"type":"artifact.put","v":1}'
    leaf, lh = _cput.append_put([], seq, got[1], canonical_json(received), tail, [])
    assert lh == merkle.leaf_hash(leaf)
    body = {"artifact_id": aid[1], "media_type": media, "metadata": meta, "name": name,
            "provenance": {}, "received": received, "retain_until": retain,
            "sha256": "ab" * 32, "size": size, "storage": storage}
    assert leaf == encode_record(Record(seq=seq, time=received, type="artifact.put",
                                        actor=actor, product=product, body=body))


def test_put_head_refuses_wrong_types() -> None:
    good: list[Any] = ["a", "p", "art_x", "m", b"{}", "n", b"{}", "t", "r", "s", 1, "inline"]
    for i, bad in [(0, b"a"), (4, "{}"), (10, 1.0), (10, -1), (10, 2**53), (10, True)]:
        args = list(good)
        args[i] = bad
        with pytest.raises((TypeError, ValueError)):
            _cput.put_head(*args)
    with pytest.raises(TypeError):
        _cput.put_head(*good[:11])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=300),
       st.integers(0, 2**40))
def test_append_put_matches_frontier(heads: list[bytes], start: int) -> None:
    """Same leaves, hashes, frontier and node rows as the Python twin, from any start."""
    stack_c: list[tuple[int, bytes]] = []
    stack_py: list[tuple[int, bytes]] = []
    nodes_c: list[Any] = []
    nodes_py: list[Any] = []
    for i, head in enumerate(heads):
        a = _cput.append_put(stack_c, start + i, head, b'"t"', b"}", nodes_c)
        b = _native.append_put_py(stack_py, start + i, head, b'"t"', b"}", nodes_py)
        assert a == b
    assert stack_c == stack_py and nodes_c == nodes_py


def test_append_put_root_is_rfc6962_root() -> None:
    stack: list[tuple[int, bytes]] = []
    nodes: list[Any] = []
    hashes = []
    for i in range(1000):
        _, lh = _cput.append_put(stack, i, b"h%d" % i, b'"t"', b"}", nodes)
        hashes.append(lh)
        if i < 70 or i == 999:
            assert Frontier(i + 1, list(stack)).root() == merkle.root(hashes)
    assert len(nodes) == 1000 - bin(1000).count("1")


def test_append_put_refuses_a_bad_frontier() -> None:
    for stack in ([(0, b"short")], [("0", b"x" * 32)], [(0, b"x" * 32, 1)], [[0, b"x" * 32]]):
        with pytest.raises(TypeError):
            _cput.append_put(list(stack), 1, b"h", b'"t"', b"}", [])
    with pytest.raises(ValueError):
        _cput.append_put([], -1, b"h", b'"t"', b"}", [])
    # A forged frontier of 70 levels (no size below 2^53 has one): refused, no overflow.
    with pytest.raises(ValueError):
        _cput.append_put([(lv, b"x" * 32) for lv in range(69, -1, -1)], 1, b"h", b'"t"',
                         b"}", [])


def _prepared(store: Store, n: int) -> list[Any]:
    out = []
    for i in range(n):
        meta = {"k": f"v{i}", "é\n": i, "b": i % 2 == 0, "z": None} if i % 3 else {}
        out.append(store.prepare_put(
            "ai-avatar" if i % 2 else "gurukul", f"r/{i}\u2028𝄞", b"d%d" % i,
            metadata=meta, actor="token:tok-1" if i % 5 == 0 else "bench"))
    return out


def test_put_rows_matches_python(tmp_path: Path) -> None:
    """Every row of a batch of accepted puts, from any start, with a non-empty frontier."""
    s = Store.init(tmp_path / "s", config=default_config_dict("rows.example/log"))
    try:
        pps = _prepared(s, 50)
    finally:
        s.close()
    large = pps[3]._replace(data=None)  # a file-backed put: no inline row, storage "file"
    pps[3] = large
    for start in (0, 1, 7, 2**40 + 3):
        stack_c, stack_py = Frontier.load(start, lambda lv, k: bytes([lv, k % 256]) * 16
                                          ).stack, None
        stack_py = list(stack_c)
        rows_c: list[list[Any]] = [[], [], [], [], []]
        rows_py: list[list[Any]] = [[], [], [], [], []]
        got = _cput.put_rows(pps, start, stack_c, b'"T"', _native.PUT_TAIL, "T", *rows_c)
        want = _native.put_rows_py(pps, start, stack_py, b'"T"', _native.PUT_TAIL, "T",
                                   *rows_py)
        assert got == want
        assert stack_c == stack_py
        assert rows_c == rows_py
        assert [r[10] for r in rows_c[2]][:4] == ["inline", "inline", "inline", "file"]


def test_put_rows_refuses_what_is_not_a_prepared_put(tmp_path: Path) -> None:
    s = Store.init(tmp_path / "s", config=default_config_dict("rows.example/log"))
    try:
        pp = _prepared(s, 1)[0]
    finally:
        s.close()
    for bad in ([tuple(pp)[:12]], [pp._replace(head="str")], [pp._replace(data="str")],
                [pp._replace(meta_rows=(("a", "b"),))], [pp._replace(meta_rows=[])], [None]):
        rows: list[list[Any]] = [[], [], [], [], []]
        with pytest.raises(TypeError):
            _cput.put_rows(bad, 0, [], b'"T"', b"}", "T", *rows)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                               timezone(-timedelta(hours=11))])))
def test_format_time_matches_python(t: datetime) -> None:
    assert _outcome(_format_time_c, t) == _outcome(_native.format_time_py, t)
    if t.tzinfo is UTC and t.year >= 1000:
        assert _cput.format_time(t) == _native.format_time_py(t)


def test_format_time_declines_what_python_decides() -> None:
    class DT(datetime):
        pass

    for t in (datetime(2026, 1, 1), datetime(999, 1, 1, tzinfo=UTC),
              datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=1))),
              DT(2026, 1, 1, tzinfo=UTC), "2026-01-01"):
        assert _cput.format_time(t) is None, t
    with pytest.raises(ValueError):
        _native.format_time(datetime(2026, 1, 1))  # naive: refused by the Python twin


@settings(max_examples=300, deadline=None)
@given(ODD_TEXT, st.dictionaries(KEY_TEXT, SCALARS | st.lists(SCALARS, max_size=2)
                                 | st.dictionaries(KEY_TEXT, SCALARS, max_size=2),
                                 max_size=5))
def test_meta_rows_match_python(product: str, meta: dict[str, Any]) -> None:
    assert _outcome(_meta_rows_c, product, meta) == _outcome(
        _native.meta_rows_py, product, meta)


def test_artifact_id_examples() -> None:
    for product, name in [("p", ""), ("ai-avatar", "x/1"), ("é", "𝄞" * 300), ("p", "a\x00b")]:
        assert _cput.artifact_id(product, name) == _native.artifact_id_py(product, name)
    with pytest.raises(UnicodeEncodeError):
        _cput.artifact_id("p", "\ud800")


def test_native_off_selects_python() -> None:
    code = "from depository.store import PUT_ENGINE; print(PUT_ENGINE)"
    env = {**os.environ, "DEPOSITORY_NATIVE": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "python"
    env["DEPOSITORY_NATIVE"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out.startswith("native")


def _store_leaves(path: Path, monkeypatch: pytest.MonkeyPatch, python: bool) -> list[bytes]:
    if python:
        for name in ("canonical", "put_head", "artifact_id", "append_put"):
            monkeypatch.setattr(_native, name, getattr(_native, f"{name}_py"))
    cfg = default_config_dict("native.example/log")
    fixed = datetime(2026, 12, 4, 17, 0, tzinfo=UTC)
    s = Store.init(path, config=cfg, clock=lambda: fixed)
    try:
        items = [PutItem("ai-avatar", f"n/{i}é\u2028\"𝄞", b"x%d" % i,
                         metadata={"k": f"v{i}", "n": i, "ok": i % 2 == 0, "z": None,
                                   "nest": {"b": [1, "𝄞"], "a": {"\ue000": i}},
                                   "f": 0.5 + i}, provenance={"by": "t", "i": 2**53 - 1 - i})
                 for i in range(40)]
        # In the same chunk: the same bytes again (a duplicate receipt) and other bytes
        # under a taken name (write-once: a refused record between accepted puts).
        items[20:20] = [PutItem("ai-avatar", items[0].name, items[0].data,
                                metadata=items[0].metadata, provenance=items[0].provenance),
                        PutItem("ai-avatar", items[1].name, b"other bytes")]
        results = s.put_many(items, actor="bench")
        assert isinstance(results[21], WriteOnceError)
        assert results[20].duplicate and results[20].leaf_hash == results[0].leaf_hash
        assert all(not isinstance(r, Exception) for i, r in enumerate(results) if i != 21)
        leaves = dict(s.log_entries(0, s.size()))
        for r in results:
            if not isinstance(r, Exception):  # each receipt names its own record
                assert merkle.leaf_hash(leaves[r.log_index]) == r.leaf_hash
                assert parse_record(leaves[r.log_index]).body["name"] == r.name
        dup = s.put("ai-avatar", "n/0é\u2028\"𝄞", b"x0", metadata=items[0].metadata,
                    provenance=items[0].provenance)
        assert dup.duplicate
        with pytest.raises(WriteOnceError):
            s.put("ai-avatar", "n/0é\u2028\"𝄞", b"other")  # write-once: a refused record
        return [leaf for _, leaf in s.log_entries(1, s.size())]
    finally:
        monkeypatch.undo()
        s.close()


def test_store_writes_the_same_leaves_with_either_engine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    native = _store_leaves(tmp_path / "c", monkeypatch, python=False)
    python = _store_leaves(tmp_path / "py", monkeypatch, python=True)
    assert native == python
    for i, leaf in enumerate(native, start=1):
        parse_record(leaf, index=i)  # canonical, valid envelopes


def test_missing_extension_falls_back_to_python(tmp_path: Path) -> None:
    """An extension that fails to import (not built, wrong ABI) leaves the Python path,
    and a store still works and says which engine it used."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'depository.store._cput':\n"
        "            raise ImportError('blocked for the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from depository.store import PUT_ENGINE, Store\n"
        "s = Store.init(sys.argv[1])\n"
        "r = s.put('ai-avatar', 'x', b'x', metadata={'k': 'v'})\n"
        "s.close()\n"
        "print(PUT_ENGINE, r.log_index)\n")
    env = {k: v for k, v in os.environ.items() if k != "DEPOSITORY_NATIVE"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["python", "1"]
