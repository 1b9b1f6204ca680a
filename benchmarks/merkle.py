"""Benchmark the Merkle log core: root(), proof generation and proof verification.

Usage::

    .venv/bin/python benchmarks/merkle.py [--sizes 1000000,10000000] [--repeat 3]
                                          [--proofs 10000] [--json FILE]

For each size it builds the leaf hashes (not timed), then, interleaved, times ``root()`` and
the *physical floor*: a bare loop making exactly n-1 ``hashlib.sha256(<65-byte buffer>)
.digest()`` calls, i.e. one SHA-256 per internal node and nothing else. It reports wall-clock
medians, records/s and the ratio root/floor (also on process CPU time, which is steadier on
a shared machine). A second floor variant ("alt floor": copying a pre-made SHA-256 state
and updating it with a 64-byte buffer, the trick root() uses) is reported for reference.

It also times, per call, over ``--proofs`` random queries: ``verify_inclusion`` and
``verify_consistency`` (median and p99 µs), and, for sizes up to ``--dict-store-max``,
proof generation from a dict-backed node store (``inclusion_proof_from_nodes`` and
``consistency_proof_from_nodes``), as the WORM store would do it.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from itertools import repeat
from typing import Any

from depository.tlog.merkle import (
    consistency_proof_from_nodes,
    inclusion_proof_from_nodes,
    node_hash,
    root,
    root_from_nodes,
    verify_consistency,
    verify_inclusion,
)


def make_leaves(n: int) -> list[bytes]:
    sha = hashlib.sha256
    return [sha(i.to_bytes(8, "big")).digest() for i in range(n)]


def floor_constructor(n: int) -> None:
    """Exactly n-1 ``hashlib.sha256(65-byte buffer).digest()`` calls."""
    sha = hashlib.sha256
    buf = bytes(65)
    for _ in repeat(None, n - 1):
        sha(buf).digest()


def floor_copy(n: int) -> None:
    """Exactly n-1 SHA-256 computations of 65 bytes via a pre-made state's ``.copy()``."""
    copy = hashlib.sha256(b"\x01").copy
    buf = bytes(64)
    for _ in repeat(None, n - 1):
        h = copy()
        h.update(buf)
        h.digest()


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) for one call of ``fn``."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def levels_of(leaves: list[bytes]) -> list[list[bytes]]:
    """All perfect aligned subtree hashes, level by level (not timed)."""
    out = [leaves]
    row = leaves
    while len(row) > 1:
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
        out.append(row)
    return out


def per_call_us(calls: list[Callable[[], object]]) -> dict[str, float]:
    samples = []
    clock = time.perf_counter_ns
    for call in calls:
        t0 = clock()
        call()
        samples.append((clock() - t0) / 1000)
    samples.sort()
    return {
        "median_us": statistics.median(samples),
        "p99_us": statistics.quantiles(samples, n=100)[98],
        "count": len(samples),
    }


def bench_root(n: int, leaves: list[bytes], repeat_: int) -> dict[str, Any]:
    fns: dict[str, Callable[[], object]] = {
        "floor": lambda: floor_constructor(n),
        "root": lambda: root(leaves),
        "floor_copy": lambda: floor_copy(n),
    }
    runs: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat_):  # interleaved, so drift on a noisy machine hits all alike
        for name, fn in fns.items():
            wall, used = timed(fn)
            runs[name].append(wall)
            cpu[name].append(used)
    med = {k: statistics.median(v) for k, v in runs.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "leaves": n,
        "runs_s": runs,
        "cpu_runs_s": cpu,
        "root_median_s": med["root"],
        "floor_median_s": med["floor"],
        "floor_copy_median_s": med["floor_copy"],
        "ratio_root_over_floor": med["root"] / med["floor"],
        "ratio_root_over_floor_cpu": cpu_med["root"] / cpu_med["floor"],
        "ratio_root_over_floor_copy": med["root"] / med["floor_copy"],
        "per_run_ratios": [r / f for r, f in zip(runs["root"], runs["floor"], strict=True)],
        "root_records_per_s": n / med["root"],
        "floor_hashes_per_s": (n - 1) / med["floor"],
    }


def bench_proofs(
    n: int, leaves: list[bytes], count: int, dict_store: bool, rng: random.Random
) -> dict[str, Any]:
    levels = levels_of(leaves)

    def node(level: int, k: int) -> bytes:
        return levels[level][k]

    out: dict[str, Any] = {"leaves": n}
    roots: dict[int, bytes] = {}

    def root_of(size: int) -> bytes:
        if size not in roots:
            roots[size] = root_from_nodes(node, size)
        return roots[size]

    # Inclusion: random leaf of the full tree.
    incl = []
    for _ in range(count):
        index = rng.randrange(n)
        incl.append((leaves[index], index, n, inclusion_proof_from_nodes(node, index, n)))
    r = root_of(n)
    out["verify_inclusion"] = per_call_us(
        [partial(verify_inclusion, leaf, i, size, proof, r) for leaf, i, size, proof in incl]
    )

    # Consistency: random size1 < size2 <= n.
    cons = []
    for _ in range(count):
        size2 = rng.randrange(2, n + 1)
        size1 = rng.randrange(1, size2)
        proof = consistency_proof_from_nodes(node, size1, size2)
        cons.append((size1, size2, proof, root_of(size1), root_of(size2)))
    out["verify_consistency"] = per_call_us([partial(verify_consistency, *a) for a in cons])

    if dict_store:
        store: dict[tuple[int, int], bytes] = {}
        for level, row in enumerate(levels):
            store.update(((level, k), h) for k, h in enumerate(row))

        def fetch(level: int, k: int) -> bytes:
            return store[(level, k)]

        out["inclusion_proof_from_nodes"] = per_call_us(
            [partial(inclusion_proof_from_nodes, fetch, a[1], n) for a in incl]
        )
        out["consistency_proof_from_nodes"] = per_call_us(
            [partial(consistency_proof_from_nodes, fetch, a[0], a[1]) for a in cons]
        )
        del store
    return out


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": model,
        "cpus": os.cpu_count(),
        "openssl": __import__("ssl").OPENSSL_VERSION,
        "loadavg_at_start": os.getloadavg(),
    }


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f} M/s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000000,10000000", help="comma-separated leaf counts")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of root() and the floor")
    ap.add_argument("--proofs", type=int, default=10_000, help="random proofs per size")
    ap.add_argument(
        "--dict-store-max", type=int, default=1_000_000,
        help="time from_nodes generation with a dict store for sizes up to this",
    )
    ap.add_argument("--seed", type=int, default=6962)
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    rng = random.Random(args.seed)

    results: dict[str, Any] = {
        "machine": machine(),
        "params": {"sizes": sizes, "repeat": args.repeat, "proofs": args.proofs,
                   "seed": args.seed},
        "root": [],
        "proofs": [],
    }
    for n in sizes:
        print(f"# building {n:,} leaf hashes ...", file=sys.stderr, flush=True)
        leaves = make_leaves(n)
        gc.collect()
        print(f"# timing root() and the floor, {args.repeat} runs ...", file=sys.stderr,
              flush=True)
        results["root"].append(bench_root(n, leaves, args.repeat))
        print("# timing proofs ...", file=sys.stderr, flush=True)
        results["proofs"].append(
            bench_proofs(n, leaves, args.proofs, n <= args.dict_store_max, rng)
        )
        del leaves
        gc.collect()

    print("| leaves | root() median | floor median | root / floor | root / floor (CPU time) "
          "| root() records/s | floor SHA-256/s | root / alt floor |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results["root"]:
        print(f"| {r['leaves']:,} | {r['root_median_s']:.3f} s | {r['floor_median_s']:.3f} s "
              f"| **{r['ratio_root_over_floor']:.2f}×** | {r['ratio_root_over_floor_cpu']:.2f}× "
              f"| {fmt_rate(r['root_records_per_s'])} | {fmt_rate(r['floor_hashes_per_s'])} "
              f"| {r['ratio_root_over_floor_copy']:.2f}× |")
    print()
    print("| leaves | operation | median µs | p99 µs | calls |")
    print("|---:|---|---:|---:|---:|")
    for p in results["proofs"]:
        for op in ("verify_inclusion", "verify_consistency", "inclusion_proof_from_nodes",
                   "consistency_proof_from_nodes"):
            if op in p:
                s = p[op]
                print(f"| {p['leaves']:,} | `{op}` | {s['median_us']:.1f} | {s['p99_us']:.1f} "
                      f"| {s['count']:,} |")
    print()
    for r in results["root"]:
        runs = ", ".join(f"{k}: " + "/".join(f"{t:.3f}" for t in v)
                         for k, v in r["runs_s"].items())
        runs += "; CPU s: " + ", ".join(f"{k}: " + "/".join(f"{t:.3f}" for t in v)
                                        for k, v in r["cpu_runs_s"].items())
        ratios = "/".join(f"{x:.2f}" for x in r["per_run_ratios"])
        print(f"runs at {r['leaves']:,} leaves (s): {runs}; root/floor per run: {ratios}")
    start_load = " ".join(f"{x:.2f}" for x in results["machine"]["loadavg_at_start"])
    end_load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average (1/5/15 min) at start: {start_load}; at end: {end_load}")
    results["loadavg_at_end"] = os.getloadavg()

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
