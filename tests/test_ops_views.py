"""The seed's remaining monitoring views, computed for a known store: record-query latency,
what scales, what scales safely, what does not scale, assumptions never to make, the
schedule, escalations, and POST /v1/governance/scale/validate."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_service_support import bearer, issue_tokens, make_store

from depository.service import create_app
from depository.service._monitoring import histogram_quantile
from depository.store import Store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def load_results(path: Path) -> Path:
    """A load-test results.json (the fields the views read, as `loadtest run` writes
    them): write-throughput measured at the target and passed; artifact-size passed on
    the quick profile (scaled down); query-response failed."""
    doc = {"schema_version": 1, "profile": "certify", "pass": False,
           "ended": "2026-12-01T12:00:00Z", "limits": [
               {"id": "write-throughput", "measured": 1210.0, "pass": True,
                "figure": "measured", "profile": "certify", "profile_target": 1000,
                "status": "measured", "latency_ms": {"p99": 80.0}},
               {"id": "artifact-size", "measured": 50_000_000, "pass": True,
                "figure": "scaled-down", "profile": "quick", "profile_target": 50_000_000,
                "status": "measured", "latency_ms": {"p99": 900.0}},
               {"id": "query-response", "measured": 6.5, "pass": False,
                "figure": "measured", "profile": "certify", "profile_target": 5.0,
                "status": "measured", "reason": "p99 6.5 s over 5 s",
                "latency_ms": {"p99": 6500.0}}]}
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps(doc))
    return path


class Env:
    def __init__(self, store: Store, c: TestClient, s: dict[str, str]) -> None:
        self.store, self.c, self.s = store, c, s

    def view(self, name: str) -> Any:
        r = self.c.get(f"/v1/monitoring/{name}", headers=bearer(self.s["auditor"]))
        assert r.status_code == 200, r.text
        return r.json()[name]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    results = load_results(tmp_path / "load")
    store = make_store(tmp_path / "store", monitoring={"loadtest_results": str(results)})
    secrets = issue_tokens(store)
    store.put("gurukul", "a.txt", b"a" * 1000, actor="test")
    store.put("gurukul", "b.txt", b"b" * 3000, actor="test")
    store.put("enforcement", "d.json", b"{}", actor="test")
    app = create_app(store, run_checks=False, clock=lambda: T0)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield Env(store, c, secrets)
    store.close()


def test_query_latency_view_counts_the_requests_made(env: Env) -> None:
    h = bearer(env.s["reader:gurukul"])
    for _ in range(7):
        assert env.c.get("/v1/products/gurukul/artifacts", headers=h).status_code == 200
    v = env.view("query-latency")
    route = next(r for r in v["routes"] if r["route"] == "GET /v1/products/{product}/artifacts")
    assert route["count"] == 7
    assert 0 < route["p50"] <= route["p99"] <= 5.0 and route["over_limit"] is False
    assert v["limit_seconds"] == 5.0 and v["limit_source"].startswith("document")
    assert v["window_60s"]["count"] >= 7


def test_what_scales_and_what_scales_safely_follow_the_load_results(env: Env) -> None:
    ws = {x["id"]: x for x in env.view("what-scales")["limits"]}
    assert ws["write-throughput"]["verdict"] == "scales"
    assert ws["write-throughput"]["load_test"]["measured"] == 1210.0
    assert ws["artifact-size"]["verdict"] == "indicative"  # scaled-down, not at the target
    assert ws["query-response"]["verdict"] == "fails"
    assert ws["artifact-count"]["verdict"] == "unmeasured"
    assert ws["artifact-count"]["current"] == 3  # the three artifacts put
    assert ws["artifact-size"]["current"] == 3000  # the largest one
    assert all(x["target_source"].startswith("document") for x in ws.values())
    safe = env.view("scales-safely")
    assert [x["id"] for x in safe["safe"]] == ["write-throughput"]
    assert {x["id"] for x in safe["not_safe"]} == set(ws) - {"write-throughput"}


def test_does_not_scale_and_never_assume_are_computed(env: Env) -> None:
    dns = {x["id"]: x for x in env.view("does-not-scale")["items"]}
    assert len(dns) == 5
    assert dns["audit-trail-growth"]["current"] == env.store.size()
    assert dns["storage-growth"]["current"] == 4002
    assert dns["storage-growth"]["target"] == 1000 * 1000**3
    assert dns["query-latency-vs-count"]["artifacts"] == 3
    # no full replay yet: nothing to project; after one, the time is measured
    assert dns["full-verification-time"]["current"] is None
    app_svc = env.c.app.state.service  # type: ignore[attr-defined]
    env.store.checkpoint()  # sign everything, so the replay covers it all
    signed = env.store.latest_checkpoint()[0]
    app_svc.ops.run_checks(T0)
    dns = {x["id"]: x for x in env.view("does-not-scale")["items"]}
    assert dns["full-verification-time"]["current"] > 0
    na = {x["id"]: x for x in env.view("never-assume")["items"]}
    assert len(na) == 5
    assert na["load-test-holds-in-production"]["evidence"]["load_results_age_days"] == 3.0
    assert na["load-test-holds-in-production"]["evidence"]["load_test_query_p99_ms"] == 6500.0
    assert na["certification-stays-valid"]["status"] == "unknown"
    # every escalation route lacks a contact in this store: alerts would reach nobody
    assert na["alerts-reach-someone"]["status"] == "watch"
    assert len(na["alerts-reach-someone"]["evidence"]["routes_without_contact"]) == 7
    sched = env.view("schedule")
    verify = next(j for j in sched["jobs"] if j["name"] == "verify")
    assert verify["runs"] == 1 and verify["last_ok"] is True
    prog = verify["details"]["progress"]
    assert prog["records_done"] == prog["records_total"] == signed
    assert sched["verified_size"] == signed


def test_scale_validate_is_a_gate_that_never_relaxes(env: Env) -> None:
    h = bearer(env.s["admin"])
    ok = env.c.post("/v1/governance/scale/validate", headers=h,
                    json={"operation": {"artifact_size": 400_000_000, "artifacts": 10}})
    assert ok.status_code == 200, ok.text
    assert ok.json()["allowed"] is True
    count = next(c for c in ok.json()["checks"] if c["limit"] == "artifact-count")
    assert count["current"] == 3 and count["after"] == 13
    big = env.c.post("/v1/governance/scale/validate", headers=h,
                     json={"operation": {"artifact_size": 600_000_000}})
    assert big.json()["allowed"] is False
    assert "exceeds the limit" in big.json()["checks"][0]["detail"]
    near = env.c.post("/v1/governance/scale/validate", headers=h,
                      json={"operation": {"artifacts": 100_000 - 3}})
    assert near.json()["allowed"] is True
    over = env.c.post("/v1/governance/scale/validate", headers=h,
                      json={"operation": {"artifacts": 100_000 - 2}})
    assert over.json()["allowed"] is False
    bad = env.c.post("/v1/governance/scale/validate", headers=h,
                     json={"operation": {"target": 1}})
    assert bad.status_code == 400 and "unknown figure" in bad.text
    who = env.c.post("/v1/governance/scale/validate",
                     headers=bearer(env.s["writer:gurukul"]),
                     json={"operation": {"artifacts": 1}})
    assert who.status_code == 403


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    bounds = (1.0, 2.0, 4.0)
    assert histogram_quantile(0.5, bounds, [0, 10, 0, 0]) == 1.5
    assert histogram_quantile(0.99, bounds, [0, 0, 0, 5]) == 4.0  # in +Inf: top bound
    assert histogram_quantile(0.5, bounds, [0, 0, 0, 0]) is None


def test_recorded_query_latencies_are_shown_apart(env: Env) -> None:
    h = bearer(env.s["reader:gurukul"])
    for secs in (0.2, 0.4, 4.0):
        r = env.c.post("/v1/monitoring/query-latency", headers=h, json={"seconds": secs})
        assert r.status_code == 200, r.text
    bad = env.c.post("/v1/monitoring/query-latency", headers=h, json={"seconds": -1})
    assert bad.status_code == 400
    assert env.c.post("/v1/monitoring/query-latency", json={"seconds": 1}).status_code == 401
    v = env.view("query-latency")
    assert v["reported"]["count"] == 3 and v["reported"]["max"] == 4.0
    assert v["reported"]["source"].startswith("reported by clients")
    # the service's own window does not include them
    assert all(r["route"] != "POST /v1/monitoring/query-latency" for r in v["routes"])
