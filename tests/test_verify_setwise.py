"""The native engine's set-wise confirmation (ADR 0012, issue 13) against the pure-Python
specification: its own SQLite connection (``_cverify.Db``) reading each chunk's leaves,
``artifact`` and ``inline_blob`` rows; the keyed multiset digest of ``artifact_meta``
(``store._meta_digest``); and the put replay's common case in C (``apply_puts``).

Each fast path only confirms. Tampering on disk must make it hand the work back, so both
engines report the same findings; a clean store must really take every fast path (else
it is dead code).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Clock
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fuzz_native import _python_item
from test_verify_native import _MIN, _PRODUCTS, put_records
from test_verify_store import attack

import depository.verifier.store as vstore
from depository.store import Store
from depository.tlog.authority import TOKEN_ACTOR

native = vstore._NATIVE
needs_native = pytest.mark.skipif(native is None, reason="native engine not built/disabled")


@dataclasses.dataclass
class Small:
    path: Path
    vkey: str
    idx: dict[str, int]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Small:
    """Inline and file artifacts with every kind of indexed metadata, no disposal (so the
    inline blobs are confirmed by the chunk scans), checkpoints."""
    path = tmp_path_factory.mktemp("setwise") / "store"
    s = Store.init(path, origin="setwise.example/depository",
                   clock=Clock(datetime(2026, 3, 1, tzinfo=UTC)))
    idx: dict[str, int] = {}
    for i in range(14):
        data = os.urandom(70 * 1024) if i % 5 == 3 else f"bytes {i}".encode()
        meta: dict[str, Any] = {"user": f"u-{i % 3}", "n": i, "ok": i % 2 == 0, "z": None,
                                "nested": {"a": [i]}, "é": "ünï"}
        r = s.put(("ai-assistant", "gurukul")[i % 2], f"items/{i}.bin", data,
                  metadata=meta, provenance={"by": "test"} if i % 4 else {})
        idx[f"put{i}"] = r.log_index
        if i in (6, 12):
            s.checkpoint()
    s.checkpoint()
    vkey = s.verifier_key
    s.close()
    return Small(path, vkey, idx)


@pytest.fixture
def copy(small: Small, tmp_path: Path) -> Path:
    dest = tmp_path / "store"
    shutil.copytree(small.path, dest)
    return dest


def _passes(monkeypatch: pytest.MonkeyPatch) -> tuple[list[bool], list[int]]:
    """(each replay pass, True for the set-wise one; inline_blob rows hashed by Python)."""
    seen: list[bool] = []
    hashed: list[int] = []
    run, rows = vstore._Replay.run, vstore._hash_blob_rows

    def spy_run(self: vstore._Replay) -> vstore.StoreResult:
        seen.append(self.fast)
        return run(self)

    def spy_rows(conn: sqlite3.Connection, lo: int | None, hi: int | None
                 ) -> list[tuple[Any, str, int]]:
        got = rows(conn, lo, hi)
        hashed.append(len(got))
        return got

    monkeypatch.setattr(vstore._Replay, "run", spy_run)
    monkeypatch.setattr(vstore, "_hash_blob_rows", spy_rows)
    return seen, hashed


def both(store: Path, vkey: str, **kw: Any) -> vstore.StoreResult:
    """Both engines, the same result required (findings, checks, verdict)."""
    py = vstore.store_result(store, [vkey], native=False, **kw)
    if native is None:
        return py
    nat = vstore.store_result(store, [vkey], native=True, **kw)
    assert dataclasses.replace(nat, engine=py.engine) == py, (
        "engines differ:\npython: " + "\n".join(map(str, py.findings))
        + "\nnative: " + "\n".join(map(str, nat.findings)))
    return nat


@needs_native
@pytest.mark.parametrize("jobs", [1, 2])
def test_clean_store_takes_every_fast_path(small: Small, monkeypatch: pytest.MonkeyPatch,
                                           jobs: int) -> None:
    monkeypatch.setattr(vstore, "CHUNK_LEVEL", 2)  # many chunks, subtrees above them
    seen, hashed = _passes(monkeypatch)
    nat = vstore.store_result(small.path, [small.vkey], native=True, jobs=jobs)
    assert seen == [True], "the native engine should not need the row-by-row pass"
    assert nat.ok and nat.blobs_checked == 14, nat.findings
    py = vstore.store_result(small.path, [small.vkey], native=False, jobs=jobs)
    assert py.ok and dataclasses.replace(nat, engine=py.engine) == py
    if jobs == 1:  # (with a pool the rows are hashed in the workers, out of the spy's sight)
        assert sum(hashed) == 11, "only the Python engine should hash the 11 inline blobs"


def _one_meta(conn: sqlite3.Connection, log_idx: int, key: str) -> str:
    return str(conn.execute("SELECT value FROM artifact_meta WHERE log_idx = ? AND key = ?",
                            (log_idx, key)).fetchone()[0])


# Attacks on the rows the fast paths confirm; (SQL as a function of the store's indexes,
# the check that must fail, whether the set-wise pass hands over to the row-by-row one).
ATTACKS = {
    "inline-blob-edited": (lambda i: [("UPDATE inline_blob SET data = x'00ff' "
                                       "WHERE log_idx = ?", (i["put4"],))], "blob", False),
    "inline-blob-deleted": (lambda i: [("DELETE FROM inline_blob WHERE log_idx = ?",
                                        (i["put5"],))], "blob", False),
    "inline-blob-for-file": (lambda i: [("INSERT INTO inline_blob VALUES (?, x'01')",
                                         (i["put3"],))], "blob", False),
    "inline-blob-beyond-log": (lambda i: [("INSERT INTO inline_blob VALUES (?, x'01')",
                                           (10_000,))], "blob", False),
    "inline-blob-at-non-put": (lambda i: [("INSERT INTO inline_blob VALUES (0, x'01')", ())],
                               "blob", False),
    "node-edited": (lambda i: [("UPDATE node SET hash = zeroblob(32) WHERE level = 1 AND "
                                "k = 1", ())], "node", False),
    "node-deleted": (lambda i: [("DELETE FROM node WHERE level = 2 AND k = 1", ())], "node",
                     False),
    "node-inserted-in-range": (lambda i: [("INSERT INTO node VALUES (1, 100000, "
                                           "zeroblob(32))", ())], "node", False),
    "meta-value-edited": (lambda i: [("UPDATE artifact_meta SET value = 'u-9' WHERE "
                                      "log_idx = ? AND key = 'user'", (i["put1"],))],
                          "derived", True),
    # Same rows, same values, same count: only their pairing with records changes.
    "meta-values-swapped": (lambda i: [
        ("UPDATE artifact_meta SET log_idx = -1 WHERE log_idx = ? AND key = 'n'",
         (i["put2"],)),
        ("UPDATE artifact_meta SET log_idx = ? WHERE log_idx = ? AND key = 'n'",
         (i["put2"], i["put4"])),
        ("UPDATE artifact_meta SET log_idx = ? WHERE log_idx = -1 AND key = 'n'",
         (i["put4"],))], "derived", True),
    "meta-row-moved-to-another-record": (lambda i: [
        ("UPDATE artifact_meta SET log_idx = ? WHERE log_idx = ? AND key = 'user'",
         (i["put7"], i["put2"]))], "derived", True),
    "artifact-actor-edited": (lambda i: [("UPDATE artifact SET actor = 'mallory' WHERE "
                                          "log_idx = ?", (i["put9"],))], "derived", True),
    "artifact-metadata-edited": (lambda i: [("UPDATE artifact SET metadata = '{}' WHERE "
                                             "log_idx = ?", (i["put10"],))], "derived", True),
    "artifact-row-deleted": (lambda i: [("DELETE FROM artifact WHERE log_idx = ?",
                                         (i["put11"],))], "derived", True),
    "artifact-size-edited": (lambda i: [("UPDATE artifact SET size = size + 1 WHERE "
                                         "log_idx = ?", (i["put12"],))], "derived", True),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_tampering_is_found_by_both_engines(small: Small, copy: Path, name: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    sql, check, hands_over = ATTACKS[name]
    with attack(copy) as conn:
        for stmt, args in sql(small.idx):
            conn.execute(stmt, args)
    monkeypatch.setattr(vstore, "CHUNK_LEVEL", 2)
    res = both(copy, small.vkey)
    assert not res.ok and check in {f.check for f in res.findings}, res.findings
    if native is not None:
        seen, _ = _passes(monkeypatch)
        vstore.store_result(copy, [small.vkey], native=True)
        assert seen == ([True, False] if hands_over else [True]), seen


@needs_native
def test_without_its_own_connection_the_native_engine_confirms_in_python(
        small: Small, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vstore, "_open_native", lambda db: None)
    seen, _ = _passes(monkeypatch)
    nat = vstore.store_result(small.path, [small.vkey], native=True)
    assert seen == [True] and nat.ok and nat.blobs_checked == 14


# ----------------------------------------------------------------- differential


def _db(path: Path) -> Any:
    return native.Db(f"file:{path / 'depository.db'}?mode=ro")


@needs_native
@pytest.mark.parametrize("level", [1, 2, 3])
def test_chunks_agree_with_the_python_scan(small: Small, level: int) -> None:
    """Every chunk: the C scan's items (compact), findings, stacks, node count and
    confirmation (row counts and digest) equal the pure-Python scan's."""
    conn = vstore._open_ro(small.path / "depository.db")
    db = _db(small.path)
    key = os.urandom(64)
    ctx: vstore._Context = (frozenset({"ai-assistant", "gurukul"}), None)
    init = vstore._Replay(small.path, small.path / "depository.db", conn, [small.vkey], None,
                          1, None, True)
    init._read_init()
    ctx = init.ctx
    n = init.n
    step = 1 << level
    for start in range(0, n, step):
        end = min(start + step, n)
        sizes = [end]
        fast = vstore._scan_chunk_db(native, db, conn, start, end, level, sizes, ctx, key)
        assert fast is not None and fast.confirmed is not None
        slow = vstore._scan_chunk_py(conn, start, end, level, sizes, ctx)
        slow.confirmed = vstore._confirm_rows(conn, slow, key)
        assert fast.confirmed == slow.confirmed
        assert [vstore._compact(it) if it[1] == "artifact.put" else it for it in slow.items
                ] == fast.items
        assert (fast.findings, fast.stacks, fast.final, fast.nodes_checked) == (
            slow.findings, slow.stacks, slow.final, slow.nodes_checked)
    db.close()
    conn.close()


@needs_native
def test_meta_digest_twins_agree(tmp_path: Path) -> None:
    """The table side: C and Python fold the same rows (hostile types included) into the
    same digest, count rows beyond the log apart, and a different key gives another sum."""
    db = tmp_path / "depository.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE log (idx INTEGER PRIMARY KEY, leaf BLOB, leaf_hash BLOB)")
    conn.execute("CREATE TABLE artifact (log_idx INTEGER PRIMARY KEY, id, product, name, "
                 "sha256, size, media_type, metadata, provenance, retain_until, storage, "
                 "actor, created)")
    conn.execute("CREATE TABLE artifact_meta (product, key, value, log_idx)")
    conn.execute("CREATE TABLE node (level, k, hash)")
    rows = [("p", "k", "v", 1), ("p", "k", "", 2), ("", "", "é\x00x", 3), ("p", 5, "v", 4),
            ("p", "k", b"\x00\xff", 5), ("p", "k", None, 6), ("p", "k", "v", -7),
            ("p", "k", "v", 2**63 - 1), ("p", "k", "v", 99), ("p", "k", "v", "12")]
    conn.executemany("INSERT INTO artifact_meta VALUES (?,?,?,?)", rows)
    conn.commit()
    conn.close()
    ro = vstore._open_ro(db)
    cdb = native.Db(f"file:{db}?mode=ro")
    key = os.urandom(64)
    got = vstore._meta_table_digest(ro, cdb, key, 99)
    want = vstore._meta_table_digest(ro, None, key, 99)
    assert got == want and got is not None
    assert got[0] == 8 and got[2] == 2  # 2**63-1 and 99 lie beyond a 99-record log
    below = [r for r in rows if not (type(r[3]) is int and r[3] >= 99)]
    assert vstore._meta_digest(key, below) == got[:2]
    other = vstore._meta_table_digest(ro, cdb, os.urandom(64), 99)
    assert other is not None and other[1] != got[1]
    cdb.close()
    ro.close()


def test_meta_digest_is_order_free_and_counts_each_row() -> None:
    key = bytes(range(64))
    rows = [("p", "k", str(i), i) for i in range(50)]
    assert vstore._meta_digest(key, rows) == vstore._meta_digest(key, rows[::-1])
    assert vstore._meta_digest(key, rows + rows[:1]) != vstore._meta_digest(key, rows)
    assert vstore._meta_digest(key, [("p", "k", "1", 2)]) != vstore._meta_digest(
        key, [("p", "k", "2", 1)])
    assert vstore._meta_digest(key, [("p", "k", "1", 1)]) != vstore._meta_digest(
        key, [("p", "k", 1, 1)])  # text and integer never collide


# ----------------------------------------------------------------- the put replay


class _NoTable:
    """A derived table confirmed set-wise: _put compares nothing."""

    def expect(self, *args: Any, **kw: Any) -> None:
        return None


def _state(tmp: Path) -> vstore._Replay:
    rp = vstore._Replay(tmp, tmp / "x.db", None, ["k"], None, 1, None, True)  # type: ignore[arg-type]
    rp.fast = True
    rp.t_artifact = rp.t_meta = _NoTable()  # type: ignore[assignment]
    rp.t_governance = _NoTable()  # type: ignore[assignment]
    rp.put_info = lambda idx: ("n", "", "")  # type: ignore[method-assign]  # (no log here)
    return rp


_aids = st.sampled_from([f"art_{c * 24}" for c in "abcd"])
_products = st.sampled_from(["p1", "p2", "p3", ""])
_shas = st.sampled_from(["ab" * 32, "cd" * 32, "AB" * 32, "0f" * 32])


@st.composite
def _items(draw: st.DrawFn) -> list[Any]:
    out: list[Any] = []
    for idx in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["put", "put", "put", "token", "lock", "unlock"]))
        if kind == "lock":
            out.append((idx, "governance.lock", None, "t", (None, (idx, "locked", "r", "a",
                                                                   "t")), None))
            continue
        if kind == "unlock":
            out.append((idx, "governance.unlock", None, "t",
                        ("r", (idx, "unlocked", "r", "a", "t")), None))
            continue
        size = draw(st.one_of(st.integers(0, 10**12), st.just(True)))
        row = (draw(_aids), None, "n", draw(_shas), size, None, None, None, None,
               draw(st.sampled_from(["inline", "file"])))
        out.append((idx, "artifact.put", draw(_products), "t", (row, ()),
                    "tok" if kind == "token" else None))
    return out


@needs_native
@settings(max_examples=400, deadline=None)
@given(_items())
def test_apply_puts_agrees_with_put(tmp_path_factory: pytest.TempPathFactory,
                                    items: list[Any]) -> None:
    """The C put replay, on items as the scan makes them and packed for the pipe, leaves
    the state and findings _put leaves (a duplicate name or a lock mid-run included)."""
    tmp = tmp_path_factory.mktemp("apply")
    py = _state(tmp)
    py._apply_items(list(items), None)
    packed = native.pack_puts(list(items))
    assert len(packed) <= len(items)
    for got, bulk in ((list(items), native.apply_puts), (packed, native.apply_puts),
                      (packed, None)):
        c = _state(tmp)
        c._apply_items(list(got), bulk)
        for attr in ("arts", "product_codes", "product_names", "live_by_sha", "file_shas",
                     "locked", "authorized"):
            assert getattr(c, attr) == getattr(py, attr), attr
        assert list(c.arts) == list(py.arts)  # insertion order: log order, as _put leaves it
        assert [str(f) for f in c.f.items] == [str(f) for f in py.f.items]


# ----------------------------------------------------------------- the object-free put path


def _one_put_db(path: Path, leaf: bytes, idx: int) -> None:
    """A scratch database holding ``leaf`` at ``idx`` (its hash right), and the artifact,
    metadata and inline_blob rows the Python replay derives from it, if any."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, leaf, leaf_hash)")
    conn.execute("CREATE TABLE IF NOT EXISTS artifact (log_idx INTEGER PRIMARY KEY, id, "
                 "product, name, sha256, size, media_type, metadata, provenance, "
                 "retain_until, storage, actor, created)")
    conn.execute("CREATE TABLE IF NOT EXISTS artifact_meta (product, key, value, log_idx)")
    conn.execute("CREATE TABLE IF NOT EXISTS node (level, k, hash)")
    conn.execute("CREATE TABLE IF NOT EXISTS inline_blob (log_idx INTEGER PRIMARY KEY, "
                 "data)")
    for table in ("log", "artifact", "artifact_meta", "inline_blob"):
        conn.execute(f"DELETE FROM {table}")
    conn.execute("INSERT INTO log VALUES (?,?,?)", (idx, leaf, native.leaf_hash(leaf)))
    item, _ = _python_item(leaf, idx)
    if item is not None and item[1] == "artifact.put":
        row = item[4][0]
        conn.execute("INSERT INTO artifact VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     (row[12], *row[:12]))
        conn.execute("INSERT INTO inline_blob VALUES (?, x'616263')", (idx,))
    conn.commit()
    conn.close()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fast") / "d.db"


@needs_native
@settings(max_examples=500, deadline=None)
@given(st.data())
def test_object_free_put_path_agrees(scratch: Path, data: st.DataObject) -> None:
    """Db.chunk with its object-free put path gives exactly what it gives through the
    decoded-object path (loads + put_item), on sound and hostile puts alike."""
    leaf, idx = data.draw(put_records())
    path = scratch
    _one_put_db(path, leaf, idx)
    db = native.Db(f"file:{path}?mode=ro")
    spec = (_PRODUCTS, _MIN // vstore._MICROSECOND, TOKEN_ACTOR)
    key = bytes(64)
    fast = db.chunk(idx, idx + 1, spec, key)
    slow = db.chunk(idx, idx + 1, spec, key, False)
    db.close()
    assert fast == slow


_UTF8 = [  # (bytes, valid UTF-8)
    (b"\xc3\xa9", True), (b"\xdf\xbf", True), (b"\xe0\xa0\x80", True), (b"\xed\x9f\xbf", True),
    (b"\xe1\x80\x80", True), (b"\xec\xbf\xbf", True),
    (b"\xe0\x80\x80", False), (b"\xe0\x9f\xbf", False),  # overlong
    (b"\xed\xa0\x80", False), (b"\xed\xbf\xbf", False),  # surrogates
    (b"\xc0\xaf", False), (b"\xc1\xbf", False), (b"\x80", False), (b"\xbf", False),
    (b"\xc3", False), (b"\xe1\x80", False), (b"\xc3\x28", False), (b"\xe1\x28\x80", False),
    (b"\xe1\x80\x28", False), (b"\xc2\xc2\x80", False),
]
_PLACES = ["metadata-value", "metadata-key", "provenance", "media_type", "actor"]


@needs_native
@pytest.mark.parametrize("place", _PLACES)
@pytest.mark.parametrize(("raw", "valid"), _UTF8, ids=[r.hex() for r, _ in _UTF8])
def test_object_free_put_path_on_hostile_utf8(scratch: Path, raw: bytes, valid: bool,
                                              place: str) -> None:
    """Every UTF-8 form the object path refuses (overlong, surrogate, truncated, stray
    continuation) is refused by the object-free path too, and valid text is accepted."""
    body = {"artifact_id": vstore._artifact_id("gurukul", "n/1"), "name": "n/1",
            "sha256": "ab" * 32, "size": 3, "media_type": "t/p" + ("@@" if place ==
                                                                    "media_type" else ""),
            "metadata": {"k": "@@" if place == "metadata-value" else "v",
                         **({"k@@": 1} if place == "metadata-key" else {})},
            "provenance": {"by": ["@@" if place == "provenance" else "x"]},
            "retain_until": "2033-12-04T17:43:27.312063Z",
            "received": "2026-12-04T17:43:27.000001Z", "storage": "inline"}
    rec = {"v": 1, "seq": 7, "time": "2026-12-04T17:43:28.000000Z", "type": "artifact.put",
           "actor": "bench" + ("@@" if place == "actor" else ""), "product": "gurukul",
           "body": body}
    leaf = vstore.canonical_json(rec).replace(b"@@", raw)
    _one_put_db(scratch, leaf, 7)
    db = native.Db(f"file:{scratch}?mode=ro")
    spec = (_PRODUCTS, _MIN // vstore._MICROSECOND, TOKEN_ACTOR)
    fast = db.chunk(7, 8, spec, bytes(64))
    slow = db.chunk(7, 8, spec, bytes(64), False)
    db.close()
    assert fast == slow
    assert fast is not None
    assert (type(fast[0][0]) is tuple) == valid, fast[0][0]
