"""S3 Object Lock backend benchmark: the same store operations through the S3 backend and
through the local backend, in the same run, reported as ratios (S3 / local).

    .venv/bin/python benchmarks/s3.py                       # starts its own Ceph RGW
    .venv/bin/python benchmarks/s3.py --quick               # smoke run, ~1 minute
    .venv/bin/python benchmarks/s3.py --endpoint http://127.0.0.1:7480 --bucket NAME
    .venv/bin/python benchmarks/s3.py --json out.json

Measures:

small   ``--small`` artifacts of ``--small-size`` bytes from ``--writers`` threads
        calling ``Store.put`` (durable, acknowledged): writes/s for each backend.
large   one artifact of each ``--large`` size (default 500 MB and 5 GB) streamed from a
        generator (constant memory): MB/s for each backend, the process's RSS growth
        over its baseline while the put runs (sampled every 0.1 s), and, for S3, where
        the time goes: spooling and hashing the stream, the multipart upload, and the
        end-to-end verification (``ChecksumSHA256`` where the endpoint enforces it,
        otherwise a read-back hash).

Without ``--endpoint`` a throwaway single-node Ceph cluster (bluestore on a sparse file,
RGW) is started with ``scripts/ceph-rgw-local.sh`` and stopped at the end; it needs the
Debian packages ``ceph-mon ceph-osd ceph-mgr radosgw ceph-common uuid-runtime curl``.
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
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from depository.store import Store  # noqa: E402
from depository.store._s3 import S3Blobs, make_client  # noqa: E402
from depository.store.config import default_config_dict  # noqa: E402

MB = 1000**2
GB = 1000**3


# --------------------------------------------------------------------------- helpers


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    """Peak RSS of this process (and of given pids) while a block runs."""

    def __init__(self, pids: dict[str, int] | None = None, every: float = 0.1) -> None:
        self.pids = pids or {}
        self.every = every
        self.base = 0
        self.peak = 0
        self.others: dict[str, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._t: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self.base = self.peak = rss_bytes()
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError):
                r = rss_bytes(pid)
                self.others[name] = (r, r)
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, rss_bytes())
            for name, pid in self.pids.items():
                with contextlib.suppress(OSError):
                    lo, hi = self.others[name]
                    self.others[name] = (lo, max(hi, rss_bytes(pid)))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._t is not None
        self._t.join()


class Generated(io.RawIOBase):
    """``size`` bytes of incompressible data, produced on the fly (constant memory)."""

    def __init__(self, size: int, seed: bytes) -> None:
        super().__init__()
        self.left = size
        block = bytearray()
        while len(block) < 4 * 1024 * 1024:
            block += os.urandom(65536)
        self.block = bytes(block) + seed[:16].ljust(16, b"\0")
        self.pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = min(len(buf), self.left)
        out = 0
        view = memoryview(buf)
        while out < n:
            take = min(n - out, len(self.block) - self.pos)
            view[out:out + take] = self.block[self.pos:self.pos + take]
            self.pos = (self.pos + take) % len(self.block)
            out += take
        self.left -= n
        return n


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def cluster(block_size: int) -> Iterator[tuple[str, dict[str, int]]]:
    d = Path(tempfile.mkdtemp(prefix="depository-bench-ceph-"))
    env = dict(os.environ, BLOCK_SIZE=str(block_size))
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ceph-rgw-local.sh"), str(d), str(free_port()),
         str(free_port())], capture_output=True, text=True, env=env, timeout=300,
        start_new_session=True)
    if proc.returncode != 0:
        shutil.rmtree(d, ignore_errors=True)
        sys.exit(f"could not start Ceph: {proc.stdout}\n{proc.stderr}")
    out = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    pids = {p.stem: int(p.read_text()) for p in (d / "run").glob("*.pid")}
    print(f"# Ceph RGW up at {out['endpoint']} in {time.monotonic() - t0:.1f} s", flush=True)
    try:
        yield out["endpoint"], pids
    finally:
        for pid in pids.values():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        time.sleep(2)
        for pid in pids.values():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)


def config(backend: dict[str, Any] | None, max_size: int) -> dict[str, Any]:
    cfg = default_config_dict("bench.example/log")
    cfg["max_artifact_size"] = max_size
    for p in cfg["products"].values():
        p["quota"] = {"bytes": 100 * GB, "artifacts": 10_000_000}
    if backend is not None:
        cfg["backend"] = backend
        cfg["inline_max"] = 0
    return cfg


class Phases:
    """Wall time spent in S3Blobs' phases (spool+hash, upload, verify), summed."""

    def __init__(self, blobs: S3Blobs) -> None:
        self.t: dict[str, float] = {"spool_and_hash": 0.0, "upload": 0.0, "verify": 0.0}
        for attr, name in (("_spool", "spool_and_hash"), ("_put_single", "upload"),
                           ("_put_multipart", "upload"), ("_hash_version", "verify")):
            setattr(blobs, attr, self._wrap(getattr(blobs, attr), name))

    def _wrap(self, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        def run(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.t[name] += time.perf_counter() - t0

        return run


# --------------------------------------------------------------------------- benchmarks


def bench_small(store: Store, n: int, size: int, writers: int) -> dict[str, Any]:
    lat: list[float] = []
    lock = threading.Lock()
    counter = iter(range(n))
    tag = uuid.uuid4().hex[:8]

    def work() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            body = f"{tag}-{i}-".encode().ljust(size, b"x")
            t0 = time.perf_counter()
            store.put("ai-assistant", f"{tag}/{i}", body)
            with lock:
                lat.append(time.perf_counter() - t0)

    for i in range(min(20, writers)):  # warm-up (connections, first-use pools): not timed
        store.put("ai-assistant", f"{tag}/warm/{i}", b"warm-up %d" % i)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    return {"writes": n, "seconds": round(wall, 2), "writes_per_s": round(n / wall, 1),
            "p50_ms": round(statistics.median(lat) * 1000, 1),
            "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 1)}


def bench_large(store: Store, size: int, pids: dict[str, int] | None) -> dict[str, Any]:
    phases = Phases(store.blobs) if isinstance(store.blobs, S3Blobs) else None
    stream = io.BufferedReader(Generated(size, uuid.uuid4().bytes), buffer_size=1024 * 1024)
    with RssSampler(pids) as rss:
        t0 = time.perf_counter()
        r = store.put("ai-avatar", f"large-{uuid.uuid4().hex[:8]}", stream)
        wall = time.perf_counter() - t0
    out: dict[str, Any] = {
        "bytes": size, "seconds": round(wall, 2), "MB_per_s": round(size / MB / wall, 1),
        "rss_base_MB": round(rss.base / MB, 1),
        "rss_growth_MB": round((rss.peak - rss.base) / MB, 1), "sha256": r.sha256,
    }
    if rss.others:
        out["cluster_rss_MB"] = {k: [round(lo / MB), round(hi / MB)]
                                 for k, (lo, hi) in rss.others.items()}
    if phases is not None:
        out["phases_s"] = {k: round(v, 2) for k, v in phases.t.items()}
        assert isinstance(store.blobs, S3Blobs)
        out["verify_mode"] = ("ChecksumSHA256" if store.blobs.checksum_enforced
                              else "read-back SHA-256")
    return out


def run(args: argparse.Namespace, endpoint: str, bucket: str, pids: dict[str, int] | None
        ) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="depository-bench-s3-", dir=args.workdir))
    sizes = [int(float(x.rstrip("GBMgbm")) * (GB if x.upper().endswith("GB") else MB))
             for x in args.large.split(",") if x]
    max_size = max([*sizes, 500 * MB])
    backend = {"type": "s3", "endpoint_url": endpoint, "bucket": bucket, "region": "us-east-1",
               "prefix": f"bench-{uuid.uuid4().hex[:8]}/", "part_size": args.part_size,
               "concurrency": args.concurrency}
    results: dict[str, Any] = {"small": {}, "large": []}
    try:
        stores = {
            "local": Store.init(work / "local", config=config(None, max_size)),
            "s3": Store.init(work / "s3", config=config(backend, max_size)),
        }
        try:
            for name, s in stores.items():
                print(f"# small writes, {name} ...", flush=True)
                results["small"][name] = bench_small(s, args.small, args.small_size,
                                                     args.writers)
            loc, s3r = results["small"]["local"], results["small"]["s3"]
            results["small"]["ratio_s3_to_local"] = round(
                s3r["writes_per_s"] / loc["writes_per_s"], 4)
            for size in sizes:
                row: dict[str, Any] = {"bytes": size}
                for name, s in stores.items():
                    print(f"# {size / MB:.0f} MB artifact, {name} ...", flush=True)
                    row[name] = bench_large(s, size, pids if name == "s3" else None)
                    if name == "local":  # keep the disk free for the next size
                        (s.blobs.path(row[name]["sha256"])).unlink(missing_ok=True)
                row["ratio_s3_to_local"] = round(
                    row["s3"]["MB_per_s"] / row["local"]["MB_per_s"], 3)
                results["large"].append(row)
        finally:
            for s in stores.values():
                s.close()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", help="an S3 endpoint already running (else Ceph is started)")
    ap.add_argument("--bucket", help="an Object Lock bucket there (else one is created)")
    ap.add_argument("--small", type=int, default=1000, help="small artifacts (1000)")
    ap.add_argument("--small-size", type=int, default=1024, help="their size (1024)")
    ap.add_argument("--writers", type=int, default=16, help="writer threads (16)")
    ap.add_argument("--large", default="500MB,5GB", help="large sizes (500MB,5GB)")
    ap.add_argument("--part-size", type=int, default=16 * 1024 * 1024)
    ap.add_argument("--concurrency", type=int, default=4, help="parts in flight (4)")
    ap.add_argument("--workdir", default=None, help="scratch parent directory (/tmp)")
    ap.add_argument("--quick", action="store_true", help="200 small, 100 MB large")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    if args.quick:
        args.small, args.large = 200, "100MB"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testkey")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testsecret")
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    largest = max([5 * GB] if "5GB" in args.large.upper() else [1 * GB])
    with contextlib.ExitStack() as stack:
        if args.endpoint:
            endpoint, pids = args.endpoint, None
        else:
            endpoint, pids = stack.enter_context(cluster(block_size=largest * 3 + 4 * GB))
        bucket = args.bucket
        if bucket is None:
            bucket = f"bench-{uuid.uuid4().hex[:12]}"
            make_client(endpoint, "us-east-1", None).create_bucket(
                Bucket=bucket, ObjectLockEnabledForBucket=True)
        t0 = time.time()
        results = run(args, endpoint, bucket, pids)
    meta = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
            "host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "load_avg_at_end": os.getloadavg(), "endpoint": "ceph-rgw-local" if pids else endpoint,
            "args": vars(args)}
    results["meta"] = meta
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
