"""Bounded reads of files named on the command line or found in a store or a package.

Every reader of such a file goes through :func:`open_regular`: the file is opened with
``O_NONBLOCK`` (so opening a FIFO does not wait for a writer) and, where a symbolic link
has no business (blobs, package files), ``O_NOFOLLOW``; then ``fstat`` on the open
descriptor must show a regular file — so a FIFO, a device such as ``/dev/zero``, a socket
or a directory is refused before a byte is read, and nothing can be swapped in between
the check and the read. Reads stop at a cap: the size the store or package recorded for
the file (plus one byte, to notice it is longer), or the documented ``MAX_*`` for the
kind of file. Each refusal is an :class:`InputFileError` naming the path, what is wrong
and what to do.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from depository.tlog.errors import MalformedInputError

__all__ = [
    "MAX_CERT_BYTES",
    "MAX_HASH_LIST_BYTES",
    "MAX_KEY_FILE_BYTES",
    "MAX_LEAF_BYTES",
    "MAX_NOTE_BYTES",
    "MAX_PROOF_FILE_BYTES",
    "FileDigest",
    "InputFileError",
    "hash_file",
    "open_regular",
    "read_chunks",
    "read_file",
]

MAX_NOTE_BYTES = 1024 * 1024
"""A signed note or checkpoint (``verify note``, ``--since-checkpoint``, anchors): its
text plus at most 100 signature lines fit many times over."""

MAX_PROOF_FILE_BYTES = 2 * 1024 * 1024
"""A C2SP tlog-proof file: header, index, at most 64 base64 hashes and one signed note
(at most :data:`MAX_NOTE_BYTES`)."""

MAX_HASH_LIST_BYTES = 64 * 1024
"""A file of proof hashes, one per line (``verify inclusion|consistency --proof``): a
proof in a tree of at most 2^64 leaves has at most 64 (inclusion) or 128 (consistency)
hashes of at most 88 characters."""

MAX_KEY_FILE_BYTES = 64 * 1024
"""A file of verifier keys, one per line (``--key FILE``)."""

MAX_LEAF_BYTES = 64 * 1024 * 1024
"""A record's bytes (``--leaf FILE``), like one record in an evidence package."""

MAX_CERT_BYTES = 1024 * 1024
"""A TSA certificate, PEM or DER (``--tsa-cert``)."""

_CHUNK = 1024 * 1024


class InputFileError(MalformedInputError):
    """A file that cannot be used as input: missing, not a regular file, or larger than
    its cap. ``path`` is the file; the message says what is wrong and what to do."""

    def __init__(self, path: str, problem: str, hint: str) -> None:
        super().__init__(f"{path}: {problem}; {hint}")
        self.path = path
        self.problem = problem


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a regular file"


def open_regular(path: str, *, follow_symlinks: bool = True,
                 what: str = "file") -> tuple[int, os.stat_result]:
    """Open ``path`` read-only and return ``(fd, fstat)`` if it is a regular file.

    Never blocks on a FIFO (``O_NONBLOCK``); with ``follow_symlinks=False`` a symbolic
    link is refused too (``O_NOFOLLOW``). The caller closes the descriptor. Raises
    :class:`InputFileError`.
    """
    hint = f"give the path of a regular file holding the {what}"
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputFileError(path, "no such file", hint) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise InputFileError(path, "a symbolic link, not a regular file",
                                 f"only regular files are read here: {hint}") from None
        raise InputFileError(path, f"cannot be opened ({exc.strerror or exc})", hint) from None
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise InputFileError(path, f"cannot be read ({exc.strerror or exc})", hint) from None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise InputFileError(path, f"{_kind(st.st_mode)}, not a regular file",
                             f"it is refused so that reading it cannot hang or run "
                             f"forever: {hint}")
    return fd, st


def read_chunks(fd: int, limit: int, chunk: int = _CHUNK) -> Iterator[bytes]:
    """Chunks read from ``fd`` until end of file or ``limit`` bytes, whichever is first."""
    left = limit
    while left > 0:
        data = os.read(fd, min(chunk, left))
        if not data:
            return
        left -= len(data)
        yield data


def read_file(path: str, *, limit: int, what: str = "file",
              follow_symlinks: bool = True) -> bytes:
    """The bytes of a regular file (or of standard input for ``-``), at most ``limit``.

    A file larger than ``limit`` is refused before it is read (by its size) or as soon
    as ``limit + 1`` bytes have been read (if it grew); so is one that is not a regular
    file. Raises :class:`InputFileError`.
    """
    too_big = f"larger than the {limit}-byte limit for a {what}"
    hint = f"check that this is the {what} you meant"
    if path == "-":
        data = sys.stdin.buffer.read(limit + 1)
        if len(data) > limit:
            raise InputFileError("standard input", too_big, hint)
        return data
    fd, st = open_regular(path, follow_symlinks=follow_symlinks, what=what)
    try:
        if st.st_size > limit:
            raise InputFileError(path, f"{st.st_size} bytes, {too_big}", hint)
        data = b"".join(read_chunks(fd, limit + 1))
    except OSError as exc:
        raise InputFileError(path, f"cannot be read ({exc.strerror or exc})",
                             f"give the path of a readable {what}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise InputFileError(path, too_big, hint)
    return data


@dataclass(frozen=True)
class FileDigest:
    """What :func:`hash_file` read: hex digests and the bytes read, which is at most the
    expected size plus one (``longer`` is then True, and the digests cover only that
    prefix, so they cannot match)."""

    hexdigests: dict[str, str]
    size: int
    longer: bool


def hash_file(path: str, *, size: int, algorithms: Sequence[str] = ("sha256",),
              follow_symlinks: bool = False, what: str = "file") -> FileDigest:
    """Hash a regular file expected to hold ``size`` bytes, reading at most ``size + 1``.

    Refuses (:class:`InputFileError`) what :func:`open_regular` refuses — by default also
    a symbolic link — and reports through :class:`FileDigest` a file longer than
    ``size`` without reading the rest.
    """
    hashes = {alg: hashlib.new(alg) for alg in algorithms}
    fd, _ = open_regular(path, follow_symlinks=follow_symlinks, what=what)
    n = 0
    try:
        for chunk in read_chunks(fd, max(0, size) + 1):
            n += len(chunk)
            for h in hashes.values():
                h.update(chunk)
    except OSError as exc:
        raise InputFileError(path, f"cannot be read ({exc.strerror or exc})",
                             f"give a readable {what}") from None
    finally:
        os.close(fd)
    return FileDigest({alg: h.hexdigest() for alg, h in hashes.items()}, n, n > size)
