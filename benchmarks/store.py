"""WORM store benchmarks: group commit, bulk ingest, proofs, offline verify, queries.

Every sub-benchmark runs against its baseline in the same process and the same run, on
a scratch directory under /tmp that is deleted afterwards (unless ``--keep``). Figures
are medians over ``--rounds`` rounds where a round is cheap enough to repeat.

    .venv/bin/python benchmarks/store.py --quick                  # smoke run, < 60 s
    .venv/bin/python benchmarks/store.py --only group-commit,bulk-ingest
    .venv/bin/python benchmarks/store.py --only proofs,verify,query --records 10000000

Sub-benchmarks (``--only``, comma separated):

group-commit  durable single-record ``Store.put`` from ``--threads`` (64) threads for
              ``--duration`` s; writes/s, p50/p99 latency. Baselines: plain sqlite3 (WAL,
              synchronous=FULL, one INSERT+COMMIT per record, one connection shared by the
              same threads behind a lock) and pymerkle ``SqliteTree.append_entry``.
bulk-ingest   ``--bulk-records`` small artifacts through ``put_async`` from 4 threads
              (bounded window of outstanding futures), then wait all; records/s.
              Baselines: pymerkle ``SqliteTree.append_entries`` (its bulk API), and a
              plain sqlite3 ``executemany`` of the same rows (the storage floor).
proofs        builds a store of ``--records`` entries through the library (bulk ingest,
              reported as ``build``), then p50/p99 of ``inclusion_proof`` and
              ``consistency_proof`` for 10k random indexes/sizes. Baseline: pymerkle
              ``prove_inclusion``/``prove_consistency`` over a SqliteTree holding the same
              leaves (its size is capped by ``--pymerkle-proof-size``, time-boxed).
verify        ``python -m depository.verifier store DIR --key KEY --jobs 1|2`` over that
              store; records/s (wall, and per CPU-second of the verifier and its workers).
              Baseline: the physical floor, one SHA-256 per leaf plus one per interior
              node, measured in-process (leaves read beforehand), same run. Engines: the
              default one (native when built, ADR 0012), and with ``--verify-python`` also
              ``DEPOSITORY_NATIVE=0`` (the pure-Python specification), and with
              ``--verify-baseline TREE`` the verifier of another source tree (e.g. a
              worktree of main, extension built in place); runs interleaved.
              Issue 13's targets: >= 100,000 records/s with one job, jobs=2 >= 1.7x jobs=1.
query         p99 of ``Store.ls(product, since, until, limit=100)`` and
              ``Store.ls(product, meta={"k": v}, limit=100)`` over 1,000 random queries.
              Baseline: the same filter run as plain SQL along the best index.

pymerkle (GPL-3.0) is a benchmark-only tool: ``.venv/bin/pip install pymerkle``. It is
never a dependency of the package; without it its rows read "not installed".
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from depository.store import PutItem, Store, format_time, parse_time  # noqa: E402
from depository.store.config import default_config_dict  # noqa: E402
from depository.tlog import merkle  # noqa: E402

ALL = ("group-commit", "bulk-ingest", "proofs", "verify", "query")
BIG = ("proofs", "verify", "query")
PRODUCTS = ("ai-assistant", "ai-avatar", "gurukul", "enforcement")
META_VALUES = 1000  # metadata key "k" takes v0..v999: each value matches ~N/1000 artifacts
BODY_SIZE = 300

TARGETS = {
    "group-commit": 20_000.0,  # writes/s
    "bulk-ingest": 100_000.0,  # records/s
    "proofs": 1.0,  # ms, p99
    "verify-1": 500_000.0,  # records/s (issue 3)
    "verify-2": 900_000.0,
    "verify-1-issue13": 100_000.0,  # records/s, one job
    "verify-scaling-issue13": 1.7,  # jobs=2 over jobs=1, same engine, same run
    "query": 20.0,  # ms, p99
}


# ----------------------------------------------------------------------------- helpers
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def bench_config(every_entries: int) -> dict[str, Any]:
    cfg = default_config_dict("bench.example/log")
    for p in cfg["products"].values():
        p["quota"] = {"bytes": 10**15, "artifacts": 10**9}
    cfg["checkpoint"] = {"every_entries": every_entries, "every_ms": 1000}
    return cfg


def body_for(tag: str, i: int) -> bytes:
    """A distinct, few-hundred-byte artifact body."""
    head = f"{tag}:{i}:".encode()
    return head + b"x" * (BODY_SIZE - len(head))


def meta_for(i: int) -> dict[str, str]:
    return {"k": f"v{i % META_VALUES}", "shard": f"s{i % 7}"}


@dataclass
class Row:
    """One line of the results table."""

    bench: str
    metric: str
    value: float | None
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    higher_is_better: bool = True
    target: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.baseline_value in (None, 0):
            return None
        assert self.baseline_value is not None
        if self.higher_is_better:
            return self.value / self.baseline_value
        return self.baseline_value / self.value if self.value else None

    @property
    def met(self) -> str:
        if self.target is None:
            return ""
        if self.value is None:
            return "pending"
        ok = self.value >= self.target if self.higher_is_better else self.value <= self.target
        return "met" if ok else "MISSED"

    def to_json(self) -> dict[str, Any]:
        return {
            "bench": self.bench, "metric": self.metric, "value": self.value,
            "unit": self.unit, "baseline": self.baseline,
            "baseline_value": self.baseline_value, "ratio": self.ratio,
            "higher_is_better": self.higher_is_better, "target": self.target,
            "target_met": self.met, "note": self.note, **self.extra,
        }


def fmt(v: float | None) -> str:
    if v is None:
        return "—"
    if v != v:  # NaN
        return "n/a"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 0.1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def markdown(rows: Sequence[Row]) -> str:
    out = [
        "| benchmark | metric | depository | baseline | baseline value | ratio | target | |",
        "|---|---|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        ratio = r.ratio
        ratio_s = "" if ratio is None else f"{ratio:.2f}×"
        tgt = ""
        if r.target is not None:
            tgt = ("≥ " if r.higher_is_better else "≤ ") + fmt(r.target)
        out.append(
            f"| {r.bench} | {r.metric} ({r.unit}) | {fmt(r.value)} | {r.baseline} | "
            f"{fmt(r.baseline_value)} | {ratio_s} | {tgt} | {r.met} |"
        )
    notes = [f"- {r.bench} / {r.metric}: {r.note}" for r in rows if r.note]
    if notes:
        out += ["", *notes]
    return "\n".join(out)


def cpu_s() -> float:
    """User + system CPU seconds of this process so far (every thread: the writer too)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def put_engine() -> str:
    """Which engine encodes puts (issue 13); code before it had only Python."""
    try:
        from depository.store._native import ENGINE
    except ImportError:
        return "python (no native put path in this code)"
    return ENGINE


def have_pymerkle() -> bool:
    return importlib.util.find_spec("pymerkle") is not None


def sqlite_pragmas(conn: sqlite3.Connection) -> str:
    def one(sql: str) -> Any:
        row = conn.execute(sql).fetchone()
        return row[0] if isinstance(row, tuple) else row  # pymerkle sets a row factory

    jm, sync = one("PRAGMA journal_mode"), one("PRAGMA synchronous")
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return f"journal_mode={jm}, synchronous={names.get(sync, sync)}"


# ------------------------------------------------------------------- concurrent writers
def run_threads(
    n_threads: int, warmup: float, duration: float, op: Callable[[int, int], None]
) -> tuple[float, list[float], int]:
    """Call ``op(thread, i)`` in a loop from ``n_threads`` threads.

    Returns (ops per second, latencies in ms, errors) over the measured window
    ``[warmup, warmup + duration]``; everything before is warm-up.
    """
    stop = threading.Event()
    start_gate = threading.Barrier(n_threads + 1)
    results: list[list[tuple[float, float]]] = [[] for _ in range(n_threads)]
    errors = [0] * n_threads

    def worker(t: int) -> None:
        out = results[t]
        perf = time.perf_counter
        start_gate.wait()
        i = 0
        while not stop.is_set():
            t0 = perf()
            try:
                op(t, i)
            except Exception:
                errors[t] += 1
            t1 = perf()
            out.append((t1, (t1 - t0) * 1000))
            i += 1

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(n_threads)]
    for th in threads:
        th.start()
    start_gate.wait()
    t_start = time.perf_counter()
    lo, hi = t_start + warmup, t_start + warmup + duration
    time.sleep(max(0.0, hi - time.perf_counter()))
    stop.set()
    for th in threads:
        th.join()
    lat = [ms for res in results for (t_end, ms) in res if lo <= t_end <= hi]
    return len(lat) / duration, lat, sum(errors)


def gc_depository(
    work: Path, n_threads: int, warmup: float, duration: float, every_entries: int, tag: str
) -> tuple[float, list[float], int, dict[str, Any]]:
    path = work / f"gc-store-{tag}"
    store = Store.init(path, config=bench_config(every_entries))
    try:
        def op(t: int, i: int) -> None:
            n = t * 10_000_000 + i
            store.put(PRODUCTS[n % 4], f"gc/{t}/{i}", body_for(f"gc{t}", i),
                      metadata=meta_for(n))

        c0 = cpu_s()
        rate, lat, errs = run_threads(n_threads, warmup, duration, op)
        cpu = cpu_s() - c0
        size = store.size()
    finally:
        store.close()
    conn = sqlite3.connect(path / "depository.db")
    commits = conn.execute("SELECT count(*) FROM checkpoint").fetchone()[0]
    conn.close()
    shutil.rmtree(path)
    # CPU over warm-up and window alike, per record the log holds (the init record aside).
    return rate, lat, errs, {"log_size": size, "checkpoints": commits,
                             "cpu_us_per_record": round(1e6 * cpu / max(1, size - 1), 1)}


def gc_sqlite(
    work: Path, n_threads: int, warmup: float, duration: float, tag: str
) -> tuple[float, list[float], int, str]:
    path = work / f"gc-sqlite-{tag}.db"
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE rec (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
                 "body BLOB NOT NULL)")
    pragmas = sqlite_pragmas(conn)
    lock = threading.Lock()

    def op(t: int, i: int) -> None:
        name, body = f"gc/{t}/{i}", body_for(f"gc{t}", i)
        with lock:
            conn.execute("BEGIN")
            conn.execute("INSERT INTO rec (name, body) VALUES (?, ?)", (name, body))
            conn.execute("COMMIT")

    try:
        rate, lat, errs = run_threads(n_threads, warmup, duration, op)
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return rate, lat, errs, pragmas


def gc_pymerkle(
    work: Path, n_threads: int, warmup: float, duration: float, tag: str
) -> tuple[float, list[float], int, str]:
    from pymerkle import SqliteTree

    path = work / f"gc-pymerkle-{tag}.db"
    tree = SqliteTree(str(path))
    pragmas = sqlite_pragmas(tree.con)

    def op(t: int, i: int) -> None:
        tree.append_entry(body_for(f"gc{t}", i))  # one commit per entry (its own lock)

    try:
        rate, lat, errs = run_threads(n_threads, warmup, duration, op)
    finally:
        tree.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return rate, lat, errs, pragmas


def bench_group_commit(args: argparse.Namespace, work: Path) -> list[Row]:
    nt, wu, dur = args.threads, args.warmup, args.duration
    lib: list[tuple[float, list[float]]] = []
    sq: list[tuple[float, list[float]]] = []
    sq1: list[tuple[float, list[float]]] = []
    pm: list[tuple[float, list[float]]] = []
    info: dict[str, Any] = {}
    sq_pragmas = pm_pragmas = ""
    errors = {"depository": 0, "sqlite": 0, "pymerkle": 0}
    for rnd in range(args.rounds):
        # Interleaved, so drift in the machine's speed hits every contender alike.
        rate, lat, e, info = gc_depository(work, nt, wu, dur, args.gc_checkpoint_every,
                                           str(rnd))
        lib.append((rate, lat))
        errors["depository"] += e
        log(f"group-commit round {rnd}: depository {rate:,.0f}/s "
            f"p50 {pct(lat, 50):.2f} ms p99 {pct(lat, 99):.2f} ms {info}")
        rate, lat, e, sq_pragmas = gc_sqlite(work, nt, wu, dur, str(rnd))
        sq.append((rate, lat))
        errors["sqlite"] += e
        log(f"group-commit round {rnd}: sqlite {nt} threads {rate:,.0f}/s "
            f"p99 {pct(lat, 99):.2f} ms")
        rate, lat, e, _ = gc_sqlite(work, 1, wu, dur, f"{rnd}-1")
        sq1.append((rate, lat))
        errors["sqlite"] += e
        log(f"group-commit round {rnd}: sqlite 1 thread {rate:,.0f}/s "
            f"p99 {pct(lat, 99):.2f} ms")
        if have_pymerkle():
            rate, lat, e, pm_pragmas = gc_pymerkle(work, nt, wu, dur, str(rnd))
            pm.append((rate, lat))
            errors["pymerkle"] += e
            log(f"group-commit round {rnd}: pymerkle {rate:,.0f}/s p99 {pct(lat, 99):.2f} ms")

    def med(runs: list[tuple[float, list[float]]], what: str) -> float | None:
        if not runs:
            return None
        if what == "rate":
            return statistics.median(r for r, _ in runs)
        p = 50 if what == "p50" else 99
        return statistics.median(pct(lat, p) for _, lat in runs)

    note = (f"{nt} threads, {dur:g} s measured after {wu:g} s warm-up, median of "
            f"{args.rounds} interleaved rounds; put engine {put_engine()}; CPU µs/record "
            f"{info.get('cpu_us_per_record')}; bodies {BODY_SIZE} B; checkpoint every "
            f"{args.gc_checkpoint_every} entries / 1 s; errors {errors}; sqlite baseline "
            f"{sq_pragmas}; pymerkle baseline as shipped ({pm_pragmas or 'not installed'})")
    rows = []
    for base, runs in ((f"sqlite3 1 insert/commit, {nt} threads", sq),
                       ("sqlite3 1 insert/commit, 1 thread", sq1),
                       ("pymerkle SqliteTree", pm)):
        if not runs and base.startswith("pymerkle"):
            rows.append(Row("group-commit", "writes/s", med(lib, "rate"), "1/s",
                            "pymerkle (not installed)", None))
            continue
        rows.append(Row("group-commit", "writes/s", med(lib, "rate"), "1/s", base,
                        med(runs, "rate"), target=TARGETS["group-commit"],
                        note=note if runs is sq else "",
                        extra={"rounds": [r for r, _ in lib], "baseline_rounds":
                               [r for r, _ in runs], "errors": errors, **info}))
        rows.append(Row("group-commit", "p50 latency", med(lib, "p50"), "ms", base,
                        med(runs, "p50"), higher_is_better=False))
        rows.append(Row("group-commit", "p99 latency", med(lib, "p99"), "ms", base,
                        med(runs, "p99"), higher_is_better=False))
    return rows


# ------------------------------------------------------------------------- bulk ingest
@dataclass
class IngestResult:
    records: int
    seconds: float
    errors: int
    stopped_early: bool = False
    samples: list[tuple[float, int]] = field(default_factory=list)  # (elapsed s, done)
    cpu: float = 0.0  # process CPU seconds (every thread)

    @property
    def cpu_us(self) -> float:
        return 1e6 * self.cpu / self.records if self.records else 0.0

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def ingest(
    store: Store, n: int, *, producers: int = 4, window: int = 5000, tag: str = "b",
    progress_every: float = 0.0, budget: float | None = None,
) -> IngestResult:
    """Push ``n`` small artifacts through ``put_async`` and wait for every receipt.

    Each producer keeps at most ``window`` futures outstanding (bounded memory), so
    the writer's queue is always deep enough for full batches.
    """
    done = [0] * producers
    errs = [0] * producers
    stop = threading.Event()
    t0 = time.perf_counter()
    c0 = cpu_s()

    def producer(p: int) -> None:
        pending: deque[Future[Any]] = deque()
        for i in range(p, n, producers):
            if stop.is_set():
                break
            pending.append(store.put_async(PRODUCTS[i % 4], f"{tag}/{i}", body_for(tag, i),
                                           metadata=meta_for(i)))
            if len(pending) >= window:
                try:
                    pending.popleft().result()
                    done[p] += 1
                except Exception:
                    errs[p] += 1
        while pending:
            try:
                pending.popleft().result()
                done[p] += 1
            except Exception:
                errs[p] += 1

    threads = [threading.Thread(target=producer, args=(p,), daemon=True)
               for p in range(producers)]
    for th in threads:
        th.start()
    last = t0
    samples: list[tuple[float, int]] = []
    while any(th.is_alive() for th in threads):
        time.sleep(0.2)
        now = time.perf_counter()
        if budget is not None and now - t0 > budget and not stop.is_set():
            log(f"build budget of {budget:g} s reached at {sum(done):,} records; stopping")
            stop.set()
        if progress_every and now - last >= progress_every:
            last = now
            d = sum(done)
            samples.append((round(now - t0, 1), d))
            log(f"ingest {d:,}/{n:,} ({100 * d / n:.1f}%) {d / (now - t0):,.0f}/s "
                f"elapsed {now - t0:,.0f} s")
    for th in threads:
        th.join()
    return IngestResult(sum(done), time.perf_counter() - t0, sum(errs), stop.is_set(),
                        samples, cpu_s() - c0)


def ingest_many(store: Store, n: int, *, tag: str, progress_every: float = 0.0,
                budget: float | None = None) -> IngestResult:
    """Push ``n`` small artifacts through ``Store.iter_put_many`` from one thread (the
    library's bulk call: encoded in the caller, one writer op per 2,000 items)."""
    stop = False
    done = errs = 0

    def items() -> Iterator[PutItem]:
        for i in range(n):
            if stop:
                return
            yield PutItem(PRODUCTS[i % 4], f"{tag}/{i}", body_for(tag, i), metadata=meta_for(i))

    t0 = last = time.perf_counter()
    c0 = cpu_s()
    samples: list[tuple[float, int]] = []
    for r in store.iter_put_many(items(), actor="bench"):
        if isinstance(r, Exception):
            errs += 1
        else:
            done += 1
        if progress_every and (done + errs) % 10_000 == 0:
            now = time.perf_counter()
            if budget is not None and now - t0 > budget and not stop:
                log(f"build budget of {budget:g} s reached at {done:,} records; stopping")
                stop = True
            if now - last >= progress_every:
                last = now
                samples.append((round(now - t0, 1), done))
                log(f"ingest {done:,}/{n:,} ({100 * done / n:.1f}%) {done / (now - t0):,.0f}/s "
                    f"elapsed {now - t0:,.0f} s")
    return IngestResult(done, time.perf_counter() - t0, errs, stop, samples, cpu_s() - c0)


def bulk_pymerkle(work: Path, n: int, tag: str) -> float:
    from pymerkle import SqliteTree

    path = work / f"bulk-pymerkle-{tag}.db"
    tree = SqliteTree(str(path))
    bodies = (body_for(tag, i) for i in range(n))
    t0 = time.perf_counter()
    tree.append_entries(bodies)
    dt = time.perf_counter() - t0
    tree.close()
    path.unlink()
    return n / dt


def bulk_sqlite(work: Path, n: int, tag: str) -> float:
    """The storage floor: the same leaf-sized rows in one executemany transaction."""
    path = work / f"bulk-sqlite-{tag}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE rec (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
                 "body BLOB NOT NULL)")
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO rec (name, body) VALUES (?, ?)",
                     ((f"{tag}/{i}", body_for(tag, i)) for i in range(n)))
    conn.execute("COMMIT")
    dt = time.perf_counter() - t0
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return n / dt


def wal_per_record(store: Store, path: Path, size: int) -> dict[int, float]:
    """WAL bytes one commit of k put records writes, per record, on a store of ``size``.

    The WAL is checkpointed and truncated first (the writer is idle), then k puts are
    queued while the writer is held off, so they commit as one group; what the WAL holds
    afterwards is what that commit wrote (plus a checkpoint signature if one fell due).
    """
    db = path / "depository.db"
    wal = Path(f"{db}-wal")
    out: dict[int, float] = {}
    for k in (1, 64, 1000):
        time.sleep(0.2)
        side = sqlite3.connect(db, isolation_level=None)
        side.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        side.close()
        assert store.local_writer is not None
        with store.local_writer.paused():  # all k are queued before the writer takes any
            futs = [store.put_async(PRODUCTS[i % 4], f"wal/{k}/{i}", body_for(f"wal{k}", i),
                                    metadata=meta_for(size + i)) for i in range(k)]
        for f in futs:
            f.result()
        out[k] = wal.stat().st_size / k
        log(f"WAL: a {k}-record group commit on {size:,} records wrote "
            f"{out[k] / 1024:.1f} KiB per record")
    return out


def bench_bulk_ingest(args: argparse.Namespace, work: Path) -> list[Row]:
    n = args.bulk_records
    lib: list[float] = []
    many: list[float] = []
    lib_cpu: list[float] = []
    many_cpu: list[float] = []
    pm: list[float] = []
    sq: list[float] = []
    errors = 0
    wal: dict[int, float] = {}
    for rnd in range(args.rounds):
        path = work / f"bulk-store-{rnd}"
        store = Store.init(path, config=bench_config(args.checkpoint_every))
        res = ingest(store, n, tag=f"bulk{rnd}")
        if rnd == 0:
            wal = wal_per_record(store, path, n)
        store.close()
        shutil.rmtree(path)
        lib.append(res.rate)
        lib_cpu.append(res.cpu_us)
        errors += res.errors
        log(f"bulk-ingest round {rnd}: depository {res.rate:,.0f}/s, {res.cpu_us:.1f} µs CPU "
            f"per record ({res.errors} errors)")
        path = work / f"bulk-many-{rnd}"
        store = Store.init(path, config=bench_config(args.checkpoint_every))
        res = ingest_many(store, n, tag=f"many{rnd}")
        store.close()
        shutil.rmtree(path)
        many.append(res.rate)
        many_cpu.append(res.cpu_us)
        errors += res.errors
        log(f"bulk-ingest round {rnd}: depository put_many {res.rate:,.0f}/s, "
            f"{res.cpu_us:.1f} µs CPU per record ({res.errors} errors)")
        if have_pymerkle():
            pm.append(bulk_pymerkle(work, n, f"bulk{rnd}"))
            log(f"bulk-ingest round {rnd}: pymerkle append_entries {pm[-1]:,.0f}/s")
        sq.append(bulk_sqlite(work, n, f"bulk{rnd}"))
        log(f"bulk-ingest round {rnd}: sqlite executemany {sq[-1]:,.0f}/s")
    note = (f"{n:,} records of {BODY_SIZE} B, 4 producer threads × 5,000 outstanding "
            f"put_async futures, median of {args.rounds} rounds; checkpoint every "
            f"{args.checkpoint_every} entries; errors {errors}; put engine {put_engine()}; "
            f"CPU µs/record (all threads) put_async {lib_cpu}, put_many {many_cpu}")
    med = statistics.median
    leaf_bytes = BODY_SIZE + 600  # the body plus its ~550-600 byte log record
    wal_rows = [
        Row("bulk-ingest", f"WAL bytes/record, {k}-record commit @ {n:,}", v, "B",
            "body + leaf record", leaf_bytes, higher_is_better=False,
            note=("write amplification of the store's schema: bytes one group commit writes "
                  "to the WAL per record (the same pages are written again to the database "
                  "at the WAL checkpoint)") if k == 1 else "")
        for k, v in wal.items()
    ]
    return [
        Row("bulk-ingest", "records/s", med(lib), "1/s",
            "pymerkle append_entries" if pm else "pymerkle (not installed)",
            med(pm) if pm else None, target=TARGETS["bulk-ingest"], note=note,
            extra={"rounds": lib, "baseline_rounds": pm, "cpu_us_per_record": lib_cpu,
                   "engine": put_engine()}),
        Row("bulk-ingest", "records/s", med(lib), "1/s", "sqlite3 executemany (floor)",
            med(sq), extra={"baseline_rounds": sq}),
        Row("bulk-ingest", "records/s, put_many", med(many), "1/s",
            "pymerkle append_entries" if pm else "pymerkle (not installed)",
            med(pm) if pm else None, target=TARGETS["bulk-ingest"],
            note=(f"{n:,} records of {BODY_SIZE} B through Store.iter_put_many from one "
                  "thread (2,000 items per writer op, 4 chunks in flight), median of "
                  f"{args.rounds} rounds"), extra={"rounds": many,
                                                   "cpu_us_per_record": many_cpu}),
        Row("bulk-ingest", "records/s, put_many", med(many), "1/s",
            "sqlite3 executemany (floor)", med(sq)),
        *wal_rows,
    ]


# ---------------------------------------------------------------------- the big store
@dataclass
class Built:
    path: Path
    size: int
    build: IngestResult | None
    reused: bool


def build_store(args: argparse.Namespace, work: Path) -> Built:
    if args.store:
        path = Path(args.store)
        with Store.open(path, readonly=True) as s:
            size = s.size()
        log(f"reusing store {path} with {size:,} records")
        return Built(path, size, None, True)
    path = work / "big-store"
    n = args.records
    log(f"building a store of {n:,} records at {path} (checkpoint every "
        f"{args.checkpoint_every})")
    store = Store.init(path, config=bench_config(args.checkpoint_every))
    if args.build_with == "put_many":
        res = ingest_many(store, n - 1, tag="big", progress_every=args.progress,
                          budget=args.max_build_seconds)
    else:
        res = ingest(store, n - 1, tag="big", progress_every=args.progress,
                     budget=args.max_build_seconds)
    t0 = time.perf_counter()
    store.close()
    log(f"built {res.records:,} records in {res.seconds:,.1f} s ({res.rate:,.0f}/s); "
        f"close {time.perf_counter() - t0:.1f} s")
    with Store.open(path, readonly=True) as s:
        size = s.size()
    return Built(path, size, res, False)


def build_rows(b: Built, args: argparse.Namespace) -> list[Row]:
    if b.build is None:
        return []
    r = b.build
    db = b.path / "depository.db"
    mb = db.stat().st_size / 1e6
    how = ("Store.iter_put_many from one thread" if args.build_with == "put_many"
           else "put_async, 4 producers")
    note = (f"{r.records:,} records into one store through {how}; "
            f"{r.seconds:,.0f} s wall; database {mb:,.0f} MB"
            + (f"; STOPPED by --max-build-seconds at {b.size:,} (target was "
               f"{args.records:,})" if r.stopped_early else ""))
    return [Row("build", f"records/s at {b.size:,}", r.rate, "1/s", "", None,
                target=TARGETS["bulk-ingest"], note=note,
                extra={"records": r.records, "seconds": r.seconds, "db_bytes": int(mb * 1e6),
                       "progress": r.samples})]


# ---------------------------------------------------------------------------- proofs
def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def timed2(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall ms, this thread's CPU ms): on a busy machine the gap is time spent waiting
    for a core, not work."""
    c0, t0 = time.thread_time(), time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000, (time.thread_time() - c0) * 1000


def bench_proofs(args: argparse.Namespace, b: Built) -> list[Row]:
    rng = random.Random(7)
    n = b.size
    q = args.proof_queries
    inc = [(rng.randrange(s), s) for s in (rng.randint(1, n) for _ in range(q))]
    con = []
    for _ in range(q):
        s1 = rng.randint(1, n)
        con.append((s1, rng.randint(s1, n)))
    with Store.open(b.path, readonly=True) as s:
        for i, sz in inc[:200]:  # warm the page cache and the statement cache
            s.inclusion_proof(i, sz)
        inc_t = [timed2(lambda i=i, sz=sz: s.inclusion_proof(i, sz)) for i, sz in inc]
        con_t = [timed2(lambda a=a, c=c: s.consistency_proof(a, c)) for a, c in con]
        inc_ms, inc_cpu = [w for w, _ in inc_t], [c for _, c in inc_t]
        con_ms, con_cpu = [w for w, _ in con_t], [c for _, c in con_t]
        # A spot check that the proofs prove (against roots computed from storage).
        for i, sz in inc[:20]:
            leaf = merkle.leaf_hash(next(iter(s.log_entries(i, i + 1)))[1])
            merkle.verify_inclusion(leaf, i, sz, s.inclusion_proof(i, sz), s.root_at(sz))
    log(f"proofs at {n:,}: inclusion p50 {pct(inc_ms, 50):.3f} p99 {pct(inc_ms, 99):.3f} ms; "
        f"consistency p50 {pct(con_ms, 50):.3f} p99 {pct(con_ms, 99):.3f} ms")

    pm_inc: list[float] = []
    pm_con: list[float] = []
    pm_size = min(n, args.pymerkle_proof_size)
    pm_note = "pymerkle not installed"
    if have_pymerkle():
        pm_inc, pm_con, pm_note = pymerkle_proofs(args, b, pm_size, rng)
    note = (f"{q:,} random (index, size) and (size1, size2) pairs over a log of {n:,} "
            f"records, read-only Store, wall clock; the same calls' CPU time (thread_time): "
            f"inclusion p50 {pct(inc_cpu, 50):.3f} / p99 {pct(inc_cpu, 99):.3f} ms, "
            f"consistency p50 {pct(con_cpu, 50):.3f} / p99 {pct(con_cpu, 99):.3f} ms; "
            f"baseline: {pm_note}")
    rows = [
        Row("proofs", f"inclusion p50 @ {n:,}", pct(inc_ms, 50), "ms",
            f"pymerkle @ {pm_size:,}", pct(pm_inc, 50) if pm_inc else None,
            higher_is_better=False, note=note),
        Row("proofs", f"inclusion p99 @ {n:,}", pct(inc_ms, 99), "ms",
            f"pymerkle @ {pm_size:,}", pct(pm_inc, 99) if pm_inc else None,
            higher_is_better=False, target=TARGETS["proofs"],
            extra={"cpu_p50_ms": pct(inc_cpu, 50), "cpu_p99_ms": pct(inc_cpu, 99)}),
        Row("proofs", f"consistency p50 @ {n:,}", pct(con_ms, 50), "ms",
            f"pymerkle @ {pm_size:,}", pct(pm_con, 50) if pm_con else None,
            higher_is_better=False),
        Row("proofs", f"consistency p99 @ {n:,}", pct(con_ms, 99), "ms",
            f"pymerkle @ {pm_size:,}", pct(pm_con, 99) if pm_con else None,
            higher_is_better=False, target=TARGETS["proofs"],
            extra={"cpu_p50_ms": pct(con_cpu, 50), "cpu_p99_ms": pct(con_cpu, 99)}),
    ]
    return rows


def pymerkle_proofs(
    args: argparse.Namespace, b: Built, size: int, rng: random.Random
) -> tuple[list[float], list[float], str]:
    """pymerkle's proofs over a SqliteTree holding the store's first ``size`` leaves."""
    from pymerkle import SqliteTree

    path = Path(args.work) / "proof-pymerkle.db"
    path.unlink(missing_ok=True)
    tree = SqliteTree(str(path))
    with Store.open(b.path, readonly=True) as s:
        t0 = time.perf_counter()
        tree.append_entries(leaf for _, leaf in s.log_entries(0, size))
        log(f"pymerkle tree of {size:,} leaves loaded in {time.perf_counter() - t0:.1f} s")
    budget = args.pymerkle_proof_seconds
    inc: list[float] = []
    con: list[float] = []
    t_end = time.perf_counter() + budget
    while len(inc) < args.proof_queries and time.perf_counter() < t_end:
        sz = rng.randint(1, size)
        i = rng.randrange(sz)
        inc.append(timed(lambda i=i, sz=sz: tree.prove_inclusion(i + 1, sz)))
    t_end = time.perf_counter() + budget
    while len(con) < args.proof_queries and time.perf_counter() < t_end:
        s1 = rng.randint(1, size)
        s2 = rng.randint(s1, size)
        con.append(timed(lambda a=s1, c=s2: tree.prove_consistency(a, c)))
    tree.close()
    path.unlink()
    log(f"pymerkle proofs at {size:,}: {len(inc)} inclusion p99 {pct(inc, 99):.3f} ms, "
        f"{len(con)} consistency p99 {pct(con, 99):.3f} ms")
    note = (f"pymerkle SqliteTree of the same first {size:,} leaves, {len(inc):,} inclusion "
            f"and {len(con):,} consistency proofs (time-boxed to {budget:g} s each, its "
            "subroot cache warm from the run itself)")
    return inc, con, note


# ---------------------------------------------------------------------------- verify
def _hash_range(db: str, lo: int, hi: int) -> tuple[float, list[bytes]]:
    """Read leaves [lo, hi) a chunk at a time (untimed); time one SHA-256 per leaf."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    sha = hashlib.sha256
    spent = 0.0
    hashes: list[bytes] = []
    chunk = 500_000
    for start in range(lo, hi, chunk):
        leaves = [r[0] for r in conn.execute(
            "SELECT leaf FROM log WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, min(hi, start + chunk)))]
        t0 = time.perf_counter()
        hashes += [sha(b"\x00" + leaf).digest() for leaf in leaves]
        spent += time.perf_counter() - t0
    conn.close()
    return spent, hashes


def hash_floor(b: Built, jobs: int) -> float:
    """Seconds for one SHA-256 per leaf and one per interior node, ``jobs`` processes.

    Leaves are read from SQLite before the clock starts; the leaf hashing is split into
    ``jobs`` contiguous ranges (each timed inside its process, the slowest counts), the
    two halves' subtrees are hashed in their own process too, and the last few nodes
    are joined in the parent. The result is the floor of any verifier that recomputes
    the tree, without parsing a record or checking a signature.
    """
    db = str(b.path / "depository.db")
    n = b.size
    if jobs == 1:
        leaf_s, hashes = _hash_range(db, 0, n)
        t0 = time.perf_counter()
        merkle.root(hashes)
        return leaf_s + time.perf_counter() - t0
    # Split at the largest power of two below n, so each job owns perfect subtrees.
    split = 1 << ((n - 1).bit_length() - 1) if n > 1 else n
    bounds = [(0, split), (split, n)]
    with ProcessPoolExecutor(max_workers=jobs) as ex:
        futs = [ex.submit(_floor_job, db, lo, hi) for lo, hi in bounds]
        parts = [f.result() for f in futs]
    t0 = time.perf_counter()
    merkle.node_hash(parts[0][1], parts[1][1])
    return max(p[0] for p in parts) + time.perf_counter() - t0


def _floor_job(db: str, lo: int, hi: int) -> tuple[float, bytes]:
    leaf_s, hashes = _hash_range(db, lo, hi)
    t0 = time.perf_counter()
    r = merkle.root(hashes)
    return leaf_s + time.perf_counter() - t0, r


def verifier_available() -> bool:
    try:
        return importlib.util.find_spec("depository.verifier.store") is not None
    except ImportError:
        return False


def run_verifier_cli(b: Built, jobs: int, python_only: bool = False, tree: Path | None = None
                     ) -> tuple[float, float, int, str, str]:
    """(wall s, CPU s of the verifier process tree, exit code, engine, output tail).
    ``tree``: run the verifier of that source tree instead (a baseline checkout, its
    extension built in place), with this interpreter."""
    key = b.path / "keys" / "log.vkey"
    cmd = [sys.executable, "-m", "depository.verifier", "store", str(b.path), "--key",
           str(key), "--jobs", str(jobs)]
    env = dict(os.environ)
    if python_only:
        env["DEPOSITORY_NATIVE"] = "0"
    else:
        env.pop("DEPOSITORY_NATIVE", None)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tree or ROOT, env=env)
    dt = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = proc.stdout.splitlines()
    engine = lines[0].removeprefix("engine: ") if lines and lines[0].startswith(
        "engine: ") else "?"
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    return dt, cpu, proc.returncode, engine, " / ".join(tail)


def run_verifier_fn(b: Built, jobs: int) -> float:
    from depository.verifier.store import store_result  # type: ignore[import-not-found]

    vkey = (b.path / "keys" / "log.vkey").read_text().strip()
    t0 = time.perf_counter()
    store_result(b.path, [vkey], jobs=jobs)
    return time.perf_counter() - t0


def bench_verify(args: argparse.Namespace, b: Built) -> list[Row]:
    n = b.size
    rows = []
    floors = {}
    for jobs in (1, 2):
        runs = [hash_floor(b, jobs) for _ in range(args.verify_rounds)]
        floors[jobs] = n / statistics.median(runs)
        log(f"verify floor jobs={jobs}: {floors[jobs]:,.0f} records/s")
    if not verifier_available():
        for jobs in (1, 2):
            rows.append(Row("verify", f"jobs={jobs} @ {n:,}", None, "records/s",
                            "SHA-256 floor (leaf+node)", floors[jobs],
                            target=TARGETS[f"verify-{jobs}"], note="PENDING: no verifier"))
        return rows
    # Engines: "default" (native when built), "python" (DEPOSITORY_NATIVE=0), and
    # "baseline" (the default engine of the --verify-baseline source tree).
    engines = ["default"] + (["python"] if args.verify_python else []) + (
        ["baseline"] if args.verify_baseline else [])
    baseline = Path(args.verify_baseline).resolve() if args.verify_baseline else None
    runs: dict[tuple[str, int], list[tuple[float, float, int, str, str]]] = {
        (eng, jobs): [] for eng in engines for jobs in (1, 2)}
    for rnd in range(args.verify_rounds):  # interleaved: engine and jobs alternate
        for key in runs:
            got = run_verifier_cli(b, key[1], python_only=key[0] == "python",
                                   tree=baseline if key[0] == "baseline" else None)
            runs[key].append(got)
            log(f"verify round {rnd + 1} {key[0]} jobs={key[1]}: {n / got[0]:,.0f} records/s "
                f"wall, {n / got[1]:,.0f} per CPU-s, exit {got[2]}, engine {got[3]}")
    wall: dict[tuple[str, int], float] = {}
    for (eng, jobs), rs in runs.items():
        py = eng == "python"
        value = n / statistics.median(r[0] for r in rs)
        cpu = n / statistics.median(r[1] for r in rs)
        wall[(eng, jobs)] = value
        codes = [r[2] for r in rs]
        engine = rs[-1][3] + (f" of {baseline}" if eng == "baseline" else "")
        note = (f"`python -m depository.verifier store DIR --key KEY --jobs {jobs}`"
                f"{' with DEPOSITORY_NATIVE=0' if py else ''} over {n:,} records, engine "
                f"{engine}, wall clock incl. interpreter start, median of "
                f"{args.verify_rounds}; {cpu:,.0f} records per CPU-second (verifier and "
                f"workers); floor ratio {value / floors[jobs]:.3f}; exit codes {codes}; "
                f"output: {rs[-1][4][:200]}")
        if any(codes):
            note += " — VERIFIER DID NOT PASS"
        target = TARGETS["verify-1-issue13"] if jobs == 1 and eng == "default" else None
        rows.append(Row("verify", f"jobs={jobs} {engine} @ {n:,}", value, "records/s",
                        "SHA-256 floor (leaf+node)", floors[jobs], target=target, note=note,
                        extra={"cpu_records_per_s": cpu, "engine": engine}))
    for eng in engines:
        scale = wall[(eng, 2)] / wall[(eng, 1)]
        rows.append(Row("verify", f"jobs=2 / jobs=1 {eng}", scale, "×",
                        target=TARGETS["verify-scaling-issue13"] if eng == "default" else None,
                        note="wall-clock speed-up of --jobs 2 over --jobs 1, same run"))
    for eng in engines[1:]:
        for jobs in (1, 2):
            rows.append(Row("verify", f"jobs={jobs} default engine over {eng}",
                            wall[("default", jobs)] / wall[(eng, jobs)], "×",
                            note="same run, interleaved"))
    return rows


# ----------------------------------------------------------------------------- query
# Alternative SQL for the two ls() shapes: the same rows in the same order, a better plan.
# Time window: artifact.created is stamped by the single writer per batch, so it rises with
# log_idx (as long as the wall clock does not step back); walking (product, created) and
# then rowid (= insertion order = log order) yields log order without a sort.
TIME_ALT = (" WHERE a.product = ? AND a.created >= ? AND a.created < ? "
            "ORDER BY a.created, a.rowid LIMIT ?")
# Meta: schema v2's artifact_meta (product, key, value, log_idx) yields matches in log
# order; the alternative picks the page's log indexes first, then reads only those rows.
META_ALT = (" WHERE a.log_idx IN (SELECT log_idx FROM artifact_meta m WHERE m.product = ? "
            "AND m.key = ? AND m.value = ? ORDER BY log_idx LIMIT ?) ORDER BY a.log_idx")


def _time_box(items: Sequence[Any], seconds: float, fn: Callable[..., Any]
              ) -> tuple[list[float], list[Any]]:
    """Run ``fn(*item)`` for each item until ``seconds`` pass; (latencies ms, results)."""
    ms: list[float] = []
    out: list[Any] = []
    t_end = time.perf_counter() + seconds
    for item in items:
        if time.perf_counter() > t_end:
            break
        t0 = time.perf_counter()
        out.append(fn(*item))
        ms.append((time.perf_counter() - t0) * 1000)
    return ms, out


def bench_query(args: argparse.Namespace, b: Built) -> list[Row]:
    from depository.store._reads import _ARTIFACT_SELECT

    rng = random.Random(11)
    q = args.query_count
    conn = sqlite3.connect(f"file:{b.path / 'depository.db'}?mode=ro", uri=True)
    span = {}
    for p in PRODUCTS:
        lo, hi = conn.execute("SELECT min(created), max(created) FROM artifact "
                              "WHERE product = ?", (p,)).fetchone()
        if lo is not None:
            span[p] = (parse_time(lo), parse_time(hi))
    prods = sorted(span)

    def window() -> tuple[str, str, str]:
        p = rng.choice(prods)
        lo, hi = span[p]
        width = (hi - lo).total_seconds()
        a, c = sorted((rng.uniform(0, width), rng.uniform(0, width)))
        return (p, format_time(lo + timedelta(seconds=a)),
                format_time(lo + timedelta(seconds=c) + timedelta(microseconds=1)))

    windows = [window() for _ in range(q)]
    # (product, value) pairs taken from random artifacts, so every query has matches.
    samples = []
    while len(samples) < q:
        row = conn.execute("SELECT product, metadata FROM artifact WHERE log_idx = ?",
                           (rng.randrange(1, b.size),)).fetchone()
        if row is not None:
            samples.append((row[0], json.loads(row[1])))
    metas = [(p, m["k"]) for p, m in samples]
    lows = [(p, m["shard"]) for p, m in samples[: max(10, q // 10)]]
    budget = args.query_seconds
    with Store.open(b.path, readonly=True) as s:
        for p, a, c in windows[:10]:
            s.ls(product=p, since=a, until=c, limit=100)

        def ls_time(p: str, a: str, c: str) -> list[str]:
            return [x.id for x in s.ls(product=p, since=a, until=c, limit=100)]

        def ls_meta(p: str, v: str, k: str = "k") -> list[str]:
            return [x.id for x in s.ls(product=p, meta={k: v}, limit=100)]

        t_ms, t_res = _time_box(windows, budget, ls_time)
        m_ms, m_res = _time_box(metas, budget, ls_meta)
        low_ms, _ = _time_box(lows, budget / 4, lambda p, v: ls_meta(p, v, "shard"))
        # The SQL the library actually ran (bound values expanded), for its plan.
        traced: list[str] = []
        s.reads.conn().set_trace_callback(traced.append)
        ls_time(*windows[0])
        ls_meta(*metas[0])
        s.reads.conn().set_trace_callback(None)
        lib_sql = [t for t in traced if t.lstrip().upper().startswith("SELECT")]

    def alt_time(p: str, a: str, c: str) -> list[str]:
        rows = conn.execute(_ARTIFACT_SELECT + TIME_ALT, (p, a, c, 100)).fetchall()
        return [r[0] for r in rows]

    def alt_meta(p: str, v: str, k: str = "k") -> list[str]:
        rows = conn.execute(_ARTIFACT_SELECT + META_ALT, (p, k, v, 100)).fetchall()
        return [r[0] for r in rows]

    # The baselines build the same Artifact objects' worth of rows but skip the dataclass.
    bt_ms, bt_res = _time_box(windows, budget, alt_time)
    bm_ms, bm_res = _time_box(metas, budget, alt_meta)
    blow_ms, _ = _time_box(lows, budget / 4, lambda p, v: alt_meta(p, v, "shard"))
    same_t = sum(x == y for x, y in zip(t_res, bt_res, strict=False))
    same_m = sum(x == y for x, y in zip(m_res, bm_res, strict=False))
    cmp_t, cmp_m = min(len(t_res), len(bt_res)), min(len(m_res), len(bm_res))

    def plan(sql: str, params: Sequence[Any]) -> str:
        return " / ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))

    p0, a0, c0 = windows[0]
    plans = {
        "time": plan(lib_sql[0], ()),
        "time_alt": plan(_ARTIFACT_SELECT + TIME_ALT, (p0, a0, c0, 100)),
        "meta": plan(lib_sql[1], ()),
        "meta_alt": plan(_ARTIFACT_SELECT + META_ALT, (p0, "k", "v1", 100)),
    }
    conn.close()
    log(f"query at {b.size:,}: time p50 {pct(t_ms, 50):.2f} p99 {pct(t_ms, 99):.2f} ms "
        f"(alt p99 {pct(bt_ms, 99):.2f}); meta p50 {pct(m_ms, 50):.2f} p99 {pct(m_ms, 99):.2f} "
        f"ms (alt p99 {pct(bm_ms, 99):.2f}); low-card p99 {pct(low_ms, 99):.2f} ms "
        f"(alt {pct(blow_ms, 99):.2f}); same results {same_t}/{len(bt_res)}, "
        f"{same_m}/{len(bm_res)}")
    n = b.size
    boxed = "" if len(t_ms) == q and len(m_ms) == q else (
        f"TIME-BOXED to {budget:g} s per kind: {len(t_ms)} window and {len(m_ms)} meta "
        f"queries of {q} ran; ")
    full_t = sum(1 for r in t_res if len(r) == 100)
    note_t = (boxed + f"{len(t_ms):,} random (product, since, until) windows, uniform over "
              f"each product's creation span ({full_t} returned a full page of 100). Library "
              f"plan: {plans['time']}. Baseline: same SQL but ORDER BY a.created, a.rowid "
              f"(plan: {plans['time_alt']}); identical result lists in {same_t} of the "
              f"{cmp_t} queries both ran")
    note_m = (f"{len(m_ms):,} (product, k=value) lookups taken from random artifacts (value "
              f"v0..v{META_VALUES - 1}, each on ~{n // META_VALUES:,} artifacts). Library "
              f"plan: {plans['meta']}. Baseline: the page's log indexes first (plan: "
              f"{plans['meta_alt']}); identical result lists in {same_m} of the {cmp_m} "
              "queries both ran. "
              f"Low-cardinality key (7 values, ~{n // 28:,} matches per product): library "
              f"p50 {pct(low_ms, 50):.2f} / p99 {pct(low_ms, 99):.2f} ms, baseline p50 "
              f"{pct(blow_ms, 50):.2f} / p99 {pct(blow_ms, 99):.2f} ms over {len(low_ms)} "
              "queries")
    extra = {"plans": plans, "library_queries": [len(t_ms), len(m_ms)],
             "low_cardinality_ms": {"p50": pct(low_ms, 50), "p99": pct(low_ms, 99),
                                    "alt_p50": pct(blow_ms, 50), "alt_p99": pct(blow_ms, 99)}}
    return [
        Row("query", f"ls since/until p50 @ {n:,}", pct(t_ms, 50), "ms",
            "same rows, ORDER BY created,rowid", pct(bt_ms, 50), higher_is_better=False),
        Row("query", f"ls since/until p99 @ {n:,}", pct(t_ms, 99), "ms",
            "same rows, ORDER BY created,rowid", pct(bt_ms, 99), higher_is_better=False,
            target=TARGETS["query"], note=note_t),
        Row("query", f"ls meta p50 @ {n:,}", pct(m_ms, 50), "ms",
            "same rows, log_idx IN (page)", pct(bm_ms, 50), higher_is_better=False),
        Row("query", f"ls meta p99 @ {n:,}", pct(m_ms, 99), "ms",
            "same rows, log_idx IN (page)", pct(bm_ms, 99), higher_is_better=False,
            target=TARGETS["query"], note=note_m, extra=extra),
    ]


# ------------------------------------------------------------------------------ main
def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
        "nproc": os.cpu_count(), "platform": platform.platform(),
    }
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["mem_kb"] = int(line.split()[1])
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=ROOT).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "depository"],
                               capture_output=True, text=True, cwd=ROOT).stdout.strip()
        info["code"] = head + ("+uncommitted changes in depository/" if dirty else "")
    if have_pymerkle():
        import pymerkle

        info["pymerkle"] = pymerkle.__version__
    return info


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(ALL),
                   help=f"comma-separated sub-benchmarks from {', '.join(ALL)}")
    p.add_argument("--records", type=int, default=10_000_000,
                   help="log size for proofs/verify/query (default 10,000,000)")
    p.add_argument("--quick", action="store_true", help="small smoke run (< 60 s)")
    p.add_argument("--json", help="also write the results as JSON to this file")
    p.add_argument("--threads", type=int, default=64, help="group-commit writer threads")
    p.add_argument("--duration", type=float, default=10.0, help="group-commit seconds")
    p.add_argument("--warmup", type=float, default=1.0, help="group-commit warm-up seconds")
    p.add_argument("--rounds", type=int, default=3, help="rounds for group-commit/bulk-ingest")
    p.add_argument("--bulk-records", type=int, default=200_000)
    p.add_argument("--checkpoint-every", type=int, default=100_000,
                   help="checkpoint.every_entries for bulk-ingest and the big store")
    p.add_argument("--gc-checkpoint-every", type=int, default=1000,
                   help="checkpoint.every_entries for group-commit (the default config's)")
    p.add_argument("--proof-queries", type=int, default=10_000)
    p.add_argument("--pymerkle-proof-size", type=int, default=1_000_000)
    p.add_argument("--pymerkle-proof-seconds", type=float, default=30.0)
    p.add_argument("--query-count", type=int, default=1000)
    p.add_argument("--query-seconds", type=float, default=300.0,
                   help="time box per query kind (queries past it are skipped, and said)")
    p.add_argument("--verify-rounds", type=int, default=1)
    p.add_argument("--verify-baseline", metavar="TREE",
                   help="also time the verifier of this source tree (e.g. a worktree of main "
                        "with its extension built in place), interleaved")
    p.add_argument("--verify-python", action="store_true",
                   help="also run the verifier with DEPOSITORY_NATIVE=0 (pure Python), "
                        "interleaved with the default engine")
    p.add_argument("--build-with", choices=["put_many", "put_async"], default="put_many",
                   help="library call that builds the big store (default: the bulk call)")
    p.add_argument("--store", help="reuse this already-built store for proofs/verify/query")
    p.add_argument("--max-build-seconds", type=float,
                   help="stop the big build after this long and benchmark what was built")
    p.add_argument("--progress", type=float, default=30.0, help="build progress interval, s")
    p.add_argument("--workdir", help="parent of the scratch directory (default /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = p.parse_args(argv)
    args.only = [x.strip() for x in args.only.split(",") if x.strip()]
    bad = sorted(set(args.only) - set(ALL))
    if bad:
        p.error(f"unknown sub-benchmark {bad[0]!r}; choose from {', '.join(ALL)}")
    if args.quick:
        args.records = min(args.records, 20_000)
        args.duration, args.warmup, args.rounds = 2.0, 0.5, 1
        args.bulk_records = 20_000
        args.proof_queries, args.query_count = 2000, 200
        args.pymerkle_proof_size = min(args.pymerkle_proof_size, 20_000)
        args.pymerkle_proof_seconds = 3.0
        args.progress = 0.0
        args.query_seconds = 20.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="depository-bench-", dir=args.workdir or "/tmp"))
    log(f"scratch directory {work}")
    rows: list[Row] = []
    t_all = time.perf_counter()

    loads: dict[str, Any] = {}
    args.work = work
    info = machine()

    def report(final: bool) -> None:
        """Write the JSON after every stage, so a killed run keeps what it measured."""
        if args.json:
            Path(args.json).write_text(json.dumps({
                "machine": info, "argv": sys.argv, "load_average": loads,
                "complete": final, "rows": [r.to_json() for r in rows],
            }, indent=2) + "\n")
        if final:
            print(f"\nmachine: {json.dumps(info)}\ncommand: {' '.join(sys.argv)}\n"
                  f"total {time.perf_counter() - t_all:,.0f} s; 1-min load average "
                  f"before/after each stage (2 cores): {json.dumps(loads)}\n")
            print(markdown(rows), flush=True)

    def stage(name: str, fn: Callable[[], list[Row]]) -> None:
        before = os.getloadavg()[0]
        try:
            rows.extend(fn())
        except Exception as exc:  # report it and go on with the other sub-benchmarks
            log(f"{name} FAILED: {exc!r}")
            rows.append(Row(name, "error", None, "", note=f"FAILED: {exc!r}"))
        # The machine is shared: the 1-minute load average says how busy it was.
        loads[name] = [round(before, 2), round(os.getloadavg()[0], 2)]
        log(f"{name}: load average before/after {loads[name]}")
        report(False)

    try:
        if "group-commit" in args.only:
            stage("group-commit", lambda: bench_group_commit(args, work))
        if "bulk-ingest" in args.only:
            stage("bulk-ingest", lambda: bench_bulk_ingest(args, work))
        if any(x in args.only for x in BIG):
            before = os.getloadavg()[0]
            built = build_store(args, work)
            loads["build"] = [round(before, 2), round(os.getloadavg()[0], 2)]
            rows.extend(build_rows(built, args))
            report(False)
            for name, fn in (("proofs", bench_proofs), ("verify", bench_verify),
                             ("query", bench_query)):
                if name in args.only:
                    stage(name, lambda fn=fn: fn(args, built))
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
