"""The certification cycle over a report directory: run, sign off, finalize, status.

``run`` executes every check, writes the canonical report data (``report.json``, RFC
8785), its digest (``report.digest``, what signers approve), OSCAL assessment results,
the load results, the checkpoint and evidence files, and renders a review PDF (DRAFT).
``sign_off`` verifies and stores one role's approval. ``finalize`` verifies every
sign-off again, renders the final (or, with ``draft``, a DRAFT) PDF/A-3b with the data
embedded, and signs it (PAdES) exactly once.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from depository import __version__
from depository.certification import oscal
from depository.certification._framework import CheckContext, CheckResult, copy_store
from depository.certification.checks import CHECKS, run_checks
from depository.certification.content import GUARANTEES, REFUSALS, SCENARIOS, THREATS, Item
from depository.certification.loadresults import (
    accepted_from,
    code_commit,
    limit_policy,
    read_results,
    scale_limits,
)
from depository.certification.pdf import attachments as pdf_attachments
from depository.certification.pdf import sign_pdf
from depository.certification.render import Attachment, render_html, render_pdf
from depository.certification.signoffs import (
    SignerSpec,
    SignoffError,
    SignoffStatus,
    digest_text,
    load_signoff_config,
    make_ed25519_signoff,
    make_sigstore_signoff,
    role_slug,
    verify_all,
    verify_signoff,
)
from depository.store import Store, StoreError, format_time
from depository.tlog.checkpoint import parse_checkpoint
from depository.tlog.note import parse_note
from depository.tlog.record import canonical_json

__all__ = [
    "REPORT_FORMAT",
    "CertifyError",
    "ReportDir",
    "finalize",
    "run_certification",
    "sign_off",
]

REPORT_FORMAT = "depository.certification.report/v1"
DEFAULT_VALIDITY_MONTHS = 6
EVENT_TYPES_BY_SCENARIO = {
    "F1": ("artifact.refused", "token.revoke"),
    "F2": ("retention.refused", "artifact.refused", "governance.lock"),
    "F3": ("governance.lock", "governance.unlock"),
    "F4": ("retention.refused",),
    "F5": (),
    "F6": ("certification.run",),
    "F7": ("hold.place", "hold.release"),
}


class CertifyError(Exception):
    """The certification cannot proceed (bad input, refused operation); exit code 1 or 2."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


def add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    y, m = d.year + m // 12, m % 12 + 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def _status_of(item: Item, results: Mapping[str, CheckResult]) -> str:
    statuses = [results[c].status if c in results else "missing" for c in item.checks]
    for s in ("fail", "error", "missing"):
        if s in statuses:
            return s
    return "pass"


# ======================================================================= run
@dataclass
class RunResult:
    out: Path
    data: dict[str, Any]
    report_sha256: str
    review_pdf: Path | None
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class _Previous:
    report_id: str
    sha256: str
    checkpoint: bytes
    data: dict[str, Any]


def _load_previous(path: Path) -> _Previous:
    try:
        blob = path.read_bytes()
        atts = pdf_attachments(blob)
    except Exception as exc:
        raise CertifyError(f"cannot read the previous report {path}: {exc}", usage=True) from exc
    if "checkpoint.txt" not in atts or "report.json" not in atts:
        raise CertifyError(f"{path} embeds no checkpoint.txt/report.json: not a certification "
                           "report", usage=True)
    data = json.loads(atts["report.json"][0])
    return _Previous(str(data.get("report_id", "?")),
                     hashlib.sha256(atts["report.json"][0]).hexdigest(),
                     atts["checkpoint.txt"][0], data)


def _event_counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT json_extract(CAST(leaf AS TEXT), '$.type'), count(*) "
                            "FROM log GROUP BY 1").fetchall()
    finally:
        conn.close()
    return {str(t): int(n) for t, n in rows}


def _products(snapshot: Path, results: Mapping[str, CheckResult]) -> tuple[list[dict[str, Any]],
                                                                           list[int]]:
    out = []
    with Store.open(snapshot, readonly=True) as ro:
        usage = ro.usage()
        init = ro.record(0).body.get("products", {})
        levels = list(ro.config.alert_levels)
        for pid, p in sorted(ro.config.products.items()):
            u = usage.get(pid, {"bytes": 0, "artifacts": 0})
            pct_b = 100.0 * u["bytes"] / p.quota_bytes
            pct_a = 100.0 * u["artifacts"] / p.quota_artifacts
            reached = [lvl for lvl in levels if max(pct_b, pct_a) >= lvl]
            iso = results.get("isolation")
            out.append({
                "id": pid, "name": p.name, "description": p.description,
                "quota_bytes": p.quota_bytes, "quota_artifacts": p.quota_artifacts,
                "used_bytes": u["bytes"], "used_artifacts": u["artifacts"],
                "bytes_pct": round(pct_b, 6), "artifacts_pct": round(pct_a, 6),
                "alert_level": f"{reached[-1]} %" if reached else None,
                "metadata_schema_sha256": p.schema_sha256(),
                "schema_frozen": "pass" if init.get(pid, {}).get("metadata_schema_sha256")
                == p.schema_sha256() else "fail",
                "isolation": iso.status if iso else "missing",
                "quota_enforced": results["quota"].status if "quota" in results else "missing",
            })
    return out, levels


def _without_paths(value: Any, places: Mapping[str, str]) -> Any:
    """``value`` with every absolute path of this machine in ``places`` replaced by its
    name: the report is read elsewhere, and a scratch copy's temporary path says nothing
    (and the copy is gone)."""
    if isinstance(value, str):
        for path, name in places.items():
            value = value.replace(path, name)
        return value
    if isinstance(value, list):
        return [_without_paths(v, places) for v in value]
    if isinstance(value, dict):
        return {k: _without_paths(v, places) for k, v in value.items()}
    return value


def _write_new(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def run_certification(
    store_dir: Path, results: Path, out: Path, *,
    previous: Path | None = None, verifier_key: str | None = None,
    signer_key_file: Path | None = None, signoff_config: Path | None = None,
    validity_months: int | None = None, organisation: str | None = None,
    only: set[str] | None = None, jobs: int = 1, keep_scratch: bool = False,
    render: bool = True, service_factory: Callable[[Store], Any] | None = None,
    http: bool = True,
    progress: Callable[[str], None] | None = None, now: datetime | None = None,
    commit: tuple[str | None, bool | None] | None = None,
) -> RunResult:
    """Run every check and write the report directory ``out`` (which must be new or empty)."""
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    t_start = datetime.now(UTC)
    now = now or t_start
    if out.exists() and any(out.iterdir()):
        raise CertifyError(f"{out} is not empty: a report directory is written once; choose a "
                           "new --out", usage=True)
    if not (store_dir / "depository.db").is_file():
        raise CertifyError(f"no store at {store_dir}", usage=True)
    try:
        load_doc, load_raw, load_dir = read_results(results)
    except ValueError as exc:
        raise CertifyError(str(exc), usage=True) from exc
    try:
        specs, trust_configs, settings = load_signoff_config(store_dir, signoff_config)
        accepted = accepted_from(settings)
    except ValueError as exc:
        raise CertifyError(str(exc), usage=True) from exc
    prev = _load_previous(previous) if previous is not None else None
    months = int(validity_months or settings.get("validity_months") or DEFAULT_VALIDITY_MONTHS)
    vkey_source = "given with --key" if verifier_key else "read from the store (keys/log.vkey)"
    if verifier_key is None:
        try:
            verifier_key = (store_dir / "keys" / "log.vkey").read_text().strip()
        except OSError as exc:
            raise CertifyError(f"no --key given and the store has no keys/log.vkey ({exc})",
                               usage=True) from exc
    if service_factory is None and http:
        # The service sits above certification (docs/adr/0006-layers.md): the caller (the
        # CLI, the demo) injects its app factory rather than this layer importing it.
        raise CertifyError("the HTTP checks need service_factory (the CLI passes "
                           "depository.service.create_app); pass http=False to skip them",
                           usage=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "evidence").mkdir()
    scratch = out / ".scratch"
    scratch.mkdir()
    notes: list[str] = []
    report_id = f"cert-{now.strftime('%Y%m%d-%H%M%S')}-" + hashlib.sha256(
        f"{store_dir.resolve()}|{format_time(now)}".encode()).hexdigest()[:8]
    # 1. Record the run in the store and sign the checkpoint of the day; snapshot it.
    say("recording the certification run and signing a checkpoint")
    cert_index: int | None = None
    snapshot = scratch / "snapshot"
    try:
        store = Store.open(store_dir, signer_key_file=signer_key_file)
    except StoreError as exc:
        notes.append(f"The store could not be opened for writing ({exc}); the latest existing "
                     "checkpoint anchors this report and no certification record was written.")
        store = Store.open(store_dir, readonly=True)
    try:
        if not store.readonly:
            try:
                cert_index, _ = store.append_event("certification.run", actor="certify",
                                                   product=None, body={
                    "report_id": report_id, "tool_version": __version__,
                    "started": format_time(now),
                    "checks": [c.id for c in CHECKS if only is None or c.id in only],
                    "previous_report_sha256": prev.sha256 if prev else None,
                })
                store.checkpoint()
            except StoreError as exc:
                notes.append(f"The certification record could not be written ({exc}).")
        cp_size, cp_note = store.latest_checkpoint()
        copy_store(store_dir, snapshot, from_live=True)
        origin = store.origin
    finally:
        store.close()
    body, _ = parse_note(cp_note)
    cp = parse_checkpoint(body)
    ctx = CheckContext(
        store_dir=store_dir, snapshot=snapshot, scratch=scratch, evidence_dir=out / "evidence",
        verifier_key=verifier_key, checkpoint_note=cp_note, checkpoint_size=cp_size,
        checkpoint_root=cp.root_hash, origin=origin, certification_index=cert_index,
        previous_checkpoint=prev.checkpoint if prev else None,
        signer_key_file=signer_key_file, jobs=jobs, service_factory=service_factory,
    )
    # 2. Run the checks.
    t0 = datetime.now(UTC)
    checks = run_checks(ctx, only, progress=lambda r: say(f"check {r.id}: {r.status.upper()}"))
    timings["checks"] = (datetime.now(UTC) - t0).total_seconds()
    by_id = {c.id: c for c in checks}
    if ctx.throwaway_key:
        notes.append("The log signer key was not available: scratch copies signed with a "
                     "throwaway key.")
    # 3. Assemble the report data.
    limits = scale_limits(load_doc, load_raw, load_dir, _configured_limits(snapshot),
                          accepted=accepted, commit=commit or code_commit())
    chart_files: dict[str, Path] = {}
    for lim in limits["limits"]:
        for c in lim["charts"]:
            p = c.pop("path", None)
            if p:
                dest = out / "charts" / Path(c["file"]).name
                dest.parent.mkdir(exist_ok=True)
                shutil.copyfile(p, dest)
                chart_files[c["file"]] = dest
                c["copied_to"] = f"charts/{dest.name}"
    products, levels = _products(snapshot, by_id)
    events = _event_counts(snapshot / "depository.db")

    def items(group: Sequence[Item]) -> list[dict[str, Any]]:
        return [{"id": it.id, "title": it.title, "statement": it.statement,
                 "checks": list(it.checks), "status": _status_of(it, by_id),
                 **({"detection": it.detection, "seed_mitigation": it.seed_mitigation}
                    if it.id.startswith("T") else {})}
                for it in group]

    scenarios = []
    for it in SCENARIOS:
        recs = [e for c in it.checks if c in by_id for e in by_id[c].evidence
                if e.get("kind") == "log-record"]
        scenarios.append({
            "id": it.id, "title": it.title, "statement": it.statement, "checks": list(it.checks),
            "detection": it.detection, "response": it.response, "recovery": it.recovery,
            "status": _status_of(it, by_id),
            "records": [{"where": r["where"], "index": r["index"], "type": r["type"],
                         "leaf_sha256": r["leaf_sha256"]} for r in recs],
            "store_events": {t: events[t] for t in EVENT_TYPES_BY_SCENARIO[it.id] if t in events},
        })
    counts = {s: sum(1 for c in checks if c.status == s)
              for s in ("pass", "fail", "error", "missing")}
    if only is not None:
        skipped = [c.id for c in CHECKS if c.id not in only]
        counts["missing"] += len(skipped)
        notes.append(f"Only some checks were run; not run: {', '.join(skipped)}.")
    guarantees, refusals, threats = items(GUARANTEES), items(REFUSALS), items(THREATS)
    reasons = []
    for c in checks:
        if c.status != "pass":
            reasons.append(f"check {c.id} {c.status.upper()}: {c.summary}")
    if only is not None:
        reasons.append(f"{len(CHECKS) - len(checks)} checks were not run")
    limit_fail, demo_reasons = limit_policy(limits)
    reasons += limit_fail
    cert_day = now.astimezone(UTC).date()
    consistency = ctx.shared.get("consistency")
    # Absolute paths only (a relative "store" would rewrite the word), longest first: the
    # scratch directory lies inside the report directory.
    places = dict(sorted(
        ((str(p), name) for d, name in ((scratch, "<scratch copy>"),
                                        (out, "<report directory>"), (store_dir, "<store>"))
         for p in {d, d.resolve()} if p.is_absolute() and len(p.parts) > 1),
        key=lambda kv: -len(kv[0])))
    data: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "report_id": report_id,
        "organisation": organisation or settings.get("organisation"),
        "generated_at": format_time(now)[:19] + "Z",
        "tool": {"name": "depository", "version": __version__},
        "validity": {
            "months": months, "from": cert_day.isoformat(),
            "until": add_months(cert_day, months).isoformat(),
            "next_review": add_months(cert_day, months).isoformat(),
            # Recertification is due when the validity ends (the seed's "annual" would
            # leave a lapsed certification standing for six months).
            "recertification_due": add_months(cert_day, months).isoformat(),
        },
        "store": {"origin": origin, "verifier_key": verifier_key,
                  "verifier_key_source": vkey_source, "log_size": cp_size},
        "checkpoint": {"size": cp_size, "root_hash": cp.root_hash.hex(),
                       "note": cp_note.decode(), "certification_record_index": cert_index},
        "previous": None if prev is None else {
            "report_id": prev.report_id, "report_sha256": prev.sha256,
            "checkpoint": {"size": parse_checkpoint(parse_note(prev.checkpoint)[0]).size,
                           "note": prev.checkpoint.decode()},
            "consistency": consistency,
        },
        "checks": _without_paths([c.to_json() for c in checks], places),
        "guarantees": guarantees, "refusals": refusals, "threats": threats,
        "products": products, "alert_levels": levels, "scenarios": scenarios,
        "scale_limits": limits,
        "signoffs_required": [s.to_json() for s in specs],
        "summary": {
            "checks": counts, "checks_total": len(CHECKS),
            "guarantees_passed": sum(1 for g in guarantees if g["status"] == "pass"),
            "refusals_passed": sum(1 for g in refusals if g["status"] == "pass"),
            "threats_passed": sum(1 for g in threats if g["status"] == "pass"),
            "scenarios_passed": sum(1 for g in scenarios if g["status"] == "pass"),
            "limits_passed": sum(1 for lim in limits["limits"] if lim["status"] == "pass"),
            "limits_by_method": {k: sum(1 for lim in limits["limits"] if lim["method"] == k)
                                 for k in ("measured", "scaled-down", "extrapolated")},
            "isolation": by_id["isolation"].status if "isolation" in by_id else "missing",
        },
        "verdict": {"result": "fail" if reasons else "demo" if demo_reasons else "pass",
                    "reasons": _without_paths(reasons, places),
                    "demo_reasons": _without_paths(demo_reasons, places),
                    "accepted_extrapolations": [
                        {"id": lim["id"], "title": lim["title"], "rationale": lim["accepted"]}
                        for lim in limits["limits"] if lim.get("accepted") is not None]},
        "notes": _without_paths(notes, places),
    }
    canonical = canonical_json(data)
    sha = hashlib.sha256(canonical).hexdigest()
    _write_new(out / "report.json", canonical)
    _write_new(out / "report.digest", digest_text(sha))
    _write_new(out / "report.oscal.json", json.dumps(
        oscal.assessment_results(data, sha), indent=2).encode() + b"\n")
    _write_new(out / "loadtest-results.json", load_raw)
    _write_new(out / "checkpoint.txt", cp_note)
    for digest, blob in trust_configs.items():
        _write_new(out / "sigstore-trust" / f"{digest}.json", blob)
    (out / "signoffs").mkdir()
    _record_result(store_dir, signer_key_file, data, sha, cert_index, say)
    if not keep_scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    review = None
    if render:
        t0 = datetime.now(UTC)
        rd = ReportDir.load(out)
        pdf = rd.render(draft=True)
        review = out / "review.pdf"
        _write_new(review, pdf)
        timings["render"] = (datetime.now(UTC) - t0).total_seconds()
    timings["total"] = (datetime.now(UTC) - t_start).total_seconds()
    return RunResult(out, data, sha, review, timings)


def _record_result(store_dir: Path, signer_key_file: Path | None, data: Mapping[str, Any],
                   sha: str, run_index: int | None, say: Callable[[str], None]) -> None:
    """Log the verdict and validity after the checks (``certification.result``), so the
    store's own monitoring can show them; the report data are fixed by then."""
    if run_index is None:
        return
    try:
        with Store.open(store_dir, signer_key_file=signer_key_file) as store:
            store.append_event("certification.result", actor="certify", product=None, body={
                "report_id": data["report_id"], "report_sha256": sha,
                "run_record_index": run_index, "verdict": data["verdict"]["result"],
                "reasons": len(data["verdict"]["reasons"]),
                "valid_from": data["validity"]["from"],
                "valid_until": data["validity"]["until"],
                "next_review": data["validity"]["next_review"],
                "recertification_due": data["validity"]["recertification_due"],
            })
            store.checkpoint()
    except StoreError as exc:
        say(f"the certification.result record could not be written: {exc}")



def _configured_limits(snapshot: Path) -> dict[str, Any]:
    with Store.open(snapshot, readonly=True) as ro:
        return {k: dict(v) for k, v in ro.config.scale_limits.items()}


# ======================================================================= report directory
@dataclass
class ReportDir:
    """A report directory as written by :func:`run_certification`."""

    path: Path
    data: dict[str, Any]
    canonical: bytes
    sha256: str
    specs: list[SignerSpec]
    trust_configs: dict[str, bytes]
    records: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, path: Path) -> ReportDir:
        try:
            canonical = (path / "report.json").read_bytes()
        except OSError as exc:
            raise CertifyError(f"{path} is not a report directory (no report.json)",
                               usage=True) from exc
        data = json.loads(canonical)
        if canonical_json(data) != canonical:
            raise CertifyError(f"{path}/report.json is not in canonical form: it was edited")
        sha = hashlib.sha256(canonical).hexdigest()
        try:
            digest = (path / "report.digest").read_bytes()
        except OSError:
            digest = b""
        if digest != digest_text(sha):
            raise CertifyError(f"{path}/report.digest does not match report.json "
                               f"(sha256:{sha}): one of them was changed")
        trust = {}
        for p in sorted((path / "sigstore-trust").glob("*.json")):
            blob = p.read_bytes()
            trust[hashlib.sha256(blob).hexdigest()] = blob
        records = {}
        for p in sorted((path / "signoffs").glob("*.json")):
            rec = json.loads(p.read_text())
            records[str(rec.get("role"))] = rec
        specs = [SignerSpec.from_json(s) for s in data["signoffs_required"]]
        return cls(path, data, canonical, sha, specs, trust, records)

    def statuses(self) -> list[SignoffStatus]:
        return verify_all(self.specs, self.records, self.sha256, self.trust_configs)

    def chart_files(self) -> dict[str, Path]:
        out = {}
        for lim in self.data["scale_limits"]["limits"]:
            for c in lim.get("charts", []):
                if c.get("copied_to"):
                    out[c["file"]] = self.path / c["copied_to"]
        return out

    def attachments(self, statuses: Sequence[SignoffStatus]) -> list[Attachment]:
        p = self.path
        atts = [
            Attachment("report.json", self.canonical, "Data",
                       "Canonical report data (RFC 8785); its SHA-256 is what signers approve"),
            Attachment("loadtest-results.json", (p / "loadtest-results.json").read_bytes(),
                       "Data", "Load-test results the scale limits come from"),
            Attachment("checkpoint.txt", (p / "checkpoint.txt").read_bytes(), "Data",
                       "The log checkpoint of the certification (C2SP signed note)"),
            Attachment("report.digest", (p / "report.digest").read_bytes(), "Data",
                       "sha256 of report.json: the text each signer approves"),
            Attachment("signoffs.json", canonical_json({
                "report_sha256": self.sha256,
                "signoffs": [self.records[s.role] for s in self.specs if s.role in self.records
                             and any(x.role == s.role and x.state == "signed"
                                     for x in statuses)],
            }), "Supplement", "The sign-offs (Ed25519 signed notes, Sigstore bundles)"),
            Attachment("report.oscal.json", (p / "report.oscal.json").read_bytes(),
                       "Supplement", "OSCAL Assessment Results"),
        ]
        for digest, blob in self.trust_configs.items():
            atts.append(Attachment(f"sigstore-trust-{digest[:16]}.json", blob, "Supplement",
                                   "Pinned Sigstore trust config for sign-off verification"))
        for f in sorted((p / "evidence").glob("*")):
            if f.is_file():
                atts.append(Attachment(f"evidence-{f.name}", f.read_bytes(), "Supplement",
                                       "Evidence file (proof)"))
        return atts

    def render(self, *, draft: bool) -> bytes:
        statuses = self.statuses()
        html = render_html(self.data, self.sha256, self.specs, statuses, draft=draft,
                           chart_files=self.chart_files())
        return render_pdf(html, self.attachments(statuses))


# ======================================================================= sign-off
def sign_off(report_dir: Path, role: str, *, signer_key: str | None = None,
             signed_note: bytes | None = None, bundle: bytes | None = None,
             trust_config: bytes | None = None, now: datetime | None = None) -> SignoffStatus:
    """Verify and store ``role``'s sign-off; raises :class:`SignoffError` with the reason
    when it is rejected (nothing is stored then)."""
    rd = ReportDir.load(report_dir)
    spec = next((s for s in rd.specs if s.role.lower() == role.strip().lower()), None)
    if spec is None:
        raise SignoffError(f"role {role!r} is not a required signer of this report; required: "
                           f"{', '.join(s.role for s in rd.specs)}")
    if sum(x is not None for x in (signer_key, signed_note, bundle)) != 1:
        raise SignoffError("give exactly one of --key, --signed-note or --sigstore-bundle")
    record: dict[str, Any]
    if signer_key is not None:
        record = make_ed25519_signoff(rd.sha256, spec.role, signer_key, now)
    elif signed_note is not None:
        record = {"role": spec.role, "method": "ed25519", "note": signed_note.decode()}
    else:
        assert bundle is not None
        if trust_config is not None and spec.trust_config_sha256 is not None and \
                hashlib.sha256(trust_config).hexdigest() != spec.trust_config_sha256:
            raise SignoffError("--trust-config differs from the trust config the report pins "
                               f"(sha256:{spec.trust_config_sha256}); the pinned one is used")
        record = make_sigstore_signoff(spec.role, bundle,
                                       trust_config if spec.trust_config_sha256 is None
                                       else None)
    record["submitted"] = format_time(now or datetime.now(UTC))[:19] + "Z"
    status = verify_signoff(spec, record, rd.sha256, rd.trust_configs)
    if status.state != "signed":
        raise SignoffError(f"sign-off for {spec.role} rejected: {status.reason}")
    dest = report_dir / "signoffs" / f"{role_slug(spec.role)}.json"
    if dest.exists():
        old = verify_signoff(spec, json.loads(dest.read_text()), rd.sha256, rd.trust_configs)
        if old.state == "signed":
            raise SignoffError(f"{spec.role} has already signed this report")
    dest.parent.mkdir(exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(dest)
    return status


# ======================================================================= finalize
def finalize(report_dir: Path, *, key_file: Path, cert_file: Path, chain: Sequence[Path] = (),
             tsa_url: str | None = None, timestamper: Any = None, draft: bool = False,
             out: Path | None = None) -> tuple[Path, list[SignoffStatus]]:
    """Render with the verified sign-offs and sign (PAdES). Refuses while a required
    sign-off is missing unless ``draft``; a signed file is never overwritten."""
    rd = ReportDir.load(report_dir)
    statuses = rd.statuses()
    pending = [s for s in statuses if s.state != "signed"]
    if pending and not draft:
        raise CertifyError(
            "not every required sign-off is in: "
            + "; ".join(f"{s.role} ({s.state}: {s.reason})" for s in pending)
            + ". Collect them with `depository certify sign-off`, or pass --draft for a "
            "draft that says DRAFT on every page")
    is_draft = bool(pending)
    if out is None:
        if is_draft:
            n = 1
            while (report_dir / f"draft-{n}.pdf").exists():
                n += 1
            out = report_dir / f"draft-{n}.pdf"
        else:
            out = report_dir / "report.pdf"
    if out.exists():
        raise CertifyError(f"{out} exists: a signed report is never rewritten")
    pdf = rd.render(draft=is_draft)
    signed = sign_pdf(pdf, key_file=key_file, cert_file=cert_file, chain=chain,
                      tsa_url=tsa_url, timestamper=timestamper,
                      reason=("DRAFT certification report" if is_draft
                              else "Certification report"))
    _write_new(out, signed)
    return out, statuses


def validity_days(data: Mapping[str, Any], today: date | None = None) -> int:
    until = date.fromisoformat(data["validity"]["until"])
    return (until - (today or datetime.now(UTC).date())).days



