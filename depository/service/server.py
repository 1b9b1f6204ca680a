"""Running the ASGI app on uvicorn: the one place the server is configured.

``depository serve`` (one process) and each ``serve --workers`` worker process call
:func:`run`; both get the same protocol (:mod:`depository.service._protocol`), the same
connection limits and the same graceful shutdown.
"""

from __future__ import annotations

import dataclasses
import logging
import resource
import signal
import socket
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.types import ASGIApp

if TYPE_CHECKING:
    from depository.service._small_put import SmallPut

from depository.service._protocol import ConnectionLimits, http_protocol

__all__ = ["ConnectionLimits", "Server", "limits_from_options", "run", "server_config"]

log = logging.getLogger("depository.service")

# File descriptors kept back from the connection cap: the store's database, blob files
# of streaming uploads and reads, exports, the writer channel, logs.
FD_RESERVE = 128


class Server(uvicorn.Server):
    """uvicorn's server, minus re-raising the signal after a graceful shutdown: the store
    must still be closed (writer drained, final checkpoint) before exiting."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def _fd_budget() -> int:
    """Raise the soft open-files limit to the hard one (as Go's runtime does) and return
    how many connections it leaves room for."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # pragma: no cover - a sandbox may refuse
            pass
    if soft == resource.RLIM_INFINITY:  # pragma: no cover
        return 1 << 20
    return max(16, soft - FD_RESERVE)


def effective_limits(limits: ConnectionLimits) -> ConnectionLimits:
    """``limits`` with the connection cap lowered to what the open-files limit allows
    (an accept that fails for want of descriptors would stall every client)."""
    budget = _fd_budget()
    if limits.max_connections and limits.max_connections > budget:
        log.warning("max_connections %d exceeds what the open-files limit allows; using %d",
                    limits.max_connections, budget)
        return dataclasses.replace(limits, max_connections=budget)
    return limits


def limits_from_options(options: Mapping[str, Any]) -> ConnectionLimits:
    """The limits named in a worker's options (missing ones take the defaults)."""
    d = ConnectionLimits()
    return ConnectionLimits(
        header_timeout=float(options.get("header_timeout", d.header_timeout)),
        max_connections=int(options.get("max_connections", d.max_connections)),
        max_connections_per_address=int(options.get("max_connections_per_address",
                                                    d.max_connections_per_address)),
        max_header_bytes=int(options.get("max_header_bytes", d.max_header_bytes)))


def small_put_for(app: ASGIApp, access_log: bool = False) -> SmallPut | None:
    """The small-PUT path for ``app`` (a service app), or None: off with access logging
    (it would skip the access log) and with ``DEPOSITORY_SMALL_PUT=0``."""
    from depository.service._context import AppContext
    from depository.service._small_put import SmallPut, enabled_by_env

    ctx = getattr(getattr(app, "state", None), "service", None)
    if access_log or not enabled_by_env() or not isinstance(ctx, AppContext):
        return None
    return SmallPut(ctx)


def server_config(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 8000,
                  limits: ConnectionLimits | None = None, access_log: bool = False,
                  log_level: str = "warning", small_put: bool = True) -> uvicorn.Config:
    """The uvicorn configuration every depository server uses (``small_put=False``: every
    upload through the ASGI route, e.g. to compare the two)."""
    return uvicorn.Config(
        app, host=host, port=port, loop="uvloop",
        http=http_protocol(effective_limits(limits or ConnectionLimits()),
                           small_put_for(app, access_log) if small_put else None),
        lifespan="on", access_log=access_log, log_level=log_level,
        timeout_graceful_shutdown=30, backlog=4096, server_header=False,
        proxy_headers=False)


def run(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 8000,
        sockets: Sequence[socket.socket] | None = None,
        limits: ConnectionLimits | None = None, access_log: bool = False,
        log_level: str = "warning") -> None:
    """Serve ``app`` until SIGINT or SIGTERM, on ``host:port`` or on the already
    listening ``sockets`` (a ``serve --workers`` worker's inherited socket)."""
    config = server_config(app, host=host, port=port, limits=limits,
                           access_log=access_log, log_level=log_level)
    Server(config).run(sockets=list(sockets) if sockets is not None else None)
