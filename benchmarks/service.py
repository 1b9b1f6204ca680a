"""HTTP service benchmarks: durable writes, large uploads, queries under write load.

Every figure comes from real servers (uvicorn with uvloop + httptools, one process) on
this machine's loopback, driven by ``wrk`` (``apt-get install -y wrk``), the same load
generator and connection count for ours and the baseline. Scratch stores live under
/tmp and are deleted afterwards, except the 1M-artifact query store (``--query-store``),
which is kept and reused because it takes minutes to build.

    .venv/bin/python benchmarks/service.py --quick                 # smoke run, ~1 min
    .venv/bin/python benchmarks/service.py --only writes --duration 15 --rounds 3
    .venv/bin/python benchmarks/service.py --only writes --workers 1,2
    .venv/bin/python benchmarks/service.py --only large --large-sizes 500MB,5GB
    .venv/bin/python benchmarks/service.py --only queries --query-artifacts 1000000

Sub-benchmarks (``--only``, comma separated):

writes   durable single-artifact PUTs (300-byte bodies, unique names, a small metadata
         header) for ``--duration`` s after a warm-up, at each of ``--connections``
         (100,1000). Baseline: a bare Starlette + uvicorn endpoint doing one SQLite INSERT
         per request (WAL, synchronous=FULL: as durable as ours), and, for reference, the
         same with synchronous=NORMAL (no fsync per request). Figures: requests/s, p50,
         p99, errors (connect/read/write/timeout and non-2xx). ``--workers 1,2`` runs
         ours once per ``serve --workers`` count (1 = one process), each against the
         same run's baselines. ``--asgi-path`` adds the one-process server with the
         protocol's small-PUT path off (``DEPOSITORY_SMALL_PUT=0``): every upload through
         the ASGI route, same run, same rounds (each round runs every server in turn).
large    one upload of each ``--large-sizes`` (500MB,5GB) with Content-Length from a raw
         socket client; MB/s (10^6 B/s) from first byte sent to the receipt, and the
         server's RSS growth (peak VmRSS sampled every 20 ms, minus VmRSS before), and
         the server's CPU seconds per GB (whole process, and its event loop thread).
         Baseline: ``Store.put`` of the same size from an in-memory stream, no HTTP (the
         store's own ingest: SHA-256, write, fsync, rename).
queries  builds (or reuses) a store of ``--query-artifacts`` artifacts in one product
         through the store library, then, while wrk keeps ``--write-connections`` PUT
         connections busy, runs each query type for ``--duration`` s with
         ``--query-connections`` connections: metadata by name, a page of the product's
         listing at a random cursor, a page of a prefix listing, a page of a
         metadata-filter listing, a page of a time-window listing, content by name, an
         inclusion proof by index. Figures: p50, p99, requests/s, errors.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from depository.store import PutItem, Store, artifact_id  # noqa: E402
from depository.store._schema import SCHEMA_VERSION  # noqa: E402
from depository.store.config import default_config_dict  # noqa: E402

PY = sys.executable
GB = 1000**3
MB = 1000**2

BARE_APP = '''
import sqlite3, os
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

conn = sqlite3.connect(os.environ["BARE_DB"], isolation_level=None, check_same_thread=False)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=" + os.environ.get("BARE_SYNC", "FULL"))
conn.execute("CREATE TABLE IF NOT EXISTS a (name TEXT PRIMARY KEY, meta TEXT, body BLOB)")

async def put(request):
    body = await request.body()
    name = request.path_params["name"]
    conn.execute("INSERT INTO a VALUES (?, ?, ?)",
                 (name, request.headers.get("depository-metadata"), body))
    return JSONResponse({"name": name, "size": len(body)}, status_code=201)

app = Starlette(routes=[Route("/v1/products/{product}/artifacts/{name:path}", put,
                              methods=["PUT"])])
'''

WRK_PUT = r'''
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  n = 0
  prefix = args[1]
  hdrs = {["Authorization"] = "Bearer " .. args[2],
          ["Content-Type"] = "application/octet-stream",
          ["Depository-Metadata"] = '{"source":"bench","k":7}'}
  filler = string.rep("x", tonumber(args[3]))
end
function request()
  n = n + 1
  local name = prefix .. "/" .. tid .. "/" .. n
  return wrk.format("PUT", "/v1/products/gurukul/artifacts/" .. name, hdrs, name .. filler)
end
'''

WRK_GET = r'''
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  kind = args[1]
  hdrs = {["Authorization"] = "Bearer " .. args[2]}
  total = tonumber(args[3])
  since = args[4]
  math.randomseed(os.time() + tid * 7919)
end
function request()
  local i = math.random(0, total - 1)
  local name = string.format("q/%07d", i)
  local path
  if kind == "metadata" then
    path = "/v1/products/gurukul/metadata/" .. name
  elseif kind == "content" then
    path = "/v1/products/gurukul/artifacts/" .. name
  elseif kind == "prefix" then
    path = "/v1/products/gurukul/artifacts?limit=100&prefix=" .. string.sub(name, 1, 7)
  elseif kind == "meta" then
    path = "/v1/products/gurukul/artifacts?limit=100&meta=k%3D" .. (i % 1000)
  elseif kind == "page" then
    path = "/v1/products/gurukul/artifacts?limit=100&cursor=" .. i
  elseif kind == "window" then
    path = "/v1/products/gurukul/artifacts?limit=100&since=" .. since
  else
    path = "/v1/log/inclusion?index=" .. math.random(1, total)
  end
  return wrk.format("GET", path, hdrs)
end
'''

WRK_DONE = r'''
function done(summary, latency, requests)
  io.write(string.format(
    'JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
'''


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited during start")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError("server did not start")


class Proc:
    def __init__(self, argv: Sequence[str], port: int, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.port = port
        self.p = subprocess.Popen(list(argv), env={**os.environ, **(env or {})}, cwd=cwd,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(port, self.p)

    def rss(self) -> int:
        for line in Path(f"/proc/{self.p.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu(self) -> tuple[float, float]:
        """CPU seconds (user + system) of the main thread (the event loop) and of the
        whole process, threads that have ended included."""
        ticks = os.sysconf("SC_CLK_TCK")

        def read(path: str) -> float:
            f = Path(path).read_text().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / ticks

        pid = self.p.pid
        return read(f"/proc/{pid}/task/{pid}/stat"), read(f"/proc/{pid}/stat")

    def children_done(self) -> bool:
        """Whether the server is this one process (no ``--workers`` children)."""
        return not Path(f"/proc/{self.p.pid}/task/{self.p.pid}/children").read_text().strip()

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(120)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def ours(store: Path, *extra: str, env: dict[str, str] | None = None) -> Proc:
    port = free_port()
    return Proc([PY, "-c", "from depository.cli._serve import serve; serve()", "--store",
                 str(store), "--port", str(port),
                 # wrk opens up to 1000 connections from one address (the default cap: 256)
                 "--max-connections-per-address", "0", *extra], port, env=env)


def bare(workdir: Path, sync: str) -> Proc:
    (workdir / "bare_app.py").write_text(BARE_APP)
    port = free_port()
    return Proc([PY, "-m", "uvicorn", "bare_app:app", "--port", str(port), "--loop", "uvloop",
                 "--http", "httptools", "--no-access-log", "--log-level", "warning",
                 "--backlog", "4096"], port,
                env={"BARE_DB": str(workdir / f"bare-{sync}-{port}.db"), "BARE_SYNC": sync},
                cwd=workdir)


def wrk(port: int, script: str, args: Sequence[str], *, connections: int, seconds: float,
        threads: int = 2) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script + WRK_DONE)
        lua = f.name
    try:
        out = subprocess.run(
            ["wrk", "-t", str(min(threads, connections)), "-c", str(connections),
             "-d", f"{max(1, round(seconds))}s", "--timeout", "10s", "-s", lua,
             f"http://127.0.0.1:{port}", "--", *args],
            capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(lua)
    line = next(x for x in out.splitlines() if x.startswith("JSON "))
    r: dict[str, Any] = json.loads(line[5:])
    r["rate"] = r["requests"] / (r["duration_us"] / 1e6)
    r["errors"] = sum(r[k] for k in ("connect", "read", "write", "status", "timeout"))
    return r


def new_store(path: Path, **over: Any) -> tuple[Path, str]:
    cfg = default_config_dict("bench.example/log")
    for p in cfg["products"].values():
        p["quota"] = {"bytes": 50 * 1000 * GB, "artifacts": 50_000_000}
    cfg.update(over)
    s = Store.init(path, config=cfg)
    try:
        secret, _ = s.create_token(role="writer", product="gurukul", actor="bench")
        reader, _ = s.create_token(role="reader", product="gurukul", actor="bench")
    finally:
        s.close()
    (path / "bench-reader.token").write_text(reader)
    return path, secret


# ------------------------------------------------------------------------ writes
def _ours_kind(workers: int) -> str:
    return "ours" if workers == 1 else f"ours-w{workers}"


def bench_writes(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    rows = []
    ours_kinds = {_ours_kind(n): n for n in args.workers}
    if args.asgi_path:  # the same one-process server with the small-PUT path off
        ours_kinds["ours-asgi"] = 1
    for conns in args.connections:
        figs: dict[str, list[dict[str, Any]]] = {
            **{k: [] for k in ours_kinds}, "bare-full": [], "bare-normal": []}
        for rnd in range(args.rounds):
            for kind in figs:
                d = tmp / f"w-{kind}-{conns}-{rnd}"
                d.mkdir()
                if kind in ours_kinds:
                    store, token = new_store(d / "store")
                    n = ours_kinds[kind]
                    srv = ours(store, *(("--workers", str(n)) if n > 1 else ()),
                               env={"DEPOSITORY_SMALL_PUT": "0"} if kind == "ours-asgi"
                               else None)
                else:
                    token = "none"
                    srv = bare(d, "FULL" if kind == "bare-full" else "NORMAL")
                try:
                    wrk(srv.port, WRK_PUT, ["warm", token, "280"], connections=conns,
                        seconds=args.warmup)
                    cpu0 = srv.cpu() if srv.children_done() else None
                    r = wrk(srv.port, WRK_PUT, [f"r{rnd}", token, "280"], connections=conns,
                            seconds=args.duration)
                    if cpu0 is not None:  # one process: its CPU per answered request
                        cpu1 = srv.cpu()
                        n = max(1, r["requests"])
                        r["cpu_us"] = (cpu1[1] - cpu0[1]) / n * 1e6
                        r["loop_cpu_us"] = (cpu1[0] - cpu0[0]) / n * 1e6
                finally:
                    srv.stop()
                    shutil.rmtree(d, ignore_errors=True)
                figs[kind].append(r)
                cpu = (f", server CPU {r['cpu_us']:.0f} µs/write (event loop thread "
                       f"{r['loop_cpu_us']:.0f})") if "cpu_us" in r else ""
                log(f"writes c={conns} round {rnd} {kind}: {r['rate']:,.0f}/s "
                    f"p50 {r['p50_us'] / 1000:.1f} ms p99 {r['p99_us'] / 1000:.1f} ms "
                    f"errors {r['errors']}{cpu}")
        med = {k: _median(v) for k, v in figs.items()}
        row: dict[str, Any] = {"connections": conns, "ours_kinds": list(ours_kinds), **med}
        for k in ours_kinds:
            sfx = "" if k == "ours" else f"_{k}"
            row[f"ratio_vs_bare_full{sfx}"] = med[k]["rate"] / med["bare-full"]["rate"]
            row[f"ratio_vs_bare_normal{sfx}"] = med[k]["rate"] / med["bare-normal"]["rate"]
        if "ours-asgi" in med and "ours" in med:
            row["ratio_small_put_vs_asgi"] = med["ours"]["rate"] / med["ours-asgi"]["rate"]
        rows.append(row)
    return rows


def _median(rs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"rate": statistics.median(r["rate"] for r in rs),
            "p50_ms": statistics.median(r["p50_us"] for r in rs) / 1000,
            "p99_ms": statistics.median(r["p99_us"] for r in rs) / 1000,
            "errors": sum(r["errors"] for r in rs), "rounds": len(rs),
            "rates": [round(r["rate"]) for r in rs],
            "cpu_us": statistics.median(r["cpu_us"] for r in rs)
            if all("cpu_us" in r for r in rs) else None,
            "loop_cpu_us": statistics.median(r["loop_cpu_us"] for r in rs)
            if all("loop_cpu_us" in r for r in rs) else None}


# ------------------------------------------------------------------------- large
def raw_upload(port: int, token: str, name: str, size: int) -> tuple[float, bytes]:
    block = bytearray(os.urandom(4 * 1024 * 1024))
    block[:len(name)] = name.encode()
    view = memoryview(block)
    head = (f"PUT /v1/products/gurukul/artifacts/{name} HTTP/1.1\r\nHost: b\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {size}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.perf_counter()
        s.sendall(head)
        sent = 0
        while sent < size:
            n = min(len(view), size - sent)
            s.sendall(view[:n])
            sent += n
        resp = b""
        while b"\r\n\r\n" not in resp or not resp.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            resp += chunk
        return time.perf_counter() - t0, resp


def bench_large(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    rows = []
    biggest = max(args.large_sizes)
    store, token = new_store(tmp / "large", max_artifact_size=biggest + MB)
    srv = ours(store)
    try:
        raw_upload(srv.port, token, "warmup", 8 * MB)  # thread pool, first blob dir
        for size in args.large_sizes:
            base = srv.rss()
            peak = [base]
            stop = threading.Event()

            def sample(stop: threading.Event = stop, peak: list[int] = peak) -> None:
                while not stop.is_set():
                    peak[0] = max(peak[0], srv.rss())
                    time.sleep(0.02)

            th = threading.Thread(target=sample, daemon=True)
            th.start()
            cpu0 = srv.cpu()
            secs, resp = raw_upload(srv.port, token, f"large-{size}", size)
            cpu1 = srv.cpu()
            stop.set()
            th.join()
            ok = resp.startswith(b"HTTP/1.1 201")
            row = {"bytes": size, "seconds": secs, "mb_per_s": size / MB / secs,
                   "rss_before_mb": base / 2**20, "rss_growth_mb": (peak[0] - base) / 2**20,
                   "loop_cpu_s_per_gb": (cpu1[0] - cpu0[0]) / (size / GB),
                   "server_cpu_s_per_gb": (cpu1[1] - cpu0[1]) / (size / GB),
                   "status": resp.split(b"\r\n", 1)[0].decode(errors="replace"), "ok": ok}
            rows.append(row)
            log(f"large {size / MB:,.0f} MB: {row['mb_per_s']:,.0f} MB/s, RSS +"
                f"{row['rss_growth_mb']:.1f} MiB, server CPU "
                f"{row['server_cpu_s_per_gb']:.2f} s/GB (event loop thread "
                f"{row['loop_cpu_s_per_gb']:.2f}), {row['status']}")
    finally:
        srv.stop()
    # Baseline, same run: the store's own ingest (Store.put from a stream, no HTTP).
    with Store.open(store) as s:
        for row in rows:
            t0 = time.perf_counter()
            s.put("gurukul", f"direct-{row['bytes']}", _Pattern(row["bytes"]), actor="bench")
            secs = time.perf_counter() - t0
            row["store_put_mb_per_s"] = row["bytes"] / MB / secs
            log(f"large {row['bytes'] / MB:,.0f} MB through Store.put directly: "
                f"{row['store_put_mb_per_s']:,.0f} MB/s")
    shutil.rmtree(tmp / "large", ignore_errors=True)
    return rows


class _Pattern(io.RawIOBase):
    """``size`` bytes of a repeated random block, read like a file."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.left = size
        self.block = os.urandom(1 << 20) + str(size).encode()

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        k = min(self.left, len(self.block) if n is None or n < 0 else min(n, len(self.block)))
        self.left -= k
        return self.block[:k]


# ----------------------------------------------------------------------- queries
def build_query_store(path: Path, n: int) -> tuple[Path, str]:
    # The flag names the schema too: a store built by an older schema is rebuilt.
    done_flag = path / f"bench-built-v{SCHEMA_VERSION}"
    if done_flag.exists() and int(done_flag.read_text()) == n:
        tok = (path / "bench-writer.token").read_text()
        return path, tok
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    _, token = new_store(path, checkpoint={"every_entries": 100_000, "every_ms": 5000})
    (path / "bench-writer.token").write_text(token)
    t0 = time.monotonic()
    with Store.open(path) as s:
        items = (PutItem("gurukul", f"q/{i:07d}", f"body {i}".encode(),
                         metadata={"k": i % 1000, "batch": i // 10_000}) for i in range(n))
        for i, r in enumerate(s.iter_put_many(items, actor="bench"), 1):
            if isinstance(r, Exception):
                raise SystemExit(f"query store build failed at item {i}: {r}")
            if i % 100_000 == 0:
                log(f"query store: {i:,} artifacts, {i / (time.monotonic() - t0):,.0f}/s")
        s.checkpoint()
    done_flag.write_text(str(n))
    log(f"query store built: {n:,} in {time.monotonic() - t0:,.0f} s")
    return path, token


def bench_queries(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    store, token = build_query_store(Path(args.query_store), args.query_artifacts)
    reader = (store / "bench-reader.token").read_text()
    with Store.open(store, readonly=True) as s:
        mid = s.get_by_id(artifact_id("gurukul", f"q/{args.query_artifacts // 2:07d}"))
        since = mid.created.replace(":", "%3A")
    srv = ours(store)
    kinds = ("metadata", "page", "prefix", "meta", "window", "content", "proof")
    rows: dict[str, Any] = {}
    idle: dict[str, Any] = {}
    try:
        for kind in kinds:  # first without writes: the store's own query cost
            r = wrk(srv.port, WRK_GET, [kind, reader, str(args.query_artifacts), since],
                    connections=args.query_connections, seconds=args.duration / 2, threads=1)
            idle[kind] = {"rate": r["rate"], "p50_ms": r["p50_us"] / 1000,
                          "p99_ms": r["p99_us"] / 1000, "errors": r["errors"]}
            log(f"query {kind} (no writes): {r['rate']:,.0f}/s p50 {r['p50_us'] / 1000:.1f} "
                f"ms p99 {r['p99_us'] / 1000:.1f} ms errors {r['errors']}")
        result: dict[str, Any] = {}

        def writer() -> None:
            result["w"] = wrk(srv.port, WRK_PUT, [f"qw{time.time_ns()}", token, "280"],
                              connections=args.write_connections,
                              seconds=args.duration * len(kinds) + 4, threads=1)

        wt = threading.Thread(target=writer)
        wt.start()
        time.sleep(2)
        for kind in kinds:
            r = wrk(srv.port, WRK_GET, [kind, reader, str(args.query_artifacts), since],
                    connections=args.query_connections, seconds=args.duration, threads=1)
            rows[kind] = {"rate": r["rate"], "p50_ms": r["p50_us"] / 1000,
                          "p99_ms": r["p99_us"] / 1000, "errors": r["errors"],
                          "idle": idle[kind]}
            log(f"query {kind}: {r['rate']:,.0f}/s p50 {r['p50_us'] / 1000:.1f} ms "
                f"p99 {r['p99_us'] / 1000:.1f} ms errors {r['errors']}")
        wt.join()
        w = result["w"]
        rows["concurrent-writes"] = {"rate": w["rate"], "p50_ms": w["p50_us"] / 1000,
                                     "p99_ms": w["p99_us"] / 1000, "errors": w["errors"]}
        log(f"concurrent writes: {w['rate']:,.0f}/s p99 {w['p99_us'] / 1000:.1f} ms")
    finally:
        srv.stop()
    return {"artifacts": args.query_artifacts, "rows": rows}


# ------------------------------------------------------------------------- report
def _size(text: str) -> int:
    t = text.strip().upper()
    for unit, mult in (("GB", GB), ("MB", MB), ("KB", 1000)):
        if t.endswith(unit):
            return int(float(t[:-2]) * mult)
    return int(t)


def report(res: dict[str, Any], args: argparse.Namespace) -> str:
    out = ["| benchmark | figure | depository | baseline | baseline value | ratio | target |",
           "|---|---|---:|---|---:|---:|---|"]
    for r in res.get("writes", []):
        c = r["connections"]
        bf, bn = r["bare-full"], r["bare-normal"]
        tgt = "≥ 0.6× and ≥ 5,000/s" + (", p99 < 100 ms" if c >= 1000 else "")
        for k in r.get("ours_kinds", ["ours"]):
            o = r[k]
            sfx = "" if k == "ours" else f"_{k}"
            who = "writes" if k == "ours" else "writes, ASGI path (DEPOSITORY_SMALL_PUT=0)" \
                if k == "ours-asgi" else f"writes --workers {k.removeprefix('ours-w')}"
            out.append(f"| {who} c={c} | writes/s (median of {o['rounds']}) | "
                       f"{o['rate']:,.0f} | bare Starlette + 1 INSERT, synchronous=FULL | "
                       f"{bf['rate']:,.0f} | {r['ratio_vs_bare_full' + sfx]:.2f}× | {tgt} |")
            out.append(f"| {who} c={c} | writes/s | {o['rate']:,.0f} | same, "
                       f"synchronous=NORMAL (no fsync) | {bn['rate']:,.0f} | "
                       f"{r['ratio_vs_bare_normal' + sfx]:.2f}× | |")
            out.append(f"| {who} c={c} | p50 / p99 ms | {o['p50_ms']:.1f} / "
                       f"{o['p99_ms']:.1f} | bare FULL | {bf['p50_ms']:.1f} / "
                       f"{bf['p99_ms']:.1f} | | |")
            out.append(f"| {who} c={c} | errors | {o['errors']} | bare FULL | "
                       f"{bf['errors']} | | 0 |")
            if o.get("cpu_us") is not None:
                out.append(f"| {who} c={c} | server CPU µs per write (event loop thread) | "
                           f"{o['cpu_us']:.0f} ({o['loop_cpu_us']:.0f}) | bare FULL | "
                           f"{bf['cpu_us'] or 0:.0f} ({bf['loop_cpu_us'] or 0:.0f}) | | |")
        if "ratio_small_put_vs_asgi" in r:
            a = r["ours-asgi"]
            out.append(f"| writes c={c}, small-PUT path vs ASGI path | writes/s | "
                       f"{r['ours']['rate']:,.0f} | same server, DEPOSITORY_SMALL_PUT=0 | "
                       f"{a['rate']:,.0f} | {r['ratio_small_put_vs_asgi']:.2f}× | |")
    for r in res.get("large", []):
        base = r.get("store_put_mb_per_s")
        out.append(f"| upload {r['bytes'] / MB:,.0f} MB | MB/s; RSS growth; server CPU s/GB "
                   f"(loop) | {r['mb_per_s']:,.0f}; +{r['rss_growth_mb']:.1f} MiB; "
                   f"{r['server_cpu_s_per_gb']:.2f} ({r['loop_cpu_s_per_gb']:.2f}) | "
                   f"Store.put of the same size, no HTTP | {base or 0:,.0f} MB/s | "
                   f"{(r['mb_per_s'] / base) if base else 0:.2f}× | ≥ 300 MB/s; < 64 MiB |")
    q = res.get("queries")
    if q:
        for kind, r in q["rows"].items():
            i = r.get("idle")
            base = (f"same, no writes | {i['p50_ms']:.1f} / {i['p99_ms']:.1f}; "
                    f"{i['rate']:,.0f}") if i else " | "
            out.append(f"| {q['artifacts']:,} artifacts: {kind} | p50 / p99 ms; req/s | "
                       f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}; {r['rate']:,.0f} | {base} | | "
                       + ("p99 < 50 ms |" if kind != "concurrent-writes" else "|"))
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="writes,large,queries")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--connections", default="100,1000")
    ap.add_argument("--workers", default="1",
                    help="writes: run ours with each of these `serve --workers` counts "
                         "(e.g. 1,2), all against the same run's bare baselines")
    ap.add_argument("--asgi-path", action="store_true",
                    help="writes: also run ours with the small-PUT path off "
                         "(DEPOSITORY_SMALL_PUT=0: every upload through the ASGI route)")
    ap.add_argument("--large-sizes", default="500MB,5GB")
    ap.add_argument("--query-artifacts", type=int, default=1_000_000)
    ap.add_argument("--query-store", default="/tmp/depository-bench-service-query")
    ap.add_argument("--query-connections", type=int, default=8)
    ap.add_argument("--write-connections", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="small sizes, short runs")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    if args.quick:
        args.duration, args.warmup = 3.0, 1.0
        args.large_sizes = "50MB"
        args.query_artifacts = 20_000
        args.query_store = "/tmp/depository-bench-service-query-quick"
    args.connections = [int(x) for x in str(args.connections).split(",")]
    args.workers = [int(x) for x in str(args.workers).split(",")]
    args.large_sizes = [_size(x) for x in str(args.large_sizes).split(",")]
    only = set(args.only.split(","))
    t0 = time.monotonic()
    res: dict[str, Any] = {"machine": {
        "python": platform.python_version(), "nproc": os.cpu_count(),
        "platform": platform.platform(), "loadavg_before": os.getloadavg()}}
    with tempfile.TemporaryDirectory(prefix="depository-bench-service-") as d:
        tmp = Path(d)
        if "writes" in only:
            res["writes"] = bench_writes(args, tmp)
        if "large" in only:
            res["large"] = bench_large(args, tmp)
        if "queries" in only:
            res["queries"] = bench_queries(args, tmp)
    res["machine"]["loadavg_after"] = os.getloadavg()
    res["seconds"] = time.monotonic() - t0
    print(f"machine: {json.dumps(res['machine'])}")
    print(f"command: {' '.join(sys.argv)}")
    print(f"total {res['seconds']:.0f} s\n")
    print(report(res, args))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
