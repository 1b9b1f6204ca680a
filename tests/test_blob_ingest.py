"""Blob ingest: the overlapped hash/write pipeline gives the same bytes and SHA-256 as a
plain reference at every size around its boundaries, and a failure anywhere leaves no
file, no temporary file, no thread and no record."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from depository.store import DiskFullError, Store, TooLargeError, _blobs
from depository.store._blobs import CHUNK, THREAD_AFTER, WRITEBACK_EVERY, BlobDir
from depository.store.config import default_config_dict

INLINE = 64 * 1024


def _data(n: int, seed: int = 1) -> bytes:
    block = random.Random(seed).randbytes(1 << 16)
    return (block * (n // len(block) + 1))[:n]


class _Ragged(io.RawIOBase):
    """Returns fewer bytes than asked, in irregular amounts (like a socket)."""

    def __init__(self, data: bytes, seed: int = 7) -> None:
        super().__init__()
        self._view = memoryview(data)
        self._rng = random.Random(seed)

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        k = self._rng.randint(1, max(1, n if n and n > 0 else len(self._view)))
        out, self._view = bytes(self._view[:k]), self._view[k:]
        return out


class _Parts:
    """A stream offering ``read_parts`` (as the HTTP body pipe does), ragged pieces."""

    def __init__(self, data: bytes, seed: int = 3) -> None:
        self._data = data
        self._pos = 0
        self._rng = random.Random(seed)

    def read_parts(self, n: int) -> list[bytes]:
        out: list[bytes] = []
        got = 0
        while self._pos < len(self._data) and got < n:
            k = self._rng.choice([1, 4096, 65536, 256000, 300_001])
            piece = self._data[self._pos:self._pos + k]
            self._pos += len(piece)
            got += len(piece)
            out.append(piece)
        return out

    def read(self, n: int = -1) -> bytes:  # pragma: no cover - read_parts is preferred
        raise AssertionError("read() used although read_parts() exists")


class _Failing(io.RawIOBase):
    """Delivers ``ok`` bytes, then raises (a client that went away)."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self._left = ok

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        if self._left <= 0:
            raise _Gone("client went away")
        k = min(self._left, n if n and n > 0 else CHUNK)
        self._left -= k
        return b"z" * k


class _Gone(Exception):
    """What a body pipe raises when the client goes away."""


def _hash_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "depository-hash"]


@pytest.fixture
def blobs(tmp_path: Path) -> BlobDir:
    b = BlobDir(tmp_path / "objects")
    b.create()
    return b


SIZES = sorted({0, 1, INLINE - 1, INLINE, INLINE + 1, CHUNK - 1, CHUNK, CHUNK + 1,
                THREAD_AFTER - 1, THREAD_AFTER, THREAD_AFTER + 1,
                WRITEBACK_EVERY - 1, WRITEBACK_EVERY + 1, 3 * WRITEBACK_EVERY + 12345})


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["bytesio", "ragged", "parts"])
def test_pipeline_matches_reference(blobs: BlobDir, size: int, kind: str) -> None:
    data = _data(size, seed=size)
    stream: Any = {"bytesio": io.BytesIO, "ragged": _Ragged, "parts": _Parts}[kind](data)
    ing = blobs.ingest(stream, max_size=1 << 40, inline_max=INLINE, what="t")
    assert ing.sha256 == hashlib.sha256(data).hexdigest() and ing.size == size
    if size <= INLINE:
        assert ing.data == data and not blobs.exists(ing.sha256)
    else:
        p = blobs.path(ing.sha256)
        assert ing.data is None and p.read_bytes() == data
        assert p.stat().st_mode & 0o777 == 0o444
    assert not list(blobs.tmp.iterdir()) and not _hash_threads()


def test_same_bytes_twice_dedup(blobs: BlobDir) -> None:
    data = _data(THREAD_AFTER + 5)
    a = blobs.ingest(io.BytesIO(data), max_size=1 << 40, inline_max=INLINE, what="t")
    b = blobs.ingest(_Parts(data), max_size=1 << 40, inline_max=INLINE, what="t")
    assert a == b and len(list(blobs.iter_files())) == 1


def test_without_sync_file_range(blobs: BlobDir, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_blobs, "_sync_file_range", None)
    data = _data(WRITEBACK_EVERY * 2 + 7)
    ing = blobs.ingest(io.BytesIO(data), max_size=1 << 40, inline_max=INLINE, what="t")
    assert blobs.path(ing.sha256).read_bytes() == data


@pytest.mark.parametrize("ok", [INLINE + 10, THREAD_AFTER + CHUNK, 3 * WRITEBACK_EVERY])
def test_stream_error_midway_leaves_nothing(blobs: BlobDir, ok: int) -> None:
    with pytest.raises(_Gone):
        blobs.ingest(_Failing(ok), max_size=1 << 40, inline_max=INLINE, what="t")
    assert not list(blobs.tmp.iterdir()) and not list(blobs.iter_files())
    assert not _hash_threads()


def test_too_large_past_the_thread_leaves_nothing(blobs: BlobDir) -> None:
    limit = THREAD_AFTER + 3 * CHUNK
    with pytest.raises(TooLargeError, match="maximum"):
        blobs.ingest(io.BytesIO(_data(limit + 1)), max_size=limit, inline_max=INLINE,
                     what="t")
    assert not list(blobs.tmp.iterdir()) and not list(blobs.iter_files())
    assert not _hash_threads()


def test_write_error_midway_is_disk_full(blobs: BlobDir,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = os.writev

    def writev(fd: int, parts: list[bytes]) -> int:
        calls["n"] += 1
        if calls["n"] > 6:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, parts)

    monkeypatch.setattr(_blobs.os, "writev", writev)
    with pytest.raises(DiskFullError, match="disk is full"):
        blobs.ingest(_Parts(_data(5 * WRITEBACK_EVERY)), max_size=1 << 40,
                     inline_max=INLINE, what="t")
    assert not list(blobs.tmp.iterdir()) and not list(blobs.iter_files())
    assert not _hash_threads()


def test_hash_failure_is_raised(blobs: BlobDir, monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def __init__(self) -> None:
            self.n = 0

        def update(self, data: bytes) -> None:
            self.n += len(data)
            if self.n > THREAD_AFTER + CHUNK:
                raise MemoryError("no room to hash")

        def hexdigest(self) -> str:  # pragma: no cover - never reached
            return "0" * 64

    monkeypatch.setattr(_blobs.hashlib, "sha256", Broken)
    with pytest.raises(MemoryError):
        blobs.ingest(io.BytesIO(_data(THREAD_AFTER * 3)), max_size=1 << 40,
                     inline_max=INLINE, what="t")
    assert not list(blobs.tmp.iterdir()) and not list(blobs.iter_files())
    assert not _hash_threads()


def test_store_put_failure_midway_leaves_no_record(tmp_path: Path) -> None:
    with Store.init(tmp_path / "s", config=default_config_dict("t.example/log")) as s:
        size = s.size()
        with pytest.raises(_Gone):
            s.put("gurukul", "cut", _Failing(THREAD_AFTER + 2 * CHUNK))
        assert s.size() == size and not list(s.blobs.tmp.iterdir())
        assert not list(s.blobs.iter_files())
        data = _data(THREAD_AFTER + 2 * CHUNK + 3)
        r = s.put("gurukul", "whole", io.BytesIO(data))
        assert r.sha256 == hashlib.sha256(data).hexdigest()
        with s.open_content(s.get("gurukul", "whole")) as f:
            assert f.read() == data
