"""The uvicorn server class the service runs under (one process or ``--workers``)."""

from __future__ import annotations

import signal
from types import FrameType


def server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, minus re-raising the signal after a graceful shutdown: the
        store must still be closed (writer drained, final checkpoint) before exiting."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    return Server
