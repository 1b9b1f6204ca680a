"""The HTTP protocol `depository serve` uses (uvicorn's httptools one without the body
copies): every body arrives whole and in order, however the client splits it."""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from depository.service._protocol import http_protocol


def test_the_installed_uvicorn_gets_the_copy_free_protocol() -> None:
    proto = http_protocol()
    assert not isinstance(proto, str), "uvicorn internals changed: stock protocol in use"
    assert proto.__name__ == "DepositoryHttpToolsProtocol"


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    h = hashlib.sha256()
    n = 0
    more = True
    while more:
        msg = await receive()
        body = msg.get("body", b"")
        assert isinstance(body, bytes)
        h.update(body)
        n += len(body)
        more = msg.get("more_body", False)
        if len(body) > 64 * 1024:
            await asyncio.sleep(0.001)  # let pieces pile up now and then
    out = f"{n} {h.hexdigest()}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = int(s.getsockname()[1])
    config = uvicorn.Config(_app, host="127.0.0.1", port=free, loop="uvloop",
                            http=http_protocol(), lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield free
    server.should_exit = True
    th.join(20)


def _send_in_pieces(s: socket.socket, data: bytes, rng: random.Random) -> None:
    view = memoryview(data)
    while view:
        k = rng.choice([1, 7, 1000, 65536, 300_000, 1 << 20])
        s.sendall(view[:k])
        view = view[k:]


def _responses(s: socket.socket, count: int) -> list[bytes]:
    data = b""
    out: list[bytes] = []
    while len(out) < count:
        chunk = s.recv(65536)
        assert chunk, "connection closed early"
        data += chunk
        while b"\r\n\r\n" in data:
            head, _, rest = data.partition(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            if len(rest) < length:
                break
            out.append(rest[:length])
            data = rest[length:]
    return out


@pytest.mark.parametrize("size", [0, 1, 65535, 65537, 256_000, 3_000_001])
@pytest.mark.parametrize("chunked", [False, True])
def test_bodies_arrive_whole(port: int, size: int, chunked: bool) -> None:
    rng = random.Random(size)
    body = rng.randbytes(size)
    if chunked:
        wire, pos = b"", 0
        while pos < size:
            k = rng.randint(1, 200_000)
            wire += b"%x\r\n" % len(body[pos:pos + k]) + body[pos:pos + k] + b"\r\n"
            pos += k
        wire += b"0\r\n\r\n"
        head = b"PUT /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    else:
        wire = body
        head = b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        # Twice on one connection, the second pipelined right behind the first.
        _send_in_pieces(s, head + wire + head + wire, rng)
        got = _responses(s, 2)
    want = f"{size} {hashlib.sha256(body).hexdigest()}".encode()
    assert got == [want, want]
