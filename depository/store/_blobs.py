"""Content-addressed blob files: ``objects/ab/cd/<sha256>``, written durably, read-only.

Small artifacts (up to ``inline_max``) never reach this directory: their bytes go into
the ``inline_blob`` table in the same transaction as their log record, which is both faster
and atomic. Larger ones stream to a temporary file while hashing, are fsynced, renamed
into place, and the directory is fsynced before the log record is written.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import io
import os
import queue
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from depository.store._backend import BlobStat
from depository.store._errors import DiskFullError, StoreError, TooLargeError

CHUNK = 1024 * 1024
WRITEBACK_EVERY = 8 * CHUNK  # start writing the file out after each this many bytes
THREAD_AFTER = 4 * CHUNK  # hash in line up to here; a thread only pays off beyond
HASH_QUEUE = 4  # batches (about CHUNK each) waiting for the hashing thread at most


@dataclass
class Ingested:
    """A streamed artifact: its hash, size, and where its bytes are now."""

    sha256: str
    size: int
    data: bytes | None  # inline bytes, or None when stored as a file


def fsync_dir(path: Path) -> None:
    """fsync a directory, so the entries just created or renamed in it survive a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_error(exc: OSError, what: str) -> StoreError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return DiskFullError(
            f"{what}: the disk is full ({exc.strerror}); nothing was stored. "
            "Free space or move the store, then retry."
        )
    return StoreError(f"{what}: {exc.strerror or exc}")


class BlobDir:
    """The local content-addressed directory under ``STORE/objects``.

    The default implementation of :class:`depository.store._backend.BlobBackend`.
    """

    kind = "local"
    object_lock = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def create(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256_hex: str) -> Path:
        return self.root / sha256_hex[:2] / sha256_hex[2:4] / sha256_hex

    def ingest(self, stream: BinaryIO, *, max_size: int, inline_max: int, what: str,
               retain_until: datetime | None = None) -> Ingested:
        """Stream ``stream`` in constant memory, hashing it; store it if large.

        Raises :class:`TooLargeError` as soon as more than ``max_size`` bytes arrive,
        leaving nothing behind. A large body is hashed on a second thread while this one
        writes it (see :class:`_Hasher`), and the kernel is asked to start writing it out
        as it goes, so the final fsync has little left to do.
        """
        batches = read_batches(stream, max_size=max_size, what=what)
        head: list[bytes] = []
        size = 0
        tmp_path: Path | None = None
        fd = -1
        hasher = _Hasher()
        try:
            for batch, n in batches:
                head += batch
                size += n
                if size > inline_max:
                    break
            else:
                # Small: inline bytes, hashed here, no file.
                data = b"".join(head)
                return Ingested(sha256=hashlib.sha256(data).hexdigest(), size=size,
                                data=data)
            tmp_path = self.tmp / f"upload-{secrets.token_hex(8)}"
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            hasher.feed(head, size)
            _writev_all(fd, head)
            head = []
            flushed = 0
            for batch, n in batches:
                hasher.feed(batch, n)
                _writev_all(fd, batch)
                size += n
                if size - flushed >= WRITEBACK_EVERY:
                    _start_writeback(fd, flushed, size - flushed)
                    flushed = size
            digest = hasher.hexdigest()
            os.fsync(fd)
            os.close(fd)
            fd = -1
            self._place(tmp_path, digest)
            tmp_path = None
            return Ingested(sha256=digest, size=size, data=None)
        except OSError as exc:
            raise disk_error(exc, what) from exc
        finally:
            hasher.close()
            if fd >= 0:
                os.close(fd)
            if tmp_path is not None:
                tmp_path.unlink(missing_ok=True)

    def _place(self, tmp_path: Path, digest: str) -> None:
        final = self.path(digest)
        if final.exists():
            # Content-addressed: the same name holds the same bytes (scrub checks).
            tmp_path.unlink()
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp_path, 0o444)
        os.rename(tmp_path, final)
        fsync_dir(final.parent)
        fsync_dir(final.parent.parent)

    def open(self, sha256_hex: str, start: int = 0, length: int | None = None) -> BinaryIO:
        if length is None:
            f = open(self.path(sha256_hex), "rb")  # noqa: SIM115 - the caller closes it
            f.seek(start)
            return f
        raw = open(self.path(sha256_hex), "rb", buffering=0)  # noqa: SIM115
        raw.seek(start)
        return io.BufferedReader(_Limited(raw, length), buffer_size=CHUNK)

    def exists(self, sha256_hex: str) -> bool:
        return self.path(sha256_hex).is_file()

    def remove(self, sha256_hex: str) -> bool:
        """Remove a disposed blob file; returns whether it existed."""
        p = self.path(sha256_hex)
        try:
            p.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(p.parent)
        return True

    dispose = remove

    def stat(self, sha256_hex: str) -> BlobStat | None:
        try:
            st = self.path(sha256_hex).stat()
        except FileNotFoundError:
            return None
        return BlobStat(sha256=sha256_hex, size=st.st_size)

    def hash(self, sha256_hex: str) -> str | None:
        p = self.path(sha256_hex)
        return hash_file(p) if p.is_file() else None

    def extend_retention(self, sha256_hex: str, until: datetime) -> None:
        """Nothing to do: the catalog alone enforces retention for local files."""

    def set_legal_hold(self, sha256_hex: str, on: bool) -> None:
        """Nothing to do: the catalog alone enforces holds for local files."""

    def clear_stale(self) -> None:
        """Nothing beyond ``objects/tmp`` (which the store clears)."""

    def iter_objects(self) -> Iterator[str]:
        for sha, _ in self.iter_files():
            yield sha

    def defer(self, problem: str) -> None:
        """Nothing is deferred without Object Lock."""

    def audit(self, expected: Mapping[str, tuple[str, bool]], *, disposed: AbstractSet[str],
              fix: bool) -> dict[str, Any]:
        """Blob files no record references (a crash before the record): harmless."""
        known = set(expected) | set(disposed)
        return {"backend": "local", "lock_problems": [],
                "orphaned_objects": sorted(set(self.iter_objects()) - known)}

    def iter_files(self) -> Iterator[tuple[str, Path]]:
        for p in self.root.glob("??/??/*"):
            if p.is_file() and len(p.name) == 64:
                yield p.name, p


def read_limited(stream: BinaryIO, *, max_size: int, what: str) -> Iterator[bytes]:
    """The stream's chunks; :class:`TooLargeError` as soon as more than ``max_size``
    bytes have arrived (before reading the rest)."""
    size = 0
    while chunk := stream.read(CHUNK):
        size += len(chunk)
        if size > max_size:
            raise _too_large(what, max_size)
        yield chunk


def read_batches(stream: BinaryIO, *, max_size: int, what: str
                 ) -> Iterator[tuple[list[bytes], int]]:
    """The stream's bytes as (pieces, their total length), about :data:`CHUNK` at a time;
    :class:`TooLargeError` as soon as more than ``max_size`` bytes have arrived.

    A stream with a ``read_parts(n)`` method (the HTTP body pipe) hands over the pieces
    it holds as they are, so nothing is copied to join them; any other is ``read()``.
    """
    read_parts: Callable[[int], list[bytes]] | None = getattr(stream, "read_parts", None)
    size = 0
    while True:
        if read_parts is not None:
            parts = read_parts(CHUNK)
            n = sum(map(len, parts))
        else:
            chunk = stream.read(CHUNK)
            parts, n = [chunk], len(chunk)
        if not n:
            return
        size += n
        if size > max_size:
            raise _too_large(what, max_size)
        yield parts, n


def _too_large(what: str, max_size: int) -> TooLargeError:
    return TooLargeError(f"{what}: larger than the configured maximum artifact size "
                         f"({max_size} bytes); nothing was stored")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _writev_all(fd: int, parts: list[bytes]) -> None:
    """Write every piece, in order, in as few system calls as the kernel allows."""
    if len(parts) == 1:
        _write_all(fd, parts[0])
        return
    if len(parts) > _IOV_MAX:
        for i in range(0, len(parts), _IOV_MAX):
            _writev_all(fd, parts[i:i + _IOV_MAX])
        return
    n = os.writev(fd, parts)
    if n == sum(map(len, parts)):
        return
    for part in parts:  # a short write (rare): finish piece by piece
        if n >= len(part):
            n -= len(part)
            continue
        _write_all(fd, part[n:])
        n = 0


_IOV_MAX = 512  # pieces per writev (POSIX guarantees 16, Linux allows 1024)


def _load_sync_file_range() -> Callable[[int, int, int], int] | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # not Linux: the final fsync does all the work
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return lambda fd, off, n: int(fn(fd, off, n, _SYNC_FILE_RANGE_WRITE))


_SYNC_FILE_RANGE_WRITE = 2
_sync_file_range = _load_sync_file_range()


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range out now (asynchronously).

    Only a hint for speed: without it the whole file waits in the page cache for the
    final fsync, which then takes as long as writing it did. Durability still comes
    from that fsync, so a failure here is ignored.
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length)


class _Hasher:
    """SHA-256 of the pieces fed to it, in order; on a second thread once it is big.

    hashlib releases the GIL on large buffers, so hashing on one core while the caller
    writes on the other nearly doubles a large ingest's speed. The first
    :data:`THREAD_AFTER` bytes are hashed in line (a thread costs more than they do), and
    at most :data:`HASH_QUEUE` batches wait, which bounds the memory held.
    """

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self._inline = 0
        self._queue: queue.Queue[list[bytes] | None] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stop = False

    def feed(self, parts: list[bytes], n: int) -> None:
        if self._queue is None:
            if self._inline + n <= THREAD_AFTER:
                self._inline += n
                for p in parts:
                    self._h.update(p)
                return
            self._queue = queue.Queue(HASH_QUEUE)
            self._thread = threading.Thread(target=self._run, name="depository-hash",
                                            daemon=True)
            self._thread.start()
        self._queue.put(parts)

    def _run(self) -> None:
        assert self._queue is not None
        update = self._h.update
        while (parts := self._queue.get()) is not None:
            if self._stop or self._error is not None:
                continue  # drain so the feeder never blocks
            try:
                for p in parts:
                    update(p)
            except BaseException as exc:  # re-raised by hexdigest() on the caller
                self._error = exc

    def _join(self) -> None:
        if self._thread is not None:
            assert self._queue is not None
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def hexdigest(self) -> str:
        self._join()
        if self._error is not None:
            raise self._error
        return self._h.hexdigest()

    def close(self) -> None:
        """Stop the thread without hashing what is still queued (the ingest failed)."""
        self._stop = True
        self._join()


class _Limited(io.RawIOBase):
    """A raw file reader that stops after ``length`` bytes (a ranged read)."""

    def __init__(self, raw: io.FileIO, length: int) -> None:
        super().__init__()
        self._raw = raw
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf)[: self._left]
        n = self._raw.readinto(view) or 0
        self._left -= n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def hash_file(path: Path) -> str:
    """SHA-256 hex of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
