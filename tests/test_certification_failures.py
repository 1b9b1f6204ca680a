"""A failed or missing check, or a failing or missing load limit, is reported as such and
the verdict follows; never a pass by default."""

from __future__ import annotations

import functools
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _sigstore_fixture import COMMIT, make_store, write_results

from depository.certification._framework import CheckContext, Missing, Recorder, run_check
from depository.certification.checks import CHECKS
from depository.certification.report import CertifyError
from depository.certification.report import run_certification as _run_certification
from depository.service import create_app
from depository.tlog import merkle
from depository.tlog.record import encode_record, parse_record

# The service sits above certification: the caller injects its app factory.
run_certification = functools.partial(_run_certification, service_factory=create_app)


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
                            commit=(COMMIT, False),
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
        # An extrapolation from too few points: insufficient data, never a pass.
        "total-storage": {"details": {"extrapolation": {
            "model": "p99 = a + b log10 n", "points": [{"x": 300, "y": 20.0},
                                                      {"x": 3000, "y": 19.0}],
            "uncertainty": None, "status": "insufficient-data",
            "reason": "insufficient data: 2 distinct data point(s)"}}},
    })
    res = run_certification(store, results, tmp_path / "out", only={"store-state"},
                            commit=(COMMIT, False))
    limits = {x["id"]: x for x in res.data["scale_limits"]["limits"]}
    assert limits["write-throughput"]["status"] == "fail"
    assert "treated as a failure" in limits["write-throughput"]["note"]
    assert limits["artifact-count"]["status"] == "missing"
    assert limits["query-response"]["status"] == "missing"
    assert "server died" in limits["query-response"]["note"]
    assert limits["total-storage"]["status"] == "insufficient-data"
    assert "insufficient data" in limits["total-storage"]["note"]
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
                            commit=(COMMIT, False),
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


# ------------------------------------------------- load-results policy (issue 14, finding 3)
def _passing_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every check 'passes' (stubbed), so the verdict turns on the load results alone."""
    from depository.certification import report
    from depository.certification._framework import CheckResult, Step

    def run_checks(ctx: object, only: object, progress: object = None) -> list[CheckResult]:
        return [CheckResult(c.id, c.title, c.target, "pass", "stub", [
            Step("stub", "holds", "holds", True)], [], "2026-01-01T00:00:00Z", 0)
            for c in CHECKS]

    monkeypatch.setattr(report, "run_checks", run_checks)


def _accept(store: Path, ids: dict[str, str]) -> None:
    (store / "certification").mkdir(exist_ok=True)
    (store / "certification" / "signoffs.yaml").write_text(
        yaml.safe_dump({"accept_extrapolated": ids}))


ACCEPT_BOTH = {"total-storage": "fitted over 3 orders of magnitude",
               "audit-trail": "proof size is log2 n by construction"}


def test_quick_profile_results_only_make_a_demo_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _passing_checks(monkeypatch)
    store = make_store(tmp_path / "store")
    _accept(store, ACCEPT_BOTH)
    res = run_certification(store, write_results(tmp_path / "load", profile="quick"),
                            tmp_path / "out", commit=(COMMIT, False))
    v = res.data["verdict"]
    assert v["result"] == "demo" and v["reasons"] == [], v
    assert any("'quick' profile" in r for r in v["demo_reasons"])
    assert res.review_pdf is not None
    cover = " ".join(subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(res.review_pdf),
                                     "-"], capture_output=True, text=True,
                                    check=True).stdout.split())
    assert "DEMO / NOT A CERTIFICATION" in cover and "CERTIFIED" not in cover.replace(
        "NOT A CERTIFICATION", "")
    # A scaled-down figure, even in the certify profile, makes it a DEMO too.
    res = run_certification(store, write_results(tmp_path / "load2", overrides={
        "artifact-size": {"figure": "scaled-down", "profile_target": 32_000_000,
                          "measured": 32_000_000}}), tmp_path / "out2",
        commit=(COMMIT, False), render=False)
    assert res.data["verdict"]["result"] == "demo"
    assert any("Artifact size: scaled down" in r for r in res.data["verdict"]["demo_reasons"])


def test_extrapolated_limits_pass_only_when_the_signoffs_accept_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _passing_checks(monkeypatch)
    store = make_store(tmp_path / "store")
    results = write_results(tmp_path / "load")
    res = run_certification(store, results, tmp_path / "out", commit=(COMMIT, False),
                            render=False)
    v = res.data["verdict"]
    assert v["result"] == "fail" and v["accepted_extrapolations"] == []
    assert sum("does not accept it" in r for r in v["reasons"]) == 2, v["reasons"]
    _accept(store, {"total-storage": ACCEPT_BOTH["total-storage"]})
    res = run_certification(store, results, tmp_path / "out2", commit=(COMMIT, False),
                            render=False)
    assert [r for r in res.data["verdict"]["reasons"] if "accept" in r] == [
        "scale limit Audit trail: extrapolated, and the sign-off configuration does not "
        "accept it (accept_extrapolated)"]
    _accept(store, ACCEPT_BOTH)
    res = run_certification(store, results, tmp_path / "out3", commit=(COMMIT, False),
                            render=False)
    assert res.data["verdict"]["result"] == "pass", res.data["verdict"]
    _accept(store, {"total-storage": ""})
    with pytest.raises(CertifyError, match="rationale"):
        run_certification(store, results, tmp_path / "out4", commit=(COMMIT, False))


def test_results_are_schema_valid_and_bound_to_store_and_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _passing_checks(monkeypatch)
    store = make_store(tmp_path / "store")
    _accept(store, ACCEPT_BOTH)
    # Hand-written results outside the schema are refused, saying where.
    load = write_results(tmp_path / "load")
    doc = json.loads((load / "results.json").read_text())
    del doc["limits"][3]["errors"]
    doc["limits"][0]["figure"] = "guessed"
    (load / "results.json").write_text(json.dumps(doc))
    with pytest.raises(CertifyError, match=r"schema.*at /limits/0/figure") as err:
        run_certification(store, load, tmp_path / "out", commit=(COMMIT, False))
    assert err.value.usage
    # Measured on other code, or against other targets than the store's: not bound.
    res = run_certification(store, write_results(tmp_path / "l2", commit="beef" * 10),
                            tmp_path / "out2", commit=(COMMIT, False), render=False)
    assert res.data["verdict"]["result"] == "fail"
    assert any("measured on commit beefbeef" in r for r in res.data["verdict"]["reasons"])
    res = run_certification(store, write_results(tmp_path / "l3", overrides={
        "total-storage": {"target": 10_000_000_000, "profile_target": 10_000_000_000}}),
        tmp_path / "out3", commit=(COMMIT, False), render=False)
    assert any("store is configured for 1000000000000" in r
               for r in res.data["verdict"]["reasons"]), res.data["verdict"]
    res = run_certification(store, write_results(tmp_path / "l4", dirty=True),
                            tmp_path / "out4", commit=(COMMIT, False), render=False)
    assert res.data["verdict"]["result"] == "demo"
    assert any("uncommitted" in r for r in res.data["verdict"]["demo_reasons"])


def test_http_checks_need_an_injected_service(tmp_path: Path) -> None:
    # Certification sits below the service (docs/adr/0006-layers.md): without an injected
    # app factory the HTTP checks cannot run, and saying so beats a silent fallback.
    store = make_store(tmp_path / "store")
    with pytest.raises(CertifyError, match="service_factory"):
        _run_certification(store, write_results(tmp_path / "load"), tmp_path / "out",
                           commit=(COMMIT, False), render=False)
    assert not (tmp_path / "out").exists()
