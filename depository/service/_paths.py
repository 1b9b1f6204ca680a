"""Strict decoding of the request target: percent-escapes must spell UTF-8.

uvicorn and Starlette percent-decode the path (and the query) with ``errors="replace"``:
``/a%ffb`` and ``/a%feb`` both become ``/a\\ufffdb``, so two different names would reach
the store as one, and ``%ed%a0%80`` (an encoded lone surrogate) would slip past the
store's own check. :class:`StrictTarget` refuses such a request with a 400 naming the
part at fault before any route sees it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from depository.service._problems import MEDIA_TYPE, Problem

# Query parameters whose value is free text (a U+FFFD would silently match other
# names); the others are numbers or keywords and refuse anything else themselves.
FREE_TEXT_QUERY = (b"prefix", b"meta")


def _bad_utf8(raw: bytes) -> str | None:
    """Why ``raw`` (percent-encoded) is not UTF-8 text once decoded, or None if it is."""
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"byte 0x{exc.object[exc.start]:02x} at offset {exc.start} " \
               f"({exc.reason})"
    return None


def _param_at(templates: Sequence[str], segments: list[str], index: int) -> str | None:
    """The route parameter that path segment ``index`` fills, if a route fits."""
    for template in templates:
        parts = template.split("/")
        params: dict[int, str] = {}
        fits = len(parts) == len(segments)
        for j, part in enumerate(parts):
            if part.endswith(":path}"):  # takes this segment and all that follow
                fits = len(segments) > j
                params.update((k, part[1:-len(":path}")]) for k in range(j, len(segments)))
                break
            if j >= len(segments) or (not part.startswith("{") and part != segments[j]):
                fits = False
                break
            if part.startswith("{"):
                params[j] = part[1:-1]
        if fits:
            return params.get(index)
    return None


def check_target(raw_path: bytes, query: bytes, templates: Sequence[str]) -> Problem | None:
    """The problem with this request target, or None when it decodes strictly."""
    if (b"%" in raw_path or not raw_path.isascii()) and _bad_utf8(raw_path):
        raw_segments = raw_path.split(b"/")
        segments = [unquote_to_bytes(s).decode("utf-8", "replace") for s in raw_segments]
        for i, seg in enumerate(raw_segments):
            why = _bad_utf8(seg)
            if why is None:
                continue
            param = _param_at(templates, segments, i)
            shown = seg.decode("latin-1")[:200]
            return Problem(
                "invalid-parameter",
                f"path segment {shown!r} is not UTF-8 once percent-decoded: {why}; "
                "names are UTF-8 text, so percent-encode each character's UTF-8 bytes "
                "(e.g. %C3%A9 for \u00e9)",
                field=f"path:{param}" if param else "path")
    if b"%" in query or not query.isascii():
        for pair in query.split(b"&"):
            key, _, value = pair.partition(b"=")
            if key in FREE_TEXT_QUERY:
                why = _bad_utf8(value.replace(b"+", b" "))
                if why is not None:
                    name = key.decode()
                    return Problem(
                        "invalid-parameter",
                        f"query parameter {pair.decode('latin-1')[:200]!r} is not UTF-8 "
                        f"once percent-decoded: {why}", field=f"query:{name}")
    return None


class StrictTarget:
    """ASGI middleware: a 400 problem for a path or query that is not UTF-8."""

    def __init__(self, app: ASGIApp, templates: Sequence[str],
                 on_refused: Callable[[str, int], None] | None = None) -> None:
        self.app = app
        self.templates = templates
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw: bytes = scope.get("raw_path") or scope["path"].encode()
            problem = check_target(raw, scope.get("query_string", b""), self.templates)
            if problem is not None:
                body = json.dumps(problem.to_json(raw.decode("latin-1")),
                                  ensure_ascii=False).encode()
                await send({"type": "http.response.start", "status": problem.code,
                            "headers": [(b"content-type", MEDIA_TYPE.encode()),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                if self.on_refused is not None:
                    self.on_refused(scope["method"], problem.code)
                return
        await self.app(scope, receive, send)
