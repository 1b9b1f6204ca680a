"""Tamper drill for the offline store verifier (``verify store``).

A real store is built once (four products, inline and file blobs, a retention extension,
holds, a governance lock, disposals, checkpoints). Each attack runs on a fresh copy of
its directory and edits the bytes on disk with ``sqlite3`` as an attacker with file
access (but no signer key) would, dropping the WORM triggers first and putting them
back afterwards so that only the attack itself is left to find. The verifier must fail
and name the spot.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Clock

import depository.verifier.store as vstore
from depository.signing import generate_key
from depository.store import Store, artifact_id, format_time
from depository.store._tree import Frontier
from depository.tlog import merkle
from depository.tlog.record import Record, encode_record
from depository.verifier import StoreVerificationError
from depository.verifier.store import Finding, StoreResult, store_result, verify_store

ORIGIN = "drill.example/depository"
DAY = timedelta(days=1)
SEVEN_YEARS = timedelta(days=7 * 365 + 2)


@dataclass
class Built:
    path: Path
    vkey: str
    size: int
    idx: dict[str, int]  # label -> log index
    aid: dict[str, str]  # label -> artifact id
    sha: dict[str, str]  # label -> sha256
    final_checkpoint: bytes
    old_db: Path  # the database as it was after the first few writes
    t0: datetime


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    base = tmp_path_factory.mktemp("drill")
    path = base / "store"
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    clock = Clock(t0)
    idx: dict[str, int] = {}
    aid: dict[str, str] = {}
    sha: dict[str, str] = {}
    s = Store.init(path, origin=ORIGIN, clock=clock)

    def put(label: str, product: str, name: str, data: bytes, **kw: Any) -> None:
        r = s.put(product, name, data, **kw)
        idx[label], aid[label], sha[label] = r.log_index, r.artifact_id, r.sha256

    put("conv1", "ai-assistant", "conversations/c-1.json", b'{"turns": 3}',
        metadata={"user": "u-1", "turns": 3, "flagged": False}, media_type="application/json")
    # A float Python spells differently from RFC 8785 (1e-07 vs 1e-7), and keys whose
    # UTF-16 order differs from their code-point order: the exact canonical paths.
    put("conv2", "ai-assistant", "conversations/c-2.json", b'{"turns": 5}',
        metadata={"user": "u-2", "turns": 5, "ratio": 1e-7, "\ufb01le": "a", "\U0001f600": 2},
        provenance={"score": 1e-7})
    put("avatar1", "ai-avatar", "avatars/a-1.png", os.urandom(70 * 1024),
        metadata={"model": "v2", "safe": True}, provenance={"generator": "avatar-gen 1.4"})
    put("report", "gurukul", "reports/report.pdf", os.urandom(100 * 1024),
        metadata={"course": "algebra", "grade": 9.5, "tags": ["x"]}, media_type="application/pdf")
    put("lesson", "gurukul", "lessons/l-1.txt", b"lesson one",
        metadata={"course": "algebra"})
    put("decision1", "enforcement", "decisions/d-1.json", b'{"decision": "allow"}',
        metadata={"case": "c-1"}, provenance={"policy": "p-7"})
    s.checkpoint()
    old_db = base / "old.db"
    src = sqlite3.connect(path / "depository.db")
    dst = sqlite3.connect(old_db)
    src.backup(dst)
    dst.close()
    src.close()

    idx["extend"] = s.extend_retention("gurukul", "reports/report.pdf", t0 + 10 * 365 * DAY,
                                       actor="records-officer", reason="accreditation")
    h1 = s.place_hold(matter="M-1", reason="inquiry", actor="legal",
                      artifact_ids=[aid["decision1"]])
    idx["hold1"] = h1.placed_index
    idx["release1"] = s.release_hold(h1.id, reason="inquiry closed", actor="legal")
    h2 = s.place_hold(matter="M-2", reason="litigation", actor="legal", product="ai-avatar")
    idx["hold2"] = h2.placed_index
    expiring = t0 + SEVEN_YEARS + 30 * DAY
    put("export", "ai-assistant", "exports/e-1.bin", os.urandom(80 * 1024),
        retain_until=expiring)
    put("quiz", "gurukul", "quizzes/q-1.txt", b"quiz bytes", retain_until=expiring)
    put("decision2", "enforcement", "decisions/d-2.json", b'{"decision": "deny"}',
        metadata={"case": "c-2"})
    s.checkpoint()
    idx["lock"] = s.lock("drill: checking the lock", check="drill")
    idx["unlock"] = s.unlock(reason="drill over", actor="admin")
    clock.now = t0 + 8 * 365 * DAY
    disposed = s.dispose(clock(), actor="ops", artifact_ids=[aid["export"], aid["quiz"]])
    idx["dispose_export"], idx["dispose_quiz"] = disposed
    final = s.checkpoint()
    size = s.size()
    vkey = s.verifier_key
    s.close()
    return Built(path, vkey, size, idx, aid, sha, final, old_db, t0)


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def copy(built: Built, tmp_path: Path) -> Path:
    dest = tmp_path / "store"
    shutil.copytree(built.path, dest)
    return dest


@contextlib.contextmanager
def attack(store: Path) -> Iterator[sqlite3.Connection]:
    """A write connection with the WORM triggers dropped, put back afterwards."""
    conn = sqlite3.connect(store / "depository.db", isolation_level=None)
    triggers = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
    ).fetchall()
    for name, _ in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    try:
        yield conn
    finally:
        for _, sql in triggers:
            conn.execute(sql)
        conn.close()


def leaf_of(conn: sqlite3.Connection, index: int) -> bytes:
    return bytes(conn.execute("SELECT leaf FROM log WHERE idx = ?", (index,)).fetchone()[0])


def flip_sha_digit(leaf: bytes) -> bytes:
    """Change one hex digit of the body's sha256: still canonical, still valid."""
    pos = leaf.index(b'"sha256":"') + len(b'"sha256":"')
    digit = leaf[pos:pos + 1]
    return leaf[:pos] + (b"1" if digit != b"1" else b"2") + leaf[pos + 1:]


def append_forged(
    conn: sqlite3.Connection, type_: str, product: str | None, body: dict[str, Any],
    time: datetime,
) -> int:
    """Append a canonical record with its leaf hash and node rows, as the store would."""
    n = int(conn.execute("SELECT max(idx) FROM log").fetchone()[0]) + 1

    def node(level: int, k: int) -> bytes:
        if level == 0:
            row = conn.execute("SELECT leaf_hash FROM log WHERE idx = ?", (k,)).fetchone()
        else:
            row = conn.execute("SELECT hash FROM node WHERE level = ? AND k = ?",
                               (level, k)).fetchone()
        return bytes(row[0])

    frontier = Frontier.load(n, node)
    leaf = encode_record(Record(seq=n, time=format_time(time), type=type_, actor="mallory",
                                product=product, body=body))
    lh = merkle.leaf_hash(leaf)
    nodes: list[tuple[int, int, bytes]] = []
    frontier.append(lh, nodes)
    conn.execute("INSERT INTO log VALUES (?,?,?)", (n, leaf, lh))
    conn.executemany("INSERT INTO node VALUES (?,?,?)", nodes)
    return n


def verify(store: Path, built: Built, **kw: Any) -> StoreResult:
    """Replay with both engines and require the same result (findings, checks, verdict):
    every tamper test below is also a differential test of the native engine."""
    py = store_result(store, [built.vkey], native=False, **kw)
    assert py.engine == vstore.ENGINE_PYTHON
    if vstore._NATIVE is None:
        return py
    nat = store_result(store, [built.vkey], native=True, **kw)
    assert nat.engine == vstore.ENGINE_NATIVE
    assert dataclasses.replace(nat, engine=py.engine) == py, (
        "engines differ:\npython: " + "\n".join(map(str, py.findings))
        + "\nnative: " + "\n".join(map(str, nat.findings)))
    return nat


def found(res: StoreResult, check: str, *, index: int | None = None,
          artifact_id: str | None = None, table: str | None = None) -> list[Finding]:
    hits = [
        f for f in res.findings
        if f.check == check
        and (index is None or f.index == index)
        and (artifact_id is None or f.artifact_id == artifact_id)
        and (table is None or f.table == table)
    ]
    assert not res.ok
    assert hits, f"no {check} finding at index {index}: " + "\n".join(map(str, res.findings))
    return hits


def checks_failed(res: StoreResult) -> set[str]:
    return {f.check for f in res.findings}


# --------------------------------------------------------------------------- clean store


@pytest.mark.parametrize("jobs", [1, 2])
def test_untouched_store_verifies(built: Built, jobs: int) -> None:
    res = verify(built.path, built, jobs=jobs)
    assert res.ok, "\n".join(map(str, res.findings))
    assert res.findings == [] and res.findings_total == 0
    assert res.size == built.size
    assert res.artifacts == 9 and res.disposed == 2
    assert res.checkpoints >= 3
    assert res.latest_checkpoint == built.final_checkpoint
    assert res.latest_checkpoint_size == built.size
    assert res.origin == ORIGIN and res.verifier_key == built.vkey
    assert res.blobs_checked == 7
    assert any("WORM triggers" in c for c in res.checks)
    verify_store(built.path, [built.vkey])
    # The auditor's own saved checkpoint of today verifies too.
    assert verify(built.path, built, since_checkpoint=built.final_checkpoint).ok


def test_progress_is_reported(built: Built) -> None:
    seen: list[tuple[int, int]] = []
    assert verify(built.path, built, progress=lambda d, t: seen.append((d, t))).ok
    assert seen[-1] == (built.size, built.size)


def test_parallel_replay_is_identical(built: Built, copy: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # Tiny chunks so that many chunks, and subtrees above the chunk level, are exercised.
    monkeypatch.setattr(vstore, "CHUNK_LEVEL", 2)
    clean1 = verify(built.path, built, jobs=1)
    clean2 = verify(built.path, built, jobs=2)
    assert clean1.ok and clean1 == clean2
    i = built.idx["report"]
    with attack(copy) as conn:
        leaf = flip_sha_digit(leaf_of(conn, i))
        conn.execute("UPDATE log SET leaf = ?, leaf_hash = ? WHERE idx = ?",
                     (leaf, merkle.leaf_hash(leaf), i))
    bad1 = verify(copy, built, jobs=1)
    bad2 = verify(copy, built, jobs=2)
    assert not bad1.ok and bad1 == bad2
    found(bad1, "node", index=i & ~1)


def test_canonical_text_of_nested_values() -> None:
    """The verifier's quick canonical text of a sub-object equals RFC 8785's, including
    where Python's encoder differs (floats, UTF-16 key order) and must not be used."""
    from depository.tlog.record import canonical_json
    from depository.verifier.store import _canonical_in

    for meta in ({"a": "x", "n": 3, "t": True}, {"r": 1e-7}, {"\ufb01": 1, "\U0001f600": 2},
                 {"nested": {"z": [1, 2.5, None], "a": "é"}}, {}):
        leaf = canonical_json({"body": {"metadata": meta, "other": {"k": 1}}, "v": 1})
        assert _canonical_in(meta, leaf) == canonical_json(meta).decode()


# --------------------------------------------------------------------------- the log


def test_edit_one_byte_of_a_record(built: Built, copy: Path) -> None:
    i, aid = built.idx["report"], built.aid["report"]
    with attack(copy) as conn:
        conn.execute("UPDATE log SET leaf = ? WHERE idx = ?",
                     (flip_sha_digit(leaf_of(conn, i)), i))
    res = verify(copy, built)
    (hit,) = found(res, "leaf-hash", index=i, artifact_id=aid)
    assert f"record {i} (artifact {aid}, gurukul/reports/report.pdf)" in hit.message
    found(res, "derived", index=i, artifact_id=aid, table="artifact")
    found(res, "checkpoint")
    with pytest.raises(StoreVerificationError, match=f"record {i} "):
        verify_store(copy, [built.vkey])


def test_non_canonical_record(built: Built, copy: Path) -> None:
    i, aid = built.idx["conv2"], built.aid["conv2"]
    with attack(copy) as conn:
        conn.execute("UPDATE log SET leaf = ? WHERE idx = ?", (leaf_of(conn, i) + b" ", i))
    res = verify(copy, built)
    (hit,) = found(res, "record", index=i, artifact_id=aid)
    assert "canonical" in hit.message and "ai-assistant/conversations/c-2.json" in hit.message


def test_edit_a_record_and_fix_its_leaf_hash(built: Built, copy: Path) -> None:
    i, aid = built.idx["report"], built.aid["report"]
    with attack(copy) as conn:
        leaf = flip_sha_digit(leaf_of(conn, i))
        conn.execute("UPDATE log SET leaf = ?, leaf_hash = ? WHERE idx = ?",
                     (leaf, merkle.leaf_hash(leaf), i))
    res = verify(copy, built)
    assert "leaf-hash" not in checks_failed(res)
    (hit,) = found(res, "node", index=i & ~1, table="node")
    assert f"records {i & ~1}..{(i & ~1) + 1}" in hit.message
    found(res, "derived", index=i, artifact_id=aid, table="artifact")
    found(res, "checkpoint", table="checkpoint")


def test_delete_a_record(built: Built, copy: Path) -> None:
    i = built.idx["lesson"]
    with attack(copy) as conn:
        conn.execute("DELETE FROM log WHERE idx = ?", (i,))
    res = verify(copy, built)
    (hit,) = found(res, "log", index=i, table="log")
    assert f"record {i} is missing" in hit.message
    found(res, "derived", index=i, artifact_id=built.aid["lesson"], table="artifact")
    found(res, "checkpoint")


def test_swap_two_records(built: Built, copy: Path) -> None:
    i, j = built.idx["conv1"], built.idx["decision1"]
    with attack(copy) as conn:
        a = conn.execute("SELECT leaf, leaf_hash FROM log WHERE idx = ?", (i,)).fetchone()
        b = conn.execute("SELECT leaf, leaf_hash FROM log WHERE idx = ?", (j,)).fetchone()
        conn.execute("UPDATE log SET leaf = ?, leaf_hash = ? WHERE idx = ?", (*b, i))
        conn.execute("UPDATE log SET leaf = ?, leaf_hash = ? WHERE idx = ?", (*a, j))
    res = verify(copy, built)
    (hi,) = found(res, "record", index=i, artifact_id=built.aid["decision1"])
    assert f"seq is {j}" in hi.message
    found(res, "record", index=j, artifact_id=built.aid["conv1"])


def test_truncate_the_tail(built: Built, copy: Path) -> None:
    keep = built.size - 3
    with attack(copy) as conn:
        conn.execute("DELETE FROM log WHERE idx >= ?", (keep,))
        conn.execute("DELETE FROM node WHERE ((k + 1) << level) > ?", (keep,))
    res = verify(copy, built)
    (hit,) = found(res, "truncated", index=keep)
    assert f"only {keep}" in hit.message
    assert "node" not in checks_failed(res)


def test_truncated_tail_with_nodes_left_behind(built: Built, copy: Path) -> None:
    keep = built.size - 3
    with attack(copy) as conn:
        conn.execute("DELETE FROM log WHERE idx >= ?", (keep,))
    res = verify(copy, built)
    found(res, "truncated", index=keep)
    found(res, "node", table="node")


def test_append_a_forged_record(built: Built, copy: Path) -> None:
    """Canonical, valid-looking, with leaf hash, nodes and derived rows: only the missing
    signature gives it away."""
    data = b"planted evidence"
    sha = hashlib.sha256(data).hexdigest()
    name = "decisions/d-99.json"
    aid = artifact_id("enforcement", name)
    when = built.t0 + 8 * 365 * DAY + DAY
    retain = format_time(when + SEVEN_YEARS)
    body = {"artifact_id": aid, "name": name, "sha256": sha, "size": len(data),
            "media_type": "application/json", "metadata": {"case": "c-99"}, "provenance": {},
            "retain_until": retain, "storage": "inline", "received": format_time(when)}
    with attack(copy) as conn:
        n = append_forged(conn, "artifact.put", "enforcement", body, when)
        conn.execute("INSERT INTO inline_blob VALUES (?, ?)", (n, data))
        conn.execute("INSERT INTO artifact VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", (
            n, aid, "enforcement", name, sha, len(data), "application/json",
            '{"case":"c-99"}', "{}", retain, "inline", "mallory", format_time(when)))
        conn.execute("INSERT INTO artifact_meta VALUES (?,?,?,?)",
                     ("enforcement", "case", "c-99", n))
    res = verify(copy, built)
    assert checks_failed(res) == {"unsigned-tail"}
    (hit,) = found(res, "unsigned-tail", index=n)
    assert f"record {n} is not covered by any validly signed checkpoint" in hit.message


def test_restore_an_older_copy(built: Built, copy: Path) -> None:
    for suffix in ("-wal", "-shm"):
        (copy / f"depository.db{suffix}").unlink(missing_ok=True)
    shutil.copyfile(built.old_db, copy / "depository.db")
    # Internally consistent: the store alone cannot tell.
    alone = verify(copy, built)
    assert alone.ok, "\n".join(map(str, alone.findings))
    assert alone.size < built.size
    res = verify(copy, built, since_checkpoint=built.final_checkpoint)
    (hit,) = found(res, "since-checkpoint")
    assert hit.message.startswith("rolled back or forked")
    assert f"covers {built.size} records" in hit.message


def test_saved_checkpoint_from_a_forked_history(built: Built, copy: Path) -> None:
    """A rewritten log (records edited, tree and nodes rebuilt, no key) vs a saved checkpoint
    at a size the log still has."""
    i = built.idx["conv1"]
    with attack(copy) as conn:
        leaf = flip_sha_digit(leaf_of(conn, i))
        conn.execute("UPDATE log SET leaf = ?, leaf_hash = ? WHERE idx = ?",
                     (leaf, merkle.leaf_hash(leaf), i))
    res = verify(copy, built, since_checkpoint=built.final_checkpoint)
    (hit,) = found(res, "since-checkpoint")
    assert "history you saw was rewritten" in hit.message


def test_edit_a_signed_checkpoint(built: Built, copy: Path) -> None:
    with attack(copy) as conn:
        size, note = conn.execute(
            "SELECT size, note FROM checkpoint ORDER BY size LIMIT 1 OFFSET 1").fetchone()
        lines = bytes(note).split(b"\n")
        fake = hashlib.sha256(b"another tree").digest()
        lines[2] = base64.b64encode(fake)
        conn.execute("UPDATE checkpoint SET note = ?, root = ? WHERE size = ?",
                     (b"\n".join(lines), fake, size))
    res = verify(copy, built)
    (hit,) = found(res, "checkpoint", table="checkpoint")
    assert f"checkpoint at size {size}" in hit.message and "does not verify" in hit.message


def test_edit_a_node_row(built: Built, copy: Path) -> None:
    with attack(copy) as conn:
        conn.execute("UPDATE node SET hash = ? WHERE level = 2 AND k = 1", (b"\0" * 32,))
    res = verify(copy, built)
    assert checks_failed(res) == {"node"}
    found(res, "node", index=4, table="node")


# --------------------------------------------------------------------------- bytes


def test_replace_a_blob_file(built: Built, copy: Path) -> None:
    sha = built.sha["avatar1"]
    p = copy / "objects" / sha[:2] / sha[2:4] / sha
    p.chmod(0o644)
    p.write_bytes(os.urandom(70 * 1024))
    res = verify(copy, built)
    assert checks_failed(res) == {"blob"}
    (hit,) = found(res, "blob", index=built.idx["avatar1"], artifact_id=built.aid["avatar1"])
    assert "hashes to" in hit.message
    assert verify(copy, built, check_blobs=False).ok


def test_edit_an_inline_blob(built: Built, copy: Path) -> None:
    with attack(copy) as conn:
        conn.execute("UPDATE inline_blob SET data = ? WHERE log_idx = ?",
                     (b'{"decision": "deny!"}', built.idx["decision1"]))
    res = verify(copy, built)
    assert checks_failed(res) == {"blob"}
    found(res, "blob", index=built.idx["decision1"], artifact_id=built.aid["decision1"],
          table="inline_blob")


def test_delete_an_inline_blob(built: Built, copy: Path) -> None:
    with attack(copy) as conn:
        conn.execute("DELETE FROM inline_blob WHERE log_idx = ?", (built.idx["decision1"],))
    res = verify(copy, built)
    assert checks_failed(res) == {"blob"}
    (hit,) = found(res, "blob", index=built.idx["decision1"],
                   artifact_id=built.aid["decision1"], table="inline_blob")
    assert "missing" in hit.message and "never disposed" in hit.message


def test_inline_blob_row_for_a_file_artifact(built: Built, copy: Path) -> None:
    with attack(copy) as conn:
        conn.execute("INSERT INTO inline_blob VALUES (?, ?)", (built.idx["avatar1"], b"x"))
    res = verify(copy, built)
    assert checks_failed(res) == {"blob"}
    (hit,) = found(res, "blob", index=built.idx["avatar1"], table="inline_blob")
    assert "file-backed artifact" in hit.message


def test_disposed_bytes_that_remain(built: Built, copy: Path) -> None:
    with attack(copy) as conn:
        conn.execute("INSERT INTO inline_blob VALUES (?, ?)", (built.idx["quiz"], b"quiz bytes"))
    res = verify(copy, built)
    (hit,) = found(res, "blob", artifact_id=built.aid["quiz"])
    assert "disposed bytes remain" in hit.message


# --------------------------------------------------------------------------- retention, holds


def test_shorten_a_retention_row(built: Built, copy: Path) -> None:
    i = built.idx["extend"]
    with attack(copy) as conn:
        conn.execute("UPDATE retention SET retain_until = ? WHERE log_idx = ?",
                     (format_time(built.t0 + DAY), i))
    res = verify(copy, built)
    assert checks_failed(res) == {"derived"}
    (hit,) = found(res, "derived", index=i, artifact_id=built.aid["report"], table="retention")
    assert "retain_until" in hit.message


def test_forged_retention_extend_that_shortens(built: Built, copy: Path) -> None:
    aid = built.aid["report"]
    previous = format_time(built.t0 + 10 * 365 * DAY)
    shorter = format_time(built.t0 + 365 * DAY)
    with attack(copy) as conn:
        n = append_forged(conn, "retention.extend", "gurukul", {
            "artifact_id": aid, "previous": previous, "retain_until": shorter,
            "reason": "oops"}, built.t0 + 9 * 365 * DAY)
        conn.execute("INSERT INTO retention VALUES (?,?,?)", (n, aid, shorter))
    res = verify(copy, built)
    (hit,) = found(res, "retention", index=n, artifact_id=aid)
    assert "shortened" in hit.message
    found(res, "unsigned-tail", index=n)


def test_dispose_an_artifact_under_hold(built: Built, copy: Path) -> None:
    aid, sha = built.aid["avatar1"], built.sha["avatar1"]
    when = built.t0 + 20 * 365 * DAY  # long after its retention: only the hold forbids it
    with attack(copy) as conn:
        retain = conn.execute("SELECT retain_until FROM artifact WHERE id = ?",
                              (aid,)).fetchone()[0]
        n = append_forged(conn, "artifact.dispose", "ai-avatar", {
            "artifact_id": aid, "sha256": sha, "retain_until": retain,
            "bytes_removed": True}, when)
        conn.execute("INSERT INTO disposal VALUES (?,?,?,?)", (aid, sha, n, format_time(when)))
    (copy / "objects" / sha[:2] / sha[2:4] / sha).unlink()
    res = verify(copy, built)
    (hit,) = found(res, "hold", index=n, artifact_id=aid)
    assert "legal hold" in hit.message and "M-2" in hit.message
    assert "disposal" not in checks_failed(res)


def test_forged_early_disposal(built: Built, copy: Path) -> None:
    aid, sha = built.aid["decision2"], built.sha["decision2"]
    when = built.t0 + 2 * 365 * DAY
    with attack(copy) as conn:
        retain = conn.execute("SELECT retain_until FROM artifact WHERE id = ?",
                              (aid,)).fetchone()[0]
        n = append_forged(conn, "artifact.dispose", "enforcement", {
            "artifact_id": aid, "sha256": sha, "retain_until": retain,
            "bytes_removed": True}, when)
        conn.execute("INSERT INTO disposal VALUES (?,?,?,?)", (aid, sha, n, format_time(when)))
        conn.execute("DELETE FROM inline_blob WHERE log_idx = ?", (built.idx["decision2"],))
    res = verify(copy, built)
    (hit,) = found(res, "disposal", index=n, artifact_id=aid)
    assert "before its retention ran out" in hit.message


# --------------------------------------------------------------------------- tables, schema, key


def test_edit_a_derived_artifact_row(built: Built, copy: Path) -> None:
    i, aid = built.idx["report"], built.aid["report"]
    with attack(copy) as conn:
        conn.execute("UPDATE artifact SET metadata = ? WHERE id = ?",
                     ('{"course":"physics"}', aid))
    res = verify(copy, built)
    assert checks_failed(res) == {"derived"}
    (hit,) = found(res, "derived", index=i, artifact_id=aid, table="artifact")
    assert "metadata" in hit.message and "physics" in hit.message


def test_edit_the_metadata_index(built: Built, copy: Path) -> None:
    aid = built.aid["lesson"]
    with attack(copy) as conn:
        conn.execute("UPDATE artifact_meta SET value = 'geometry' WHERE log_idx = ?",
                     (built.idx["lesson"],))
        conn.execute("INSERT INTO artifact_meta VALUES (?,?,?,?)",
                     ("gurukul", "extra", "x", built.idx["lesson"]))
    res = verify(copy, built)
    hits = found(res, "derived", index=built.idx["lesson"], artifact_id=aid,
                 table="artifact_meta")
    assert len(hits) == 2
    # The edited value is reported against its record and field (worded lazily).
    assert any(f"row of record {built.idx['lesson']} (artifact {aid}, " in h.message
               and "metadata field" in h.message and "geometry" in h.message for h in hits)


def test_drop_a_trigger(built: Built, copy: Path) -> None:
    conn = sqlite3.connect(copy / "depository.db")
    conn.execute("DROP TRIGGER artifact_no_update")
    conn.close()
    res = verify(copy, built)
    assert checks_failed(res) == {"schema"}
    (hit,) = found(res, "schema", table="sqlite_master")
    assert "trigger" in hit.message


def test_wrong_trusted_key(built: Built) -> None:
    _, other = generate_key(ORIGIN)
    res = store_result(built.path, [other])
    (hit,) = found(res, "trusted-key", index=0)
    assert hit.message.startswith("the store's key is not the one you trust")
    found(res, "checkpoint")
    assert res.latest_checkpoint is None


# --------------------------------------------------------------------------- command line


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)


def _verifier(*args: str) -> subprocess.CompletedProcess[str]:
    return _run("-m", "depository.verifier", "store", *args)


def _depository(*args: str) -> subprocess.CompletedProcess[str]:
    return _run("-c", "import sys; from depository.cli import main; sys.argv[0] = 'depository';"
                " main()", "verify", "store", *args)


@pytest.fixture(scope="module")
def keyfile(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("auditor") / "log.vkey"
    p.write_text(built.vkey + "\n")
    return p


@pytest.mark.parametrize("front", [_verifier, _depository], ids=["python-m", "depository"])
def test_cli_clean_and_tampered(
    built: Built, copy: Path, keyfile: Path, tmp_path: Path,
    front: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    saved = tmp_path / "saved.txt"
    ok = front(str(built.path), "--key", str(keyfile), "--save-checkpoint", str(saved))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "VERIFIED (store)" in ok.stdout
    assert saved.read_bytes() == built.final_checkpoint

    i = built.idx["report"]
    with attack(copy) as conn:
        conn.execute("UPDATE log SET leaf = ? WHERE idx = ?",
                     (flip_sha_digit(leaf_of(conn, i)), i))
    bad = front(str(copy), "--key", built.vkey, "--jobs", "2")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"FAIL [leaf-hash] record {i} (artifact {built.aid['report']}" in bad.stdout

    js = front(str(copy), "--key", str(keyfile), "--json", "--no-blobs")
    assert js.returncode == 1
    out = json.loads(js.stdout)
    assert out["verb"] == "store" and out["verified"] is False
    assert {"check": "leaf-hash", "index": i, "artifact_id": built.aid["report"],
            "table": "log"}.items() <= out["findings"][0].items()
    assert out["size"] == built.size


@pytest.mark.parametrize("front", [_verifier, _depository], ids=["python-m", "depository"])
def test_cli_usage_errors(built: Built, keyfile: Path, tmp_path: Path,
                          front: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    nokey = front(str(built.path))
    assert nokey.returncode == 2
    assert "--key" in nokey.stderr and "never trusted automatically" in nokey.stderr
    missing = front(str(tmp_path / "nowhere"), "--key", str(keyfile))
    assert missing.returncode == 2 and "not a directory" in missing.stderr
    empty = front(str(tmp_path), "--key", str(keyfile), "--json")
    assert empty.returncode == 2
    assert "depository.db" in json.loads(empty.stderr)["usage_error"]
    badkey = front(str(built.path), "--key", "not-a-key+zz+zz")
    assert badkey.returncode == 2


def test_cli_since_checkpoint_catches_a_rollback(built: Built, copy: Path,
                                                tmp_path: Path, keyfile: Path) -> None:
    saved = tmp_path / "saved.txt"
    saved.write_bytes(built.final_checkpoint)
    for suffix in ("-wal", "-shm"):
        (copy / f"depository.db{suffix}").unlink(missing_ok=True)
    shutil.copyfile(built.old_db, copy / "depository.db")
    assert _verifier(str(copy), "--key", str(keyfile)).returncode == 0
    res = _verifier(str(copy), "--key", str(keyfile), "--since-checkpoint", str(saved))
    assert res.returncode == 1
    assert "FAIL [since-checkpoint] rolled back or forked" in res.stdout


def test_a_schema_v1_store_is_refused_with_a_clear_error(built: Built, copy: Path) -> None:
    """The derived tables' layout depends on the schema version frozen in record 0."""
    from depository.tlog.record import parse_record

    with attack(copy) as conn:
        leaf = conn.execute("SELECT leaf FROM log WHERE idx = 0").fetchone()[0]
        rec = parse_record(bytes(leaf), index=0)
        body = {**rec.body, "schema_version": 1}
        new = encode_record(Record(seq=0, time=rec.time, type=rec.type, actor=rec.actor,
                                   product=rec.product, body=body))
        conn.execute("UPDATE log SET leaf = ?, leaf_hash = ? WHERE idx = 0",
                     (new, merkle.leaf_hash(new)))
    with pytest.raises(StoreVerificationError, match="schema version 1; this verifier "
                       "reads schema version 2 only"):
        verify(copy, built)


# ----------------------------------------------------------------- quick checks agree
_GOOD_PUT = {
    "artifact_id": "art_x", "name": "n", "sha256": "ab" * 32, "size": 3,
    "media_type": "text/plain", "metadata": {}, "provenance": {"a": 1},
    "retain_until": "2030-01-01T00:00:00Z", "received": "2026-01-01T00:00:00.5Z",
    "storage": "inline",
}
_ODD_VALUES = [None, "", "x", 0, -1, 1, True, False, [], {}, 1.5, "AB" * 32, "ab" * 31,
               "2030-01-01T00:00:00+00:00", "2030-01-01", "file", "inline",
               "2030-13-01T00:00:00Z"]


@pytest.mark.parametrize("key", sorted(_GOOD_PUT))
def test_quick_put_check_agrees_with_the_spec(key: str) -> None:
    assert vstore._put_body_ok(_GOOD_PUT)
    assert vstore._spec_problem("artifact.put", _GOOD_PUT) is None
    for odd in [*_ODD_VALUES, vstore._ABSENT]:
        body = dict(_GOOD_PUT)
        if odd is vstore._ABSENT:
            del body[key]
        else:
            body[key] = odd
        slow = vstore._spec_problem("artifact.put", body)
        assert vstore._put_body_ok(body) is (slow is None), (key, odd, slow)
        assert vstore._body_problem("artifact.put", body) == slow
