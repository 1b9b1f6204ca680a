"""Load suites end to end: the quick profile against a spawned server (all seven limits),
a bad token against a running server, and a server that dies mid-run.

Locust runs in its own process (``depository loadtest run`` starts it); nothing here
imports locust.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from depository.loadtests import LIMIT_IDS, report
from depository.loadtests.server import Server, init_store

pytestmark = pytest.mark.slow

LOADTEST = [sys.executable, "-c",
            "from depository.cli._loadtest import loadtest; loadtest(prog_name='loadtest')"]


def _loadtest(*args: str, env: dict[str, str] | None = None, timeout: float = 600
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LOADTEST, *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def _verify(store: Path) -> subprocess.CompletedProcess[str]:
    vkey = (store / "keys" / "log.vkey").read_text().strip()
    return subprocess.run([sys.executable, "-m", "depository.verifier", "store", str(store),
                           "--key", vkey], capture_output=True, text=True, timeout=600)


# Checks whose verdict is a latency bound: on a loaded 2-core machine they may fail
# without anything being wrong (performance is measured in benchmarks/, not asserted in
# tests). Every other check -- errors, lost writes, accounting, quotas, alerts, proof
# sizes, the offline verifier -- must pass.
_TIMING = re.compile(r"p99|latency")


def _failed_functional_checks(doc: dict[str, Any]) -> list[str]:
    return [f"{lim['id']}: {c['name']} ({c['detail']})" for lim in doc["limits"]
            for c in lim["checks"] if not c["ok"] and not _TIMING.search(c["name"])]


def test_timing_checks_are_told_apart_from_functional_ones() -> None:
    doc = {"limits": [{"id": "x", "checks": [
        {"name": "write p99 under 1000 ms at that size", "ok": False, "detail": ""},
        {"name": "proof latency grows no faster than log n", "ok": False, "detail": ""},
        {"name": "zero lost writes", "ok": False, "detail": "1 lost"},
        {"name": "offline verifier accepts the store", "ok": True, "detail": ""}]}]}
    assert _failed_functional_checks(doc) == ["x: zero lost writes (1 lost)"]


def test_quick_profile_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "lt"
    t0 = time.monotonic()
    proc = _loadtest("run", "--spawn", "--profile", "quick", "--out", str(out))
    elapsed = time.monotonic() - t0
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr[-3000:]
    doc = report.load(out)
    assert _failed_functional_checks(doc) == [], proc.stdout + proc.stderr[-3000:]
    # Exit 0 exactly when every limit passed; 1 when only a latency bound or rate was missed.
    assert (proc.returncode == 0) == doc["pass"], proc.stdout
    # About 125 s alone on 2 vCPUs; the guard leaves room for a loaded CI machine.
    assert elapsed < 240, f"the quick profile took {elapsed:.0f} s"
    assert "users=" in proc.stderr  # progress was shown while it ran
    assert report.validate(doc) == []
    assert doc["profile"] == "quick" and doc["complete"]
    if not doc["pass"]:  # said, not hidden: which latency bound or rate a loaded run missed
        print("quick profile missed:", [lim["id"] for lim in doc["limits"] if not lim["pass"]])
    assert [lim["id"] for lim in doc["limits"]] == list(LIMIT_IDS)
    env = doc["environment"]
    assert env["cpu_count"] and env["python"] and env["sqlite"] and env["packages"]["locust"]
    for lim in doc["limits"]:
        assert lim["status"] == "measured", (lim["id"], lim["reason"])
        assert lim["measured"] is not None, lim["id"]
        assert lim["figure"] in ("scaled-down", "extrapolated"), lim["id"]
        assert lim["errors"] == 0, (lim["id"], lim["checks"])
        assert lim["chart"] and (out / lim["chart"]).is_file()
        assert any(p.endswith("locust.json") for p in lim["raw"]), lim["id"]
        for p in lim["raw"]:
            assert (out / p).exists(), p
    by_id = {lim["id"]: lim for lim in doc["limits"]}
    assert by_id["concurrent-writers"]["lost"] == 0
    wt = by_id["write-throughput"]["details"]
    assert wt["loadgen"]["cpu_s"] > 0  # the locust process reported its CPU
    assert all("loadgen_cpu" in s and "loadgen_bound" in s for s in wt["steps"])
    assert by_id["total-storage"]["details"]["extrapolation"]["label"].startswith(
        "EXTRAPOLATED")
    # every spawned store passes the offline verifier afterwards
    stores = [p for p in (out / "stores").iterdir() if p.is_dir()]
    assert {p.name for p in stores} >= set(LIMIT_IDS)
    for store in stores:
        v = _verify(store)
        assert v.returncode == 0, (store.name, v.stdout[-2000:], v.stderr[-2000:])
    rep = _loadtest("report", str(out))
    assert rep.returncode == 0, rep.stderr
    assert f"overall: {'PASS' if doc['pass'] else 'FAIL'}" in rep.stdout
    assert "scaled-down" in rep.stdout


def test_bad_token_is_a_clear_error_and_nothing_passes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    tokens = init_store(store, quota_bytes=10**9)
    server = Server(store, tmp_path / "server.log")
    server.start()
    try:
        bad = tmp_path / "bad.token"
        bad.write_text("dep_tok-999_not-a-real-secret\n")
        out = tmp_path / "lt"
        proc = _loadtest("run", "concurrent-writers", "--target", server.url, "--token-file",
                         str(bad), "--out", str(out), timeout=120)
        assert proc.returncode == 1
        assert "refused" in proc.stdout + proc.stderr
        doc = report.load(out)
        assert report.validate(doc) == []
        assert not doc["pass"] and not doc["complete"]
        (lim,) = doc["limits"]
        assert lim["status"] == "not-measured" and lim["measured"] is None
        assert "token" in lim["reason"] and "refused" in lim["reason"]
        # a good token file against the same server is accepted (preflight only)
        from depository.loadtests.runner import preflight

        assert preflight(server.url, tokens) is None
    finally:
        server.stop()


def test_server_dying_mid_run_is_reported_not_passed(tmp_path: Path) -> None:
    # A stand-in for `depository serve` that starts the real server and kills it with
    # SIGKILL once the writers are demonstrably running: the log has grown by 40 records
    # past its size when the first write arrived (a fixed delay raced the run's length on
    # a loaded machine). Polls the store read-only; gives up killing after 120 s.
    wrapper = tmp_path / "dying_serve.py"
    wrapper.write_text(textwrap.dedent("""
        import signal, sqlite3, subprocess, sys, time
        argv = sys.argv[1:]
        store = argv[argv.index("--store") + 1]
        cmd = [sys.executable, "-c", "from depository.cli._serve import serve; serve()",
               *argv]
        p = subprocess.Popen(cmd)
        signal.signal(signal.SIGINT, lambda *a: (p.kill(), sys.exit(130)))

        def size():
            try:
                db = sqlite3.connect(f"file:{store}/depository.db?mode=ro", uri=True)
                try:
                    return db.execute("SELECT count(*) FROM log").fetchone()[0]
                finally:
                    db.close()
            except sqlite3.Error:
                return None

        deadline = time.monotonic() + 120
        first = None
        while time.monotonic() < deadline and p.poll() is None:
            n = size()
            if n is not None and first is None:
                first = n
            if n is not None and first is not None and n >= first + 40:
                break
            time.sleep(0.05)
        p.kill()
        p.wait()
        sys.exit(137)
    """))
    out = tmp_path / "lt"
    proc = _loadtest("run", "concurrent-writers", "--spawn", "--out", str(out),
                     env={"DEPOSITORY_LOADTEST_SERVE_CMD": f"{sys.executable} {wrapper}"},
                     timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    doc = report.load(out)
    assert report.validate(doc) == []
    (lim,) = doc["limits"]
    assert lim["status"] == "not-measured" and not lim["pass"] and lim["measured"] is None
    assert "server" in lim["reason"]
    assert doc["not_measured"] == [{"id": "concurrent-writers", "reason": lim["reason"]}]
    assert not doc["pass"]
    assert json.loads((out / "results.json").read_text())["complete"] is False
