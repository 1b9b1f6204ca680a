"""Evidence export benchmark: time and peak memory of ``export_package`` as the count grows.

For each count N (``--counts``, default 1000,10000) a scratch store is built with N
small artifacts (``--size`` bytes each, random, so incompressible) under one legal
hold, then, each in a fresh process:

export   ``export_package`` of the matter to a zip (BagIt bag, N artifacts, ~2N+1
         records and proofs, custody log, DAT load file, PDF/A index). Wall time and the
         process's peak RSS (``ru_maxrss``), and its RSS just before the export (after
         imports), so the export's own growth is visible.
floor    the baseline: the same artifacts read through ``Store.open_content`` into a
         plain ``zipfile`` (no records, proofs, manifests or PDF): what any export costs.
verify   ``package_result`` over the zip (full re-hash of every file, every proof).

Flat memory means the peak RSS is about the same for 1k and 10k (the PDF index lists
at most ``DEFAULT_INDEX_LIMIT`` items; everything else streams).

    .venv/bin/python benchmarks/evidence.py                       # 1k and 10k
    .venv/bin/python benchmarks/evidence.py --counts 1000,10000,50000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def child_build(store_dir: str, count: int, size: int) -> dict[str, Any]:
    from depository.store import Store
    from depository.store.config import default_config_dict

    cfg = default_config_dict("bench.example/log")
    cfg["products"]["gurukul"]["quota"] = {"bytes": 10**12, "artifacts": 10**7}
    t0 = time.perf_counter()
    store = Store.init(Path(store_dir), config=cfg)
    try:
        window = []
        for i in range(count):
            window.append(store.put_async("gurukul", f"docs/{i:08d}.bin", os.urandom(size),
                                          metadata={"n": i}, provenance={"src": "bench"},
                                          actor="bench"))
            if len(window) >= 2000:
                for fut in window:
                    fut.result()
                window = []
        for fut in window:
            fut.result()
        store.place_hold(matter="BENCH", reason="benchmark", actor="legal:bench",
                         product="gurukul")
    finally:
        store.close()
    return {"build_s": time.perf_counter() - t0}


def child_export(store_dir: str, out: str) -> dict[str, Any]:
    import weasyprint  # noqa: F401 - imported up front so the baseline includes it

    from depository.evidence import export_package
    from depository.store import Store

    store = Store.open(Path(store_dir))
    try:
        before = _rss_kib()
        t0, c0 = time.perf_counter(), _cpu_s()
        res = export_package(store, matter="BENCH", out=Path(out), reason="benchmark",
                             actor="legal:bench", load_file="dat")
        elapsed, cpu = time.perf_counter() - t0, _cpu_s() - c0
    finally:
        store.close()
    size = (Path(out).stat().st_size if Path(out).is_file() else
            sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file()))
    return {"export_s": elapsed, "export_cpu_s": cpu, "rss_before_kib": before,
            "peak_kib": _peak_kib(),
            "artifacts": res.artifacts, "records": res.records + 1,
            "payload_files": res.payload_files, "out_bytes": size}


def child_floor(store_dir: str, out: str) -> dict[str, Any]:
    import zipfile

    from depository.store import Store

    store = Store.open(Path(store_dir), readonly=True)
    try:
        before = _rss_kib()
        t0, c0 = time.perf_counter(), _cpu_s()
        after = None
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            while True:
                page = store.ls(product="gurukul", after=after, limit=500)
                for art in page:
                    with store.open_content(art) as src, zf.open(f"data/{art.id}", "w") as dst:
                        shutil.copyfileobj(src, dst)
                if len(page) < 500:
                    break
                after = page[-1].log_index
        elapsed, cpu = time.perf_counter() - t0, _cpu_s() - c0
    finally:
        store.close()
    return {"floor_s": elapsed, "floor_cpu_s": cpu, "floor_rss_before_kib": before,
            "floor_peak_kib": _peak_kib()}


def child_verify(out: str, vkey: str) -> dict[str, Any]:
    from depository.verifier.package import package_result

    before = _rss_kib()
    t0, c0 = time.perf_counter(), _cpu_s()
    res = package_result(Path(out), [vkey])
    elapsed, cpu = time.perf_counter() - t0, _cpu_s() - c0
    if not res.ok:
        raise SystemExit(f"verification failed: {res.problems[:3]}")
    return {"verify_s": elapsed, "verify_cpu_s": cpu, "verify_rss_before_kib": before,
            "verify_peak_kib": _peak_kib()}


def _run_child(*args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], check=True,
                          capture_output=True, text=True)
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--counts", default="1000,10000")
    p.add_argument("--size", type=int, default=1024, help="bytes per artifact")
    p.add_argument("--dir", action="store_true",
                   help="export to a bag directory instead of a zip")
    p.add_argument("--json", dest="json_out", help="also write the results here")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        verb, *rest = args.child
        fn = {"build": lambda: child_build(rest[0], int(rest[1]), int(rest[2])),
              "export": lambda: child_export(rest[0], rest[1]),
              "floor": lambda: child_floor(rest[0], rest[1]),
              "verify": lambda: child_verify(rest[0], rest[1])}[verb]
        print(json.dumps(fn()))
        return
    scratch = Path(tempfile.mkdtemp(prefix="depository-bench-evidence-"))
    rows = []
    try:
        for count in (int(c) for c in args.counts.split(",")):
            store = scratch / f"store-{count}"
            row: dict[str, Any] = {"count": count}
            row.update(_run_child("build", str(store), str(count), str(args.size)))
            case = scratch / (f"case-{count}" if args.dir else f"case-{count}.zip")
            row.update(_run_child("export", str(store), str(case)))
            row.update(_run_child("floor", str(store), str(scratch / f"floor-{count}.zip")))
            vkey = (store / "keys/log.vkey").read_text().strip()
            row.update(_run_child("verify", str(case), vkey))
            row["loadavg"] = os.getloadavg()[0]
            rows.append(row)
            print(f"{count:>7} artifacts ({'dir' if args.dir else 'zip'}): export "
                  f"{row['export_s']:6.1f} s wall, {row['export_cpu_s']:6.1f} s CPU (floor "
                  f"{row['floor_s']:5.1f} s wall, {row['floor_cpu_s']:5.1f} s CPU); peak RSS "
                  f"{row['peak_kib'] / 1024:6.1f} MiB (before export "
                  f"{row['rss_before_kib'] / 1024:6.1f} MiB); verify {row['verify_s']:5.1f} s "
                  f"wall, {row['verify_cpu_s']:5.1f} s CPU, peak "
                  f"{row['verify_peak_kib'] / 1024:6.1f} MiB; {row['out_bytes'] / 2**20:6.1f} "
                  f"MiB, {row['payload_files']} payload files; load average "
                  f"{row['loadavg']:.1f} on {os.cpu_count()} CPUs",
                  flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "size": args.size}
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
