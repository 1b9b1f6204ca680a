"""``depository loadtest run``: drive the seven load suites and write ``results.json``.

Locust runs headless in its own process (``python -m locust``); this module never imports
locust. For each limit the runner prepares a target (``--spawn``: a fresh store and
``depository serve`` on 127.0.0.1, stopped afterwards; or ``--target URL``), runs the
limit's locust file, reads locust's ``--json-file`` output and the rows the users write at
exit, checks the store (every acknowledged write present, the offline verifier), and
records one result per limit. A limit that could not be measured says why and never
passes; a run with any such limit is incomplete and does not pass.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from depository.loadtests import LIMIT_IDS, analysis, common, shapes
from depository.loadtests.limits import SPECS, params_for, scaled_target, targets_from
from depository.loadtests.server import (
    LOAD_PRODUCTS,
    QUOTA_PRODUCT,
    Seeded,
    Server,
    ServerError,
    Tokens,
    environment,
    get_json,
    init_store,
    request,
    seed_http,
    seed_library,
)
from depository.store import Store, format_time
from depository.store.config import load_config

RESULTS_NAME = "results.json"
SCHEMA_VERSION = 1
SEVEN_YEARS_DAYS = 7 * 365


class NotMeasured(Exception):
    """The limit could not be measured (the message says why)."""


class ServerDied(NotMeasured):
    """The server stopped answering during a run."""


@dataclass
class RunOptions:
    limits: Sequence[str] = LIMIT_IDS
    profile: str = "quick"
    out: Path = Path("loadtest-results")
    spawn: bool = False
    target: str | None = None
    token_file: Path | None = None
    product: str = "gurukul"
    store: Path | None = None  # the target's store directory, for read-only checks
    allow_hosts: Sequence[str] = ()
    keep_stores: bool = True
    progress: Callable[[str], None] = field(default=lambda msg: None)
    argv: Sequence[str] = ()


@dataclass
class Target:
    """What a suite talks to."""

    url: str
    tokens: Tokens
    products: list[str]
    store: Path | None
    server: Server | None = None
    mode: str = "spawn"
    vkey: str | None = None

    def alive(self) -> str | None:
        """None if the service answers /health, else why not."""
        if self.server is not None and not self.server.alive():
            code = self.server.proc.returncode if self.server.proc else self.server.exit_code
            return f"the server process exited (code {code})"
        try:
            status, _, _ = request(self.url, "GET", "/health", timeout=10)
        except OSError as exc:
            return f"the server stopped answering ({exc})"
        return None if status == 200 else f"/health answered HTTP {status}"


@dataclass
class LocustRun:
    dir: Path
    rows: list[analysis.Row]
    acks: list[dict[str, Any]]
    extra: dict[str, Any]
    summary: dict[str, Any]
    seconds: float
    returncode: int
    max_users: int
    # (locust run time s, locust process CPU s), about one a second: its CPU per step
    cpu: list[tuple[float, float]] = field(default_factory=list)


# ------------------------------------------------------------------------ context
class Context:
    def __init__(self, opts: RunOptions) -> None:
        self.opts = opts
        self.out = opts.out
        self.raw = opts.out / "raw"
        self.stores = opts.out / "stores"
        self.run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        cfg_limits = None
        if opts.store is not None and (opts.store / "depository.yaml").is_file():
            cfg_limits = load_config(opts.store / "depository.yaml").scale_limits
        self.targets = targets_from(cfg_limits)
        self.target_tokens: Tokens | None = None
        self.seed_cache: dict[int, tuple[Path, Seeded]] = {}

    def say(self, msg: str) -> None:
        self.opts.progress(msg)

    # ---------------------------------------------------------------- targets
    @contextlib.contextmanager
    def target(self, lid: str, *, quota_bytes: int = 64 * 1024 * 1024,
               seed: int = 0) -> Iterator[Target]:
        """A fresh store and server (``--spawn``) or the given target, for one limit."""
        if not self.opts.spawn:
            assert self.opts.target is not None and self.target_tokens is not None
            tgt = Target(self.opts.target.rstrip("/"), self.target_tokens,
                         sorted(self.target_tokens.products), self.opts.store, mode="target")
            if seed:
                self.say(f"{lid}: seeding {seed} artifacts over HTTP")
                tgt_seed = seed_http(tgt.url, tgt.tokens, seed, products=tgt.products,
                                     start=random.randrange(10**7))
                tgt.__dict__["seeded"] = tgt_seed
            yield tgt
            return
        path = self.stores / lid
        if path.exists():
            shutil.rmtree(path)
        seeded: Seeded | None = None
        if seed:
            base, seeded = self.seeded_store(seed, quota_bytes)
            shutil.copytree(base, path)
            tokens = Tokens(**json.loads((base.parent / f"{base.name}.tokens.json")
                                         .read_text()))
        else:
            tokens = init_store(path, quota_bytes=quota_bytes)
        server = Server(path, self.raw / lid / "server.log")
        server.start()
        vkey = (path / "keys" / "log.vkey").read_text().strip()
        tgt = Target(server.url, tokens, list(LOAD_PRODUCTS), path, server, "spawn", vkey)
        tgt.__dict__["seeded"] = seeded
        try:
            yield tgt
        finally:
            server.stop()

    def seeded_store(self, count: int, quota_bytes: int) -> tuple[Path, Seeded]:
        """A store seeded with ``count`` artifacts through the library, made once per run."""
        if count in self.seed_cache:
            return self.seed_cache[count]
        base = self.stores / f"_seed-{count}"
        if base.exists():
            shutil.rmtree(base)
        tokens = init_store(base, quota_bytes=quota_bytes)
        (base.parent / f"{base.name}.tokens.json").write_text(json.dumps(
            {"products": tokens.products, "auditor": tokens.auditor, "admin": tokens.admin}))
        self.say(f"seeding {count} artifacts through the library")
        seeded = seed_library(base, count, progress=self._seed_progress)
        self.seed_cache[count] = (base, seeded)
        return base, seeded

    def _seed_progress(self, done: int, total: int) -> None:
        if done % 20000 < 2000:
            self.say(f"  seeded {done}/{total}")

    # ----------------------------------------------------------------- locust
    def locust(self, lid: str, tag: str, tgt: Target, *, lp: Mapping[str, Any],
               stages: Sequence[shapes.Stage], classes: Sequence[str],
               extra_params: Mapping[str, Any] | None = None,
               timeout_s: float | None = None) -> LocustRun:
        """Run ``lid``'s locust file headless in its own process; read what it left."""
        spec = SPECS[lid]
        run_dir = self.raw / lid / tag
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        params = {
            "run_id": f"{self.run_id}-{tag}", "profile": self.opts.profile, "limit": lid,
            "products": tgt.products, "tokens": tgt.tokens.products,
            "auditor_token": tgt.tokens.auditor, "admin_token": tgt.tokens.admin,
            "out_dir": str(run_dir),
            "limit_params": dict(lp), "stages": shapes.dump(stages),
            "allow_hosts": list(self.opts.allow_hosts), "routes": common.ROUTES,
            "quota_product": QUOTA_PRODUCT, "seeded_names": {}, "time_window": None,
            **(extra_params or {}),
        }
        (run_dir / "params.json").write_text(json.dumps(params, indent=1))
        locustfile = Path(__file__).with_name(f"{spec.locustfile}.py")
        total = shapes.duration(stages)
        limit_s = timeout_s or total + 120
        cmd = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless",
               "--host", tgt.url, "--json-file", str(run_dir / "locust"),
               "--csv", str(run_dir / "locust"), "--only-summary", "--loglevel", "WARNING",
               "--stop-timeout", "30",
               "--exit-code-on-error", "0", *classes]
        env = dict(os.environ, **{common.PARAMS_ENV: str(run_dir / "params.json")})
        env.pop("LOCUST_HOST", None)
        t0 = time.monotonic()
        max_users = 0
        cpu: list[tuple[float, float]] = []
        died: str | None = None
        with open(run_dir / "locust.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=env,
                                    start_new_session=True)
            assert proc.stdout is not None
            last_say = 0.0
            for raw_line in proc.stdout:
                line = raw_line.decode("utf-8", "replace").rstrip()
                if line.startswith("DEPOSITORY-PROGRESS "):
                    try:
                        p = json.loads(line.split(" ", 1)[1])
                    except ValueError:
                        continue
                    max_users = max(max_users, int(p.get("users", 0)))
                    if "cpu" in p and "t" in p:
                        cpu.append((float(p["t"]), float(p["cpu"])))
                    now = time.monotonic()
                    if now - last_say >= 2.0:
                        last_say = now
                        self.say(f"{lid} [{tag}] t={p['t']:.0f}/{total:.0f}s "
                                 f"users={p['users']} requests={p['requests']} "
                                 f"failures={p['failures']} rps={p['rps']}")
                    if tgt.server is not None and not tgt.server.alive() and died is None:
                        died = tgt.alive()
                        proc.terminate()
                else:
                    log.write(raw_line)
                if time.monotonic() - t0 > limit_s + 90:
                    proc.terminate()
                    died = died or f"locust did not finish within {limit_s + 90:.0f} s"
            try:
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
        seconds = time.monotonic() - t0
        self.say(f"{lid} [{tag}] locust finished in {seconds:.1f} s (exit code {rc})")
        if died is None and tgt.server is not None and not tgt.server.alive():
            died = tgt.alive()
        if died is None:
            died = tgt.alive()
        if died is not None:
            raise ServerDied(f"{tag}: {died} during the run; the figures of this limit are "
                             "not valid" + _log_hint(tgt))
        if not (run_dir / "locust.json").is_file():
            tail = (run_dir / "locust.log").read_text(errors="replace")[-1500:]
            raise NotMeasured(f"{tag}: locust exited with code {rc} without its statistics "
                              f"file; its log ends:\n{tail}")
        extra = analysis.read_extra(run_dir / "extra.json")
        refused = (extra.get("facts") or {}).get("refused_target")
        if refused:
            raise NotMeasured(refused)
        return LocustRun(run_dir, analysis.read_rows(run_dir / "requests.csv"),
                         analysis.read_acks(run_dir / "acks.jsonl"), extra,
                         analysis.locust_summary(analysis.read_locust_json(
                             run_dir / "locust.json")), seconds, rc, max_users, cpu)

    # ------------------------------------------------------------ store checks
    def check_acks(self, tgt: Target, acks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Every acknowledged write present with the same bytes and log index."""
        latest: dict[str, Mapping[str, Any]] = {}
        for a in acks:
            if a.get("status") == 201 or a["artifact_id"] not in latest:
                latest[a["artifact_id"]] = a
        lost: list[str] = []
        if tgt.store is not None:
            with Store.open(tgt.store, readonly=True) as store:
                for aid, a in latest.items():
                    try:
                        art = store.get_by_id(aid)
                    except Exception:
                        lost.append(f"{a['product']}/{a['name']}: missing")
                        continue
                    if art.sha256 != a["sha256"] or art.log_index != a["log_index"]:
                        lost.append(f"{a['product']}/{a['name']}: stored sha256 "
                                    f"{art.sha256[:12]} at {art.log_index}, acknowledged "
                                    f"{a['sha256'][:12]} at {a['log_index']}")
            how = "read-only store"
        else:
            for a in latest.values():
                tok = tgt.tokens.products.get(a["product"], {}).get("reader", "")
                status, _, body = request(tgt.url, "GET",
                                          common.artifact_path(a["product"], a["name"]),
                                          headers={"Authorization": f"Bearer {tok}"})
                import hashlib

                if status != 200 or hashlib.sha256(body).hexdigest() != a["sha256"]:
                    lost.append(f"{a['product']}/{a['name']}: HTTP {status}")
            how = "HTTP read-back"
        return {"acknowledged": len(latest), "lost": len(lost), "lost_examples": lost[:10],
                "checked_by": how}

    def verify(self, tgt: Target) -> dict[str, Any]:
        """Run the offline verifier over the target's store (if we have it).

        A spawned server is stopped first (it signs a final checkpoint on the way out), so
        every record is covered by a signed checkpoint; for a remote target, the runner
        waits for its checkpoint cadence first.
        """
        if tgt.server is not None:
            tgt.server.stop()
        elif tgt.store is not None:
            time.sleep(2.5)
        if tgt.store is None:
            return {"ran": False, "ok": False,
                    "detail": "not run: the target's store directory was not given (--store)"}
        vkey = tgt.vkey or _read_vkey(tgt.store)
        if vkey is None:
            return {"ran": False, "ok": False, "detail": "no verifier key for the store"}
        self.say(f"verifying {tgt.store} offline")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "depository.verifier", "store",
                               str(tgt.store), "--key", vkey, "--json"],
                              capture_output=True, text=True, timeout=3600)
        seconds = time.perf_counter() - t0
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            data = {}
        ok = proc.returncode == 0 and bool(data.get("verified"))
        size = data.get("size")
        detail = "verified" if ok else (data.get("error") or proc.stderr.strip()[-500:]
                                        or f"exit code {proc.returncode}")
        return {"ran": True, "ok": ok, "exit_code": proc.returncode, "seconds": seconds,
                "records": size, "records_per_s": (size / seconds) if size and seconds else
                None, "detail": str(detail)[:2000]}

    def usage(self, tgt: Target) -> dict[str, dict[str, int]] | None:
        if tgt.store is None:
            return None
        with Store.open(tgt.store, readonly=True) as store:
            return store.usage()


def _read_vkey(store: Path) -> str | None:
    with contextlib.suppress(OSError):
        return (store / "keys" / "log.vkey").read_text().strip()
    return None


def _log_hint(tgt: Target) -> str:
    if tgt.server is None:
        return ""
    tail = tgt.server.log_tail(8)
    return f" (server log {tgt.server.log_path}; it ends: {tail[-600:]})" if tail else ""


# ------------------------------------------------------------------------ results
def base_result(lid: str, ctx: Context, params: Mapping[str, Any]) -> dict[str, Any]:
    spec = SPECS[lid]
    t = ctx.targets[lid]
    return {
        "id": lid, "title": spec.title, "description": spec.description,
        "target": t.get("target"), "unit": t.get("unit"), "measured": None,
        "pass": False, "status": "not-measured", "figure": "measured",
        "method": spec.method, "profile": ctx.opts.profile, "load": dict(params),
        "profile_target": scaled_target(lid, params, t.get("target")),
        "latency_ms": {"p50": None, "p95": None, "p99": None, "max": None},
        "throughput": None, "requests": 0, "errors": 0, "lost": None,
        "checks": [], "details": {}, "reason": None, "raw": [], "chart": None,
        "started": format_time(datetime.now(UTC)), "ended": None, "seconds": None,
    }


def _check(res: dict[str, Any], name: str, ok: bool, detail: str = "") -> bool:
    res["checks"].append({"name": name, "ok": bool(ok), "detail": detail})
    return bool(ok)


def _latency(res: dict[str, Any], lat: Mapping[str, Any]) -> None:
    res["latency_ms"] = {"p50": lat.get("p50_ms"), "p95": lat.get("p95_ms"),
                         "p99": lat.get("p99_ms"), "max": lat.get("max_ms")}


def _account(res: dict[str, Any], ctx: Context, *runs: LocustRun) -> None:
    for r in runs:
        res["requests"] += r.summary["requests"]
        res["errors"] += r.summary["failures"]
        res["raw"] += [str(p.relative_to(ctx.out)) for p in sorted(r.dir.iterdir())
                       if p.name != "params.json"]


def _loadgen(run: LocustRun) -> dict[str, Any]:
    """The load generator's CPU over a run (locust shares this machine with the server)."""
    share = analysis.cpu_share(run.cpu, 0.0, float("inf"))
    return {"cpu_s": run.cpu[-1][1] if run.cpu else None, "mean_cpu_share": share,
            "note": f"locust process CPU as a share of one core; a step at or above "
                    f"{analysis.LOADGEN_BOUND:.0%} was limited by the load generator, "
                    "not measured against the server"}


def _all_checks_ok(res: Mapping[str, Any]) -> bool:
    return all(c["ok"] for c in res["checks"])


# ------------------------------------------------------------------------ limits
def run_artifact_size(ctx: Context, res: dict[str, Any], p: dict[str, Any]) -> None:
    target = int(res["target"])
    size = int(p["size"])
    with ctx.target("artifact-size", seed=0) as tgt:
        max_size = target
        if tgt.store is not None:
            max_size = load_config(tgt.store / "depository.yaml").max_artifact_size
        rss0 = tgt.server.rss() if tgt.server else None
        lp = {**p, "oversize_check": ctx.opts.profile == "certify", "max_size": max_size,
              "network_timeout": 1800}
        run = ctx.locust("artifact-size", "upload", tgt, lp=lp,
                         stages=shapes.constant(1, 3600), classes=["LargeUploader"],
                         timeout_s=600 + p["uploads"] * max(60, size / 5e6))
        rss_peak = tgt.server.peak_rss() if tgt.server else None
        acks = ctx.check_acks(tgt, run.acks)
        ver = ctx.verify(tgt)
    _account(res, ctx, run)
    c = run.extra.get("counters", {})
    lists = run.extra.get("lists", {})
    verified = int(c.get("hash_verified", 0))
    _check(res, "uploads stored with the sent sha256 and read back identical",
           verified == p["uploads"] and run.summary["failures"] == 0,
           f"{verified} of {p['uploads']} uploads of {size} bytes verified")
    _check(res, "no acknowledged upload lost", acks["lost"] == 0, json.dumps(acks))
    _check(res, "offline verifier accepts the store", ver["ok"], ver["detail"])
    if lp["oversize_check"]:
        st = run.extra.get("facts", {}).get("oversize_status")
        _check(res, f"one byte over the limit ({max_size + 1} bytes) refused with 413",
               st == 413, f"got {st}")
    if rss0 is not None and rss_peak is not None:
        growth = rss_peak - rss0
        _check(res, "server streams (peak RSS growth below half the artifact size)",
               growth < size / 2, f"RSS before {rss0} B, peak {rss_peak} B, growth {growth} B")
    ups = lists.get("upload_seconds") or []
    downs = lists.get("download_seconds") or []
    up = size / sorted(ups)[len(ups) // 2] / 1e6 if ups else None
    down = size / sorted(downs)[len(downs) // 2] / 1e6 if downs else None
    res["throughput"] = {"value": up, "unit": "MB/s (upload, median)"}
    res["details"] = {"artifact_bytes": size, "uploads": p["uploads"], "verified": verified,
                      "upload_MBps": up, "readback_MBps": down, "server_rss_before": rss0,
                      "server_peak_rss": rss_peak, "max_artifact_size": max_size,
                      "acks": acks, "verifier": ver, "upload_seconds": ups,
                      "download_seconds": downs}
    res["lost"] = acks["lost"]
    _latency(res, analysis.latency(r for r in run.rows if r.name == "PUT large artifact"))
    res["measured"] = size if verified == p["uploads"] and verified > 0 else 0
    res["figure"] = "scaled-down" if size < target else "measured"
    res["status"] = "measured"
    res["pass"] = _all_checks_ok(res) and res["measured"] >= res["profile_target"]


def run_total_storage(ctx: Context, res: dict[str, Any], p: dict[str, Any]) -> None:
    target = int(res["target"])
    lid = "total-storage"
    quota = int(p["quota_bytes"])
    runs: list[LocustRun] = []
    with ctx.target(lid, quota_bytes=quota) as tgt:
        if tgt.mode != "spawn":
            raise NotMeasured("total storage needs --spawn: the quota check needs a product "
                              "with a small quota and the growth curve reseeds the store")
        # (1) accounting after a mixed workload
        mixed = ctx.locust(lid, "mixed", tgt, lp=p,
                           stages=shapes.constant(int(p["mixed_users"]), float(p["mixed_s"])),
                           classes=["MixedWriter"])
        runs.append(mixed)
        acked: dict[str, list[int]] = {}
        for a in mixed.acks:
            if a["status"] == 201:
                v = acked.setdefault(a["product"], [0, 0])
                v[0] += int(a["size"])
                v[1] += 1
        usage = ctx.usage(tgt) or {}
        mismatch = {pid: {"acknowledged": acked.get(pid, [0, 0]), "reported": usage.get(pid)}
                    for pid in set(acked) | set(usage)
                    if [usage.get(pid, {}).get("bytes", 0), usage.get(pid, {}).get(
                        "artifacts", 0)] != acked.get(pid, [0, 0])}
        total_acked = sum(v[0] for v in acked.values())
        count_acked = sum(v[1] for v in acked.values())
        _check(res, "capacity accounting exact to the byte after the mixed workload",
               not mismatch and count_acked > 0,
               f"{count_acked} artifacts, {total_acked} bytes acknowledged; mismatches: "
               f"{json.dumps(mismatch) if mismatch else 'none'}")
        c = mixed.extra.get("counters", {})
        _check(res, "identical re-uploads answered 200 with the original receipt",
               c.get("duplicate_index_mismatch", 0) == 0,
               f"{c.get('duplicates_ok', 0)} identical re-uploads")
        _check(res, "conflicting re-uploads refused with 409",
               mixed.summary["endpoints"].get("PUT PUT conflicting (409)", {}).get(
                   "failures", 0) == 0, f"{c.get('conflicts_refused', 0)} refused")
        # (2) quota enforcement
        qrun = ctx.locust(lid, "quota", tgt, lp={**p, "refusals_wanted": 12},
                          stages=shapes.constant(int(p["quota_users"]), 300.0),
                          classes=["QuotaFiller"])
        runs.append(qrun)
        qacked = sum(int(a["size"]) for a in qrun.acks if a["status"] == 201)
        qusage = (ctx.usage(tgt) or {}).get(QUOTA_PRODUCT, {})
        refusals = int(qrun.extra.get("counters", {}).get("quota_refusals", 0))
        bad = {k: v for k, v in qrun.extra.get("counters", {}).items()
               if k.startswith("status_")}
        _check(res, "writes past the quota refused cleanly (507/429, nothing else)",
               refusals > 0 and not bad and qrun.summary["failures"] == 0,
               f"{refusals} refusals; other statuses {bad or 'none'}")
        _check(res, "quota filled to within one write, never past it",
               quota - int(p["quota_write"]) < qacked <= quota
               and qusage.get("bytes") == qacked,
               f"quota {quota} B, acknowledged {qacked} B, store reports {qusage}")
        alerts = _alerts(tgt)
        assert tgt.store is not None
        levels = list(load_config(tgt.store / "depository.yaml").alert_levels)
        names = _level_names(len(levels))
        seen = [h.get("to") for h in alerts.get("history", [])
                if h.get("id") == f"quota-bytes:{QUOTA_PRODUCT}"]
        active = [a for a in alerts.get("active", [])
                  if a.get("id") == f"quota-bytes:{QUOTA_PRODUCT}"]
        _check(res, f"an alert raised at each level {levels} for {QUOTA_PRODUCT}'s bytes",
               bool(levels) and all(n in seen for n in names) and bool(active),
               f"alerts view {alerts.get('source')}: level changes {seen}, active "
               f"{[a.get('alert_level') for a in active]}"
               + (f"; {alerts['error']}" if alerts.get("error") else ""))
        acks = ctx.check_acks(tgt, mixed.acks + qrun.acks)
        _check(res, "nothing acknowledged was lost", acks["lost"] == 0, json.dumps(acks))
        # (3) growth over orders of magnitude (store reseeded through the library)
        levels_out: list[dict[str, Any]] = []
        have_n = _artifact_count(tgt)
        assert tgt.server is not None and tgt.store is not None
        for n in p["levels"]:
            if n > have_n:
                tgt.server.stop()
                ctx.say(f"{lid}: seeding to {n} artifacts")
                seed_library(tgt.store, n - have_n, start=10**7 + have_n, sample=0)
                tgt.server.start()
                tgt.url = tgt.server.url
                have_n = _artifact_count(tgt)
            meta_bytes, stored = _metadata_bytes(tgt.store)
            count_now = _artifact_count(tgt)
            burst = ctx.locust(lid, f"growth-{n}", tgt,
                               lp={**p, "write_size": 1024},
                               stages=shapes.constant(int(p["level_users"]),
                                                      float(p["level_s"])),
                               classes=["Writer"])
            runs.append(burst)
            lat = analysis.latency(burst.rows)
            have_n = _artifact_count(tgt)
            levels_out.append({"artifacts": count_now, "stored_bytes": stored,
                               "metadata_bytes": meta_bytes, "write_p50_ms": lat["p50_ms"],
                               "write_p99_ms": lat["p99_ms"], "errors": lat["errors"],
                               "requests": lat["requests"]})
        ver = ctx.verify(tgt)
        _check(res, "offline verifier accepts the store", ver["ok"], ver["detail"])
    _account(res, ctx, *runs)
    bound = float(params_for("write-throughput", ctx.opts.profile, ctx.targets)["p99_ms"])
    claim = float(res["profile_target"] or target)
    fit_meta = analysis.linear_fit([float(lv["artifacts"]) for lv in levels_out],
                                   [float(lv["metadata_bytes"]) for lv in levels_out])
    mean_size = total_acked / count_acked if count_acked else 1.0
    n_claim = claim / mean_size
    # The claim is extrapolated from the growth levels: write p99 against log10(artifacts),
    # judged at the number of artifacts of the mean size that fill the claimed storage.
    extrap = analysis.extrapolate(
        [(float(lv["artifacts"]), lv["write_p99_ms"]) for lv in levels_out],
        model="write p99 (ms) = a + b * log10(artifacts), least squares over the growth levels",
        x_at=n_claim, transform="log10", bound=bound, bound_label="the write p99 bound (ms)",
        x_label="artifacts", y_label="write p99 (ms)")
    extrap.update(mean_artifact_bytes=mean_size, claimed_bytes=claim,
                  metadata_fit=fit_meta,
                  metadata_bytes_per_artifact=fit_meta["b"] if fit_meta else None)
    _check(res, f"extrapolated write p99 at {claim:.3g} bytes under the bound ({bound:.0f} ms)",
           extrap["status"] == "supported", extrap["reason"])
    largest = max((lv["stored_bytes"] for lv in levels_out), default=0)
    disk = shutil.disk_usage(tgt.store)
    extrap["disk"] = {"path": str(tgt.store), "free_bytes": disk.free,
                      "total_bytes": disk.total}
    # Storage is claimed only where there is room for it: what the store holds plus the
    # free space of its file system must reach the claim.
    _check(res, f"the store's file system can hold {claim:.3g} bytes",
           largest + disk.free >= claim,
           f"{disk.free} bytes free of {disk.total} at {tgt.store}, {largest} bytes stored")
    errors = sum(lv["errors"] for lv in levels_out)
    _check(res, "no errors in the growth bursts", errors == 0, f"{errors} errors")
    # Never the target: the figure is the largest store measured; the claim beyond it is
    # the extrapolation above, with its model, points and uncertainty.
    res["measured"] = largest
    res["figure"] = "extrapolated"
    res["lost"] = acks["lost"]
    _latency(res, analysis.latency(r for r in mixed.rows if r.name == "PUT mixed"))
    res["throughput"] = {"value": analysis.throughput(mixed.rows), "unit": "writes/s (mixed)"}
    res["details"] = {"accounting": {"acknowledged_bytes": total_acked,
                                     "acknowledged_artifacts": count_acked,
                                     "mismatches": mismatch},
                      "quota": {"quota_bytes": quota, "acknowledged_bytes": qacked,
                                "refusals": refusals, "alerts": alerts},
                      "growth": levels_out, "extrapolation": extrap,
                      "largest_store_measured_bytes": largest,
                      "verifier": ver}
    res["status"] = "measured"
    if extrap["status"] == "insufficient-data":
        res["reason"] = extrap["reason"]
    res["pass"] = _all_checks_ok(res)


def _alerts(tgt: Target) -> dict[str, Any]:
    """The service's alerts view: active alerts and the history of level changes."""
    token = tgt.tokens.admin or tgt.tokens.auditor
    path = common.ROUTES["alerts"]
    try:
        status, body = get_json(tgt.url, path, token)
    except OSError as exc:
        return {"source": path, "active": [], "history": [], "error": str(exc)}
    if status != 200 or not isinstance(body, dict):
        return {"source": path, "active": [], "history": [], "error": f"HTTP {status}"}
    view: dict[str, Any] = body["alerts"] if isinstance(body.get("alerts"), dict) else {}
    return {"source": path, "active": list(view.get("active") or []),
            "history": list(view.get("history") or [])}


def _level_names(n: int) -> list[str]:
    """The alert level names of levels 1..n, as the service names them."""
    try:
        from depository.service import level_name
    except ImportError:  # the service is not installed: its documented naming
        def level_name(level: int, n_levels: int) -> str:
            if level >= n_levels:
                return "critical"
            return "high" if level == n_levels - 1 else "warning"
    return [level_name(k, n) for k in range(1, n + 1)]


def _artifact_count(tgt: Target) -> int:
    usage = {}
    if tgt.store is not None:
        with Store.open(tgt.store, readonly=True) as store:
            usage = store.usage()
    return sum(u.get("artifacts", 0) for u in usage.values())


def _metadata_bytes(store: Path) -> tuple[int, int]:
    """(bytes of the database that are not inline artifact bytes, stored artifact bytes)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{store / 'depository.db'}?mode=ro", uri=True)
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        psize = conn.execute("PRAGMA page_size").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        inline = conn.execute(
            "SELECT coalesce(sum(length(data)), 0) FROM inline_blob").fetchone()[0]
        stored = conn.execute("SELECT coalesce(sum(size), 0) FROM artifact").fetchone()[0]
    finally:
        conn.close()
    return int((pages - free) * psize - inline), int(stored)


def run_concurrent_writers(ctx: Context, res: dict[str, Any], p: dict[str, Any]) -> None:
    lid = "concurrent-writers"
    writers = int(p["writers"])
    stages = shapes.ramp_hold(writers, float(p["ramp_s"]), float(p["hold_s"]))
    with ctx.target(lid) as tgt:
        run = ctx.locust(lid, "writers", tgt, lp=p, stages=stages, classes=["Writer"])
        acks = ctx.check_acks(tgt, run.acks)
        ver = ctx.verify(tgt)
    _account(res, ctx, run)
    hold = analysis.stage_stats(run.rows, stages, settle_s=0)[-1]
    _check(res, f"{writers} writers at once for the hold stage ({p['hold_s']} s)",
           run.max_users >= writers, f"peak users {run.max_users}")
    _check(res, "zero errors", run.summary["failures"] == 0,
           f"{run.summary['failures']} failed of {run.summary['requests']}")
    _check(res, "zero lost writes (every acknowledged write in the store)", acks["lost"] == 0,
           f"{acks['acknowledged']} acknowledged, {acks['lost']} lost ({acks['checked_by']})")
    _check(res, "offline verifier accepts the store", ver["ok"], ver["detail"])
    res["lost"] = acks["lost"]
    _latency(res, analysis.latency(run.rows))
    res["throughput"] = {"value": hold["achieved_rate"], "unit": "writes/s (hold stage)"}
    res["details"] = {"hold_stage": hold, "acks": acks, "verifier": ver,
                      "peak_users": run.max_users}
    res["measured"] = run.max_users
    res["figure"] = "scaled-down" if writers < int(res["target"]) else "measured"
    res["status"] = "measured"
    res["pass"] = _all_checks_ok(res) and run.max_users >= int(res["profile_target"])


def run_write_throughput(ctx: Context, res: dict[str, Any], p: dict[str, Any]) -> None:
    lid = "write-throughput"
    stages = shapes.steps(p["rates"], float(p["step_s"]), float(p["rate_per_user"]))
    with ctx.target(lid) as tgt:
        run = ctx.locust(lid, "steps", tgt, lp=p, stages=stages, classes=["PacedWriter"])
        acks = ctx.check_acks(tgt, run.acks)
        ver = ctx.verify(tgt)
    _account(res, ctx, run)
    bound = float(p["p99_ms"])
    settle = float(p.get("settle_s", 1.0))
    steps_out = analysis.stage_stats(run.rows, stages, settle_s=settle)
    for s in steps_out:
        share = analysis.cpu_share(run.cpu, s["from_s"], s["until_s"])
        s["loadgen_cpu"] = share
        # one gevent loop uses at most one core: near it, the offered load was not offered
        s["loadgen_bound"] = share is not None and share >= analysis.LOADGEN_BOUND
    good = [s for s in steps_out if s["requests"] and s["errors"] == 0
            and s["p99_ms"] is not None and s["p99_ms"] < bound]
    best = max(good, key=lambda s: s["achieved_rate"] or 0.0) if good else None
    measured = float(best["achieved_rate"]) if best else 0.0
    _check(res, "zero lost writes", acks["lost"] == 0, json.dumps(acks))
    _check(res, "offline verifier accepts the store", ver["ok"], ver["detail"])
    _check(res, f"a step held p99 under {bound:.0f} ms with zero errors", best is not None,
           f"best step {best['label'] if best else None}")
    res["lost"] = acks["lost"]
    _latency(res, analysis.latency(run.rows))
    res["throughput"] = {"value": measured, "unit": "writes/s (durable, best step)"}
    res["details"] = {"steps": steps_out, "best_step": best, "p99_bound_ms": bound,
                      "p99_bound_source": p["p99_ms_source"], "settle_s": settle,
                      "loadgen": _loadgen(run),
                      "loadgen_bound_steps": [s["label"] for s in steps_out
                                              if s["loadgen_bound"]],
                      "acks": acks, "verifier": ver}
    res["measured"] = measured
    res["figure"] = ("scaled-down" if float(res["profile_target"]) < float(res["target"])
                     else "measured")
    res["status"] = "measured"
    res["pass"] = _all_checks_ok(res) and measured >= float(res["profile_target"])


def _seed_params(tgt: Target) -> dict[str, Any]:
    seeded: Seeded | None = tgt.__dict__.get("seeded")
    if seeded is None:
        raise NotMeasured("the store was not seeded")
    return {"seeded_names": seeded.names,
            "time_window": list(seeded.window) if seeded.window else None}


QUERY_NAMES = ("list by product", "list name prefix", "list time range",
               "list metadata field", "GET content", "proof by artifact id")


def run_artifact_count(ctx: Context, res: dict[str, Any], p: dict[str, Any]) -> None:
    lid = "artifact-count"
    count = int(p["count"])
    w, r = int(p["writers"]), int(p["readers"])
    with ctx.target(lid, seed=count) as tgt:
        seeded: Seeded = tgt.__dict__["seeded"]
        before = _artifact_count(tgt) if tgt.store else count
        run = ctx.locust(lid, "mixed", tgt, lp=p,
                         stages=shapes.constant(w + r, float(p["duration_s"])),
                         classes=["CountWriter", "CountReader"],
                         extra_params=_seed_params(tgt))
        acks = ctx.check_acks(tgt, run.acks)
        after = _artifact_count(tgt) if tgt.store else before + len(run.acks)
        ver = ctx.verify(tgt)
    _account(res, ctx, run)
    writes = analysis.latency(x for x in run.rows if x.name == "PUT artifact")
    queries = analysis.latency(x for x in run.rows if x.name in QUERY_NAMES)
    wbound = float(params_for("write-throughput", ctx.opts.profile, ctx.targets)["p99_ms"])
    qbound = float(ctx.targets["query-response"]["target"]) * 1000
    _check(res, f"store holds at least {count} artifacts while measured", before >= count,
           f"{before} before, {after} after")
    _check(res, f"write p99 under {wbound:.0f} ms at that size",
           writes["p99_ms"] is not None and writes["p99_ms"] < wbound, f"{writes['p99_ms']} ms")
    _check(res, f"query p99 under {qbound:.0f} ms at that size",
           queries["p99_ms"] is not None and queries["p99_ms"] < qbound,
           f"{queries['p99_ms']} ms")
    _check(res, "zero errors", run.summary["failures"] == 0, f"{run.summary['failures']}")
    _check(res, "zero lost writes", acks["lost"] == 0, json.dumps(acks))
    _check(res, "offline verifier accepts the store", ver["ok"], ver["detail"])
    res["lost"] = acks["lost"]
    _latency(res, writes)
    res["throughput"] = {"value": analysis.throughput(run.rows), "unit": "requests/s"}
    res["details"] = {"seeding": {"how": seeded.how, "artifacts": seeded.count,
                                  "seconds": seeded.seconds,
                                  "per_s": seeded.count / seeded.seconds
                                  if seeded.seconds else None},
                      "artifacts_before": before, "artifacts_after": after,
                      "write_latency_ms": writes, "query_latency_ms": queries,
                      "acks": acks, "verifier": ver}
    res["measured"] = after
    res["figure"] = "scaled-down" if count < int(res["target"]) else "measured"
    res["status"] = "measured"
    res["pass"] = _all_checks_ok(res) and before >= int(res["profile_target"])


def run_query_response(ctx: Context, res: dict[str, Any], p: dict[str, Any]) -> None:
    lid = "query-response"
    w, r = int(p["writers"]), int(p["readers"])
    with ctx.target(lid, seed=int(p["seed"])) as tgt:
        run = ctx.locust(lid, "queries", tgt, lp=p,
                         stages=shapes.constant(w + r, float(p["duration_s"])),
                         classes=["QueryWriter", "QueryReader"],
                         extra_params=_seed_params(tgt))
        acks = ctx.check_acks(tgt, run.acks)
        ver = ctx.verify(tgt)
    _account(res, ctx, run)
    groups = analysis.by_name(run.rows)
    per_type = {n: analysis.latency(groups.get(n, [])) for n in QUERY_NAMES}
    worst = max((v["p99_ms"] for v in per_type.values() if v["p99_ms"] is not None),
                default=None)
    target_s = float(res["target"])
    missing = [n for n, v in per_type.items() if not v["requests"]]
    _check(res, "every query type exercised", not missing, f"missing: {missing or 'none'}")
    _check(res, f"worst per-type p99 under {target_s:g} s",
           worst is not None and worst / 1000 < target_s, f"{worst} ms")
    qfail = sum(v["errors"] for v in per_type.values())
    _check(res, "zero query errors", qfail == 0, f"{qfail}")
    _check(res, "zero errors in the concurrent writes",
           run.summary["failures"] - qfail == 0, f"{run.summary['failures'] - qfail}")
    _check(res, "zero lost writes", acks["lost"] == 0, json.dumps(acks))
    _check(res, "offline verifier accepts the store", ver["ok"], ver["detail"])
    res["lost"] = acks["lost"]
    _latency(res, analysis.latency(x for x in run.rows if x.name in QUERY_NAMES))
    res["throughput"] = {"value": analysis.throughput(
        [x for x in run.rows if x.name in QUERY_NAMES]), "unit": "queries/s"}
    res["details"] = {"per_query_type_ms": per_type, "worst_p99_ms": worst,
                      "writes_ms": analysis.latency(groups.get("PUT artifact", [])),
                      "seeded_artifacts": int(p["seed"]), "acks": acks, "verifier": ver}
    res["measured"] = worst / 1000 if worst is not None else None
    res["figure"] = "scaled-down" if int(p["seed"]) < int(
        ctx.targets["artifact-count"]["target"]) else "measured"
    res["status"] = "measured" if worst is not None else "not-measured"
    res["pass"] = _all_checks_ok(res) and worst is not None


def run_audit_trail(ctx: Context, res: dict[str, Any], p: dict[str, Any]) -> None:
    lid = "audit-trail"
    sizes = [int(s) for s in p["sizes"]]
    levels: list[dict[str, Any]] = []
    runs: list[LocustRun] = []
    with ctx.target(lid) as tgt:
        if tgt.store is None:
            raise NotMeasured("the audit-trail suite needs the store (--spawn, or --store for "
                              "the target) to grow the log and verify proofs offline")
        names: dict[str, list[str]] = {pid: [] for pid in LOAD_PRODUCTS}
        have = 0
        for n in sizes:
            log_size = _log_size(tgt.store)
            if log_size < n:
                if tgt.server is None:
                    raise NotMeasured("growing the log needs --spawn")
                tgt.server.stop()
                ctx.say(f"{lid}: growing the log to {n} records")
                s = seed_library(tgt.store, n - log_size, start=have, sample=200)
                have += n - log_size
                for pid, ns in s.names.items():
                    names[pid] = (names[pid] + ns)[-1000:]
            if tgt.server is not None and not tgt.server.alive():
                tgt.server.start()
                tgt.url = tgt.server.url
            log_size = _log_size(tgt.store)
            burst = ctx.locust(lid, f"proofs-{log_size}", tgt, lp=p,
                               stages=shapes.constant(int(p["users"]), float(p["burst_s"])),
                               classes=["Prover"], extra_params={"seeded_names": names})
            runs.append(burst)
            lat = analysis.latency(burst.rows)
            hashes = burst.extra.get("lists", {}).get("proof_hashes") or [0]
            pbytes = burst.extra.get("lists", {}).get("proof_bytes") or [0]
            off = _offline_verify(tgt, names, int(p["verify_sample"]))
            ver = ctx.verify(tgt)
            levels.append({"log_size": log_size, "proof_p50_ms": lat["p50_ms"],
                           "proof_p99_ms": lat["p99_ms"], "errors": lat["errors"],
                           "requests": lat["requests"], "max_proof_hashes": max(hashes),
                           "max_proof_bytes": max(pbytes),
                           "log2_bound": math.ceil(math.log2(log_size)),
                           "offline_proofs_per_s": off["per_s"], "offline_ok": off["ok"],
                           "offline_failures": off["failures"],
                           "store_verify_records_per_s": ver.get("records_per_s"),
                           "store_verify_ok": ver["ok"]})
        retention = _retention_check(tgt.store)
    _account(res, ctx, *runs)
    for lv in levels:
        _check(res, f"proof size at n={lv['log_size']} within ceil(log2 n) = "
               f"{lv['log2_bound']} hashes", lv["max_proof_hashes"] <= lv["log2_bound"],
               f"max {lv['max_proof_hashes']} hashes, {lv['max_proof_bytes']} bytes")
        _check(res, f"offline verification at n={lv['log_size']}",
               lv["offline_ok"] and lv["store_verify_ok"],
               f"{lv['offline_proofs_per_s']} proofs/s, store replay "
               f"{lv['store_verify_records_per_s']} records/s")
    lo, hi = levels[0], levels[-1]
    if lo["proof_p50_ms"] and hi["proof_p50_ms"] and hi["log_size"] > lo["log_size"]:
        allowed = lo["proof_p50_ms"] * 2 * math.log2(hi["log_size"]) / math.log2(
            max(lo["log_size"], 2))
        _check(res, "proof latency grows no faster than log n",
               hi["proof_p50_ms"] <= max(allowed, lo["proof_p50_ms"] + 5),
               f"p50 {lo['proof_p50_ms']} ms at {lo['log_size']}, {hi['proof_p50_ms']} ms "
               f"at {hi['log_size']} (allowed {allowed:.1f} ms)")
    _check(res, "zero errors", sum(lv["errors"] for lv in levels) == 0, "")
    _check(res, "every artifact retained at least 7 years", retention["ok"],
           retention["detail"])
    fit = analysis.linear_fit([math.log2(lv["log_size"]) for lv in levels],
                              [lv["proof_p50_ms"] or 0.0 for lv in levels])
    # "Unlimited" cannot be measured: the figure is the largest log measured, and the claim
    # beyond it is extrapolated (proof size is exact: ceil(log2 n) hashes; latency is fitted).
    bound_s = _num_or(ctx.targets.get("query-response", {}).get("target"), 5.0)
    horizon = 10**12
    extrap = analysis.extrapolate(
        [(float(lv["log_size"]), lv["proof_p99_ms"]) for lv in levels],
        model="proof p99 (ms) = a + b * log2(records), least squares over the log sizes",
        x_at=float(horizon), transform="log2", bound=bound_s * 1000,
        bound_label="the query-response limit (ms)", x_label="records",
        y_label="proof p99 (ms)")
    seven_years = {}
    for label, n in (("1e9 records", 10**9), ("1e12 records", 10**12)):
        seven_years[label] = {
            "proof_hashes": math.ceil(math.log2(n)),
            "proof_hash_bytes": 32 * math.ceil(math.log2(n)),
            "proof_p50_ms": (fit["a"] + fit["b"] * math.log2(n)) if fit else None}
    extrap["claim"] = (f"unlimited audit trail: extrapolated beyond the largest log measured "
                       f"({hi['log_size']} records)")
    extrap["proof_size"] = seven_years
    _check(res, f"extrapolated proof p99 at {horizon:.0e} records under the query-response "
           f"limit ({bound_s:g} s)", extrap["status"] == "supported", extrap["reason"])
    _latency(res, analysis.latency(r for run in runs for r in run.rows))
    res["throughput"] = {"value": hi["offline_proofs_per_s"], "unit": "proofs/s verified "
                         "offline (largest log)"}
    res["details"] = {"levels": levels, "latency_fit_log2n": fit, "retention": retention,
                      "largest_log_measured": hi["log_size"], "extrapolation": extrap}
    res["measured"] = hi["log_size"]
    res["figure"] = "extrapolated"
    res["status"] = "measured"
    if extrap["status"] == "insufficient-data":
        res["reason"] = extrap["reason"]
    res["pass"] = _all_checks_ok(res)


def _num_or(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else default


def _log_size(store: Path) -> int:
    with Store.open(store, readonly=True) as s:
        return s.size()


def _offline_verify(tgt: Target, names: Mapping[str, list[str]], sample: int
                    ) -> dict[str, Any]:
    """Fetch ``sample`` proofs over HTTP, then verify them offline; proofs/s of the
    verification alone."""
    from depository.store import artifact_id
    from depository.tlog import merkle
    from depository.tlog.checkpoint import verify_proof_file

    rng = random.Random(sample)
    picks = [(pid, rng.choice(ns)) for pid, ns in names.items() if ns for _ in range(1)]
    picks = [picks[i % len(picks)] for i in range(sample)] if picks else []
    fetched: list[tuple[bytes, bytes]] = []
    failures: list[str] = []
    assert tgt.store is not None
    with Store.open(tgt.store, readonly=True) as store:
        for pid, _ in picks:
            name = rng.choice(names[pid])
            aid = artifact_id(pid, name)
            status, headers, body = request(
                tgt.url, "GET", common.ROUTES["proof"].format(product=pid, artifact_id=aid),
                headers={"Authorization": f"Bearer {tgt.tokens.products[pid]['reader']}"})
            if status != 200:
                failures.append(f"{pid}/{name}: HTTP {status}")
                continue
            art = store.get_by_id(aid)
            leaf = next(store.log_entries(art.log_index, art.log_index + 1))[1]
            fetched.append((common.proof_bytes(body, headers), merkle.leaf_hash(leaf)))
    vkey = tgt.vkey or _read_vkey(tgt.store) or ""
    t0 = time.perf_counter()
    for proof, lh in fetched:
        try:
            verify_proof_file(proof, lh, [vkey])
        except Exception as exc:
            failures.append(f"verify: {exc}")
    dt = time.perf_counter() - t0
    return {"ok": not failures and bool(fetched), "failures": failures[:10],
            "verified": len(fetched), "per_s": len(fetched) / dt if dt > 0 else None}


def _retention_check(store: Path) -> dict[str, Any]:
    import sqlite3

    conn = sqlite3.connect(f"file:{store / 'depository.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT created, retain_until FROM artifact").fetchall()
    finally:
        conn.close()
    from depository.store import parse_time

    short = [r for r in rows
             if (parse_time(r[1]) - parse_time(r[0])).days < SEVEN_YEARS_DAYS]
    return {"ok": bool(rows) and not short,
            "detail": f"{len(rows)} artifacts, {len(short)} retained under 7 years"}


SUITES: dict[str, Callable[[Context, dict[str, Any], dict[str, Any]], None]] = {
    "artifact-size": run_artifact_size,
    "total-storage": run_total_storage,
    "concurrent-writers": run_concurrent_writers,
    "write-throughput": run_write_throughput,
    "artifact-count": run_artifact_count,
    "query-response": run_query_response,
    "audit-trail": run_audit_trail,
}


# --------------------------------------------------------------------------- run
def read_token_file(path: Path, product: str) -> Tokens:
    """A token file: one bare token (used for ``product``), or JSON
    ``{"products": {P: {"writer": T, "reader": T}}, "auditor": T}``."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read the token file {path}: {exc.strerror}") from exc
    if not text:
        raise ValueError(f"the token file {path} is empty")
    if text.startswith("{"):
        try:
            data = json.loads(text)
            return Tokens(products={p: dict(v) for p, v in data["products"].items()},
                          auditor=str(data.get("auditor", "")), admin=str(data.get("admin", "")))
        except (ValueError, KeyError, AttributeError) as exc:
            raise ValueError(f"the token file {path} is not the expected JSON: {exc}") from exc
    tok = text.splitlines()[0].strip()
    return Tokens(products={product: {"writer": tok, "reader": tok}}, auditor=tok, admin=tok)


def preflight(url: str, tokens: Tokens) -> str | None:
    """None if the target answers and accepts the tokens, else why not."""
    reason = common.resolve_is_reachable(url)
    if reason:
        return f"target unreachable: {reason}"
    try:
        status, _, _ = request(url, "GET", "/health", timeout=10)
    except OSError as exc:
        return f"target unreachable: {exc}"
    if status != 200:
        return f"target {url}/health answered HTTP {status}"
    for product, toks in tokens.products.items():
        for role, tok in toks.items():
            status, _ = get_json(url, common.ROUTES["list"].format(product=product), tok,
                                 query={"limit": "1"})
            if status in (401, 403):
                return (f"the {role} token for product {product!r} was refused (HTTP "
                        f"{status}): check the token file")
    return None


def run(opts: RunOptions) -> dict[str, Any]:
    """Run the selected limits; write and return the results document."""
    started = datetime.now(UTC)
    opts.out.mkdir(parents=True, exist_ok=True)
    ctx = Context(opts)
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "tool": "depository loadtest",
        "profile": opts.profile, "complete": False, "pass": False,
        "started": format_time(started), "ended": None, "seconds": None,
        "target": {"mode": "spawn" if opts.spawn else "target",
                   "url": None if opts.spawn else opts.target, "store": str(opts.store)
                   if opts.store else None},
        "command": list(opts.argv), "environment": environment(), "limits": [],
        "not_measured": [], "error": None,
    }
    fatal: str | None = None
    if not opts.spawn:
        try:
            if not opts.target:
                raise ValueError("give --target URL (with --token-file) or --spawn")
            common.check_target(opts.target, opts.allow_hosts)
            if opts.token_file is None:
                raise ValueError("--target needs --token-file")
            ctx.target_tokens = read_token_file(opts.token_file, opts.product)
            fatal = preflight(opts.target, ctx.target_tokens)
        except (ValueError, common.TargetRefused) as exc:
            fatal = str(exc)
    for lid in opts.limits:
        params = params_for(lid, opts.profile, ctx.targets)
        res = base_result(lid, ctx, params)
        t0 = time.monotonic()
        if fatal is not None:
            res["reason"] = fatal
        else:
            ctx.say(f"{lid}: starting ({opts.profile} profile)")
            try:
                SUITES[lid](ctx, res, params)
            except NotMeasured as exc:
                res["status"], res["reason"] = "not-measured", str(exc)
            except ServerError as exc:
                res["status"], res["reason"] = "not-measured", f"server: {exc}"
            except Exception as exc:  # a bug or an unexpected answer: say so, go on
                res["status"] = "not-measured"
                res["reason"] = f"{type(exc).__name__}: {exc}"
                (opts.out / "raw").mkdir(exist_ok=True)
                with open(opts.out / "raw" / "errors.log", "a") as f:
                    f.write(f"--- {lid}\n{traceback.format_exc()}\n")
        if res["status"] != "measured":
            res["pass"] = False
            res["measured"] = None
            doc["not_measured"].append({"id": lid, "reason": res["reason"]})
        elif not res["pass"] and res["reason"] is None:
            failed = [c["name"] for c in res["checks"] if not c["ok"]]
            res["reason"] = ("failed: " + "; ".join(failed)) if failed else (
                "below the target")
        res["ended"] = format_time(datetime.now(UTC))
        res["seconds"] = round(time.monotonic() - t0, 2)
        try:
            from depository.loadtests.charts import chart

            res["chart"] = chart(res, opts.out / "charts")
            if res["chart"]:
                res["chart"] = str(Path(res["chart"]).relative_to(opts.out))
        except Exception as exc:  # charts are a convenience; never lose the figures
            res["details"]["chart_error"] = str(exc)
        doc["limits"].append(res)
        verdict = ("PASS" if res["pass"] else "FAIL") if res["status"] == "measured" else (
            "NOT MEASURED")
        ctx.say(f"{lid}: {verdict} ({res['seconds']:.0f} s)"
                + (f" - {res['reason']}" if res["reason"] else ""))
        _write(opts.out, doc, started)
    if fatal is not None:
        doc["error"] = fatal
    doc["complete"] = not doc["not_measured"] and len(doc["limits"]) == len(opts.limits)
    doc["pass"] = doc["complete"] and all(r["pass"] for r in doc["limits"])
    if not opts.keep_stores and opts.spawn:
        shutil.rmtree(ctx.stores, ignore_errors=True)
    _write(opts.out, doc, started)
    return doc


def _write(out: Path, doc: dict[str, Any], started: datetime) -> None:
    now = datetime.now(UTC)
    doc["ended"] = format_time(now)
    doc["seconds"] = round((now - started).total_seconds(), 2)
    tmp = out / (RESULTS_NAME + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, out / RESULTS_NAME)
