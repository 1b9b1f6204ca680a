"""``depository serve --workers N``: N HTTP worker processes, one writer.

In one process the event loop (HTTP parsing, auth, header JSON, validation, hashing,
encoding) and the store's writer thread share one GIL. With ``--workers N`` (N >= 2):

* the **parent** opens the store for writing (it holds the writer lock and runs the
  group-commit writer), binds the listening socket once, serves the *op channel* (a Unix
  socket ``STORE/.writer.sock``, mode 0600) and supervises the workers. It serves no
  HTTP itself.
* each **worker** runs uvicorn on the inherited listening socket with the usual app over
  a :class:`WorkerStore`: reads come from its own read-only connections (WAL readers
  never block the writer); an upload is validated, hashed, stored (large bodies: temp
  file, fsync, rename into ``objects/`` -- safe from several processes) and encoded in
  the worker, exactly as :meth:`Store.put_async` does before queueing, and the prepared
  operation goes to the parent, whose writer applies it as ``put_async`` would. The
  reply comes only after the commit and fsync, so a 2xx still means durable.
* every other mutation the service performs is a call from a fixed method table
  (:data:`_METHODS`) executed by the parent's :class:`Store`; a :class:`StoreError`
  raised there reaches the worker as the same type and message.

Frames on the channel: 4-byte length (of what follows), 1-byte kind, 4-byte request id,
payload. A put's payload is :func:`~depository.store._store.encode_prepared` (a JSON
header, then the record head and inline bytes raw); calls and answers are small JSON.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import dataclasses
import functools
import itertools
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any, BinaryIO, cast

from depository.store import _errors
from depository.store._backend import open_backend
from depository.store._errors import (
    GovernanceLockedError,
    QuotaError,
    StoreClosedError,
    StoreError,
)
from depository.store._store import (
    CONFIG_NAME,
    Hold,
    Receipt,
    Store,
    Token,
    _State,
    decode_prepared,
    encode_prepared,
    utc_now,
)
from depository.store.config import load_config

log = logging.getLogger("depository.serve")

SOCKET_NAME = ".writer.sock"

_FRAME = struct.Struct("!IBI")  # length of the rest, kind, request id
_PUT, _CALL, _OK, _ERR = 1, 2, 3, 4
_MAX_FRAME = 1 << 30

# Every StoreError subclass by name, so a refusal crosses the channel as itself.
_ERRORS: dict[str, type[StoreError]] = {
    c.__name__: c for c in vars(_errors).values()
    if isinstance(c, type) and issubclass(c, StoreError)
}


# ------------------------------------------------------------------------- codec
def _enc(v: Any) -> Any:
    """A call's arguments or result as JSON (tagged: bytes, datetimes, tuples, records)."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, bytes):
        return {"$b": base64.b64encode(v).decode()}
    if isinstance(v, datetime):
        return {"$t": v.isoformat()}
    if isinstance(v, Hold | Token):
        tag = "$hold" if isinstance(v, Hold) else "$token"
        return {tag: {f.name: _enc(getattr(v, f.name)) for f in dataclasses.fields(v)}}
    if isinstance(v, tuple):
        return {"$tuple": [_enc(x) for x in v]}
    if isinstance(v, list):
        return [_enc(x) for x in v]
    if isinstance(v, Mapping):
        return {"$map": {str(k): _enc(x) for k, x in v.items()}}
    raise TypeError(f"cannot send a {type(v).__name__} over the op channel")


def _dec(v: Any) -> Any:
    if isinstance(v, list):
        return [_dec(x) for x in v]
    if not isinstance(v, dict):
        return v
    (tag, inner), = v.items()
    if tag == "$b":
        return base64.b64decode(inner)
    if tag == "$t":
        return datetime.fromisoformat(inner)
    if tag == "$tuple":
        return tuple(_dec(x) for x in inner)
    if tag == "$map":
        return {k: _dec(x) for k, x in inner.items()}
    fields = {k: _dec(x) for k, x in inner.items()}
    if tag == "$hold":
        return Hold(**fields)
    if tag == "$token":
        return Token(**fields)
    raise ValueError(f"unknown tag {tag!r} on the op channel")


def _dumps(v: Any) -> bytes:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode()


def _error_payload(exc: BaseException) -> bytes:
    if isinstance(exc, StoreError):
        d: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
        if isinstance(exc, QuotaError):
            d.update(kind=exc.kind, used=exc.used, limit=exc.limit)
    else:  # not a refusal: the worker answers 500 ("internal"), as one process would
        d = {"type": "", "message": f"{type(exc).__name__}: {exc}"}
    return _dumps(d)


def _error_from(payload: bytes) -> BaseException:
    d = json.loads(payload)
    cls = _ERRORS.get(d["type"])
    if cls is None:
        return RuntimeError(d["message"])
    if cls is QuotaError:
        return QuotaError(d["message"], kind=d["kind"], used=d["used"], limit=d["limit"])
    return cls(d["message"])


def _receipt_payload(r: Receipt) -> bytes:
    return _dumps([r.artifact_id, r.product, r.name, r.sha256, r.size, r.log_index,
                   r.leaf_hash.hex(), r.created, r.retain_until, r.duplicate])


def _receipt_from(payload: bytes) -> Receipt:
    a = json.loads(payload)
    return Receipt(artifact_id=a[0], product=a[1], name=a[2], sha256=a[3], size=a[4],
                   log_index=a[5], leaf_hash=bytes.fromhex(a[6]), created=a[7],
                   retain_until=a[8], duplicate=a[9])


def _read_frame(f: BinaryIO) -> tuple[int, int, bytes] | None:
    """(kind, request id, payload), or None at the end of the stream."""
    hdr = f.read(_FRAME.size)
    if len(hdr) < _FRAME.size:
        return None
    n, kind, rid = _FRAME.unpack(hdr)
    if not _FRAME.size - 4 <= n <= _MAX_FRAME:
        raise OSError(f"bad frame length {n} on the op channel")
    body = f.read(n - (_FRAME.size - 4))
    if len(body) < n - (_FRAME.size - 4):
        return None
    return kind, rid, body


def _frame(kind: int, rid: int, payload: bytes) -> bytes:
    return _FRAME.pack(len(payload) + _FRAME.size - 4, kind, rid) + payload


def _sock_path(path: Path) -> str:
    """A name ``bind``/``connect`` accept: AF_UNIX paths are limited to 107 bytes, so a
    deep store directory is reached through a descriptor of it (Linux /proc)."""
    if len(os.fsencode(path)) < 100:
        return str(path)
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)  # kept open: the name uses it
    return f"/proc/self/fd/{fd}/{path.name}"


# ------------------------------------------------------------- parent: op server
# The mutations a worker may ask for: explicit, no arbitrary calls.
_METHODS: dict[str, Callable[[Store, dict[str, Any]], Any]] = {
    "checkpoint": lambda s, a: s.checkpoint(),
    "queue_depth": lambda s, a: s.queue_depth(),
    "extend_retention": lambda s, a: s.extend_retention(
        a["product"], a["name_or_id"], a["until"], actor=a["actor"], reason=a["reason"]),
    "place_hold": lambda s, a: s.place_hold(
        matter=a["matter"], reason=a["reason"], actor=a["actor"],
        artifact_ids=a["artifact_ids"], product=a["product"], since=a["since"],
        until=a["until"]),
    "release_hold": lambda s, a: s.release_hold(a["hold_id"], reason=a["reason"],
                                                actor=a["actor"]),
    "lock": lambda s, a: s.lock(a["reason"], check=a["check"], actor=a["actor"]),
    "unlock": lambda s, a: s.unlock(reason=a["reason"], actor=a["actor"]),
    "create_token": lambda s, a: s.create_token(
        role=a["role"], actor=a["actor"], product=a["product"], expires=a["expires"],
        note=a["note"]),
    "revoke_token": lambda s, a: s.revoke_token(a["token_id"], reason=a["reason"],
                                                actor=a["actor"]),
    "append_event": lambda s, a: s.append_event(
        a["type"], actor=a["actor"], product=a["product"], body=a["body"]),
}


class _Conn:
    """One worker's connection: a reader thread takes frames, a sender thread writes
    the answers (batched: the writer thread only queues them)."""

    def __init__(self, server: OpServer, sock: socket.socket) -> None:
        self._server = server
        self._sock = sock
        self._out: deque[bytes] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self._sender = threading.Thread(target=self._send_loop, daemon=True,
                                        name="depository-op-send")
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name="depository-op-read")
        self._sender.start()
        self._reader.start()

    def reply(self, kind: int, rid: int, payload: bytes) -> None:
        with self._cv:
            self._out.append(_frame(kind, rid, payload))
            self._cv.notify()

    def _send_loop(self) -> None:
        while True:
            with self._cv:
                while not self._out and not self._closed:
                    self._cv.wait()
                if not self._out:
                    return
                data = b"".join(self._out)
                self._out.clear()
            try:
                self._sock.sendall(data)
            except OSError:
                return  # the worker is gone; its requests were not acknowledged

    def _put_done(self, rid: int, fut: Future[Receipt]) -> None:  # on the writer thread
        exc = fut.exception()
        if exc is None:
            self.reply(_OK, rid, _receipt_payload(fut.result()))
        else:
            self.reply(_ERR, rid, _error_payload(exc))

    def _call(self, rid: int, payload: bytes) -> None:
        try:
            req = json.loads(payload)
            fn = _METHODS[req["m"]]
            result = fn(self._server.store, _dec(req["a"]))
            self.reply(_OK, rid, _dumps(_enc(result)))
        except Exception as exc:
            if not isinstance(exc, StoreError):
                log.exception("op channel call failed")
            self.reply(_ERR, rid, _error_payload(exc))

    def _read_loop(self) -> None:
        store = self._server.store
        try:
            with self._sock.makefile("rb", buffering=1 << 18) as f:
                while True:
                    frame = _read_frame(cast(BinaryIO, f))
                    if frame is None:
                        break
                    kind, rid, payload = frame
                    if kind == _PUT:
                        try:
                            fut = store.submit_prepared(decode_prepared(store, payload))
                        except Exception as exc:
                            self.reply(_ERR, rid, _error_payload(exc))
                            continue
                        fut.add_done_callback(functools.partial(self._put_done, rid))
                    elif kind == _CALL:
                        self._server.pool.submit(self._call, rid, payload)
                    else:
                        raise OSError(f"unknown frame kind {kind} on the op channel")
        except (OSError, ValueError):
            log.exception("op channel connection failed")
        finally:
            with self._cv:
                self._closed = True
                self._cv.notify()

    def join(self, timeout: float) -> None:
        self._reader.join(timeout)
        self._sender.join(timeout)
        with contextlib.suppress(OSError):
            self._sock.close()


class OpServer:
    """The parent's end of the op channel: ``STORE/.writer.sock`` (0600)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.path = store.path / SOCKET_NAME
        # A leftover from a killed server: this process holds the writer lock, so no
        # other server is using it.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # created 0600: only the store's owner may write through it
        try:
            self._sock.bind(_sock_path(self.path))
        finally:
            os.umask(old)
        self._sock.listen(64)
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="depository-op")
        self._conns: list[_Conn] = []
        self._closing = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name="depository-op-accept")
        self._thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return  # closed
            if self._closing:
                sock.close()
                return
            self._conns.append(_Conn(self, sock))

    def close(self) -> None:
        """After the workers have exited: answer what is left, then remove the socket."""
        self._closing = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(5)
        self.pool.shutdown(wait=True)
        for c in self._conns:
            c.join(5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


# ------------------------------------------------------------- worker: client
class _Channel:
    """A worker's connection to the parent: requests from any thread, answers
    resolved by a reader thread into :class:`Future` objects."""

    def __init__(self, path: Path, on_lost: Callable[[], None]) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(_sock_path(path))
        self._on_lost = on_lost
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[Future[Any], Callable[[bytes], Any]]] = {}
        self._lost = False
        self._closing = False  # our own close: not the parent's death
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name="depository-channel")
        self._reader.start()

    def request(self, kind: int, payload: bytes, decode: Callable[[bytes], Any]
                ) -> Future[Any]:
        fut: Future[Any] = Future()
        data = None
        with self._lock:
            if not self._lost:
                rid = next(self._ids)
                self._pending[rid] = (fut, decode)
                data = _frame(kind, rid, payload)
                try:
                    self._sock.sendall(data)
                except OSError:
                    self._pending.pop(rid, None)
                    data = None
        if data is None:
            fut.set_exception(_gone())
        return fut

    def call(self, method: str, **args: Any) -> Any:
        payload = _dumps({"m": method, "a": _enc(args)})
        return self.request(_CALL, payload, lambda b: _dec(json.loads(b))).result()

    def _read_loop(self) -> None:
        try:
            with self._sock.makefile("rb", buffering=1 << 16) as f:
                while True:
                    frame = _read_frame(cast(BinaryIO, f))
                    if frame is None:
                        break
                    kind, rid, payload = frame
                    entry = self._pending.pop(rid, None)
                    if entry is None:
                        continue
                    fut, decode = entry
                    if kind == _OK:
                        try:
                            fut.set_result(decode(payload))
                        except Exception as exc:
                            fut.set_exception(exc)
                    else:
                        fut.set_exception(_error_from(payload))
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._lost = True
                pending, self._pending = self._pending, {}
            for fut, _ in pending.values():
                fut.set_exception(_gone())
            if not self._closing:
                self._on_lost()

    def close(self) -> None:
        with self._lock:
            self._lost = True
            self._closing = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._reader.join(5)
        self._sock.close()


def _gone() -> StoreClosedError:
    return StoreClosedError("the store's writer process is gone; nothing was "
                            "acknowledged for this request")


class WorkerStore(Store):
    """A store in an HTTP worker: reads here, writes through the parent's writer.

    Opened read-only (no writer lock, no writer thread); the blob directory is opened
    for writing because large uploads are stored here before their record is queued.
    """

    def __init__(self, path: Path, *, channel: Path, on_lost: Callable[[], None],
                 clock: Callable[[], datetime] = utc_now) -> None:
        config = load_config(path / CONFIG_NAME)
        super().__init__(path, config, signer_key=None, clock=clock, readonly=True)
        self.blobs = open_backend(path / "objects", config.backend, readonly=False)
        # _prepare_put's early refusal under a governance lock reads _state.locked, which
        # only the writer knows: never set here, so the writer (which checks every put)
        # decides; put_async asks the database before storing a large body.
        self._state = cast(_State, SimpleNamespace(locked=None))
        self._channel = _Channel(channel, on_lost)

    def close(self) -> None:
        if not self._closed:
            self._channel.close()
        super().close()

    def _refuse_if_locked(self) -> None:
        row = self._reader().execute(
            "SELECT state, reason FROM governance ORDER BY log_idx DESC LIMIT 1").fetchone()
        if row is not None and row[0] == "locked":
            raise GovernanceLockedError(self._lock_message(str(row[1])))

    @property
    def token_generation(self) -> int:
        """Moves with every token issued or revoked by any process: read from the
        database (two indexed maxima), so a revocation through one worker is seen by
        every worker's auth cache on its next request."""
        row = self._reader().execute(
            "SELECT (SELECT max(issued_idx) FROM token), "
            "(SELECT max(log_idx) FROM token_revoke)").fetchone()
        return int(row[0] or 0) + int(row[1] or 0)

    def put_async(
        self, product: str, name: str, stream: BinaryIO | bytes, *,
        metadata: Mapping[str, Any] | None = None, provenance: Mapping[str, Any] | None = None,
        media_type: str = "application/octet-stream", retain_until: datetime | None = None,
        actor: str = "cli",
    ) -> Future[Receipt]:
        if self._closed:
            raise StoreClosedError("store is closed")
        if not isinstance(stream, bytes | bytearray):
            self._refuse_if_locked()  # don't store a large body the writer will refuse
        pp = self._prepare_put(product, name, stream, metadata=metadata,
                               provenance=provenance, media_type=media_type,
                               retain_until=retain_until, actor=actor)
        fut: Future[Receipt] = self._channel.request(_PUT, encode_prepared(pp), _receipt_from)
        return fut

    def queue_depth(self) -> int:
        """The parent writer's queue (a monitoring figure; 0 if it cannot be asked)."""
        try:
            return int(self._channel.call("queue_depth"))
        except StoreError:
            return 0

    def checkpoint(self) -> bytes:
        return bytes(self._channel.call("checkpoint"))

    def extend_retention(
        self, product: str, name_or_id: str, until: datetime, *, actor: str, reason: str,
    ) -> int:
        return int(self._channel.call("extend_retention", product=product,
                                      name_or_id=name_or_id, until=until, actor=actor,
                                      reason=reason))

    def place_hold(
        self, *, matter: str, reason: str, actor: str, artifact_ids: Sequence[str] = (),
        product: str | None = None, since: datetime | None = None,
        until: datetime | None = None,
    ) -> Hold:
        return cast(Hold, self._channel.call(
            "place_hold", matter=matter, reason=reason, actor=actor,
            artifact_ids=list(artifact_ids), product=product, since=since, until=until))

    def release_hold(self, hold_id: str, *, reason: str, actor: str) -> int:
        return int(self._channel.call("release_hold", hold_id=hold_id, reason=reason,
                                      actor=actor))

    def lock(self, reason: str, *, check: str, actor: str = "depository") -> int:
        return int(self._channel.call("lock", reason=reason, check=check, actor=actor))

    def unlock(self, *, reason: str, actor: str) -> int:
        return int(self._channel.call("unlock", reason=reason, actor=actor))

    def create_token(
        self, *, role: str, actor: str, product: str | None = None,
        expires: datetime | None = None, note: str = "",
    ) -> tuple[str, Token]:
        return cast(tuple[str, Token], self._channel.call(
            "create_token", role=role, actor=actor, product=product, expires=expires,
            note=note))

    def revoke_token(self, token_id: str, *, reason: str, actor: str) -> int:
        return int(self._channel.call("revoke_token", token_id=token_id, reason=reason,
                                      actor=actor))

    def append_event(
        self, type_: str, *, actor: str, product: str | None, body: Mapping[str, Any],
    ) -> tuple[int, bytes]:
        return cast(tuple[int, bytes], self._channel.call(
            "append_event", type=type_, actor=actor, product=product, body=dict(body)))


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
    ops = OpServer(store)
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

    store = WorkerStore(Path(spec["store"]), channel=Path(spec["channel"]), on_lost=lost)
    try:
        exports = ExportSettings(
            directory=Path(spec["exports_dir"]),
            evidence_key_file=Path(spec["evidence_key"]) if spec["evidence_key"] else None,
            tsa_url=spec["tsa_url"], organisation=spec["organisation"])
        app = create_app(store, public_tiles=spec["public_tiles"],
                         upload_idle_timeout=spec["upload_timeout"], exports=exports,
                         dashboard=False)
        run(app, sockets=[sock], limits=limits_from_options(spec),
            access_log=spec["access_log"], log_level=spec["log_level"])
    finally:
        store.close()
