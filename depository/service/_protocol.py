"""uvicorn's httptools protocol, minus two copies of every request body chunk, plus the
connection limits that keep slow or greedy clients from starving everyone else.

The installed uvicorn appends each body piece the parser hands over to a ``bytearray``
and turns that into ``bytes`` again for the ASGI message: two copies of every byte on
the event loop, a quarter of its CPU during a large upload. Here the parser's piece is
kept as it is while it is alone (the usual case: one socket read per ``receive()``);
``bytes()`` of a ``bytes`` object is the object itself, so it reaches the app uncopied.
Only when several pieces queue before the app reads do they get joined, as before.

Limits (:class:`ConnectionLimits`; uvicorn has no header timeout, and its
``limit_concurrency`` counts idle connections too, so a slow-header attack would turn
every legitimate request into a 503):

* **header timeout**: from the connection's start, or the end of the previous response
  on a keep-alive connection, to the end of the next request's headers. A connection
  that has sent part of a request by then gets a 408; an idle one is closed.
* **header size**: the request line and headers of one request; more gets a 431.
* **connections per client address**: the next one is answered 503 and closed at once.
* **connections in all** (per process): when full, the connection that has waited
  longest for its request headers (a slow or idle one) is closed to make room; only when
  every connection is busy with a request is the new one answered 503.

Small uploads (:mod:`._small_put`): a ``PUT`` of an artifact whose whole small body
has arrived is answered here, without an ASGI task, when the protocol is given a
:class:`~._small_put.SmallPut`. Its request cycle is made as usual but not started;
if the path declines (or the body does not arrive soon), the cycle is started as any
other, with the body received so far, so the ASGI route sees exactly what it would have.

This leans on uvicorn internals (``cycle.body``, ``flow``, ``message_event``,
``on_headers_complete``, ``on_response_complete``); ``tests/test_service_protocol.py``
checks it against the installed version, and :func:`http_protocol` falls back to the
stock protocol if they are missing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from depository.service._small_put import SmallPut

log = logging.getLogger("depository.service")
BODY_WAIT = 1.0  # s a small upload's body may take after its headers (see _small_put)


@dataclasses.dataclass(frozen=True)
class ConnectionLimits:
    """Per-process connection limits; 0 turns a limit off (e.g. behind a reverse proxy
    that enforces its own, where every connection comes from the proxy's address)."""

    header_timeout: float = 10.0
    max_connections: int = 4096
    max_connections_per_address: int = 256
    max_header_bytes: int = 64 * 1024  # request line and headers of one request

    def __post_init__(self) -> None:
        if self.header_timeout < 0 or self.max_connections < 0 or \
                self.max_connections_per_address < 0 or self.max_header_bytes < 0:
            raise ValueError("connection limits must be >= 0 (0 turns a limit off)")


def _answer(status: int, reason: str, slug: str, detail: str, extra: str = "") -> bytes:
    from depository.service._problems import MEDIA_TYPE, Problem

    body = json.dumps(Problem(slug, detail).to_json(), ensure_ascii=False).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: {MEDIA_TYPE}\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n{extra}\r\n"
            ).encode() + body


_BUSY_ADDRESS = _answer(
    503, "Service Unavailable", "too-many-connections",
    "this client address has too many open connections; reuse one (keep-alive) or close "
    "some and retry", "retry-after: 1\r\n")
_BUSY = _answer(
    503, "Service Unavailable", "too-many-connections",
    "the server's connection limit is reached and every connection is busy with a "
    "request; retry shortly", "retry-after: 1\r\n")
_HEADER_TOO_LARGE = _answer(
    431, "Request Header Fields Too Large", "header-too-large",
    "the request line and headers exceed the server's limit")
_HEADER_TIMEOUT = _answer(
    408, "Request Timeout", "request-timeout",
    "the request headers did not arrive within the header timeout")


class _Registry:
    """The open connections of one server process (touched only on its event loop)."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open = 0
        self.per_address: dict[str, int] = {}
        self.waiting: dict[Any, None] = {}  # waiting for request headers, oldest first

    def admit(self, conn: Any, address: str | None) -> bytes | None:
        """Count ``conn`` in, or return the answer that refuses it."""
        lim = self.limits
        if lim.max_connections_per_address and address is not None and \
                self.per_address.get(address, 0) >= lim.max_connections_per_address:
            return _BUSY_ADDRESS
        if lim.max_connections and self.open >= lim.max_connections:
            victim = next(iter(self.waiting), None)
            if victim is None:
                return _BUSY
            victim.drop_for_room()
        self.open += 1
        if address is not None:
            self.per_address[address] = self.per_address.get(address, 0) + 1
        return None

    def release(self, conn: Any, address: str | None) -> None:
        self.open -= 1
        self.waiting.pop(conn, None)
        if address is not None:
            left = self.per_address.pop(address) - 1
            if left:
                self.per_address[address] = left


def http_protocol(limits: ConnectionLimits | None = None, small_put: SmallPut | None = None
                  ) -> type[asyncio.Protocol] | str:
    """The protocol class to give ``uvicorn.Config(http=...)``, or ``"httptools"``.

    Each call makes a new class with its own connection registry; ``limits=None`` applies
    none (only the body-copy saving). ``small_put`` answers small uploads in the
    protocol (the class keeps it as ``small_put``).
    """
    try:
        from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
        from uvicorn.protocols.http.httptools_impl import (
            STATUS_LINE,
            HttpToolsProtocol,
            RequestResponseCycle,
        )
    except ImportError:  # pragma: no cover - uvicorn[standard] is a dependency
        return "httptools"
    needed = ("on_body", "_should_upgrade", "connection_made", "connection_lost",
              "data_received", "on_headers_complete", "on_response_complete",
              "on_message_complete", "_start_asgi_task")
    if not all(hasattr(HttpToolsProtocol, a) for a in needed) or \
            not hasattr(RequestResponseCycle, "receive"):  # pragma: no cover
        return "httptools"
    registry = _Registry(limits or ConnectionLimits(0, 0, 0, 0))

    class _Protocol(HttpToolsProtocol):
        _counted = False
        _address: str | None = None
        _timer: asyncio.TimerHandle | None = None
        _partial = False
        _head_bytes = 0  # bytes received while the request line and headers are due
        _in_head = False
        # small uploads: the target of the request whose headers are being handled, the
        # cycle (not started) waiting for its body, its app and fallback timer
        _small_next: tuple[str, str] | None = None
        _small: tuple[str, str] | None = None
        _small_cycle: Any = None
        _small_app: Any = None
        _small_timer: asyncio.TimerHandle | None = None

        # ------------------------------------------------------------ limits
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._address = self.client[0] if self.client else None
            refusal = registry.admit(self, self._address)
            if refusal is not None:
                transport.write(refusal)
                transport.close()
                return
            self._counted = True
            self._await_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            self._small_drop()  # nothing stored: the body never completed
            if self._counted:
                self._counted = False
                registry.release(self, self._address)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            # Header bytes are counted from the socket, not from the parser's callbacks:
            # the parser holds a header's pieces until the whole header has arrived.
            waiting = self in registry.waiting
            if waiting or self._in_head:
                self._partial = self._partial or waiting
                self._head_bytes += len(data)
            super().data_received(data)
            if self._small_cycle is not None and self._small_timer is None and \
                    not self.transport.is_closing():  # the body is still due
                self._small_timer = self.loop.call_later(BODY_WAIT, self._small_fallback)
            cap = registry.limits.max_header_bytes
            if cap and self._head_bytes > cap and (self._in_head or self in registry.waiting) \
                    and not self.transport.is_closing():
                if self.cycle is None or self.cycle.response_complete:
                    self.transport.write(_HEADER_TOO_LARGE)  # (not inside another answer)
                self.transport.close()

        def on_message_begin(self) -> None:
            self._in_head = True
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._stop_waiting()
            self._in_head = False
            self._head_bytes = 0
            if small_put is not None:
                self._small_next = self._small_target()
            try:
                super().on_headers_complete()  # makes the cycle; starts or queues it
            finally:
                self._small_next = None

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and not self.pipeline:
                self._await_headers()  # keep-alive: the next request's headers are due

        def _await_headers(self) -> None:
            self._stop_waiting()
            self._partial = False
            self._head_bytes = 0
            registry.waiting[self] = None
            timeout = registry.limits.header_timeout
            if timeout:
                self._timer = self.loop.call_later(timeout, self._header_timeout)

        def _stop_waiting(self) -> None:
            registry.waiting.pop(self, None)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _header_timeout(self) -> None:
            self._timer = None
            if not self.transport.is_closing():
                if self._partial:
                    self.transport.write(_HEADER_TIMEOUT)
                self.transport.close()

        def drop_for_room(self) -> None:
            """Closed to make room for a new connection (the server is full)."""
            self._stop_waiting()
            if self._counted:
                self._counted = False
                registry.release(self, self._address)
            self.transport.close()

        # ------------------------------------------------------- small uploads
        def _small_target(self) -> tuple[str, str] | None:
            """The upload's (product, name) if the small-PUT path may take it."""
            assert small_put is not None
            parser = self.parser
            if self.config.access_log or self.expect_100_continue or \
                    parser.get_method() != b"PUT" or parser.get_http_version() != "1.1" or \
                    parser.should_upgrade():
                return None
            length = None
            for name, value in self.headers:
                if name == b"content-length":
                    if length is not None or not value.isdigit():
                        return None
                    length = int(value)
                elif name == b"transfer-encoding":
                    return None
            if length is None or length > small_put.max_body:
                return None
            return small_put.target(self.url)

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            if self._small_next is not None and cycle is self.cycle and app is self.app:
                # Not pipelined behind another request: hold the cycle for the body.
                self._small, self._small_cycle, self._small_app = \
                    self._small_next, cycle, app
                return
            super()._start_asgi_task(cycle, app)

        def on_message_complete(self) -> None:
            super().on_message_complete()
            cycle = self._small_cycle
            if cycle is None or cycle is not self.cycle:
                return
            target = self._small
            assert small_put is not None and target is not None
            self._small_drop()
            body = cycle.body
            cycle.body = bytearray()
            try:
                small_put.handle(cycle.scope["headers"], target[0], target[1],
                                 bytes(body), cycle.scope["path"],
                                 lambda status, headers, out: self._small_answer(
                                     cycle, status, headers, out))
            except Exception:  # pragma: no cover - handle() answers its own failures
                log.exception("small PUT failed")
                self.transport.close()

        def _small_answer(self, cycle: Any, status: int, headers: list[tuple[bytes, bytes]],
                          body: bytes) -> None:
            """Write the answer as uvicorn's cycle writes an ASGI response."""
            if cycle.disconnected or cycle.response_complete:
                return
            content = [STATUS_LINE[status]]
            close = False
            for name, value in (*cycle.default_headers, *headers):
                if name == b"connection" and \
                        b"close" in [t.lower().strip() for t in value.split(b",")]:
                    cycle.keep_alive = False
                    close = True
                content += (name, b": ", value, b"\r\n")
            if not cycle.keep_alive and not close:
                content.append(b"connection: close\r\n")
            content += (b"\r\n", body)
            cycle.response_started = True
            cycle.waiting_for_100_continue = False
            self.transport.write(b"".join(content))
            cycle.response_complete = True
            cycle.message_event.set()
            if not cycle.keep_alive:
                self.transport.close()
            cycle.on_response()

        def _small_fallback(self) -> None:
            """The body did not arrive in time: the ASGI route takes the request."""
            self._small_timer = None
            cycle, app = self._small_cycle, self._small_app
            self._small_drop()
            if cycle is not None and not cycle.disconnected:
                super()._start_asgi_task(cycle, app)

        def _small_drop(self) -> None:
            if self._small_timer is not None:
                self._small_timer.cancel()
                self._small_timer = None
            self._small = self._small_cycle = self._small_app = None

        # -------------------------------------------------------------- body
        def on_body(self, body: bytes) -> None:
            cycle = self.cycle
            if (self.parser.should_upgrade() and self._should_upgrade()) or \
                    cycle.response_complete:
                return
            held: bytes | bytearray = cycle.body
            if not held:
                cycle.body = body  # type: ignore[assignment]  # handed on as it is
            elif isinstance(held, bytearray):
                held += body
            else:  # a second piece before the app read the first: join from here on
                cycle.body = bytearray(held) + body
            if len(cycle.body) > HIGH_WATER_LIMIT:
                self.flow.pause_reading()
            cycle.message_event.set()

    _Protocol.__name__ = _Protocol.__qualname__ = "DepositoryHttpToolsProtocol"
    _Protocol.small_put = small_put  # type: ignore[attr-defined]
    return _Protocol
