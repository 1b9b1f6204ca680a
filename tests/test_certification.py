"""Certification end to end: executed checks, canonical report data, sign-offs (Ed25519 and
a private Sigstore instance), PDF/A-3b with attachments, PAdES signature, and offline
verification with independent tools (pdfsig, pyhanko, pdfdetach)."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from _sigstore_fixture import (
    COMMIT,
    IDENTITY,
    ISSUER,
    loopback_tsa,
    make_store,
    sigstore_env,
    write_results,
)
from click.testing import CliRunner

from depository.certification import content
from depository.certification.local_sigstore import LocalSigstore
from depository.certification.pdf import attachments, create_demo_ca, dummy_timestamper
from depository.certification.report import CertifyError, ReportDir, finalize
from depository.certification.report import run_certification as _run_certification
from depository.certification.signoffs import SignoffError, role_slug
from depository.cli._certify import certify
from depository.service import create_app
from depository.signing import generate_key, sign_note
from depository.store import Store
from depository.tlog.checkpoint import verify_checkpoint, verify_proof_file
from depository.tlog.merkle import leaf_hash
from depository.tlog.record import canonical_json

# The service sits above certification: the caller injects its app factory.
run_certification = functools.partial(_run_certification, service_factory=create_app)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
__all__ = ["sigstore_env"]  # a fixture, imported to be available here
SIGSTORE_ROLE = "Executor Lane"
ACCEPTED = {"total-storage": "growth fitted over three orders of magnitude; the disk is "
                             "provisioned for 1.2 TB",
            "audit-trail": "proof size is ceil(log2 n) hashes by construction"}
PYHANKO = str(Path(sys.executable).with_name("pyhanko"))


def _setup(base: Path) -> dict[str, Any]:
    store = make_store(base / "store")
    results = write_results(base / "load")
    inst = LocalSigstore.create("sigstore.cert-test")
    inst.save(base / "sigstore")
    keys: dict[str, str] = {}
    signers: list[dict[str, Any]] = []
    for role, _ in content.ROLES:
        if role == SIGSTORE_ROLE:
            signers.append({"role": role, "name": "Lane", "sigstore": {
                "identity": IDENTITY, "issuer": ISSUER,
                "trust_config": str(base / "sigstore" / "trust-config.json")}})
            continue
        skey, vkey = generate_key(role_slug(role))
        keys[role] = skey
        (base / f"{role_slug(role)}.key").write_text(skey + "\n")
        signers.append({"role": role, "name": f"{role} person", "ed25519_key": vkey})
    (store / "certification").mkdir()
    # The signers accept the two extrapolated limits, by id and with the rationale the cover
    # states; without this an extrapolated figure cannot certify.
    (store / "certification" / "signoffs.yaml").write_text(yaml.safe_dump({
        "signers": signers, "accept_extrapolated": ACCEPTED}))
    return {"store": store, "results": results, "inst": inst, "keys": keys,
            "vkey": (store / "keys" / "log.vkey").read_text().strip()}


@pytest.fixture(scope="module")
def certified(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("certify")
    env = _setup(base)
    env["run"] = run_certification(env["store"], env["results"], base / "report",
                                   commit=(COMMIT, False))
    env["report"] = base / "report"
    env["ca"] = create_demo_ca(base / "ca")
    return env


def _pdftext(pdf: Path, page: int | None = None) -> str:
    args = ["pdftotext", "-layout"]
    if page is not None:
        args += ["-f", str(page), "-l", str(page)]
    return subprocess.run([*args, str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout


def _pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    return int(next(x for x in info.stdout.splitlines() if x.startswith("Pages:")).split()[1])


# --------------------------------------------------------------------------- report data
def test_report_data_from_executed_checks(certified: dict[str, Any]) -> None:
    d = certified["run"].data
    out: Path = certified["report"]
    assert d["verdict"]["result"] == "pass" and d["verdict"]["reasons"] == [], d["verdict"]
    assert d["verdict"]["demo_reasons"] == []
    assert {a["id"]: a["rationale"] for a in d["verdict"]["accepted_extrapolations"]} \
        == ACCEPTED
    assert len(d["checks"]) == 23 and all(c["status"] == "pass" for c in d["checks"])
    for c in d["checks"]:
        assert c["steps"] and all(s["ok"] for s in c["steps"]), c["id"]
    assert [g["id"] for g in d["guarantees"]] == [f"G{i}" for i in range(1, 8)]
    assert [t["id"] for t in d["threats"]] == [f"T{i}" for i in range(1, 11)]
    assert len(d["refusals"]) == 7 and len(d["scenarios"]) == 7
    assert {p["id"] for p in d["products"]} == {"ai-assistant", "ai-avatar", "gurukul",
                                                "enforcement"}
    assert all(p["isolation"] == "pass" and p["quota_enforced"] == "pass"
               for p in d["products"])
    methods = {x["id"]: x["method"] for x in d["scale_limits"]["limits"]}
    assert methods["total-storage"] == "extrapolated" and methods["audit-trail"] == "extrapolated"
    assert d["scale_limits"]["environment"]["cpu"] == "2 cores"
    # The tamper drill staged every kind of tampering and each was caught.
    tamper = next(c for c in d["checks"] if c["id"] == "tamper-drill")
    assert sum(1 for e in tamper["evidence"] if e["kind"] == "tamper" and e["caught"]) == 9
    # Scenario records cite drill records by index and leaf hash.
    f1 = next(f for f in d["scenarios"] if f["id"] == "F1")
    assert {"artifact.refused", "token.revoke"} <= {r["type"] for r in f1["records"]}
    # Canonical JSON and its digest.
    raw = (out / "report.json").read_bytes()
    assert canonical_json(json.loads(raw)) == raw
    sha = hashlib.sha256(raw).hexdigest()
    assert (out / "report.digest").read_text() == f"sha256:{sha}\n"
    # The checkpoint covers the certification.run record, proven by the evidence file.
    cp, _ = verify_checkpoint((out / "checkpoint.txt").read_bytes(), [certified["vkey"]])
    assert cp.size == d["checkpoint"]["size"]
    idx = d["checkpoint"]["certification_record_index"]
    with Store.open(certified["store"], readonly=True) as s:
        assert s.record(idx).type == "certification.run"
        assert s.record(idx).body["report_id"] == d["report_id"]
        # Issue 14 finding 10: the verdict and validity are logged after the checks.
        result = [s.record(i) for i in range(idx + 1, s.size())
                  if s.record(i).type == "certification.result"]
        assert len(result) == 1, "no certification.result record after the run"
        body = result[0].body
        assert body["report_id"] == d["report_id"] and body["verdict"] == "pass"
        assert body["valid_until"] == d["validity"]["until"]
        assert body["report_sha256"] == hashlib.sha256(
            (out / "report.json").read_bytes()).hexdigest()
    assert d["validity"]["recertification_due"] == d["validity"]["until"]
    leaf = (out / "evidence" / "certification-run.leaf.json").read_bytes()
    verify_proof_file((out / "evidence" / "certification-run.tlog-proof").read_bytes(),
                      leaf_hash(leaf), [certified["vkey"]])
    # OSCAL assessment results.
    ar = json.loads((out / "report.oscal.json").read_text())["assessment-results"]
    assert ar["metadata"]["oscal-version"] == "1.2.3"
    result = ar["results"][0]
    assert len(result["observations"]) == 23
    states = {f["target"]["target-id"]: f["target"]["status"]["state"]
              for f in result["findings"]}
    assert states["depository-guarantee-g1"] == "satisfied"
    assert len(states) == 7 + 7 + 10 + 7
    # The review copy is a draft.
    assert "DRAFT" in _pdftext(out / "review.pdf", 1)


def test_review_pdf_layout(certified: dict[str, Any]) -> None:
    pdf = certified["report"] / "review.pdf"
    n = _pages(pdf)
    assert n >= 8
    text = _pdftext(pdf)
    for heading in ("Executive summary", "1. Guarantees", "2. Threats T1–T10", "3. Refusals",
                    "4. Products", "5. Governance failure scenarios", "6. Scale limits",
                    "7. Checks executed", "8. Sign-off", "Appendix B. Verifying this report"):
        assert heading in text, heading
    pages = text.split("\f")[:-1]
    assert len(pages) == n
    for i, t in enumerate(pages, 1):
        assert f"Page {i} of {n}" in t and "DRAFT" in t
    assert "EXTRAPOLATED" in text
    # The cover does not let scaled-down figures pass for full-scale ones.
    by = certified["run"].data["summary"]["limits_by_method"]
    cover = " ".join(_pdftext(pdf, 1).split())
    assert f"only {by['measured']} measured at the full configured limit" in cover, cover
    assert f"{by['scaled-down']} scaled down" in cover
    # The extrapolations the signers accepted are stated on the cover with their rationale.
    assert "accepted by the sign-offs" in cover and "three orders of magnitude" in cover
    assert "PENDING SIGN-OFF" in text


# --------------------------------------------------------------------------- the whole cycle
def test_full_cycle(certified: dict[str, Any], tmp_path: Path, sigstore_env: None,
                    caplog: pytest.LogCaptureFixture) -> None:
    report = tmp_path / "report"
    shutil.copytree(certified["report"], report)
    inst: LocalSigstore = certified["inst"]
    keys: dict[str, str] = certified["keys"]
    ca = certified["ca"]
    runner = CliRunner()
    digest = (report / "report.digest").read_bytes()

    # Finalize refuses before every sign-off is in.
    res = runner.invoke(certify, ["finalize", str(report), "--signing-key", str(ca.signer_key),
                                  "--signing-cert", str(ca.signer_cert)])
    assert res.exit_code == 1 and "not every required sign-off" in res.output
    assert not (report / "report.pdf").exists()

    # Rejected sign-offs: wrong key, wrong digest, wrong identity, wrong instance.
    other, _ = generate_key("intruder")
    (tmp_path / "intruder.key").write_text(other)
    res = runner.invoke(certify, ["sign-off", str(report), "--role", "Bucket Owner",
                                  "--key", str(tmp_path / "intruder.key")])
    assert res.exit_code == 1 and "unknown key" in res.output
    stale = sign_note(b"depository certification sign-off\nreport sha256:" + b"0" * 64
                      + b"\nrole Bucket Owner\ntime 2026-01-01T00:00:00Z\n",
                      keys["Bucket Owner"])
    (tmp_path / "stale.note").write_bytes(stale)
    res = runner.invoke(certify, ["sign-off", str(report), "--role", "Bucket Owner",
                                  "--signed-note", str(tmp_path / "stale.note")])
    assert res.exit_code == 1 and "not this report" in res.output
    for data, ident, instance, why in (
        (digest, "mallory@example.org", inst, "SANs do not match"),
        (b"sha256:" + b"1" * 64 + b"\n", IDENTITY, inst, "does not sign this report"),
        (digest, IDENTITY, LocalSigstore.create("evil.test"), "certificate chain"),
    ):
        (tmp_path / "b.json").write_text(instance.sign(data, identity=ident, issuer=ISSUER))
        res = runner.invoke(certify, ["sign-off", str(report), "--role", SIGSTORE_ROLE,
                                      "--sigstore-bundle", str(tmp_path / "b.json")])
        assert res.exit_code == 1 and why in res.output, res.output
    assert not list((report / "signoffs").glob("*.json"))

    # A draft is signed and says DRAFT on every page.
    res = runner.invoke(certify, ["finalize", str(report), "--draft", "--signing-key",
                                  str(ca.signer_key), "--signing-cert", str(ca.signer_cert)])
    assert res.exit_code == 0, res.output
    draft = report / "draft-1.pdf"
    pages = _pdftext(draft).split("\f")[:-1]
    assert len(pages) == _pages(draft) and all("DRAFT" in p for p in pages)
    res = runner.invoke(certify, ["status", str(report)])
    assert res.exit_code == 1 and "PENDING SIGN-OFF" in res.output

    # Every signer signs: four Ed25519 keys, one Sigstore bundle (pinned trust config).
    for role in keys:
        res = runner.invoke(certify, ["sign-off", str(report), "--role", role, "--key",
                                      str(certified["store"].parent / f"{role_slug(role)}.key")])
        assert res.exit_code == 0, res.output
    (tmp_path / "lane.json").write_text(inst.sign(digest, identity=IDENTITY, issuer=ISSUER))
    res = runner.invoke(certify, ["sign-off", str(report), "--role", SIGSTORE_ROLE,
                                  "--sigstore-bundle", str(tmp_path / "lane.json")])
    assert res.exit_code == 0 and "inclusion proof" in res.output, res.output
    res = runner.invoke(certify, ["sign-off", str(report), "--role", "Bucket Owner", "--key",
                                  str(certified["store"].parent / "bucket-owner.key")])
    assert res.exit_code == 1 and "already signed" in res.output

    # Finalize: PAdES B-T with a timestamp from a loopback TSA.
    with loopback_tsa(dummy_timestamper(ca.tsa_cert, ca.tsa_key)) as url:
        res = runner.invoke(certify, ["finalize", str(report), "--signing-key",
                                      str(ca.signer_key), "--signing-cert", str(ca.signer_cert),
                                      "--chain", str(ca.ca_cert), "--tsa", url])
    assert res.exit_code == 0, res.output
    pdf = report / "report.pdf"
    res = runner.invoke(certify, ["finalize", str(report), "--signing-key", str(ca.signer_key),
                                  "--signing-cert", str(ca.signer_cert)])
    assert res.exit_code == 1 and "never rewritten" in res.output
    text = _pdftext(pdf)
    assert "CERTIFIED" in text and "DRAFT" not in _pdftext(pdf, 1)
    assert text.count("SIGNED") >= 5

    # Independent tools accept it.
    sig = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True)
    assert "Signature is Valid" in sig.stdout and "Total document signed" in sig.stdout
    val = subprocess.run([PYHANKO, "sign", "validate",
                          "--trust", str(ca.ca_cert), "--no-revocation-check", str(pdf)],
                         capture_output=True, text=True)
    assert val.returncode == 0 and "INTACT:TRUSTED" in val.stdout, val.stdout + val.stderr
    assert "TIMESTAMP_TOKEN<INTACT:TRUSTED>" in val.stdout
    det = subprocess.run(["pdfdetach", "-list", str(pdf)], capture_output=True, text=True,
                         check=True).stdout
    for name in ("report.json", "loadtest-results.json", "checkpoint.txt", "signoffs.json"):
        assert name in det
    atts = attachments(pdf.read_bytes())
    assert {atts[n][1] for n in ("report.json", "loadtest-results.json", "checkpoint.txt")} \
        == {"Data"}
    assert atts["report.json"][0] == (report / "report.json").read_bytes()
    head = pdf.read_bytes()[:2048]
    assert b"pdfaid" in pdf.read_bytes() or b"PDF-1.7" in head

    # Our verifier: authentic, final, certified; status agrees.
    res = runner.invoke(certify, ["verify", str(pdf), "--trust", str(ca.ca_cert), "--key",
                                  certified["vkey"]])
    assert res.exit_code == 0 and "CERTIFIED" in res.output, res.output
    res = runner.invoke(certify, ["status", str(pdf), "--json"])
    st = json.loads(res.output)
    assert res.exit_code == 0 and st["state"] == "CERTIFIED" and st["pending"] == []
    assert 170 <= st["days_to_expiry"] <= 190
    # Issue 14 finding 10: recertification is due when the six-month validity ends.
    assert st["recertification_due"] == st["valid_until"]
    # The wrong log key or trust anchor is reported.
    other_vkey = generate_key("cert.test/log")[1]
    res = runner.invoke(certify, ["verify", str(pdf), "--key", other_vkey])
    assert res.exit_code == 1

    # Issue 14 finding 2: without a trust anchor the signer is unknown — never CERTIFIED.
    res = runner.invoke(certify, ["verify", str(pdf), "--key", certified["vkey"]])
    assert res.exit_code == 1, res.output
    assert "VERDICT: INTEGRITY ONLY" in res.output and "signer unknown" in res.output
    assert "Traceback" not in res.output and "PathBuildingError" not in res.output
    assert not [r for r in caplog.records if r.exc_info], "pyHanko logged a traceback"
    # Anyone can re-sign the same report data with their own CA: without --trust that is
    # indistinguishable, so it must not certify; with the real anchor it does not chain.
    forged_dir = tmp_path / "forged"
    shutil.copytree(report, forged_dir)
    (forged_dir / "report.pdf").unlink()
    evil = create_demo_ca(tmp_path / "evil-ca", organisation="Mallory Inc")
    forged, _ = finalize(forged_dir, key_file=evil.signer_key, cert_file=evil.signer_cert)
    res = runner.invoke(certify, ["verify", str(forged), "--key", certified["vkey"], "--json"])
    out = json.loads(res.output)
    assert res.exit_code == 1 and not out["certified"] and not out["anchored"], out
    assert out["verdict"].startswith("INTEGRITY ONLY")
    res = runner.invoke(certify, ["verify", str(forged), "--trust", str(ca.ca_cert), "--key",
                                  certified["vkey"]])
    assert res.exit_code == 1 and "does not chain to the given trust anchor" in res.output

    # One tampered byte: all three verifiers reject it.
    blob = bytearray(pdf.read_bytes())
    pos = blob.find(b"/Producer")
    blob[pos + 12] ^= 0x01
    bad = tmp_path / "tampered.pdf"
    bad.write_bytes(bytes(blob))
    sig = subprocess.run(["pdfsig", str(bad)], capture_output=True, text=True)
    assert "Signature is Valid" not in sig.stdout
    val = subprocess.run([PYHANKO, "sign", "validate",
                          "--trust", str(ca.ca_cert), "--no-revocation-check", str(bad)],
                         capture_output=True, text=True)
    assert ":INTACT:" not in val.stdout, val.stdout
    res = runner.invoke(certify, ["verify", str(bad), "--trust", str(ca.ca_cert), "--key",
                                  certified["vkey"]])
    assert res.exit_code == 1 and "NOT AUTHENTIC" in res.output
    # A digest mismatch is reported as such, not also as an untrusted signer.
    assert "digest mismatch" in res.output
    assert "does not chain" not in res.output, res.output

    # The dashboard's certification card: the same verdict, and what it was checked against.
    from depository.service._dashboard_data import verify_signed_report

    today = datetime.now(UTC).date()
    card = verify_signed_report(pdf, certified["vkey"], today, ca.ca_cert)
    assert card["state"] == "CERTIFIED" and card["days_left"] == st["days_to_expiry"]
    assert any("chains to the trust anchor" in x for x in card["checked_against"])
    untrusted = verify_signed_report(pdf, certified["vkey"], today)
    assert untrusted["state"] == "INTEGRITY ONLY"
    assert any(x.startswith("signer unknown") for x in untrusted["problems"])
    assert verify_signed_report(pdf, other_vkey, today)["state"] != "CERTIFIED"
    assert verify_signed_report(bad, certified["vkey"], today, ca.ca_cert)["state"] \
        == "NOT AUTHENTIC"


def test_previous_certification_and_diff(certified: dict[str, Any], tmp_path: Path) -> None:
    """A second certification anchored on the first: consistency proof and diff."""
    ca = certified["ca"]
    store = tmp_path / "store"
    shutil.copytree(certified["store"], store)
    first = tmp_path / "first"
    shutil.copytree(certified["report"], first)
    p1, _ = finalize(first, key_file=ca.signer_key, cert_file=ca.signer_cert, draft=True)
    with Store.open(store) as s:
        s.put("gurukul", "later.txt", b"written after the first certification")
    res2 = run_certification(store, write_results(tmp_path / "load2", overrides={
        "write-throughput": {"measured": 1650.0}}), tmp_path / "second", previous=p1,
        only={"store-state", "replay", "signatures"}, render=False, commit=(COMMIT, False))
    d = res2.data
    assert d["previous"]["report_id"] == certified["run"].data["report_id"]
    cons = d["previous"]["consistency"]
    assert cons["size1"] == certified["run"].data["checkpoint"]["size"] < cons["size2"]
    assert (tmp_path / "second" / cons["file"]).is_file()
    sig = next(c for c in d["checks"] if c["id"] == "signatures")
    assert sig["status"] == "pass"
    assert any("consistency proof" in s["action"] for s in sig["steps"])
    assert d["verdict"]["result"] == "fail"  # only three checks ran: never a pass
    assert any("not run" in r for r in d["verdict"]["reasons"])
    runner = CliRunner()
    res = runner.invoke(certify, ["diff", str(p1), str(tmp_path / "second"), "--key",
                                  certified["vkey"]])
    assert res.exit_code == 0, res.output
    assert "VERIFIED" in res.output and "Write throughput" in res.output
    assert "1412.5" in res.output and "1650" in res.output, res.output
    # Against a store rolled back to before the first certification, the proof fails.
    rolled = tmp_path / "rolled"
    make_store(rolled)
    res3 = run_certification(rolled, certified["results"], tmp_path / "third", previous=p1,
                             commit=(COMMIT, False),
                             only={"signatures"}, render=False,
                             verifier_key=(rolled / "keys" / "log.vkey").read_text().strip())
    sig3 = next(c for c in res3.data["checks"] if c["id"] == "signatures")
    assert sig3["status"] in ("fail", "error")


def test_cli_usage_and_help(certified: dict[str, Any], tmp_path: Path) -> None:
    runner = CliRunner()
    for cmd in ("run", "sign-off", "finalize", "verify", "status", "diff"):
        res = runner.invoke(certify, [cmd, "--help"])
        assert res.exit_code == 0 and "Example" in res.output, cmd
    res = runner.invoke(certify, ["run", "--store", str(certified["store"]), "--results",
                                  str(certified["results"]), "--out", str(certified["report"])])
    assert res.exit_code == 2 and "written once" in res.output
    res = runner.invoke(certify, ["run", "--store", str(certified["store"]), "--results",
                                  str(certified["results"]), "--out", str(tmp_path / "x"),
                                  "--only", "nonsense"])
    assert res.exit_code == 2 and "unknown check" in res.output
    with pytest.raises(CertifyError, match="written once"):
        run_certification(certified["store"], certified["results"], certified["report"])
    rd = ReportDir.load(certified["report"])
    with pytest.raises(SignoffError, match="not a required signer"):
        from depository.certification.report import sign_off

        sign_off(certified["report"], "Janitor", signer_key=certified["keys"]["Bucket Owner"])
    assert rd.sha256 == certified["run"].report_sha256
