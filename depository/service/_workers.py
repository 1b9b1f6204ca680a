"""``depository serve --workers N``: N HTTP worker processes, one writer.

In one process the event loop (HTTP parsing, auth, header JSON, validation, hashing,
encoding) and the store's writer thread share one GIL. With ``--workers N`` (N >= 2):

* the **parent** opens the store for writing (it holds the writer lock and runs the
  group-commit writer), binds the listening socket once, serves its writer on
  ``STORE/.writer.sock`` (a :class:`~depository.store.WriterServer`, mode 0600) and
  supervises the workers. It serves no HTTP itself.
* each **worker** runs uvicorn on the inherited listening socket with the usual app over
  a store attached to the parent's writer (:meth:`Store.attach` with a
  :class:`~depository.store.RemoteWriter`): reads come from its own read-only connections
  (WAL readers never block the writer); an upload is validated, hashed, stored (large
  bodies: temp file, fsync, rename into ``objects/`` -- safe from several processes) and
  encoded in the worker, and the prepared put goes to the parent, whose writer applies
  it. The reply comes only after the commit and fsync, so a 2xx still means durable.
  Every other mutation is the same :class:`~depository.store.StoreWriter` call, made in
  the parent.

The channel's protocol is the store's (``depository/store/_remote.py``); this module
only runs the processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from depository.store import RemoteWriter, Store, StoreError, WriterServer

log = logging.getLogger("depository.serve")


# ------------------------------------------------------------------ processes
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the parent dies (e.g. SIGKILLed)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


def _spawn(spec: dict[str, Any], fd: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "from depository.service._workers import worker_main; "
         "worker_main()", json.dumps(spec)], pass_fds=(fd,))


def run_parent(store: Store, *, host: str, port: int, workers: int,
               worker_options: dict[str, Any], on_listening: Callable[[int], None]
               ) -> None:
    """Serve ``store`` (open for writing; the caller closes it) through ``workers``
    worker processes until SIGTERM or SIGINT; returns once they have all exited."""
    listener = _listen(host, port)
    if store.local_writer is None:
        raise StoreError("serve --workers needs the store open for writing in this process")
    ops = WriterServer(store.local_writer, store.product, store.path)
    stop = threading.Event()

    def on_signal(sig: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    spec = dict(worker_options, store=str(store.path), channel=str(ops.path),
                fd=listener.fileno(), parent=os.getpid())
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs = [_spawn(spec, listener.fileno()) for _ in range(workers)]
        started = [time.monotonic()] * workers
        on_listening(int(listener.getsockname()[1]))
        while not stop.wait(0.2):
            for i, p in enumerate(procs):
                # At most one restart a second per slot: a worker that cannot start
                # (e.g. a bad setting) must not spin the machine.
                if p.poll() is not None and time.monotonic() - started[i] >= 1.0:
                    log.warning("HTTP worker %d (pid %d) exited with status %s; restarting",
                                i, p.pid, p.returncode)
                    procs[i] = _spawn(spec, listener.fileno())
                    started[i] = time.monotonic()
    finally:
        # Workers stop accepting and finish their requests (their writes are answered
        # by the op server, still running); then the caller drains the writer.
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 40
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("HTTP worker pid %d did not stop; killing it", p.pid)
                p.kill()
                p.wait()
        listener.close()
        ops.close()
        for s, h in previous.items():
            signal.signal(s, h)


def worker_main() -> None:
    """The entry point of one HTTP worker process (spawned by :func:`run_parent`)."""
    _die_with_parent()
    spec = json.loads(sys.argv[1])
    if os.getppid() != spec["parent"]:
        sys.exit(1)  # the parent died before prctl took effect
    from depository.service import create_app
    from depository.service._exports import ExportSettings
    from depository.service.server import limits_from_options, run

    logging.basicConfig(level=spec["log_level"].upper(),
                        format="%(asctime)s %(name)s %(message)s")
    sock = socket.socket(fileno=spec["fd"])

    def lost() -> None:
        # The parent is gone: nothing more can be acknowledged, so stop serving.
        os.kill(os.getpid(), signal.SIGTERM)

    channel = Path(spec["channel"])
    store = Store.attach(Path(spec["store"]),
                         lambda reads: RemoteWriter(channel, reads, on_lost=lost))
    try:
        exports = ExportSettings(
            directory=Path(spec["exports_dir"]),
            evidence_key_file=Path(spec["evidence_key"]) if spec["evidence_key"] else None,
            tsa_url=spec["tsa_url"], organisation=spec["organisation"])
        app = create_app(store, public_tiles=spec["public_tiles"],
                         upload_idle_timeout=spec["upload_timeout"], exports=exports,
                         dashboard=False, run_checks=False,
                         alerts_elsewhere=True)  # the parent runs checks and alerts
        run(app, sockets=[sock], limits=limits_from_options(spec),
            access_log=spec["access_log"], log_level=spec["log_level"])
    finally:
        store.close()
