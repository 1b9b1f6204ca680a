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
import inspect
import json
import sqlite3
import threading
import time
from collections.abc import Callable
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
    ConfigError,
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
)
from depository.store._schema import schema_fingerprint
from depository.store.config import default_config_dict, parse_config
from depository.tlog import merkle
from depository.tlog.checkpoint import (
    Checkpoint,
    format_checkpoint,
    verify_checkpoint,
    verify_proof_file,
)
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
        size, _note = store.latest_checkpoint()
        rec.expect("latest signed checkpoint covers the certification record",
                   size >= ctx.checkpoint_size,
                   f"latest checkpoint size {size}, certification checkpoint {ctx.checkpoint_size}",
                   f"size >= {ctx.checkpoint_size}")
        rec.add_evidence("checkpoint", "checkpoint.txt", size=ctx.checkpoint_size)
    return "the store is open for writes (no governance lock) and its log is checkpointed"


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
        public = sorted(n for n in dir(Store) if not n.startswith("_"))
        verbs = [n for n in public if n.split("_")[0] in
                 ("delete", "update", "remove", "overwrite", "replace", "modify", "edit",
                  "truncate", "rewrite", "set")]
        rec.expect("the store's API has no update or delete operation", not verbs,
                   f"public operations: {', '.join(public)}" if not verbs
                   else f"found: {verbs}", "none named delete/update/remove/overwrite/...")
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
        r = _drill_put(s, p, "retained", b"x")
        rec.refused("dispose a fresh artifact",
                    lambda: s.dispose(datetime.now(UTC), actor="certify",
                                      artifact_ids=[r.artifact_id]), RetentionError)
        rec.expect("no operation removes log records",
                   not any(n for n in dir(Store) if "log" in n and
                           n.split("_")[0] in ("delete", "truncate", "prune", "compact")),
                   "the log has only appends", "no log-removing operation")
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
                cp = verify_proof_file(proof, merkle.leaf_hash(leaf), [ctx.verifier_key])
                rec.expect("a tlog-proof of that record verifies offline against the "
                           "certification checkpoint", cp.size == ctx.checkpoint_size,
                           f"included at {art.log_index} of {cp.size}", "verified")
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
        assert receipt.proof is not None
        verify_proof_file(receipt.proof, receipt.leaf_hash, [ctx.verifier_key]
                          if not ctx.throwaway_key else [_vkey_of(ctx, s)])
        rec.expect("the drill artifact's receipt carries a tlog-proof that verifies",
                   True, f"record {r.log_index} proven", "verified")
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
            verify_proof_file(proof, merkle.leaf_hash(leaf), [ctx.verifier_key])
            rec.expect("the certification.run record is included under the checkpoint "
                       "(tlog-proof)", True, f"record {idx} of {cp.size}", "verified")
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
                merkle.verify_consistency(prev.size, cp.size, proof_hashes, prev.root_hash,
                                          cp.root_hash)
                name = f"consistency-{prev.size}-{cp.size}.txt"
                (ctx.evidence_dir / name).write_text(
                    "".join(base64.b64encode(h).decode() + "\n" for h in proof_hashes))
                rec.expect("RFC 6962 consistency proof from the previous checkpoint to "
                           "today's verifies", True,
                           f"{len(proof_hashes)} hashes, {prev.size} -> {cp.size}",
                           "verified")
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


def check_metadata_validation(ctx: CheckContext, rec: Recorder) -> str:
    with ctx.open_copy("metadata", rec) as s:
        size = s.size()
        for pid, prod in sorted(s.config.products.items()):
            rec.refused(f"{pid}: metadata with a NaN (not exact JSON)",
                        _call(_drill_put, s, pid, "nan", b"x",
                              metadata={"score": float("nan")}),
                        MetadataError)
            rec.refused(f"{pid}: provenance with an integer beyond 2^53",
                        _call(_drill_put, s, pid, "big", b"x", provenance={"n": 2**60}),
                        MetadataError)
            validator = jsonschema.Draft202012Validator(prod.metadata_schema)
            if not validator.is_valid({}):
                rec.refused(f"{pid}: metadata missing the schema's required fields",
                            _call(_drill_put, s, pid, "empty", b"x", metadata={}),
                            MetadataError)
        rec.refused("a name with control characters",
                    lambda: s.put(_first_product(s), "bad\x00name", b"x"), MetadataError)
        rec.expect("nothing was written", s.size() == size, f"log size {s.size()}",
                   f"log size {size}")
    return "poisoned metadata and provenance are refused before anything is stored"


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
        hold = s.place_hold(matter="CERT-DRILL-1", reason="certification drill",
                            actor="legal:certify", artifact_ids=[r.artifact_id])
        rec.record_evidence(s, hold.placed_index, "copy")
        held_free = r.artifact_id in {a.id for a in s.disposable(FAR_FUTURE)}
        rec.expect("a held artifact is not disposable even after its retention",
                   not held_free, "DISPOSABLE" if held_free else "excluded", "excluded")
        # Disposal is judged at the store's clock: run the scratch copy's clock forward.
        s.clock = lambda: FAR_FUTURE
        rec.refused("dispose of the held artifact after its retention ran out",
                    lambda: s.dispose(FAR_FUTURE, actor="ops", artifact_ids=[r.artifact_id]),
                    RetentionError, match="hold")
        with s.open_content(s.get(p, r.artifact_id)) as f:
            rec.expect("the evidence is preserved", f.read() == b"evidence for a matter",
                       "bytes intact", "intact")
        seq = s.release_hold(hold.id, reason="matter closed (drill)", actor="legal:certify")
        rec.record_evidence(s, seq, "copy")
        # Holds already in the store (e.g. a product-wide matter) may still cover it.
        others = [h.id for h in s.holds_covering(s.get(p, r.artifact_id))]
        free = r.artifact_id in {a.id for a in s.disposable(FAR_FUTURE)}
        if others:
            rec.expect("after release it stays protected by the store's other holds "
                       f"({', '.join(others)})", not free,
                       "disposable" if free else "still held", "still held")
        else:
            rec.expect("after release it is disposable once retention has run out", free,
                       "disposable" if free else "not disposable", "disposable")
    return "legal holds block disposal and preserve evidence; place and release are logged"


def check_no_bulk_read(ctx: CheckContext, rec: Recorder) -> str:
    public = sorted(n for n in dir(Store) if not n.startswith("_"))
    bulk = [n for n in public if any(w in n for w in ("export", "dump", "scan", "bulk", "all"))]
    rec.expect("the store API has no bulk export or scan", not bulk,
               f"none among {len(public)} operations" if not bulk else str(bulk), "none")
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
        params = inspect.signature(Store.ls).parameters
        rec.expect("a listing has a default page size", params["limit"].default not in
                   (None, inspect.Parameter.empty), f"limit={params['limit'].default}",
                   "a finite default")
        if ctx.service_factory is not None:
            secret, _ = s.create_token(role="reader", product=p, actor="certify",
                                       note="bulk-read drill")

            async def drill(c: Any) -> None:
                r = await c.get(f"/v1/products/{p}/artifacts", params={"limit": "100000000"},
                                headers={"Authorization": f"Bearer {secret}"})
                rec.expect("HTTP: a listing asking for 100,000,000 rows is refused",
                           r.status_code == 400, f"HTTP {r.status_code}", "400")

            _http(ctx, s, drill)
        else:
            rec.note("the HTTP service is not installed; its page cap was not exercised")
    return "reads are per artifact or paginated listings; there is no bulk export"


def check_no_conditional_write(ctx: CheckContext, rec: Recorder) -> str:
    params = set(inspect.signature(Store.put).parameters)
    cond = sorted(x for x in params if any(w in x for w in
                                           ("if_", "match", "expect", "precondition",
                                            "overwrite", "force", "version")))
    rec.expect("put takes no condition, expectation or overwrite flag", not cond,
               f"parameters: {', '.join(sorted(params - {'self'}))}" if not cond
               else str(cond), "none")
    with ctx.open_copy("conditional", rec) as s:
        p = _first_product(s)
        _drill_put(s, p, "cond", b"v1")
        size = s.size()
        dup = _drill_put(s, p, "cond", b"v1")
        rec.expect("repeating a write is idempotent (no new record)",
                   dup.duplicate and s.size() == size, f"duplicate={dup.duplicate}",
                   "duplicate, log unchanged")
        rec.refused("any write of other bytes to the name", lambda: _drill_put(s, p, "cond",
                                                                               b"v2"),
                    WriteOnceError)
    return "there is no conditional or overwriting write"


def check_no_governance_relaxation(ctx: CheckContext, rec: Recorder) -> str:
    names = {n: set(inspect.signature(getattr(Store, n)).parameters)
             for n in dir(Store) if not n.startswith("_") and callable(getattr(Store, n))}
    bypass = sorted(f"{n}({x})" for n, ps in names.items() for x in ps
                    if any(w in x for w in ("force", "bypass", "override", "ignore_lock",
                                            "exception")))
    rec.expect("no operation has a force, bypass or override parameter", not bypass,
               "none" if not bypass else str(bypass), "none")
    with ctx.open_copy("relaxation", rec) as s:
        p = _first_product(s)
        r = _drill_put(s, p, "relax", b"x")
        hold = s.place_hold(matter="CERT-DRILL-2", reason="drill", actor="legal",
                            artifact_ids=[r.artifact_id])
        seq = s.lock("certification drill: governance relaxation", check="manual",
                     actor="admin:certify")
        rec.record_evidence(s, seq, "copy")
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
        rec.refused("unlock without a reason", lambda: s.unlock(reason="", actor="a"),
                    StoreError)
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


def check_no_replication(ctx: CheckContext, rec: Recorder) -> str:
    with Store.open(ctx.snapshot, readonly=True) as ro:
        base = default_config_dict(ro.origin)
    for key in ("replication", "regions", "replicas"):
        cfg = dict(base)
        cfg[key] = {"enabled": True}
        rec.refused(f"a configuration with a '{key}' setting",
                    _call(parse_config, cfg), ConfigError)
    path = ctx.copy("replication")
    signer = ctx.copy_signer(path)
    with Store.open(path, signer_key_file=signer):
        rec.refused("a second writer process on the same store",
                    lambda: Store.open(path, signer_key_file=signer).close(), StoreError,
                    match="another process")
    return "one store directory, one writer; the configuration has no replication"


def check_executor_misbehaves(ctx: CheckContext, rec: Recorder) -> str:
    with ctx.open_copy("executor", rec) as s:
        now = datetime.now(UTC)
        p = _first_product(s, "enforcement")
        secret, tok = s.create_token(role="writer", product=p, actor="admin",
                                     note="executor lane")
        actor = f"token:{tok.id}"
        _drill_put(s, p, "decision-1", b"decision A", actor=actor)
        rec.refused("the executor overwrites a decision",
                    lambda: _drill_put(s, p, "decision-1", b"decision B", actor=actor),
                    WriteOnceError)
        det = s.record(s.size() - 1)
        rec.expect("detection: the attempt is an artifact.refused record naming the executor",
                   det.type == "artifact.refused" and det.actor == actor,
                   f"{det.type} by {det.actor}", f"artifact.refused by {actor}")
        rec.record_evidence(s, det.seq, "copy")
        seq = s.revoke_token(tok.id, reason="executor overwrote a decision", actor="admin")
        rec.record_evidence(s, seq, "copy")
        rec.expect("response: the executor's token is revoked and stops working",
                   s.authenticate(secret, now) is None, "rejected", "rejected")
    return "detected by the refusal record; the executor's token was revoked"


def check_ai_escalation(ctx: CheckContext, rec: Recorder) -> str:
    with ctx.open_copy("ai-escalation", rec) as s:
        products = sorted(s.config.products)
        ai = _first_product(s, "ai-assistant")
        other = next(p for p in products if p != ai) if len(products) > 1 else ai
        _drill_put(s, other, "restricted", b"other product data")
        _, tok = s.create_token(role="writer", product=ai, actor="admin", note="AI agent")
        actor = f"token:{tok.id}"
        rec.refused(f"the AI agent reads {other}'s data with its {ai} scope",
                    lambda: s.get(ai, f"{DRILL}/restricted"), NotFoundError,
                    expected="not found")
        r = _drill_put(s, ai, "conversation", b"log", actor=actor)
        shorter = datetime.fromisoformat(r.retain_until.replace("Z", "+00:00")) - timedelta(
            days=365)
        # A writer token may not touch retention at all (the store judges it by the
        # log's authority rules, before the retention rule).
        rec.refused("the AI agent shortens its own retention",
                    lambda: s.extend_retention(ai, r.artifact_id, shorter, actor=actor,
                                               reason="cleanup"),
                    (AuthorityError, RetentionError))
        rec.refused("the AI agent overwrites its log",
                    lambda: _drill_put(s, ai, "conversation", b"edited", actor=actor),
                    WriteOnceError)
        rec.record_evidence(s, s.size() - 1, "copy")
        seq = s.lock("AI escalation attempts by " + actor, check="manual", actor="admin")
        rec.record_evidence(s, seq, "copy")
        rec.refused("response: writes halt under the lock",
                    lambda: _drill_put(s, ai, "more", b"x", actor=actor),
                    GovernanceLockedError)
        seq = s.unlock(reason="reviewed: agent token revoked", actor="admin")
        rec.record_evidence(s, seq, "copy")
        rec.expect("recovery: unlock is logged with its reason",
                   s.record(seq).type == "governance.unlock", s.record(seq).type,
                   "governance.unlock")
    return "each escalation attempt was refused and logged; a lock halted writes"


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
