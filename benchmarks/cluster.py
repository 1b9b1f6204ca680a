"""Several ``serve`` nodes on one PostgreSQL database (issue 17, ADR 0014): durable
writes/s and inclusion-proof latency with 1, 2 and 3 API nodes, against the SQLite
default (one ``serve`` process), in the same run, rounds interleaved.

A real PostgreSQL is started for the run from Debian's packages (tests/_pg.py: initdb +
pg_ctl as an unprivileged user, fsync and synchronous_commit on) and stopped at the end.
Each round of each configuration gets a fresh store (a new database for PostgreSQL):

sqlite-1   ``depository serve`` on a SQLite store (the embedded default)
pg-N       N ``depository serve --node-id`` processes on one PostgreSQL store: node 1 is
           the sequencer, the others forward their writes to it over the peer channel

Load: ``wrk`` (one process per node, the connections split evenly) putting 300-byte
artifacts with unique names for ``--duration`` s after a warm-up; then ``wrk`` asking
every node for inclusion proofs (``GET /v1/log/inclusion?index=i``, random ``i`` below
the checkpointed size, an auditor token) for ``--duration`` s. Figures: requests/s summed
over nodes; p50/p99 latency (the worst node's); medians over rounds.

    .venv/bin/python benchmarks/cluster.py --quick          # ~2 min
    .venv/bin/python benchmarks/cluster.py --rounds 3 --duration 8

Everything runs on this machine: the nodes, PostgreSQL and wrk share its cores, so more
nodes cannot add capacity that is not there -- read the figures with the machine's core
count and load, printed with them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _pg import SERVICE, PgServer, find_bindir, start_server, stop_server  # noqa: E402
from service import WRK_PUT, free_port, log, wait_http, wrk  # noqa: E402

from depository.store import Store  # noqa: E402
from depository.store.config import default_config_dict  # noqa: E402

PY = sys.executable
SECRET = b"benchmark-peer-secret-0123456789"
BODY = b"x" * 280

WRK_PROOF = r'''
function init(args)
  hdrs = {["Authorization"] = "Bearer " .. args[1]}
  size = tonumber(args[2])
end
function request()
  return wrk.format("GET", "/v1/log/inclusion?index=" .. math.random(1, size - 1), hdrs)
end
'''


def config(dsn: str | None) -> dict[str, Any]:
    cfg = default_config_dict("bench.example/log")
    for p in cfg["products"].values():
        p["quota"] = {"bytes": 10**12, "artifacts": 50_000_000}
    if dsn is not None:
        cfg["engine"] = {"type": "postgresql", "dsn": dsn}
    return cfg


def new_store(path: Path, server: PgServer | None) -> tuple[str, str]:
    """A store (PostgreSQL: in a fresh database); (writer token, auditor token)."""
    kw: dict[str, Any] = {}
    dsn = None
    if server is not None:
        db = server.create_database()
        dsn = server.dsn(db, user=SERVICE)
        kw["admin_dsn"] = server.dsn(db, user="depository_owner")
    s = Store.init(path, config=config(dsn), **kw)
    try:
        writer, _ = s.create_token(role="writer", product="gurukul", actor="bench")
        auditor, _ = s.create_token(role="auditor", actor="bench")
    finally:
        s.close()
    return writer, auditor


@contextlib.contextmanager
def nodes(store: Path, n: int) -> Iterator[list[tuple[int, subprocess.Popen[bytes]]]]:
    """``n`` cluster nodes (0: one plain ``serve``), each (HTTP port, process)."""
    secret = store.parent / "peer.secret"
    secret.write_bytes(SECRET)
    procs: list[tuple[int, subprocess.Popen[bytes]]] = []
    try:
        for i in range(max(1, n)):
            port = free_port()
            argv = [PY, "-m", "depository", "serve", "--store", str(store), "--port",
                    str(port), "--max-connections-per-address", "0"]
            if n:
                argv += ["--node-id", f"n{i + 1}", "--advertise", f"127.0.0.1:{free_port()}",
                         "--peer-secret", str(secret)]
            p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
            procs.append((port, p))
            wait_http(port, p)
            if i == 0:
                time.sleep(0.5)  # node 1 elects itself before the others start
        yield procs
    finally:
        for _, p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for _, p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used, its ended threads included."""
    with contextlib.suppress(OSError):
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def postgres_cpu_s() -> float:
    """CPU seconds of every ``postgres`` process (the server and its backends alive now)."""
    total = 0.0
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if (d / "comm").read_text().strip() == "postgres":
                    total += cpu_s(int(d.name))
    return total


def parallel_wrk(ports: list[int], script: str, args: list[str], connections: int,
                 seconds: float) -> dict[str, Any]:
    """One wrk per node at the same time; rates summed, the worst node's latencies."""
    from concurrent.futures import ThreadPoolExecutor

    per = max(1, connections // len(ports))
    with ThreadPoolExecutor(len(ports)) as ex:
        rs = list(ex.map(lambda p: wrk(p, script, args, connections=per, seconds=seconds,
                                       threads=1), ports))
    return {"rate": sum(r["rate"] for r in rs), "p50_ms": max(r["p50_us"] for r in rs) / 1000,
            "p99_ms": max(r["p99_us"] for r in rs) / 1000,
            "errors": sum(r["errors"] for r in rs)}


def one(kind: str, server: PgServer, tmp: Path, args: argparse.Namespace, rnd: int
        ) -> dict[str, Any]:
    d = tmp / f"{kind}-{rnd}"
    d.mkdir()
    n = 0 if kind == "sqlite-1" else int(kind.split("-")[1])
    store = d / "store"
    writer, auditor = new_store(store, None if n == 0 else server)
    try:
        with nodes(store, n) as procs:
            ports = [p for p, _ in procs]
            parallel_wrk(ports, WRK_PUT, ["warm", writer, "280"], args.connections,
                         args.warmup)
            pids = [p.pid for _, p in procs]
            c0, pg0 = [cpu_s(x) for x in pids], postgres_cpu_s()
            w = parallel_wrk(ports, WRK_PUT, [f"r{rnd}", writer, "280"], args.connections,
                             args.duration)
            c1, pg1 = [cpu_s(x) for x in pids], postgres_cpu_s()
            done = w["rate"] * args.duration
            # CPU per acknowledged write: node 1 (the sequencer), the others (followers),
            # PostgreSQL (0 for SQLite: in the node's own process).
            w["seq_cpu_us"] = (c1[0] - c0[0]) / done * 1e6
            w["follower_cpu_us"] = (sum(c1[1:]) - sum(c0[1:])) / done * 1e6
            w["pg_cpu_us"] = (pg1 - pg0) / done * 1e6 if n else 0.0
            time.sleep(1.2)  # a checkpoint covers the writes
            with Store.open(store, readonly=True) as s:
                size = s.latest_checkpoint()[0]
            p = parallel_wrk(ports, WRK_PROOF, [auditor, str(size)], args.connections,
                             args.duration)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    log(f"{kind} round {rnd}: writes {w['rate']:,.0f}/s p50 {w['p50_ms']:.1f} ms "
        f"p99 {w['p99_ms']:.1f} ms err {w['errors']}; proofs {p['rate']:,.0f}/s "
        f"p50 {p['p50_ms']:.1f} ms p99 {p['p99_ms']:.1f} ms err {p['errors']}")
    return {"writes": w, "proofs": p}


def ceiling(server: PgServer, tmp: Path, n: int) -> dict[str, dict[str, float]]:
    """The single writer's own rate, no HTTP: ``n`` small puts from 32 threads (group
    commit) and ``n`` through ``put_many`` (bulk), on SQLite and on PostgreSQL; with the
    writer process's CPU per record (PostgreSQL's server processes separately)."""
    from concurrent.futures import ThreadPoolExecutor

    from depository.store import PutItem

    out: dict[str, dict[str, float]] = {}
    for engine in ("sqlite", "postgresql"):
        d = tmp / f"ceiling-{engine}"
        d.mkdir()
        new_store(d / "store", server if engine == "postgresql" else None)
        with Store.open(d / "store") as s:
            me, pg0 = cpu_s(os.getpid()), postgres_cpu_s()
            t0 = time.perf_counter()
            with ThreadPoolExecutor(32) as ex:
                list(ex.map(lambda i: s.put("gurukul", f"g/{i}", BODY + str(i).encode(),
                                            actor="bench"), range(n)))
            dt = time.perf_counter() - t0
            me1, pg1 = cpu_s(os.getpid()), postgres_cpu_s()
            out[f"{engine} group commit"] = {
                "rate": n / dt, "cpu_us": (me1 - me) / n * 1e6,
                "pg_cpu_us": (pg1 - pg0) / n * 1e6 if engine == "postgresql" else 0.0}
            me, pg0 = me1, pg1
            t0 = time.perf_counter()
            s.put_many([PutItem("gurukul", f"b/{i}", BODY + str(i).encode())
                        for i in range(n)], actor="bench")
            dt = time.perf_counter() - t0
            me1, pg1 = cpu_s(os.getpid()), postgres_cpu_s()
            out[f"{engine} put_many"] = {
                "rate": n / dt, "cpu_us": (me1 - me) / n * 1e6,
                "pg_cpu_us": (pg1 - pg0) / n * 1e6 if engine == "postgresql" else 0.0}
        shutil.rmtree(d, ignore_errors=True)
        for k, v in out.items():
            if k.startswith(engine):
                log(f"ceiling {k}: {v['rate']:,.0f}/s, {v['cpu_us']:.0f} µs CPU/record in the "
                    f"writer process, {v['pg_cpu_us']:.0f} µs in PostgreSQL")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--connections", type=int, default=48)
    ap.add_argument("--kinds", default="sqlite-1,pg-1,pg-2,pg-3")
    ap.add_argument("--quick", action="store_true", help="1 round of 4 s")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    ap.add_argument("--ceiling", type=int, default=0, metavar="N",
                    help="only measure the single writer's own rate with N puts (no HTTP)")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 4
    bindir = find_bindir()
    if bindir is None:
        sys.exit("PostgreSQL is not installed (apt-get install postgresql)")
    kinds = args.kinds.split(",")
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="pgcluster-bench-"))
    state = start_server(Path(tempfile.mkdtemp(prefix="pgcluster-bench-pg-")), bindir)
    server = PgServer(Path(state["dir"]), int(state["port"]), bindir)
    figs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    if args.ceiling:
        try:
            res = ceiling(server, tmp, args.ceiling)
        finally:
            stop_server(state)
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"\n{os.cpu_count()} cores, load average before {load_before[0]:.1f}")
        print("| writer, in process | records/s | CPU µs/record: writer process / "
              "PostgreSQL |")
        print("|---|---|---|")
        for k, v in res.items():
            print(f"| {k} | {v['rate']:,.0f} | {v['cpu_us']:.0f} / {v['pg_cpu_us']:.0f} |")
        return
    try:
        for rnd in range(args.rounds):
            for kind in kinds:
                figs[kind].append(one(kind, server, tmp, args, rnd))
    finally:
        stop_server(state)
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    base = statistics.median(r["writes"]["rate"] for r in figs[kinds[0]])
    for kind in kinds:
        med: dict[str, Any] = {"kind": kind}
        for what in ("writes", "proofs"):
            rs = [r[what] for r in figs[kind]]
            keys = ["rate", "p50_ms", "p99_ms"]
            if what == "writes":
                keys += ["seq_cpu_us", "follower_cpu_us", "pg_cpu_us"]
            med[what] = {k: statistics.median(r[k] for r in rs) for k in keys}
            med[what]["errors"] = sum(r["errors"] for r in rs)
            med[what]["rates"] = [round(r["rate"]) for r in rs]
        med["writes_vs_" + kinds[0]] = med["writes"]["rate"] / base
        rows.append(med)
    out = {"cores": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg(),
           "rounds": args.rounds, "duration_s": args.duration,
           "connections": args.connections, "rows": rows}
    print(f"\n{os.cpu_count()} cores, load average before {load_before[0]:.1f}, after "
          f"{os.getloadavg()[0]:.1f}; {args.rounds} rounds x {args.duration:.0f} s, "
          f"{args.connections} connections split over the nodes")
    print(f"| config | writes/s (median) | vs {kinds[0]} | write p50 / p99 ms | "
          "CPU µs/write: node 1 / other nodes / PostgreSQL | proofs/s | proof p50 / p99 ms "
          "| errors |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        w, p = r["writes"], r["proofs"]
        print(f"| {r['kind']} | {w['rate']:,.0f} {w['rates']} | "
              f"{r['writes_vs_' + kinds[0]]:.2f}x | {w['p50_ms']:.1f} / {w['p99_ms']:.1f} | "
              f"{w['seq_cpu_us']:.0f} / {w['follower_cpu_us']:.0f} / {w['pg_cpu_us']:.0f} | "
              f"{p['rate']:,.0f} {p['rates']} | {p['p50_ms']:.1f} / {p['p99_ms']:.1f} | "
              f"{w['errors'] + p['errors']} |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
