"""uvicorn's httptools protocol, minus two copies of every request body chunk.

The installed uvicorn appends each body piece the parser hands over to a ``bytearray``
and turns that into ``bytes`` again for the ASGI message: two copies of every byte on
the event loop, a quarter of its CPU during a large upload. Here the parser's piece is
kept as it is while it is alone (the usual case: one socket read per ``receive()``);
``bytes()`` of a ``bytes`` object is the object itself, so it reaches the app uncopied.
Only when several pieces queue before the app reads do they get joined, as before.

This leans on uvicorn internals (``cycle.body``, ``flow``, ``message_event``);
``tests/test_service_protocol.py`` checks it against the installed version, and
:func:`http_protocol` falls back to the stock protocol if they are missing.
"""

from __future__ import annotations

import asyncio


def http_protocol() -> type[asyncio.Protocol] | str:
    """The protocol class to give ``uvicorn.Config(http=...)``, or ``"httptools"``."""
    try:
        from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
        from uvicorn.protocols.http.httptools_impl import (
            HttpToolsProtocol,
            RequestResponseCycle,
        )
    except ImportError:  # pragma: no cover - uvicorn[standard] is a dependency
        return "httptools"
    if not all(hasattr(HttpToolsProtocol, a) for a in ("on_body", "_should_upgrade")) or \
            not hasattr(RequestResponseCycle, "receive"):  # pragma: no cover
        return "httptools"

    class _Protocol(HttpToolsProtocol):
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
    return _Protocol
