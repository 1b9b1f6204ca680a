"""Fresh stores and servers for a load run, a small HTTP client, seeding, and the
environment fingerprint. No locust here.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from depository.loadtests.common import artifact_path, small_body
from depository.store import Store, format_time
from depository.store.config import default_config_dict

QUOTA_PRODUCT = "lt-quota"
LOAD_PRODUCTS = ("ai-assistant", "ai-avatar", "gurukul", "enforcement")
# Per-product artifact-count quota of a load-test store (see loadtest_config).
LOAD_ARTIFACT_QUOTA = 1_000_000_000


class ServerError(RuntimeError):
    """The server could not be started, or died."""


def loadtest_config(origin: str, *, quota_bytes: int) -> dict[str, Any]:
    """The default configuration (targets, products, quotas) plus one small-quota product
    for the quota-enforcement check."""
    data = default_config_dict(origin)
    # The products' artifact-count quotas are the deployment's policy (100,000 each by
    # default), not a scale limit: a run must measure the server, not stop at a quota it
    # was not set up to test (100 writers at ~2,000 writes/s fill 4 x 100,000 in 200 s).
    # Only QUOTA_PRODUCT below is meant to fill up.
    for pid in LOAD_PRODUCTS:
        data["products"][pid]["quota"]["artifacts"] = LOAD_ARTIFACT_QUOTA
    data["products"][QUOTA_PRODUCT] = {
        "name": "Load test quota product",
        "description": "a small storage quota, filled past its limit by the load suite",
        "metadata_schema": {"type": "object"},
        "quota": {"bytes": quota_bytes, "artifacts": 1_000_000},
    }
    return data


@dataclass
class Tokens:
    """Bearer tokens for a run: per product a writer and a reader, plus an auditor."""

    products: dict[str, dict[str, str]] = field(default_factory=dict)
    auditor: str = ""
    admin: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"products": self.products, "auditor": self.auditor}


def init_store(path: Path, *, quota_bytes: int) -> Tokens:
    """Create a store with the load-test configuration and issue the run's tokens."""
    with Store.init(path, config=loadtest_config("loadtest.depository.local/log",
                                                  quota_bytes=quota_bytes),
                    actor="loadtest") as store:
        tokens = Tokens()
        for pid in store.config.products:
            tokens.products[pid] = {
                role: store.create_token(role=role, actor="loadtest", product=pid,
                                         note=f"load test {role}")[0]
                for role in ("writer", "reader")
            }
        tokens.auditor = store.create_token(role="auditor", actor="loadtest",
                                            note="load test auditor")[0]
        tokens.admin = store.create_token(role="admin", actor="loadtest",
                                          note="load test admin")[0]
    return tokens


@dataclass
class Seeded:
    count: int
    seconds: float
    how: str  # "library" or "http"
    names: dict[str, list[str]]
    window: tuple[str, str] | None


def seed_library(path: Path, count: int, *, start: int = 0, products: Sequence[str] = LOAD_PRODUCTS,
                 sample: int = 2000, size: int = 256,
                 progress: Callable[[int, int], None] | None = None) -> Seeded:
    """Add ``count`` small artifacts through the library (bulk, group commit)."""
    t0 = time.perf_counter()
    first = format_time(datetime.now(UTC))
    names: dict[str, list[str]] = {p: [] for p in products}
    every = max(1, count // sample) if sample else count + 1
    with Store.open(path) as store:
        window: list[Future[Any]] = []
        for i in range(start, start + count):
            product = products[i % len(products)]
            name = f"seed/{i:08d}"
            body = small_body("seed", 0, i, size)
            meta = {"k": str(i // len(products) % 10)}
            window.append(store.put_async(product, name, body, metadata=meta,
                                          provenance={"seeded": True}, actor="loadtest-seed"))
            if (i - start) % every == 0:
                names[product].append(name)
            if len(window) >= 2000:
                for f in window:
                    f.result()
                window = []
                if progress:
                    progress(i - start + 1, count)
        for f in window:
            f.result()
        store.checkpoint()
    last = format_time(datetime.now(UTC))
    return Seeded(count, time.perf_counter() - t0, "library", names, (first, last))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVE_ENV = "DEPOSITORY_LOADTEST_SERVE_CMD"


def serve_command(store: Path, port: int) -> list[str]:
    """How to start ``depository serve`` for ``store`` on 127.0.0.1:``port``.

    ``$DEPOSITORY_LOADTEST_SERVE_CMD`` (a command prefix, split on spaces) replaces the
    default, e.g. to load-test another build of the service.
    """
    tail = ["--store", str(store), "--host", "127.0.0.1", "--port", str(port)]
    if os.environ.get(SERVE_ENV):
        return os.environ[SERVE_ENV].split() + tail
    return [sys.executable, "-c",
            "import sys; from depository.cli._serve import serve; "
            "sys.exit(serve(prog_name='depository serve'))", *tail]


class Server:
    """A ``depository serve`` process on 127.0.0.1 for one store."""

    def __init__(self, store: Path, log_path: Path) -> None:
        self.store = store
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        last = "no attempt"
        for _ in range(3):
            self.port = free_port()
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            self.proc = subprocess.Popen(serve_command(self.store, self.port), stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last = f"exited with code {self.proc.returncode}"
                    break
                try:
                    status, _, _ = request(self.url, "GET", "/health", timeout=2)
                    if status == 200:
                        return
                    last = f"/health answered {status}"
                except OSError as exc:
                    last = f"/health: {exc}"
                time.sleep(0.1)
            else:
                last = f"not healthy after {timeout:.0f} s ({last})"
            self.stop()
        tail = self.log_tail()
        raise ServerError(f"could not start `depository serve` for {self.store}: {last}"
                          + (f"\n--- server log ---\n{tail}" if tail else ""))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def peak_rss(self) -> int | None:
        """Peak resident set (VmHWM, bytes) of the server process."""
        if self.proc is None:
            return None
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return None

    def rss(self) -> int | None:
        if self.proc is None:
            return None
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return None

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return self.exit_code
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait()
        self.exit_code = self.proc.returncode
        self.proc = None
        return self.exit_code

    def log_tail(self, n: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""


def request(base: str, method: str, path: str, *, body: bytes | None = None,
            headers: Mapping[str, str] | None = None, timeout: float = 60.0,
            query: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request with the standard library: (status, headers, body)."""
    parts = urlsplit(base)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname or "", parts.port, timeout=timeout)
    try:
        url = path + ("?" + urlencode(query) if query else "")
        conn.request(method, url, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def get_json(base: str, path: str, token: str, **kw: Any) -> tuple[int, Any]:
    status, _, data = request(base, "GET", path, headers={"Authorization": f"Bearer {token}"},
                              **kw)
    try:
        return status, json.loads(data or b"null")
    except ValueError:
        return status, None


def seed_http(base: str, tokens: Tokens, count: int, *, start: int = 0,
              products: Sequence[str] = LOAD_PRODUCTS, sample: int = 2000, size: int = 256,
              workers: int = 8) -> Seeded:
    """Add ``count`` small artifacts through the API (a remote target)."""
    t0 = time.perf_counter()
    first = format_time(datetime.now(UTC))
    names: dict[str, list[str]] = {p: [] for p in products}
    every = max(1, count // sample) if sample else count + 1

    def one(i: int) -> None:
        product = products[i % len(products)]
        name = f"seed/{i:08d}"
        writer = tokens.products[product]["writer"]
        status, _, data = request(base, "PUT", artifact_path(product, name),
                                  body=small_body("seed", 0, i, size), headers={
                                      "Authorization": f"Bearer {writer}",
                                      "Depository-Metadata": json.dumps(
                                          {"k": str(i // len(products) % 10)}),
                                      "Depository-Provenance": json.dumps({"seeded": True}),
                                  })
        if status not in (200, 201):
            raise ServerError(f"seeding {product}/{name}: HTTP {status}: {data[:200]!r}")

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(start, start + count)))
    for i in range(start, start + count, every):
        names[products[i % len(products)]].append(f"seed/{i:08d}")
    last = format_time(datetime.now(UTC))
    return Seeded(count, time.perf_counter() - t0, "http", names, (first, last))


# ------------------------------------------------------------------- environment
_PACKAGES = ("depository", "locust", "gevent", "geventhttpclient", "starlette", "uvicorn",
             "cryptography", "rfc8785", "matplotlib")


def environment() -> dict[str, Any]:
    """CPU model and count, memory, OS, Python, SQLite and package versions, git commit."""
    info: dict[str, Any] = {
        "cpu_model": None, "cpu_count": os.cpu_count(), "memory_bytes": None,
        "os": platform.platform(), "kernel": platform.release(),
        "python": platform.python_version(), "python_implementation":
        platform.python_implementation(), "sqlite": sqlite3.sqlite_version,
        "packages": {}, "git_commit": None, "git_dirty": None, "hostname": socket.gethostname(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_bytes"] = int(line.split()[1]) * 1024
    for pkg in _PACKAGES:
        try:
            info["packages"][pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            info["packages"][pkg] = None
    repo = Path(__file__).resolve().parents[2]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0:
            info["git_commit"] = out.stdout.strip()
            st = subprocess.run(["git", "-C", str(repo), "status", "--porcelain",
                                 "--untracked-files=no"], capture_output=True, text=True,
                                timeout=10)
            info["git_dirty"] = bool(st.stdout.strip())
    return info
