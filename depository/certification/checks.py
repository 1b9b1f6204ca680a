"""The executed checks behind every guarantee, refusal, threat and failure scenario.

Each check runs now, against the real store (read-only) or a scratch copy of the snapshot
taken right after the certification checkpoint, and records what ran, what it expected,
what it observed, and evidence (log records of the store or of the copy, proof files).
Drills that change state (overwrite attempts, locks, tampering) only ever touch copies.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from depository.certification._framework import (
    CheckContext,
    CheckFn,
    CheckResult,
    Missing,
    Recorder,
    replace_file,
    run_check,
)
from depository.signing import generate_key, sign_note
from depository.store import (
    AuthorityError,
    GovernanceLockedError,
    MetadataError,
    NotFoundError,
    QuotaError,
    RetentionError,
    SchemaMismatchError,
    Store,
    StoreError,
    WriteOnceError,
    format_time,
    schema_fingerprint,
)
from depository.store.config import default_config_dict
from depository.tlog import merkle
from depository.tlog.checkpoint import (
    Checkpoint,
    format_checkpoint,
    verify_checkpoint,
    verify_proof_file,
)
from depository.tlog.errors import VerificationError
from depository.tlog.record import canonical_json, encode_record, parse_record

__all__ = ["CHECKS", "CheckSpec", "run_checks"]

FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)
SEVEN_YEARS_DAYS = 7 * 365
DRILL = "certification-drill"


@dataclass(frozen=True)
class CheckSpec:
    id: str
    title: str
    target: str
    fn: CheckFn


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[], Any]:
    """A thunk for ``fn(*args, **kwargs)`` with the arguments bound now."""
    return lambda: fn(*args, **kwargs)


def _first_product(store: Store, prefer: str = "") -> str:
    products = sorted(store.config.products)
    return prefer if prefer in products else products[0]


def _drill_put(store: Store, product: str, name: str, data: bytes, **kw: Any) -> Any:
    return store.put(product, f"{DRILL}/{name}", data, actor=kw.pop("actor", "certify"), **kw)


def _sql_refused(rec: Recorder, db: Path, sql: str, label: str) -> None:
    """Run ``sql`` directly on a copy's database; it must be refused by a trigger. A
    statement that matches no row fires no trigger, so the table must have rows."""
    conn = sqlite3.connect(db)
    try:
        table = sql.replace("DELETE FROM", "UPDATE").split()[1]
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if not rec.expect(f"the {table} table has rows to exercise", rows > 0, f"{rows} rows",
                          "at least one"):
            return
        rec.refused(f"SQL on the copy's database: {sql}", lambda: conn.execute(sql),
                    sqlite3.IntegrityError, expected=f"refused by a WORM trigger ({label})",
                    match="depository:")
        left = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        rec.expect(f"the {table} rows are unchanged", left == rows, f"{left} rows", f"{rows}")
    finally:
        conn.close()


def _verified(fn: Callable[[], Any]) -> tuple[bool, str]:
    """Run a verifier: (True, "") when it returns, (False, why) when it raises."""
    try:
        fn()
    except (VerificationError, ValueError) as exc:
        return False, f"{type(exc).__name__}: {exc}"[:300]
    return True, ""


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _need_service(ctx: CheckContext, what: str) -> None:
    if ctx.service_factory is None:
        raise Missing(f"the HTTP service is not installed, so {what} cannot be exercised "
                      "against it")


def _real_artifact(store: Store) -> Any | None:
    arts = store.ls(limit=1)
    return arts[0] if arts else None


# ============================================================== store state and replay
def check_store_state(ctx: CheckContext, rec: Recorder) -> str:
    with Store.open(ctx.store_dir, readonly=True) as store:
        status = store.governance_status()
        rec.expect("read the store's governance state", not status["locked"],
                   f"locked: {status['reason']}" if status["locked"] else "not locked",
                   "not under a governance lock")
        _size, note = store.latest_checkpoint()
        cp: Checkpoint | None = None
        try:
            cp, _ = verify_checkpoint(note, [ctx.verifier_key], origin=ctx.origin)
            sig_ok, observed = True, f"{cp.origin} size {cp.size}"
        except VerificationError as exc:
            sig_ok, observed = False, f"{exc}"[:300]
        rec.expect("the store's latest checkpoint verifies with the trusted log key",
                   sig_ok, observed, f"a signature by {ctx.verifier_key.split('+')[0]}")
        if cp is None:
            return "the store's latest checkpoint does not verify"
        root = store.root_at(cp.size) if cp.size <= store.size() else b""
        rec.expect("the root recomputed from the store's log records equals the latest "
                   "checkpoint's signed root", root == cp.root_hash,
                   root.hex() or f"the log has only {store.size()} records",
                   cp.root_hash.hex())
        if ctx.certification_index is not None:
            rec.expect("the latest checkpoint covers the certification.run record",
                       cp.size > ctx.certification_index, f"size {cp.size}",
                       f"more than index {ctx.certification_index}")
        if cp.size == ctx.checkpoint_size:
            ok, why = cp.root_hash == ctx.checkpoint_root, "same size, different root"
        elif cp.size > ctx.checkpoint_size:
            proof = store.consistency_proof(ctx.checkpoint_size, cp.size)
            ok, why = _verified(_call(merkle.verify_consistency, ctx.checkpoint_size,
                                      cp.size, proof, ctx.checkpoint_root, cp.root_hash))
        else:
            ok, why = False, "the latest checkpoint is older than the certification's"
        rec.expect("the latest checkpoint extends the certification checkpoint (RFC 6962 "
                   "consistency)", ok, f"{ctx.checkpoint_size} -> {cp.size}"
                   + (f": {why}" if not ok else ""), "consistent")
        rec.add_evidence("checkpoint", "checkpoint.txt", size=ctx.checkpoint_size)
    return ("the store is open for writes, and its latest checkpoint is signed by the log "
            "key, matches the stored log and extends the certification checkpoint")


def check_replay(ctx: CheckContext, rec: Recorder) -> str:
    res = ctx.replay(ctx.snapshot, since=ctx.previous_checkpoint)
    ctx.replay_ok = bool(res.ok)
    shown = "; ".join(str(f) for f in res.findings[:5])
    rec.expect(
        "offline verifier replays the snapshot (every record, node, checkpoint, derived "
        "row, blob, SQLite integrity, schema fingerprint)"
        + (" since the previous certification's checkpoint" if ctx.previous_checkpoint else ""),
        bool(res.ok),
        f"verified: {res.size} records, {res.checkpoints} checkpoints, {res.artifacts} "
        f"artifacts, {res.blobs_checked} blobs" if res.ok
        else f"{res.findings_total} findings: {shown}",
        "no findings",
    )
    rec.expect("replayed log covers the certification checkpoint",
               res.size >= ctx.checkpoint_size, f"{res.size} records",
               f">= {ctx.checkpoint_size} records")
    for f in res.findings[:20]:
        rec.add_evidence("finding", f"replay:{f.check}", message=f.message, index=f.index,
                         artifact_id=f.artifact_id, table=f.table)
    rec.add_evidence("checkpoint", "checkpoint.txt", size=res.latest_checkpoint_size)
    return (f"the offline verifier replayed {res.size} records and {res.checkpoints} signed "
            f"checkpoints: {'no findings' if res.ok else f'{res.findings_total} findings'}")


# ============================================================== tamper drill (G2, T8)
class _Tampered:
    """A copy's database with its WORM triggers dropped for the edit and re-created after,
    as an attacker with file access would (so the schema fingerprint still matches)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path / "depository.db", isolation_level=None)
        self.triggers = [r[0] for r in self.conn.execute(
            "SELECT sql FROM sqlite_master WHERE type='trigger' ORDER BY name")]
        for (name,) in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
            self.conn.execute(f'DROP TRIGGER "{name}"')

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        for sql in self.triggers:
            self.conn.execute(sql)
        self.conn.close()


def _last_put(conn: sqlite3.Connection) -> tuple[int, bytes] | None:
    for idx, leaf in conn.execute("SELECT idx, leaf FROM log ORDER BY idx DESC"):
        rec = parse_record(bytes(leaf), index=int(idx))
        if rec.type == "artifact.put":
            return int(idx), bytes(leaf)
    return None


def _edited_leaf(leaf: bytes, index: int) -> bytes:
    rec = parse_record(leaf, index=index)
    body = dict(rec.body)
    body["provenance"] = {**dict(body.get("provenance", {})), "author": "mallory"}
    return encode_record(type(rec)(seq=rec.seq, time=rec.time, type=rec.type, actor=rec.actor,
                                   product=rec.product, body=body))


def _tamper_edit_record(path: Path, ctx: CheckContext) -> str:
    with _Tampered(path) as conn:
        idx, leaf = _last_put(conn) or (0, b"")
        new = _edited_leaf(leaf, idx)
        conn.execute("UPDATE log SET leaf = ?, leaf_hash = ? WHERE idx = ?",
                     (new, merkle.leaf_hash(new), idx))
    return f"record {idx} (artifact.put) rewritten with new provenance, leaf hash recomputed"


def _tamper_delete_record(path: Path, ctx: CheckContext) -> str:
    with _Tampered(path) as conn:
        n = conn.execute("SELECT max(idx) FROM log").fetchone()[0]
        conn.execute("DELETE FROM log WHERE idx = ?", (n,))
    return f"the last record ({n}) deleted"


def _tamper_swap(path: Path, ctx: CheckContext) -> str:
    with _Tampered(path) as conn:
        rows = conn.execute("SELECT idx, leaf, leaf_hash FROM log ORDER BY idx DESC LIMIT 2"
                            ).fetchall()
        (i, a, ha), (j, b, hb) = rows
        conn.execute("UPDATE log SET leaf = ?, leaf_hash = ? WHERE idx = ?", (b, hb, i))
        conn.execute("UPDATE log SET leaf = ?, leaf_hash = ? WHERE idx = ?", (a, ha, j))
    return f"records {j} and {i} swapped"


def _tamper_derived(path: Path, ctx: CheckContext) -> str:
    with _Tampered(path) as conn:
        row = conn.execute("SELECT id FROM artifact ORDER BY log_idx DESC LIMIT 1").fetchone()
        conn.execute("UPDATE artifact SET provenance = ? WHERE id = ?",
                     ('{"author":"mallory"}', row[0]))
    return f"artifact row {row[0]}: provenance column edited (its record untouched)"


def _tamper_blob(path: Path, ctx: CheckContext) -> str:
    with _Tampered(path) as conn:
        row = conn.execute("SELECT a.id, a.sha256, a.storage, a.log_idx FROM artifact a WHERE "
                           "NOT EXISTS (SELECT 1 FROM disposal d WHERE d.artifact_id = a.id) "
                           "ORDER BY a.log_idx DESC LIMIT 1").fetchone()
        aid, sha, storage, idx = row
        if storage == "inline":
            conn.execute("UPDATE inline_blob SET data = ? WHERE log_idx = ?",
                         (b"tampered bytes", idx))
            return f"artifact {aid}: inline bytes replaced"
    replace_file(path / "objects" / sha[:2] / sha[2:4] / sha, b"tampered bytes")
    return f"artifact {aid}: blob file replaced"


def _tamper_forge_checkpoint(path: Path, ctx: CheckContext) -> str:
    with _Tampered(path) as conn:
        size, root = conn.execute(
            "SELECT size, root FROM checkpoint ORDER BY size DESC LIMIT 1").fetchone()
        signer, _ = generate_key(ctx.origin)  # the attacker's key, under the log's name
        note = sign_note(format_checkpoint(Checkpoint(ctx.origin, int(size), bytes(root))),
                         signer)
        conn.execute("UPDATE checkpoint SET note = ? WHERE size = ?", (note, size))
    return f"checkpoint {size} re-signed with a key that is not the log's"


def _tamper_node(path: Path, ctx: CheckContext) -> str:
    with _Tampered(path) as conn:
        row = conn.execute("SELECT level, k FROM node ORDER BY level DESC, k LIMIT 1"
                           ).fetchone()
        if row is None:
            raise Missing("the log has no interior nodes to tamper with")
        conn.execute("UPDATE node SET hash = ? WHERE level = ? AND k = ?",
                     (hashlib.sha256(b"forged").digest(), row[0], row[1]))
    return f"stored subtree hash (level {row[0]}, k {row[1]}) replaced"


def _recompute_tree(conn: sqlite3.Connection, signer: str, origin: str) -> None:
    leaves = [bytes(r[0]) for r in conn.execute("SELECT leaf_hash FROM log ORDER BY idx")]
    conn.execute("DELETE FROM node")
    level, row = 0, leaves
    while len(row) > 1:
        nxt = [merkle.node_hash(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
        level += 1
        conn.executemany("INSERT INTO node VALUES (?,?,?)",
                         [(level, k, h) for k, h in enumerate(nxt)])
        row = nxt
    for (size,) in conn.execute("SELECT size FROM checkpoint").fetchall():
        root = merkle.root(leaves[: int(size)])
        note = sign_note(format_checkpoint(Checkpoint(origin, int(size), root)), signer)
        conn.execute("UPDATE checkpoint SET root = ?, note = ? WHERE size = ?",
                     (root, note, size))


def _tamper_rewrite_with_key(path: Path, ctx: CheckContext) -> str:
    key_file = ctx.copy_signer(path)
    if ctx.throwaway_key or key_file is None:
        raise Missing("the log signer key is not available to stage a key-holder rewrite")
    signer = key_file.read_text().strip()
    with _Tampered(path) as conn:
        idx, leaf = _last_put(conn) or (0, b"")
        new = _edited_leaf(leaf, idx)
        conn.execute("UPDATE log SET leaf = ?, leaf_hash = ? WHERE idx = ?",
                     (new, merkle.leaf_hash(new), idx))
        body = parse_record(new, index=idx).body
        conn.execute("UPDATE artifact SET provenance = ? WHERE id = ?",
                     (canonical_json(dict(body["provenance"])).decode(), body["artifact_id"]))
        _recompute_tree(conn, signer, ctx.origin)
    return (f"record {idx} rewritten, the whole tree recomputed and every checkpoint "
            "re-signed with the real log key (attacker holding files and key); checked "
            "against the certification checkpoint")


_TAMPERS: tuple[tuple[str, Callable[[Path, CheckContext], str], bool], ...] = (
    ("edit a record", _tamper_edit_record, False),
    ("delete the last record", _tamper_delete_record, False),
    ("swap two records", _tamper_swap, False),
    ("edit a derived row", _tamper_derived, False),
    ("replace an artifact's bytes", _tamper_blob, False),
    ("forge a checkpoint signature", _tamper_forge_checkpoint, False),
    ("edit a stored subtree hash", _tamper_node, False),
    ("rewrite history with the key", _tamper_rewrite_with_key, True),
)


def check_tamper_drill(ctx: CheckContext, rec: Recorder) -> str:
    # The baseline must verify, or "caught" proves nothing.
    base_path = ctx.copy("tamper-base")
    seeded = False
    signer = ctx.copy_signer(base_path)
    if ctx.throwaway_key:
        raise Missing("the log signer key is not available, so copies cannot be written and "
                      "re-verified; pass --signer-key")
    with Store.open(base_path, signer_key_file=signer) as s:
        if len(s.ls(limit=2)) < 2:
            p = _first_product(s)
            _drill_put(s, p, "tamper-a", b"drill a", provenance={"author": "certify"})
            _drill_put(s, p, "tamper-b", b"drill b" * 20_000, provenance={"author": "certify"})
            seeded = True
        s.checkpoint()
        _, saved = s.latest_checkpoint()
    if seeded:
        rec.note("the store had fewer than two artifacts; two drill artifacts were added to "
                 "the copies first")
    base = ctx.replay(base_path)
    if not rec.expect("baseline: the untampered copy verifies", bool(base.ok),
                      "verified" if base.ok else "; ".join(str(f) for f in base.findings[:3]),
                      "no findings"):
        return "the untampered copy does not verify, so the drill cannot show detection"
    caught = 0
    for label, fn, with_since in _TAMPERS:
        path = ctx.copy("tamper", source=base_path)  # from the (possibly seeded) baseline
        try:
            what = fn(path, ctx)
        except Missing as exc:
            rec.note(f"{label}: not staged ({exc})")
            continue
        res = ctx.replay(path, since=saved if with_since else None)
        first = str(res.findings[0]) if res.findings else ""
        if rec.expect(f"tamper: {what}", not res.ok,
                      f"caught: {first}" if not res.ok else "NOT caught: replay verified",
                      "the offline verifier reports it"):
            caught += 1
        rec.add_evidence("tamper", label, caught=not res.ok, finding=first[:300])
    # Rollback: an older copy against a later saved checkpoint.
    newer = ctx.copy("rollback-newer", source=base_path)
    with Store.open(newer, signer_key_file=ctx.copy_signer(newer)) as s:
        _drill_put(s, _first_product(s), "rollback", b"written after the backup")
        later = s.checkpoint()
    res = ctx.replay(base_path, since=later)
    if rec.expect("tamper: restore an older copy (rollback) and check it against a checkpoint "
                  "saved after later writes", not res.ok,
                  f"caught: {res.findings[0]}" if not res.ok else "NOT caught",
                  "the offline verifier reports it"):
        caught += 1
    rec.add_evidence("tamper", "rollback", caught=not res.ok,
                     finding=str(res.findings[0])[:300] if res.findings else "")
    return f"{caught} tamperings staged on copies, every one reported by the offline verifier"


# ============================================================== G1 write-once
def check_write_once(ctx: CheckContext, rec: Recorder) -> str:
    with ctx.open_copy("write-once", rec) as s:
        p = _first_product(s, "gurukul")
        r = _drill_put(s, p, "write-once", b"original bytes", metadata={"v": 1})
        size = s.size()
        rec.refused("put different bytes under an existing name (an update)",
                    lambda: _drill_put(s, p, "write-once", b"changed bytes"), WriteOnceError,
                    expected="refused (WriteOnceError)")
        last = s.record(s.size() - 1)
        rec.expect("the attempt is logged", last.type == "artifact.refused"
                   and s.size() == size + 1, f"record {last.seq}: {last.type}",
                   "an artifact.refused record")
        rec.record_evidence(s, last.seq, "copy")
        with s.open_content(s.get(p, f"{DRILL}/write-once")) as f:
            data = f.read()
        rec.expect("the original bytes are intact", data == b"original bytes",
                   "unchanged" if data == b"original bytes" else "CHANGED")
        later = datetime.fromisoformat(r.retain_until.replace("Z", "+00:00")) - timedelta(days=1)
        rec.refused("shorten the artifact's retention (a partial delete)",
                    lambda: s.extend_retention(p, r.artifact_id, later, actor="certify",
                                               reason="drill"), RetentionError)
        rec.record_evidence(s, s.size() - 1, "copy")
        rec.refused("dispose of it before its retention ran out (a delete)",
                    lambda: s.dispose(datetime.now(UTC), actor="certify",
                                      artifact_ids=[r.artifact_id]), RetentionError)
        # Rows in every derived table, so the SQL attempts below have something to hit.
        s.extend_retention(p, r.artifact_id, FAR_FUTURE, actor="certify", reason="drill")
        s.place_hold(matter="CERT-DRILL-0", reason="drill", actor="certify",
                     artifact_ids=[r.artifact_id])
        s.lock("certification drill", check="manual", actor="certify")
        s.unlock(reason="certification drill", actor="certify")
        _http_no_update(ctx, rec, s, p, f"{DRILL}/write-once", r.artifact_id,
                        b"original bytes")
        db = s.path / "depository.db"
        for sql, label in (
            ("UPDATE artifact SET name = 'renamed'", "artifact update"),
            ("DELETE FROM artifact", "artifact delete"),
            ("UPDATE log SET leaf = x'00'", "log update"),
            ("DELETE FROM log", "log delete"),
            ("UPDATE checkpoint SET note = x'00'", "checkpoint update"),
            ("DELETE FROM node", "node delete"),
            ("UPDATE inline_blob SET data = x'00'", "inline blob update"),
            ("DELETE FROM inline_blob", "undisposed inline blob delete"),
            ("UPDATE retention SET retain_until = '2000-01-01'", "retention update"),
            ("DELETE FROM hold", "hold delete"),
            ("DELETE FROM governance", "governance delete"),
        ):
            _sql_refused(rec, db, sql, label)
    return ("updates and deletes were attempted through the API and directly in SQLite on a "
            "copy; every one was refused and the API attempts were logged")


def _http_no_update(ctx: CheckContext, rec: Recorder, s: Store, p: str, name: str, aid: str,
                    original: bytes) -> None:
    """Every way to change or remove an artifact or a log record over the running service
    (every HTTP method on its routes, with the strongest token there is) is refused, and
    the bytes are unchanged afterwards."""
    _need_service(ctx, "updates and deletes over HTTP")
    from urllib.parse import quote

    admin, _ = s.create_token(role="admin", actor="certify", note="write-once drill")
    writer, _ = s.create_token(role="writer", product=p, actor="certify",
                               note="write-once drill")
    art = f"/v1/products/{p}/artifacts/{quote(name)}"
    size = s.size()

    async def drill(c: Any) -> None:
        attempts = [(m, path, tok) for path in (art, f"/v1/artifacts/{aid}",
                                                "/v1/log/entries", f"/v1/products/{p}/artifacts")
                    for m in ("DELETE", "PATCH", "POST") for tok in (admin, writer)]
        attempts.append(("PUT", f"/v1/artifacts/{aid}", writer))
        bad = []
        for method, path, tok in attempts:
            r = await c.request(method, path, content=b"changed", headers=_bearer(tok))
            if r.status_code < 400:
                bad.append(f"{method} {path} -> {r.status_code}")
        rec.expect(f"HTTP: {len(attempts)} DELETE/PATCH/POST/PUT attempts on the artifact "
                   "(by name and by id), its listing and the log, as admin and as writer",
                   not bad, "; ".join(bad[:4]) if bad else "every one refused (4xx)",
                   "every one refused")
        put = await c.put(art, content=b"changed bytes", headers=_bearer(writer))
        rec.expect("HTTP: PUT other bytes under the name", put.status_code == 409,
                   f"HTTP {put.status_code}", "409 (write-once)")
        got = await c.get(art, headers=_bearer(writer))
        rec.expect("HTTP: the artifact still serves its original bytes",
                   got.status_code == 200 and got.content == original,
                   "unchanged" if got.content == original else f"HTTP {got.status_code}, "
                   f"{len(got.content)} bytes differing from the original", "unchanged")

    _http(ctx, s, drill)
    rec.expect("no log record was removed by the attempts", s.size() >= size,
               f"log size {s.size()}", f">= {size}")


def _leaf_hashes(s: Store, n: int) -> list[bytes]:
    return [merkle.leaf_hash(leaf) for _, leaf in s.log_entries(0, n)]


# ============================================================== G2 retention
def check_audit_retention(ctx: CheckContext, rec: Recorder) -> str:
    with Store.open(ctx.snapshot, readonly=True) as ro:
        init = ro.record(0)
        days = int(init.body.get("default_retention_days", 0))
        rec.expect("the init record fixes the minimum retention", days >= SEVEN_YEARS_DAYS,
                   f"default_retention_days = {days} ({days / 365.25:.2f} years)",
                   f">= {SEVEN_YEARS_DAYS} days (7 years)")
        rec.record_evidence(ro, 0, "store")
        rec.expect("the configuration matches the init record",
                   ro.config.default_retention_days == days,
                   f"configured {ro.config.default_retention_days} days", f"{days} days")
        short = [a.id for a in ro.ls(limit=10_000)
                 if a.retain_until < _plus_days(a.created, days, -1)]
        rec.expect("every artifact's retention meets the minimum", not short,
                   "all meet it" if not short else f"short: {short[:5]}",
                   "retain_until >= created + minimum")
    with ctx.open_copy("retention", rec) as s:
        p = _first_product(s)
        rec.refused("put with a retention below the minimum",
                    lambda: _drill_put(s, p, "short", b"x",
                                       retain_until=datetime.now(UTC) + timedelta(days=30)),
                    RetentionError, match="minimum")
        before = s.size()
        hashes = _leaf_hashes(s, before)
        root = s.root_at(before)
        r = _drill_put(s, p, "retained", b"x")
        rec.refused("dispose a fresh artifact",
                    lambda: s.dispose(datetime.now(UTC), actor="certify",
                                      artifact_ids=[r.artifact_id]), RetentionError)
        # Every state-changing operation there is, including a disposal once retention has
        # run out (the store's clock moved forward on this copy): the log only grows.
        with contextlib.suppress(WriteOnceError):
            _drill_put(s, p, "retained", b"y")
        s.extend_retention(p, r.artifact_id, FAR_FUTURE - timedelta(days=1), actor="certify",
                           reason="drill")
        hold = s.place_hold(matter="CERT-DRILL-R", reason="drill", actor="certify",
                            artifact_ids=[r.artifact_id])
        s.release_hold(hold.id, reason="drill", actor="certify")
        _, tok = s.create_token(role="reader", product=p, actor="certify", note="drill")
        s.revoke_token(tok.id, reason="drill", actor="certify")
        s.lock("retention drill", check="manual", actor="certify")
        s.unlock(reason="retention drill", actor="certify")
        s.clock = lambda: FAR_FUTURE
        disposed: list[int] = []
        try:
            disposed = s.dispose(FAR_FUTURE, actor="certify", artifact_ids=[r.artifact_id])
        except RetentionError as exc:  # a product-wide hold of the store covers it too
            rec.note(f"the drill disposal was refused ({exc}); the other operations ran")
        s.checkpoint()
        after = s.size()
        kept = _leaf_hashes(s, before)
        changed = [i for i, (a, b) in enumerate(zip(hashes, kept, strict=False)) if a != b]
        rec.expect(f"after put, refused put, retention extension, hold place and release, "
                   f"token issue and revoke, lock, unlock and a disposal "
                   f"({len(disposed)} record), every one of the {before} earlier log records "
                   "is still there, byte for byte",
                   after > before and len(kept) == before and not changed,
                   f"log {before} -> {after} records; changed or missing: "
                   f"{changed[:5] or (before - len(kept)) or 'none'}", "all kept")
        ok, why = _verified(_call(merkle.verify_consistency, before, after,
                                  s.consistency_proof(before, after), root, s.root_at(after)))
        rec.expect("the log after the drill is an append-only extension (RFC 6962 "
                   f"consistency {before} -> {after})", ok, why or "consistent",
                   "consistent")
    return f"minimum retention {days} days is frozen in the init record and enforced"


def _plus_days(t: str, days: int, slack_days: int) -> str:
    base = datetime.fromisoformat(t.replace("Z", "+00:00"))
    return format_time(base + timedelta(days=days + slack_days))


# ============================================================== G3 schema frozen
def check_schema_frozen(ctx: CheckContext, rec: Recorder) -> str:
    db = ctx.store_dir / "depository.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        live = schema_fingerprint(conn)
    finally:
        conn.close()
    with Store.open(ctx.store_dir, readonly=True) as ro:
        init = ro.record(0)
        rec.record_evidence(ro, 0, "store")
        rec.expect("the store's SQL schema (tables, indexes, WORM triggers) matches record 0",
                   live == init.body.get("sql_schema_sha256"), f"sha256 {live}",
                   f"sha256 {init.body.get('sql_schema_sha256')}")
        frozen = hashlib.sha256(canonical_json(ro.config.frozen_json())).hexdigest()
        rec.expect("the products' configuration matches record 0",
                   frozen == init.body.get("frozen_config_sha256"), f"sha256 {frozen}",
                   f"sha256 {init.body.get('frozen_config_sha256')}")
        for pid, prod in sorted(ro.config.products.items()):
            want = init.body.get("products", {}).get(pid, {}).get("metadata_schema_sha256")
            rec.expect(f"product {pid}: metadata schema matches record 0",
                       prod.schema_sha256() == want, f"sha256 {prod.schema_sha256()}",
                       f"sha256 {want}")
    # Drill 1: a changed product schema on a copy.
    path = ctx.copy("schema-change")
    original = (path / "depository.yaml").read_text()
    cfg = yaml.safe_load(original)
    pid = sorted(cfg["products"])[0]
    cfg["products"][pid]["metadata_schema"] = {"type": "object", "required": ["drill"]}
    (path / "depository.yaml").write_text(yaml.safe_dump(cfg))
    signer = ctx.copy_signer(path)
    rec.refused(f"open a copy whose product {pid} schema was changed",
                lambda: Store.open(path, signer_key_file=signer).close(), SchemaMismatchError)
    (path / "depository.yaml").write_text(original)
    with Store.open(path, signer_key_file=signer) as s:
        status = s.governance_status()
        rec.expect("the refusal is recorded as a governance lock", bool(status["locked"]),
                   f"locked: {status['reason']}" if status["locked"] else "not locked")
        lock_idx = status["history"][-1]["log_index"] if status["history"] else None
        if lock_idx is not None:
            rec.record_evidence(s, lock_idx, "copy")
        rec.refused("write after the configuration was restored (lock stays)",
                    lambda: _drill_put(s, pid, "after", b"x"), GovernanceLockedError)
        s.unlock(reason="certification drill: configuration restored", actor="certify")
        rec.expect("an admin unlock with a reason is logged",
                   s.record(s.size() - 1).type == "governance.unlock",
                   s.record(s.size() - 1).type, "governance.unlock")
    # Drill 2: a dropped trigger.
    path2 = ctx.copy("schema-trigger")
    c = sqlite3.connect(path2 / "depository.db")
    trig = c.execute("SELECT name FROM sqlite_master WHERE type='trigger' ORDER BY name LIMIT 1"
                     ).fetchone()[0]
    c.execute(f'DROP TRIGGER "{trig}"')
    c.close()
    signer2 = ctx.copy_signer(path2)
    rec.refused(f"open a copy whose WORM trigger {trig} was dropped",
                lambda: Store.open(path2, signer_key_file=signer2).close(),
                SchemaMismatchError, match="schema")
    return "the live schema matches the one frozen at init; changes are refused and lock"


# ============================================================== G4 provenance
def check_provenance(ctx: CheckContext, rec: Recorder) -> str:
    with Store.open(ctx.snapshot, readonly=True) as ro:
        art = _real_artifact(ro)
        if art is not None:
            leaf = dict(ro.log_entries(art.log_index, art.log_index + 1))[art.log_index]
            body = parse_record(leaf, index=art.log_index).body
            rec.expect(f"stored provenance of {art.product}/{art.name} equals its signed record "
                       f"{art.log_index}", dict(body["provenance"]) == dict(art.provenance),
                       json.dumps(dict(art.provenance))[:200], "identical")
            if art.log_index < ctx.checkpoint_size:
                proof = ro.proof_file(art.log_index, ctx.checkpoint_size)
                name = f"provenance-{art.log_index}"
                (ctx.evidence_dir / f"{name}.tlog-proof").write_bytes(proof)
                (ctx.evidence_dir / f"{name}.leaf.json").write_bytes(leaf)
                got: list[Checkpoint] = []
                ok, why = _verified(lambda: got.append(verify_proof_file(
                    proof, merkle.leaf_hash(leaf), [ctx.verifier_key])))
                rec.expect("a tlog-proof of that record verifies offline against the "
                           "certification checkpoint",
                           ok and got[0].size == ctx.checkpoint_size,
                           f"included at {art.log_index} of {got[0].size}" if ok else why,
                           "verified")
                rec.add_evidence("file", f"evidence/{name}.tlog-proof", index=art.log_index)
                rec.add_evidence("file", f"evidence/{name}.leaf.json", index=art.log_index)
        else:
            rec.note("the store holds no artifact yet; provenance was exercised on a drill "
                     "artifact only")
    with ctx.open_copy("provenance", rec) as s:
        p = art.product if art is not None else _first_product(s)
        r = _drill_put(s, p, "provenance", b"evidence", provenance={"author": "alice",
                                                                      "tool": "certify"})
        dup = _drill_put(s, p, "provenance", b"evidence", provenance={"author": "mallory"})
        now = s.get(p, r.artifact_id).provenance
        rec.expect("re-put with the same bytes and new provenance", dup.duplicate and
                   dict(now) == {"author": "alice", "tool": "certify"},
                   f"duplicate receipt, provenance still {json.dumps(dict(now))}",
                   "ignored: provenance unchanged")
        rec.refused("re-put with new bytes and new provenance",
                    lambda: _drill_put(s, p, "provenance", b"forged",
                                       provenance={"author": "mallory"}), WriteOnceError)
        _sql_refused(rec, s.path / "depository.db",
                     "UPDATE artifact SET provenance = '{}'", "provenance update")
        receipt = s.with_proof(r)
        key = ctx.verifier_key if not ctx.throwaway_key else _vkey_of(ctx, s)
        ok, why = (False, "the receipt has no proof") if receipt.proof is None else \
            _verified(_call(verify_proof_file, receipt.proof, receipt.leaf_hash, [key]))
        rec.expect("the drill artifact's receipt carries a tlog-proof that verifies",
                   ok, f"record {r.log_index} proven" if ok else why, "verified")
    return "provenance is in the signed record, cannot be replaced, and is provable offline"


def _vkey_of(ctx: CheckContext, s: Store) -> str:
    from depository.signing import verifier_key_from_signer

    key = ctx.copy_signer(s.path)
    assert key is not None
    return verifier_key_from_signer(key.read_text().strip())


# ============================================================== G5 isolation
def _http(ctx: CheckContext, s: Store, drill: Callable[[Any], Any]) -> None:
    """Run ``drill(client)`` against the HTTP service for ``s`` (in process, ASGI)."""
    import asyncio

    import httpx

    assert ctx.service_factory is not None
    app = ctx.service_factory(s)

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://certify") as c:
            await drill(c)

    asyncio.run(main())


def _service_isolation(ctx: CheckContext, rec: Recorder, s: Store,
                       tokens: dict[str, dict[str, str]], names: dict[str, str]) -> None:
    """The same isolation through the HTTP service with the same real tokens."""
    if ctx.service_factory is None:
        rec.note("the HTTP service is not installed; isolation was checked at the store API")
        return
    from urllib.parse import quote

    def auth(secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"}

    async def drill(c: Any) -> None:
        for p, name in names.items():
            aid = s.get(p, name).id
            path = f"/v1/products/{p}/artifacts/{quote(name)}"
            own = await c.get(path, headers=auth(tokens[p]["reader"]))
            rec.expect(f"HTTP: {p} reader GETs its own artifact", own.status_code == 200,
                       f"HTTP {own.status_code}", "200")
            for q in names:
                if q == p:
                    continue
                hdr = auth(tokens[q]["reader"])
                r1 = await c.get(path, headers=hdr)
                r2 = await c.get(f"/v1/artifacts/{aid}", headers=hdr)
                r3 = await c.get(f"/v1/products/{q}/artifacts/{quote(name)}", headers=hdr)
                r4 = await c.get(f"/v1/products/{p}/artifacts", headers=hdr)
                r5 = await c.put(f"/v1/products/{p}/artifacts/{DRILL}/intrusion",
                                 content=b"x", headers=auth(tokens[q]["writer"]))
                codes = [r.status_code for r in (r1, r2, r3, r4, r5)]
                rec.expect(f"HTTP: {q} tokens reach for {p} (read by name, by id, under "
                           f"{q}, list {p}, write into {p})",
                           all(code in (403, 404) for code in codes),
                           "HTTP " + " / ".join(map(str, codes)), "403 or 404 each")
        bad = await c.get("/v1/whoami", headers=auth("dep_tok-0_forged"))
        rec.expect("HTTP: a forged token", bad.status_code == 401, f"HTTP {bad.status_code}",
                   "401")

    _http(ctx, s, drill)


def check_isolation(ctx: CheckContext, rec: Recorder) -> str:
    with ctx.open_copy("isolation", rec) as s:
        products = sorted(s.config.products)
        tokens: dict[str, dict[str, str]] = {}
        names: dict[str, str] = {}
        now = datetime.now(UTC)
        for p in products:
            tokens[p] = {}
            for role in ("writer", "reader"):
                secret, tok = s.create_token(role=role, product=p, actor="certify",
                                             expires=now + timedelta(hours=1),
                                             note="certification isolation drill")
                tokens[p][role] = secret
                rec.record_evidence(s, tok.issued_index, "copy")
            writer = s.authenticate(tokens[p]["writer"], now)
            rec.expect(f"{p} writer token authenticates, scoped to its product",
                       writer is not None and writer.product == p,
                       f"token {writer.id if writer else None} product "
                       f"{writer.product if writer else None}", f"product {p}")
            assert writer is not None
            r = s.put(writer.product or p, f"{DRILL}/isolation/{p}", f"secret of {p}".encode(),
                      actor=f"token:{writer.id}")
            names[p] = f"{DRILL}/isolation/{p}"
            rec.record_evidence(s, r.log_index, "copy")
        for p in products:
            aid = s.get(p, names[p]).id
            for q in products:
                if q == p:
                    continue
                reader = s.authenticate(tokens[q]["reader"], now)
                assert reader is not None and reader.product is not None
                scope = reader.product
                rec.refused(f"{q} reader token reads {p}'s artifact by name",
                            _call(s.get, scope, names[p]), NotFoundError,
                            expected="not found")
                rec.refused(f"{q} reader token reads {p}'s artifact by id",
                            _call(s.get, scope, aid), NotFoundError,
                            expected="not found")
                listed = [a.id for a in s.ls(product=scope, limit=10_000)]
                rec.expect(f"{q} listing does not show {p}'s artifact", aid not in listed,
                           f"{len(listed)} artifacts listed, none of {p}'s", "absent")
        _service_isolation(ctx, rec, s, tokens, names)
    ctx.shared["isolation_products"] = products
    return (f"{len(products)} products, real tokens for each; every cross-product access "
            f"({len(products) * (len(products) - 1)} pairs) was 'not found'"
            + (", at the store API and over HTTP" if ctx.service_factory else ""))


# ============================================================== G6 governance lock
def check_governance_lock(ctx: CheckContext, rec: Recorder) -> str:
    with ctx.open_copy("governance", rec) as s:
        p = _first_product(s)
        big = b"governance drill " * (s.config.inline_max // 16 + 64)
        r = _drill_put(s, p, "governance", big)
        path = s.blobs.path(r.sha256)
        replace_file(path, b"damaged on disk")
        report = s.scrub()
        rec.expect("scrub re-hashes every blob and finds the damaged one",
                   any(x["artifact_id"] == r.artifact_id for x in report["problems"]),
                   f"{len(report['problems'])} problems", f"artifact {r.artifact_id} reported")
        status = s.governance_status()
        rec.expect("the violation records a governance lock", bool(status["locked"]),
                   f"locked: {status['reason']}" if status["locked"] else "not locked")
        if status["history"]:
            rec.record_evidence(s, status["history"][-1]["log_index"], "copy")
        rec.refused("put while locked", lambda: _drill_put(s, p, "locked", b"x"),
                    GovernanceLockedError)
        rec.refused("extend retention while locked",
                    lambda: s.extend_retention(p, r.artifact_id, FAR_FUTURE, actor="certify",
                                               reason="drill"), GovernanceLockedError)
        rec.refused("unlock without a reason",
                    lambda: s.unlock(reason=" ", actor="certify"), StoreError)
        replace_file(path, big)
        seq = s.unlock(reason="certification drill: blob restored from backup",
                       actor="certify")
        rec.record_evidence(s, seq, "copy")
        after = _drill_put(s, p, "unlocked", b"x")
        rec.expect("writes resume after a logged unlock", after.log_index > seq,
                   f"put at {after.log_index}", "accepted")
    return "a detected violation (damaged bytes) locked the copy and halted writes"


# ============================================================== G7 signatures
def check_signatures(ctx: CheckContext, rec: Recorder) -> str:
    cp, _ = verify_checkpoint(ctx.checkpoint_note, [ctx.verifier_key], origin=ctx.origin)
    rec.expect("the certification checkpoint's Ed25519 signature verifies (C2SP signed note)",
               cp.size == ctx.checkpoint_size, f"{cp.origin} size {cp.size}", "verified")
    rec.add_evidence("checkpoint", "checkpoint.txt", size=cp.size, root=cp.root_hash.hex())
    with Store.open(ctx.snapshot, readonly=True) as ro:
        init = ro.record(0)
        rec.expect("record 0 names the trusted verifier key",
                   init.body.get("verifier_key") == ctx.verifier_key,
                   str(init.body.get("verifier_key")), ctx.verifier_key)
        root = ro.root_at(cp.size)
        rec.expect("the root recomputed from the stored log equals the signed root",
                   root == cp.root_hash, root.hex(), cp.root_hash.hex())
        conn = sqlite3.connect(f"file:{ctx.snapshot / 'depository.db'}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT size, note FROM checkpoint ORDER BY size").fetchall()
        finally:
            conn.close()
        bad = []
        for size, note in rows:
            try:
                verify_checkpoint(bytes(note), [ctx.verifier_key], origin=ctx.origin)
            except Exception as exc:
                bad.append(f"{size}: {exc}")
        rec.expect("every stored checkpoint's signature verifies", not bad,
                   f"{len(rows)} checkpoints verified" if not bad else "; ".join(bad[:3]))
        if ctx.certification_index is not None:
            idx = ctx.certification_index
            proof = ro.proof_file(idx, cp.size)
            leaf = dict(ro.log_entries(idx, idx + 1))[idx]
            (ctx.evidence_dir / "certification-run.tlog-proof").write_bytes(proof)
            (ctx.evidence_dir / "certification-run.leaf.json").write_bytes(leaf)
            ok, why = _verified(_call(verify_proof_file, proof, merkle.leaf_hash(leaf),
                                      [ctx.verifier_key]))
            rec.expect("the certification.run record is included under the checkpoint "
                       "(tlog-proof)", ok, f"record {idx} of {cp.size}" if ok else why,
                       "verified")
            rec.add_evidence("file", "evidence/certification-run.tlog-proof", index=idx)
            rec.record_evidence(ro, idx, "store")
        if ctx.previous_checkpoint is not None:
            prev, _ = verify_checkpoint(ctx.previous_checkpoint, [ctx.verifier_key])
            rec.expect("the previous certification's checkpoint verifies",
                       prev.origin == ctx.origin, f"{prev.origin} size {prev.size}",
                       f"origin {ctx.origin}")
            if rec.expect("the log has grown since the previous certification",
                          prev.size <= cp.size, f"{prev.size} -> {cp.size}",
                          "previous size <= today's"):
                proof_hashes = ro.consistency_proof(prev.size, cp.size)
                ok, why = _verified(_call(merkle.verify_consistency, prev.size, cp.size,
                                          proof_hashes, prev.root_hash, cp.root_hash))
                name = f"consistency-{prev.size}-{cp.size}.txt"
                (ctx.evidence_dir / name).write_text(
                    "".join(base64.b64encode(h).decode() + "\n" for h in proof_hashes))
                if not rec.expect("RFC 6962 consistency proof from the previous checkpoint "
                                  "to today's verifies", ok,
                                  f"{len(proof_hashes)} hashes, {prev.size} -> {cp.size}"
                                  if ok else why, "verified"):
                    return "the log does not extend the previous certification's"
                rec.add_evidence("file", f"evidence/{name}", size1=prev.size, size2=cp.size)
                ctx.shared["consistency"] = {
                    "size1": prev.size, "size2": cp.size, "root1": prev.root_hash.hex(),
                    "root2": cp.root_hash.hex(), "file": f"evidence/{name}",
                    "proof": [base64.b64encode(h).decode() for h in proof_hashes],
                }
    return "checkpoint signatures, recomputed roots and proofs verify with the log key"


# ============================================================== threats and refusals
def check_quota(ctx: CheckContext, rec: Recorder) -> str:
    with Store.open(ctx.snapshot, readonly=True) as ro:
        usage = ro.usage()
        for pid, prod in sorted(ro.config.products.items()):
            u = usage.get(pid, {"bytes": 0, "artifacts": 0})
            rec.expect(f"{pid}: usage within quota",
                       u["bytes"] <= prod.quota_bytes and u["artifacts"] <= prod.quota_artifacts,
                       f"{u['bytes']} of {prod.quota_bytes} bytes, {u['artifacts']} of "
                       f"{prod.quota_artifacts} artifacts", "within")
        cfg = default_config_dict(ro.origin)
        cfg["products"] = {
            pid: {"name": p.name, "metadata_schema": dict(p.metadata_schema),
                  "quota": {"bytes": 10, "artifacts": 2}}
            for pid, p in ro.config.products.items()
        }
    drill = ctx.scratch / "quota-drill-store"
    with Store.init(drill, config=cfg, actor="certify") as s:
        p = sorted(s.config.products)[0]
        _drill_put(s, p, "a", b"12345")
        exc = rec.refused("a write beyond the byte quota (drill store: same products and "
                          "schemas, quota 10 bytes / 2 artifacts)",
                          lambda: _drill_put(s, p, "b", b"1234567"), QuotaError)
        rec.expect("the refusal states the figures", isinstance(exc, QuotaError)
                   and exc.used == 5 and exc.limit == 10,
                   str(exc)[:160] if exc else "-", "used 5 of 10 bytes")
        _drill_put(s, p, "c", b"1")
        rec.refused("a write beyond the artifact-count quota",
                    lambda: _drill_put(s, p, "d", b"1"), QuotaError, match="artifact-count")
    return "usage is within every quota; quotas refuse writes with the figures"


_STRICT_SCHEMA = {"type": "object", "required": ["case"], "additionalProperties": False,
                  "properties": {"case": {"type": "string", "pattern": "^[A-Z]+-[0-9]+$"}}}


def check_metadata_validation(ctx: CheckContext, rec: Recorder) -> str:
    _need_service(ctx, "metadata validation at the service")
    from urllib.parse import quote

    with ctx.open_copy("metadata", rec) as s:
        size = s.size()
        tokens = {}
        for pid in sorted(s.config.products):
            rec.refused(f"{pid}: metadata with a NaN (not exact JSON)",
                        _call(_drill_put, s, pid, "nan", b"x",
                              metadata={"score": float("nan")}),
                        MetadataError)
            rec.refused(f"{pid}: provenance with an integer beyond 2^53",
                        _call(_drill_put, s, pid, "big", b"x", provenance={"n": 2**60}),
                        MetadataError)
            tokens[pid] = s.create_token(role="writer", product=pid, actor="certify",
                                         note="metadata drill")[0]
        rec.refused("a name with control characters",
                    lambda: s.put(_first_product(s), "bad\x00name", b"x"), MetadataError)
        drafted = s.size()
        products = dict(s.config.products)

        async def drill(c: Any) -> None:
            # Each product's own schema, at the service: a document it rejects is refused.
            for pid, prod in sorted(products.items()):
                validator = jsonschema.Draft202012Validator(prod.metadata_schema)
                docs: tuple[Any, ...] = ({}, [], "text", 1)
                bad = next((d for d in docs if not validator.is_valid(d)), None)
                if not rec.expect(f"{pid}: its metadata schema rejects some document",
                                  bad is not None,
                                  "rejects " + json.dumps(bad) if bad is not None
                                  else "ACCEPTS ANY JSON: metadata is not validated",
                                  "a schema that constrains metadata"):
                    continue
                r = await c.put(f"/v1/products/{pid}/artifacts/{quote(f'{DRILL}/meta')}",
                                content=b"x", headers={**_bearer(tokens[pid]),
                                                       "Depository-Metadata": json.dumps(bad)})
                rec.expect(f"HTTP: {pid}: metadata {json.dumps(bad)} against its schema",
                           r.status_code in (400, 422), f"HTTP {r.status_code}", "refused")

        _http(ctx, s, drill)
        rec.expect("nothing was written", s.size() == drafted, f"log size {s.size()}",
                   f"log size {drafted} (tokens only since {size})")
    # A product with a strict schema (a drill store with the same products): what the
    # schema forbids is refused, what it allows is stored.
    with Store.open(ctx.snapshot, readonly=True) as ro:
        cfg = default_config_dict(ro.origin)
        cfg["products"] = {pid: {"name": prod.name, "metadata_schema": _STRICT_SCHEMA,
                                 "quota": {"bytes": 10**6, "artifacts": 100}}
                           for pid, prod in ro.config.products.items()}
    with Store.init(ctx.scratch / "metadata-drill-store", config=cfg, actor="certify") as d:
        pid = sorted(d.config.products)[0]
        for label, meta in (("without the required field", {}),
                            ("with a number where a string is required", {"case": 7}),
                            ("with a value outside the pattern", {"case": "x"}),
                            ("with an extra field", {"case": "CASE-1", "note": "x"})):
            rec.refused(f"strict schema: metadata {label}",
                        _call(_drill_put, d, pid, "strict", b"x", metadata=meta),
                        MetadataError)
        ok = _drill_put(d, pid, "strict", b"x", metadata={"case": "CASE-1"})
        rec.expect("strict schema: conforming metadata is stored",
                   dict(d.get(pid, ok.artifact_id).metadata) == {"case": "CASE-1"},
                   json.dumps(dict(d.get(pid, ok.artifact_id).metadata)), '{"case": "CASE-1"}')
    return ("poisoned metadata and provenance are refused before anything is stored; each "
            "product's schema is enforced at the service")


def check_concurrent_writers(ctx: CheckContext, rec: Recorder) -> str:
    with ctx.open_copy("concurrency", rec) as s:
        products = sorted(s.config.products)
        receipts: list[Any] = []
        errors: list[BaseException] = []
        winners: list[Any] = []
        losers: list[BaseException] = []
        lock = threading.Lock()
        barrier = threading.Barrier(24)

        def writer(t: int) -> None:
            barrier.wait()
            try:
                for i in range(5):
                    r = _drill_put(s, products[t % len(products)], f"conc/{t}/{i}",
                                   f"{t}-{i}".encode())
                    with lock:
                        receipts.append(r)
            except BaseException as exc:
                with lock:
                    errors.append(exc)

        def racer(t: int) -> None:
            barrier.wait()
            try:
                r = _drill_put(s, products[0], "conc/race", f"racer {t}".encode())
                with lock:
                    winners.append(r)
            except WriteOnceError as exc:
                with lock:
                    losers.append(exc)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(16)]
        threads += [threading.Thread(target=racer, args=(t,)) for t in range(8)]
        t0 = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.monotonic() - t0
        rec.expect("16 writers x 5 puts, all acknowledged", len(receipts) == 80 and not errors,
                   f"{len(receipts)} acknowledged, {len(errors)} errors in {elapsed:.2f} s",
                   "80 acknowledged")
        rec.expect("each acknowledged write has its own log index",
                   len({r.log_index for r in receipts}) == len(receipts),
                   f"{len({r.log_index for r in receipts})} distinct", "all distinct")
        rec.expect("8 racers on one name with different bytes: exactly one wins",
                   len(winners) == 1 and len(losers) == 7,
                   f"{len(winners)} won, {len(losers)} refused", "1 won, 7 refused")
        s.checkpoint()
        if ctx.throwaway_key:
            rec.note("the copy signs with a throwaway key, so it was not replayed")
            return "concurrent writers serialised without conflicts"
    res = ctx.replay(s.path)
    rec.expect("the copy replays cleanly after the concurrent writes", bool(res.ok),
               "verified" if res.ok else str(res.findings[0]), "no findings")
    return "concurrent writers serialised without conflicts; racing writers cannot both win"


def check_authority(ctx: CheckContext, rec: Recorder) -> str:
    with ctx.open_copy("authority", rec) as s:
        now = datetime.now(UTC)
        p = _first_product(s)
        secret, tok = s.create_token(role="writer", product=p, actor="admin:certify",
                                     expires=now + timedelta(minutes=5), note="drill")
        rec.record_evidence(s, tok.issued_index, "copy")
        got = s.authenticate(secret, now)
        rec.expect("a live token authenticates", got is not None and got.id == tok.id,
                   f"token {got.id if got else None}", tok.id)
        wrong = s.authenticate(secret + "x", now)
        rec.expect("a wrong secret does not", wrong is None,
                   "rejected" if wrong is None else f"ACCEPTED as {wrong.id}", "rejected")
        rec.expect("an expired token does not",
                   s.authenticate(secret, now + timedelta(minutes=6)) is None,
                   "rejected after expiry", "rejected")
        rec.refused("a product token without a product",
                    lambda: s.create_token(role="writer", actor="x"), StoreError)
        r = _drill_put(s, p, "authority", b"x", actor=f"token:{tok.id}")
        with contextlib.suppress(WriteOnceError):
            _drill_put(s, p, "authority", b"y", actor=f"token:{tok.id}")
        last = s.record(s.size() - 1)
        rec.expect("a refusal record names the actor", last.type == "artifact.refused"
                   and last.actor == f"token:{tok.id}", f"{last.type} by {last.actor}",
                   f"artifact.refused by token:{tok.id}")
        rec.record_evidence(s, last.seq, "copy")
        seq = s.revoke_token(tok.id, reason="certification drill", actor="admin:certify")
        rec.record_evidence(s, seq, "copy")
        revoked = s.authenticate(secret, now)
        rec.expect("a revoked token stops working at once", revoked is None,
                   "rejected" if revoked is None else "STILL ACCEPTED", "rejected")
        rec.refused("the store writes nothing more on the revoked token's authority",
                    lambda: _drill_put(s, p, "authority-late", b"z", actor=f"token:{tok.id}"),
                    AuthorityError, match="revoked")
        s.lock("certification drill", check="manual", actor="admin:certify")
        rec.refused("unlock without a reason", lambda: s.unlock(reason="", actor="x"),
                    StoreError)
        s.unlock(reason="drill over", actor="admin:certify")
        if ctx.service_factory is not None:
            reader, _ = s.create_token(role="reader", product=p, actor="admin:certify")

            async def drill(c: Any) -> None:
                put = await c.put(f"/v1/products/{p}/artifacts/{DRILL}/by-reader",
                                  content=b"x", headers={"Authorization": f"Bearer {reader}"})
                rec.expect("HTTP: a reader token tries to write", put.status_code == 403,
                           f"HTTP {put.status_code}", "403")
                gone = await c.get("/v1/whoami", headers={"Authorization": f"Bearer {secret}"})
                rec.expect("HTTP: the revoked token", gone.status_code == 401,
                           f"HTTP {gone.status_code}", "401")

            _http(ctx, s, drill)
        _ = r
    return "tokens are checked, expire and revoke; refusals and unlocks are attributed"


def check_legal_hold(ctx: CheckContext, rec: Recorder) -> str:
    with ctx.open_copy("legal-hold", rec) as s:
        p = _first_product(s, "enforcement")
        r = _drill_put(s, p, "held", b"evidence for a matter", provenance={"author": "x"})
        control = _drill_put(s, p, "control", b"same retention, no hold")
        # Holds already in the store would cover the control too; lift them on this copy
        # so the control shows what a disposal does without a hold.
        for h in s.holds_covering(s.get(p, control.artifact_id)):
            s.release_hold(h.id, reason="certification drill on a scratch copy",
                           actor="legal:certify")
            rec.note(f"the store's hold {h.id} was released on the scratch copy for the "
                     "control artifact")
        hold = s.place_hold(matter="CERT-DRILL-1", reason="certification drill",
                            actor="legal:certify", artifact_ids=[r.artifact_id])
        rec.record_evidence(s, hold.placed_index, "copy")
        free = {a.id for a in s.disposable(FAR_FUTURE)}
        rec.expect("after both retentions ran out, the held artifact is not disposable and "
                   "the unheld control is", r.artifact_id not in free
                   and control.artifact_id in free,
                   f"held: {'DISPOSABLE' if r.artifact_id in free else 'excluded'}; control: "
                   f"{'disposable' if control.artifact_id in free else 'EXCLUDED'}",
                   "held excluded, control disposable")
        covering = [h.id for h in s.holds_covering(s.get(p, r.artifact_id))]
        rec.expect("the store attributes the protection to this hold", covering == [hold.id],
                   f"covered by {covering or 'nothing'}", f"hold {hold.id}")
        # Disposal is judged at the store's clock: run the scratch copy's clock forward.
        s.clock = lambda: FAR_FUTURE
        size = s.size()
        rec.refused("dispose of the held artifact after its retention ran out",
                    lambda: s.dispose(FAR_FUTURE, actor="ops", artifact_ids=[r.artifact_id]),
                    RetentionError)
        rec.expect("nothing was disposed by the refused attempt", s.size() == size,
                   f"log size {s.size()}", f"{size}")
        # The control, same retention, is disposed: the refusal above was the hold's.
        try:
            done = s.dispose(FAR_FUTURE, actor="ops", artifact_ids=[control.artifact_id])
            observed = f"disposed (record {done[0]})" if done else "nothing disposed"
        except StoreError as exc:
            done, observed = [], f"REFUSED — {exc}"[:300]
        rec.expect("the unheld control with the same retention is disposed", bool(done),
                   observed, "disposed")
        with s.open_content(s.get(p, r.artifact_id)) as f:
            rec.expect("the held evidence is preserved", f.read() == b"evidence for a matter",
                       "bytes intact", "intact")
        seq = s.release_hold(hold.id, reason="matter closed (drill)", actor="legal:certify")
        rec.record_evidence(s, seq, "copy")
        free = {a.id for a in s.disposable(FAR_FUTURE)}
        rec.expect("after release it is disposable once retention has run out",
                   r.artifact_id in free, "disposable" if r.artifact_id in free
                   else "not disposable", "disposable")
    return ("a legal hold, and only the hold, blocked disposal of an expired artifact and "
            "preserved it; place and release are logged")


def check_no_bulk_read(ctx: CheckContext, rec: Recorder) -> str:
    _need_service(ctx, "bulk reads")
    with ctx.open_copy("bulk", rec) as s:
        p = _first_product(s)
        for i in range(5):
            _drill_put(s, p, f"page/{i}", str(i).encode())
        page1 = s.ls(product=p, prefix=f"{DRILL}/page/", limit=2)
        page2 = s.ls(product=p, prefix=f"{DRILL}/page/", limit=2, after=page1[-1].log_index)
        rec.expect("listings are cursor-paginated (limit, after)",
                   len(page1) == 2 and len(page2) == 2
                   and page1[-1].log_index < page2[0].log_index,
                   f"pages of {len(page1)} and {len(page2)}", "pages of 2")
        tokens = {role: s.create_token(role=role, product=p, actor="certify",
                                       note="bulk-read drill")[0]
                  for role in ("reader", "writer")}
        for role in ("auditor", "admin", "legal"):
            tokens[role] = s.create_token(role=role, actor="certify", note="bulk-read drill")[0]
        size = s.size()

        async def drill(c: Any) -> None:
            r = await c.get(f"/v1/products/{p}/artifacts", params={"limit": "100000000"},
                            headers=_bearer(tokens["reader"]))
            rec.expect("HTTP: a listing asking for 100,000,000 rows is refused",
                       r.status_code == 400, f"HTTP {r.status_code}", "400")
            r = await c.get(f"/v1/products/{p}/artifacts", params={"limit": "2"},
                            headers=_bearer(tokens["reader"]))
            body = r.json() if r.status_code == 200 else {}
            items = next((v for v in body.values() if isinstance(v, list)), [])
            rec.expect("HTTP: a listing returns one page (limit 2 of 5+)",
                       r.status_code == 200 and len(items) == 2,
                       f"HTTP {r.status_code}, {len(items)} items", "200, 2 items")
            for role in ("reader", "writer"):
                r = await c.get("/v1/log/entries", params={"start": "0", "end": "10"},
                                headers=_bearer(tokens[role]))
                rec.expect(f"HTTP: a product {role} reads the whole log (GET /v1/log/entries)",
                           r.status_code == 403, f"HTTP {r.status_code}", "403")
            r = await c.get("/v1/log/entries", params={"start": "0", "end": "100000000"},
                            headers=_bearer(tokens["auditor"]))
            rec.expect("HTTP: the auditor asks for 100,000,000 log entries at once",
                       r.status_code == 400, f"HTTP {r.status_code}", "400 (pages only)")
            body = {"matter": "CERT-DRILL-BULK", "reason": "bulk-read drill"}
            for role in ("reader", "writer", "auditor", "admin"):
                r = await c.post("/v1/evidence/exports", json=body,
                                 headers=_bearer(tokens[role]))
                rec.expect(f"HTTP: a {role} exports evidence packages (POST "
                           "/v1/evidence/exports)", r.status_code == 403,
                           f"HTTP {r.status_code}", "403 (legal only)")
            r = await c.post("/v1/evidence/exports", json=body, headers=_bearer(tokens["legal"]))
            rec.expect("HTTP: legal exports a matter that holds nothing (an unscoped export)",
                       400 <= r.status_code < 500, f"HTTP {r.status_code}: "
                       + str(r.json().get("detail", ""))[:160] if r.status_code >= 400
                       else f"HTTP {r.status_code}",
                       "refused (an export is scoped to held evidence)")

        _http(ctx, s, drill)
        exports = [s.record(i) for i in range(size, s.size())
                   if s.record(i).type == "evidence.export"]
        rec.expect("no export was recorded by the refused attempts", not exports,
                   f"{len(exports)} evidence.export records", "none")
    return ("reads are per artifact or paginated; the whole log pages for auditors only, "
            "and evidence exports are legal's, scoped to held evidence")


def check_no_conditional_write(ctx: CheckContext, rec: Recorder) -> str:
    _need_service(ctx, "conditional writes")
    from urllib.parse import quote

    with ctx.open_copy("conditional", rec) as s:
        p = _first_product(s)
        first = _drill_put(s, p, "cond", b"v1")
        size = s.size()
        dup = _drill_put(s, p, "cond", b"v1")
        rec.expect("repeating a write is idempotent (no new record)",
                   dup.duplicate and s.size() == size, f"duplicate={dup.duplicate}",
                   "duplicate, log unchanged")
        rec.refused("any write of other bytes to the name", lambda: _drill_put(s, p, "cond",
                                                                               b"v2"),
                    WriteOnceError)
        writer, _ = s.create_token(role="writer", product=p, actor="certify",
                                   note="conditional-write drill")
        admin, _ = s.create_token(role="admin", actor="certify", note="conditional-write drill")
        path = f"/v1/products/{p}/artifacts/{quote(f'{DRILL}/cond')}"
        etag = f'"{first.sha256}"'
        conditions: list[tuple[str, dict[str, str], dict[str, str]]] = [
            ("If-Match: the current ETag", {"If-Match": etag}, {}),
            ("If-Match: *", {"If-Match": "*"}, {}),
            ("If-None-Match: a stale ETag", {"If-None-Match": '"0"'}, {}),
            ("If-Unmodified-Since: far future", {"If-Unmodified-Since":
                                                 "Fri, 01 Jan 2100 00:00:00 GMT"}, {}),
            ("?overwrite=true", {}, {"overwrite": "true"}),
            ("?force=true", {}, {"force": "true"}),
            ("?version=2", {}, {"version": "2"}),
        ]

        async def drill(c: Any) -> None:
            for label, hdrs, params in conditions:
                for who, tok in (("writer", writer), ("admin", admin)):
                    r = await c.put(path, content=b"v2", params=params,
                                    headers={**_bearer(tok), **hdrs})
                    rec.expect(f"HTTP: PUT other bytes with {label} ({who})",
                               r.status_code in (403, 409, 412), f"HTTP {r.status_code}",
                               "refused")
            got = await c.get(path, headers=_bearer(writer))
            rec.expect("HTTP: the artifact still holds its first bytes", got.content == b"v1",
                       f"{got.content[:20]!r}", "b'v1'")

        _http(ctx, s, drill)
        changed = [s.record(i).type for i in range(size, s.size())
                   if s.record(i).type == "artifact.put"]
        rec.expect("no conditional attempt wrote a record of the name", not changed,
                   f"{len(changed)} artifact.put records", "none")
    return "no condition, flag or role turns a write into an overwrite"


_LOCK_BYPASSES: tuple[tuple[str, dict[str, str], dict[str, str]], ...] = (
    ("no override", {}, {}),
    ("?force=true", {}, {"force": "true"}),
    ("?override=true", {}, {"override": "true"}),
    ("X-Override: true", {"X-Override": "true"}, {}),
    ("X-Governance-Exception: urgent", {"X-Governance-Exception": "urgent"}, {}),
)


def check_no_governance_relaxation(ctx: CheckContext, rec: Recorder) -> str:
    _need_service(ctx, "governance exceptions")
    from urllib.parse import quote

    with ctx.open_copy("relaxation", rec) as s:
        p = _first_product(s)
        r = _drill_put(s, p, "relax", b"x")
        hold = s.place_hold(matter="CERT-DRILL-2", reason="drill", actor="legal",
                            artifact_ids=[r.artifact_id])
        admin, _ = s.create_token(role="admin", actor="certify", note="relaxation drill")
        writer, _ = s.create_token(role="writer", product=p, actor="certify",
                                   note="relaxation drill")
        legal, _ = s.create_token(role="legal", actor="certify", note="relaxation drill")
        seq = s.lock("certification drill: governance relaxation", check="manual",
                     actor="admin:certify")
        rec.record_evidence(s, seq, "copy")
        size = s.size()
        rec.refused("put while locked", lambda: _drill_put(s, p, "relax2", b"y"),
                    GovernanceLockedError)
        rec.refused("extend retention while locked",
                    lambda: s.extend_retention(p, r.artifact_id, FAR_FUTURE, actor="a",
                                               reason="urgent"), GovernanceLockedError)
        rec.refused("release a hold while locked",
                    lambda: s.release_hold(hold.id, reason="urgent", actor="legal"),
                    GovernanceLockedError)
        rec.refused("append an event while locked",
                    lambda: s.append_event("evidence.export", actor="a", product=p,
                                           body={"drill": True}), GovernanceLockedError)

        async def drill(c: Any) -> None:
            for label, hdrs, params in _LOCK_BYPASSES:
                for who, tok in (("writer", writer), ("admin", admin)):
                    put = await c.put(f"/v1/products/{p}/artifacts/"
                                      f"{quote(f'{DRILL}/relax-{who}')}", content=b"urgent",
                                      params=params, headers={**_bearer(tok), **hdrs})
                    rec.expect(f"HTTP: write while locked, {label} ({who})",
                               put.status_code in (403, 503), f"HTTP {put.status_code}",
                               "refused (503 locked; 403 for a role that cannot write)")
                ext = await c.post(f"/v1/artifacts/{r.artifact_id}/retention", params=params,
                                   json={"until": "2199-01-01T00:00:00Z",
                                         "reason": "urgent"},
                                   headers={**_bearer(admin), **hdrs})
                rel = await c.post(f"/v1/holds/{hold.id}/release", params=params,
                                   json={"reason": "urgent"}, headers={**_bearer(legal), **hdrs})
                rec.expect(f"HTTP: extend retention and release a hold while locked, {label}",
                           ext.status_code == 503 and rel.status_code == 503,
                           f"HTTP {ext.status_code} / {rel.status_code}", "503 (locked)")
            un = await c.post("/v1/governance/unlock", json={"reason": ""},
                              headers=_bearer(admin))
            rec.expect("HTTP: unlock without a reason", un.status_code == 400,
                       f"HTTP {un.status_code}", "400")

        _http(ctx, s, drill)
        rec.expect("nothing was written while locked", s.size() == size,
                   f"log size {s.size()}", f"{size}")
        rec.expect("the store is still locked", bool(s.governance_status()["locked"]),
                   "locked" if s.governance_status()["locked"] else "UNLOCKED", "locked")
    return "while locked every state-changing operation is refused; no exception path"


def check_no_cross_product_query(ctx: CheckContext, rec: Recorder) -> str:
    with ctx.open_copy("cross-query", rec) as s:
        products = sorted(s.config.products)
        for p in products:
            _drill_put(s, p, "query", p.encode(), metadata={"topic": "shared"})
        for role in ("writer", "reader"):
            rec.refused(f"issue a {role} token for no product (store-wide)",
                        _call(s.create_token, role=role, actor="admin"), StoreError)
        for p in products:
            got = s.ls(product=p, meta={"topic": "shared"}, limit=1000)
            rec.expect(f"a query scoped to {p} returns only {p}'s artifacts",
                       bool(got) and all(a.product == p for a in got),
                       f"{len(got)} results, products {sorted({a.product for a in got})}",
                       f"only {p}")
    return "product tokens are bound to one product and queries are product-scoped"


class _IoWatch:
    """Records, while active, every file opened for writing and every socket connection
    the process makes (``sys.addaudithook``; installed once, inert when inactive)."""

    _installed = False
    _active: list[tuple[str, str]] | None = None

    @classmethod
    def _hook(cls, event: str, args: tuple[Any, ...]) -> None:
        seen = cls._active
        if seen is None:
            return
        if event == "open":
            path, mode, flags = (*args, None, None, None)[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writing and isinstance(path, str | bytes | os.PathLike):
                seen.append(("write", os.fsdecode(path)))
        elif event in ("os.rename", "os.link", "os.symlink", "shutil.copyfile"):
            seen.append(("write", os.fsdecode(args[1])))
        elif event == "socket.connect":
            seen.append(("connect", str(args[1])))

    @classmethod
    @contextlib.contextmanager
    def watch(cls) -> Iterator[list[tuple[str, str]]]:
        if not cls._installed:
            sys.addaudithook(cls._hook)
            cls._installed = True
        seen: list[tuple[str, str]] = []
        cls._active = seen
        try:
            yield seen
        finally:
            cls._active = None


def check_no_replication(ctx: CheckContext, rec: Recorder) -> str:
    _need_service(ctx, "a write cycle through the service")
    from urllib.parse import quote

    with Store.open(ctx.snapshot, readonly=True) as ro:
        backend = ro.config.backend
        anchors = ro.config.anchors
    where = ("the store directory (local files)" if backend.type == "local" else
             f"one {backend.type} bucket {backend.bucket} ({backend.region or 'default region'})")
    rec.expect("the configuration names one place for artifact bytes", backend.type in (
        "local", "s3"), where, "one backend")
    if anchors is not None:
        rec.note(f"signed checkpoints (not data) are also published to {anchors.url}")
    path = ctx.copy("replication")
    signer = ctx.copy_signer(path)
    root = path.resolve()
    with Store.open(path, signer_key_file=signer) as s:
        p = _first_product(s)
        writer, _ = s.create_token(role="writer", product=p, actor="certify",
                                   note="replication drill")
        big = b"replication drill " * (s.config.inline_max // 16 + 64)

        async def drill(c: Any) -> None:
            for name, data in (("small", b"replication drill"), ("large", big)):
                r = await c.put(f"/v1/products/{p}/artifacts/{quote(f'{DRILL}/repl-{name}')}",
                                content=data, headers=_bearer(writer))
                rec.expect(f"HTTP: write a {name} artifact", r.status_code == 201,
                           f"HTTP {r.status_code}", "201")

        with _IoWatch.watch() as seen:
            _http(ctx, s, drill)
            s.checkpoint()
        outside = sorted({x for kind, x in seen if kind == "write"
                          and root not in Path(x).resolve().parents})
        remote = sorted({x for kind, x in seen if kind == "connect"})
        if backend.type != "local":
            rec.note("the backend is not local: the connections are its bucket's")
        rec.expect("the write cycle wrote files only inside the store directory",
                   not outside, f"outside: {outside[:4]}" if outside else
                   f"{sum(1 for k, _ in seen if k == 'write')} writes, all under the store",
                   "no file written elsewhere")
        rec.expect("the write cycle opened no network connection",
                   not remote or backend.type != "local",
                   f"connections: {remote[:4]}" if remote else "none", "none")
        rec.refused("a second writer process on the same store",
                    lambda: Store.open(path, signer_key_file=signer).close(), StoreError,
                    match="another process")
    return "one store directory, one writer; a write cycle wrote nowhere else"


def _detected(ctx: CheckContext, rec: Recorder, s: Store, since: int, actor: str,
              types: tuple[str, ...], auditor: str) -> list[int]:
    """Detection as an auditor sees it: the records of ``types`` by ``actor`` appended since
    ``since``, read through the service's log and proven under a new signed checkpoint."""
    found: list[tuple[int, str]] = []

    async def drill(c: Any) -> None:
        r = await c.get("/v1/log/entries", params={"start": str(since),
                                                     "end": str(s.size())},
                        headers=_bearer(auditor))
        for e in r.json().get("entries", []) if r.status_code == 200 else []:
            rec_ = json.loads(e["leaf"])
            if rec_.get("actor") == actor and rec_.get("type") in types:
                found.append((int(e["index"]), str(rec_["type"])))

    _http(ctx, s, drill)
    got = sorted({t for _, t in found})
    rec.expect(f"detection: the auditor reads {', '.join(types)} records naming {actor} "
               "through the service's log", got == sorted(types),
               f"records {found[:6]}" if found else "NONE naming the actor",
               f"{', '.join(types)} by {actor}")
    s.checkpoint()
    key = ctx.verifier_key if not ctx.throwaway_key else _vkey_of(ctx, s)
    for idx, _ in found[:3]:
        leaf = dict(s.log_entries(idx, idx + 1))[idx]
        ok, why = _verified(_call(verify_proof_file, s.proof_file(idx, s.size()),
                                  merkle.leaf_hash(leaf), [key]))
        rec.expect(f"record {idx} is proven under a signed checkpoint (tlog-proof)", ok,
                   "verified" if ok else why, "verified")
        rec.record_evidence(s, idx, "copy")
    return [i for i, _ in found]


def check_executor_misbehaves(ctx: CheckContext, rec: Recorder) -> str:
    _need_service(ctx, "detection through the service")
    from urllib.parse import quote

    with ctx.open_copy("executor", rec) as s:
        p = _first_product(s, "enforcement")
        secret, tok = s.create_token(role="writer", product=p, actor="admin",
                                     note="executor lane")
        auditor, _ = s.create_token(role="auditor", actor="admin", note="F1 drill")
        admin, _ = s.create_token(role="admin", actor="admin", note="F1 drill")
        actor = f"token:{tok.id}"
        since = s.size()
        path = f"/v1/products/{p}/artifacts/{quote(f'{DRILL}/decision-1')}"

        async def misbehave(c: Any) -> None:
            first = await c.put(path, content=b"decision A", headers=_bearer(secret))
            again = await c.put(path, content=b"decision B", headers=_bearer(secret))
            rec.expect("HTTP: the executor writes a decision, then overwrites it",
                       first.status_code == 201 and again.status_code == 409,
                       f"HTTP {first.status_code}, then {again.status_code}", "201, then 409")

        _http(ctx, s, misbehave)
        _detected(ctx, rec, s, since, actor, ("artifact.refused",), auditor)

        async def respond(c: Any) -> None:
            r = await c.post(f"/v1/tokens/{tok.id}/revoke",
                             json={"reason": "executor overwrote a decision"},
                             headers=_bearer(admin))
            gone = await c.get("/v1/whoami", headers=_bearer(secret))
            rec.expect("response (an admin's, through the service): the revoked executor "
                       "token is refused at once", r.status_code == 200
                       and gone.status_code == 401,
                       f"revoke HTTP {r.status_code}; executor then HTTP {gone.status_code}",
                       "revoked, then 401")

        _http(ctx, s, respond)
        last = s.record(s.size() - 1)
        if last.type == "token.revoke":
            rec.record_evidence(s, last.seq, "copy")
    return ("the overwrite attempt was detected in the audit log, attributed to the "
            "executor's token and proven under a checkpoint; revoking it stops the executor")


def check_ai_escalation(ctx: CheckContext, rec: Recorder) -> str:
    _need_service(ctx, "detection through the service")
    from urllib.parse import quote

    with ctx.open_copy("ai-escalation", rec) as s:
        products = sorted(s.config.products)
        ai = _first_product(s, "ai-assistant")
        other = next(p for p in products if p != ai) if len(products) > 1 else ai
        _drill_put(s, other, "restricted", b"other product data")
        secret, tok = s.create_token(role="writer", product=ai, actor="admin", note="AI agent")
        auditor, _ = s.create_token(role="auditor", actor="admin", note="F2 drill")
        admin, _ = s.create_token(role="admin", actor="admin", note="F2 drill")
        actor = f"token:{tok.id}"
        r = _drill_put(s, ai, "conversation", b"log", actor=actor)
        since = s.size()
        shorter = format_time(datetime.fromisoformat(r.retain_until.replace("Z", "+00:00"))
                              - timedelta(days=365))
        own = f"/v1/products/{ai}/artifacts/{quote(f'{DRILL}/conversation')}"

        codes: list[int] = []

        async def escalate(c: Any) -> None:
            codes[:] = [
                (await c.get(f"/v1/products/{other}/artifacts/{quote(f'{DRILL}/restricted')}",
                             headers=_bearer(secret))).status_code,
                (await c.post(f"/v1/artifacts/{r.artifact_id}/retention",
                              json={"until": shorter, "reason": "cleanup"},
                              headers=_bearer(secret))).status_code,
                (await c.put(own, content=b"edited", headers=_bearer(secret))).status_code,
                (await c.post("/v1/governance/unlock", json={"reason": "let me"},
                              headers=_bearer(secret))).status_code,
            ]
            rec.expect(f"HTTP: the AI agent reads {other}'s data, shortens its retention, "
                       "edits its log, unlocks the store", codes[0] in (403, 404)
                       and codes[1] in (403, 409) and codes[2] == 409 and codes[3] == 403,
                       "HTTP " + " / ".join(map(str, codes)), "404 / 409 / 409 / 403")

        _http(ctx, s, escalate)
        logged: tuple[str, ...] = ("artifact.refused",)
        if codes and codes[1] == 409:
            logged += ("retention.refused",)
        else:
            rec.note("the retention change was refused by role at the service (HTTP 403), "
                     "before the store: authorization refusals are not log records")
        _detected(ctx, rec, s, since, actor, logged, auditor)
        size = s.size()

        async def respond(c: Any) -> None:
            lock = await c.post("/v1/governance/lock",
                                json={"reason": f"AI escalation attempts by {actor}"},
                                headers=_bearer(admin))
            more = await c.put(f"/v1/products/{ai}/artifacts/{DRILL}/more", content=b"x",
                               headers=_bearer(secret))
            rec.expect("response (an admin's, through the service): a lock halts the "
                       "agent's writes", lock.status_code == 200 and more.status_code == 503,
                       f"lock HTTP {lock.status_code}; write then HTTP {more.status_code}",
                       "locked, then 503")
            un = await c.post("/v1/governance/unlock",
                              json={"reason": "reviewed: agent token revoked"},
                              headers=_bearer(admin))
            rec.expect("recovery: an unlock with its reason", un.status_code == 200,
                       f"HTTP {un.status_code}", "200")

        _http(ctx, s, respond)
        types = [s.record(i).type for i in range(size, s.size())]
        rec.expect("the lock and the unlock are in the log",
                   types == ["governance.lock", "governance.unlock"], str(types),
                   "governance.lock, governance.unlock")
    return ("each escalation attempt was refused and detected in the audit log, attributed "
            "to the agent's token; a lock halted its writes")


def check_boundary_relaxation(ctx: CheckContext, rec: Recorder) -> str:
    with ctx.open_copy("boundaries", rec) as s:
        p = _first_product(s, "gurukul")
        rec.refused("write with a retention below the minimum",
                    lambda: _drill_put(s, p, "short", b"x",
                                       retain_until=datetime.now(UTC) + timedelta(days=1)),
                    RetentionError)
        r = _drill_put(s, p, "bound", b"x")
        sooner = datetime.fromisoformat(r.retain_until.replace("Z", "+00:00")) - timedelta(
            days=30)
        rec.refused("shorten retention", lambda: s.extend_retention(
            p, r.artifact_id, sooner, actor="team", reason="relax"), RetentionError)
        last = s.record(s.size() - 1)
        rec.expect("the attempt is kept in the log", last.type == "retention.refused",
                   last.type, "retention.refused")
        rec.record_evidence(s, last.seq, "copy")
        rec.refused("dispose before retention ran out", lambda: s.dispose(
            datetime.now(UTC), actor="team", artifact_ids=[r.artifact_id]), RetentionError)
    return "retention can only be extended and the minimum cannot be undercut"


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("store-state", "Store state at certification", "store (read-only)",
              check_store_state),
    CheckSpec("replay", "Offline replay of the whole store", "snapshot",
              check_replay),
    CheckSpec("write-once", "Updates and deletes are refused", "scratch copy",
              check_write_once),
    CheckSpec("tamper-drill", "Tamper drill: every tampering is caught", "scratch copies",
              check_tamper_drill),
    CheckSpec("audit-retention", "7-year minimum retention", "snapshot and scratch copy",
              check_audit_retention),
    CheckSpec("schema-frozen", "Schemas are frozen", "store (read-only) and scratch copies",
              check_schema_frozen),
    CheckSpec("provenance", "Provenance is immutable and provable", "snapshot and scratch copy",
              check_provenance),
    CheckSpec("isolation", "Product isolation with real tokens",
              "scratch copy (store API and HTTP service)",
              check_isolation),
    CheckSpec("governance-lock", "A violation locks the store", "scratch copy",
              check_governance_lock),
    CheckSpec("signatures", "Checkpoint signatures and proofs", "checkpoint and snapshot",
              check_signatures),
    CheckSpec("quota", "Quotas refuse storage exhaustion", "snapshot and drill store",
              check_quota),
    CheckSpec("metadata-validation", "Metadata poisoning is refused", "scratch copy",
              check_metadata_validation),
    CheckSpec("concurrent-writers", "Concurrent writers without conflicts", "scratch copy",
              check_concurrent_writers),
    CheckSpec("authority", "Tokens and attributed authority", "scratch copy", check_authority),
    CheckSpec("legal-hold", "Legal holds preserve evidence", "scratch copy", check_legal_hold),
    CheckSpec("no-bulk-read", "No bulk reads", "store API and scratch copy",
              check_no_bulk_read),
    CheckSpec("no-conditional-write", "No conditional writes", "store API and scratch copy",
              check_no_conditional_write),
    CheckSpec("no-governance-relaxation", "No governance exceptions",
              "store API and scratch copy", check_no_governance_relaxation),
    CheckSpec("no-cross-product-query", "No cross-product queries", "scratch copy",
              check_no_cross_product_query),
    CheckSpec("no-replication", "No replication", "configuration and scratch copy",
              check_no_replication),
    CheckSpec("executor-misbehaves", "Drill: an executor misbehaves", "scratch copy",
              check_executor_misbehaves),
    CheckSpec("ai-escalation", "Drill: an AI attempts escalation", "scratch copy",
              check_ai_escalation),
    CheckSpec("boundary-relaxation", "Drill: a team relaxes boundaries", "scratch copy",
              check_boundary_relaxation),
)


def run_checks(ctx: CheckContext, only: set[str] | None = None,
               progress: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """Run every check (or ``only`` those) in order; a check never stops the others."""
    out = []
    for spec in CHECKS:
        if only is not None and spec.id not in only:
            continue
        result = run_check(ctx, spec.id, spec.title, spec.target, spec.fn)
        out.append(result)
        if progress is not None:
            progress(result)
    return out
