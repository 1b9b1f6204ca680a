"""Streaming an ASGI request body into :meth:`Store.put_async` in constant memory.

Small bodies (up to the store's ``inline_max``) are read whole on the event loop and
handed to ``put_async`` there: hashing them is cheap and their bytes go into the
database with their record. Larger bodies go through a :class:`BodyPipe`: the event
loop pushes the chunks it receives into a bounded queue, and a worker thread runs
``put_async``, which takes the queued chunks about a MiB at a time (no copy) and writes
them to the temporary blob while another thread hashes them. At most 4 MiB wait in the
pipe, and uvicorn stops reading the socket while the loop waits, so a 5 GB upload uses a
few tens of MiB of memory.

The size limit is enforced as bytes arrive (413 as soon as it is passed). A client that
disconnects, stalls longer than the idle timeout, or sends too much makes the pipe raise
inside ``put_async``; the store then deletes the temporary file and queues nothing, so
no artifact and no log record exist for an upload that did not complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

from starlette.types import Message, Receive

from depository.service._problems import Problem, from_store_error
from depository.store import StoreError

BLOCK = 1024 * 1024
# A queued piece counts this much beyond its bytes, so a client dribbling tiny pieces
# cannot pile up millions of objects inside the byte bound.
_PIECE_COST = 64
_MAX_PARTS = 256  # pieces handed over at once (one writev; IOV_MAX is 1024)


class UploadAborted(Exception):
    """Raised inside the store's reader when the upload will not complete."""


class BodyPipe(io.RawIOBase):
    """A byte-bounded queue of body chunks: the loop writes, a worker thread reads.

    Chunks pass through as the server received them: :meth:`read_parts` hands the
    reader the queued pieces themselves (no copy to join them), about a block at a time.
    The reader is woken only once a block has queued (or at the end), so a 64 KiB chunk
    costs the loop a lock and an append, not a thread switch.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, max_bytes: int = 4 * BLOCK,
                 wake_at: int = BLOCK) -> None:
        super().__init__()
        self._loop = loop
        self._max = max_bytes
        self._wake_at = min(wake_at, max_bytes)
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._lock = threading.Lock()
        # Released (once) to wake the reader; a plain lock is the cheapest semaphore.
        self._wake = threading.Lock()
        self._wake.acquire()
        self._reader_waiting = False
        self._eof = False
        self._error: BaseException | None = None
        self._consumer_done = False
        self._producer_waiting = False
        self._space = asyncio.Event()
        self._carry = b""  # read(): the rest of a piece longer than the caller asked for

    # ----------------------------------------------------------------- loop side
    def try_push(self, chunk: bytes) -> bool | None:
        """Queue a chunk if there is room: True; None if full; False if the reader
        has stopped."""
        with self._lock:
            if self._consumer_done:
                return False
            if self._queued >= self._max:
                self._space.clear()
                self._producer_waiting = True
                return None
            self._chunks.append(chunk)
            self._queued += len(chunk) + _PIECE_COST
            wake = self._reader_waiting and self._queued >= self._wake_at
            if wake:
                self._reader_waiting = False
        if wake:
            self._wake.release()
        return True

    async def push(self, chunk: bytes) -> bool:
        """Queue a chunk, waiting for room; False if the reader has stopped."""
        while True:
            done = self.try_push(chunk)
            if done is not None:
                return done
            await self._space.wait()

    def _end(self, error: BaseException | None) -> None:
        with self._lock:
            if error is None:
                self._eof = True
            elif self._error is None and not self._eof:
                self._error = error
            wake = self._reader_waiting
            self._reader_waiting = False
        if wake:
            self._wake.release()

    def finish(self) -> None:
        """The whole body has been pushed."""
        self._end(None)

    def fail(self, exc: BaseException) -> None:
        """The body will not complete: the reader raises :class:`UploadAborted`."""
        self._end(exc)

    # --------------------------------------------------------------- thread side
    def readable(self) -> bool:
        return True

    def read_parts(self, size: int) -> list[bytes]:
        """The queued pieces, about ``size`` bytes or more (whole pieces); [] at the end.

        Waits for a block to queue, the end of the body or a failure; raises
        :class:`UploadAborted` once the upload has failed.
        """
        if self._carry:
            out, self._carry = [self._carry], b""
            return out
        while True:
            with self._lock:
                if self._error is not None:
                    raise UploadAborted(str(self._error))
                chunks = self._chunks
                if chunks and (self._queued >= self._wake_at or self._eof):
                    parts = [chunks.popleft()]
                    n = len(parts[0])
                    while chunks and n < size and len(parts) < _MAX_PARTS:
                        c = chunks.popleft()
                        parts.append(c)
                        n += len(c)
                    self._queued -= n + _PIECE_COST * len(parts)
                    release = self._producer_waiting and self._queued < self._max
                    if release:
                        self._producer_waiting = False
                    break
                if self._eof:
                    return []
                self._reader_waiting = True
            self._wake.acquire()
        if release:
            self._loop.call_soon_threadsafe(self._space.set)
        return parts

    def read(self, size: int | None = -1) -> bytes:
        if size == 0:
            return b""
        want = size if size is not None and size > 0 else self._max
        parts = self.read_parts(want)
        out = parts[0] if len(parts) == 1 else b"".join(parts)
        if len(out) > want:
            out, self._carry = out[:want], out[want:]
        return out

    def consumer_done(self) -> None:
        """The reader will read no more (it finished or failed): release the producer."""
        with self._lock:
            self._consumer_done = True
            self._chunks.clear()
            self._queued = 0
        self._loop.call_soon_threadsafe(self._space.set)


class _Watchdog:
    """The idle timeout, at no cost per chunk: a timer looks every ``idle / 4`` s (at
    most 1 s) whether :attr:`total` moved, and cancels the task once it has not for
    ``idle`` s. The loop only stores the byte count as chunks arrive.

    Use inside ``try``/``except CancelledError`` and ask :meth:`timed_out`.
    """

    __slots__ = ("_cancelling", "_every", "_handle", "_idle", "_loop", "_paused", "_seen",
                 "_since", "_task", "expired", "total")

    def __init__(self, idle: float) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._loop = loop
        self._task = task
        self._cancelling = task.cancelling()
        self._idle = idle
        self._every = min(1.0, idle / 4)
        self.total = 0
        self._seen = 0
        self._since = loop.time()
        self._paused = False
        self.expired = False
        self._handle: asyncio.TimerHandle | None = loop.call_later(self._every, self._check)

    def _check(self) -> None:
        now = self._loop.time()
        if self._paused or self.total != self._seen:
            self._seen = self.total
            self._since = now
        elif now - self._since >= self._idle:
            self.expired = True
            self._handle = None
            self._task.cancel()
            return
        self._handle = self._loop.call_later(self._every, self._check)

    def pause(self) -> None:
        """While the server itself is slow (the disk), the client is not idle."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._seen = self.total
        self._since = self._loop.time()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def timed_out(self) -> bool:
        """After a CancelledError: whether it was this timeout (and only it)."""
        self.stop()
        return self.expired and self._task.uncancel() <= self._cancelling


def too_large(max_size: int) -> Problem:
    return Problem("too-large", f"the body exceeds the maximum artifact size ({max_size} "
                   "bytes); the upload was refused and nothing was stored", field="body",
                   headers={"Connection": "close"}, extra={"max_artifact_size": max_size})


def _timeout(idle: float) -> Problem:
    return Problem("upload-timeout", f"no body bytes arrived for {idle:g} s; the upload was "
                   "abandoned and nothing was stored", field="body",
                   headers={"Connection": "close"})


def _incomplete() -> Problem:
    return Problem("upload-incomplete", "the connection ended before the whole body "
                   "arrived; nothing was stored", field="body",
                   headers={"Connection": "close"})


PutFn = Callable[[Any], "Future[Any]"]
T = TypeVar("T")


async def ingest(
    receive: Receive, put: PutFn, *, content_length: int | None, max_size: int,
    inline_max: int, idle_timeout: float, executor: Executor,
    streams: asyncio.Semaphore,
) -> Future[Any]:
    """Read the request body and start the store write; returns the store's future.

    ``put(stream_or_bytes)`` calls ``Store.put_async`` with everything but the body.
    Raises :class:`Problem` for an oversize, stalled or truncated body.
    """
    if content_length is not None and content_length > max_size:
        raise too_large(max_size)
    wd = _Watchdog(idle_timeout)
    try:
        msg: Message = await receive()
        if msg["type"] != "http.request":
            raise _incomplete()
        body: bytes = msg.get("body", b"")
        more = bool(msg.get("more_body", False))
        total = len(body)
        if total > max_size:
            raise too_large(max_size)
        wd.total = total
        buf = bytearray(body) if more else None
        while more and total <= inline_max:
            assert buf is not None
            msg = await receive()
            if msg["type"] != "http.request":
                raise _incomplete()
            chunk = msg.get("body", b"")
            more = bool(msg.get("more_body", False))
            total += len(chunk)
            if total > max_size:
                raise too_large(max_size)
            buf += chunk
            wd.total = total
        if not more:
            wd.stop()
            if content_length is not None and total != content_length:
                raise _incomplete()
            if buf is not None:
                body = bytes(buf)
            if total <= inline_max:
                # Small (the common case, usually one message): hashed here, no file,
                # no thread.
                return put(body)
        first = body if buf is None else bytes(buf)
        wd.pause()  # waiting for a streaming slot is not the client's idle time
        async with streams:
            wd.resume()
            return await _stream(receive, put, first, more, total, wd,
                                 content_length=content_length, max_size=max_size,
                                 executor=executor)
    except asyncio.CancelledError:
        if wd.timed_out():
            raise _timeout(idle_timeout) from None
        raise
    finally:
        wd.stop()


async def _stream(
    receive: Receive, put: PutFn, first: bytes, more: bool, total: int, wd: _Watchdog, *,
    content_length: int | None, max_size: int, executor: Executor,
) -> Future[Any]:
    loop = asyncio.get_running_loop()
    pipe = BodyPipe(loop)

    def run() -> Future[Any]:
        try:
            return put(pipe)
        finally:
            pipe.consumer_done()

    worker: Awaitable[Future[Any]] = loop.run_in_executor(executor, run)
    ok = False
    stopped = False
    try:
        if first:
            wd.pause()
            await pipe.push(first)
            wd.resume()
        try_push = pipe.try_push
        while more:
            msg: Message = await receive()
            if msg["type"] != "http.request":
                raise _incomplete()
            chunk = msg.get("body", b"")
            more = bool(msg.get("more_body", False))
            total += len(chunk)
            if total > max_size:
                raise too_large(max_size)
            wd.total = total
            if not chunk:
                continue
            pushed = try_push(chunk)
            if pushed is None:  # the disk is behind: not the client's idle time
                wd.pause()
                pushed = await pipe.push(chunk)
                wd.resume()
            if not pushed:
                stopped = True  # the store stopped reading: its error answers
                break
        if not more and content_length is not None and total != content_length:
            raise _incomplete()
        if not more:
            pipe.finish()
            ok = True
    finally:
        wd.stop()  # from here on the server is working, not the client
        if not ok:
            pipe.fail(UploadAborted("upload did not complete"))
            # Wait for the store to clean up its temporary file before answering.
            with contextlib.suppress(Exception):  # the upload's own problem answers
                await worker
    if stopped:
        try:
            return await worker
        except StoreError as exc:
            p = from_store_error(exc)
            p.headers["Connection"] = "close"  # the rest of the body is not read
            raise p from exc
    return await worker


def result(fut: Future[T]) -> asyncio.Future[T]:
    """Await a store future from the loop: :func:`asyncio.wrap_future` minus the
    two-way chaining (nothing here cancels the store's future), which halves its cost
    per upload."""
    loop = asyncio.get_running_loop()
    out: asyncio.Future[T] = loop.create_future()

    def copy(f: Future[T]) -> None:  # on the loop
        if out.cancelled():
            return
        if f.cancelled():
            out.cancel()
            return
        exc = f.exception()
        if exc is None:
            out.set_result(f.result())
        else:
            out.set_exception(exc)

    def done(f: Future[T]) -> None:  # on the store's writer thread (or right here)
        if not loop.is_closed():
            loop.call_soon_threadsafe(copy, f)

    fut.add_done_callback(done)
    return out
