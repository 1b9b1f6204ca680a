"""Alerts that reach someone: computation, Alertmanager webhooks, email, escalation.

The service computes the same alerts the shipped Prometheus rules
(``alerts.rules.yaml`` beside this module) compute from ``/metrics``:

============================== ============================== ==========================
alertname                      fires when                     seed failure scenario
============================== ============================== ==========================
DepositoryStorageUse           a quota, the disk or the       product-urgency
                               total-storage limit reaches an
                               alert level (70/85/95 %)
DepositoryWriteThroughputLimit write throughput reaches a     product-urgency
                               level of its limit
DepositoryQueryLatencyLimit    query p99 reaches a level of   product-urgency
                               the 5 s limit
DepositoryScaleLimit           artifact size, concurrent      product-urgency
                               writers or artifact count
                               reaches a level of its limit
DepositoryGovernanceLocked     the store is under a lock      executor-misbehaves
DepositoryVerificationFailed   a scheduled check found a      provenance-questioned
                               problem
DepositoryCheckpointStale      a record waits unsigned too    executor-misbehaves
                               long
DepositoryCertificationExpiring certification expires within  auditor-explanation
                               30 (warning) / 7 (high) days
DepositoryCertificationExpired certification expired          auditor-explanation
============================== ============================== ==========================

Each alert goes to the escalation route of its scenario (``alerting.escalation`` in
``depository.yaml``): a role, email addresses and Alertmanager-compatible webhook URLs,
an acknowledgement deadline and a re-send interval. :class:`AlertDispatcher` sends new
alerts, re-sends unacknowledged ones every ``repeat`` until acknowledged, and sends
``resolved`` once; every delivery and acknowledgement is handed to a ``record`` callback
(the service appends ``alert.delivery`` / ``alert.ack`` records to the log). Time is
always passed in; retries are bounded.
"""

from __future__ import annotations

import functools
import json
import os
import re
import smtplib
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from depository.store import ConfigError, format_time

# --------------------------------------------------------------------------- scenarios

# The seed's seven governance failure scenarios: (title, default role, default deadline,
# where the deadline comes from). Only "product urgency to the CEO within 24 hours" is a
# figure of the seed; the other deadlines are this project's defaults, labelled so.
SCENARIOS: dict[str, tuple[str, str, str, str]] = {
    "executor-misbehaves": ("An executor misbehaves", "governance owner", "4h", "default"),
    "ai-escalation": ("An AI attempts escalation", "governance owner", "4h", "default"),
    "product-urgency": ("Product urgency pushes against the constitution", "CEO", "24h",
                        "seed"),
    "boundary-relaxation": ("A team tries to relax boundaries", "CI/CD gate owner", "24h",
                            "default"),
    "provenance-questioned": ("Provenance metadata is questioned", "governance owner", "24h",
                              "default"),
    "auditor-explanation": ("An auditor demands an explanation", "bucket owner", "72h",
                            "default"),
    "legal-investigation": ("A legal investigation begins", "legal counsel", "24h",
                            "default"),
}

ALERT_SCENARIO: dict[str, str] = {
    "DepositoryStorageUse": "product-urgency",
    "DepositoryWriteThroughputLimit": "product-urgency",
    "DepositoryQueryLatencyLimit": "product-urgency",
    "DepositoryScaleLimit": "product-urgency",
    "DepositoryGovernanceLocked": "executor-misbehaves",
    "DepositoryVerificationFailed": "provenance-questioned",
    "DepositoryCheckpointStale": "executor-misbehaves",
    "DepositoryCertificationExpiring": "auditor-explanation",
    "DepositoryCertificationExpired": "auditor-explanation",
}
ALERT_NAMES = tuple(ALERT_SCENARIO)

CERTIFICATION_DAYS = (30, 7)  # the seed's warnings before a certification expires
CHECKPOINT_STALE_SECONDS = 300
_SEVERITIES = ("warning", "high", "critical")


class AlertError(Exception):
    """An alerting operation was refused (e.g. acknowledging an unknown alert)."""


# --------------------------------------------------------------------------- settings

_DURATION = re.compile(r"(\d+)([smhd])\Z")


def parse_duration(value: Any, key: str) -> timedelta:
    """``30s``, ``5m``, ``24h``, ``7d`` or a number of seconds."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    m = _DURATION.match(value) if isinstance(value, str) else None
    if not m or int(m.group(1)) <= 0:
        raise ConfigError(f"{key}: must be a positive duration such as 30s, 5m, 24h or 7d, "
                          f"got {value!r}")
    n = int(m.group(1))
    return timedelta(seconds=n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)])


@dataclass(frozen=True)
class Route:
    """Where a scenario's alerts go and how long the contact has to acknowledge."""

    scenario: str
    role: str
    email: tuple[str, ...] = ()
    webhook: tuple[str, ...] = ()
    deadline: timedelta = timedelta(hours=24)
    repeat: timedelta = timedelta(hours=1)
    deadline_source: str = "default"

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "title": SCENARIOS[self.scenario][0],
                "role": self.role, "email": list(self.email), "webhook": list(self.webhook),
                "deadline_seconds": int(self.deadline.total_seconds()),
                "deadline_source": self.deadline_source,
                "repeat_seconds": int(self.repeat.total_seconds()),
                "contacts": len(self.email) + len(self.webhook)}


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "depository@localhost"
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None  # the password is read from this variable, never YAML


@dataclass(frozen=True)
class AlertingSettings:
    """``alerting`` in ``depository.yaml``, validated."""

    routes: Mapping[str, Route]
    smtp: SmtpSettings | None = None
    retries: int = 3
    timeout: float = 5.0
    checkpoint_stale: timedelta = timedelta(seconds=CHECKPOINT_STALE_SECONDS)
    certification_days: tuple[int, int] = CERTIFICATION_DAYS
    external_url: str = ""

    def route_for(self, alertname: str) -> Route:
        return self.routes[ALERT_SCENARIO.get(alertname, "executor-misbehaves")]


_ALERTING_KEYS = {"smtp", "escalation", "retries", "timeout_seconds",
                  "checkpoint_stale_seconds", "certification_days", "external_url"}
_ROUTE_KEYS = {"role", "email", "webhook", "deadline", "repeat"}
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\Z")


def _strings(v: Any, key: str, check: Callable[[str], bool], what: str) -> tuple[str, ...]:
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not all(isinstance(x, str) and check(x) for x in items):
        raise ConfigError(f"{key}: must be {what} or a list of them, got {v!r}")
    return tuple(items)


def parse_alerting(raw: Mapping[str, Any]) -> AlertingSettings:
    """Validate ``alerting``; every error names the key at fault."""
    bad = sorted(set(raw) - _ALERTING_KEYS)
    if bad:
        raise ConfigError(f"alerting.{bad[0]}: unknown key (expected one of "
                          f"{', '.join(sorted(_ALERTING_KEYS))})")
    esc = raw.get("escalation", {})
    if not isinstance(esc, dict):
        raise ConfigError("alerting.escalation: must map failure scenarios to routes")
    unknown = sorted(set(esc) - set(SCENARIOS))
    if unknown:
        raise ConfigError(f"alerting.escalation.{unknown[0]}: unknown scenario (expected one "
                          f"of {', '.join(SCENARIOS)})")
    routes: dict[str, Route] = {}
    for sid, (_, role, deadline, source) in SCENARIOS.items():
        r = esc.get(sid, {})
        key = f"alerting.escalation.{sid}"
        if not isinstance(r, dict):
            raise ConfigError(f"{key}: must be a mapping (role, email, webhook, deadline, "
                              "repeat)")
        bad = sorted(set(r) - _ROUTE_KEYS)
        if bad:
            raise ConfigError(f"{key}.{bad[0]}: unknown key (expected one of "
                              f"{', '.join(sorted(_ROUTE_KEYS))})")
        role_v = r.get("role", role)
        if not isinstance(role_v, str) or not role_v.strip():
            raise ConfigError(f"{key}.role: must be a non-empty string")
        routes[sid] = Route(
            scenario=sid, role=role_v,
            email=_strings(r.get("email", []), f"{key}.email", lambda x: bool(_EMAIL.match(x)),
                           "an email address"),
            webhook=_strings(r.get("webhook", []), f"{key}.webhook",
                             lambda x: x.startswith(("http://", "https://")),
                             "an http(s) URL"),
            deadline=parse_duration(r.get("deadline", deadline), f"{key}.deadline"),
            repeat=parse_duration(r.get("repeat", "1h"), f"{key}.repeat"),
            deadline_source=source if "deadline" not in r else "configured",
        )
    smtp = None
    if "smtp" in raw:
        s = raw["smtp"]
        if not isinstance(s, dict):
            raise ConfigError("alerting.smtp: must be a mapping (host, port, from, ...)")
        bad = sorted(set(s) - {"host", "port", "from", "starttls", "username", "password_env"})
        if bad:
            raise ConfigError(f"alerting.smtp.{bad[0]}: unknown key")
        port = s.get("port", 25)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ConfigError(f"alerting.smtp.port: must be a TCP port, got {port!r}")
        sender = s.get("from", "depository@localhost")
        if not isinstance(sender, str) or not _EMAIL.match(sender):
            raise ConfigError(f"alerting.smtp.from: must be an email address, got {sender!r}")
        smtp = SmtpSettings(host=str(s.get("host", "127.0.0.1")), port=port, sender=sender,
                            starttls=bool(s.get("starttls", False)),
                            username=s.get("username"), password_env=s.get("password_env"))
    retries = raw.get("retries", 3)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 1 <= retries <= 10:
        raise ConfigError(f"alerting.retries: must be an integer 1..10, got {retries!r}")
    timeout = raw.get("timeout_seconds", 5)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 60:
        raise ConfigError(f"alerting.timeout_seconds: must be a number in (0, 60], got "
                          f"{timeout!r}")
    days = raw.get("certification_days", list(CERTIFICATION_DAYS))
    if (not isinstance(days, list) or len(days) != 2
            or not all(isinstance(d, int) and d > 0 for d in days) or days[0] <= days[1]):
        raise ConfigError("alerting.certification_days: must be two decreasing day counts, "
                          f"e.g. [30, 7], got {days!r}")
    return AlertingSettings(
        routes=routes, smtp=smtp, retries=retries, timeout=float(timeout),
        checkpoint_stale=parse_duration(raw.get("checkpoint_stale_seconds",
                                                CHECKPOINT_STALE_SECONDS),
                                        "alerting.checkpoint_stale_seconds"),
        certification_days=(days[0], days[1]),
        external_url=str(raw.get("external_url", "")))


# --------------------------------------------------------------------------- alerts


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's label-set fingerprint: 64-bit FNV-1a over the sorted label names
    and values, each followed by the byte 0xff (prometheus/common ``model.LabelSet``)."""
    h = 0xCBF29CE484222325
    for name in sorted(labels):
        for part in (name.encode(), b"\xff", str(labels[name]).encode(), b"\xff"):
            for byte in part:
                h ^= byte
                h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


@dataclass(frozen=True)
class Alert:
    """One firing alert, as Prometheus would label it."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @property
    def name(self) -> str:
        return self.labels["alertname"]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    def to_json(self) -> dict[str, Any]:
        return {"alertname": self.name, "fingerprint": self.fingerprint,
                "labels": dict(self.labels), "annotations": dict(self.annotations)}


def _alert(name: str, severity: str, summary: str, description: str,
           **labels: str) -> Alert:
    scenario = ALERT_SCENARIO[name]
    return Alert(labels={"alertname": name, "severity": severity, "scenario": scenario,
                         "service": "depository", **labels},
                 annotations={"summary": summary, "description": description,
                              "scenario": SCENARIOS[scenario][0]})


def _severity(level: int, n_levels: int) -> str:
    if level >= n_levels:
        return "critical"
    if level == n_levels - 1:
        return "high"
    return "warning"


@dataclass(frozen=True)
class AlertInputs:
    """The measured state alerts are computed from (all plain figures)."""

    alert_levels: Sequence[int]
    storage: Sequence[Mapping[str, Any]] = ()  # storage_alerts() candidates
    scale: Sequence[Mapping[str, Any]] = ()  # scale_status() entries
    locked: str | None = None
    verification_failed: bool = False
    verification_detail: str = ""
    unsigned_age_seconds: float = 0.0
    unsigned_records: int = 0
    certification_days_left: int | None = None
    certification_until: str | None = None
    certification_source: str = ""


def compute_alerts(inp: AlertInputs, settings: AlertingSettings) -> list[Alert]:
    """Every alert that fires for ``inp`` (the rules file computes the same ones)."""
    n = len(inp.alert_levels)
    out: list[Alert] = []
    storage = [dict(c) for c in inp.storage]
    storage += [dict(s, id="total-storage") for s in inp.scale if s["id"] == "total-storage"]
    for c in storage:
        lvl = int(c.get("level") or 0)
        if lvl <= 0:
            continue
        pct, at = c.get("percent"), inp.alert_levels[lvl - 1]
        out.append(_alert(
            "DepositoryStorageUse", _severity(lvl, n),
            f"storage {c['id']} at {pct}% (level {at}%)",
            f"{c['id']}: {c.get('current')} of {c.get('threshold')} {c.get('unit', '')} "
            f"used ({pct}%), past the {at}% alert level",
            scope=str(c["id"]), threshold=str(at)))
    names = {"write-throughput": "DepositoryWriteThroughputLimit",
             "query-response": "DepositoryQueryLatencyLimit",
             "artifact-size": "DepositoryScaleLimit",
             "concurrent-writers": "DepositoryScaleLimit",
             "artifact-count": "DepositoryScaleLimit"}
    for s in inp.scale:
        name = names.get(s["id"])
        lvl = int(s.get("level") or 0)
        if name is None or lvl <= 0:
            continue
        at = inp.alert_levels[lvl - 1]
        out.append(_alert(
            name, _severity(lvl, n), f"{s['id']} at {s['percent']}% of its limit",
            f"{s['id']}: {s['current']} {s.get('unit')} measured ({s.get('measured')}) "
            f"against the limit {s['threshold']} ({s['percent']}%, past {at}%)",
            limit=str(s["id"]), threshold=str(at)))
    if inp.locked:
        out.append(_alert("DepositoryGovernanceLocked", "critical",
                          "the store is under a governance lock; writes are refused",
                          f"lock reason: {inp.locked}"))
    if inp.verification_failed:
        out.append(_alert("DepositoryVerificationFailed", "critical",
                          "a scheduled verification found a problem",
                          inp.verification_detail or "see the schedule view"))
    stale = settings.checkpoint_stale.total_seconds()
    if inp.unsigned_records and inp.unsigned_age_seconds > stale:
        out.append(_alert(
            "DepositoryCheckpointStale", "high",
            f"{inp.unsigned_records} records wait for a signed checkpoint",
            f"the oldest record not covered by a checkpoint is "
            f"{int(inp.unsigned_age_seconds)} s old (limit "
            f"{int(settings.checkpoint_stale.total_seconds())} s)"))
    days = inp.certification_days_left
    if days is not None:
        warn, high = settings.certification_days
        where = f" ({inp.certification_source})" if inp.certification_source else ""
        if days < 0:
            out.append(_alert("DepositoryCertificationExpired", "critical",
                              f"the certification expired on {inp.certification_until}",
                              f"expired {-days} days ago{where}; recertify"))
        elif days <= warn:
            out.append(_alert("DepositoryCertificationExpiring",
                              "high" if days <= high else "warning",
                              f"the certification expires in {days} days",
                              f"valid until {inp.certification_until}{where}",
                              within=str(high if days <= high else warn)))
    return out


# --------------------------------------------------------------------------- payloads


def webhook_payload(alerts: Sequence[tuple[Alert, str, str, str]], *, receiver: str,
                    status: str, group_key: str, external_url: str = "") -> dict[str, Any]:
    """Alertmanager's webhook body, version 4. ``alerts`` holds (alert, status, startsAt,
    endsAt) with times in RFC 3339 (``0001-01-01T00:00:00Z`` when not ended)."""
    labelsets = [dict(a.labels) for a, *_ in alerts]
    common = {k: v for k, v in labelsets[0].items()
              if all(ls.get(k) == v for ls in labelsets)} if labelsets else {}
    anns = [dict(a.annotations) for a, *_ in alerts]
    common_ann = {k: v for k, v in anns[0].items()
                  if all(x.get(k) == v for x in anns)} if anns else {}
    return {
        "version": "4", "groupKey": group_key, "truncatedAlerts": 0, "status": status,
        "receiver": receiver,
        "groupLabels": {k: common[k] for k in ("alertname", "scenario") if k in common},
        "commonLabels": common, "commonAnnotations": common_ann,
        "externalURL": external_url,
        "alerts": [{"status": st, "labels": dict(a.labels),
                    "annotations": dict(a.annotations), "startsAt": start, "endsAt": end,
                    "generatorURL": external_url, "fingerprint": a.fingerprint}
                   for a, st, start, end in alerts],
    }


ZERO_TIME = "0001-01-01T00:00:00Z"

Sleep = Callable[[float], None]


def _retry(fn: Callable[[], None], tries: int, sleep: Sleep) -> tuple[int, str | None]:
    """Run ``fn`` up to ``tries`` times (0.5 s, 1 s, 2 s... between, capped at 5 s);
    (tries used, last error or None)."""
    err: str | None = None
    for n in range(1, tries + 1):
        try:
            fn()
            return n, None
        except (OSError, smtplib.SMTPException, urllib.error.URLError) as exc:
            err = f"{type(exc).__name__}: {exc}"
        if n < tries:
            sleep(min(5.0, 0.5 * 2 ** (n - 1)))
    return tries, err


def post_webhook(url: str, payload: Mapping[str, Any], *, timeout: float) -> None:
    """POST ``payload`` as JSON; raises OSError/URLError on failure or a non-2xx answer."""
    data = json.dumps(payload, ensure_ascii=False).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json",
                                          "User-Agent": "depository-alerts"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        if not 200 <= resp.status < 300:
            raise OSError(f"webhook answered HTTP {resp.status}")


def send_email(smtp: SmtpSettings, to: Sequence[str], subject: str, text: str, *,
               timeout: float) -> None:
    msg = EmailMessage()
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg.set_content(text)
    with smtplib.SMTP(smtp.host, smtp.port, timeout=timeout) as s:
        if smtp.starttls:
            s.starttls()
        if smtp.username:
            s.login(smtp.username, os.environ.get(smtp.password_env or "", ""))
        s.send_message(msg)


# --------------------------------------------------------------------------- escalation


@dataclass
class Delivery:
    """One delivery attempt of one alert to one receiver (an ``alert.delivery`` record)."""

    time: str
    alertname: str
    fingerprint: str
    status: str
    scenario: str
    role: str
    channel: str
    receiver: str
    attempt: int
    tries: int
    result: str
    error: str | None = None
    overdue: bool = False
    log_index: int | None = None

    def record_body(self) -> dict[str, Any]:
        return {"alertname": self.alertname, "fingerprint": self.fingerprint,
                "status": self.status, "scenario": self.scenario, "role": self.role,
                "channel": self.channel, "receiver": self.receiver, "attempt": self.attempt,
                "tries": self.tries, "result": self.result, "error": self.error,
                "overdue": self.overdue}

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, **self.record_body(), "log_index": self.log_index}


@dataclass
class Escalation:
    """An alert being escalated: sent, re-sent every ``repeat`` until acknowledged."""

    alert: Alert
    route: Route
    starts_at: str
    first_sent: datetime | None = None
    last_sent: datetime | None = None
    sends: int = 0
    acked_at: str | None = None
    acked_by: str | None = None
    ack_reason: str | None = None
    ack_log_index: int | None = None
    resolved_at: str | None = None

    def deadline(self) -> datetime | None:
        return None if self.first_sent is None else self.first_sent + self.route.deadline

    def overdue(self, now: datetime) -> bool:
        d = self.deadline()
        return d is not None and self.acked_at is None and now > d

    def to_json(self, now: datetime) -> dict[str, Any]:
        d = self.deadline()
        return {
            **self.alert.to_json(), "role": self.route.role, "scenario": self.route.scenario,
            "starts_at": self.starts_at, "sends": self.sends,
            "first_sent": format_time(self.first_sent) if self.first_sent else None,
            "last_sent": format_time(self.last_sent) if self.last_sent else None,
            "ack_deadline": format_time(d) if d else None,
            "deadline_source": self.route.deadline_source,
            "overdue": self.overdue(now), "acknowledged": self.acked_at is not None,
            "acked_at": self.acked_at, "acked_by": self.acked_by,
            "ack_reason": self.ack_reason, "resolved_at": self.resolved_at,
            "next_resend": (format_time(self.last_sent + self.route.repeat)
                            if self.last_sent and self.acked_at is None
                            and self.resolved_at is None else None),
        }


Recorder = Callable[[str, dict[str, Any]], int | None]
"""Appends an ``alert.delivery``/``alert.ack`` record; returns its log index (or None
when it could only be kept locally)."""


class AlertDispatcher:
    """Delivers alerts along their escalation routes and keeps their history."""

    def __init__(self, settings: AlertingSettings, *, record: Recorder,
                 sleep: Sleep = time.sleep, history_max: int = 1000,
                 webhook: Callable[..., None] = post_webhook,
                 email: Callable[..., None] = send_email) -> None:
        self.settings = settings
        self._record = record
        self._sleep = sleep
        self._webhook = webhook
        self._email = email
        self._lock = threading.Lock()
        self.open: dict[str, Escalation] = {}
        self.closed: deque[Escalation] = deque(maxlen=history_max)
        self.deliveries: deque[Delivery] = deque(maxlen=history_max)
        self.acks: dict[str, dict[str, Any]] = {}  # fingerprint -> ack (also from the log)
        # fingerprint -> (time, attempt) of the last firing delivery read from the log
        self.sent_before: dict[str, tuple[datetime, int]] = {}

    # ------------------------------------------------------------------ state
    def load_ack(self, fp: str, *, time_: str, actor: str, reason: str,
                 log_index: int | None) -> None:
        """An acknowledgement read back from the log (so a restart does not re-page)."""
        self.acks[fp] = {"time": time_, "actor": actor, "reason": reason,
                         "log_index": log_index}
        esc = self.open.get(fp)
        if esc is not None and esc.acked_at is None:
            esc.acked_at, esc.acked_by, esc.ack_reason = time_, actor, reason
            esc.ack_log_index = log_index

    def load_resolved(self, fp: str) -> None:
        """A ``resolved`` delivery read back from the log: an earlier ack is spent."""
        if fp not in self.open:
            self.acks.pop(fp, None)
            self.sent_before.pop(fp, None)

    def load_sent(self, fp: str, when: datetime, attempt: int) -> None:
        """A ``firing`` delivery read back from the log."""
        prev = self.sent_before.get(fp)
        if prev is None or when >= prev[0]:
            self.sent_before[fp] = (when, attempt)

    def process(self, alerts: Iterable[Alert], now: datetime) -> list[Delivery]:
        """Send what is new, re-send what is unacknowledged and due, resolve what ended."""
        with self._lock:
            sent: list[Delivery] = []
            current = {a.fingerprint: a for a in alerts}
            for fp, alert in current.items():
                esc = self.open.get(fp)
                if esc is None:
                    esc = self.open[fp] = Escalation(
                        alert, self.settings.route_for(alert.name), format_time(now))
                    ack = self.acks.get(fp)
                    if ack is not None:
                        # Acknowledged before a restart and not resolved since (a
                        # resolution clears the ack): the incident is known; no re-page.
                        esc.acked_at, esc.acked_by = ack["time"], ack["actor"]
                        esc.ack_reason, esc.ack_log_index = ack["reason"], ack["log_index"]
                        esc.first_sent = esc.last_sent = now
                        esc.sends = 1  # notified before the restart: resolve it later
                    before = self.sent_before.get(fp)
                    if before is not None and esc.last_sent is None:
                        # Paged before a restart: the re-send interval runs on from then.
                        esc.first_sent = esc.last_sent = min(before[0], now)
                        esc.sends = before[1]
                esc.alert = alert  # annotations carry the current figures
                due = esc.last_sent is None or (
                    esc.acked_at is None and now - esc.last_sent >= esc.route.repeat)
                if due:
                    sent += self._send(esc, "firing", now)
            for fp in [fp for fp in self.open if fp not in current]:
                esc = self.open.pop(fp)
                esc.resolved_at = format_time(now)
                self.acks.pop(fp, None)  # an ack covers one incident, not the next one
                if esc.sends:
                    sent += self._send(esc, "resolved", now)
                self.closed.append(esc)
            return sent

    def ack(self, fp: str, *, actor: str, reason: str, now: datetime) -> Escalation:
        """Acknowledge an open alert: recorded, and re-sends stop."""
        if not reason.strip():
            raise AlertError("an acknowledgement needs a reason (it is recorded in the log)")
        with self._lock:
            esc = self.open.get(fp)
            if esc is None:
                raise AlertError(f"no open alert with fingerprint {fp!r}; open: "
                                 f"{', '.join(sorted(self.open)) or 'none'}")
            if esc.acked_at is not None:
                return esc
            idx = self._record("alert.ack", {"alertname": esc.alert.name, "fingerprint": fp,
                                             "reason": reason, "role": esc.route.role,
                                             "by": actor})
            esc.acked_at, esc.acked_by, esc.ack_reason = format_time(now), actor, reason
            esc.ack_log_index = idx
            self.acks[fp] = {"time": esc.acked_at, "actor": actor, "reason": reason,
                             "log_index": idx}
            return esc

    # ------------------------------------------------------------------ sending
    def _send(self, esc: Escalation, status: str, now: datetime) -> list[Delivery]:
        route, alert = esc.route, esc.alert
        overdue = esc.overdue(now)
        attempt = esc.sends + 1
        end = format_time(now) if status == "resolved" else ZERO_TIME
        tries = self.settings.retries
        out: list[Delivery] = []

        def deliver(channel: str, receiver: str, fn: Callable[[], None]) -> None:
            used, err = _retry(fn, tries, self._sleep)
            d = Delivery(format_time(now), alert.name, alert.fingerprint, status,
                         route.scenario, route.role, channel, receiver, attempt, used,
                         "delivered" if err is None else "failed", err, overdue)
            d.log_index = self._record("alert.delivery", d.record_body())
            self.deliveries.append(d)
            out.append(d)

        group_key = f'{{}}:{{scenario="{route.scenario}"}}'
        payload = webhook_payload([(alert, status, esc.starts_at, end)],
                                  receiver=f"{route.scenario}/{route.role}", status=status,
                                  group_key=group_key,
                                  external_url=self.settings.external_url)
        payload["depository"] = {"attempt": attempt, "overdue": overdue,
                                 "role": route.role,
                                 "ack_deadline": format_time(esc.deadline() or now
                                                             + route.deadline)}
        for url in route.webhook:
            deliver("webhook", url, functools.partial(
                self._webhook, url, payload, timeout=self.settings.timeout))
        smtp = self.settings.smtp
        if route.email and smtp is not None:
            subject, text = _email_text(esc, status, attempt, overdue, now)
            deliver("email", ", ".join(route.email), lambda: self._email(
                smtp, route.email, subject, text, timeout=self.settings.timeout))
        elif route.email:
            d = Delivery(format_time(now), alert.name, alert.fingerprint, status,
                         route.scenario, route.role, "email", ", ".join(route.email),
                         attempt, 0, "failed", "alerting.smtp is not configured", overdue)
            d.log_index = self._record("alert.delivery", d.record_body())
            self.deliveries.append(d)
            out.append(d)
        if status == "firing":
            if esc.first_sent is None:
                esc.first_sent = now  # the deadline runs from when it was first due
            esc.last_sent = now
            if out:  # a route without contacts sends nothing (never-assume shows it)
                esc.sends = attempt
        return out

    # ------------------------------------------------------------------ views
    def snapshot(self, now: datetime) -> dict[str, Any]:
        """Open escalations, closed ones and recent deliveries (newest last)."""
        with self._lock:
            return {
                "open": [e.to_json(now) for e in sorted(
                    self.open.values(), key=lambda e: (e.alert.name, e.alert.fingerprint))],
                "closed": [e.to_json(now) for e in self.closed],
                "deliveries": [d.to_json() for d in self.deliveries],
                "routes": [r.to_json() for r in self.settings.routes.values()],
                "smtp_configured": self.settings.smtp is not None,
            }


def _email_text(esc: Escalation, status: str, attempt: int, overdue: bool,
                now: datetime) -> tuple[str, str]:
    a, r = esc.alert, esc.route
    sev = a.labels.get("severity", "")
    tag = "RESOLVED" if status == "resolved" else ("OVERDUE" if overdue else "FIRING")
    again = f", re-send {attempt}" if attempt > 1 and status == "firing" else ""
    subject = f"[Depository {tag} {sev}] {a.name}: {a.annotations.get('summary', '')}{again}"
    deadline = esc.deadline() or now + r.deadline
    lines = [
        f"{a.annotations.get('summary', '')}", "",
        f"{a.annotations.get('description', '')}", "",
        f"Scenario: {SCENARIOS[r.scenario][0]} ({r.scenario})",
        f"Escalated to: {r.role}",
        f"Fingerprint: {a.fingerprint}",
        f"Started: {esc.starts_at}",
        f"Acknowledge by: {format_time(deadline)} ({r.deadline_source} deadline)",
        "", "Labels:", *(f"  {k}={v}" for k, v in sorted(a.labels.items())), "",
        "Acknowledge (re-sends stop; the acknowledgement is recorded in the audit log):",
        f"  POST /v1/alerts/{a.fingerprint}/ack  {{\"reason\": \"...\"}}  (admin token)",
        f"  depository alert ack --store DIR {a.fingerprint} --reason '...'",
    ]
    return subject, "\n".join(lines) + "\n"
