"""The slowloris drill (issue 15 item 2) on a real `depository serve` (a subprocess on
127.0.0.1): a bounded slow-header attack from three other loopback addresses while a
legitimate client keeps writing and reading with a token. With the limits the client is
served throughout and the slow connections are closed at the header timeout; with the
limits off (and the same open-files limit) the attack starves the client.

The server's open-files limit is lowered to 320 so that a few hundred sockets stand in
for the ~20,000 of the original report (the same exhaustion, at a size a test can run).
"""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from test_service_support import bearer, make_store

NOFILE = 320
ATTACKERS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
PER_ADDRESS = 100  # sockets per attacking address: 300 in all
HEADER_TIMEOUT = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _low_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


@contextlib.contextmanager
def _server(store_dir: Path, *args: str) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from depository.cli._serve import serve; serve()",
         "--store", str(store_dir), "--port", str(port), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_low_nofile)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, "no server"
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class _Attack:
    """Slow-header sockets: each sends one header byte a second and, once the server
    closes it, reconnects a second later (bounded in sockets, attempts and time)."""

    port: int
    opened: int = 0
    lifetimes_408: list[float] = field(default_factory=list)  # answered 408, then closed
    closed_silently: int = 0
    refused_503: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, seconds: float, max_attempts: int = 3000) -> None:
        sel = selectors.DefaultSelector()
        started: dict[socket.socket, float] = {}
        answers: dict[socket.socket, bytes] = {}
        sent: dict[socket.socket, int] = {}
        due: list[tuple[float, str]] = [(0.0, a) for a in ATTACKERS for _ in range(PER_ADDRESS)]
        end = time.monotonic() + seconds
        line = b"GET /v1/whoami HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 1000
        next_drip = time.monotonic()
        while time.monotonic() < end and not self.stop.is_set():
            now = time.monotonic()
            for when, addr in [d for d in due if d[0] <= now]:
                due.remove((when, addr))
                if self.opened >= max_attempts:
                    continue
                s = socket.socket()
                s.bind((addr, 0))
                try:
                    s.connect(("127.0.0.1", self.port))
                except OSError:
                    s.close()
                    due.append((now + 1.0, addr))
                    continue
                s.setblocking(False)
                self.opened += 1
                started[s] = time.monotonic()
                answers[s] = b""
                sent[s] = 0
                sel.register(s, selectors.EVENT_READ, addr)
            if now >= next_drip:  # one more header byte on every open socket
                next_drip = now + 1.0
                for s in list(started):
                    with contextlib.suppress(OSError):  # the next byte of a valid request
                        sent[s] += s.send(line[sent[s]:sent[s] + 1] or b"a")
            for key, _ in sel.select(timeout=0.05):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    answers[s] += data
                    continue
                got, life = answers.pop(s), time.monotonic() - started.pop(s)
                del sent[s]
                if got.startswith(b"HTTP/1.1 408"):
                    self.lifetimes_408.append(life)
                elif got.startswith(b"HTTP/1.1 503"):
                    self.refused_503 += 1
                else:
                    self.closed_silently += 1
                sel.unregister(s)
                s.close()
                due.append((time.monotonic() + 1.0, key.data))
        for s in started:
            sel.unregister(s)
            s.close()


def _legit(url: str, token_w: str, token_r: str, seconds: float, timeout: float
           ) -> tuple[int, int, float]:
    """(successes, failures, slowest success) of fresh-connection writes and reads."""
    ok = failed = 0
    slowest = 0.0
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        i += 1
        t0 = time.monotonic()
        try:
            with httpx.Client(base_url=url, timeout=timeout) as c:  # a new connection each
                r = c.put(f"/v1/products/gurukul/artifacts/drill/{i}.txt",
                          content=f"legit {i}".encode(), headers=bearer(token_w))
                assert r.status_code == 201, r.text
            with httpx.Client(base_url=url, timeout=timeout) as c:
                r = c.get(f"/v1/products/gurukul/artifacts/drill/{i}.txt",
                          headers=bearer(token_r))
                assert r.content == f"legit {i}".encode()
            ok += 1
            slowest = max(slowest, time.monotonic() - t0)
        except (httpx.HTTPError, AssertionError):
            failed += 1
        time.sleep(0.25)
    return ok, failed, slowest


@pytest.fixture
def store_dir(tmp_path: Path) -> tuple[Path, str, str]:
    d = tmp_path / "store"
    with make_store(d) as s:
        w = s.create_token(role="writer", product="gurukul", actor="t")[0]
        r = s.create_token(role="reader", product="gurukul", actor="t")[0]
    return d, w, r


def _attack(url: str, seconds: float) -> tuple[_Attack, threading.Thread]:
    attack = _Attack(port=int(url.rsplit(":", 1)[1]))
    th = threading.Thread(target=attack.run, args=(seconds,), daemon=True)
    th.start()
    return attack, th


def test_legitimate_clients_are_served_during_a_slow_header_attack(
        store_dir: tuple[Path, str, str]) -> None:
    d, w, r = store_dir
    with _server(d, "--header-timeout", str(HEADER_TIMEOUT),
                 "--max-connections-per-address", "64") as url:
        attack, th = _attack(url, 9.0)
        time.sleep(1.0)  # let the attack fill the server (192 slots for 320 descriptors)
        ok, failed, slowest = _legit(url, w, r, seconds=7.0, timeout=5.0)
        attack.stop.set()
        th.join(15)
    print(f"with limits: {ok} rounds served, {failed} failed, slowest {slowest:.3f} s; "
          f"{attack.opened} attack connections: {len(attack.lifetimes_408)} cut with 408 "
          f"(after {min(attack.lifetimes_408, default=0):.2f}-"
          f"{max(attack.lifetimes_408, default=0):.2f} s), {attack.refused_503} refused 503, "
          f"{attack.closed_silently} closed to make room")
    assert failed == 0 and ok >= 5, (ok, failed)
    assert slowest < 3.0, slowest
    # The slow connections were cut at the header timeout (a 408 each), not kept open;
    # the addresses over their cap were refused at once.
    assert len(attack.lifetimes_408) >= 100, attack
    assert all(HEADER_TIMEOUT - 0.1 <= t < HEADER_TIMEOUT + 2.0 for t in attack.lifetimes_408)
    assert attack.refused_503 >= 50, attack


def test_without_the_limits_the_same_attack_starves_legitimate_clients(
        store_dir: tuple[Path, str, str]) -> None:
    d, w, r = store_dir
    with _server(d, "--header-timeout", "0", "--max-connections", "0",
                 "--max-connections-per-address", "0") as url:
        attack, th = _attack(url, 6.0)
        time.sleep(1.5)
        ok, failed, _ = _legit(url, w, r, seconds=3.0, timeout=1.5)
        attack.stop.set()
        th.join(15)
    print(f"without limits: {ok} rounds served, {failed} failed; {attack.opened} attack "
          "connections, none cut")
    assert attack.lifetimes_408 == [], attack  # nothing cut the slow connections
    assert failed >= 1 and ok == 0, (ok, failed)



def test_worker_processes_enforce_the_same_limits(store_dir: tuple[Path, str, str]) -> None:
    # serve --workers 2 hands the limits to each worker (the kernel spreads the sockets).
    from test_service_workers import WorkersServer

    srv = WorkersServer(store_dir[0], "--header-timeout", "1")
    try:
        socks = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(8)]
        t0 = time.monotonic()
        for s in socks:
            s.sendall(b"GET /health HTTP/1.1\r\nHost:")
        answers = []
        for s in socks:
            s.settimeout(5)
            data = b""
            with contextlib.suppress(OSError):
                while chunk := s.recv(65536):
                    data += chunk
            answers.append(data)
            s.close()
        took = time.monotonic() - t0
    finally:
        assert srv.stop() == 0
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers
    assert took < 4.0, took
