"""One external server per test session, shared by every pytest-xdist worker.

PostgreSQL (``tests/_pg.py``) and Ceph (``tests/conftest_s3.py``) are slow to start, so
the first worker that needs one starts it and records it in a JSON state file next to
the workers' temporary directories; the others join it, and the last one to finish
stops it. A lock file serialises the workers; a server found dead is started again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def shared_server(tmp_path_factory: pytest.TempPathFactory, name: str, *,
                  start: Callable[[int], dict[str, Any]],
                  alive: Callable[[dict[str, Any]], bool],
                  stop: Callable[[dict[str, Any]], None]) -> Iterator[dict[str, Any]]:
    """The session's server ``name``: its state (a JSON object) while this worker uses it.

    ``start(owner)`` starts one and returns its state; ``owner`` is the pid of the pytest
    process whose death must kill it (a watchdog). ``alive(state)`` tells whether a
    recorded server still runs; ``stop(state)`` stops it.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if worker else base
    state_file = shared / f"{name}.json"
    lock = shared / f"{name}.lock"
    me = worker or "main"
    owner = os.getppid() if worker else os.getpid()
    with _locked(lock):
        state = json.loads(state_file.read_text()) if state_file.exists() else None
        if state is None or not alive(state):
            if state is not None:
                stop(state)
            state = start(owner)
            state["users"] = []
        state["users"].append(me)
        state_file.write_text(json.dumps(state))
    try:
        yield state
    finally:
        with _locked(lock):
            cur = json.loads(state_file.read_text()) if state_file.exists() else None
            if cur is not None:
                with contextlib.suppress(ValueError):
                    cur["users"].remove(me)
                if cur["users"]:
                    state_file.write_text(json.dumps(cur))
                else:
                    stop(cur)
                    state_file.unlink()
