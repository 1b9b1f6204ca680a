"""Operations over one store: continuous checks, alert computation and delivery.

:class:`Operations` ties :mod:`.checks` (scheduled work) to :mod:`.alerts` (escalation).
``depository serve`` drives it from its monitoring loop; ``depository watch`` drives it
for a store served elsewhere. Everything a dashboard shows comes from
:meth:`Operations.snapshot` (plain JSON) or the dataclasses it is built from.

Audit records: deliveries and acknowledgements are appended through ``record`` (by
default the store's own writer via :meth:`Store.append_event`). When that is impossible
(a read-only store: another process holds the writer lock) they go to ``local_log``, a
JSON-lines file, and :attr:`Delivery.log_index` stays None.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from depository.service._monitoring import storage_alerts
from depository.service.alerts import (
    Alert,
    AlertDispatcher,
    AlertingSettings,
    AlertInputs,
    Delivery,
    Escalation,
    Recorder,
    Sleep,
    compute_alerts,
    parse_alerting,
)
from depository.service.checks import ContinuousChecks, LockFn, Outcome, parse_schedule
from depository.store import (
    NotFoundError,
    Store,
    StoreError,
    format_time,
    parse_time,
    utc_now,
)

_ALERT_NEEDLE = b'"type":"alert.'
log = logging.getLogger("depository.operations")


class Operations:
    """Checks, alerts and escalation for ``store``."""

    def __init__(self, store: Store, *, record: Recorder | None = None,
                 lock: LockFn | None = None, sleep: Sleep = time.sleep,
                 rng: random.Random | None = None, local_log: Path | None = None,
                 actor: str = "depository:alerts") -> None:
        cfg = store.config
        self.store = store
        self.alerting: AlertingSettings = parse_alerting(cfg.alerting)
        self.schedule = parse_schedule(cfg.schedule, cfg.monitoring, store.path)
        self.checks = ContinuousChecks(store, self.schedule, lock=lock, rng=rng)
        self.local_log = local_log
        self.actor = actor
        self._record_fn = record
        self.dispatcher = AlertDispatcher(self.alerting, record=self._record, sleep=sleep)
        self.firing: list[Alert] = []
        self.last_inputs: AlertInputs | None = None
        self._acks_scanned = 0
        self._now: datetime | None = None  # the time of the pass being recorded
        self._lock = threading.Lock()
        self.refresh_acks()

    # ------------------------------------------------------------------ records
    def _record(self, type_: str, body: dict[str, Any]) -> int | None:
        if self._record_fn is not None:
            return self._record_fn(type_, body)
        if not self.store.readonly:
            try:
                # An acknowledgement is recorded as the act of whoever acknowledged.
                actor = str(body["by"]) if type_ == "alert.ack" and "by" in body \
                    else self.actor
                return self.store.append_event(type_, actor=actor, product=None,
                                               body=body)[0]
            except StoreError as exc:
                body = {**body, "not_in_log": str(exc)}
        self.record_locally(type_, body,
                            format_time(self._now) if self._now is not None else None)
        return None

    def record_locally(self, type_: str, body: Mapping[str, Any],
                       when: str | None = None) -> None:
        """Append a record that could not go to the store's log to ``local_log``."""
        if self.local_log is None:
            return
        self.local_log.parent.mkdir(parents=True, exist_ok=True)
        with self.local_log.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"time": when or body.get("time"), "type": type_,
                                "body": dict(body)}, ensure_ascii=False) + "\n")

    def refresh_acks(self) -> int:
        """Read ``alert.ack`` records appended since the last call (e.g. by `depository
        alert ack` while a watch runs); returns how many were found."""
        size = self.store.size()
        found = 0
        for idx, leaf in self.store.log_entries(self._acks_scanned, size):
            if _ALERT_NEEDLE not in leaf:
                continue
            try:
                rec = self.store.record(idx)
            except Exception:
                continue  # a damaged record is the verify job's finding
            fp = str(rec.body.get("fingerprint"))
            if rec.type == "alert.ack":
                self.dispatcher.load_ack(fp, time_=rec.time, actor=rec.actor,
                                         reason=str(rec.body.get("reason")), log_index=idx)
                found += 1
            elif rec.type == "alert.delivery" and rec.body.get("status") == "resolved":
                self.dispatcher.load_resolved(fp)
            elif rec.type == "alert.delivery" and rec.body.get("result") == "delivered":
                self.dispatcher.load_sent(fp, parse_time(rec.time),
                                          int(rec.body.get("attempt") or 1))
        self._acks_scanned = size
        return found

    def use_certification_report(self, path: Path) -> None:
        """Read the certification's validity from the signed report at ``path`` (when
        the log holds no certification.result record)."""
        self.schedule = dataclasses.replace(self.schedule, certification_report=path)
        self.checks.settings = self.schedule

    # ------------------------------------------------------------------ inputs
    def alert_inputs(self, now: datetime, *, scale: Sequence[Mapping[str, Any]] = (),
                     storage: Sequence[Mapping[str, Any]] | None = None) -> AlertInputs:
        """The figures alerts are computed from. ``scale``/``storage`` come from the
        service's monitoring views; without them (watch) storage is read from the store."""
        store, cfg = self.store, self.store.config
        if storage is None:
            usage = {p: (v["bytes"], v["artifacts"]) for p, v in store.usage().items()}
            try:
                du = shutil.disk_usage(store.path)
                disk: tuple[int, int] | None = (du.used, du.total)
            except OSError:
                disk = None
            storage = storage_alerts(usage, cfg, disk)
        gov = store.governance_status()
        size = store.size()
        try:
            cp_size, _ = store.latest_checkpoint()
        except NotFoundError:
            cp_size = 0
        age = 0.0
        if size > cp_size:
            age = max(0.0, (now - parse_time(store.record(cp_size).time)).total_seconds())
        cert = self.checks.certification
        return AlertInputs(
            alert_levels=cfg.alert_levels, storage=list(storage), scale=list(scale),
            locked=gov["reason"] if gov["locked"] else None,
            verification_failed=self.checks.violation is not None,
            verification_detail=self.checks.violation or "",
            unsigned_age_seconds=age, unsigned_records=size - cp_size,
            certification_days_left=cert.days_left, certification_until=cert.until,
            certification_source=cert.source)

    # ------------------------------------------------------------------ driving
    def run_checks(self, now: datetime, *, all_jobs: bool = False) -> list[Outcome]:
        return (self.checks.run_all(now) if all_jobs else self.checks.run_due(now))

    def dispatch(self, now: datetime, *, scale: Sequence[Mapping[str, Any]] = (),
                 storage: Sequence[Mapping[str, Any]] | None = None) -> list[Delivery]:
        """Compute the alerts firing now and deliver what is due."""
        with self._lock:
            self._now = now
            self.refresh_acks()
            inputs = self.alert_inputs(now, scale=scale, storage=storage)
            self.last_inputs = inputs
            self.firing = compute_alerts(inputs, self.alerting)
            return self.dispatcher.process(self.firing, now)

    def ack(self, fingerprint: str, *, actor: str, reason: str, now: datetime) -> Escalation:
        self._now = now
        return self.dispatcher.ack(fingerprint, actor=actor, reason=reason, now=now)

    def snapshot(self, now: datetime) -> dict[str, Any]:
        """The schedule's progress, alerts firing, escalations and deliveries."""
        return {"time": format_time(now),
                "firing": [a.to_json() for a in self.firing],
                "schedule": self.checks.snapshot(),
                "escalation": self.dispatcher.snapshot(now)}


def record_ack_offline(store: Store, fingerprint: str, *, actor: str, reason: str,
                       alertname: str = "") -> int:
    """Append an ``alert.ack`` record from outside a running service (`depository alert
    ack`); a running watch reads it back and stops re-sending."""
    if not reason.strip():
        raise StoreError("an acknowledgement needs a reason (it is recorded in the log)")
    idx, _ = store.append_event("alert.ack", actor=actor, product=None, body={
        "alertname": alertname, "fingerprint": fingerprint, "reason": reason})
    return idx



def start_background(store: Store, *, clock: Callable[[], datetime] = utc_now,
                     every: float = 5.0) -> Callable[[], None]:
    """Run the scheduled checks and deliver alerts every ``every`` seconds in a daemon
    thread (``depository serve --workers N``: the parent holds the writer, so the checks
    and deliveries run there, once, not in each HTTP worker). Returns ``stop``."""
    ops = Operations(store)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                now = clock()
                ops.run_checks(now)
                ops.dispatch(now)
            except Exception:  # the next round retries; serving goes on
                log.exception("scheduled checks or alert delivery failed")

    t = threading.Thread(target=loop, name="depository-operations", daemon=True)
    t.start()

    def halt() -> None:
        stop.set()
        t.join(timeout=30)

    return halt
