"""The protocol's small-PUT path (depository/service/_small_put.py) against the ASGI
route: the same answers, byte for byte, for every outcome; the cases it must leave to
the ASGI route; the switches that turn it off; and durability under SIGKILL.

Two servers run in this process (uvicorn in threads), one with the path and one
without, each over its own copy of one store (same keys and tokens) and the same frozen
clock, so a request sequence sent to both must produce identical responses (only the
``date`` header, a wall-clock second, is left out of the comparison)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_service_support import store_config

from depository.service import create_app
from depository.service.server import ConnectionLimits, Server, server_config
from depository.store import Store

FIXED = datetime(2026, 12, 5, 9, 0, 0, tzinfo=UTC)


def _fixed() -> datetime:
    return FIXED


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """The service over ``store_dir`` on a uvicorn server in a thread of this process."""

    def __init__(self, store_dir: Path, *, small_put: bool) -> None:
        self.store = Store.open(store_dir, clock=_fixed)
        app = create_app(self.store, clock=_fixed, run_checks=False, dashboard=False)
        self.port = _free_port()
        config = server_config(app, port=self.port, small_put=small_put,
                               limits=ConnectionLimits(0, 0, 0, 0))
        self.small = getattr(config.http, "small_put", None)
        assert (self.small is not None) == small_put
        self.server = Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)

    @property
    def taken(self) -> int:
        return self.small.taken if self.small is not None else 0

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.store.close()


def _read_response(s: socket.socket, data: bytes = b"") -> tuple[bytes, bytes]:
    """One response from ``s`` (and what followed it)."""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    m = re.search(rb"\r\ncontent-length: (\d+)", head)
    assert m, head
    n = int(m.group(1))
    while len(rest) < n:
        chunk = s.recv(65536)
        assert chunk, "connection closed inside a response body"
        rest += chunk
    return head + b"\r\n\r\n" + rest[:n], rest[n:]


def exchange(port: int, *requests: bytes, pause: float = 0.0) -> list[bytes]:
    """Send each request on one connection (the next after the previous answer; each
    request's bytes after the head ``pause`` s later when given) and return the answers."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        for req in requests:
            if pause:
                head, sep, body = req.partition(b"\r\n\r\n")
                s.sendall(head + sep)
                time.sleep(pause)
                s.sendall(body)
            else:
                s.sendall(req)
            resp, _ = _read_response(s)
            out.append(resp)
    return out


def no_date(resp: bytes) -> bytes:
    head, sep, body = resp.partition(b"\r\n\r\n")
    lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"date:")]
    return b"\r\n".join(lines) + sep + body


def put(name: str, token: str, body: bytes, *, product: str = "gurukul",
        extra: str = "", ctype: str = "text/plain") -> bytes:
    return (f"PUT /v1/products/{product}/artifacts/{name} HTTP/1.1\r\nHost: t\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Served,
                                                                     dict[str, str]]]:
    base = tmp_path_factory.mktemp("small-put")
    cfg = store_config(max_artifact_size=1000)
    cfg["products"]["ai-avatar"]["quota"] = {"bytes": 10**9, "artifacts": 2}
    s = Store.init(base / "a", config=cfg, clock=_fixed)
    try:
        tok = {"writer": s.create_token(role="writer", product="gurukul", actor="t")[0],
               "avatar": s.create_token(role="writer", product="ai-avatar", actor="t")[0],
               "reader": s.create_token(role="reader", product="gurukul", actor="t")[0]}
    finally:
        s.close()
    shutil.copytree(base / "a", base / "b")
    fast, asgi = Served(base / "a", small_put=True), Served(base / "b", small_put=False)
    try:
        yield fast, asgi, tok
    finally:
        fast.close()
        asgi.close()


def _both(pair: tuple[Served, Served, dict[str, str]], *requests: bytes,
          taken: int) -> list[bytes]:
    """Send ``requests`` to both servers; assert identical answers and that the fast
    server's small-PUT path answered ``taken`` of them (the other server's none)."""
    fast, asgi, _ = pair
    before = fast.taken
    a = exchange(fast.port, *requests)
    b = exchange(asgi.port, *requests)
    assert [no_date(r) for r in a] == [no_date(r) for r in b]
    assert fast.taken - before == taken
    assert asgi.taken == 0
    return a


def _status(resp: bytes) -> int:
    return int(resp.split(b" ", 2)[1])


def _json(resp: bytes) -> Any:
    return json.loads(resp.partition(b"\r\n\r\n")[2])


def test_identical_answers_for_every_outcome(
        pair: tuple[Served, Served, dict[str, str]]) -> None:
    tok = pair[2]
    w = tok["writer"]
    meta = 'Depository-Metadata: {"course": "algebra", "n": 7}\r\n'
    cases = [
        (put("doc/1.txt", w, b"hello", extra=meta), 201, None),
        (put("doc/1.txt", w, b"hello", extra=meta), 200, None),  # idempotent re-upload
        (put("doc/1.txt", w, b"other"), 409, "write-once"),
        (put("doc/2.txt", "not-a-token", b"x"), 401, "unauthorized"),
        (put("doc/2.txt", "", b"x"), 401, "unauthorized"),
        (put("doc/2.txt", w, b"x", product="ai-avatar"), 404, "not-found"),  # wrong product
        (put("doc/2.txt", w, b"x", product="nope"), 404, "not-found"),  # unknown product
        (put("doc/2.txt", tok["reader"], b"x"), 403, "forbidden"),
        (put("doc/2.txt", w, b"x", extra="Depository-Metadata: {not json\r\n"), 400,
         "invalid-header"),
        (put("doc/2.txt", w, b"x", extra="Depository-Metadata: [1, 2]\r\n"), 400,
         "invalid-header"),
        (put("doc/2.txt", w, b"x", extra='Depository-Metadata: {"a": 1, "a": 2}\r\n'), 400,
         "invalid-header"),
        (put("doc/2.txt", w, b"x", extra="Depository-Retain-Until: tomorrow\r\n"), 400,
         "invalid-parameter"),
        (put("doc/2.txt", w, b"x", ctype="not a type"), 400, "invalid-header"),
        (put("", w, b"x"), 400, "invalid-parameter"),  # empty name
        (put("doc/empty", w, b""), 201, None),
        (put("doc/close", w, b"c", extra="Connection: close\r\n"), 201, None),
        (put("doc/3.bin", w, os.urandom(600), ctype="application/octet-stream",
             extra='Depository-Provenance: {"tool": "t"}\r\n'), 201, None),
    ]
    for req, status, slug in cases:
        (resp,) = _both(pair, req, taken=1)
        assert _status(resp) == status, resp
        if b"Connection: close" in req:
            assert b"\r\nconnection: close\r\n" in resp
        if slug is not None:
            assert _json(resp)["type"] == f"/problems/{slug}", resp


def test_quota_exhaustion_answers_identically(
        pair: tuple[Served, Served, dict[str, str]]) -> None:
    a = pair[2]["avatar"]
    got = [_status(_both(pair, put(f"q/{i}", a, b"q%d" % i, product="ai-avatar"),
                         taken=1)[0]) for i in range(4)]
    assert got == [201, 201, 429, 429]


def test_oversize_body_answers_identically_and_closes(
        pair: tuple[Served, Served, dict[str, str]]) -> None:
    # max_artifact_size is 1000 in this store: a small body (fast path) that exceeds it
    (resp,) = _both(pair, put("big/1", pair[2]["writer"], b"z" * 1001), taken=1)
    assert _status(resp) == 413 and b"\r\nconnection: close\r\n" in resp
    assert _json(resp)["type"] == "/problems/too-large"


def test_keep_alive_sequence_on_one_connection(
        pair: tuple[Served, Served, dict[str, str]]) -> None:
    w = pair[2]["writer"]
    reqs = [put(f"ka/{i}", w, b"body %d" % i) for i in range(5)]
    got = _both(pair, *reqs, reqs[2], taken=6)
    assert [_status(r) for r in got] == [201] * 5 + [200]


def test_unusual_requests_take_the_asgi_route(
        pair: tuple[Served, Served, dict[str, str]]) -> None:
    fast, asgi, tok = pair
    w = tok["writer"]
    body = b"abc"
    chunked = (f"PUT /v1/products/gurukul/artifacts/u/chunked HTTP/1.1\r\nHost: t\r\n"
               f"Authorization: Bearer {w}\r\nTransfer-Encoding: chunked\r\n\r\n"
               ).encode() + b"3\r\nabc\r\n0\r\n\r\n"
    for req in (
        chunked,
        put("u/query?wait=checkpoint", w, body),
        put("u/%C3%A9t%C3%A9", w, body),  # percent-escaped name
        put("u/large", w, b"L" * (64 * 1024 + 1)),  # above the small-body bound
    ):
        before = fast.taken
        (a,) = exchange(fast.port, req)
        (b,) = exchange(asgi.port, req)
        assert fast.taken == before, req[:80]
        # (the checkpoint receipt and the over-size refusal differ only where the two
        # stores' timing may: compare status and problem type)
        assert _status(a) == _status(b), (a, b)
        if _status(a) >= 400:
            assert _json(a)["type"] == _json(b)["type"]
    expect = put("u/expect", w, body, extra="Expect: 100-continue\r\n")
    before = fast.taken
    with socket.create_connection(("127.0.0.1", fast.port), timeout=15) as s:
        head, _, rest = expect.partition(b"\r\n\r\n")
        s.sendall(head + b"\r\n\r\n")
        interim, _ = _read_interim(s)
        assert interim.startswith(b"HTTP/1.1 100 ")
        s.sendall(rest)
        resp, _ = _read_response(s)
    assert _status(resp) == 201 and fast.taken == before


def _read_interim(s: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def test_a_body_that_arrives_late_is_still_stored(
        pair: tuple[Served, Served, dict[str, str]]) -> None:
    fast, asgi, tok = pair
    w = tok["writer"]
    for pause, name, taken in ((0.05, "late/short", 1), (1.5, "late/long", 0)):
        req = put(name, w, b"late body")
        before = fast.taken
        a = exchange(fast.port, req, pause=pause)
        b = exchange(asgi.port, req, pause=pause)
        # a short gap: still the small path; past BODY_WAIT: handed to the ASGI route
        assert fast.taken - before == taken
        assert _loose(a[0]) == _loose(b[0]) and _status(a[0]) == 201


def test_pipelined_requests_are_answered_in_order(
        pair: tuple[Served, Served, dict[str, str]]) -> None:
    fast, asgi, tok = pair
    w = tok["writer"]
    reqs = b"".join(put(f"pipe/{i}", w, b"p%d" % i) for i in range(4))
    answers = {}
    before = fast.taken
    for srv in (fast, asgi):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=15) as s:
            s.sendall(reqs)
            rest = b""
            got = []
            for _ in range(4):
                resp, rest = _read_response(s, rest)
                got.append(no_date(resp))
        answers[srv.port] = got
    # (the stores' log positions may differ by now: their checkpoints follow the clock)
    assert [_loose(r) for r in answers[fast.port]] == [_loose(r) for r in answers[asgi.port]]
    assert [_json(r)["name"] for r in answers[fast.port]] == [f"pipe/{i}" for i in range(4)]
    assert fast.taken - before == 1  # the first; the others queued behind it: ASGI


def _loose(resp: bytes) -> tuple[bytes, dict[str, Any]]:
    """A response without its date, length and log position."""
    head = b"\r\n".join(ln for ln in no_date(resp).partition(b"\r\n\r\n")[0].split(b"\r\n")
                        if not ln.startswith(b"content-length:"))
    body = _json(resp)
    for k in ("log_index", "leaf_hash"):
        body.pop(k, None)
    return head, body


def test_switches_turn_the_path_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from depository.service.server import small_put_for

    s = Store.init(tmp_path / "s", config=store_config())
    try:
        app = create_app(s, run_checks=False, dashboard=False)
        assert small_put_for(app) is not None
        assert small_put_for(app, access_log=True) is None
        assert getattr(server_config(app, access_log=True).http, "small_put", 1) is None
        monkeypatch.setenv("DEPOSITORY_SMALL_PUT", "0")
        assert small_put_for(app) is None
        assert getattr(server_config(app).http, "small_put", 1) is None
    finally:
        s.close()


# ------------------------------------------------------------------- durability
_HARNESS = """
import os, sys, threading, time
from pathlib import Path
from depository.service import create_app
from depository.service.server import ConnectionLimits, Server, server_config
from depository.store import Store

store = Store.open(Path(sys.argv[1]))
app = create_app(store, run_checks=False, dashboard=False)
config = server_config(app, port=int(sys.argv[2]), limits=ConnectionLimits(0, 0, 0, 0))
small = config.http.small_put
out = Path(sys.argv[3])

def report():
    # replaced whole, never truncated in place: the SIGKILL may land mid-write
    tmp = out.with_name(out.name + ".tmp")
    while True:
        tmp.write_text(str(small.taken))
        os.replace(tmp, out)
        time.sleep(0.02)

threading.Thread(target=report, daemon=True).start()
Server(config).run()
"""


def test_acknowledged_small_puts_survive_sigkill(tmp_path: Path) -> None:
    d = tmp_path / "store"
    s = Store.init(d, config=store_config())
    try:
        token = s.create_token(role="writer", product="gurukul", actor="t")[0]
    finally:
        s.close()
    port = _free_port()
    taken_file = tmp_path / "taken"
    proc = subprocess.Popen([sys.executable, "-c", _HARNESS, str(d), str(port),
                             str(taken_file)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "no server"
            time.sleep(0.05)
    acked: list[dict[str, Any]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=15) as c:
            i = 0
            while not stop.is_set():
                body = os.urandom(64 + (i % 7) * 100)
                try:
                    c.sendall(put(f"kill/{w}/{i}", token, body))
                    resp, _ = _read_response(c)
                except (OSError, AssertionError):
                    return  # the server died: this write was never acknowledged
                assert _status(resp) == 201, resp
                with lock:
                    acked.append({**_json(resp), "body_sha": hashlib.sha256(body).hexdigest()})
                i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    while len(acked) < 200 and time.monotonic() < deadline + 30:
        time.sleep(0.01)
    time.sleep(0.3)  # writes in flight at the kill
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    stop.set()
    for t in threads:
        t.join(20)
    assert len(acked) >= 200
    taken = int(taken_file.read_text() or 0)
    assert taken >= 200, "the small-PUT path did not answer these writes"
    with Store.open(d) as s:  # reopened for writing, as the server does after a crash
        for rec in acked:
            art = s.get_by_id(rec["artifact_id"])
            assert art.sha256 == rec["sha256"] == rec["body_sha"]
            assert art.log_index == rec["log_index"]


def test_random_requests_answer_identically(
        pair: tuple[Served, Served, dict[str, str]]) -> None:
    """Differential: odd names, header bytes, media types and bodies through both paths."""
    import random

    fast, asgi, tok = pair
    rng = random.Random(1305)
    name_chars = "abcXYZ019._~-/ ()!$&'*+,;=:@"
    metas = ['{"a": 1}', '{"a": 1.5e308}', '{"a": NaN}', '{"a": {"b": [1, {"c": null}]}}',
             '{"\\ud800": 1}', '{"a": "\\u00e9"}', "{}", "", "   ", "[]", '"x"',
             '{"a": ' * 50 + "1" + "}" * 50, '{"k": "' + "v" * 17000 + '"}']
    ctypes = ["text/plain"] * 4 + ["application/json; charset=utf-8", "x", "a/b c", "",
                                   "a/" + "b" * 300]
    for i in range(80):
        name = "".join(rng.choice(name_chars) for _ in range(rng.randint(1, 12))).strip("/")
        name = name.replace(" ", "_") or "n"
        extra = ""
        if rng.random() < 0.5:
            extra += f"Depository-Metadata: {rng.choice(metas)}\r\n"
        if rng.random() < 0.3:
            extra += f"Depository-Provenance: {rng.choice(metas)}\r\n"
        if rng.random() < 0.2:
            extra += rng.choice(["Depository-Retain-Until: 2099-01-01T00:00:00Z\r\n",
                                 "Depository-Retain-Until: 2000-01-01T00:00:00Z\r\n",
                                 "Depository-Retain-Until: soon\r\n"])
        token = rng.choice([tok["writer"]] * 12 + [tok["reader"], "x" * 600, "dep_tok-1_x"])
        body = rng.randbytes(rng.choice([0, 1, 100, 999, 1000, 1001]))
        head = put(f"rnd/{i}/{name}", token, body, ctype=rng.choice(ctypes), extra=extra)
        if rng.random() < 0.1:  # raw latin-1 bytes in a header (not UTF-8)
            head = head.replace(b"Host: t", b"Host: t\r\nDepository-Metadata: {\"a\": \"\xe9\"}")
        before = fast.taken
        (a,) = exchange(fast.port, head)
        (b,) = exchange(asgi.port, head)
        assert fast.taken == before + 1, head[:200]
        if _status(a) < 300:
            assert _loose(a) == _loose(b), (head[:300], a, b)
        else:
            assert no_date(a) == no_date(b), (head[:300], a, b)
