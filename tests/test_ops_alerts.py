"""Alert delivery, escalation and continuous checks against a real SMTP server (aiosmtpd)
and a real HTTP webhook receiver, both on 127.0.0.1, driven by an injected clock.

An expiring certification, a storage threshold and a tamper found by the scheduled checks
each reach both receivers with ``alert.delivery`` records in the log; unacknowledged
alerts are re-sent, an acknowledgement stops that and is recorded."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import subprocess
import threading
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from test_service_support import bearer, issue_tokens, make_store, store_config

from depository.certification.report import digest_text
from depository.cli import main
from depository.service import create_app
from depository.service.alerts import (
    ALERT_NAMES,
    AlertInputs,
    compute_alerts,
    fingerprint,
    parse_alerting,
)
from depository.store import ConfigError, Store, parse_time
from depository.tlog.record import canonical_json
from depository.verifier.store import store_result

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RULES = Path(__file__).parent.parent / "depository" / "service" / "alerts.rules.yaml"
T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


# ----------------------------------------------------------------------- receivers
class Smtp:
    """aiosmtpd on 127.0.0.1: every message received."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        outer = self

        class Sink:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                outer.messages.append(message_from_bytes(envelope.content, policy=policy.default))
                return "250 OK"

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(Sink(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


class Hook:
    """A stdlib HTTP server on 127.0.0.1 keeping every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                outer.bodies.append(json.loads(self.rfile.read(n)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alertnames(self) -> list[str]:
        return [a["labels"]["alertname"] for b in self.bodies for a in b["alerts"]]


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    s = Smtp()
    yield s
    s.controller.stop()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.server.shutdown()
    h.server.server_close()


def ops_config(smtp: Smtp, hook: Hook, report: Path | None = None) -> dict[str, Any]:
    route = {"email": ["owner@example.org"], "webhook": [hook.url], "repeat": "1h"}
    return {
        "alerting": {"smtp": {"host": "127.0.0.1", "port": smtp.port,
                              "from": "depository@example.org"},
                     "retries": 2, "timeout_seconds": 5,
                     "escalation": {"product-urgency": {**route, "role": "CEO",
                                                        "email": ["ceo@example.org"]},
                                    "executor-misbehaves": route,
                                    "provenance-questioned": route,
                                    "auditor-explanation": route}},
        "schedule": {"verify": {"every": "10m", "full_every": "24h", "record_sample": 1000},
                     "blob_sample": {"every": "1h", "count": 1000},
                     "anchor": {"enabled": False},
                     "certification": {"every": "1h"}},
        "monitoring": {"certification_report": str(report)} if report else {},
    }


def write_report(path: Path, until: str) -> Path:
    """A certification report directory in the format `certify run` writes (report.json
    in canonical form, report.digest), validity as given, no sign-offs required."""
    data = {"report_id": "cert-test", "verdict": {"result": "pass"}, "signoffs_required": [],
            "validity": {"from": "2026-06-09", "until": until, "next_review": until,
                         "recertification_due": until}}
    path.mkdir(parents=True)
    raw = canonical_json(data)
    (path / "report.json").write_bytes(raw)
    (path / "report.digest").write_bytes(digest_text(hashlib.sha256(raw).hexdigest()))
    return path


def small_quota_store(path: Path, **overrides: Any) -> Store:
    cfg = store_config(**overrides)
    cfg["products"]["gurukul"]["quota"]["bytes"] = 1000
    return Store.init(path, config=cfg)


def alert_records(store: Store) -> list[dict[str, Any]]:
    return [json.loads(leaf) for _, leaf in store.log_entries(0, store.size())
            if b'"type":"alert.' in leaf]


def no_sleep(_: float) -> None:
    pass


# ----------------------------------------------------------------------- end to end
def test_certification_storage_and_tamper_reach_smtp_and_webhook_until_ack(
        tmp_path: Path, smtp: Smtp, hook: Hook) -> None:
    report = write_report(tmp_path / "report", (T0 + timedelta(days=5)).date().isoformat())
    # gurukul's quota is 1000 bytes: 900 bytes is 90 %, past the 85 % level
    store = small_quota_store(tmp_path / "store", inline_max=0,
                              **ops_config(smtp, hook, report))
    secrets = issue_tokens(store)
    try:
        app = create_app(store, run_checks=False, clock=lambda: T0)
        svc = app.state.service
        svc.ops.dispatcher._sleep = no_sleep
        _run(app, svc, store, secrets, smtp, hook, tmp_path)
    finally:
        store.close()


def _quota_store_bytes(store: Store) -> int:
    return store.config.products["gurukul"].quota_bytes


def _run(app: Any, svc: Any, store: Store, secrets: dict[str, str], smtp: Smtp, hook: Hook,
         tmp_path: Path) -> None:
    quota = _quota_store_bytes(store)
    body = b"x" * (quota * 9 // 10)
    store.put("gurukul", "lessons/big.bin", body, actor="test")
    store.put("ai-avatar", "media/a.json", b'{"frame": 1}', actor="test")
    store.checkpoint()
    with TestClient(app, raise_server_exceptions=False) as c:
        # 1. first pass: full verification passes; storage and certification fire
        outcomes = svc.ops.run_checks(T0)
        assert all(o.ok for o in outcomes if o.job != "certification"), outcomes
        svc.compute_views()
        sent = svc.dispatch_alerts(T0)
        names = {d.alertname for d in sent}
        assert names == {"DepositoryStorageUse", "DepositoryCertificationExpiring"}
        assert {d.channel for d in sent} == {"email", "webhook"}
        assert all(d.result == "delivered" and d.log_index is not None for d in sent)
        assert {"DepositoryStorageUse", "DepositoryCertificationExpiring"} <= set(
            hook.alertnames())
        subjects = smtp.subjects()
        assert any("DepositoryStorageUse" in s and "[Depository FIRING high]" in s
                   for s in subjects), subjects
        assert any("DepositoryCertificationExpiring" in s and "5 days" in s
                   for s in subjects), subjects
        ceo = [m for m in smtp.messages if "DepositoryStorageUse" in str(m["Subject"])]
        assert ceo[0]["To"] == "ceo@example.org" and "Escalated to: CEO" in ceo[0].get_content()
        payload = hook.bodies[0]
        assert payload["version"] == "4" and payload["status"] == "firing"
        a0 = payload["alerts"][0]
        assert set(a0) >= {"labels", "annotations", "startsAt", "endsAt", "fingerprint"}
        assert a0["fingerprint"] == fingerprint(a0["labels"])
        storage_fp = next(a["fingerprint"] for b in hook.bodies for a in b["alerts"]
                          if a["labels"]["alertname"] == "DepositoryStorageUse")
        recs = alert_records(store)
        assert len(recs) == len(sent) and all(r["type"] == "alert.delivery" for r in recs)
        # the verifier accepts the new record types
        store.checkpoint()
        res = store_result(store.path, [store.verifier_key])
        assert res.ok, res.findings
        # 2. nothing new within the repeat interval; re-sent after it
        assert svc.dispatch_alerts(T0 + timedelta(minutes=30)) == []
        again = svc.dispatch_alerts(T0 + timedelta(hours=1))
        assert {d.alertname for d in again} == names and all(d.attempt == 2 for d in again)
        # 3. ack the storage alert over HTTP: recorded; its re-sends stop, others go on
        r = c.post(f"/v1/alerts/{storage_fp}/ack", json={"reason": "quota raise ordered"},
                   headers=bearer(secrets["admin"]))
        assert r.status_code == 200, r.text
        assert r.json()["acknowledged"] is True
        r = c.post("/v1/alerts/0000000000000000/ack", json={"reason": "x"},
                   headers=bearer(secrets["admin"]))
        assert r.status_code == 404
        r = c.post(f"/v1/alerts/{storage_fp}/ack", json={"reason": "x"},
                   headers=bearer(secrets["auditor"]))
        assert r.status_code == 403
        acks = [x for x in alert_records(store) if x["type"] == "alert.ack"]
        assert len(acks) == 1 and acks[0]["body"]["fingerprint"] == storage_fp
        later = svc.dispatch_alerts(T0 + timedelta(hours=2))
        assert {d.alertname for d in later} == {"DepositoryCertificationExpiring"}
        # 4. tamper: flip a byte of the big blob on disk; the blob sample finds it
        art = store.get("gurukul", "lessons/big.bin")
        blob = next(p for p in (store.path / "objects").rglob(art.sha256))
        raw = bytearray(blob.read_bytes())
        raw[100] ^= 0x01
        blob.chmod(0o644)
        blob.write_bytes(bytes(raw))
        t = T0 + timedelta(hours=2, minutes=1)
        outs = {o.job: o for o in svc.ops.run_checks(t)}
        assert not outs["blob_sample"].ok and "bytes hash to" in outs["blob_sample"].problems[0]
        gov = store.governance_status()
        assert gov["locked"] and "scheduled blob_sample" in gov["reason"]
        svc.compute_views()
        n_mail = len(smtp.messages)
        tamper = svc.dispatch_alerts(t)
        tnames = {d.alertname for d in tamper}
        assert {"DepositoryVerificationFailed", "DepositoryGovernanceLocked"} <= tnames
        assert all(d.log_index is not None for d in tamper)  # recorded under the lock
        assert any("DepositoryVerificationFailed" in s for s in smtp.subjects()[n_mail:])
        assert "DepositoryVerificationFailed" in hook.alertnames()
        # 5. the views show progress, results and escalations
        r = c.get("/v1/monitoring/schedule", headers=bearer(secrets["auditor"]))
        sched = r.json()["schedule"]
        assert sched["violation"] and sched["locked_by_checks"] is True
        blob_job = next(j for j in sched["jobs"] if j["name"] == "blob_sample")
        assert blob_job["last_ok"] is False and blob_job["runs"] == 2
        r = c.get("/v1/monitoring/escalations", headers=bearer(secrets["auditor"]))
        esc = r.json()["escalations"]
        acked = [e for e in esc["open"] if e["fingerprint"] == storage_fp]
        assert acked[0]["acknowledged"] and acked[0]["acked_by"]
        assert len(esc["deliveries"]) == len(alert_records(store)) - 1  # minus the ack


# ----------------------------------------------------------------------- watch
def test_watch_once_detects_flipped_record_bytes_locks_and_alerts(
        tmp_path: Path, smtp: Smtp, hook: Hook) -> None:
    store = make_store(tmp_path / "store", **ops_config(smtp, hook))
    for i in range(5):
        store.put("gurukul", f"lessons/l{i}-ZQXW.txt", f"lesson {i}".encode(), actor="test")
    store.close()
    runner = CliRunner()
    args = ["watch", "--store", str(tmp_path / "store"), "--once", "--json",
            "--local-log", str(tmp_path / "watch.jsonl")]
    clean = runner.invoke(main, args)
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.output.splitlines()[-1])["schedule"]["violation"] is None
    # flip one byte of record "l3"'s name inside the log leaf, in the database file
    db = tmp_path / "store" / "depository.db"
    data = bytearray(db.read_bytes())
    needle = b'"name":"lessons/l3-ZQXW.txt"'
    at = data.find(needle)
    assert at > 0 and data.find(needle, at + 1) < 0
    data[at + len(b'"name":"lessons/l3-')] = ord("Y")
    db.write_bytes(bytes(data))
    r = runner.invoke(main, args)
    assert r.exit_code == 1, r.output
    out = json.loads(r.output.splitlines()[-1])
    verify = next(o for o in out["outcomes"] if o["job"] == "verify")
    assert not verify["ok"] and verify["problems"]
    assert out["records_to"] == "log"
    names = {d["alertname"] for d in out["deliveries"]}
    assert "DepositoryVerificationFailed" in names
    assert "DepositoryVerificationFailed" in hook.alertnames()
    assert any("DepositoryVerificationFailed" in s for s in smtp.subjects())
    with Store.open(tmp_path / "store", readonly=True) as ro:
        assert ro.governance_status()["locked"]
        types = [x["type"] for x in alert_records(ro)]
        assert "alert.delivery" in types


def test_watch_records_locally_when_the_store_is_served(tmp_path: Path, smtp: Smtp,
                                                       hook: Hook) -> None:
    store = make_store(tmp_path / "store", **ops_config(smtp, hook))
    try:  # this process holds the writer lock: watch cannot take it
        store.lock("drill", check="manual", actor="test")
        store.checkpoint()
        log = tmp_path / "watch.jsonl"
        r = CliRunner().invoke(main, ["watch", "--store", str(tmp_path / "store"), "--once",
                                      "--json", "--local-log", str(log)])
        out = json.loads(r.output.splitlines()[-1])
        assert out["records_to"] == "local"
        assert "DepositoryGovernanceLocked" in hook.alertnames()
        lines = [json.loads(x) for x in log.read_text().splitlines()]
        assert any(x["body"]["alertname"] == "DepositoryGovernanceLocked" for x in lines)
        assert not [x for x in alert_records(store)]
    finally:
        store.close()


def test_cli_ack_is_read_back_by_a_watch(tmp_path: Path, smtp: Smtp, hook: Hook) -> None:
    store = make_store(tmp_path / "store", **ops_config(smtp, hook))
    store.lock("drill", check="manual", actor="test")
    store.close()
    from depository.service.operations import Operations

    ro = Store.open(tmp_path / "store", readonly=True)
    try:
        ops = Operations(ro, record=lambda t, b: None, sleep=no_sleep)
        sent = ops.dispatch(T0)
        fp = sent[0].fingerprint
        assert len(ops.dispatch(T0 + timedelta(hours=1))) == len(sent)  # re-sent
        r = CliRunner().invoke(main, ["alert", "ack", "--store", str(tmp_path / "store"), fp,
                                      "--reason", "investigating"])
        assert r.exit_code == 0, r.output
        assert ops.dispatch(T0 + timedelta(hours=2)) == []  # the ack stopped re-sends
        assert ops.dispatcher.open[fp].acked_by
    finally:
        ro.close()


# ----------------------------------------------------------------------- rules
def _eval_rule(expr: str, series: dict[tuple[str, frozenset[tuple[str, str]]], float]
               ) -> list[frozenset[tuple[str, str]]]:
    """The label sets for which ``expr`` (a conjunction of ``metric{sel} OP number``, the
    only form the rules file uses) holds."""
    term = re.compile(r'\s*([a-z_]+)(?:\{([^}]*)\})?\s*(>=|<=|==|>|<)\s*([-0-9.]+)\s*\Z')
    ops = {">=": float.__ge__, "<=": float.__le__, "==": float.__eq__, ">": float.__gt__,
           "<": float.__lt__}
    result: set[frozenset[tuple[str, str]]] | None = None
    for part in expr.split(" and "):
        m = term.match(part)
        assert m, f"rule expression outside the checked form: {part!r}"
        name, sel, op, num = m.groups()
        want = re.findall(r'(\w+)(=~|=)"([^"]*)"', sel or "")

        def matches(labels: frozenset[tuple[str, str]],
                    want: list[tuple[str, str, str]] = want) -> bool:
            got = dict(labels)
            return all(got.get(k) == x if how == "=" else
                       re.fullmatch(x, got.get(k, "")) is not None for k, how, x in want)

        hits = {labels for (n, labels), v in series.items()
                if n == name and matches(labels) and ops[op](v, float(num))}
        result = hits if result is None else result & hits
    return sorted(result or set(), key=sorted)


def _parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$', line)
        assert m, line
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def test_rules_pass_promtool() -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    r = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 18 rules found" in r.stdout


def test_rules_evaluated_on_real_metrics_fire_what_the_service_fires(
        tmp_path: Path) -> None:
    report = write_report(tmp_path / "report", (T0 - timedelta(days=2)).date().isoformat())
    store = small_quota_store(tmp_path / "store",
                              monitoring={"certification_report": str(report)},
                              scale_limits={"artifact-count": {"target": 1}})
    secrets = issue_tokens(store)
    try:
        quota = store.config.products["gurukul"].quota_bytes
        store.put("gurukul", "big.bin", b"y" * (quota * 96 // 100), actor="test")
        store.lock("drill", check="manual", actor="test")
        app = create_app(store, run_checks=False, clock=lambda: T0)
        svc = app.state.service
        svc.ops.run_checks(T0)
        with TestClient(app, raise_server_exceptions=False) as c:
            text = c.get("/metrics", headers=bearer(secrets["admin"])).text
        svc.dispatch_alerts(T0)
        series = _parse_metrics(text)
        doc = yaml.safe_load(RULES.read_text())
        fired = set()
        rule_names = set()
        for rule in doc["groups"][0]["rules"]:
            rule_names.add(rule["alert"])
            for labels in _eval_rule(rule["expr"], series):
                got = dict(labels)
                fired.add((rule["alert"], rule["labels"]["severity"],
                           got.get("scope") or got.get("limit")))
        service = {(a.name, a.labels["severity"], a.labels.get("scope") or a.labels.get("limit"))
                   for a in svc.ops.firing}
        assert fired == service
        assert ("DepositoryStorageUse", "critical", "quota-bytes:gurukul") in fired
        assert ("DepositoryCertificationExpired", "critical", None) in fired
        assert ("DepositoryGovernanceLocked", "critical", None) in fired
        assert ("DepositoryScaleLimit", "critical", "artifact-count") in fired  # 1 of 1
        assert rule_names == set(ALERT_NAMES)
        for rule in doc["groups"][0]["rules"]:  # labels route like the service's
            from depository.service.alerts import ALERT_SCENARIO

            assert rule["labels"]["scenario"] == ALERT_SCENARIO[rule["alert"]]
    finally:
        store.close()


# ----------------------------------------------------------------------- units
def test_alerting_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"alerting\.escalation\.ceo-mood"):
        parse_alerting({"escalation": {"ceo-mood": {}}})
    with pytest.raises(ConfigError, match=r"alerting\.escalation\.product-urgency\.deadline"):
        parse_alerting({"escalation": {"product-urgency": {"deadline": "soon"}}})
    with pytest.raises(ConfigError, match="webhook"):
        parse_alerting({"escalation": {"product-urgency": {"webhook": "ftp://x"}}})
    s = parse_alerting({})
    assert s.routes["product-urgency"].role == "CEO"
    assert s.routes["product-urgency"].deadline == timedelta(hours=24)
    assert s.routes["product-urgency"].deadline_source == "seed"


def test_fingerprint_is_alertmanagers_fnv1a() -> None:
    assert fingerprint({}) == "cbf29ce484222325"  # FNV-1a 64 offset basis: empty set
    a = fingerprint({"alertname": "X", "severity": "high"})
    assert a == fingerprint({"severity": "high", "alertname": "X"})
    assert a != fingerprint({"alertname": "X", "severity": "critical"})


def test_certification_thresholds_30_7_expired() -> None:
    s = parse_alerting({})

    def sev(days: int) -> set[tuple[str, str]]:
        inp = AlertInputs(alert_levels=(70, 85, 95), certification_days_left=days,
                          certification_until="2027-01-01")
        return {(a.name, a.labels["severity"]) for a in compute_alerts(inp, s)}

    assert sev(31) == set()
    assert sev(30) == {("DepositoryCertificationExpiring", "warning")}
    assert sev(7) == {("DepositoryCertificationExpiring", "high")}
    assert sev(0) == {("DepositoryCertificationExpiring", "high")}
    assert sev(-1) == {("DepositoryCertificationExpired", "critical")}


def test_failed_webhook_is_retried_a_bounded_number_of_times_and_recorded(
        tmp_path: Path) -> None:
    from depository.service.alerts import AlertDispatcher

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/x"
    settings = parse_alerting({"retries": 3, "timeout_seconds": 1, "escalation": {
        "executor-misbehaves": {"webhook": [dead]}}})
    slept: list[float] = []
    records: list[tuple[str, dict[str, Any]]] = []
    d = AlertDispatcher(settings, record=lambda t, b: records.append((t, b)) or None,
                        sleep=slept.append)
    inp = AlertInputs(alert_levels=(70, 85, 95), locked="drill")
    out = d.process(compute_alerts(inp, settings), T0)
    assert [x.result for x in out] == ["failed"] and out[0].tries == 3
    assert slept == [0.5, 1.0]
    assert records[0][0] == "alert.delivery" and records[0][1]["result"] == "failed"
    assert parse_time("2026-12-04T12:00:00Z") == T0


def test_serve_runs_the_schedule_and_delivers_in_the_background(
        tmp_path: Path, smtp: Smtp, hook: Hook, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from depository.service import _context

    monkeypatch.setattr(_context, "MONITOR_EVERY", 0.05)
    store = make_store(tmp_path / "store", **ops_config(smtp, hook))
    try:
        store.lock("drill", check="manual", actor="test")
        app = create_app(store)
        with TestClient(app, raise_server_exceptions=False):
            deadline = time.monotonic() + 30  # generous: a loaded machine
            job = app.state.service.ops.checks.jobs["verify"]
            while "DepositoryGovernanceLocked" not in hook.alertnames() or job.runs == 0:
                assert time.monotonic() < deadline, (
                    f"the background loops did not run: {hook.alertnames()}, "
                    f"{job.to_json()}")
                time.sleep(0.05)
        assert job.last_ok is True, job.to_json()
        assert any(r["type"] == "alert.delivery" for r in alert_records(store))
    finally:
        store.close()


def test_incremental_verification_checks_new_records_and_catches_rewrites(
        tmp_path: Path) -> None:
    from depository.service.checks import ContinuousChecks, ScheduleSettings

    store = make_store(tmp_path / "store")
    store.put("gurukul", "first.txt", b"1", actor="test")
    store.close()
    settings = ScheduleSettings(record_sample=0, enabled=("verify",))
    locks: list[str] = []
    ro = Store.open(tmp_path / "store", readonly=True)
    checks = ContinuousChecks(ro, settings, lock=lambda r, c: locks.append(r) or True)
    [full] = checks.run_all(T0)
    assert full.ok and full.summary.startswith("full replay"), full
    size0 = checks.verified_size
    ro.close()
    with Store.open(tmp_path / "store") as w:
        for i in range(3):
            w.put("gurukul", f"new-{i}-QJXV.txt", b"n", actor="test")
    checks.store = Store.open(tmp_path / "store", readonly=True)
    try:
        [inc] = checks.run_due(T0 + timedelta(minutes=10))
        assert inc.ok and inc.summary.startswith("incremental: 3 new records"), inc
        assert checks.verified_size == size0 + 3
    finally:
        checks.store.close()
    with Store.open(tmp_path / "store") as w:
        w.put("gurukul", "later-KZWQ.txt", b"l", actor="test")
    db = tmp_path / "store" / "depository.db"
    data = bytearray(db.read_bytes())
    at = data.find(b'"name":"later-KZWQ.txt"')
    assert at > 0
    data[at + len(b'"name":"later-')] = ord("Y")
    db.write_bytes(bytes(data))
    checks.store = Store.open(tmp_path / "store", readonly=True)
    try:
        [bad] = checks.run_due(T0 + timedelta(minutes=20))
        assert not bad.ok and "history was rewritten" in bad.problems[0], bad
        assert locks and "scheduled verify" in locks[0]
        assert checks.violation is not None
    finally:
        checks.store.close()


def test_an_http_worker_records_an_ack_for_the_parent(tmp_path: Path, smtp: Smtp,
                                                     hook: Hook) -> None:
    from depository.service.operations import Operations

    store = make_store(tmp_path / "store", **ops_config(smtp, hook))
    secrets = issue_tokens(store)
    try:
        store.lock("drill", check="manual", actor="test")
        parent = Operations(store, sleep=no_sleep)
        fp = parent.dispatch(T0)[0].fingerprint
        worker = create_app(store, run_checks=False, alerts_elsewhere=True)
        with TestClient(worker, raise_server_exceptions=False) as c:
            r = c.post(f"/v1/alerts/{fp}/ack", json={"reason": "on it"},
                       headers=bearer(secrets["admin"]))
            assert r.status_code == 200, r.text
            assert c.post("/v1/alerts/not-a-fingerprint/ack", json={"reason": "x"},
                          headers=bearer(secrets["admin"])).status_code == 404
        later = parent.dispatch(T0 + timedelta(hours=5))
        assert fp not in {d.fingerprint for d in later}  # read back: no re-send
        assert parent.dispatcher.open[fp].ack_reason == "on it"
    finally:
        store.close()


def test_the_verifier_checks_alert_record_bodies(tmp_path: Path) -> None:
    """A well-formed forged alert.delivery is only an unsigned tail; one without a
    required field, or naming a product, is a record finding."""
    from test_verify_store import append_forged, attack

    store = make_store(tmp_path / "store")
    key = store.verifier_key
    store.close()
    good = {"alertname": "DepositoryGovernanceLocked", "fingerprint": "0123456789abcdef",
            "status": "firing", "scenario": "executor-misbehaves", "role": "governance owner",
            "channel": "webhook", "receiver": "http://127.0.0.1:1/x", "attempt": 1,
            "result": "delivered"}
    with attack(tmp_path / "store") as conn:
        ok = append_forged(conn, "alert.delivery", None, good, T0)
        missing = append_forged(conn, "alert.delivery", None,
                                {k: v for k, v in good.items() if k != "result"}, T0)
        scoped = append_forged(conn, "alert.ack", "gurukul",
                               {"alertname": "", "fingerprint": "0123456789abcdef",
                                "reason": "x"}, T0)
    res = store_result(tmp_path / "store", [key])
    by_index = {f.index: f for f in res.findings if f.check == "record"}
    assert ok not in by_index
    assert "body has no 'result'" in by_index[missing].message
    assert "store-wide" in by_index[scoped].message


def test_record_sampling_catches_an_old_record_altered_between_full_replays(
        tmp_path: Path) -> None:
    from depository.service.checks import ContinuousChecks, ScheduleSettings

    store = make_store(tmp_path / "store")
    for i in range(4):
        store.put("gurukul", f"old-{i}-PVKM.txt", b"o", actor="test")
    store.close()
    settings = ScheduleSettings(record_sample=1000, enabled=("verify",))
    ro = Store.open(tmp_path / "store", readonly=True)
    checks = ContinuousChecks(ro, settings, lock=lambda r, c: True)
    [full] = checks.run_all(T0)
    ro.close()
    assert full.ok and "sampled records match" in full.summary, full
    db = tmp_path / "store" / "depository.db"
    data = bytearray(db.read_bytes())
    at = data.find(b'"name":"old-2-PVKM.txt"')
    data[at + len(b'"name":"old-')] = ord("7")
    db.write_bytes(bytes(data))
    checks.store = Store.open(tmp_path / "store", readonly=True)
    try:
        [inc] = checks.run_due(T0 + timedelta(minutes=10))  # incremental, not a replay
        assert not inc.ok and "its bytes were altered" in inc.problems[0], inc
    finally:
        checks.store.close()


def test_a_restart_does_not_re_page_an_acked_incident_but_a_new_one_pages(
        tmp_path: Path, smtp: Smtp, hook: Hook) -> None:
    from depository.service.operations import Operations

    store = make_store(tmp_path / "store", **ops_config(smtp, hook))
    try:
        store.lock("drill", check="manual", actor="test")
        first = Operations(store, sleep=no_sleep)
        fp = next(d.fingerprint for d in first.dispatch(T0)
                  if d.alertname == "DepositoryGovernanceLocked")
        first.ack(fp, actor="admin", reason="known drill", now=T0)
        restarted = Operations(store, sleep=no_sleep)  # reads the ack back from the log
        sent = restarted.dispatch(T0 + timedelta(hours=3))
        assert fp not in {d.fingerprint for d in sent}
        assert restarted.dispatcher.open[fp].acked_by == "admin"
        store.unlock(reason="drill over", actor="test")
        resolved = restarted.dispatch(T0 + timedelta(hours=4))
        assert [d.status for d in resolved if d.fingerprint == fp] == ["resolved", "resolved"]
        store.lock("again", check="manual", actor="test")
        again = Operations(store, sleep=no_sleep)  # the ack was spent by the resolution
        assert fp in {d.fingerprint for d in again.dispatch(T0 + timedelta(hours=5))}
    finally:
        store.close()


def test_cli_help_examples_rules_and_bad_config(tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (["watch"], ["alert"], ["alert", "ack"], ["alert", "rules"]):
        assert "Example:" in runner.invoke(main, [*args, "--help"]).output, args
    assert runner.invoke(main, ["alert", "rules"]).output == RULES.read_text()
    store = make_store(tmp_path / "store",
                       alerting={"escalation": {"product-urgency": {"deadline": "soon"}}})
    store.close()
    r = runner.invoke(main, ["watch", "--store", str(tmp_path / "store"), "--once"])
    assert r.exit_code == 2
    assert "alerting.escalation.product-urgency.deadline" in r.output


def test_certification_expiry_reads_the_newest_certification_result_record(
        tmp_path: Path) -> None:
    """`certify run` records its verdict and validity as certification.result; the
    newest one is what the expiry alert reads (written here with the verifier tests'
    forging helper, so this test does not depend on `certify run`)."""
    from test_verify_store import append_forged, attack

    from depository.service.operations import Operations

    report = write_report(tmp_path / "report", "2030-01-01")  # would be far from expiry
    store = make_store(tmp_path / "store", monitoring={"certification_report": str(report)})
    store.close()
    until = (T0 + timedelta(days=20)).date().isoformat()
    body = {"report_id": "cert-1", "report_sha256": "0" * 64, "run_record_index": 1,
            "verdict": "pass", "reasons": 0, "valid_from": "2026-06-24",
            "valid_until": until, "next_review": until, "recertification_due": until}
    with attack(tmp_path / "store") as conn:
        append_forged(conn, "certification.result", None, body, T0)
    with Store.open(tmp_path / "store", readonly=True) as ro:
        ops = Operations(ro, record=lambda t, b: None)
        [out] = [o for o in ops.run_checks(T0, all_jobs=True) if o.job == "certification"]
        assert out.ok and "20 days" in out.summary, out
        assert ops.checks.certification.source.startswith("certification.result record")
        ops.dispatch(T0)
        assert {(a.name, a.labels["severity"]) for a in ops.firing} >= {
            ("DepositoryCertificationExpiring", "warning")}
    with attack(tmp_path / "store") as conn:  # a newer run that failed
        append_forged(conn, "certification.result", None, {**body, "verdict": "fail"},
                      T0 + timedelta(days=1))
    with Store.open(tmp_path / "store", readonly=True) as ro:
        ops = Operations(ro, record=lambda t, b: None)
        [out] = [o for o in ops.run_checks(T0, all_jobs=True) if o.job == "certification"]
        assert not out.ok and "NOT CERTIFIED" in out.summary
        assert ops.checks.certification.days_left is None


def test_a_restart_keeps_the_re_send_interval_of_an_unacked_incident(
        tmp_path: Path, smtp: Smtp, hook: Hook) -> None:
    from depository.service.operations import Operations

    store = make_store(tmp_path / "store", **ops_config(smtp, hook))
    try:
        store.lock("drill", check="manual", actor="test")
        fp = next(d.fingerprint for d in Operations(store, sleep=no_sleep).dispatch(T0)
                  if d.alertname == "DepositoryGovernanceLocked")
        restarted = Operations(store, sleep=no_sleep)
        soon = T0 + timedelta(minutes=10)
        assert fp not in {d.fingerprint for d in restarted.dispatch(soon)}
        due = restarted.dispatch(soon + timedelta(hours=1))
        assert {d.attempt for d in due if d.fingerprint == fp} == {2}
    finally:
        store.close()
