"""Issue 14, finding 1: forged authority.

An attacker with write access to the store's files (no signer key) INSERTs a row into the
``token`` table (the WORM triggers refuse UPDATE and DELETE, not INSERT), uses it through
the running server, then drops the trigger, deletes the row and recreates the trigger
with identical SQL, so the schema fingerprint matches again. A fake ``artifact`` row
likewise makes the server sign an ``artifact.refused`` naming bytes never stored.

Every attack here really writes the database file with a separate ``sqlite3``
connection while the server runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Clock
from test_service_server import Server
from test_service_support import bearer, make_store, store_config

from depository.service import create_app
from depository.signing import sign_note
from depository.store import (
    AuthorityError,
    GovernanceLockedError,
    RetentionError,
    Store,
    WriteOnceError,
    _authority,
    artifact_id,
    format_time,
)
from depository.store._tree import Frontier
from depository.tlog import merkle
from depository.tlog.checkpoint import Checkpoint, format_checkpoint
from depository.tlog.record import Record, encode_record
from depository.verifier.store import Finding, StoreResult, store_result

with warnings.catch_warnings():  # starlette would rather have httpx2 for its test client
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FORGED_SECRET = "dep_tok-990_forged-by-someone-with-file-access"


def _db(store_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(store_dir / "depository.db", isolation_level=None, timeout=10)


def _insert_forged_token(store_dir: Path, role: str, product: str | None = None) -> None:
    """INSERT is not refused by any trigger: no trigger needs to be touched."""
    conn = _db(store_dir)
    try:
        conn.execute("INSERT INTO token VALUES (?,?,?,?,?,?,?,?,?)", (
            "tok-990", role, product, None,
            hashlib.sha256(FORGED_SECRET.encode()).hexdigest(), "", "admin", 990,
            "2026-01-01T00:00:00Z"))
    finally:
        conn.close()


@contextlib.contextmanager
def _without_trigger(conn: sqlite3.Connection, name: str) -> Iterator[None]:
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                       (name,)).fetchone()[0]
    conn.execute(f"DROP TRIGGER {name}")
    try:
        yield
    finally:
        conn.execute(sql)  # identical SQL: the schema fingerprint is unchanged


def _delete_behind_the_trigger(store_dir: Path, table: str, where: str) -> None:
    """Drop ``<table>_no_delete``, delete the forged row, recreate the trigger."""
    conn = _db(store_dir)
    try:
        with _without_trigger(conn, f"{table}_no_delete"):
            conn.execute(f"DELETE FROM {table} WHERE {where}")
    finally:
        conn.close()


def _remove_forged_token(store_dir: Path) -> None:
    _delete_behind_the_trigger(store_dir, "token", "id = 'tok-990'")


def _verify(store_dir: Path, key: Path, saved: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "depository.verifier", "store", str(store_dir), "--key",
         str(key), "--since-checkpoint", str(saved)],
        capture_output=True, text=True, timeout=120)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    d = tmp_path / "store"
    with make_store(d) as s:
        r = s.put("gurukul", "lessons/l-1.txt", b"lesson one", actor="cli")
        s.place_hold(matter="M-7", reason="litigation", actor="legal-dept",
                     artifact_ids=[r.artifact_id])
    return d


def _saved(store_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    with Store.open(store_dir, readonly=True) as s:
        _, note = s.latest_checkpoint()
        key = tmp_path / "log.vkey"
        key.write_text(s.verifier_key + "\n")
    saved = tmp_path / "saved.txt"
    saved.write_bytes(note)
    return key, saved


def _records(store_dir: Path) -> list[tuple[int, str, str, dict[str, Any]]]:
    with Store.open(store_dir, readonly=True) as s:
        return [(r.seq, r.type, r.actor, dict(r.body))
                for r in (s.record(i) for i in range(s.size()))]


def _token_attack(client: httpx.Client, store_dir: Path, hold_id: str) -> tuple[int, int]:
    """The attack of issue 14: insert a token row, use it, remove the row again."""
    _insert_forged_token(store_dir, "admin")
    h = bearer(FORGED_SECRET)
    rel = client.post(f"/v1/holds/{hold_id}/release", json={"reason": "not needed"},
                      headers=h)
    mint = client.post("/v1/tokens", json={"role": "writer", "product": "gurukul"},
                       headers=h)
    _remove_forged_token(store_dir)
    return rel.status_code, mint.status_code


@pytest.mark.parametrize("workers", ["1", "2"])
def test_forged_token_row_is_refused_and_locks_the_store(store_dir: Path, tmp_path: Path,
                                                         workers: str) -> None:
    """Against the running server (one process, or HTTP workers beside the writer): the
    row is not explained by any token.issue record, so the token authenticates as
    nothing, and the store records the tampering as a lock."""
    key, saved = _saved(store_dir, tmp_path)
    with Store.open(store_dir, readonly=True) as s:
        (hold,) = s.holds()
        before = s.size()
    srv = Server(store_dir, "--workers", workers)
    try:
        with httpx.Client(base_url=srv.url) as client:
            assert _token_attack(client, store_dir, hold.id) == (401, 401)
    finally:
        assert srv.stop() == 0
    new = _records(store_dir)[before:]
    assert [(t, a) for _, t, a, _ in new] == [("governance.lock", "depository")]
    assert new[0][3]["check"] == "tamper"
    assert new[0][3]["reason"].startswith("tampering: token tok-990: its row in table token")
    with Store.open(store_dir, readonly=True) as s:
        assert [h.id for h in s.holds()] == [hold.id]  # still in force
    # Nothing was written on the forged authority: the log is honest and verifies.
    res = _verify(store_dir, key, saved)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.fixture
def trusting_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store as it was before issue 14: it takes every row in the database as what
    the log says. The offline verifier must not depend on the writer being right."""
    monkeypatch.setattr(_authority, "explain", lambda *a, **k: None)


@pytest.mark.usefixtures("trusting_writer")
def test_verify_store_names_records_written_on_a_forged_token(store_dir: Path,
                                                              tmp_path: Path) -> None:
    key, saved = _saved(store_dir, tmp_path)
    with Store.open(store_dir) as store, \
            TestClient(create_app(store), raise_server_exceptions=False) as client:
        (hold,) = store.holds()
        before = store.size()
        assert _token_attack(client, store_dir, hold.id) == (200, 201)
    new = _records(store_dir)[before:]
    assert [(t, a) for _, t, a, _ in new] == [("hold.release", "token:tok-990"),
                                               ("token.issue", "token:tok-990")]
    res = _verify(store_dir, key, saved)
    assert res.returncode == 1, res.stdout
    rel, mint = new[0][0], new[1][0]
    assert f"FAIL [authority] record {rel} (hold.release by token:tok-990): token tok-990 " \
        "was never issued" in res.stdout
    assert f"FAIL [authority] record {mint} (token.issue by token:tok-990)" in res.stdout


def _artifact_attack(store_dir: Path) -> str:
    """INSERT an artifact row for a name never stored, claiming bytes never stored."""
    conn = _db(store_dir)
    try:
        conn.execute("INSERT INTO artifact VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", (
            9990, artifact_id("gurukul", "lessons/l-9.txt"), "gurukul", "lessons/l-9.txt",
            NEVER_STORED, 3, "text/plain", "{}", "{}", "2040-01-01T00:00:00.000000Z",
            "inline", "cli", "2026-01-01T00:00:00.000000Z"))
    finally:
        conn.close()
    return artifact_id("gurukul", "lessons/l-9.txt")


def _remove_artifact_row(store_dir: Path) -> None:
    _delete_behind_the_trigger(store_dir, "artifact", "log_idx = 9990")


NEVER_STORED = hashlib.sha256(b"bytes never stored").hexdigest()


def _writer_secret(store_dir: Path) -> str:
    with Store.open(store_dir) as s:
        return s.create_token(role="writer", product="gurukul", actor="cli")[0]


def test_fake_artifact_row_is_refused_and_locks_the_store(store_dir: Path,
                                                          tmp_path: Path) -> None:
    secret = _writer_secret(store_dir)
    key, saved = _saved(store_dir, tmp_path)
    before = len(_records(store_dir))
    srv = Server(store_dir)
    try:
        _artifact_attack(store_dir)
        r = httpx.put(f"{srv.url}/v1/products/gurukul/artifacts/lessons/l-9.txt",
                      content=b"new", headers=bearer(secret))
        _remove_artifact_row(store_dir)
    finally:
        assert srv.stop() == 0
    assert r.status_code == 503 and r.json()["type"].endswith("/governance-locked")
    assert "not explained by the log" in r.json()["detail"]
    new = _records(store_dir)[before:]
    assert [(t, x["check"]) for _, t, _, x in new] == [("governance.lock", "tamper")]
    assert _verify(store_dir, key, saved).returncode == 0


@pytest.mark.usefixtures("trusting_writer")
def test_verify_store_names_a_refusal_over_bytes_never_stored(store_dir: Path,
                                                              tmp_path: Path) -> None:
    secret = _writer_secret(store_dir)
    key, saved = _saved(store_dir, tmp_path)
    with Store.open(store_dir) as store, \
            TestClient(create_app(store), raise_server_exceptions=False) as client:
        before = store.size()
        aid = _artifact_attack(store_dir)
        r = client.put("/v1/products/gurukul/artifacts/lessons/l-9.txt", content=b"new",
                       headers=bearer(secret))
        assert r.status_code == 409
        _remove_artifact_row(store_dir)
    ((n, typ, _, body),) = _records(store_dir)[before:]
    assert typ == "artifact.refused" and body["existing_sha256"] == NEVER_STORED
    res = _verify(store_dir, key, saved)
    assert res.returncode == 1, res.stdout
    assert f"FAIL [refusal] record {n} (artifact.refused of {aid}, gurukul/lessons/l-9.txt):" \
        " no earlier record stored gurukul/lessons/l-9.txt" in res.stdout


# --------------------------------------------------------------------------- crafted logs
# Each rule of the replay gets a log that breaks only that rule. The records are appended
# and *signed with the store's own key* by a "compromised writer" (the Forger), so the
# signatures, tree, nodes and derived rows are all in order: only the rule can catch them.

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass
class Base:
    path: Path
    vkey: str
    tok: dict[str, str]  # label -> token id
    idx: dict[str, int]  # label -> log index
    aid: dict[str, str]  # label -> artifact id
    sha: dict[str, str]  # label -> sha256


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    """A store used on tokens' authority the way the service uses it: every kind of record
    a token may cause, by a token of a role that may cause it."""
    path = tmp_path_factory.mktemp("authority") / "store"
    clock = Clock(T0)
    s = Store.init(path, config=store_config(), clock=clock)
    tok: dict[str, str] = {}
    idx: dict[str, int] = {}
    aid: dict[str, str] = {}
    sha: dict[str, str] = {}
    for label, role, product, expires in (
        ("writer", "writer", "gurukul", None), ("admin", "admin", None, None),
        ("legal", "legal", None, None), ("legal-avatar", "legal", "ai-avatar", None),
        ("expiring", "writer", "gurukul", T0 + timedelta(hours=1)),
        ("doomed", "writer", "gurukul", None),
    ):
        _, t = s.create_token(role=role, product=product, actor="cli", expires=expires)
        tok[label], idx[f"issue-{label}"] = t.id, t.issued_index
    w = f"token:{tok['writer']}"
    for label, name, data in (("l1", "lessons/l-1.txt", b"lesson one"),
                              ("l2", "lessons/l-2.txt", b"lesson two")):
        r = s.put("gurukul", name, data, actor=w)
        idx[label], aid[label], sha[label] = r.log_index, r.artifact_id, r.sha256
    r = s.put("gurukul", "lessons/l-3.txt", b"three", actor=f"token:{tok['expiring']}")
    idx["l3"], aid["l3"], sha["l3"] = r.log_index, r.artifact_id, r.sha256
    r = s.put("ai-avatar", "avatars/a-1.png", b"png", actor="cli")
    idx["a1"], aid["a1"], sha["a1"] = r.log_index, r.artifact_id, r.sha256
    with pytest.raises(WriteOnceError):
        s.put("gurukul", "lessons/l-1.txt", b"other bytes", actor=w)
    idx["refused"] = s.size() - 1
    legal, admin = f"token:{tok['legal']}", f"token:{tok['admin']}"
    idx["extend"] = s.extend_retention("gurukul", aid["l2"], T0 + timedelta(days=9000),
                                       actor=legal, reason="accreditation")
    with pytest.raises(RetentionError):
        s.extend_retention("gurukul", aid["l2"], T0 + timedelta(days=10), actor=legal,
                           reason="too short")
    idx["retention-refused"] = s.size() - 1
    h = s.place_hold(matter="M-1", reason="inquiry", actor=legal, artifact_ids=[aid["l1"]])
    idx["hold"] = h.placed_index
    ha = s.place_hold(matter="M-2", reason="claim", actor=f"token:{tok['legal-avatar']}",
                      product="ai-avatar")
    idx["hold-avatar"] = ha.placed_index
    idx["release"] = s.release_hold(ha.id, reason="settled", actor=admin)
    idx["lock"] = s.lock("investigation", check="manual", actor=admin)
    idx["unlock"] = s.unlock(reason="resolved", actor=admin)
    idx["revoke"] = s.revoke_token(tok["doomed"], reason="left the team", actor=admin)
    idx["export"], _ = s.append_event("evidence.export", actor=legal, product="gurukul",
                                      body={"matter": "M-1"})
    s.checkpoint()
    vkey = s.verifier_key
    s.close()
    return Base(path, vkey, tok, idx, aid, sha)


@pytest.fixture
def copy(base: Base, tmp_path: Path) -> Path:
    dest = tmp_path / "store"
    shutil.copytree(base.path, dest)
    return dest


class Forger:
    """A compromised writer: appends canonical records (leaf hash, node rows) and signs a
    checkpoint with the store's own key. Derived rows are INSERTed as the store would."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path / "depository.db", isolation_level=None)
        self.signer = (path / "keys" / "log.key").read_text().strip()
        self.origin = self.conn.execute(
            "SELECT value FROM meta WHERE key = 'origin'").fetchone()[0]

    def append(self, type_: str, actor: str, product: str | None, body: dict[str, Any],
               time: datetime) -> int:
        conn = self.conn
        n = int(conn.execute("SELECT max(idx) FROM log").fetchone()[0]) + 1
        frontier = Frontier.load(n, self._node)
        leaf = encode_record(Record(seq=n, time=format_time(time), type=type_, actor=actor,
                                    product=product, body=body))
        lh = merkle.leaf_hash(leaf)
        nodes: list[tuple[int, int, bytes]] = []
        frontier.append(lh, nodes)
        conn.execute("INSERT INTO log VALUES (?,?,?)", (n, leaf, lh))
        conn.executemany("INSERT INTO node VALUES (?,?,?)", nodes)
        root = frontier.root()
        note = sign_note(format_checkpoint(Checkpoint(self.origin, n + 1, root)), self.signer)
        conn.execute("INSERT INTO checkpoint VALUES (?,?,?,?)",
                     (n + 1, root, note, format_time(time)))
        return n

    def _node(self, level: int, k: int) -> bytes:
        if level == 0:
            row = self.conn.execute("SELECT leaf_hash FROM log WHERE idx = ?", (k,)).fetchone()
        else:
            row = self.conn.execute("SELECT hash FROM node WHERE level = ? AND k = ?",
                                    (level, k)).fetchone()
        return bytes(row[0])

    def put(self, actor: str, product: str, name: str, data: bytes, when: datetime) -> int:
        aid, sha = artifact_id(product, name), hashlib.sha256(data).hexdigest()
        retain = format_time(when + timedelta(days=7 * 366))
        n = self.append("artifact.put", actor, product, {
            "artifact_id": aid, "name": name, "sha256": sha, "size": len(data),
            "media_type": "application/octet-stream", "metadata": {}, "provenance": {},
            "retain_until": retain, "storage": "inline", "received": format_time(when)},
            when)
        self.conn.execute("INSERT INTO artifact VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", (
            n, aid, product, name, sha, len(data), "application/octet-stream", "{}", "{}",
            retain, "inline", actor, format_time(when)))
        self.conn.execute("INSERT INTO inline_blob VALUES (?,?)", (n, data))
        return n

    def release(self, actor: str, hold_id: str, matter: str, product: str | None,
                when: datetime) -> int:
        n = self.append("hold.release", actor, product,
                        {"hold_id": hold_id, "matter": matter, "reason": "forged"}, when)
        self.conn.execute("INSERT INTO hold_release VALUES (?,?,?,?,?)",
                          (hold_id, "forged", actor, n, format_time(when)))
        return n

    def issue(self, actor: str, tid: str, role: str, product: str | None,
              when: datetime, *, row: bool = True) -> int:
        digest = hashlib.sha256(f"{tid}@{when}".encode()).hexdigest()
        n = self.append("token.issue", actor, product, {
            "token_id": tid, "role": role, "expires": None, "secret_sha256": digest,
            "note": ""}, when)
        if row:
            self.conn.execute("INSERT INTO token VALUES (?,?,?,?,?,?,?,?,?)", (
                tid, role, product, None, digest, "", actor, n, format_time(when)))
        return n

    def revoke(self, actor: str, tid: str, product: str | None, when: datetime, *,
               row: bool = True) -> int:
        n = self.append("token.revoke", actor, product, {"token_id": tid, "reason": "x"},
                        when)
        if row:
            self.conn.execute("INSERT INTO token_revoke VALUES (?,?,?,?,?)",
                              (tid, "x", actor, n, format_time(when)))
        return n

    def close(self) -> None:
        self.conn.close()


@contextlib.contextmanager
def forger(path: Path) -> Iterator[Forger]:
    f = Forger(path)
    try:
        yield f
    finally:
        f.close()


LATER = T0 + timedelta(days=2)


def _result(path: Path, base: Base, jobs: int = 1) -> StoreResult:
    return store_result(path, [base.vkey], jobs=jobs)


def _only(res: StoreResult, check: str, index: int) -> Finding:
    """The result's one finding: of ``check``, naming record ``index``."""
    assert not res.ok
    assert [(f.check, f.index) for f in res.findings] == [(check, index)], \
        "\n".join(map(str, res.findings))
    return res.findings[0]


def test_tokens_used_within_their_authority_verify(base: Base) -> None:
    res = _result(base.path, base)
    assert res.ok, "\n".join(map(str, res.findings))
    (line,) = [c for c in res.checks if c.startswith("authority:")]
    # 3 puts and a refusal by writers, 2 retention records, 2 holds, a release, lock,
    # unlock, a revocation and an export: every token-authored record was judged.
    assert "authority: 13 records written on a token's authority" in line
    assert "6 tokens issued, 1 revoked" in line
    assert any(c.startswith("refusals: 2 refusal records") for c in res.checks)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_token_never_issued(base: Base, copy: Path, jobs: int) -> None:
    with forger(copy) as f:
        n = f.put("token:tok-990", "gurukul", "planted.txt", b"x", LATER)
    hit = _only(_result(copy, base, jobs), "authority", n)
    assert hit.message.startswith(f"record {n} (artifact.put by token:tok-990): token "
                                  "tok-990 was never issued")


def test_a_revoked_token(base: Base, copy: Path) -> None:
    tid = base.tok["doomed"]
    with forger(copy) as f:
        n = f.put(f"token:{tid}", "gurukul", "late.txt", b"x", LATER)
    hit = _only(_result(copy, base), "authority", n)
    assert f"token {tid} was revoked by record {base.idx['revoke']}" in hit.message


def test_an_expired_token(base: Base, copy: Path) -> None:
    tid = base.tok["expiring"]
    with forger(copy) as f:
        n = f.put(f"token:{tid}", "gurukul", "late.txt", b"x", T0 + timedelta(hours=2))
    hit = _only(_result(copy, base), "authority", n)
    assert f"token {tid} expired at 2026-03-01T01:00:00Z" in hit.message


def test_a_role_that_may_not_cause_the_record(base: Base, copy: Path) -> None:
    tid = base.tok["writer"]
    with forger(copy) as f:
        n = f.release(f"token:{tid}", f"hold-{base.idx['hold']}", "M-1", "gurukul", LATER)
    hit = _only(_result(copy, base), "authority", n)
    assert "a writer token may not cause hold.release" in hit.message


def test_a_product_outside_the_token_scope(base: Base, copy: Path) -> None:
    with forger(copy) as f:
        n = f.put(f"token:{base.tok['writer']}", "ai-avatar", "avatars/x.png", b"x", LATER)
        m = f.release(f"token:{base.tok['legal-avatar']}", f"hold-{base.idx['hold']}", "M-1",
                      "gurukul", LATER)
    res = _result(copy, base)
    assert [(x.check, x.index) for x in res.findings] == [("authority", n), ("authority", m)]
    assert "scoped to product 'gurukul', but this record is for product 'ai-avatar'" in \
        res.findings[0].message
    assert "scoped to product 'ai-avatar', but this record is for product 'gurukul'" in \
        res.findings[1].message


def test_token_issue_and_revoke_preconditions(base: Base, copy: Path) -> None:
    admin = f"token:{base.tok['admin']}"
    with forger(copy) as f:
        # (the token table cannot hold the id twice: only the record is forged)
        dup = f.issue(admin, base.tok["writer"], "writer", "gurukul", LATER, row=False)
        unscoped = f.issue(admin, "tok-a", "writer", None, LATER)
        ghost = f.revoke(admin, "tok-ghost", None, LATER)
        twice = f.revoke(admin, base.tok["doomed"], "gurukul", LATER, row=False)
    res = _result(copy, base)
    auth = [x for x in res.findings if x.check == "authority"]
    assert [x.index for x in auth] == [dup, unscoped, ghost, twice], \
        "\n".join(map(str, res.findings))
    assert "was already issued by record" in auth[0].message
    assert "must be scoped to a product" in auth[1].message
    assert "no earlier record issued token tok-ghost" in auth[2].message
    assert f"already revoked by record {base.idx['revoke']}" in auth[3].message


def test_a_minted_token_is_only_as_good_as_its_issuer(base: Base, copy: Path) -> None:
    """tok-990 (never issued) mints tok-minted: the mint is refused, and so is every
    record on the minted token's authority."""
    with forger(copy) as f:
        mint = f.issue("token:tok-990", "tok-minted", "writer", "gurukul", LATER)
        use = f.put("token:tok-minted", "gurukul", "by-minted.txt", b"m", LATER)
    res = _result(copy, base)
    assert [(x.check, x.index) for x in res.findings] == [("authority", mint),
                                                         ("authority", use)]
    assert "(token.issue by token:tok-990): token tok-990 was never issued" in \
        res.findings[0].message
    assert f"token tok-minted was issued by record {mint}, which was itself not " \
        "authorized" in res.findings[1].message


def _refusal(f: Forger, actor: str, product: str, name: str, sha: str, existing: str
             ) -> int:
    return f.append("artifact.refused", actor, product, {
        "artifact_id": artifact_id(product, name), "name": name, "sha256": sha, "size": 1,
        "reason": "write-once: the name already holds different bytes",
        "existing_sha256": existing}, LATER)


def test_artifact_refused_preconditions(base: Base, copy: Path) -> None:
    w = f"token:{base.tok['writer']}"
    other = hashlib.sha256(b"other").hexdigest()
    never = hashlib.sha256(b"never stored").hexdigest()
    with forger(copy) as f:
        nothing = _refusal(f, w, "gurukul", "lessons/none.txt", other, never)
        wrong = _refusal(f, w, "gurukul", "lessons/l-2.txt", other, never)
        same = _refusal(f, w, "gurukul", "lessons/l-2.txt", base.sha["l2"], base.sha["l2"])
    res = _result(copy, base)
    assert [(x.check, x.index) for x in res.findings] == [
        ("refusal", nothing), ("refusal", wrong), ("refusal", same)], \
        "\n".join(map(str, res.findings))
    assert "no earlier record stored gurukul/lessons/none.txt" in res.findings[0].message
    assert f"record {base.idx['l2']} stored {base.sha['l2'][:16]}" in res.findings[1].message
    assert "refuses the very bytes the name already holds" in res.findings[2].message


def test_artifact_refused_with_an_id_not_derived_from_its_name(base: Base, copy: Path
                                                            ) -> None:
    w = f"token:{base.tok['writer']}"
    with forger(copy) as f:
        n = f.append("artifact.refused", w, "gurukul", {
            "artifact_id": base.aid["l2"], "name": "lessons/other.txt",
            "sha256": hashlib.sha256(b"o").hexdigest(), "size": 1, "reason": "x",
            "existing_sha256": base.sha["l2"]}, LATER)
    hit = _only(_result(copy, base), "artifact-id", n)
    assert "not the one derived from its product and name" in hit.message


def test_retention_refused_preconditions(base: Base, copy: Path) -> None:
    legal = f"token:{base.tok['legal']}"
    aid = base.aid["l2"]
    in_force = format_time(T0 + timedelta(days=9000))
    with forger(copy) as f:
        stale = f.append("retention.refused", legal, "gurukul", {
            "artifact_id": aid, "current": format_time(T0 + timedelta(days=100)),
            "requested": format_time(T0 + timedelta(days=50)), "reason": "x"}, LATER)
        longer = f.append("retention.refused", legal, "gurukul", {
            "artifact_id": aid, "current": in_force,
            "requested": format_time(T0 + timedelta(days=9999)), "reason": "x"}, LATER)
    res = _result(copy, base)
    assert [(x.check, x.index) for x in res.findings] == [
        ("refusal", stale), ("refusal", longer)], "\n".join(map(str, res.findings))
    assert f"the log says {in_force}" in res.findings[0].message
    assert "which extends the retention" in res.findings[1].message


def test_refusal_under_a_governance_lock(base: Base, copy: Path) -> None:
    admin, w = f"token:{base.tok['admin']}", f"token:{base.tok['writer']}"
    with forger(copy) as f:
        lock = f.append("governance.lock", admin, None, {"reason": "r", "check": "manual"},
                        LATER)
        f.conn.execute("INSERT INTO governance VALUES (?,?,?,?,?)",
                       (lock, "locked", "r", admin, format_time(LATER)))
        n = _refusal(f, w, "gurukul", "lessons/l-2.txt", hashlib.sha256(b"o").hexdigest(),
                     base.sha["l2"])
    _only(_result(copy, base), "governance", n)


def test_a_hold_over_an_artifact_never_stored(base: Base, copy: Path) -> None:
    legal = f"token:{base.tok['legal']}"
    ghost = artifact_id("gurukul", "never/stored")
    with forger(copy) as f:
        n = f.append("hold.place", legal, "gurukul", {
            "hold_id": "hold-x", "matter": "M-9", "reason": "r",
            "scope": {"artifact_ids": [ghost]}}, LATER)
        f.conn.execute("INSERT INTO hold VALUES (?,?,?,?,?,?,?,?)", (
            "hold-x", "M-9", "r", legal, "gurukul", json.dumps({"artifact_ids": [ghost]},
                                                             separators=(",", ":")),
            n, format_time(LATER)))
    hit = _only(_result(copy, base), "hold", n)
    assert f"names artifact {ghost}, but no earlier record stored it" in hit.message


# --------------------------------------------------------------------------- the writer
# The store applies the same rules before it signs anything, so it never writes a record
# the replay refuses; a refused write leaves the log as it was.


@pytest.fixture
def live(base: Base, tmp_path: Path) -> Iterator[tuple[Store, Clock]]:
    dest = tmp_path / "store"
    shutil.copytree(base.path, dest)
    clock = Clock(LATER)
    s = Store.open(dest, clock=clock)
    try:
        yield s, clock
    finally:
        s.close()


@pytest.mark.parametrize(("label", "call", "why"), [
    ("doomed", lambda s, a: s.put("gurukul", "n.txt", b"n", actor=a), "was revoked by record"),
    ("expiring", lambda s, a: s.put("gurukul", "n.txt", b"n", actor=a), "expired at"),
    ("writer", lambda s, a: s.put("ai-avatar", "n.txt", b"n", actor=a),
     "scoped to product 'gurukul'"),
    ("writer", lambda s, a: s.lock("x", check="manual", actor=a),
     "a writer token may not cause governance.lock"),
    ("legal-avatar", lambda s, a: s.place_hold(matter="M", reason="r", actor=a,
                                               product="gurukul"),
     "scoped to product 'ai-avatar'"),
    ("legal", lambda s, a: s.create_token(role="admin", actor=a),
     "a legal token may not cause token.issue"),
    ("never", lambda s, a: s.put("gurukul", "n.txt", b"n", actor=a), "was never issued"),
])
def test_the_writer_refuses_what_the_log_does_not_authorize(
        live: tuple[Store, Clock], base: Base, label: str, call: Callable[[Store, str], Any],
        why: str) -> None:
    s, _ = live
    before = s.size()
    actor = f"token:{base.tok.get(label, 'tok-never')}"
    with pytest.raises(AuthorityError, match=why):
        call(s, actor)
    assert s.size() == before  # nothing logged, not even a refusal record
    assert not s.governance_status()["locked"]


def test_the_writer_refuses_a_write_once_refusal_by_a_revoked_token(
        live: tuple[Store, Clock], base: Base) -> None:
    """Authority is judged before write-once: a revoked token gets no artifact.refused."""
    s, _ = live
    before = s.size()
    with pytest.raises(AuthorityError, match="was revoked"):
        s.put("gurukul", "lessons/l-1.txt", b"other", actor=f"token:{base.tok['doomed']}")
    assert s.size() == before


def test_a_revocation_survives_its_row_being_deleted(
        live: tuple[Store, Clock], base: Base) -> None:
    s, _ = live
    tid = base.tok["writer"]
    s.revoke_token(tid, reason="left", actor=f"token:{base.tok['admin']}")
    # the attacker un-revokes the token in the database
    _delete_behind_the_trigger(s.path, "token_revoke", f"token_id = '{tid}'")
    with pytest.raises(AuthorityError, match="was revoked"):
        s.put("gurukul", "n.txt", b"n", actor=f"token:{tid}")


def test_an_inserted_token_row_locks_the_store(live: tuple[Store, Clock]) -> None:
    s, _ = live
    _insert_forged_token(s.path, "admin")
    before = s.size()
    assert s.authenticate(FORGED_SECRET, LATER) is None
    with pytest.raises(GovernanceLockedError, match="tampering: token tok-990"):
        s.release_hold(f"hold-{s.holds()[0].placed_index}", reason="r", actor="token:tok-990")
    assert s.size() == before + 1
    rec = s.record(before)
    assert (rec.type, rec.actor, rec.body["check"]) == ("governance.lock", "depository",
                                                         "tamper")
    assert "record 990 is missing or unreadable, not the token.issue it claims" in \
        rec.body["reason"]


def test_an_inserted_revocation_row_for_a_live_token_locks_the_store(
        live: tuple[Store, Clock], base: Base) -> None:
    s, _ = live
    tid = base.tok["writer"]
    conn = _db(s.path)
    try:
        conn.execute("INSERT INTO token_revoke VALUES (?,?,?,?,?)",
                     (tid, "x", "mallory", base.idx["l1"], "2026-01-01T00:00:00Z"))
    finally:
        conn.close()
    with pytest.raises(GovernanceLockedError, match="its revocation row"):
        s.put("gurukul", "n.txt", b"n", actor=f"token:{tid}")


def test_an_inserted_artifact_row_is_not_a_write_once_decision(
        live: tuple[Store, Clock]) -> None:
    s, _ = live
    _artifact_attack(s.path)
    before = s.size()
    with pytest.raises(GovernanceLockedError, match=r"artifact art_.*not explained by the log"):
        s.put("gurukul", "lessons/l-9.txt", b"new", actor="cli")
    assert [s.record(i).type for i in range(before, s.size())] == ["governance.lock"]
    # A real committed row still decides as before: a duplicate, and a refusal.
    s.unlock(reason="row removed", actor="cli")
    _remove_artifact_row(s.path)
    assert s.put("gurukul", "lessons/l-1.txt", b"lesson one", actor="cli").duplicate
    with pytest.raises(WriteOnceError):
        s.put("gurukul", "lessons/l-1.txt", b"other", actor="cli")


def test_an_inserted_hold_row_cannot_be_released(live: tuple[Store, Clock]) -> None:
    s, _ = live
    conn = _db(s.path)
    try:
        conn.execute("INSERT INTO hold VALUES (?,?,?,?,?,?,?,?)", (
            "hold-999", "M-X", "r", "mallory", "gurukul", '{"artifact_ids":[]}', 999,
            "2026-01-01T00:00:00.000000Z"))
    finally:
        conn.close()
    before = s.size()
    with pytest.raises(GovernanceLockedError, match="hold hold-999: its row in table hold"):
        s.release_hold("hold-999", reason="r", actor="cli")
    assert [s.record(i).type for i in range(before, s.size())] == ["governance.lock"]


def test_an_inserted_release_row_does_not_free_a_held_artifact(tmp_path: Path) -> None:
    """The disposal decision: a hold stays in force until the log releases it."""
    clock = Clock(T0)
    with Store.init(tmp_path / "store", config=store_config(), clock=clock) as s:
        r = s.put("gurukul", "held.txt", b"held", actor="cli")
        hold = s.place_hold(matter="M-3", reason="r", actor="cli",
                            artifact_ids=[r.artifact_id])
        clock.now = T0 + timedelta(days=9 * 366)  # long after its retention
        conn = _db(s.path)
        try:
            conn.execute("INSERT INTO hold_release VALUES (?,?,?,?,?)",
                         (hold.id, "x", "mallory", 99999, format_time(clock.now)))
        finally:
            conn.close()
        before = s.size()
        with pytest.raises(GovernanceLockedError, match=f"hold {hold.id}: its release row"):
            s.dispose(actor="cli", artifact_ids=[r.artifact_id])
        assert [s.record(i).type for i in range(before, s.size())] == ["governance.lock"]
        assert s.get("gurukul", "held.txt").sha256 == r.sha256
        assert not s.get("gurukul", "held.txt").disposed
