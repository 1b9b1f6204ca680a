"""``depository loadtest``: run the load suites for the seven scale limits, and report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from depository.loadtests import LIMIT_IDS


@click.group(epilog="Exit codes: 0 every limit passed; 1 a limit failed or was not "
                    "measured; 2 bad usage.")
def loadtest() -> None:
    """Load-test the HTTP service against the seven scale limits (locust, headless).

    \b
    Examples:
      depository loadtest run --spawn --profile quick --out lt-quick
      depository loadtest run concurrent-writers --target http://127.0.0.1:8080 \\
          --token-file writer.token --store ./store
      depository loadtest report lt-quick
    """


@loadtest.command("run")
@click.argument("limits", nargs=-1, type=click.Choice(LIMIT_IDS))
@click.option("--target", metavar="URL", help="A running service (loopback unless allowed).")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Bearer token(s) for --target: one token, or JSON {\"products\": {P: "
                   "{\"writer\": T, \"reader\": T}}, \"auditor\": T}.")
@click.option("--spawn", is_flag=True,
              help="Start a fresh store and server on 127.0.0.1 per limit; stop them after.")
@click.option("--profile", type=click.Choice(["quick", "certify"]), default="quick",
              show_default=True, help="quick: scaled-down targets (< 3 min); certify: the "
                                      "configured targets in full.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("loadtest-results"), show_default=True,
              help="Directory for results.json, raw locust statistics and charts.")
@click.option("--product", default="gurukul", show_default=True,
              help="Product of a single token in --token-file.")
@click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The target's store directory (read-only checks and the verifier).")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="HOST",
              help="Allow load on this non-loopback host (repeatable).")
@click.option("--discard-stores", is_flag=True, help="Delete the spawned stores afterwards.")
@click.option("--json", "as_json", is_flag=True, help="Print results.json instead of a table.")
def run_cmd(limits: tuple[str, ...], target: str | None, token_file: Path | None,
            spawn: bool, profile: str, out: Path, product: str, store_dir: Path | None,
            allow_hosts: tuple[str, ...], discard_stores: bool, as_json: bool) -> None:
    """Run LIMIT ... (default: all seven) and write OUT/results.json.

    Locust runs headless in its own process; progress is printed to stderr. A limit that
    could not be measured says why in the results and never passes.

    \b
    Examples:
      depository loadtest run --spawn                         # all seven, quick
      depository loadtest run --spawn --profile certify --out lt-certify
      depository loadtest run write-throughput --spawn --profile certify
      depository loadtest run --target http://127.0.0.1:8080 --token-file tokens.json
    """
    from depository.loadtests import common, report
    from depository.loadtests.runner import RunOptions, run

    if spawn == bool(target):
        raise click.UsageError("give exactly one of --spawn or --target URL")
    if target:
        try:
            common.check_target(target, allow_hosts)
        except common.TargetRefused as exc:
            _refused(out, profile, limits, target)
            raise click.UsageError(str(exc)) from None
        if token_file is None:
            raise click.UsageError("--target needs --token-file")

    import time

    t0 = time.monotonic()

    def progress(msg: str) -> None:
        click.echo(f"[{time.monotonic() - t0:6.1f}s] {msg}", err=True)

    doc = run(RunOptions(
        limits=limits or LIMIT_IDS, profile=profile, out=out, spawn=spawn, target=target,
        token_file=token_file, product=product, store=store_dir, allow_hosts=allow_hosts,
        keep_stores=not discard_stores, progress=progress, argv=sys.argv,
    ))
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(report.table(doc))
        click.echo(f"results: {out / 'results.json'}")
    if doc.get("error"):
        click.echo(f"error: {doc['error']}", err=True)
    sys.exit(0 if doc["pass"] else 1)


def _refused(out: Path, profile: str, limits: tuple[str, ...], target: str) -> None:
    """Write a results file saying nothing was measured, and why (the runner refuses the
    target again and records its reason for every limit)."""
    from depository.loadtests.runner import RunOptions, run

    run(RunOptions(limits=limits or LIMIT_IDS, profile=profile, out=out, spawn=False,
                   target=target, token_file=None, argv=sys.argv))


@loadtest.command("report")
@click.argument("results", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the validated document.")
def report_cmd(results: Path, as_json: bool) -> None:
    """Print the summary table of a results directory (or results.json).

    \b
    Examples:
      depository loadtest report lt-quick
      depository loadtest report lt-certify/results.json --json
    """
    from depository.loadtests import report

    try:
        doc = report.load(results)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    problems = report.validate(doc)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(report.table(doc))
    if problems:
        click.echo("results.json does not match its schema:\n  " + "\n  ".join(problems[:20]),
                   err=True)
        sys.exit(2)
    sys.exit(0 if doc.get("pass") else 1)
