"""``depository certify``: run the certification, collect sign-offs, sign and verify the
report. A thin client of :mod:`depository.certification`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from depository.certification.report import CertifyError

EXIT_FAILED = 1


class _Refused(click.ClickException):
    exit_code = EXIT_FAILED


def _fail(exc: Exception) -> click.ClickException:
    if isinstance(exc, CertifyError) and exc.usage:
        return click.UsageError(str(exc))
    return _Refused(str(exc))


def _read_key(value: str) -> str:
    """A verifier key given inline, or a file holding one."""
    p = Path(value)
    if p.is_file():
        return p.read_text().strip()
    return value.strip()


_existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)
_report_dir = click.Path(exists=True, file_okay=False, path_type=Path)


@click.group(epilog="Exit codes: 0 success / certified; 1 failed or refused; 2 bad usage.")
def certify() -> None:
    """Certify a store: executed checks, load results, sign-offs, a signed PDF report.

    \b
    The cycle:
      depository certify run --store ./store --results loadtest-results --out cert-2026-11
      depository certify sign-off cert-2026-11 --role "Bucket Owner" --key owner.key
      depository certify finalize cert-2026-11 --signing-key org.key --signing-cert org.pem
      depository certify verify cert-2026-11/report.pdf --trust org-ca.pem --key log.vkey
    """


@certify.command("run")
@click.option("--store", "store_dir", envvar="DEPOSITORY_STORE", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Store directory (or set DEPOSITORY_STORE).")
@click.option("--results", required=True, type=click.Path(exists=True, path_type=Path),
              help="Load-test results: a results.json or the directory holding it.")
@click.option("--previous", type=_existing_file, default=None,
              help="The previous certification's report PDF: its checkpoint must be a "
                   "prefix of today's log (consistency proof).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="New report directory.")
@click.option("--key", "vkey", default=None,
              help="Trusted log verifier key (or a file). Default: the store's keys/log.vkey.")
@click.option("--signer-key", type=_existing_file, default=None, envvar="DEPOSITORY_SIGNER_KEY",
              help="Log signer key file when kept outside the store.")
@click.option("--signoffs", type=_existing_file, default=None,
              help="Sign-off configuration (default: STORE/certification/signoffs.yaml).")
@click.option("--validity-months", type=click.IntRange(1, 60), default=None,
              help="Validity window (default 6 months, or the configuration's).")
@click.option("--organisation", default=None, help="Organisation named on the report.")
@click.option("--only", multiple=True, help="Run only these checks (the rest count as "
              "missing, so the verdict fails). Repeatable.")
@click.option("--jobs", type=click.IntRange(1, 64), default=1,
              help="Worker processes for the offline replay.")
@click.option("--keep-scratch", is_flag=True, help="Keep the scratch copies (OUT/.scratch).")
@click.option("--no-review", is_flag=True, help="Do not render review.pdf (the DRAFT for signers).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def run_cmd(store_dir: Path, results: Path, previous: Path | None, out: Path, vkey: str | None,
            signer_key: Path | None, signoffs: Path | None, validity_months: int | None,
            organisation: str | None, only: tuple[str, ...], jobs: int, keep_scratch: bool,
            no_review: bool, as_json: bool) -> None:
    """Run every check and write the report directory (data, digest, OSCAL, review PDF).

    \b
    Example:
      depository certify run --store ./store --results loadtest-results \\
          --previous cert-2026-05/report.pdf --out cert-2026-11
    Exit 0 when the verdict is a pass, 1 when it is not — a fail, or DEMO / NOT A
    CERTIFICATION when the load results are scaled down, from the quick profile or
    extrapolated without acceptance (the report is written either way).
    """
    from depository.certification.checks import CHECKS
    from depository.certification.report import run_certification
    from depository.service import create_app

    unknown = sorted(set(only) - {c.id for c in CHECKS})
    if unknown:
        raise click.UsageError(f"unknown check(s) {', '.join(unknown)}; checks: "
                               f"{', '.join(c.id for c in CHECKS)}")
    quiet = as_json
    try:
        res = run_certification(
            store_dir, results, out, previous=previous,
            verifier_key=_read_key(vkey) if vkey else None, signer_key_file=signer_key,
            signoff_config=signoffs, validity_months=validity_months,
            organisation=organisation, only=set(only) or None, jobs=jobs,
            keep_scratch=keep_scratch, render=not no_review, service_factory=create_app,
            progress=None if quiet else (lambda m: click.echo(m, err=True)),
        )
    except (CertifyError, ValueError) as exc:
        raise _fail(exc) from exc
    d = res.data
    summary = {"report": str(out), "report_id": d["report_id"],
               "verdict": d["verdict"]["result"], "reasons": d["verdict"]["reasons"],
               "demo_reasons": d["verdict"].get("demo_reasons", []),
               "report_sha256": res.report_sha256, "valid_until": d["validity"]["until"],
               "review_pdf": str(res.review_pdf) if res.review_pdf else None,
               "seconds": res.seconds}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"verdict: {d['verdict']['result'].upper()}")
        for r in d["verdict"]["reasons"]:
            click.echo(f"  - {r}")
        for r in d["verdict"].get("demo_reasons", []):
            click.echo(f"  - not a certification: {r}")
        click.echo(f"report data: {out / 'report.json'} (sha256:{res.report_sha256})")
        click.echo(f"for signers: {out / 'report.digest'}; review copy: {res.review_pdf}")
    if d["verdict"]["result"] != "pass":
        sys.exit(EXIT_FAILED)


@certify.command("sign-off")
@click.argument("report_dir", type=_report_dir)
@click.option("--role", required=True, help="The signer's role, e.g. 'Bucket Owner'.")
@click.option("--key", "key_file", type=_existing_file, default=None,
              help="Ed25519 signer key file (PRIVATE+KEY+..., from `depository key generate`).")
@click.option("--signed-note", type=_existing_file, default=None,
              help="An Ed25519 sign-off statement already signed elsewhere (C2SP note).")
@click.option("--sigstore-bundle", type=_existing_file, default=None,
              help="A Sigstore bundle over REPORT_DIR/report.digest.")
@click.option("--trust-config", type=_existing_file, default=None,
              help="Sigstore trust config, when the report does not pin one.")
def signoff_cmd(report_dir: Path, role: str, key_file: Path | None, signed_note: Path | None,
                sigstore_bundle: Path | None, trust_config: Path | None) -> None:
    """Approve the report data digest as ROLE; verified offline before it is stored.

    \b
    Examples:
      depository certify sign-off cert-2026-11 --role "Bucket Owner" --key owner.key
      sigstore sign --bundle lane.sigstore.json cert-2026-11/report.digest
      depository certify sign-off cert-2026-11 --role "Executor Lane" \\
          --sigstore-bundle lane.sigstore.json
    A sign-off over another digest, by another identity or under an unknown key is
    rejected with the reason (exit 1).
    """
    from depository.certification.report import sign_off
    from depository.certification.signoffs import SignoffError

    try:
        status = sign_off(
            report_dir, role,
            signer_key=key_file.read_text() if key_file else None,
            signed_note=signed_note.read_bytes() if signed_note else None,
            bundle=sigstore_bundle.read_bytes() if sigstore_bundle else None,
            trust_config=trust_config.read_bytes() if trust_config else None,
        )
    except (SignoffError, CertifyError) as exc:
        raise _fail(exc) from exc
    click.echo(f"signed: {status.role} by {status.who} at {status.when}")
    click.echo(f"  verified: {status.how}")


@certify.command("finalize")
@click.argument("report_dir", type=_report_dir)
@click.option("--signing-key", required=True, type=_existing_file,
              help="The organisation's private key (PEM).")
@click.option("--signing-cert", required=True, type=_existing_file,
              help="The organisation's certificate (PEM).")
@click.option("--chain", multiple=True, type=_existing_file,
              help="CA certificates to embed (PEM). Repeatable.")
@click.option("--tsa", default=None, help="RFC 3161 timestamp authority URL (PAdES B-T).")
@click.option("--draft", is_flag=True, help="Sign a DRAFT while sign-offs are pending.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Output PDF (default REPORT_DIR/report.pdf or draft-N.pdf).")
def finalize_cmd(report_dir: Path, signing_key: Path, signing_cert: Path, chain: tuple[Path, ...],
                 tsa: str | None, draft: bool, out_file: Path | None) -> None:
    """Render the report with its verified sign-offs and sign it (PAdES).

    \b
    Example:
      depository certify finalize cert-2026-11 --signing-key org.key \\
          --signing-cert org.pem --chain org-ca.pem --tsa http://tsa.example/tsr
    Refuses (exit 1) while a required sign-off is missing, unless --draft: a draft says
    DRAFT on every page. A signed PDF is never overwritten.
    """
    from depository.certification.report import finalize

    try:
        path, statuses = finalize(report_dir, key_file=signing_key, cert_file=signing_cert,
                                  chain=chain, tsa_url=tsa, draft=draft, out=out_file)
    except CertifyError as exc:
        raise _fail(exc) from exc
    except (ValueError, OSError) as exc:
        raise _Refused(f"signing failed: {exc}") from exc
    pending = [s.role for s in statuses if s.state != "signed"]
    click.echo(f"{'DRAFT' if pending else 'final'} report signed: {path}")
    if pending:
        click.echo(f"  pending sign-offs: {', '.join(pending)}")


@certify.command("verify")
@click.argument("report", type=_existing_file)
@click.option("--trust", multiple=True, type=_existing_file,
              help="Trust anchor (CA certificate, PEM) for the report signature. Repeatable. "
                   "Without one the signer is unknown and the verdict is INTEGRITY ONLY.")
@click.option("--key", "keys", multiple=True, required=True,
              help="The log's verifier key (or a file) for the embedded checkpoint.")
@click.option("--sigstore-trust", type=_existing_file, default=None,
              help="Verify Sigstore sign-offs against this trust config instead of the "
                   "one the report pins.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def verify_cmd(report: Path, trust: tuple[Path, ...], keys: tuple[str, ...],
               sigstore_trust: Path | None, as_json: bool) -> None:
    """Verify a report PDF offline: signature, embedded data, sign-offs, checkpoint.

    \b
    Example:
      depository certify verify cert-2026-11/report.pdf --trust org-ca.pem --key log.vkey
    Exit 0: authentic, final and certified (valid today) by a signer that chains to
    --trust; 1 otherwise (INTEGRITY ONLY without --trust, DEMO for a report whose load
    figures were scaled down or extrapolated without acceptance); 2 bad usage.
    """
    from depository.certification.verify import verify_report
    from depository.verifier.files import InputFileError

    try:
        outcome = verify_report(report, trust=trust, log_keys=[_read_key(k) for k in keys],
                                sigstore_trust=sigstore_trust)
    except InputFileError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(json.dumps(outcome.to_json(), indent=2) if as_json else outcome.human())
    sys.exit(outcome.exit_code)


@certify.command("status")
@click.argument("report", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_cmd(report: Path, as_json: bool) -> None:
    """Validity, days to expiry, next review and pending sign-offs of a report.

    \b
    Examples:
      depository certify status cert-2026-11
      depository certify status cert-2026-11/report.pdf --json
    Exit 0 when certified and valid today, 1 otherwise.
    """
    from depository.certification.verify import report_status
    from depository.verifier.files import InputFileError

    try:
        st = report_status(report)
    except (CertifyError, ValueError, KeyError, InputFileError) as exc:
        raise click.UsageError(f"{report}: {exc}") from exc
    if as_json:
        click.echo(json.dumps(st, indent=2))
    else:
        click.echo(f"{st['report_id']}: {st['state']}")
        click.echo(f"  valid {st['valid_from']} .. {st['valid_until']} "
                   f"({st['days_to_expiry']} days to expiry)")
        click.echo(f"  next review {st['next_review']} ({st['days_to_review']} days); "
                   f"recertification due {st['recertification_due']}")
        for s in st["signoffs"]:
            extra = f"{s['who']} at {s['when']}" if s["state"] == "signed" else s["reason"]
            click.echo(f"  {s['state']:<8} {s['role']}: {extra}")
    sys.exit(0 if st["ok"] else EXIT_FAILED)


@certify.command("diff")
@click.argument("old", type=click.Path(exists=True, path_type=Path))
@click.argument("new", type=click.Path(exists=True, path_type=Path))
@click.option("--key", "keys", multiple=True, help="Log verifier key to check both checkpoints.")
@click.option("--store", "store_dir", type=click.Path(exists=True, file_okay=False,
                                                      path_type=Path), default=None,
              help="Compute the consistency proof from this store when NEW does not carry one.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def diff_cmd(old: Path, new: Path, keys: tuple[str, ...], store_dir: Path | None,
             as_json: bool) -> None:
    """Compare two reports: scale limits, check results, and the log consistency proof.

    \b
    Example:
      depository certify diff cert-2026-05/report.pdf cert-2026-11/report.pdf --key log.vkey
    Exit 0 when the newer log provably extends the older one, 1 otherwise.
    """
    from depository.certification.verify import diff_reports

    try:
        d = diff_reports(old, new, log_keys=[_read_key(k) for k in keys], store=store_dir)
    except (CertifyError, ValueError, KeyError) as exc:
        raise click.UsageError(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(d, indent=2))
    else:
        _print_diff(d)
    sys.exit(0 if d["ok"] else EXIT_FAILED)


def _print_diff(d: dict[str, Any]) -> None:
    click.echo(f"{d['old']} ({d['old_verdict']}) -> {d['new']} ({d['new_verdict']})")
    click.echo("scale limits:")
    for x in d["limits"]:
        mark = "*" if x["changed"] else " "
        click.echo(f" {mark} {x['title']:<20} {x['old']['measured']!s:>14} "
                   f"{x['old']['status']!s:<8} -> {x['new']['measured']!s:>14} "
                   f"{x['new']['status']!s:<8} ({x['new']['method']})")
    click.echo("checks:")
    for c in d["checks"]:
        if c["changed"]:
            click.echo(f"  * {c['id']}: {c['old']} -> {c['new']}")
    changed = sum(1 for c in d["checks"] if c["changed"])
    click.echo(f"  {len(d['checks']) - changed} unchanged")
    cons = d["consistency"]
    state = "VERIFIED" if cons["verified"] else "NOT VERIFIED"
    click.echo(f"log consistency {cons['size1']} -> {cons['size2']}: {state}"
               + (f" ({cons.get('source')})" if cons.get("source") else ""))
    for p in d["problems"]:
        click.echo(f"  !! {p}")
