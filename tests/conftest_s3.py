"""Fixtures for the S3 backend's tests: a real single-node Ceph cluster with the RADOS
Gateway on 127.0.0.1, started once per test session by ``scripts/ceph-rgw-local.sh``.

Import the fixtures into a test module (``from conftest_s3 import ceph, s3  # noqa``).

- One cluster serves every xdist worker of a run: the first worker that needs it starts
  it (under a file lock in the run's shared temporary directory); the last one to finish
  stops it by killing its pids. A watchdog also kills it if pytest itself dies.
- ``DEPOSITORY_TEST_S3_ENDPOINT`` (with ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``)
  points the tests at an endpoint that is already running instead.
- No Ceph packages: the tests **fail** with the command that installs them. They never
  skip, and they never use a mock.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from _shared_server import free_port, shared_server
from botocore.config import Config as BotoConfig

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "ceph-rgw-local.sh"
PACKAGES = "ceph-mon ceph-osd ceph-mgr radosgw ceph-common uuid-runtime curl"
TOOLS = ("monmaptool", "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "uuidgen",
         "curl")
ACCESS_KEY, SECRET_KEY, REGION = "testkey", "testsecret", "us-east-1"


@dataclass(frozen=True)
class Cluster:
    endpoint: str
    directory: Path | None

    def client(self) -> Any:
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            config=BotoConfig(s3={"addressing_style": "path"},
                              request_checksum_calculation="when_required",
                              response_checksum_validation="when_required"),
        )


@dataclass
class S3Env:
    """The running endpoint, a session bucket with Object Lock, and config helpers."""

    cluster: Cluster
    bucket: str
    client: Any

    def backend(self, prefix: str | None = None, **over: Any) -> dict[str, Any]:
        cfg = {"type": "s3", "endpoint_url": self.cluster.endpoint, "bucket": self.bucket,
               "region": REGION, "prefix": prefix or f"t-{uuid.uuid4().hex[:12]}/"}
        cfg.update(over)
        return cfg

    def config(self, base: dict[str, Any], *, anchors: bool = True,
               prefix: str | None = None, **over: Any) -> dict[str, Any]:
        """``base`` (a store configuration dict) on this bucket, under a fresh prefix."""
        prefix = prefix or f"t-{uuid.uuid4().hex[:12]}/"
        cfg = dict(base)
        cfg["backend"] = self.backend(prefix, **over)
        cfg["inline_max"] = 0
        if anchors:
            cfg["anchors"] = {"url": f"s3://{self.bucket}/{prefix}checkpoints/"}
        return cfg

    def new_bucket(self, *, lock: bool = True) -> str:
        name = f"dep-{uuid.uuid4().hex[:16]}"
        self.client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
        return name


def _alive(pids: list[int]) -> bool:
    for pid in pids:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
    return bool(pids)


def _stop(state: dict[str, Any]) -> None:
    pids = [int(p) for p in state.get("pids", [])]
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_exists(p) for p in pids):
        time.sleep(0.2)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError, TypeError):
        os.kill(int(state["watchdog"]), signal.SIGTERM)
    shutil.rmtree(state.get("dir", ""), ignore_errors=True)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie child counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def start_cluster(directory: Path, *, block_size: int | None = None, timeout: float = 240
                  ) -> dict[str, Any]:
    """Start a cluster in ``directory``; returns its state (endpoint, pids, dir)."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(
            f"the S3 backend's tests need a real Ceph cluster, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed. Install the Debian "
            f"packages (as root): apt-get update && apt-get install -y "
            f"--no-install-recommends {PACKAGES}   (or run `make test`, which does)",
            pytrace=False,
        )
    port, mon = free_port(), free_port()
    env = dict(os.environ)
    if block_size:
        env["BLOCK_SIZE"] = str(block_size)
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", str(SCRIPT), str(directory), str(port), str(mon)], capture_output=True,
        text=True, timeout=timeout, env=env, start_new_session=True,
    )
    if proc.returncode != 0:
        logs = ""
        for log in sorted((directory / "log").glob("*.log")) if directory.is_dir() else []:
            logs += f"\n--- {log.name} (tail)\n" + "\n".join(
                log.read_text(errors="replace").splitlines()[-15:])
        pids = (directory / "run").glob("*.pid") if directory.is_dir() else []
        _stop({"pids": [int(p.read_text()) for p in pids if p.read_text().strip()]})
        pytest.fail(f"scripts/ceph-rgw-local.sh failed ({proc.returncode}):\n{proc.stdout}\n"
                    f"{proc.stderr}{logs}", pytrace=False)
    out = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    pids = [int(p) for p in out["pids"].split()]
    return {"endpoint": out["endpoint"], "pids": pids, "dir": str(directory),
            "startup_s": round(time.monotonic() - t0, 1)}


def _watchdog(owner: int, pids: list[int], directory: str) -> int:
    """Kill the cluster if the pytest process that owns it dies without stopping it."""
    script = (f"while kill -0 {owner} 2>/dev/null; do sleep 2; done; "
              f"kill -9 {' '.join(map(str, pids))} 2>/dev/null; rm -rf '{directory}'")
    p = subprocess.Popen(["bash", "-c", script], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p.pid


@pytest.fixture(scope="session")
def ceph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The session's Ceph RGW endpoint (started on first use, stopped at the end)."""
    external = os.environ.get("DEPOSITORY_TEST_S3_ENDPOINT")
    if external:
        yield Cluster(external, None)
        return

    def start(owner: int) -> dict[str, Any]:
        state = start_cluster(Path(tempfile.mkdtemp(prefix="depository-ceph-")))
        state["watchdog"] = _watchdog(owner, state["pids"], state["dir"])
        return state

    with shared_server(tmp_path_factory, "ceph-cluster", start=start,
                       alive=lambda state: _alive(state["pids"]), stop=_stop) as state:
        yield Cluster(state["endpoint"], Path(state["dir"]))


@pytest.fixture(scope="session")
def s3(ceph: Cluster) -> Iterator[S3Env]:
    """A bucket with Object Lock on the session's cluster, and AWS credentials in the env."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_ACCESS_KEY_ID", os.environ.get("AWS_ACCESS_KEY_ID", ACCESS_KEY))
    mp.setenv("AWS_SECRET_ACCESS_KEY", os.environ.get("AWS_SECRET_ACCESS_KEY", SECRET_KEY))
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
    mp.delenv("AWS_PROFILE", raising=False)
    client = ceph.client()
    bucket = f"dep-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    try:
        yield S3Env(ceph, bucket, client)
    finally:
        mp.undo()
