"""Mutation fuzzing helpers for ``test_fuzz_*.py`` (and ``benchmarks/fuzz.py``).

Seeded and bounded: each fuzz test runs a fixed number of cases (``cases * SCALE``) and
stops early at a time budget (``seconds * SCALE``); every case runs under a SIGALRM
bound, so a hang fails the case instead of the suite. ``DEPOSITORY_FUZZ_SEED`` and
``DEPOSITORY_FUZZ_SCALE`` change the seed and the size of a run; a failure names the
seed and case number, which reproduce it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from depository.tlog import safejson

SEED = int(os.environ.get("DEPOSITORY_FUZZ_SEED", "15"))
SCALE = float(os.environ.get("DEPOSITORY_FUZZ_SCALE", "1"))
CASE_TIMEOUT = float(os.environ.get("DEPOSITORY_FUZZ_CASE_TIMEOUT", "20"))


class CaseTimeout(Exception):
    """A fuzz case ran longer than its bound (a hang, or near enough)."""


@contextlib.contextmanager
def time_bound(seconds: float = CASE_TIMEOUT) -> Iterator[None]:
    """Raise :class:`CaseTimeout` in the main thread if the block runs over ``seconds``
    (interrupts blocking reads and opens too: they return EINTR to the handler)."""
    def fire(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"case ran over {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def cases(name: str, count: int, seconds: float) -> Iterator[tuple[int, random.Random]]:
    """``(case number, its own seeded Random)`` for ``count * SCALE`` cases, stopping at
    ``seconds * SCALE`` of wall time."""
    n = max(1, int(count * SCALE))
    deadline = time.monotonic() + seconds * SCALE
    for i in range(n):
        if i and time.monotonic() > deadline:
            return
        yield i, random.Random(f"{SEED}:{name}:{i}")


def label(name: str, i: int) -> str:
    """How to reproduce a case: the seed, target and case number."""
    return f"[fuzz {name} case {i}, DEPOSITORY_FUZZ_SEED={SEED}]"


# ------------------------------------------------------------------------- snapshots

def snapshot(root: Path, *, skip: Sequence[Path] = ()) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` (not following links): (mode, size, mtime_ns)."""
    out: dict[str, tuple[int, int, int]] = {}
    skipped = {str(p) for p in skip}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skipped]
        for name in (*dirnames, *filenames):
            full = os.path.join(dirpath, name)
            if full in skipped:
                continue
            st = os.lstat(full)
            size = st.st_size if stat.S_ISREG(st.st_mode) else 0
            mtime = st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) else 0
            out[os.path.relpath(full, root)] = (stat.S_IFMT(st.st_mode), size, mtime)
    return out


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Paths added, removed or changed between two snapshots."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


# ------------------------------------------------------------------------- mutations

def deep(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


HOSTILE_TEXT: tuple[str, ...] = (
    deep(40), deep(129), deep(1000), deep(5000), '{"a":' * 3000 + "1" + "}" * 3000,
    "[" * 3000,  # unclosed
    '{"a":' * 960 + "1" + "}" * 960,  # parses, but deeper than any writer may store
    "9" * 5000, "-" + "9" * 400, "1e999999", "-0", "1.5e-400", "18446744073709551616",
    "-1", "0", "NaN", "Infinity", "null", "true", '""', '"\\ud800"', '"\\u0000"',
    '"' + "x" * 70_000 + '"', "{}", "[]", '{"":{}}', "[{}]",
)
HOSTILE_BYTES: tuple[bytes, ...] = (
    b"\x00", b"\x00" * 64, b"\xff\xfe", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
    b"\r\n", b"\n" * 1000, b" " * 10_000, b'"', b"\\", b"\t", b"\xe2\x80\xae",
    *(t.encode() for t in HOSTILE_TEXT[:12]),
)


_MAX_GROWTH = 4 * 1024 * 1024


def _flip(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    if not data:
        return b"\x01"
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def _set_byte(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    i = rng.randrange(len(data))
    return data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]


def _truncate(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    return data[:rng.randrange(len(data) + 1)]


def _duplicate(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    j = rng.randint(i, min(len(data), i + 4096))
    return data[:j] + data[i:j] * rng.randint(1, 50) + data[j:]


def _delete(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[:i] + data[rng.randint(i, len(data)):]


def _splice(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    other = rng.choice(others) if others else data
    return data[:rng.randint(0, len(data))] + other[rng.randint(0, len(other)):]


def _insert(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    i = rng.randint(0, len(data))
    return data[:i] + rng.choice(HOSTILE_BYTES) + data[i:]


def _number(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    digits = [i for i, c in enumerate(data) if 48 <= c <= 57]
    if not digits:
        return data + b"9" * 400
    i = rng.choice(digits)
    return data[:i] + rng.choice([b"9" * 30, b"9" * 5000, b"18446744073709551616", b"-1",
                                   b"1e999"]) + data[i + 1:]


def _lines(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    lines = data.split(b"\n")
    i = rng.randrange(len(lines))
    op = rng.randrange(4)
    if op == 0:
        lines.insert(i, lines[i])
    elif op == 1 and len(lines) > 1:
        del lines[i]
    elif op == 2:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    else:  # many copies of a line, but no more than a few MB in all
        reps = min(rng.choice([100, 10_000]), _MAX_GROWTH // (len(lines[i]) + 1))
        lines[i:i] = [lines[i]] * reps
    return b"\n".join(lines)


def _replace(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    return rng.choice([b"", rng.randbytes(rng.randint(1, 4096)), rng.choice(HOSTILE_BYTES),
                       data * rng.randint(2, 5)])


def _crlf(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    return data.replace(b"\n", b"\r\n") if rng.random() < 0.5 else data.replace(b"\n", b"")


MUTATORS: tuple[Callable[[random.Random, bytes, Sequence[bytes]], bytes], ...] = (
    _flip, _set_byte, _truncate, _duplicate, _delete, _splice, _insert, _number, _lines,
    _replace, _crlf,
)


def mutate(rng: random.Random, data: bytes, others: Sequence[bytes] = ()) -> bytes:
    """One to three random byte-level mutations of ``data`` (kept to a few MB: the size
    caps themselves are tested directly)."""
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        data = rng.choice(MUTATORS)(rng, data, others)[:_MAX_GROWTH]
    return data


_SENTINEL = "\x00fuzz-sentinel\x00"


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def mutate_json(rng: random.Random, text: str) -> str:
    """A structural mutation of a JSON document: one value replaced by a hostile one
    (deep nesting, huge numbers, wrong types, lone surrogates, long strings), a key
    dropped, added or duplicated. Falls back to a byte mutation if it is not JSON."""
    try:
        value = safejson.loads(text)  # an earlier mutation may have nested it deep
    except ValueError:
        return mutate(rng, text.encode()).decode("utf-8", "replace")
    paths = list(_paths(value))
    path = rng.choice(paths)
    parent: Any = None
    node = value
    for k in path:
        parent, node = node, node[k]
    op = rng.randrange(6)
    if op == 0 and isinstance(node, dict) and node:
        del node[rng.choice(list(node))]
    elif op == 1 and isinstance(node, dict):
        node[rng.choice(["x", "", "\u0000", "body", "seq", "size"])] = _SENTINEL
    elif op == 2 and isinstance(node, dict) and node:
        dup = rng.choice(list(node))
        out = json.dumps(value, ensure_ascii=False)
        key = json.dumps(dup, ensure_ascii=False)
        return out.replace(key + ":", key + ': 1, ' + key + ":", 1)
    elif parent is None:
        value = _SENTINEL
    else:
        parent[path[-1]] = _SENTINEL if op < 5 else rng.choice(
            [None, True, [], {}, "", 1.5, -1, 2**64, [None], {"": None}, "x" * 1000])
    out = json.dumps(value, ensure_ascii=False)
    return out.replace(json.dumps(_SENTINEL, ensure_ascii=False), rng.choice(HOSTILE_TEXT))


def mutate_jsonl(rng: random.Random, data: bytes) -> bytes:
    """:func:`mutate_json` on one line of a JSON-lines file, or a byte mutation."""
    lines = data.split(b"\n")
    live = [i for i, line in enumerate(lines) if line.strip()]
    if not live or rng.random() < 0.3:
        return mutate(rng, data)
    i = rng.choice(live)
    lines[i] = mutate_json(rng, lines[i].decode("utf-8", "replace")).encode(
        "utf-8", "surrogatepass")
    return b"\n".join(lines)


def replace_with_special(rng: random.Random, path: Path) -> str:
    """Replace a file by something no reader should block on or read whole."""
    kind = rng.choice(["fifo", "dev-zero", "dir", "dangling", "sparse"])
    if path.is_dir() and not path.is_symlink():
        return "kept-dir"
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "dir":
        path.mkdir()
    elif kind == "dangling":
        path.symlink_to(path.with_name("no-such-file"))
    else:
        with path.open("wb") as f:
            f.truncate(16 << 30)  # 16 GiB of zeros, sparse
    return kind
