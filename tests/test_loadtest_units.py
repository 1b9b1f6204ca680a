"""Load suites: the pure parts (shapes, checks, analysis, profiles, report, schema) and the
runner's refusals. None of these import locust (a test checks that too)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from depository.loadtests import LIMIT_IDS, analysis, common, report, shapes
from depository.loadtests.limits import PROFILE_PARAMS, SPECS, params_for, targets_from
from depository.store import artifact_id
from depository.store.config import DEFAULT_SCALE_LIMITS

# ------------------------------------------------------------------------ shapes


def test_stage_table_is_a_pure_function_of_run_time() -> None:
    table = shapes.ramp_hold(100, 10, 60)
    assert shapes.tick_at(table, 0) == (100, 10.0)
    assert shapes.tick_at(table, 9.99) == (100, 10.0)
    assert shapes.tick_at(table, 10) == (100, 10.0)
    assert shapes.tick_at(table, 69.9) == (100, 10.0)
    assert shapes.tick_at(table, 70) is None
    # same input, same output; no hidden state
    assert [shapes.tick_at(table, t) for t in (5, 50, 80)] == [
        shapes.tick_at(table, t) for t in (5, 50, 80)]
    with pytest.raises(ValueError):
        shapes.tick_at(table, -1)


def test_stage_table_mixin_reads_locust_run_time() -> None:
    class FakeShape(shapes.StageTable):
        stages = shapes.steps([10, 20], 5, 5)
        now = 0.0

        def get_run_time(self) -> float:
            return self.now

    s = FakeShape()
    assert s.tick() == (2, 2.0)
    s.now = 7
    assert s.tick() == (4, 4.0)
    s.now = 10
    assert s.tick() is None
    with pytest.raises(TypeError):
        shapes.StageTable().tick()


def test_steps_offer_increasing_load() -> None:
    table = shapes.steps([100, 200, 1000], 20, 5)
    assert [s.users for s in table] == [20, 40, 200]
    assert [s.offered_rate for s in table] == [100, 200, 1000]
    assert [s.until for s in table] == [20, 40, 60]
    assert shapes.stage_index(table, 25) == 1
    assert shapes.stage_index(table, 60) is None
    assert shapes.duration(table) == 60
    with pytest.raises(ValueError):
        shapes.steps([200, 100], 20, 5)
    with pytest.raises(ValueError):
        shapes.steps([], 20, 5)


def test_stage_table_round_trips_and_rejects_bad_tables() -> None:
    table = [*shapes.steps([10, 20], 3, 2), shapes.Stage(9, 1, 1.0, label="tail")]
    assert shapes.load(shapes.dump(table)) == table
    with pytest.raises(ValueError):
        shapes.load([{"until": 5, "users": 1, "spawn_rate": 1},
                     {"until": 5, "users": 2, "spawn_rate": 1}])
    with pytest.raises(ValueError):
        shapes.constant(0, 10)


# ------------------------------------------------------------------ target rule


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://127.1.2.3",
                                 "http://localhost:9000/", "http://[::1]:8080"])
def test_loopback_targets_are_allowed(url: str) -> None:
    common.check_target(url)


@pytest.mark.parametrize("url", ["http://10.0.0.5:8080", "http://example.org",
                                 "https://192.168.1.1", "ftp://127.0.0.1", "127.0.0.1:80"])
def test_other_targets_are_refused(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(common.ALLOW_ENV, raising=False)
    with pytest.raises(common.TargetRefused):
        common.check_target(url)


def test_explicitly_allowed_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(common.ALLOW_ENV, raising=False)
    assert common.check_target("http://bench.internal:80", ["bench.internal"])
    monkeypatch.setenv(common.ALLOW_ENV, "other.internal, bench2.internal")
    assert common.check_target("http://bench2.internal:80")
    with pytest.raises(common.TargetRefused):
        common.check_target("http://third.internal")


# ------------------------------------------------------------- payloads, receipts


def test_pattern_stream_hashes_what_it_sends() -> None:
    s = common.PatternStream(3 * 1024 * 1024 + 17, "seed", block=1 << 20)
    assert len(s) == 3 * 1024 * 1024 + 17
    data = s.read_all()
    assert len(data) == len(s)
    assert s.hexdigest() == hashlib.sha256(data).hexdigest()
    blocks = [data[i:i + (1 << 20)] for i in range(0, 3 << 20, 1 << 20)]
    assert len(set(blocks)) == 3  # no two blocks alike
    assert common.PatternStream(10, "seed").read_all() != common.PatternStream(
        10, "other").read_all()
    unread = common.PatternStream(10, "x")
    with pytest.raises(ValueError):
        unread.hexdigest()


def test_small_bodies_are_unique_and_sized() -> None:
    bodies = {common.small_body("run", u, s, 100) for u in range(3) for s in range(50)}
    assert len(bodies) == 150
    assert all(len(b) == 100 for b in bodies)
    assert len(common.small_body("run", 1, 1, 1)) == 1


def _receipt(**over: object) -> dict[str, object]:
    r: dict[str, object] = {"artifact_id": artifact_id("gurukul", "a/b"), "sha256": "ab" * 32,
                            "log_index": 7, "leaf_hash": "cd" * 32, "size": 5}
    r.update(over)
    return r


def test_receipt_checks() -> None:
    ok = dict(product="gurukul", name="a/b", sha256="ab" * 32, size=5)
    assert common.check_receipt(_receipt(), **ok) is None  # type: ignore[arg-type]
    for bad in (_receipt(artifact_id="art_x"), _receipt(sha256="00" * 32),
                _receipt(log_index=-1), _receipt(log_index=True), _receipt(leaf_hash="zz"),
                _receipt(size=6)):
        assert common.check_receipt(bad, **ok) is not None  # type: ignore[arg-type]
    assert common.check_receipt([], **ok) is not None  # type: ignore[arg-type]


def test_proof_and_list_parsing() -> None:
    proof = b"c2sp.org/tlog-proof@v1\nindex 5\nAAAA\nBBBB\nCCCC\n\nsome checkpoint\n"
    assert common.count_proof_hashes(proof) == 3
    assert common.count_proof_hashes(
        b"c2sp.org/tlog-proof@v1\nextra eA==\nindex 0\n\ncp\n") == 0
    with pytest.raises(ValueError):
        common.count_proof_hashes(b"not a proof")
    as_json = json.dumps({"tlog_proof": proof.decode(), "proof": []}).encode()
    assert common.proof_bytes(as_json, {"Content-Type": "application/json"}) == proof
    assert common.proof_bytes(proof, {"content-type": "text/plain"}) == proof
    with pytest.raises(ValueError):
        common.proof_bytes(b'{"tlog_proof": null}', {"content-type": "application/json"})
    assert common.list_items({"items": [{"name": "a"}], "next_cursor": None}) == [{"name": "a"}]
    assert common.list_items([{"name": "b"}]) == [{"name": "b"}]
    with pytest.raises(ValueError):
        common.list_items({"items": [1, 2]})


# --------------------------------------------------------------------- analysis


def test_histogram_percentiles_and_locust_summary() -> None:
    entries = [
        {"name": "PUT artifact", "method": "PUT", "num_requests": 100, "num_failures": 2,
         "max_response_time": 250.0, "response_times": {"10": 50, "20": 45, "250": 5},
         "start_time": 100.0, "last_request_timestamp": 110.0},
        {"name": "GET x", "method": "GET", "num_requests": 10, "num_failures": 0,
         "max_response_time": 30.0, "response_times": {"30": 10},
         "start_time": 101.0, "last_request_timestamp": 105.0},
    ]
    s = analysis.locust_summary(entries)
    assert s["requests"] == 110 and s["failures"] == 2
    assert s["p50_ms"] == 20 and s["p99_ms"] == 250 and s["max_ms"] == 250
    assert s["throughput_rps"] == pytest.approx(11.0)
    assert s["endpoints"]["PUT PUT artifact"]["p95_ms"] == 20
    assert analysis.hist_percentile({}, 50) is None
    assert analysis.locust_summary([])["p99_ms"] is None


def test_stage_stats_split_rows_by_stage() -> None:
    table = shapes.steps([10, 20], 10, 5)
    rows = [analysis.Row(t / 10, "w", 5.0, 201, True) for t in range(0, 100)]
    rows += [analysis.Row(10 + t / 20, "w", 50.0, 201, True) for t in range(0, 200)]
    rows.append(analysis.Row(15.0, "w", 900.0, 500, False))
    st = analysis.stage_stats(rows, table)
    assert st[0]["errors"] == 0 and st[1]["errors"] == 1
    assert st[0]["achieved_rate"] == pytest.approx(10, rel=0.05)
    assert st[1]["achieved_rate"] == pytest.approx(20, rel=0.05)
    assert st[0]["offered_rate"] == 10 and st[1]["offered_rate"] == 20
    assert st[1]["p50_ms"] == 50.0


def test_cpu_share_is_cpu_seconds_per_second_within_the_window() -> None:
    samples = [(float(t), 0.25 * t) for t in range(0, 11)]  # a quarter of a core
    samples += [(float(t), 2.5 + 0.95 * (t - 10)) for t in range(11, 21)]  # then 95 %
    assert analysis.cpu_share(samples, 0, 10) == pytest.approx(0.25)
    assert analysis.cpu_share(samples, 11, 20) == pytest.approx(0.95)
    assert analysis.cpu_share(samples, 11, 20) >= analysis.LOADGEN_BOUND
    assert analysis.cpu_share(samples, 4.5, 5.5) is None  # one sample: no rate
    assert analysis.cpu_share([], 0, 10) is None


def test_stage_stats_settle_leaves_the_start_of_each_step_out() -> None:
    table = shapes.steps([10, 20], 20, 5)
    # the first 4 s of the second step are slow (the first step's queue draining)
    rows = [analysis.Row(20 + t / 20, "w", 900.0 if t < 80 else 5.0, 201, True)
            for t in range(0, 400)]
    slow = analysis.stage_stats(rows, table, settle_s=1.0)[1]
    settled = analysis.stage_stats(rows, table, settle_s=4.0)[1]
    assert slow["p99_ms"] == 900.0
    assert settled["p99_ms"] == 5.0 and settled["requests"] == 400


def test_linear_fit() -> None:
    fit = analysis.linear_fit([1, 2, 3, 4], [3, 5, 7, 9])
    assert fit is not None
    assert fit["a"] == pytest.approx(1) and fit["b"] == pytest.approx(2)
    assert fit["r2"] == pytest.approx(1)
    assert analysis.linear_fit([1, 1], [2, 3]) is None


def test_rows_and_acks_round_trip(tmp_path: Path) -> None:
    (tmp_path / "requests.csv").write_text("t,name,latency_ms,status,ok\n1.5,PUT a,3.2,201,1\n"
                                           "2.0,PUT a,9.0,0,0\n")
    rows = analysis.read_rows(tmp_path / "requests.csv")
    assert rows == [analysis.Row(1.5, "PUT a", 3.2, 201, True),
                    analysis.Row(2.0, "PUT a", 9.0, 0, False)]
    assert analysis.latency(rows)["errors"] == 1
    assert analysis.read_rows(tmp_path / "missing.csv") == []
    assert analysis.read_acks(tmp_path / "missing.jsonl") == []


# -------------------------------------------------------------------- profiles


def test_every_limit_has_a_spec_a_locustfile_and_profiles() -> None:
    assert tuple(SPECS) == LIMIT_IDS == tuple(DEFAULT_SCALE_LIMITS)
    here = Path(__file__).resolve().parents[1] / "depository" / "loadtests"
    for lid, spec in SPECS.items():
        assert (here / f"{spec.locustfile}.py").is_file(), lid
        for profile in ("quick", "certify"):
            assert lid in PROFILE_PARAMS[profile]


def test_certify_uses_the_configured_targets_and_quick_scales_them_down() -> None:
    targets = targets_from({"artifact-size": {"target": 123}, "concurrent-writers":
                            {"target": 7}, "write-throughput": {"target": 50, "p99_ms": 250}})
    cert = {lid: params_for(lid, "certify", targets) for lid in LIMIT_IDS}
    assert cert["artifact-size"]["size"] == 123
    assert cert["concurrent-writers"]["writers"] == 7
    assert cert["artifact-count"]["count"] == 100_000
    assert cert["write-throughput"]["p99_ms"] == 250
    assert cert["write-throughput"]["p99_ms_source"] == "config"
    assert cert["write-throughput"]["pass_at"] == 50
    quick = {lid: params_for(lid, "quick", targets_from(None)) for lid in LIMIT_IDS}
    assert quick["artifact-size"]["size"] < DEFAULT_SCALE_LIMITS["artifact-size"]["target"]
    # The default configuration states the latency bound (1000 ms) explicitly...
    assert quick["write-throughput"]["p99_ms_source"] == "config"
    assert quick["write-throughput"]["p99_ms"] == 1000
    # ...and a configuration without one falls back to the built-in bound, labelled so.
    bare = targets_from({"write-throughput": {"target": 50}})
    bare["write-throughput"].pop("p99_ms", None)
    assert params_for("write-throughput", "quick", bare)["p99_ms_source"] == "default"
    with pytest.raises(ValueError):
        params_for("artifact-size", "huge", targets)


# ------------------------------------------------------- runner refusals, schema


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_refused_target_writes_a_not_measured_results_file(tmp_path: Path) -> None:
    from depository.cli._loadtest import loadtest

    tok = tmp_path / "tok"
    tok.write_text("dep_tok-1_secret\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(loadtest, ["run", "--target", "http://203.0.113.9:8080",
                                        "--token-file", str(tok), "--out", str(out)])
    assert res.exit_code == 2
    assert "loopback" in res.output
    doc = report.load(out)
    assert report.validate(doc) == []
    assert doc["pass"] is False and doc["complete"] is False
    assert [n["id"] for n in doc["not_measured"]] == list(LIMIT_IDS)
    assert all("loopback" in (lim["reason"] or "") for lim in doc["limits"])
    assert all(lim["measured"] is None and not lim["pass"] for lim in doc["limits"])


def test_unreachable_target_and_missing_token_file(tmp_path: Path) -> None:
    from depository.loadtests.runner import RunOptions, run

    tok = tmp_path / "tok"
    tok.write_text("dep_tok-1_secret\n")
    url = f"http://127.0.0.1:{_free_port()}"
    doc = run(RunOptions(limits=["concurrent-writers", "audit-trail"], target=url,
                         token_file=tok, out=tmp_path / "a"))
    assert report.validate(doc) == []
    assert not doc["pass"] and not doc["complete"]
    assert "unreachable" in doc["error"]
    assert all("unreachable" in n["reason"] for n in doc["not_measured"])
    doc = run(RunOptions(limits=["artifact-size"], target=url,
                         token_file=tmp_path / "nope", out=tmp_path / "b"))
    assert "cannot read the token file" in doc["limits"][0]["reason"]
    assert report.validate(doc) == []


def test_cli_usage_errors_and_help() -> None:
    from depository.cli._loadtest import loadtest

    r = CliRunner()
    assert "Examples:" in r.invoke(loadtest, ["--help"]).output
    assert "Examples:" in r.invoke(loadtest, ["run", "--help"]).output
    assert "Examples:" in r.invoke(loadtest, ["report", "--help"]).output
    res = r.invoke(loadtest, ["run"])
    assert res.exit_code == 2 and "--spawn or --target" in res.output
    res = r.invoke(loadtest, ["run", "--spawn", "--target", "http://127.0.0.1:1"])
    assert res.exit_code == 2
    res = r.invoke(loadtest, ["run", "--target", "http://127.0.0.1:1"])
    assert res.exit_code == 2 and "--token-file" in res.output
    res = r.invoke(loadtest, ["run", "no-such-limit", "--spawn"])
    assert res.exit_code == 2


def test_report_table_and_schema_violations(tmp_path: Path) -> None:
    from depository.cli._loadtest import loadtest
    from depository.loadtests.runner import RunOptions, run

    doc = run(RunOptions(limits=["query-response"], target="http://10.1.1.1",
                         token_file=tmp_path / "t", out=tmp_path))
    text = report.table(doc)
    assert "query-response" in text and "NOT MEASURED" in text and "INCOMPLETE" in text
    res = CliRunner().invoke(loadtest, ["report", str(tmp_path)])
    assert res.exit_code == 1 and "query-response" in res.output
    bad = dict(doc, limits=[dict(doc["limits"][0], **{"pass": True})])
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert report.validate(bad)
    res = CliRunner().invoke(loadtest, ["report", str(tmp_path / "bad.json")])
    assert res.exit_code == 2 and "schema" in res.output
    res = CliRunner().invoke(loadtest, ["report", str(tmp_path / "missing")])
    assert res.exit_code == 2


def test_the_runner_never_imports_locust() -> None:
    code = ("import sys; import depository.loadtests.runner, depository.loadtests.report, "
            "depository.loadtests.charts, depository.cli._loadtest; "
            "bad = [m for m in ('locust', 'gevent', 'geventhttpclient') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "locust" not in sys.modules


# ------------------------------------------------------------- extrapolations (issue 14)
def _fit(points: list[tuple[float, float]], bound: float = 1000.0) -> dict[str, object]:
    return analysis.extrapolate(points, model="p99 = a + b log10 n", x_at=1e8,
                                transform="log10", bound=bound, bound_label="bound",
                                x_label="artifacts", y_label="p99 (ms)")


def test_an_extrapolation_states_model_points_and_uncertainty() -> None:
    x = _fit([(300, 20.0), (1000, 22.0), (3000, 23.5), (10_000, 26.0)])
    assert x["status"] == "supported", x["reason"]
    assert x["model"] and len(x["points"]) == 4  # type: ignore[arg-type]
    unc = x["uncertainty"]
    assert isinstance(unc, dict) and unc["low"] < x["predicted"] < unc["high"]
    assert unc["judged"] >= unc["high"] and unc["confidence"] == 0.95
    # The same fit against a bound inside its interval does not support the claim.
    assert _fit([(300, 20.0), (1000, 22.0), (3000, 23.5), (10_000, 26.0)],
                bound=float(unc["high"]) - 1)["status"] == "not-supported"


def test_an_unusable_fit_is_insufficient_data_never_a_pass() -> None:
    # The demo's case: two points, falling latency -> a negative p99 "under the bound".
    two = _fit([(300, 20.0), (3000, 18.0)])
    assert two["status"] == "insufficient-data" and "insufficient data" in str(two["reason"])
    # A fit predicting no usable (non-positive) value says nothing either.
    broken = _fit([(300, 0.0), (1000, -1.0), (3000, 0.0)])
    assert broken["status"] == "insufficient-data", broken
    # A falling cost is not extrapolated downwards (to a negative latency): the slope is
    # constrained to 0, said so, and the largest observation still bounds the judgement.
    falling = _fit([(300, 40.0), (1000, 25.0), (3000, 11.0)])
    fit = falling["fit"]
    assert isinstance(fit, dict) and fit["b"] == 0 and fit["unconstrained_b"] < 0
    assert "constrained" in fit and float(falling["predicted"]) > 0  # type: ignore[arg-type]
    assert falling["uncertainty"]["judged"] >= 40.0  # type: ignore[index]
    # Every profile measures at least three levels, so a fit is possible at all.
    for prof in PROFILE_PARAMS.values():
        assert len(prof["total-storage"]["levels"]) >= analysis.MIN_EXTRAPOLATION_POINTS
        assert len(prof["audit-trail"]["sizes"]) >= analysis.MIN_EXTRAPOLATION_POINTS


def test_total_storage_never_reports_the_target_as_measured(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The total-storage suite on a faked run: two growth levels with falling latency (what
    produced 'measured 1,000,000,000,000 bytes' and a −15.1 ms p99 that passed)."""
    import contextlib
    from types import SimpleNamespace

    from depository.loadtests import runner

    store = tmp_path / "store"
    store.mkdir()
    p99s = iter([20.0, 18.0])
    stored = iter([(90_000, 3_000_000), (900_000, 30_000_000)])

    def run_locust(lid: str, tag: str, tgt: object, **kw: object) -> object:
        acks: list[dict[str, object]] = []
        rows: list[analysis.Row] = []
        extra: dict[str, object] = {"counters": {}}
        if tag == "mixed":
            acks = [{"status": 201, "product": "gurukul", "size": 10_000}] * 10
            rows = [analysis.Row(1.0, "PUT mixed", 5.0, 201, True)] * 10
        elif tag == "quota":
            acks = [{"status": 201, "product": runner.QUOTA_PRODUCT, "size": 4_000_000}]
            extra = {"counters": {"quota_refusals": 3}}
        else:
            rows = [analysis.Row(1.0, "PUT", next(p99s), 201, True)] * 20
        return runner.LocustRun(tmp_path, rows, acks, extra, {
            "requests": len(rows), "failures": 0, "endpoints": {}}, 1.0, 0, 1)

    usage = {"gurukul": {"bytes": 100_000, "artifacts": 10},
             runner.QUOTA_PRODUCT: {"bytes": 4_000_000, "artifacts": 1}}
    server = SimpleNamespace(stop=lambda: None, start=lambda: None, url="http://127.0.0.1:1")
    tgt = SimpleNamespace(mode="spawn", store=store, server=server, url=server.url)
    ctx = SimpleNamespace(
        opts=SimpleNamespace(profile="certify"), targets=targets_from(None), out=tmp_path,
        target=lambda *a, **k: contextlib.nullcontext(tgt), locust=run_locust,
        usage=lambda t: usage, check_acks=lambda t, a: {"lost": 0},
        verify=lambda t: {"ok": True, "detail": "verified"}, say=lambda m: None)
    monkeypatch.setattr(runner, "_alerts", lambda t: {"history": [], "active": []})
    monkeypatch.setattr(runner, "load_config",
                        lambda p: SimpleNamespace(alert_levels=[]))
    counts = iter([0, 300, 300, 300, 3000, 3000, 3000])  # before; seeded, now, after each
    monkeypatch.setattr(runner, "_artifact_count", lambda t: next(counts))
    monkeypatch.setattr(runner, "_metadata_bytes", lambda s: next(stored))
    monkeypatch.setattr(runner, "_account", lambda *a: None)
    monkeypatch.setattr(runner, "seed_library", lambda *a, **k: None)
    p = dict(params_for("total-storage", "certify", targets_from(None)),
             levels=[300, 3000])
    res = runner.base_result("total-storage", ctx, p)  # type: ignore[arg-type]
    runner.run_total_storage(ctx, res, p)  # type: ignore[arg-type]
    target = DEFAULT_SCALE_LIMITS["total-storage"]["target"]
    assert res["measured"] != target and res["measured"] == 30_000_000
    assert res["figure"] == "extrapolated" and res["pass"] is False
    ex = res["details"]["extrapolation"]
    assert ex["status"] == "insufficient-data" and ex["model"] and len(ex["points"]) == 2
    assert "insufficient data" in res["reason"]
    assert ex["disk"]["free_bytes"] > 0  # free disk was consulted
    assert any("file system can hold" in c["name"] for c in res["checks"])


def test_load_stores_do_not_stop_at_the_products_count_quota(tmp_path: Path) -> None:
    # A certify run once hit the default 100,000-artifact quota of each product after
    # 400,000 writes (100 writers at ~2,000/s for 180 s) and reported 302,819 "errors"
    # that were the quota doing its job. The store the suite creates must leave room for
    # any run a profile can make: 100,000 writes/s (far above this machine) for the
    # longest write stage.
    from depository.loadtests.server import LOAD_PRODUCTS, QUOTA_PRODUCT, init_store
    from depository.store import Store

    cw = PROFILE_PARAMS["certify"]["concurrent-writers"]
    longest_s = cw["ramp_s"] + cw["hold_s"] + 60
    init_store(tmp_path / "s", quota_bytes=10**6)
    with Store.open(tmp_path / "s", readonly=True) as s:
        for pid in LOAD_PRODUCTS:
            assert s.config.products[pid].quota_artifacts > 100_000 * longest_s, pid
        # the product meant to fill up keeps its small byte quota
        assert s.config.products[QUOTA_PRODUCT].quota_bytes == 10**6
