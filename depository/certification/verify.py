"""Offline verification of a certification report PDF, its status, and a diff of two.

``verify_report`` checks, without the network: the PAdES signature (intact, whole file,
and chaining to ``--trust`` when given); that the embedded ``report.json`` is canonical,
matches ``report.digest`` and the embedded load results; every sign-off against the
required signers in ``report.json``; and the embedded checkpoint's signature with the log
key. The outcome is authentic/final/certified plus the reasons.

Without a trust anchor (``--trust``) nothing says who produced the file: anyone can
re-sign an edited report, and the signer keys and Sigstore trust root the sign-offs are
checked against come from the report itself. The verdict then says so — the file's
integrity holds, its signer is unknown — and is never CERTIFIED (exit 1).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from depository.certification.pdf import attachments, validate_signature
from depository.certification.signoffs import SignerSpec, SignoffStatus, digest_text, verify_all
from depository.tlog import merkle, safejson
from depository.tlog.checkpoint import verify_checkpoint
from depository.tlog.errors import VerificationError
from depository.tlog.record import canonical_json
from depository.verifier.files import read_file

#: A signed report is a few MB; anything far larger is not one (and is not read whole).
MAX_REPORT_BYTES = 256 * 1024 * 1024

__all__ = ["Outcome", "diff_reports", "report_status", "verify_report"]


@dataclass
class Outcome:
    """What verification found. ``authentic``: signature and embedded data hold together;
    ``final``: every required sign-off verified; ``certified``: the verdict is a pass and
    the certification is valid today."""

    authentic: bool = False
    final: bool = False
    certified: bool = False
    anchored: bool = False
    verdict: str = "UNVERIFIED"
    ok_lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    data: dict[str, Any] | None = None
    signoffs: list[SignoffStatus] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 0 if (self.authentic and self.final and self.certified and self.anchored) else 1

    def to_json(self) -> dict[str, Any]:
        d = self.data or {}
        return {
            "verdict": self.verdict, "authentic": self.authentic, "final": self.final,
            "certified": self.certified, "anchored": self.anchored, "checks": self.ok_lines,
            "problems": self.problems,
            "report_id": d.get("report_id"), "validity": d.get("validity"),
            "report_verdict": d.get("verdict"),
            "signoffs": [s.to_json() for s in self.signoffs],
        }

    def human(self) -> str:
        lines = [f"  ok  {x}" for x in self.ok_lines]
        lines += [f"  !!  {x}" for x in self.problems]
        lines.append(f"VERDICT: {self.verdict}")
        if self.data and self.data.get("verdict", {}).get("reasons"):
            lines += [f"  reason: {r}" for r in self.data["verdict"]["reasons"][:10]]
        if self.data:
            lines += [f"  not a certification: {r}"
                      for r in self.data.get("verdict", {}).get("demo_reasons", [])[:10]]
        return "\n".join(lines)


def _embedded(pdf: bytes) -> dict[str, tuple[bytes, str | None]]:
    try:
        return attachments(pdf)
    except Exception:  # a damaged PDF: reported by the caller as missing attachments
        return {}


def _trust_from_attachments(atts: Mapping[str, tuple[bytes, str | None]]) -> dict[str, bytes]:
    out = {}
    for name, (blob, _) in atts.items():
        if name.startswith("sigstore-trust-"):
            out[hashlib.sha256(blob).hexdigest()] = blob
    return out


def verify_report(pdf_path: Path, *, trust: Sequence[Path] = (), log_keys: Sequence[str] = (),
                  sigstore_trust: Path | None = None, today: date | None = None) -> Outcome:
    out = Outcome()
    pdf = read_file(str(pdf_path), limit=MAX_REPORT_BYTES, what="certification report")
    sig = validate_signature(pdf, trust)
    out.anchored = bool(trust) and sig.ok and bool(sig.trusted)
    if sig.ok:
        out.ok_lines.append(
            "PAdES signature: intact, covers the whole file"
            + (f", by {sig.signer}, chains to the trust anchor" if sig.trusted else
               f"; it names {sig.signer!r}, but without --trust that is not established")
            + (f", timestamped {sig.timestamp}" if sig.timestamp else ""))
        if not trust:
            out.problems.append(
                "signer unknown: no trust anchor given (--trust CA.pem), so anyone could "
                "have signed this file, and the sign-off keys and Sigstore trust root below "
                "are the ones the report itself names")
    else:
        out.problems += [f"PDF signature: {p}" for p in sig.problems] or ["PDF signature invalid"]
    atts = _embedded(pdf)
    missing = [n for n in ("report.json", "checkpoint.txt", "loadtest-results.json",
                           "signoffs.json", "report.digest") if n not in atts]
    if missing:
        out.problems.append(f"embedded files missing: {', '.join(missing)}")
        out.verdict = "NOT AUTHENTIC"
        return out
    not_data = [n for n in ("report.json", "checkpoint.txt", "loadtest-results.json")
                if atts[n][1] != "Data"]
    if not_data:
        out.problems.append(f"attachments without relationship Data: {', '.join(not_data)}")
    raw = atts["report.json"][0]
    try:
        data = safejson.loads(raw, what="report.json")
    except ValueError as exc:  # not UTF-8, not JSON, or over the depth/size limits
        out.problems.append(f"report.json is not JSON: {exc}")
        out.verdict = "NOT AUTHENTIC"
        return out
    out.data = data
    sha = hashlib.sha256(raw).hexdigest()
    if canonical_json(data) != raw:
        out.problems.append("report.json is not in RFC 8785 canonical form")
    else:
        out.ok_lines.append(f"report.json is canonical (RFC 8785), sha256:{sha}")
    if atts["report.digest"][0] != digest_text(sha):
        out.problems.append("report.digest does not match report.json")
    load_sha = hashlib.sha256(atts["loadtest-results.json"][0]).hexdigest()
    if load_sha != data.get("scale_limits", {}).get("source", {}).get("sha256"):
        out.problems.append("the embedded load results are not the ones the report used")
    else:
        out.ok_lines.append("embedded load results match the report's scale limits")
    # The checkpoint.
    cp_note = atts["checkpoint.txt"][0]
    if cp_note.decode(errors="replace") != data.get("checkpoint", {}).get("note"):
        out.problems.append("checkpoint.txt differs from the checkpoint in report.json")
    if log_keys:
        try:
            cp, _ = verify_checkpoint(cp_note, list(log_keys),
                                      origin=data.get("store", {}).get("origin"))
            if cp.root_hash.hex() != data["checkpoint"]["root_hash"] or \
                    cp.size != data["checkpoint"]["size"]:
                out.problems.append("the checkpoint's size/root differ from report.json")
            else:
                out.ok_lines.append(f"checkpoint signature verifies with the log key: "
                                    f"{cp.origin} size {cp.size}")
        except VerificationError as exc:
            out.problems.append(f"checkpoint: {exc}")
    else:
        out.problems.append("the checkpoint's signature was not checked: pass --key LOG_VKEY")
    # Sign-offs.
    try:
        signed = safejson.loads(atts["signoffs.json"][0], what="signoffs.json")
        records = {str(r.get("role")): r for r in signed.get("signoffs", [])}
    except (ValueError, AttributeError) as exc:
        out.problems.append(f"signoffs.json unreadable: {exc}")
        records = {}
    specs = [SignerSpec.from_json(s) for s in data.get("signoffs_required", [])]
    trust_configs = _trust_from_attachments(atts)
    if sigstore_trust is not None:
        blob = sigstore_trust.read_bytes()
        override = hashlib.sha256(blob).hexdigest()
        specs = [SignerSpec(s.role, s.responsibility, s.name, s.method, s.ed25519_key,
                            s.identity, s.issuer, override if s.method == "sigstore"
                            else s.trust_config_sha256) for s in specs]
        trust_configs[override] = blob
    out.signoffs = verify_all(specs, records, sha, trust_configs)
    for s in out.signoffs:
        if s.state == "signed":
            out.ok_lines.append(f"sign-off {s.role}: {s.who} at {s.when} ({s.how})")
        elif s.state == "rejected":
            out.problems.append(f"sign-off {s.role} rejected: {s.reason}")
    pending = [s.role for s in out.signoffs if s.state != "signed"]
    out.authentic = sig.ok and not [p for p in out.problems if not p.startswith(
        ("the checkpoint's signature was not checked", "sign-off", "signer unknown"))]
    out.final = bool(out.signoffs) and not pending
    days = (date.fromisoformat(data["validity"]["until"]) - (today or datetime.now(UTC).date())
            ).days
    result = data.get("verdict", {}).get("result")
    passed = result == "pass"
    out.certified = passed and days >= 0 and bool(log_keys) and out.anchored
    if not out.authentic:
        out.verdict = "NOT AUTHENTIC — the document or its data do not verify"
    elif result == "demo":
        out.verdict = ("DEMO — NOT A CERTIFICATION: the checks passed, but the load figures "
                       "were scaled down or extrapolated"
                       + ("" if out.anchored and log_keys and not pending else
                          " (and " + ", ".join(
                              x for x, bad in (("its signer is unknown: pass --trust",
                                                not out.anchored),
                                               ("the checkpoint is unverified: pass --key",
                                                not log_keys),
                                               (f"sign-offs are pending: {', '.join(pending)}",
                                                bool(pending))) if bad) + ")"))
    elif not passed:
        out.verdict = "NOT CERTIFIED — the report's checks or limits failed"
    elif pending:
        out.verdict = f"DRAFT — pending sign-off: {', '.join(pending)}"
    elif days < 0:
        out.verdict = f"EXPIRED on {data['validity']['until']}"
    elif not log_keys:
        out.verdict = "UNVERIFIED CHECKPOINT — pass --key LOG_VKEY"
    elif not out.anchored:
        out.verdict = ("INTEGRITY ONLY — the file is intact and its data hold together, but "
                       "its signer is unknown: pass --trust CA.pem (not certified)")
    else:
        out.verdict = f"CERTIFIED — valid until {data['validity']['until']} ({days} days)"
    return out


def _load_any(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, bytes]]:
    """Report data, sign-off records and trust configs from a report dir or PDF."""
    if path.is_dir():
        from depository.certification.report import ReportDir

        rd = ReportDir.load(path)
        return rd.data, rd.records, rd.trust_configs
    atts = _embedded(read_file(str(path), limit=MAX_REPORT_BYTES, what="certification report"))
    if "report.json" not in atts:
        raise ValueError(f"{path}: no embedded report.json")
    data = safejson.loads(atts["report.json"][0], what="report.json")
    recs: dict[str, dict[str, Any]] = {}
    if "signoffs.json" in atts:
        for r in safejson.loads(atts["signoffs.json"][0], what="signoffs.json").get(
                "signoffs", []):
            recs[str(r.get("role"))] = r
    return data, recs, _trust_from_attachments(atts)


def report_status(path: Path, today: date | None = None) -> dict[str, Any]:
    """Validity, days to expiry, next review and pending sign-offs of a report."""
    data, records, trust = _load_any(path)
    sha = hashlib.sha256(canonical_json(data)).hexdigest()
    specs = [SignerSpec.from_json(s) for s in data.get("signoffs_required", [])]
    statuses = verify_all(specs, records, sha, trust)
    today = today or datetime.now(UTC).date()
    until = date.fromisoformat(data["validity"]["until"])
    review = date.fromisoformat(data["validity"]["next_review"])
    pending = [s.role for s in statuses if s.state != "signed"]
    passed = data["verdict"]["result"] == "pass"
    state = ("DEMO — NOT A CERTIFICATION" if data["verdict"]["result"] == "demo"
             else "NOT CERTIFIED" if not passed else "EXPIRED" if today > until
             else "PENDING SIGN-OFF" if pending else "CERTIFIED")
    return {
        "report_id": data["report_id"], "state": state, "verdict": data["verdict"],
        "valid_from": data["validity"]["from"], "valid_until": until.isoformat(),
        "days_to_expiry": (until - today).days, "next_review": review.isoformat(),
        "days_to_review": (review - today).days,
        "recertification_due": data["validity"]["recertification_due"],
        "signoffs": [s.to_json() for s in statuses], "pending": pending,
        "ok": state == "CERTIFIED",
    }


def diff_reports(old: Path, new: Path, *, log_keys: Sequence[str] = (),
                 store: Path | None = None) -> dict[str, Any]:
    """Scale limits and check results side by side, and the log consistency proof from
    the older report's checkpoint to the newer one's."""
    a, _, _ = _load_any(old)
    b, _, _ = _load_any(new)
    limits = []
    la = {x["id"]: x for x in a["scale_limits"]["limits"]}
    for lb in b["scale_limits"]["limits"]:
        x = la.get(lb["id"], {})
        limits.append({"id": lb["id"], "title": lb["title"],
                       "old": {k: x.get(k) for k in ("measured", "method", "status")},
                       "new": {k: lb.get(k) for k in ("measured", "method", "status")},
                       "changed": (x.get("measured"), x.get("status")) != (lb.get("measured"),
                                                                           lb.get("status"))})
    ca = {c["id"]: c["status"] for c in a["checks"]}
    checks = [{"id": c["id"], "old": ca.get(c["id"], "absent"), "new": c["status"],
               "changed": ca.get(c["id"]) != c["status"]} for c in b["checks"]]
    size1, size2 = a["checkpoint"]["size"], b["checkpoint"]["size"]
    root1 = bytes.fromhex(a["checkpoint"]["root_hash"])
    root2 = bytes.fromhex(b["checkpoint"]["root_hash"])
    cons: dict[str, Any] = {"size1": size1, "size2": size2, "verified": False}
    problems: list[str] = []
    if log_keys:
        for label, d in (("old", a), ("new", b)):
            try:
                verify_checkpoint(d["checkpoint"]["note"].encode(), list(log_keys))
            except VerificationError as exc:
                problems.append(f"{label} report's checkpoint: {exc}")
    if a["store"]["origin"] != b["store"]["origin"]:
        problems.append("the reports are for different logs")
    proof: list[bytes] | None = None
    prev = b.get("previous") or {}
    pc = prev.get("consistency") or {}
    if pc and pc.get("size1") == size1 and pc.get("root1") == root1.hex():
        proof = [base64.b64decode(h) for h in pc["proof"]]
        cons["source"] = "the newer report (certified with --previous)"
    elif store is not None and size1 <= size2:
        from depository.store import Store

        with Store.open(store, readonly=True) as s:
            proof = s.consistency_proof(size1, size2) if size1 < size2 else []
        cons["source"] = f"computed from the store {store}"
    if size1 > size2:
        problems.append(f"the newer report's log ({size2}) is smaller than the older's "
                        f"({size1}): history was rolled back")
    elif proof is not None:
        try:
            if size1 == size2:
                if root1 != root2:
                    raise VerificationError("same size, different roots: the log forked")
            else:
                merkle.verify_consistency(size1, size2, proof, root1, root2)
            cons["verified"] = True
            cons["proof_hashes"] = len(proof)
        except VerificationError as exc:
            problems.append(f"consistency proof {size1} -> {size2} failed: {exc}")
    else:
        problems.append("no consistency proof between these reports: the newer one was not "
                        "certified with --previous OLD; pass --store to compute one")
    return {"old": a["report_id"], "new": b["report_id"],
            "old_verdict": a["verdict"]["result"], "new_verdict": b["verdict"]["result"],
            "limits": limits, "checks": checks, "consistency": cons, "problems": problems,
            "ok": not problems}
