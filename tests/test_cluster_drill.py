"""The SIGKILL drill of issue 17 (ADR 0014): two ``depository serve`` nodes on one real
PostgreSQL database (tests/_pg.py), clients writing through both, the sequencer killed
with SIGKILL mid-run.

Checked afterwards: the other node took over and logged a ``sequencer.elected`` record
naming the dead one; every write a client was told succeeded (2xx) is in the store with
its bytes (0 lost); a follower refuses to sign while no sequencer is reachable; and the
whole store verifies offline. The offline verifier reads SQLite, so the PostgreSQL store
is exported into a SQLite store directory by ``depository.store.migrate.export`` (the
``depository export`` of issue 17's migration work), then replayed by
``depository.verifier``.

The SIGKILL drill runs twice: bytes in local files, and bytes in S3 Object Lock on the
suite's Ceph RGW (tests/conftest_s3.py), where every acknowledged object must be in the
bucket and re-hashed there by the replay.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _pg import PgDatabase, pg_db, pg_server  # noqa: F401
from click.testing import CliRunner
from conftest_s3 import S3Env, ceph, s3  # noqa: F401

from depository.cli import main
from depository.store import NotSequencerError, Store
from depository.store.cluster import open_node
from depository.store.config import default_config_dict
from depository.tlog.record import parse_record

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SECRET = b"drill-peer-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_config(db: PgDatabase, s3env: S3Env | None = None) -> dict[str, Any]:
    cfg = default_config_dict("drill.example/log")
    if s3env is not None:
        cfg = s3env.config(cfg)
    cfg["checkpoint"] = {"every_entries": 200, "every_ms": 300}
    cfg["engine"] = {"type": "postgresql", "dsn": db.service_dsn}
    return cfg


def init_store(path: Path, db: PgDatabase, s3env: S3Env | None = None) -> tuple[str, str]:
    """A PostgreSQL store and a writer token for gurukul; (verifier key, token secret)."""
    s = Store.init(path, config=pg_config(db, s3env), admin_dsn=db.owner_dsn)
    try:
        secret, _ = s.create_token(role="writer", product="gurukul", actor="drill")
        return s.verifier_key, secret
    finally:
        s.close()


class Node:
    """One ``depository serve --node-id`` process (its own session, killable)."""

    def __init__(self, store: Path, node_id: str, secret_file: Path, log: Path) -> None:
        self.id = node_id
        self.port = free_port()
        self.peer = f"127.0.0.1:{free_port()}"
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "depository", "serve", "--store", str(store),
             "--port", str(self.port), "--node-id", node_id, "--advertise", self.peer,
             "--peer-secret", str(secret_file), "--log-level", "warning"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"node {self.id} exited with {self.proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=1).status_code < 500:
                    return
            time.sleep(0.1)
        raise AssertionError(f"node {self.id} did not start in {timeout} s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def sequencer(db: PgDatabase) -> tuple[int, str] | None:
    with db.connect() as c:
        row = c.execute("SELECT epoch, node_id FROM depository.sequencer "
                        "ORDER BY epoch DESC LIMIT 1").fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


class Clients:
    """Writer threads, each putting unique artifacts through both nodes in turn and
    retrying a refused or failed write (same name, same bytes) on the other node."""

    def __init__(self, nodes: list[Node], token: str, threads: int = 4) -> None:
        self.nodes = nodes
        self.token = token
        self.acked: dict[str, str] = {}  # name -> sha256 of every 2xx
        self.statuses: dict[int, int] = {}
        self.errors = 0
        self.unexpected: list[str] = []  # any answer but 2xx or 503 + Retry-After
        self._mu = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(threads)]

    def __enter__(self) -> Clients:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def count(self) -> int:
        with self._mu:
            return len(self.acked)

    def _run(self, i: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(timeout=10, headers=headers) as client:
            n = 0
            while not self._stop.is_set():
                name, body = f"drill/{i}/{n}", f"thread {i} write {n} ".encode() * 8
                turn = n
                while not self._stop.is_set():
                    node = self.nodes[(i + turn) % len(self.nodes)]
                    turn += 1
                    try:
                        r = client.put(f"{node.url}/v1/products/gurukul/artifacts/{name}",
                                       content=body)
                    except httpx.HTTPError:
                        with self._mu:
                            self.errors += 1
                        time.sleep(0.05)
                        continue
                    with self._mu:
                        self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
                    if r.status_code in (200, 201):
                        with self._mu:
                            self.acked[name] = hashlib.sha256(body).hexdigest()
                        break
                    if r.status_code != 503 or r.headers.get("Retry-After") is None:
                        with self._mu:
                            self.unexpected.append(f"{r.status_code} {r.text[:200]}")
                    time.sleep(0.05)
                n += 1


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path, pg_db: PgDatabase  # noqa: F811
            ) -> Iterator[tuple[PgDatabase, Path, str, str, list[Node]]]:
    """Two nodes; bytes in local files, or in S3 (``indirect`` parameter ``"s3"``)."""
    s3env = request.getfixturevalue("s3") if getattr(request, "param", "") == "s3" else None
    store = tmp_path / "store"
    vkey, token = init_store(store, pg_db, s3env)
    secret_file = tmp_path / "peer.secret"
    secret_file.write_bytes(SECRET)
    nodes: list[Node] = []
    try:
        nodes.append(Node(store, "node-a", secret_file, tmp_path / "a.log"))
        nodes[0].wait_ready()
        deadline = time.monotonic() + 10
        while sequencer(pg_db) != (1, "node-a") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sequencer(pg_db) == (1, "node-a")
        nodes.append(Node(store, "node-b", secret_file, tmp_path / "b.log"))
        nodes[1].wait_ready()
        yield pg_db, store, vkey, token, nodes
    finally:
        for n in nodes:
            n.stop(signal.SIGKILL)


@pytest.mark.parametrize("cluster", ["local", "s3"], indirect=True)
def test_sigkill_the_sequencer_loses_no_acknowledged_write(
        cluster: tuple[PgDatabase, Path, str, str, list[Node]], tmp_path: Path) -> None:
    db, store, vkey, token, (a, b) = cluster
    with Clients([a, b], token) as clients:
        deadline = time.monotonic() + 15
        while clients.count() < 150 and time.monotonic() < deadline:
            time.sleep(0.05)
        before = clients.count()
        assert before >= 150, f"only {before} writes acknowledged before the kill"
        a.stop(signal.SIGKILL)  # mid-run: writes are in flight through both nodes
        killed_at = time.monotonic()
        while sequencer(db) != (2, "node-b") and time.monotonic() < killed_at + 10:
            time.sleep(0.02)
        failover_s = time.monotonic() - killed_at
        assert sequencer(db) == (2, "node-b"), "node-b did not take over"
        while clients.count() < before + 150 and time.monotonic() < killed_at + 15:
            time.sleep(0.05)
    assert clients.count() >= before + 150, "writes did not resume through node-b"
    assert not clients.unexpected, clients.unexpected[:3]
    print(f"\nfailover {failover_s:.2f} s; {clients.count()} acknowledged; statuses "
          f"{clients.statuses}; connection errors {clients.errors}")
    b.stop()  # SIGTERM: drains and signs a final checkpoint

    # Every acknowledged write is there, with its bytes.
    with db.connect() as c:
        c.execute("SET search_path = depository")
        stored = {str(n): str(h) for n, h in c.execute(
            "SELECT name, sha256 FROM artifact WHERE product = 'gurukul'")}
        leaves = [parse_record(bytes(r[0])) for r in c.execute(
            "SELECT leaf FROM log ORDER BY idx")]
    lost = {n for n, h in clients.acked.items() if stored.get(n) != h}
    assert not lost, f"{len(lost)} acknowledged writes lost: {sorted(lost)[:5]}"
    elected = [r.body for r in leaves if r.type == "sequencer.elected"]
    assert elected == [
        {"node_id": "node-a", "epoch": 1, "previous": None, "previous_epoch": None},
        {"node_id": "node-b", "epoch": 2, "previous": "node-a", "previous_epoch": 1}]

    # The whole store replays offline against the key record 0 names, as an auditor runs
    # it on a PostgreSQL store: `verify store` replays a snapshot export, and re-hashes
    # every artifact's bytes where they are (local files or the S3 bucket).
    key = tmp_path / "log.vkey"
    key.write_text(vkey + "\n")
    out = CliRunner().invoke(main, ["verify", "store", str(store), "--key", str(key),
                                    "--json"])
    assert out.exit_code == 0, out.output[-2000:]
    res = json.loads(out.stdout)
    assert res["verified"] and res["size"] == len(leaves)
    assert res["blobs_checked"] == len(stored)


def test_a_follower_without_a_sequencer_refuses_and_never_signs(
        cluster: tuple[PgDatabase, Path, str, str, list[Node]], tmp_path: Path) -> None:
    db, store, _, token, (a, b) = cluster
    r = httpx.put(f"{b.url}/v1/products/gurukul/artifacts/via-b", content=b"x",
                  headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 201, r.text  # forwarded to node-a
    # Both nodes stop: their sessions end, nobody holds the writer lock. A follower
    # opened in this process without a reachable sequencer must not sign anything, even
    # though it holds the signer key: keep the lock taken by a plain session meanwhile.
    b.stop(signal.SIGKILL)
    a.stop(signal.SIGKILL)
    with db.connect(user="depository_service") as holder:
        from depository.store._pg import WRITER_LOCK_KEY

        holder.execute("SELECT pg_advisory_lock(%s)", (WRITER_LOCK_KEY,))
        with db.connect() as c:
            before = c.execute("SELECT count(*) FROM depository.checkpoint").fetchone()
        node = open_node(store, node_id="node-c", advertise=f"127.0.0.1:{free_port()}",
                         secret=SECRET, interval=0.1)
        try:
            assert node.local_writer is None
            with pytest.raises(NotSequencerError, match="cannot be reached"):
                node.checkpoint()  # node-a's row is the newest: dead, so refused
            with pytest.raises(NotSequencerError):
                node.put("gurukul", "refused", b"y")
            with db.connect() as c:
                assert c.execute("SELECT count(*) FROM depository.checkpoint").fetchone(
                    ) == before
        finally:
            node.close()
