"""A streaming zip writer whose memory does not grow with the number of entries.

The standard library's ``zipfile`` keeps a ``ZipInfo`` per entry until it writes the
central directory at close (about half a KiB per file). Here each entry's central
directory record goes to a spool file as soon as the entry is written, and is copied to
the end of the archive at close. Entries are deflated, named in UTF-8, and patched in
place after their data (the output must be seekable), so no data descriptors are used;
ZIP64 extensions are written where sizes, offsets or the entry count need them
(APPNOTE 6.3.x). Any zip reader (``zipfile``, Info-ZIP ``unzip``, 7-Zip, Windows) reads
the result.
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Iterator
from typing import IO

_LOCAL = 0x04034B50
_CENTRAL = 0x02014B50
_EOCD = 0x06054B50
_EOCD64 = 0x06064B50
_LOCATOR64 = 0x07064B50
_ZIP64_EXTRA = 0x0001
_MAX32 = 0xFFFFFFFF
_MAX16 = 0xFFFF
_FLAG_UTF8 = 1 << 11
_DEFLATED = 8
_VERSION = 45  # 4.5: ZIP64
_MADE_BY = (3 << 8) | _VERSION  # Unix
_ZIP64_ABOVE = 1 << 31  # entries that may reach this get ZIP64 local sizes up front


def _dos_time(date_time: tuple[int, int, int, int, int, int]) -> tuple[int, int]:
    y, mo, d, h, mi, s = date_time
    return (h << 11) | (mi << 5) | (s // 2), ((max(y, 1980) - 1980) << 9) | (mo << 5) | d


class _Entry:
    """A file being written into the archive: deflates and counts what it is given."""

    def __init__(self, out: IO[bytes], level: int) -> None:
        self._out = out
        self._z = zlib.compressobj(level, zlib.DEFLATED, -15)
        self.crc = 0
        self.size = 0
        self.csize = 0

    def write(self, data: bytes) -> int:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        out = self._z.compress(data)
        self.csize += len(out)
        self._out.write(out)
        return len(data)

    def _finish(self) -> None:
        out = self._z.flush()
        self.csize += len(out)
        self._out.write(out)


class StreamingZip:
    """Write a zip to ``out`` (a seekable binary file); central directory spooled."""

    def __init__(self, out: IO[bytes], spool: IO[bytes], *,
                 date_time: tuple[int, int, int, int, int, int], level: int = 6) -> None:
        self._out = out
        self._spool = spool
        self._time, self._date = _dos_time(date_time)
        self._level = level
        self._count = 0
        self._open = False

    @contextlib.contextmanager
    def open(self, name: str, size_hint: int | None = None) -> Iterator[_Entry]:
        """Write one entry; ``size_hint`` (None: unknown) decides ZIP64 local sizes."""
        if self._open:
            raise RuntimeError("one zip entry at a time")
        self._open = True
        raw = name.encode("utf-8")
        offset = self._out.tell()
        zip64 = size_hint is None or size_hint >= _ZIP64_ABOVE
        extra = struct.pack("<HHQQ", _ZIP64_EXTRA, 16, 0, 0) if zip64 else b""
        header = struct.pack(
            "<IHHHHHIIIHH", _LOCAL, _VERSION, _FLAG_UTF8, _DEFLATED, self._time, self._date,
            0, _MAX32 if zip64 else 0, _MAX32 if zip64 else 0, len(raw), len(extra))
        self._out.write(header + raw + extra)
        entry = _Entry(self._out, self._level)
        try:
            yield entry
        finally:
            self._open = False
        entry._finish()
        end = self._out.tell()
        if not zip64 and max(entry.size, entry.csize) >= _MAX32:
            raise ValueError(f"zip entry {name} outgrew its size hint ({size_hint})")
        self._out.seek(offset + 14)
        if zip64:
            self._out.write(struct.pack("<I", entry.crc))
            self._out.seek(offset + 30 + len(raw) + 4)
            self._out.write(struct.pack("<QQ", entry.size, entry.csize))
        else:
            self._out.write(struct.pack("<III", entry.crc, entry.csize, entry.size))
        self._out.seek(end)
        self._central(raw, entry, offset)

    def _central(self, raw: bytes, e: _Entry, offset: int) -> None:
        fields: list[int] = []
        usize, csize, off = e.size, e.csize, offset
        if usize >= _MAX32:
            fields.append(usize)
            usize = _MAX32
        if csize >= _MAX32:
            fields.append(csize)
            csize = _MAX32
        if off >= _MAX32:
            fields.append(off)
            off = _MAX32
        extra = (struct.pack("<HH", _ZIP64_EXTRA, 8 * len(fields))
                 + b"".join(struct.pack("<Q", f) for f in fields)) if fields else b""
        self._spool.write(struct.pack(
            "<IHHHHHHIIIHHHHHII", _CENTRAL, _MADE_BY, _VERSION, _FLAG_UTF8, _DEFLATED,
            self._time, self._date, e.crc, csize, usize, len(raw), len(extra), 0, 0, 0,
            0o100644 << 16, off) + raw + extra)
        self._count += 1

    def close(self) -> None:
        """Append the central directory and the end records."""
        start = self._out.tell()
        self._spool.flush()
        self._spool.seek(0)
        while chunk := self._spool.read(1 << 20):
            self._out.write(chunk)
        size = self._out.tell() - start
        count = self._count
        if count >= _MAX16 or start >= _MAX32 or size >= _MAX32:
            eocd64 = self._out.tell()
            self._out.write(struct.pack("<IQHHIIQQQQ", _EOCD64, 44, _MADE_BY, _VERSION, 0, 0,
                                        count, count, size, start))
            self._out.write(struct.pack("<IIQI", _LOCATOR64, 0, eocd64, 1))
        self._out.write(struct.pack(
            "<IHHHHIIH", _EOCD, 0, 0, min(count, _MAX16), min(count, _MAX16),
            min(size, _MAX32), min(start, _MAX32), 0))
