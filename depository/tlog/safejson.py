"""JSON parsing with explicit depth and size limits, for every parse of untrusted input.

Python's ``json`` decoder (and the ``rfc8785`` encoder) recurse once per nesting level,
so a document nested about a thousand deep raises ``RecursionError`` — a crash, not a
refusal. These functions measure the nesting *before* parsing (outside strings, on the
raw text) and the nesting of already-decoded values (iteratively), and refuse what is
over the limit with a :class:`JSONLimitError` that names the depth or size found and the
limit. Pure functions: bytes, text and values in, values out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from json.encoder import encode_basestring
from typing import Any

from depository.tlog.errors import MalformedInputError

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "JSONLimitError",
    "check_value",
    "loads",
    "text_depth",
    "value_depth",
]

MAX_DEPTH = 128
"""Deepest nesting of arrays and objects any reader accepts (a record holds metadata at
depth 3; the store refuses metadata deeper than 32, so every record it writes is far
below this). Well under the ~1000 levels at which Python's parser would crash."""

MAX_BYTES = 64 * 1024 * 1024
"""Largest JSON document any reader parses (a record, a package line, a results file)."""

# A JSON string: quote, then runs of plain characters and escapes, then (if present) the
# closing quote. It always matches at a quote, so a scan is linear even on hostile input
# (an unterminated string just runs to the end; the parser refuses it afterwards).
_STR_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_BSTR_RE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")


class JSONLimitError(MalformedInputError, ValueError):
    """JSON nested deeper or larger than the limit; refused without being parsed.

    ``depth`` or ``size`` is what was measured (at least ``limit + 1``: counting stops
    there), ``limit`` the limit that was exceeded.
    """

    def __init__(self, message: str, *, depth: int | None = None, size: int | None = None,
                 limit: int) -> None:
        super().__init__(message)
        self.depth = depth
        self.size = size
        self.limit = limit


def text_depth(data: str | bytes, stop_above: int | None = None) -> int:
    """Deepest nesting of arrays and objects in JSON text (0 for a scalar).

    Brackets inside strings do not count; an unclosed bracket counts as open (the parser
    would recurse into it before finding it unclosed). With ``stop_above``, counting
    stops at ``stop_above + 1``. Runs in time linear in the text.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    brackets = _BSTR_RE.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for b in brackets:
        if b in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    return deepest
        elif depth:
            depth -= 1
    return deepest


def value_depth(value: Any, stop_above: int | None = None) -> int:
    """Deepest nesting of lists/tuples and mappings in a decoded value (0 for a scalar),
    measured without recursion; with ``stop_above``, stops at ``stop_above + 1``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, Mapping):
            children: Any = v.values()
        elif isinstance(v, list | tuple):
            children = v
        else:
            continue
        if d > deepest:
            deepest = d
            if stop_above is not None and deepest > stop_above:
                return deepest
        stack.extend((c, d + 1) for c in children)
    return deepest


def _encoded_size(value: Any, stop_above: int) -> int:
    """Bytes of the compact JSON encoding of a decoded value (exact for strings,
    integers, booleans and null; floats as ``repr``), without recursion; stops counting
    once over ``stop_above``. Call only after :func:`value_depth` bounded the nesting."""
    size = 0
    stack: list[Any] = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            size += len(encode_basestring(v).encode("utf-8", "surrogatepass"))
        elif isinstance(v, Mapping):
            size += 2 + max(0, len(v) - 1)  # braces and commas
            for k, c in v.items():
                size += 1  # colon
                stack.append(k if isinstance(k, str) else str(k))
                stack.append(c)
        elif isinstance(v, list | tuple):
            size += 2 + max(0, len(v) - 1)
            stack.extend(v)
        elif v is None or v is True:
            size += 4
        elif v is False:
            size += 5
        elif isinstance(v, int):
            size += len(str(v)) if abs(v) < 10**4000 else 4001  # str() of a huge int raises
        else:
            size += len(repr(v))
        if size > stop_above:
            return size
    return size


def check_value(value: Any, *, max_depth: int, max_bytes: int, what: str = "value") -> None:
    """Refuse a decoded value nested deeper than ``max_depth`` or whose compact JSON
    encoding exceeds ``max_bytes``, with a :class:`JSONLimitError` saying which."""
    depth = value_depth(value, stop_above=max_depth)
    if depth > max_depth:
        raise JSONLimitError(
            f"{what} is nested more than {max_depth} deep (arrays/objects); the limit is "
            f"{max_depth}", depth=depth, limit=max_depth)
    size = _encoded_size(value, stop_above=max_bytes)
    if size > max_bytes:
        raise JSONLimitError(
            f"{what} encodes to more than {max_bytes} bytes of JSON (at least {size}); "
            f"the limit is {max_bytes}", size=size, limit=max_bytes)


def loads(data: str | bytes, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES,
          what: str = "JSON", decoder: json.JSONDecoder | None = None) -> Any:
    """``json.loads`` that first refuses text over ``max_bytes`` or nested deeper than
    ``max_depth`` (a :class:`JSONLimitError`; nothing is parsed). Other errors are those
    of ``json.loads`` (``ValueError``/``json.JSONDecodeError``, ``UnicodeDecodeError``);
    ``decoder`` replaces the default decoder (it must take text)."""
    size = len(data) if isinstance(data, bytes | bytearray) or data.isascii() else len(
        data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise JSONLimitError(f"{what} is {size} bytes; the limit is {max_bytes}",
                             size=size, limit=max_bytes)
    # Fewer brackets than the limit cannot nest deeper than it: the common case, settled
    # by two C-level counts before any scan.
    opens = data.count("[") + data.count("{") if isinstance(data, str) else (
        data.count(b"[") + data.count(b"{"))
    depth = text_depth(data, stop_above=max_depth) if opens > max_depth else 0
    if depth > max_depth:
        raise JSONLimitError(
            f"{what} is nested more than {max_depth} deep (arrays/objects); the limit is "
            f"{max_depth}", depth=depth, limit=max_depth)
    if decoder is not None:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        return decoder.decode(text)
    return json.loads(data)
