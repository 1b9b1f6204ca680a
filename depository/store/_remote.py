"""The writer over a Unix socket: :class:`WriterServer` (in the process that owns the
writer) and :class:`RemoteWriter` (a :class:`~depository.store._writer.StoreWriter` in
another process, e.g. each HTTP worker of ``serve --workers``).

Frames on the channel: 4-byte length (of what follows), 1-byte kind, 4-byte request id,
payload. A put's payload is :meth:`PreparedPut.encode` (a JSON header, then the record head
and inline bytes raw); every other call is one of the :class:`StoreWriter` methods named in
:data:`CALLS` with JSON arguments, and its answer small JSON. A :class:`StoreError` raised
in the server reaches the caller as the same type, message and attributes. The server
answers a put only after its commit and fsync, so a remote acknowledgement still means
durable.

The same channel runs over TCP between the nodes of a cluster (several ``serve`` nodes on
one PostgreSQL database, ADR 0014): followers forward writes to the sequencer's
``--advertise`` address. A TCP connection must first pass a mutual challenge-response
with the cluster's shared peer secret (HMAC-SHA256 over both sides' random nonces), so
only a node holding the secret may write through the sequencer; the frames after it are
not encrypted (run the peer channel on a private network or a tunnel).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import hashlib
import hmac
import itertools
import json
import logging
import os
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from depository.store import _errors
from depository.store._errors import GovernanceLockedError, StoreClosedError, StoreError
from depository.store._model import Hold, Receipt, Token
from depository.store._prepared import PreparedPut
from depository.store._reads import StoreReads
from depository.store._writer import StoreWriter
from depository.store.config import Product

log = logging.getLogger("depository.serve")

SOCKET_NAME = ".writer.sock"

_FRAME = struct.Struct("!IBI")  # length of the rest, kind, request id
_PUT, _CALL, _OK, _ERR = 1, 2, 3, 4
_MAX_FRAME = 1 << 30
# The peer handshake (TCP only): server hello + nonce; client nonce + MAC; server MAC.
_HELLO = b"DEPOSITORY-PEER/1\n"
_NONCE = 32
_HANDSHAKE_TIMEOUT = 5.0

# A Unix socket path, or a TCP (host, port) of a cluster peer.
Address = Path | tuple[str, int]

# Every StoreError subclass by name, so a refusal crosses the channel as itself.
_ERRORS: dict[str, type[StoreError]] = {
    c.__name__: c for c in vars(_errors).values()
    if isinstance(c, type) and issubclass(c, StoreError)
}
# The StoreWriter methods a remote caller may invoke (puts have their own frame): an
# explicit list, no arbitrary calls.
CALLS = frozenset({
    "checkpoint", "queue_depth", "extend_retention", "place_hold", "release_hold", "dispose",
    "lock", "unlock", "create_token", "revoke_token", "append_event",
})




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
        d: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc),
                             "attrs": exc.attrs()}
    else:  # not a refusal: the worker answers 500 ("internal"), as one process would
        d = {"type": "", "message": f"{type(exc).__name__}: {exc}"}
    return _dumps(d)


def _error_from(payload: bytes) -> BaseException:
    d = json.loads(payload)
    cls = _ERRORS.get(d["type"])
    if cls is None:
        return RuntimeError(d["message"])
    return cls(d["message"], **d.get("attrs", {}))


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


# ------------------------------------------------------------------ server
class _Conn:
    """One worker's connection: a reader thread takes frames, a sender thread writes
    the answers (batched: the writer thread only queues them)."""

    def __init__(self, server: WriterServer, sock: socket.socket) -> None:
        self._server = server
        self._sock = sock
        self._out: deque[bytes] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self._sender = threading.Thread(target=self._send_loop, daemon=True,
                                        name="depository-op-send")
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name="depository-op-read")
        self._reader.start()  # authenticates a TCP peer first, then starts the sender

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
            if req["m"] not in CALLS:
                raise StoreError(f"{req['m']!r} cannot be called over the writer channel")
            args = _dec(req["a"])
            result = getattr(self._server.writer, req["m"])(*args[0], **args[1])
            self.reply(_OK, rid, _dumps(_enc(result)))
        except Exception as exc:
            if not isinstance(exc, StoreError):
                log.exception("op channel call failed")
            self.reply(_ERR, rid, _error_payload(exc))

    def _read_loop(self) -> None:
        writer, product = self._server.writer, self._server.product
        if self._server.secret is not None:
            try:
                _server_handshake(self._sock, self._server.secret)
            except (OSError, PeerAuthError) as exc:
                log.warning("peer channel: refused a connection: %s", exc)
                with contextlib.suppress(OSError):
                    self._sock.close()
                with self._cv:
                    self._closed = True
                return
        self._sender.start()
        try:
            with self._sock.makefile("rb", buffering=1 << 18) as f:
                while True:
                    frame = _read_frame(cast(BinaryIO, f))
                    if frame is None:
                        break
                    kind, rid, payload = frame
                    if kind == _PUT:
                        try:
                            fut = writer.submit_put(PreparedPut.decode(payload, product))
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

    def stop_reading(self) -> None:
        """End the reader (answers already queued are still sent); the client sees the
        connection close once they are."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RD)

    def join(self, timeout: float) -> None:
        self._reader.join(timeout)
        if self._sender.is_alive():
            self._sender.join(timeout)
        with contextlib.suppress(OSError):
            self._sock.close()


class WriterServer:
    """Serves a writer at ``STORE/.writer.sock`` (mode 0600) to :class:`RemoteWriter`
    clients; ``product`` resolves product ids of incoming puts.

    With ``listen=(host, port)`` it serves cluster peers over TCP instead, each
    connection authenticated with ``secret`` (required) before any frame is read.
    """

    def __init__(self, writer: StoreWriter, product: Callable[[str], Product],
                 store_path: Path, *, listen: tuple[str, int] | None = None,
                 secret: bytes | None = None) -> None:
        self.writer = writer
        self.product = product
        self.secret = secret
        self.path: Path | None = None
        if listen is not None:
            if not secret:
                raise StoreError("a TCP writer channel needs a peer secret")
            family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
            self._sock = socket.socket(family, socket.SOCK_STREAM)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind(listen)
            self.address: Address = (listen[0], int(self._sock.getsockname()[1]))
        else:
            self.path = Path(store_path) / SOCKET_NAME
            self.address = self.path
            # A leftover from a killed server: this process holds the writer lock, so no
            # other server is using it.
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o177)  # created 0600: only the store's owner may write through
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
        """After the clients have gone: answer what is left, then remove the socket."""
        self._closing = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(5)
        # Clients still connected (a cluster sequencer stepping down) are told by the
        # connection closing, so they look for the new sequencer.
        for c in self._conns:
            c.stop_reading()
        self.pool.shutdown(wait=True)
        for c in self._conns:
            c.join(5)
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


# ------------------------------------------------------------------ client
class _Channel:
    """A worker's connection to the parent: requests from any thread, answers
    resolved by a reader thread into :class:`Future` objects."""

    def __init__(self, address: Address, on_lost: Callable[[], None],
                 secret: bytes | None = None) -> None:
        if isinstance(address, tuple):
            if not secret:
                raise StoreError("a TCP writer channel needs a peer secret")
            self._sock = socket.create_connection(address, timeout=_HANDSHAKE_TIMEOUT)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                _client_handshake(self._sock, secret)
            except BaseException:
                self._sock.close()
                raise
            self._sock.settimeout(None)
        else:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.connect(_sock_path(address))
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

    def call(self, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        payload = _dumps({"m": method, "a": [_enc(args), _enc(kwargs)]})
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


class PeerAuthError(StoreError):
    """A peer on the TCP writer channel did not prove it holds the cluster's secret."""


def _mac(secret: bytes, role: bytes, a: bytes, b: bytes) -> bytes:
    return hmac.new(secret, _HELLO + role + a + b, hashlib.sha256).digest()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise PeerAuthError(f"the peer closed the connection during the handshake "
                                f"({len(buf)} of {n} bytes)")
        buf += chunk
    return buf


def _server_handshake(sock: socket.socket, secret: bytes) -> None:
    sock.settimeout(_HANDSHAKE_TIMEOUT)
    ns = os.urandom(_NONCE)
    sock.sendall(_HELLO + ns)
    got = _recv_exact(sock, 2 * _NONCE)
    nc, mac = got[:_NONCE], got[_NONCE:]
    if not hmac.compare_digest(mac, _mac(secret, b"client", ns, nc)):
        raise PeerAuthError("the peer's proof does not match this node's peer secret")
    sock.sendall(_mac(secret, b"server", nc, ns))
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _client_handshake(sock: socket.socket, secret: bytes) -> None:
    hello = _recv_exact(sock, len(_HELLO) + _NONCE)
    if not hello.startswith(_HELLO):
        raise PeerAuthError("the address does not speak Depository's peer channel")
    ns, nc = hello[len(_HELLO):], os.urandom(_NONCE)
    sock.sendall(nc + _mac(secret, b"client", ns, nc))
    try:
        proof = _recv_exact(sock, 32)
    except PeerAuthError:
        raise PeerAuthError("the sequencer refused this node's proof: its peer secret "
                            "differs (is --peer-secret the same file on every node?)") from None
    if not hmac.compare_digest(proof, _mac(secret, b"server", nc, ns)):
        raise PeerAuthError("the sequencer's proof does not match this node's peer secret "
                            "(is --peer-secret the same file on every node?)")


def _gone() -> StoreClosedError:
    return StoreClosedError("the store's writer process is gone; nothing was "
                            "acknowledged for this request")


class RemoteWriter:
    """A :class:`StoreWriter` whose writer is a :class:`WriterServer` in another process.

    ``reads`` are this process's reads of the same store: they answer what the writer's
    own state would (the committed governance lock before a streamed upload; the token
    generation, which moves with tokens issued or revoked by any process).
    ``on_lost`` is called once if the server goes away.
    """

    def __init__(self, socket_path: Address, reads: StoreReads,
                 on_lost: Callable[[], None], *, secret: bytes | None = None) -> None:
        self._channel = _Channel(socket_path, on_lost, secret)
        self._reads = reads
        self._closed = False

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.call(method, list(args), kwargs)

    def submit_put(self, pp: PreparedPut) -> Future[Receipt]:
        if self._closed:
            raise StoreClosedError("store is closed")
        fut: Future[Receipt] = self._channel.request(_PUT, pp.encode(), _receipt_from)
        return fut

    def submit_puts(self, pps: Sequence[PreparedPut]
                    ) -> Future[list[Receipt | StoreError]]:
        """Each put on its own frame; one future for their results, in order."""
        parts = [self.submit_put(pp) for pp in pps]
        out: Future[list[Receipt | StoreError]] = Future()
        left = [len(parts)]
        mu = threading.Lock()

        def done(_: Future[Receipt]) -> None:
            with mu:
                left[0] -= 1
                if left[0]:
                    return
            results: list[Receipt | StoreError] = []
            for f in parts:
                exc = f.exception()
                if exc is None:
                    results.append(f.result())
                elif isinstance(exc, StoreError):
                    results.append(exc)
                else:
                    out.set_exception(exc)
                    return
            out.set_result(results)

        if not parts:
            out.set_result([])
        for f in parts:
            f.add_done_callback(done)
        return out

    def known_lock(self) -> str | None:
        """Only the writer knows the lock as of the put's transaction: it decides."""
        return None

    def before_stream(self) -> None:
        reason = self._reads.lock_reason()  # don't store a large body the writer refuses
        if reason is not None:
            raise GovernanceLockedError.of(reason)

    def report_tamper(self, reason: str) -> None:
        if self._reads.lock_reason() is None:
            with contextlib.suppress(StoreError):
                self.lock(f"tampering: {reason}", check="tamper", actor="depository")

    def checkpoint(self) -> bytes:
        return bytes(self._call("checkpoint"))

    def extend_retention(self, product: str, name_or_id: str, until: datetime, *,
                         actor: str, reason: str) -> int:
        return int(self._call("extend_retention", product, name_or_id, until, actor=actor,
                              reason=reason))

    def place_hold(self, *, matter: str, reason: str, actor: str,
                   artifact_ids: Sequence[str] = (), product: str | None = None,
                   since: datetime | None = None, until: datetime | None = None) -> Hold:
        return cast(Hold, self._call(
            "place_hold", matter=matter, reason=reason, actor=actor,
            artifact_ids=list(artifact_ids), product=product, since=since, until=until))

    def release_hold(self, hold_id: str, *, reason: str, actor: str) -> int:
        return int(self._call("release_hold", hold_id, reason=reason, actor=actor))

    def dispose(self, now: datetime | None = None, *, actor: str,
                artifact_ids: Sequence[str] | None = None) -> list[int]:
        return [int(x) for x in self._call(
            "dispose", now, actor=actor,
            artifact_ids=None if artifact_ids is None else list(artifact_ids))]

    def lock(self, reason: str, *, check: str, actor: str = "depository") -> int:
        return int(self._call("lock", reason, check=check, actor=actor))

    def unlock(self, *, reason: str, actor: str) -> int:
        return int(self._call("unlock", reason=reason, actor=actor))

    def create_token(self, *, role: str, actor: str, product: str | None = None,
                     expires: datetime | None = None, note: str = "") -> tuple[str, Token]:
        return cast(tuple[str, Token], self._call(
            "create_token", role=role, actor=actor, product=product, expires=expires,
            note=note))

    def revoke_token(self, token_id: str, *, reason: str, actor: str) -> int:
        return int(self._call("revoke_token", token_id, reason=reason, actor=actor))

    def append_event(self, type_: str, *, actor: str, product: str | None,
                     body: Mapping[str, Any]) -> tuple[int, bytes]:
        return cast(tuple[int, bytes], self._call(
            "append_event", type_, actor=actor, product=product, body=dict(body)))

    def queue_depth(self) -> int:
        """The server writer's queue (a monitoring figure; 0 if it cannot be asked)."""
        try:
            return int(self._call("queue_depth"))
        except StoreError:
            return 0

    @property
    def token_generation(self) -> int:
        """Read from the database, so a revocation through any process is seen by every
        process's auth cache on its next request."""
        return self._reads.token_generation()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._channel.close()
