"""Parsing what a request sends: query and path parameters, JSON headers and bodies,
byte ranges. Each function raises a :class:`Problem` naming the field at fault."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from depository.service._problems import Problem
from depository.store import format_time, parse_time
from depository.store.limits import METADATA_MAX_DEPTH
from depository.tlog import safejson

HEADER_MAX = 16 * 1024  # Depository-Metadata / -Provenance, each (keeps records < 64 KiB)
BODY_MAX = 64 * 1024  # JSON bodies of the management routes
HOLD_IDS_MAX = 1000


def int_param(request: Request, name: str, *, default: int | None = None,
              minimum: int = 0, maximum: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"\d{1,19}", raw):
        raise Problem("invalid-parameter", f"{name} must be a non-negative integer, got "
                      f"{raw[:40]!r}", field=f"query:{name}")
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise Problem("invalid-parameter", f"{name} must be {bound}, got {value}",
                      field=f"query:{name}")
    return value


def time_param(raw: str | None, field: str) -> str | None:
    if raw is None or raw == "":
        return None
    try:
        return format_time(parse_time(raw))
    except (ValueError, OverflowError) as exc:
        raise Problem("invalid-parameter", f"{exc}".replace("\n", " ")[:300],
                      field=field) from None


def header_text(headers: Mapping[str, str], name: str) -> str | None:
    raw = headers.get(name.lower())
    if raw is None or raw.isascii():  # ASCII: latin-1 and UTF-8 agree
        return raw
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise Problem("invalid-header", f"{name} is not UTF-8 text",
                      field=f"header:{name}") from None


def _no_constants(c: str) -> Any:
    raise ValueError(f"{c} is not valid JSON")


def _unique_pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(items)
    if len(out) != len(items):
        seen: set[str] = set()
        for k, _ in items:
            if k in seen:
                raise ValueError(f"duplicate key {k!r}")
            seen.add(k)
    return out


# Strict JSON: no NaN/Infinity, no duplicate keys (I-JSON); one decoder for every call.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_pairs, parse_constant=_no_constants)


def strict_object(text: str, field: str, *, max_depth: int = safejson.MAX_DEPTH
                  ) -> dict[str, Any]:
    kind = "invalid-header" if field.startswith("header:") else "invalid-body"
    what = field.split(":", 1)[-1] if field.startswith("header:") else "the JSON body"
    try:  # refused by measured depth before the (recursive) parser sees it
        value = safejson.loads(text, max_bytes=BODY_MAX, max_depth=max_depth, what=what,
                               decoder=_DECODER)
    except safejson.JSONLimitError as exc:
        raise Problem(kind, str(exc), field=field) from None
    except ValueError as exc:
        raise Problem(kind, f"not valid JSON: {str(exc)[:300]}", field=field) from None
    if not isinstance(value, dict):
        raise Problem(kind, f"must be a JSON object, got {type(value).__name__}",
                      field=field)
    if "\\u" in text and _lone_surrogate(value):
        raise Problem(kind, "holds a lone surrogate escape (\\ud800-\\udfff unpaired), "
                      "which is not Unicode text; send proper UTF-8", field=field)
    return value


def _lone_surrogate(value: Any) -> bool:
    """Whether a decoded value holds a string (or key) that is not valid Unicode."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(v, dict):
            stack.extend(v)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def json_header(headers: Mapping[str, str], name: str) -> dict[str, Any]:
    text = header_text(headers, name)
    if text is None or not text.strip():
        return {}
    size = len(text) if text.isascii() else len(text.encode())
    if size > HEADER_MAX:
        raise Problem("header-too-large", f"{name} is {size} bytes; the limit "
                      f"is {HEADER_MAX}", field=f"header:{name}")
    # Metadata and provenance: the store's own limit, so the refusal names it.
    return strict_object(text, f"header:{name}", max_depth=METADATA_MAX_DEPTH)


async def json_body(request: Request) -> dict[str, Any]:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > BODY_MAX:
            raise Problem("invalid-body", f"the JSON body exceeds {BODY_MAX} bytes",
                          field="body", status=413, headers={"Connection": "close"})
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise Problem("invalid-body", "the body is not UTF-8", field="body") from None
    if not text.strip():
        raise Problem("invalid-body", "a JSON object body is required", field="body")
    return strict_object(text, "body")


def str_field(body: dict[str, Any], key: str, *, required: bool = True,
              max_len: int = 4096) -> str | None:
    v = body.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str) or (required and not v.strip()) or len(v) > max_len:
        need = "a non-empty string" if required else "a string"
        raise Problem("invalid-body", f"{key} must be {need} of at most {max_len} "
                      "characters", field=f"body:{key}")
    return v


def id_list(body: dict[str, Any], key: str, what: str) -> tuple[str, ...]:
    v = body.get(key)
    if v is None:
        return ()
    if (not isinstance(v, list) or not v or len(v) > HOLD_IDS_MAX
            or not all(isinstance(i, str) and 0 < len(i) <= 256 for i in v)):
        raise Problem("invalid-body", f"{key} must be a list of 1-{HOLD_IDS_MAX} {what} "
                      "strings", field=f"body:{key}")
    seen: set[str] = set()
    for i, item in enumerate(v):
        if item in seen:
            raise Problem("invalid-body", f"{item[:80]!r} is listed twice",
                          field=f"body:{key}/{i}")
        seen.add(item)
    return tuple(v)


_CONTROL = re.compile(r"[\x00-\x1f]")


def check_name(product: str, name: str) -> None:
    if not name or len(name) > 1024 or _CONTROL.search(name):
        raise Problem("invalid-parameter", "an artifact name must be 1-1024 characters "
                      "without control characters", field="path:name")


def classify_metadata_error(text: str, what: str) -> Problem:
    rest = text[len(what) + 2:] if text.startswith(what + ": ") else text
    if rest.startswith("metadata field "):
        where = rest[len("metadata field "):].split(":", 1)[0]
        fld = "header:Depository-Metadata" + ("" if where == "(top level)" else "/" + where)
        return Problem("metadata-invalid", text, field=fld)
    if rest.startswith("metadata"):
        return Problem("invalid-header", text, field="header:Depository-Metadata")
    if rest.startswith("provenance"):
        return Problem("invalid-header", text, field="header:Depository-Provenance")
    return Problem("invalid-parameter", text, field="path:name")



# ------------------------------------------------------------------------ ranges
def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The single byte range ``[start, end]`` (inclusive) asked for, or None for the
    whole body. Raises 416 when unsatisfiable; ignores syntax it does not support."""
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None  # multiple or malformed ranges: serve the whole representation
    first, last = m.group(1), m.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            return None
        if start >= size:
            raise Problem("range-not-satisfiable", f"the artifact has {size} bytes",
                          field="header:Range", headers={"Content-Range": f"bytes */{size}"})
        return start, end
    suffix = int(last)
    if suffix == 0 or size == 0:
        raise Problem("range-not-satisfiable", f"the artifact has {size} bytes",
                      field="header:Range", headers={"Content-Range": f"bytes */{size}"})
    return max(0, size - suffix), size - 1
