"""Connection limits of the server (issue 15 item 2, slowloris): the header timeout, the
cap per client address and the cap in all, each on a real uvicorn server on loopback
built by :func:`depository.service.server_config`; and the protocol without limits, to
show each check can fail."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from depository.service import ConnectionLimits, server_config
from depository.service._protocol import http_protocol

HELLO = b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"


class _App:
    """Answers /hello at once and /block once released (a request in progress)."""

    def __init__(self) -> None:
        self.release: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.blocked = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        if scope["path"] == "/block":
            if self.release is None:
                self.release = asyncio.Event()
                self.loop = asyncio.get_running_loop()
            self.blocked += 1
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


class _Running:
    def __init__(self, server: uvicorn.Server, app: _App, port: int) -> None:
        self.server, self.app, self.port = server, app, port

    def connect(self, source: str = "127.0.0.1") -> socket.socket:
        s = socket.socket()
        s.bind((source, 0))
        s.connect(("127.0.0.1", self.port))
        s.settimeout(5)
        return s

    def unblock(self) -> None:
        loop, ev = self.app.loop, self.app.release
        if loop is not None and ev is not None:
            loop.call_soon_threadsafe(ev.set)


@contextlib.contextmanager
def _serve(limits: ConnectionLimits | None) -> Iterator[_Running]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    app = _App()
    config = server_config(app, port=port, limits=limits)
    if limits is None:  # the protocol as it was: no limits at all
        config = uvicorn.Config(app, port=port, loop="uvloop", http=http_protocol(),
                                log_level="warning")
    server = uvicorn.Server(config)
    running = _Running(server, app, port)

    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    try:
        yield running
    finally:
        running.unblock()
        server.should_exit = True
        th.join(20)


def _read_all(s: socket.socket, wait: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection (or ``wait``)."""
    s.settimeout(wait)
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := s.recv(65536):
            data += chunk
    return data


def _get(s: socket.socket) -> bytes:
    s.sendall(HELLO)
    data = b""
    while not data.endswith(b"ok"):
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    return data


def _problem(data: bytes) -> dict[str, Any]:
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower(), head
    problem: dict[str, Any] = json.loads(body)
    return problem


def test_partial_headers_get_408_at_the_header_timeout() -> None:
    with _serve(ConnectionLimits(header_timeout=0.6)) as srv, srv.connect() as s:
        t0 = time.monotonic()
        s.sendall(b"GET /hello HTTP/1.1\r\nHost:")  # and nothing more
        data = _read_all(s)
        took = time.monotonic() - t0
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert _problem(data)["type"] == "/problems/request-timeout"
    assert 0.5 <= took < 3.0, took


def test_dripping_a_byte_at_a_time_does_not_extend_the_timeout() -> None:
    with _serve(ConnectionLimits(header_timeout=0.8)) as srv, srv.connect() as s:
        t0 = time.monotonic()
        closed = None
        for b in b"GET /hello HTTP/1.1\r\nX-Slow: " + b"a" * 100:
            try:
                s.sendall(bytes([b]))
            except OSError:
                closed = time.monotonic() - t0
                break
            time.sleep(0.1)
            if time.monotonic() - t0 > 1.5:
                closed = time.monotonic() - t0
                break
        data = _read_all(s)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert closed is not None and closed < 3.0


def test_the_timeout_restarts_for_each_keep_alive_request() -> None:
    with _serve(ConnectionLimits(header_timeout=0.6)) as srv, srv.connect() as s:
        for _ in range(3):  # well-behaved keep-alive requests, spread over > the timeout
            assert _get(s).startswith(b"HTTP/1.1 200 ")
            time.sleep(0.3)
        s.sendall(b"GET /hello HTTP/1.1\r\n")  # the next one stalls
        t0 = time.monotonic()
        data = _read_all(s)
        assert data.startswith(b"HTTP/1.1 408 "), data
        assert time.monotonic() - t0 < 3.0


def test_without_limits_a_slow_client_is_kept_forever() -> None:
    # The stock protocol: the same stalled request is still open after 2 s (the failure
    # the header timeout fixes).
    with _serve(None) as srv, srv.connect() as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost:")
        assert _read_all(s, wait=2.0) == b""
        s.sendall(b" t\r\n\r\n")  # still open: the request completes
        assert _read_all(s, wait=1.0).startswith(b"HTTP/1.1 200 ")


def test_one_address_over_its_cap_gets_a_fast_503_and_others_are_served() -> None:
    with _serve(ConnectionLimits(header_timeout=30, max_connections_per_address=5)) as srv:
        held = [srv.connect("127.0.0.2") for _ in range(5)]
        try:
            for s in held:
                s.sendall(b"GET /hel")
            with srv.connect("127.0.0.2") as extra:
                t0 = time.monotonic()
                data = _read_all(extra)
                assert time.monotonic() - t0 < 1.0
            assert data.startswith(b"HTTP/1.1 503 "), data
            assert b"retry-after: 1" in data.lower()
            assert _problem(data)["type"] == "/problems/too-many-connections"
            with srv.connect("127.0.0.1") as other:  # another address is not affected
                assert _get(other).startswith(b"HTTP/1.1 200 ")
            held.pop().close()  # one closed: the address may connect again
            time.sleep(0.2)
            with srv.connect("127.0.0.2") as again:
                assert _get(again).startswith(b"HTTP/1.1 200 ")
        finally:
            for s in held:
                s.close()


def test_without_limits_one_address_may_hold_any_number() -> None:
    with _serve(None) as srv:
        held = [srv.connect("127.0.0.2") for _ in range(6)]
        try:
            with srv.connect("127.0.0.2") as extra:
                assert _get(extra).startswith(b"HTTP/1.1 200 ")
        finally:
            for s in held:
                s.close()


def test_when_full_the_longest_waiting_connection_makes_room() -> None:
    limits = ConnectionLimits(header_timeout=30, max_connections=4,
                              max_connections_per_address=0)
    with _serve(limits) as srv:
        slow = [srv.connect(f"127.0.0.{i}") for i in (2, 3, 4, 5)]
        try:
            for s in slow:
                s.sendall(b"GET /hel")
                time.sleep(0.05)
            with srv.connect() as legit:  # the server is full of slow clients
                assert _get(legit).startswith(b"HTTP/1.1 200 ")
            assert _read_all(slow[0], wait=2.0) == b""  # the oldest was closed for it
            slow[1].settimeout(0.3)
            with pytest.raises(TimeoutError):  # the others are still open
                slow[1].recv(1)
        finally:
            for s in slow:
                s.close()


def test_when_every_connection_is_busy_a_new_one_gets_503() -> None:
    limits = ConnectionLimits(header_timeout=30, max_connections=2,
                              max_connections_per_address=0)
    with _serve(limits) as srv:
        busy = [srv.connect() for _ in range(2)]
        try:
            for s in busy:
                s.sendall(b"GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
            deadline = time.monotonic() + 5
            while srv.app.blocked < 2:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            with srv.connect() as extra:
                data = _read_all(extra)
            assert data.startswith(b"HTTP/1.1 503 "), data
            assert _problem(data)["type"] == "/problems/too-many-connections"
            srv.unblock()  # the requests in progress were not disturbed
            for s in busy:
                assert _read_all(s, wait=1.0).startswith(b"HTTP/1.1 200 ")
        finally:
            for s in busy:
                s.close()


def test_headers_over_the_size_limit_get_431_and_are_not_buffered_further() -> None:
    with _serve(ConnectionLimits(header_timeout=30, max_header_bytes=8192)) as srv:
        with srv.connect() as ok:  # just under the limit: served
            ok.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 7000 + b"\r\n\r\n")
            assert _read_all(ok, wait=1.0).startswith(b"HTTP/1.1 200 ")
        with srv.connect() as big:  # one header that never ends, in pieces
            big.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: ")
            with contextlib.suppress(OSError):
                for _ in range(20):
                    big.sendall(b"a" * 1024)
                    time.sleep(0.01)
            data = _read_all(big)
        assert data.startswith(b"HTTP/1.1 431 "), data[:200]
        assert _problem(data)["type"] == "/problems/header-too-large"
        with srv.connect() as keep:  # the limit applies to each keep-alive request anew
            for _ in range(3):
                keep.sendall(b"GET /hello HTTP/1.1\r\nX-Big: " + b"a" * 6000 + b"\r\n\r\n")
                data = b""
                while not data.endswith(b"ok"):
                    data += keep.recv(65536)
                assert data.startswith(b"HTTP/1.1 200 ")


def test_without_limits_a_megabyte_of_headers_is_accepted() -> None:
    with _serve(None) as srv, srv.connect() as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (1 << 20)
                  + b"\r\n\r\n")
        data = b""
        while not data.endswith(b"ok"):
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 ")


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        ConnectionLimits(header_timeout=-1)
