"""Content-addressed blob files: ``objects/ab/cd/<sha256>``, written durably, read-only.

Small artifacts (up to ``inline_max``) never reach this directory: their bytes go into
the ``inline_blob`` table in the same transaction as their log record, which is both faster
and atomic. Larger ones stream to a temporary file while hashing, are fsynced, renamed
into place, and the directory is fsynced before the log record is written.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from depository.store._backend import BlobStat
from depository.store._errors import DiskFullError, StoreError, TooLargeError

if TYPE_CHECKING:
    from depository.store._store import Store

CHUNK = 1024 * 1024


@dataclass
class Ingested:
    """A streamed artifact: its hash, size, and where its bytes are now."""

    sha256: str
    size: int
    data: bytes | None  # inline bytes, or None when stored as a file


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _disk_error(exc: OSError, what: str) -> StoreError:
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
        leaving nothing behind.
        """
        h = hashlib.sha256()
        buf = bytearray()
        size = 0
        tmp_path: Path | None = None
        fd = -1
        try:
            for chunk in read_limited(stream, max_size=max_size, what=what):
                size += len(chunk)
                h.update(chunk)
                if fd < 0 and size <= inline_max:
                    buf += chunk
                    continue
                if fd < 0:
                    tmp_path = self.tmp / f"upload-{secrets.token_hex(8)}"
                    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    _write_all(fd, bytes(buf))
                    buf = bytearray()
                _write_all(fd, chunk)
            if fd < 0:
                return Ingested(sha256=h.hexdigest(), size=size, data=bytes(buf))
            os.fsync(fd)
            os.close(fd)
            fd = -1
            assert tmp_path is not None
            digest = h.hexdigest()
            self._place(tmp_path, digest)
            tmp_path = None
            return Ingested(sha256=digest, size=size, data=None)
        except OSError as exc:
            raise _disk_error(exc, what) from exc
        finally:
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
        _fsync_dir(final.parent)
        _fsync_dir(final.parent.parent)

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
        _fsync_dir(p.parent)
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

    def audit(self, store: Store, *, fix: bool) -> dict[str, Any]:
        """Blob files no record references (a crash before the record): harmless."""
        conn = store._reader()
        known = {str(r[0]) for r in conn.execute(
            "SELECT sha256 FROM artifact WHERE storage = 'file'")}  # the partial index
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
            raise TooLargeError(
                f"{what}: larger than the configured maximum artifact size "
                f"({max_size} bytes); nothing was stored"
            )
        yield chunk


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


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
