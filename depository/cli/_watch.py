"""``depository watch`` (continuous checks for a store served elsewhere) and ``depository
alert`` (acknowledge an alert, print the Prometheus rules)."""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import click

from depository.cli._store import signer_option, store_option
from depository.store import ConfigError, Store, StoreError, format_time, utc_now


class _Writer:
    """The store's writer, taken per pass only if no other process holds it."""

    def __init__(self, store_dir: Path, signer_key: Path | None) -> None:
        self.store_dir = store_dir
        self.signer_key = signer_key
        self.store: Store | None = None
        self.unavailable: str | None = None

    def get(self) -> Store | None:
        if self.store is None and self.unavailable is None:
            try:
                self.store = Store.open(self.store_dir, signer_key_file=self.signer_key)
            except StoreError as exc:
                self.unavailable = str(exc)
        return self.store

    def record(self, type_: str, body: dict[str, Any]) -> int | None:
        w = self.get()
        if w is not None:
            try:
                return w.append_event(type_, actor="depository:watch", product=None,
                                      body=body)[0]
            except StoreError as exc:
                self.unavailable = str(exc)
        return None

    def lock(self, reason: str, check: str) -> bool:
        w = self.get()
        if w is None:
            return False
        try:
            if not w.governance_status()["locked"]:
                w.lock(reason, check=check, actor="depository:watch")
            return True
        except StoreError:
            return False

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
        self.store, self.unavailable = None, None


@click.command()
@store_option
@click.option("--signer-key", "signer_key", envvar="DEPOSITORY_SIGNER_KEY", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Log signer key, to record deliveries when the writer lock is free.")
@click.option("--once", is_flag=True, help="Run every check once, deliver, and exit.")
@click.option("--interval", default=5.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds between passes (jobs run on their own schedule).")
@click.option("--passes", default=0, type=click.IntRange(min=0),
              help="Stop after this many passes (0: until interrupted).")
@click.option("--local-log", default=Path("depository-watch.jsonl"), show_default=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Where deliveries are recorded when the store's writer lock is held "
                   "elsewhere (JSON lines).")
@click.option("--json", "as_json", is_flag=True, help="Print each pass as JSON.")
def watch(store_dir: Path, signer_key: Path | None, once: bool, interval: float, passes: int,
          local_log: Path, as_json: bool) -> None:
    """Run the scheduled checks and deliver alerts for a store served elsewhere.

    Reads the store read-only. Its own audit records (alert.delivery, alert.ack) and a
    governance lock on a violation go through the store's writer only when this process
    can take the writer lock for the pass (the store is not being served); otherwise
    deliveries are recorded in --local-log and the lock is left to the serving process,
    which runs the same checks. Exit status with --once: 0 all checks passed, 1 a check
    failed or found a violation, 2 bad configuration.

    \b
    Example:
      depository watch --store ./store --once --json
      depository watch --store ./store --interval 30
    """
    from depository.service.operations import Operations

    try:
        ro = Store.open(store_dir, readonly=True)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    writer = _Writer(store_dir, signer_key)
    try:
        try:
            ops = Operations(ro, record=writer.record, lock=writer.lock, local_log=local_log)
        except ConfigError as exc:
            raise click.UsageError(f"{store_dir}/depository.yaml: {exc}") from exc
        n = 0
        failed = False
        while True:
            now = utc_now()
            outcomes = ops.run_checks(now, all_jobs=once or n == 0)
            deliveries = ops.dispatch(now)
            where = "log" if writer.unavailable is None else "local"
            if where == "local":
                for d in deliveries:
                    if d.log_index is None:
                        ops.record_locally("alert.delivery", d.record_body(), d.time)
            writer.close()
            failed = failed or any(not o.ok for o in outcomes)
            _report(ops.snapshot(now), outcomes=[o.__dict__ for o in outcomes],
                    deliveries=[d.to_json() for d in deliveries], records=where,
                    as_json=as_json)
            n += 1
            if once or (passes and n >= passes):
                break
            time.sleep(interval)
    finally:
        writer.close()
        ro.close()
    if once and failed:
        raise SystemExit(1)


def _report(snap: Mapping[str, Any], *, outcomes: list[dict[str, Any]],
            deliveries: list[dict[str, Any]], records: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({**snap, "outcomes": [
            {**o, "problems": list(o["problems"])} for o in outcomes],
            "deliveries": deliveries, "records_to": records}, ensure_ascii=False))
        return
    click.echo(f"{snap['time']}")
    for o in outcomes:
        click.echo(f"  {'ok  ' if o['ok'] else 'FAIL'} {o['job']}: {o['summary']}")
        for p in o["problems"][:5]:
            click.echo(f"       {p}")
    for a in snap["firing"]:
        click.echo(f"  ALERT {a['alertname']} [{a['labels'].get('severity')}] "
                   f"{a['annotations'].get('summary')} ({a['fingerprint']})")
    for d in deliveries:
        click.echo(f"  sent {d['status']} {d['alertname']} via {d['channel']} to "
                   f"{d['receiver']}: {d['result']}"
                   + (f" ({d['error']})" if d["error"] else ""))
    if deliveries and records == "local":
        click.echo("  (the store is served elsewhere: deliveries recorded in the local log)")


@click.group()
def alert() -> None:
    """Alerts: acknowledge one, print the Prometheus rules.

    \b
    Example:
      depository alert ack --store ./store 3f2a9c0d1e4b5a67 --reason "disk ordered"
      depository alert rules > depository.rules.yml
    """


@alert.command("ack")
@store_option
@signer_option
@click.argument("fingerprint")
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
@click.option("--alertname", default="", help="The alert's name, for the record.")
@click.option("--json", "as_json", is_flag=True, help="Print the record's index as JSON.")
def ack(store_dir: Path, signer_key: Path | None, fingerprint: str, reason: str,
        alertname: str, as_json: bool) -> None:
    """Acknowledge an alert: an alert.ack record; re-sends stop.

    For a store being served, use POST /v1/alerts/FINGERPRINT/ack instead (the server
    holds the writer lock). A running `depository watch` reads the record back.

    \b
    Example:
      depository alert ack --store ./store 3f2a9c0d1e4b5a67 --reason "disk ordered"
    """
    from depository.service.operations import record_ack_offline

    try:
        with Store.open(store_dir, signer_key_file=signer_key) as store:
            idx = record_ack_offline(store, fingerprint, actor=f"cli:{getpass.getuser()}",
                                     reason=reason, alertname=alertname)
    except StoreError as exc:
        raise click.ClickException(
            f"{exc} (a served store takes acknowledgements at POST "
            f"/v1/alerts/{fingerprint}/ack)") from exc
    if as_json:
        click.echo(json.dumps({"fingerprint": fingerprint, "log_index": idx,
                               "time": format_time(utc_now())}))
    else:
        click.echo(f"acknowledged {fingerprint} (log index {idx})")


@alert.command("rules")
def rules() -> None:
    """Print the Prometheus alerting rules the service's alerts mirror.

    \b
    Example:
      depository alert rules > /etc/prometheus/depository.rules.yml
      promtool check rules /etc/prometheus/depository.rules.yml
    """
    click.echo(resources.files("depository.service").joinpath("alerts.rules.yaml")
               .read_text(encoding="utf-8"), nl=False)
