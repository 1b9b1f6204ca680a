"""The PostgreSQL engine against the SQLite default, same run, one process (ADR 0013).

Starts a throwaway PostgreSQL from Debian's packages (tests/_pg.py: initdb + pg_ctl as an
unprivileged user, fsync and synchronous_commit on), then, for ``--rounds`` interleaved
rounds (SQLite, PostgreSQL, SQLite, ...), on a fresh store each:

- ``put_many``: ``--bulk`` small artifacts through ``Store.put_many`` (records/s);
- ``put_async``: ``--async`` small artifacts through ``put_async`` from one thread, then
  wait all (group commit; records/s);
- ``put``: ``--seq`` durable single puts one after another (one commit each; puts/s and
  p50 latency);
- ``proof``: p50 of ``inclusion_proof`` over 1,000 indexes of the final log.

Prints medians and PostgreSQL/SQLite ratios, and the process CPU time per engine
(``resource.getrusage``; the PostgreSQL server's own CPU is not in it).

    .venv/bin/python benchmarks/pg_engine.py --rounds 3
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import _pg  # noqa: E402

from depository.store import PutItem, Store  # noqa: E402
from depository.store.config import default_config_dict  # noqa: E402


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def one_round(engine: str, server: _pg.PgServer, args: argparse.Namespace
              ) -> dict[str, float]:
    cfg = default_config_dict("bench.example/log")
    kw: dict[str, Any] = {}
    db = None
    if engine == "postgresql":
        db = _pg.PgDatabase(server, server.create_database())
        cfg["engine"] = {"type": "postgresql", "dsn": db.service_dsn}
        kw["admin_dsn"] = db.owner_dsn
    work = Path(tempfile.mkdtemp(prefix="depository-bench-"))
    out: dict[str, float] = {}
    cpu0 = _cpu()
    try:
        s = Store.init(work / "s", config=cfg, **kw)
        t = time.perf_counter()
        s.put_many([PutItem("gurukul", f"b/{i}", b"%d" % i, metadata={"i": i})
                    for i in range(args.bulk)])
        out["put_many/s"] = args.bulk / (time.perf_counter() - t)
        t = time.perf_counter()
        futs = [s.put_async("ai-avatar", f"a/{i}", b"x%d" % i) for i in range(args.async_)]
        for f in futs:
            f.result()
        out["put_async/s"] = args.async_ / (time.perf_counter() - t)
        lat = []
        for i in range(args.seq):
            t = time.perf_counter()
            s.put("enforcement", f"s/{i}", b"s%d" % i)
            lat.append(time.perf_counter() - t)
        out["put/s"] = args.seq / sum(lat)
        out["put p50 ms"] = statistics.median(lat) * 1e3
        s.checkpoint()
        n = s.size()
        plat = []
        for i in range(1000):
            t = time.perf_counter()
            s.reads.inclusion_proof(i * 7919 % n, n)
            plat.append(time.perf_counter() - t)
        out["proof p50 ms"] = statistics.median(plat) * 1e3
        s.close()
    finally:
        out["cpu s"] = _cpu() - cpu0
        shutil.rmtree(work, ignore_errors=True)
        if db is not None:
            server.drop_database(db.name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bulk", type=int, default=5000)
    ap.add_argument("--async", dest="async_", type=int, default=2000)
    ap.add_argument("--seq", type=int, default=200)
    args = ap.parse_args()
    bindir = _pg.find_bindir()
    if bindir is None:
        sys.exit("PostgreSQL is not installed (apt-get install postgresql)")
    directory = Path(tempfile.mkdtemp(prefix="depository-pg-"))
    state = _pg.start_server(directory, bindir)
    server = _pg.PgServer(directory, int(state["port"]), bindir)
    results: dict[str, list[dict[str, float]]] = {"sqlite": [], "postgresql": []}
    try:
        for r in range(args.rounds):
            for engine in ("sqlite", "postgresql"):
                res = one_round(engine, server, args)
                results[engine].append(res)
                print(f"round {r + 1} {engine:10s} " + "  ".join(
                    f"{k} {v:,.2f}" for k, v in res.items()), flush=True)
    finally:
        _pg.stop_server(state)
    print("\n| figure | SQLite (median) | PostgreSQL (median) | PostgreSQL / SQLite |")
    print("|---|---:|---:|---:|")
    for key in results["sqlite"][0]:
        a = statistics.median(x[key] for x in results["sqlite"])
        b = statistics.median(x[key] for x in results["postgresql"])
        print(f"| {key} | {a:,.2f} | {b:,.2f} | {b / a:.2f} |")


if __name__ == "__main__":
    main()
