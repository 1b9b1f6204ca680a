"""``depository migrate`` / ``export`` throughput, against same-run baselines.

Builds a store of ``--records`` small artifacts (bulk ingest), then times, interleaved
over ``--rounds`` rounds (medians; wall and CPU time of this process):

migrate     SQLite -> SQLite ``migrate`` (snapshot copy, read back, offline replay).
floor       the same-run floor of what a migrate must do: SQLite's backup API copy of the
            database plus one offline replay (``store_result``) of the copy.
pg          with ``--pg-dsn`` and ``--pg-admin-dsn`` (an empty database; dropped schema
            between rounds needs an owner): SQLite -> PostgreSQL and back.

    .venv/bin/python benchmarks/migrate.py --records 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from depository.store import PutItem, Store
from depository.store.migrate import migrate
from depository.verifier.store import store_result


def _build(path: Path, n: int) -> str:
    s = Store.init(path, origin="bench.example/migrate")
    try:
        for start in range(0, n, 5000):
            s.put_many([PutItem("enforcement", f"d/{i}.json", b'{"n": %d}' % i,
                                metadata={"n": i}) for i in range(start, min(n, start + 5000))])
        s.checkpoint()
        return s.verifier_key
    finally:
        s.close()


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg-dsn", help="service role DSN of an empty database")
    ap.add_argument("--pg-admin-dsn", help="owner role DSN of the same database")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    try:
        src = base / "src"
        t0 = time.perf_counter()
        vkey = _build(src, args.records)
        size = sum(1 for _ in sqlite3.connect(src / "depository.db").execute(
            "SELECT idx FROM log"))
        print(f"store: {size} records built in {time.perf_counter() - t0:.1f} s")
        res: dict[str, list[tuple[float, float]]] = {"migrate": [], "floor": [], "pg": []}
        for r in range(args.rounds):
            dst = base / f"m{r}"
            res["migrate"].append(_timed(lambda d=dst: migrate(src, d, trusted_keys=[vkey])))

            def floor(r: int = r) -> None:
                d = base / f"f{r}"
                shutil.copytree(src, d, ignore=shutil.ignore_patterns("depository.db*"))
                a = sqlite3.connect(f"file:{src / 'depository.db'}?mode=ro", uri=True)
                b = sqlite3.connect(d / "depository.db")
                a.backup(b)
                a.close()
                b.close()
                assert store_result(d, [vkey]).ok

            res["floor"].append(_timed(floor))
            if args.pg_dsn and args.pg_admin_dsn:
                import psycopg

                with psycopg.connect(args.pg_admin_dsn, autocommit=True) as c:
                    c.execute("DROP SCHEMA IF EXISTS depository CASCADE")
                res["pg"].append(_timed(lambda r=r: (
                    migrate(src, base / f"p{r}", to_engine="postgresql", dsn=args.pg_dsn,
                            admin_dsn=args.pg_admin_dsn, trusted_keys=[vkey]),
                    migrate(base / f"p{r}", base / f"b{r}", trusted_keys=[vkey]))))
        for name, runs in res.items():
            if not runs:
                continue
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            print(f"{name:8} median wall {wall:6.2f} s  cpu {cpu:6.2f} s  "
                  f"{size / wall:9.0f} records/s (wall)")
        m = statistics.median(w for w, _ in res["migrate"])
        f = statistics.median(w for w, _ in res["floor"])
        print(f"migrate / floor (wall): {m / f:.2f}x")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
