"""A streaming BagIt (RFC 8493) writer: into a directory or straight into a zip.

Files are written one at a time and hashed with SHA-256 and SHA-512 as they are
written; the payload manifest lines go to spool files, so memory does not grow with
the number of files or their size. Nothing appears at ``out`` until :meth:`finish`
renames the completed bag into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO, Protocol

from depository.evidence._zip import StreamingZip
from depository.verifier.package import (
    BAG_INFO,
    BAGIT_TXT,
    BAGIT_TXT_BYTES,
    PAYLOAD_MANIFESTS,
    SIGNATURE_FILE,
    TAG_MANIFESTS,
    TIMESTAMP_FILE,
)

CHUNK = 1024 * 1024


class Sink(Protocol):
    """Where a file's bytes go: a file, or a zip entry."""

    def write(self, data: bytes, /) -> int: ...


class Entry:
    """A file being written: bytes go to ``raw`` and into the running hashes."""

    def __init__(self, raw: Sink, extra: tuple[str, ...] = ()) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.sha512 = hashlib.sha512()
        self.extra = {alg: hashlib.new(alg, usedforsecurity=False) for alg in extra}
        self.size = 0

    def write(self, data: bytes) -> int:
        self._raw.write(data)
        self.sha256.update(data)
        self.sha512.update(data)
        for h in self.extra.values():
            h.update(data)
        self.size += len(data)
        return len(data)

    def copy_from(self, stream: BinaryIO) -> None:
        while chunk := stream.read(CHUNK):
            self.write(chunk)


class BagWriter:
    """Write a bag at ``out``: a directory, or a zip (with the bag under ``bag_name/``)."""

    def __init__(self, out: Path, *, as_zip: bool, bag_name: str,
                 date_time: tuple[int, int, int, int, int, int]) -> None:
        self.out = out
        self.as_zip = as_zip
        self.bag_name = bag_name
        self.date_time = date_time
        self.payload_files = 0
        self.payload_bytes = 0
        self._work = Path(tempfile.mkdtemp(prefix=f".{out.name}.work-", dir=out.parent))
        self._manifests = [
            open(self._work / name, "w+b")  # noqa: SIM115 - closed in finish/abort
            for name in PAYLOAD_MANIFESTS
        ]
        self._partial = out.parent / f".{out.name}.partial-{os.getpid()}"
        self._zip: StreamingZip | None = None
        self._zip_file: IO[bytes] | None = None
        self._root = str(self._partial)
        self._dirs: set[str] = set()
        if as_zip:
            self._zip_file = open(self._partial, "xb")  # noqa: SIM115 - closed in finish
            spool = open(self._work / "central.bin", "w+b")  # noqa: SIM115 - idem
            self._zip = StreamingZip(self._zip_file, spool, date_time=date_time)
            self._spool: IO[bytes] | None = spool
        else:
            self._spool = None
            self._partial.mkdir()

    @property
    def workdir(self) -> Path:
        """A scratch directory (removed with the writer) on the output's filesystem."""
        return self._work

    @contextlib.contextmanager
    def _open(self, name: str, size_hint: int | None) -> Iterator[Sink]:
        """Write one file of the bag (bag-relative ``name``)."""
        if self._zip is not None:
            with self._zip.open(f"{self.bag_name}/{name}", size_hint) as f:
                yield f
        else:
            # Plain strings, not pathlib: pathlib interns every path component, which
            # would grow memory with the number of files.
            path = os.path.join(self._root, name)
            parent = os.path.dirname(path)
            if parent not in self._dirs:
                os.makedirs(parent, exist_ok=True)
                self._dirs.add(parent)
            with open(path, "xb") as f:
                yield f

    @contextlib.contextmanager
    def payload(self, name: str, *, size_hint: int | None = 0,
                extra: tuple[str, ...] = ()) -> Iterator[Entry]:
        """Write payload file ``data/<name>``; its manifest lines are added on close."""
        path = f"data/{name}"
        with self._open(path, size_hint) as raw:
            entry = Entry(raw, extra)
            yield entry
        line = f"  {path}\n".encode()
        self._manifests[0].write(entry.sha256.hexdigest().encode() + line)
        self._manifests[1].write(entry.sha512.hexdigest().encode() + line)
        self.payload_files += 1
        self.payload_bytes += entry.size

    def payload_bytes_file(self, name: str, data: bytes) -> Entry:
        with self.payload(name, size_hint=len(data)) as e:
            e.write(data)
        return e

    def payload_copy(self, name: str, source: Path) -> Entry:
        with open(source, "rb") as f, self.payload(name, size_hint=source.stat().st_size) as e:
            e.copy_from(f)
        return e

    def write_tags(self, bag_info: bytes) -> bytes:
        """Write the payload manifests, ``bagit.txt``, ``bag-info.txt`` and both tag
        manifests; return ``tagmanifest-sha256.txt`` (to be signed). Call once."""
        hashes: list[tuple[str, str, str]] = []
        for f, name in zip(self._manifests, PAYLOAD_MANIFESTS, strict=True):
            f.flush()
            size = f.seek(0, os.SEEK_END)
            f.seek(0)
            h256, h512 = hashlib.sha256(), hashlib.sha512()
            with self._open(name, size) as raw:
                while chunk := f.read(CHUNK):
                    raw.write(chunk)
                    h256.update(chunk)
                    h512.update(chunk)
            hashes.append((name, h256.hexdigest(), h512.hexdigest()))
        for name, data in ((BAGIT_TXT, BAGIT_TXT_BYTES), (BAG_INFO, bag_info)):
            with self._open(name, len(data)) as raw:
                raw.write(data)
            hashes.append(
                (name, hashlib.sha256(data).hexdigest(), hashlib.sha512(data).hexdigest()))
        hashes.sort()
        sha256 = "".join(f"{h}  {n}\n" for n, h, _ in hashes).encode()
        sha512 = "".join(f"{h}  {n}\n" for n, _, h in hashes).encode()
        for name, data in zip(TAG_MANIFESTS, (sha256, sha512), strict=True):
            with self._open(name, len(data)) as raw:
                raw.write(data)
        return sha256

    def finish(self, signature: bytes, timestamp: bytes | None) -> None:
        """Write the signature (and timestamp), then move the bag into place."""
        with self._open(SIGNATURE_FILE, len(signature)) as raw:
            raw.write(signature)
        if timestamp is not None:
            with self._open(TIMESTAMP_FILE, len(timestamp)) as raw:
                raw.write(timestamp)
        for m in self._manifests:
            m.close()
        if self._zip is not None and self._zip_file is not None and self._spool is not None:
            self._zip.close()
            self._zip_file.flush()
            os.fsync(self._zip_file.fileno())
            self._zip_file.close()
            self._spool.close()
        if self.out.exists():
            raise FileExistsError(f"{self.out} appeared while the package was being written")
        os.replace(self._partial, self.out)
        shutil.rmtree(self._work, ignore_errors=True)

    def abort(self) -> None:
        """Remove everything written so far."""
        for f in self._manifests:
            with contextlib.suppress(OSError):
                f.close()
        for g in (self._zip_file, self._spool):
            if g is not None:
                with contextlib.suppress(OSError):
                    g.close()
        if self._partial.is_dir():
            shutil.rmtree(self._partial, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                self._partial.unlink()
        shutil.rmtree(self._work, ignore_errors=True)
