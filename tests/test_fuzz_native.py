"""Bounded fuzz of the native verifier's C entry points (``_cverify.loads``/``scan``, and
``Db.chunk`` over a scratch database):
seeded mutations of canonical records, hostile splices included, each checked against
the pure-Python specification (``tests/test_verify_native.py``'s rule: C never accepts
what Python refuses, and decodes to the same value). A few seconds in ``make test``;
``benchmarks/fuzz.py`` runs it ``--scale`` times longer with a fresh seed.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from _fuzz import cases, mutate
from test_verify_native import _PRODUCTS, check_leaf, native

import depository.verifier.store as vstore
from depository.store import artifact_id
from depository.tlog.authority import TOKEN_ACTOR
from depository.tlog.errors import RecordError
from depository.tlog.record import canonical_json, parse_record_json


@pytest.mark.skipif(native is None, reason="native engine not built/disabled")
def test_fuzz_c_parser_bounded() -> None:
    """Seeded random hostile inputs straight into the C entry points, a few seconds
    (``benchmarks/fuzz.py`` runs ``tests/test_fuzz_native.py`` longer)."""
    seeds = [canonical_json(v) for v in (
        {"actor": "a", "body": {"metadata": {"k": [1, "é", None, {"x": True}]}}, "seq": 3},
        {"a": "\n\u2028\x7f", "b": -12345, "c": [[], {}]},
    )]
    for _, rng in cases("native-loads", 3000, 3):
        leaf = mutate(rng, rng.choice(seeds), seeds)
        check_leaf(leaf)
        native.scan([(0, leaf, native.leaf_hash(leaf))])


_PUT_SEEDS = [
    {"v": 1, "seq": 0, "time": "2026-12-04T17:43:28.000000Z", "type": "artifact.put",
     "actor": actor, "product": "gurukul",
     "body": {"artifact_id": artifact_id("gurukul", name), "name": name, "sha256": sha,
              "size": 3, "media_type": "text/plain",
              "metadata": {"k": "v", "n": 5, "f": False, "z": None, "é": ["x"]},
              "provenance": {"by": {"x": 1}}, "retain_until": "2033-12-04T17:43:27.312063Z",
              "received": "2026-12-04T17:43:27.000001Z", "storage": storage}}
    for actor, name, sha, storage in (
        ("bench", "n/1", hashlib.sha256(b"abc").hexdigest(), "inline"),
        ("token:t-1", "ü/2", "ab" * 32, "file"),
    )
]


def _fuzz_db(path: Path, leaves: list[bytes], rng: random.Random) -> None:
    """A scratch database with the tables Db.chunk reads: the leaves with their hashes, and
    the artifact/inline_blob rows the Python replay derives from each (some tampered)."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE log (idx INTEGER PRIMARY KEY, leaf, leaf_hash)")
    conn.execute("CREATE TABLE artifact (log_idx INTEGER PRIMARY KEY, id, product, name, "
                 "sha256, size, media_type, metadata, provenance, retain_until, storage, "
                 "actor, created)")
    conn.execute("CREATE TABLE artifact_meta (product, key, value, log_idx)")
    conn.execute("CREATE TABLE node (level, k, hash)")
    conn.execute("CREATE TABLE inline_blob (log_idx INTEGER PRIMARY KEY, data)")
    for i, leaf in enumerate(leaves):
        conn.execute("INSERT INTO log VALUES (?,?,?)", (i, leaf, native.leaf_hash(leaf)))
        item, _ = _python_item(leaf, i)
        if item is not None and item[1] == "artifact.put":
            row = list(item[4][0])
            if rng.random() < 0.2:
                row[rng.randrange(12)] = rng.choice([None, 7, "x", b"\x00", 1.5])
            conn.execute("INSERT INTO artifact VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         (row[12], *row[:12]))
            if row[9] == "inline":
                conn.execute("INSERT INTO inline_blob VALUES (?, ?)",
                             (i, rng.choice([b"abc", b"abd", "abc", None])))
    conn.commit()
    conn.close()


def _python_item(leaf: bytes, idx: int) -> tuple[Any, list[Any]]:
    try:
        rec = parse_record_json(leaf, index=idx)
    except RecordError:
        return None, ["record"]
    out: list[Any] = []
    try:
        return vstore._prepare(rec, leaf, (_PRODUCTS, None), out), out
    except OverflowError:
        return None, ["overflow"]


@pytest.mark.skipif(native is None, reason="native engine not built/disabled")
def test_fuzz_db_chunk_bounded(tmp_path: Path) -> None:
    """Db.chunk over mutated put records and tampered rows: every put it returns as an
    item is one Python prepares without a finding, to the same (compact) item; its
    confirmation holds only when the rows are the ones Python derives."""
    seeds = [canonical_json(s) for s in _PUT_SEEDS]
    spec = (_PRODUCTS, None, TOKEN_ACTOR)
    taken = confirmed = 0
    for case, rng in cases("native-db-chunk", 150, 4):
        leaves = []
        for i in range(rng.randint(1, 6)):
            rec = json.loads(rng.choice(seeds))
            rec["seq"] = i
            leaf = canonical_json(rec)
            leaves.append(mutate(rng, leaf, seeds) if rng.random() < 0.7 else leaf)
        path = tmp_path / f"c{case}.db"
        _fuzz_db(path, leaves, rng)
        db = native.Db(f"file:{path}?mode=ro")
        key = bytes(rng.randrange(256) for _ in range(64))
        got = db.chunk(0, len(leaves), spec, key)
        # The object-free path for puts and the object path agree on everything.
        assert got == db.chunk(0, len(leaves), spec, key, False), case
        db.close()
        if got is None:
            continue
        values, _, leaf_of, ok, artifacts, skipped, meta_count, meta_sum, _blobs = got
        items = []
        for k, v in enumerate(values):
            want, findings = _python_item(leaves[k], k)
            if type(v) is tuple:
                assert not findings and want is not None, (case, leaves[k])
                assert vstore._compact(want) == v, (case, leaves[k])
                items.append(want)
                taken += 1
            else:
                assert leaf_of[k] == leaves[k]
        if ok and not skipped:
            conn = sqlite3.connect(path)
            rows = conn.execute(f"SELECT {vstore._ARTIFACT_COLUMNS} FROM artifact "
                                "ORDER BY log_idx").fetchall()
            conn.close()
            assert rows == [(it[0], *it[4][0]) for it in items], case
            assert artifacts == len(items), case
            meta = [(p, k, v, it[0]) for it in items for _a, p, k, v in it[4][1]]
            assert vstore._meta_digest(key, meta) == (meta_count,
                                                      int.from_bytes(meta_sum, "big"))
            confirmed += bool(items)
    assert taken and confirmed, "the fuzz never reached the fast path"
