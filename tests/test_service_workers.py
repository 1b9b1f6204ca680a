"""``depository serve --workers 2`` on real processes and sockets: uploads through
several HTTP workers and one writer, refusals identical to one process, token
revocation and governance locks seen by every worker at once, a dead worker restarted,
workers exiting with their parent, and the SIGKILL / SIGTERM drills."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_service_server import Server, _check_acked, _drive, _free_port, _tokens
from test_service_server import store_dir as store_dir  # the fixture
from test_service_support import bearer, store_config

from depository.store import Store

MB = 1024 * 1024
_SCHEMA = {"type": "object", "required": ["course"],
           "properties": {"course": {"type": "string"}}}


class WorkersServer(Server):
    """``serve --workers 2`` in its own process group (the SIGKILL drill kills it all)."""

    def __init__(self, store_dir: Path, *args: str, workers: int = 2) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from depository.cli._serve import serve; serve()",
             "--store", str(store_dir), "--port", str(self.port), "--workers",
             str(workers), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise AssertionError(f"server did not start: {err}")
            time.sleep(0.05)

    def workers(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()]

    def kill(self) -> None:  # the whole group: parent and workers at once
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def _make(path: Path) -> dict[str, str]:
    cfg = store_config()
    cfg["products"]["gurukul"]["quota"] = {"bytes": 1000, "artifacts": 100}
    cfg["products"]["ai-avatar"]["metadata_schema"] = _SCHEMA
    with Store.init(path, config=cfg) as s:
        return {"admin": s.create_token(role="admin", actor="t")[0],
                "auditor": s.create_token(role="auditor", actor="t")[0],
                "gurukul": s.create_token(role="writer", product="gurukul", actor="t")[0],
                "avatar": s.create_token(role="writer", product="ai-avatar", actor="t")[0],
                "enf": s.create_token(role="writer", product="enforcement", actor="t")[0]}


def _refusals(url: str, tok: dict[str, str]) -> list[tuple[int, Any]]:
    """The same refused requests, for one process and for workers to answer alike."""
    a = "/v1/products/ai-avatar/artifacts/"
    g = "/v1/products/gurukul/artifacts/"
    out = []
    with httpx.Client(base_url=url) as c:
        for path, body, headers in [
            (g + "q1", b"x" * 900, bearer(tok["gurukul"])),
            (g + "q1", b"y" * 900, bearer(tok["gurukul"])),  # write-once
            (g + "q2", b"z" * 200, bearer(tok["gurukul"])),  # quota (bytes)
            (a + "m1", b"m", bearer(tok["avatar"]) | {"Depository-Metadata": "{}"}),
            (a + "m2", b"m", bearer(tok["avatar"])
             | {"Depository-Metadata": '{"course": 3}'}),
            (a + "m3", b"m", bearer(tok["avatar"])
             | {"Depository-Metadata": '{"course": "x"}'}),
        ]:
            r = c.put(path, content=body, headers=headers)
            out.append((r.status_code, r.json() if r.status_code >= 400 else None))
    return out


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    d = tmp_path / "store"
    return d, _make(d)


def test_uploads_refusals_tokens_and_governance_across_workers(
        tmp_path: Path, pair: tuple[Path, dict[str, str]]) -> None:
    store_dir, tok = pair
    single_dir = tmp_path / "single"
    single_tok = _make(single_dir)
    single = Server(single_dir)
    try:
        expected = _refusals(single.url, single_tok)
    finally:
        assert single.stop() == 0
    assert [s for s, _ in expected] == [201, 409, 507, 422, 422, 201]

    srv = WorkersServer(store_dir)
    try:
        assert len(srv.workers()) == 2
        assert oct((store_dir / ".writer.sock").stat().st_mode & 0o777) == "0o600"
        # -- refusals: the same problem JSON as one process
        assert _refusals(srv.url, tok) == expected

        # -- concurrent uploads, small (inline) and large (blob files)
        bodies = {f"c{w}-{i}": os.urandom(random.choice([10, 2000, 100 * 1024]))
                  for w in range(8) for i in range(15)}

        async def client(names: list[str]) -> list[dict[str, Any]]:
            out = []
            async with httpx.AsyncClient(base_url=srv.url, timeout=30) as c:
                for n in names:
                    r = await c.put(f"/v1/products/enforcement/artifacts/{n}",
                                    content=bodies[n], headers=bearer(tok["enf"]))
                    assert r.status_code == 201, r.text
                    out.append(r.json())
            return out

        async def load() -> list[list[dict[str, Any]]]:
            names = sorted(bodies)
            return await asyncio.gather(*(client(names[w::8]) for w in range(8)))

        receipts = [r for rs in asyncio.run(load()) for r in rs]
        assert len(receipts) == len(bodies)
        assert len({r["log_index"] for r in receipts}) == len(bodies)
        with Store.open(store_dir, readonly=True) as s:
            for r in receipts:
                art = s.get("enforcement", r["name"])
                assert art.log_index == r["log_index"]
                assert art.sha256 == hashlib.sha256(bodies[r["name"]]).hexdigest()
                with s.open_content(art) as f:
                    assert f.read() == bodies[r["name"]]

        # -- ?wait=checkpoint: the parent signs, the worker builds the proof
        r = httpx.put(srv.url + "/v1/products/enforcement/artifacts/cp?wait=checkpoint",
                      content=b"cp", headers=bearer(tok["enf"]))
        assert r.status_code == 201 and r.json()["tlog_proof"], r.text

        # -- a token issued and used through every worker, revoked through one: refused
        # at once on every worker (fresh connections spread over both)
        admin = bearer(tok["admin"])
        r = httpx.post(srv.url + "/v1/tokens", json={"role": "auditor"}, headers=admin)
        assert r.status_code == 201, r.text
        new = r.json()
        for _ in range(20):
            assert httpx.get(srv.url + "/v1/whoami",
                             headers=bearer(new["secret"])).status_code == 200
        r = httpx.post(srv.url + f"/v1/tokens/{new['token_id']}/revoke",
                       json={"reason": "test"}, headers=admin)
        assert r.status_code == 200, r.text
        for _ in range(20):
            assert httpx.get(srv.url + "/v1/whoami",
                             headers=bearer(new["secret"])).status_code == 401
        r = httpx.post(srv.url + "/v1/tokens/tok-999999/revoke", json={"reason": "x"},
                       headers=admin)
        assert r.status_code == 404  # NotFoundError crossed the channel as itself

        # -- a governance lock through one worker holds at every worker
        r = httpx.post(srv.url + "/v1/governance/lock", json={"reason": "drill"},
                       headers=admin)
        assert r.status_code == 200, r.text
        for i in range(10):
            assert httpx.get(srv.url + "/health").json()["status"] == "locked"
            r = httpx.put(srv.url + f"/v1/products/enforcement/artifacts/locked{i}",
                          content=os.urandom(100 if i % 2 else 100 * 1024),
                          headers=bearer(tok["enf"]))
            assert r.status_code == 503, r.text
            assert r.json()["type"] == "/problems/governance-locked"
            assert "drill" in r.json()["detail"]
        r = httpx.post(srv.url + "/v1/governance/unlock", json={"reason": "done"},
                       headers=admin)
        assert r.status_code == 200, r.text
        r = httpx.put(srv.url + "/v1/products/enforcement/artifacts/after-lock",
                      content=b"ok", headers=bearer(tok["enf"]))
        assert r.status_code == 201

        # -- the parent's writer queue in /metrics
        m = httpx.get(srv.url + "/metrics", headers=bearer(tok["auditor"]))
        assert m.status_code == 200 and "depository_writer_queue_depth" in m.text
    finally:
        assert srv.stop() == 0
    assert not (store_dir / ".writer.sock").exists()
    with Store.open(store_dir, readonly=True) as s:
        assert s.latest_checkpoint()[0] == s.size()


def test_dead_worker_is_restarted_and_workers_exit_with_their_parent(
        pair: tuple[Path, dict[str, str]]) -> None:
    store_dir, tok = pair
    srv = WorkersServer(store_dir)
    try:
        first = srv.workers()
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = srv.workers()
            if len(now) == 2 and first[0] not in now:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the dead worker was not replaced: {srv.workers()}")
        for i in range(20):
            r = httpx.put(srv.url + f"/v1/products/enforcement/artifacts/r{i}",
                          content=b"x", headers=bearer(tok["enf"]))
            assert r.status_code == 201, r.text
        workers = srv.workers()
        # only the parent dies: its workers notice (channel EOF, PDEATHSIG) and exit
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(10)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers)
    finally:
        if srv.proc.poll() is None:
            srv.kill()
        for p in srv.workers() if srv.proc.poll() is None else []:
            os.kill(p, signal.SIGKILL)
    # the store reopens for writing after the crash
    Store.open(store_dir).close()


@pytest.mark.slow
def test_sigkill_of_the_process_group_loses_no_acknowledged_write(store_dir: Path) -> None:
    tok = _tokens(store_dir)
    acked: list[dict[str, Any]] = []
    for cycle in range(2):
        srv = WorkersServer(store_dir)
        n = _drive(srv, tok["writer"], f"kill{cycle}", 0.2 + 0.5 * random.random(),
                   kill=True, acked=acked)
        assert n > 0, "the load produced no acknowledged writes before the kill"
        # restart as the server does (open for writing: schema and tree checks)
        Store.open(store_dir).close()
        _check_acked(store_dir, acked)
    srv = WorkersServer(store_dir)
    _drive(srv, tok["writer"], "after", 0.3, kill=False, acked=acked)
    _check_acked(store_dir, acked)
    with Store.open(store_dir, readonly=True) as s:
        assert s.latest_checkpoint()[0] == s.size()


def test_sigterm_drains_and_signs_a_final_checkpoint(store_dir: Path) -> None:
    tok = _tokens(store_dir)
    acked: list[dict[str, Any]] = []
    srv = WorkersServer(store_dir)
    workers = srv.workers()
    _drive(srv, tok["writer"], "term", 0.3, kill=False, acked=acked)
    assert acked
    assert not any(_alive(p) for p in workers)
    assert not (store_dir / ".writer.sock").exists()
    _check_acked(store_dir, acked)
    with Store.open(store_dir, readonly=True) as s:
        assert s.latest_checkpoint()[0] == s.size()


def test_the_op_channel_codec_round_trips_errors_records_and_prepared_puts(
        tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from depository.store import PreparedPut, _errors
    from depository.store import _remote as w
    from depository.store._model import Hold, Token

    for name, cls in w._ERRORS.items():
        exc = (cls("m", kind="bytes", used=1, limit=2) if cls is _errors.QuotaError
               else cls("msg é"))
        back = w._error_from(w._error_payload(exc))
        assert type(back) is cls and str(back) == str(exc), name
    q = w._error_from(w._error_payload(_errors.QuotaError("q", kind="artifacts", used=3,
                                                         limit=4)))
    assert isinstance(q, _errors.QuotaError) and (q.kind, q.used, q.limit) == (
        "artifacts", 3, 4)
    # Typed errors keep their data across the channel, not only their message.
    m = w._error_from(w._error_payload(_errors.MetadataError("x", part="metadata",
                                                             field="a/b")))
    assert isinstance(m, _errors.MetadataError) and (m.part, m.field) == ("metadata", "a/b")
    g = w._error_from(w._error_payload(_errors.GovernanceLockedError.of("drill")))
    assert isinstance(g, _errors.GovernanceLockedError) and g.reason == "drill"
    assert type(w._error_from(w._error_payload(KeyError("x")))) is RuntimeError

    hold = Hold("hold-1", "m", "r", "a", None, {"from": None, "to": "t"}, 1, "t", False)
    tok = Token("tok-1", "auditor", None, None, "", "a", 2, "t")
    value = {"h": hold, "t": (b"\x00\xff", tok), "when": datetime(2030, 1, 2, tzinfo=UTC),
             "list": [1, "two", None], "$b": "not a tag"}
    assert w._dec(json_round(w._enc(value))) == value

    with Store.init(tmp_path / "s", config=store_config()) as s:
        for body in (b"small", os.urandom(200 * 1024)):
            pp = s.prepare_put("gurukul", "n/é", body, metadata={"k": "v", "n": 1},
                               provenance={"p": 1}, media_type="text/plain",
                               retain_until=None, actor="x")
            assert PreparedPut.decode(pp.encode(), s.product) == pp


def json_round(v: Any) -> Any:
    import json

    return json.loads(json.dumps(v))
