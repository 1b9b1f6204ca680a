"""ADR 0012's measurement: the offline verifier's per-leaf hot loop under each native option.

The hot loop is ``depository.verifier.store._scan_chunk`` over aligned 4,096-leaf chunks
of a real store: canonical check of each leaf, envelope and body checks, the derived rows
a record implies, the leaf hash and the perfect subtrees with the stored node rows.
Options, each on the same leaves in the same run, rounds interleaved, CPU time
(``time.process_time``) median per leaf:

python    the pure-Python code as it is (the specification);
mypyc     the same two modules (``tlog/record.py``, ``verifier/store.py``) compiled by
          mypyc (ships with mypy, a dev dependency);
cython    the same two modules compiled by Cython 3 in pure-Python mode (needs
          ``pip install cython``; skipped if absent);
c         the hand-written C extension ``depository.verifier._cverify`` decoding each
          leaf to objects (the first native engine: ``scan`` over rows Python read);
c-db      the native engine as ``store_result(native=True)`` runs it now: its own SQLite
          connection (``_cverify.Db.chunk``) reading leaves, artifact and inline_blob rows,
          puts proven sound without decoding them to objects, rows confirmed (artifact
          compared, artifact_meta folded into the keyed digest);
sqlite    moving the derived-table comparison into SQLite's C: one set-based query that
          checks every ``artifact`` row against its ``artifact.put`` leaf with JSON
          functions (no Python per row), against the Python row-by-row merge it replaces.

    .venv/bin/python benchmarks/verify_native.py --store DIR [--leaves 65536] [--rounds 3]
        [--no-compiled]   # skip the mypyc and Cython builds

A store: ``benchmarks/store.py --only verify --records 200000 --keep`` (or any store).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from depository.verifier import store as vstore  # noqa: E402


def build_compiled(work: Path, tool: str) -> Any | None:
    """Copy record.py and store.py as ``hot_record``/``hot_store`` and compile them."""
    d = work / tool
    d.mkdir(parents=True, exist_ok=True)
    rec = (ROOT / "depository/tlog/record.py").read_text()
    # mypyc refuses surrogate code points in literals; the same comparison via chr().
    rec = rec.replace('max(key) >= "\\ud800"', "max(key) >= chr(0xD800)")
    (d / "hot_record.py").write_text(rec)
    st = (ROOT / "depository/verifier/store.py").read_text().replace(
        "from depository.tlog.record import", "from hot_record import")
    (d / "hot_store.py").write_text(st)
    env = dict(os.environ, PYTHONPATH=str(ROOT), MYPYPATH=str(ROOT))
    if tool == "mypyc":
        exe = Path(sys.executable).parent / "mypyc"
        cmd = [str(exe), "hot_record.py", "hot_store.py"]
    else:
        exe = shutil.which("cythonize") or str(Path(sys.executable).parent / "cythonize")
        if not Path(exe).exists():
            print(f"{tool}: not installed (pip install cython); skipped", file=sys.stderr)
            return None
        cmd = [exe, "-3", "-i", "hot_record.py", "hot_store.py"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"{tool}: build failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}",
              file=sys.stderr)
        return None
    print(f"{tool}: built in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    sys.path.insert(0, str(d))
    for m in ("hot_record", "hot_store"):
        sys.modules.pop(m, None)
    mod = importlib.import_module("hot_store")
    sys.path.remove(str(d))
    for m in ("hot_record", "hot_store"):
        sys.modules.pop(m, None)  # the next tool imports its own build
    return mod


def scan_runner(mod: Any, conn: Any, n: int, ctx: Any, native: bool,
                cdb: Any = None) -> Callable[[], None]:
    step = 1 << mod.CHUNK_LEVEL
    key = os.urandom(64)

    def run() -> None:
        for s in range(0, n, step):
            e = min(s + step, n)
            if cdb is not None:
                ch = mod._scan_chunk(conn, s, e, mod.CHUNK_LEVEL, [], ctx, True, True, key, cdb)
                if ch.confirmed is None:
                    raise AssertionError(f"chunk {s} not confirmed")
            elif native:
                mod._scan_chunk(conn, s, e, mod.CHUNK_LEVEL, [], ctx, True)
            else:
                mod._scan_chunk(conn, s, e, mod.CHUNK_LEVEL, [], ctx)
    return run


SQL_ARTIFACT = """
SELECT count(*) FROM artifact a LEFT JOIN log l ON l.idx = a.log_idx
WHERE l.idx IS NULL
   OR json_extract(l.leaf, '$.type') IS NOT 'artifact.put'
   OR a.id IS NOT json_extract(l.leaf, '$.body.artifact_id')
   OR a.product IS NOT json_extract(l.leaf, '$.product')
   OR a.name IS NOT json_extract(l.leaf, '$.body.name')
   OR a.sha256 IS NOT json_extract(l.leaf, '$.body.sha256')
   OR a.size IS NOT json_extract(l.leaf, '$.body.size')
   OR a.media_type IS NOT json_extract(l.leaf, '$.body.media_type')
   OR a.metadata IS NOT json_extract(l.leaf, '$.body.metadata')
   OR a.provenance IS NOT json_extract(l.leaf, '$.body.provenance')
   OR a.retain_until IS NOT json_extract(l.leaf, '$.body.retain_until')
   OR a.storage IS NOT json_extract(l.leaf, '$.body.storage')
   OR a.actor IS NOT json_extract(l.leaf, '$.actor')
   OR a.created IS NOT json_extract(l.leaf, '$.time')
"""


def sql_runner(conn: Any, n: int) -> Callable[[], None]:
    def run() -> None:
        conn.execute(SQL_ARTIFACT + " AND a.log_idx < ?", (n,)).fetchone()
    return run


def py_compare_runner(conn: Any, n: int) -> Callable[[], None]:
    """The Python side the SQL replaces: read the artifact rows, compare with the rows
    the records imply (here: the same rows, built from the parsed leaves beforehand)."""
    want = [tuple(r) for r in conn.execute(
        "SELECT log_idx, id, product, name, sha256, size, media_type, metadata, provenance,"
        " retain_until, storage, actor, created, log_idx FROM artifact WHERE log_idx < ? "
        "ORDER BY log_idx", (n,))]

    def run() -> None:
        it = iter(conn.execute(
            "SELECT log_idx, id, product, name, sha256, size, media_type, metadata, "
            "provenance, retain_until, storage, actor, created, log_idx FROM artifact "
            "WHERE log_idx < ? ORDER BY log_idx", (n,)))
        for w in want:
            got = next(it)
            if got[:1] != w[:1] or got[1:] != w[1:]:
                raise AssertionError("differs")
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", required=True)
    p.add_argument("--leaves", type=int, default=65536)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--work", help="build directory (default: a temporary one)")
    p.add_argument("--no-compiled", action="store_true", help="skip mypyc and Cython")
    args = p.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="verify-native-"))
    db = Path(args.store) / "depository.db"
    conn = vstore._open_ro(db)
    n = min(args.leaves, conn.execute("SELECT count(*) FROM log").fetchone()[0])
    ctx = (None, None)
    runners: dict[str, Callable[[], None]] = {
        "python": scan_runner(vstore, conn, n, ctx, False),
    }
    if vstore._NATIVE is not None:
        runners["c"] = scan_runner(vstore, conn, n, ctx, True)
        runners["c-db"] = scan_runner(vstore, conn, n, ctx, True, vstore._open_native(db))
    for tool in () if args.no_compiled else ("mypyc", "cython"):
        mod = build_compiled(work, tool)
        if mod is not None:
            runners[tool] = scan_runner(mod, conn, n, ctx, False)
    runners["derived: python merge"] = py_compare_runner(conn, n)
    runners["derived: sqlite set-based"] = sql_runner(conn, n)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for fn in runners.values():
        fn()  # warm the page cache and the memos
    for _ in range(args.rounds):
        for name, fn in runners.items():
            c0 = time.process_time()
            fn()
            times[name].append(time.process_time() - c0)
    base = statistics.median(times["python"])
    print(f"store {args.store}, {n:,} leaves, {args.rounds} interleaved rounds, "
          f"load average {os.getloadavg()[0]:.2f}")
    print("| option | CPU µs per leaf (median) | leaves per CPU-s | vs python |")
    print("|---|---:|---:|---:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        ratio = f"{base / med:.2f}×" if not name.startswith("derived") else ""
        print(f"| {name} | {med / n * 1e6:.2f} | {n / med:,.0f} | {ratio} |")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
