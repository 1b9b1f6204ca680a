"""A failed or missing check, or a failing or missing load limit, is reported as such and
the verdict follows; never a pass by default."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from _sigstore_fixture import make_store, write_results

from depository.certification._framework import CheckContext, Missing, Recorder, run_check
from depository.certification.report import run_certification
from depository.tlog import merkle
from depository.tlog.record import encode_record, parse_record


def _tamper_record(store: Path) -> int:
    """An attacker with file access edits a record's provenance and hides the trigger drop."""
    conn = sqlite3.connect(store / "depository.db", isolation_level=None)
    triggers = [r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type='trigger'")]
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        conn.execute(f'DROP TRIGGER "{name}"')
    idx, leaf = conn.execute("SELECT idx, leaf FROM log WHERE idx = 1").fetchone()
    rec = parse_record(bytes(leaf), index=idx)
    body = {**rec.body, "provenance": {"author": "mallory"}}
    new = encode_record(type(rec)(seq=rec.seq, time=rec.time, type=rec.type, actor=rec.actor,
                                  product=rec.product, body=body))
    conn.execute("UPDATE log SET leaf = ?, leaf_hash = ? WHERE idx = ?",
                 (new, merkle.leaf_hash(new), idx))
    for sql in triggers:
        conn.execute(sql)
    conn.close()
    return int(idx)


def test_tampered_store_fails_certification(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store")
    _tamper_record(store)
    res = run_certification(store, write_results(tmp_path / "load"), tmp_path / "out",
                            render=False)
    d = res.data
    by_id = {c["id"]: c for c in d["checks"]}
    assert by_id["replay"]["status"] == "fail"
    assert d["verdict"]["result"] == "fail"
    assert any(r.startswith("check replay FAIL") for r in d["verdict"]["reasons"])
    g2 = next(g for g in d["guarantees"] if g["id"] == "G2")
    assert g2["status"] == "fail"
    t8 = next(t for t in d["threats"] if t["id"] == "T8")
    assert t8["status"] == "fail"
    assert any(e["kind"] == "finding" for e in by_id["replay"]["evidence"])


def test_failing_and_missing_limits_fail_the_verdict(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store")
    results = write_results(tmp_path / "load", drop=("artifact-count",), overrides={
        # The results claim a pass the figures do not support.
        "write-throughput": {"measured": 400.0, "pass": True},
        "query-response": {"measured": None, "status": "not-measured", "pass": False,
                           "reason": "the server died"},
        "total-storage": {"method": "a prose description only"},
    })
    res = run_certification(store, results, tmp_path / "out", only={"store-state"})
    limits = {x["id"]: x for x in res.data["scale_limits"]["limits"]}
    assert limits["write-throughput"]["status"] == "fail"
    assert "treated as a failure" in limits["write-throughput"]["note"]
    assert limits["artifact-count"]["status"] == "missing"
    assert limits["query-response"]["status"] == "missing"
    assert "server died" in limits["query-response"]["note"]
    assert limits["total-storage"]["status"] == "fail"  # how it was obtained is unknown
    assert limits["artifact-size"]["status"] == "pass"
    reasons = res.data["verdict"]["reasons"]
    assert res.data["verdict"]["result"] == "fail"
    assert any("Write throughput FAIL" in r for r in reasons)
    assert any("Artifact count MISSING" in r for r in reasons)
    assert res.data["summary"]["checks"]["missing"] == 22
    assert res.review_pdf is not None
    text = subprocess.run(["pdftotext", str(res.review_pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "NOT CERTIFIED" in text and "MISSING" in text


def test_missing_verifier_is_reported_missing(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "depository.verifier.store", None)
    store = make_store(tmp_path / "store")
    res = run_certification(store, write_results(tmp_path / "load"), tmp_path / "out",
                            only={"replay", "signatures"}, render=False)
    by_id = {c["id"]: c for c in res.data["checks"]}
    assert by_id["replay"]["status"] == "missing"
    assert "not installed" in by_id["replay"]["summary"]
    assert by_id["signatures"]["status"] == "pass"
    assert res.data["verdict"]["result"] == "fail"


def test_check_statuses_never_default_to_pass(tmp_path: Path) -> None:
    ctx = CheckContext(store_dir=tmp_path, snapshot=tmp_path, scratch=tmp_path,
                       evidence_dir=tmp_path, verifier_key="k", checkpoint_note=b"",
                       checkpoint_size=0, checkpoint_root=b"", origin="o")

    def nothing(ctx: CheckContext, rec: Recorder) -> str:
        return "ran nothing"

    def broken(ctx: CheckContext, rec: Recorder) -> str:
        rec.expect("first step", True, "fine")
        raise RuntimeError("boom")

    def missing(ctx: CheckContext, rec: Recorder) -> str:
        raise Missing("no tool")

    def accepted(ctx: CheckContext, rec: Recorder) -> str:
        rec.refused("an update", lambda: 1)
        return "x"

    assert run_check(ctx, "a", "A", "t", nothing).status == "error"
    r = run_check(ctx, "b", "B", "t", broken)
    assert r.status == "error" and "RuntimeError: boom" in r.summary
    assert run_check(ctx, "c", "C", "t", missing).status == "missing"
    r = run_check(ctx, "d", "D", "t", accepted)
    assert r.status == "fail" and "ACCEPTED" in r.steps[0].observed
