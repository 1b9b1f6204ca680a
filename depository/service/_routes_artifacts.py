"""Artifact routes: uploads (``PUT``, also served by :class:`HotPut` straight from
ASGI, skipping the router), content, metadata, by-id records and listings."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from depository.service import _auth, _upload
from depository.service._auth import Principal
from depository.service._context import AppContext
from depository.service._http import (
    artifact_by_id,
    artifact_by_name,
    b64,
    file_chunks,
    json_response_off_loop,
)
from depository.service._params import (
    check_name,
    classify_metadata_error,
    header_text,
    int_param,
    json_header,
    parse_range,
    time_param,
)
from depository.service._problems import MEDIA_TYPE, Problem, from_store_error
from depository.store import Artifact, MetadataError, Receipt, StoreError, parse_time

log = logging.getLogger("depository.service")

PUT_ROUTE = "PUT /v1/products/{product}/artifacts/{name}"
LIST_MAX = 1000
_MEDIA_TYPE = re.compile(r"[\x21-\x7e]+/[\x21-\x7e]+( *;[\x20-\x7e]*)?\Z")
# One encoder for every receipt: json.dumps with options builds a new one per call.
_RECEIPT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# The request headers the upload reads (ASGI names are lower case): only these are decoded.
UPLOAD_HEADERS = {k.encode(): k for k in (
    "authorization", "content-type", "content-length", "depository-metadata",
    "depository-provenance", "depository-retain-until")}
# Names that need no percent-encoding in the Location header (the usual ones).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9._~/-]*\Z")
_PROBLEM_TYPE = MEDIA_TYPE.encode()


# ------------------------------------------------------------------- uploads


@dataclass(frozen=True)
class UploadRequest:
    """What an upload's headers and query ask for, checked (everything but the body)."""

    principal: Principal
    wait: str | None
    meta: dict[str, Any]
    prov: dict[str, Any]
    retain: datetime | None
    media_type: str
    content_length: int | None


def check_upload(ctx: AppContext, headers: Mapping[str, str], query: bytes, product: str,
                 name: str) -> UploadRequest:
    """Authenticate and check an upload's request line and headers, or raise a problem.

    ``headers`` maps lower-case names to latin-1 decoded values (as ASGI gives them).
    Shared by the ASGI route and the protocol's small-PUT path (:class:`SmallPut`), so
    both refuse the same requests with the same problems, in the same order.
    """
    p = ctx.auth.authenticate(headers.get("authorization"))
    _auth.require_upload(ctx.store, p, product, name)
    check_name(product, name)
    wait = None
    if query:
        waits = parse_qs(query.decode("latin-1")).get("wait")
        wait = waits[-1] if waits else None
        if wait not in (None, "checkpoint"):
            raise Problem("invalid-parameter", "wait must be 'checkpoint' when given",
                          field="query:wait")
    meta = json_header(headers, "Depository-Metadata")
    prov = json_header(headers, "Depository-Provenance")
    retain_text = header_text(headers, "Depository-Retain-Until")
    retain: datetime | None = None
    if retain_text:
        retain = parse_time(time_param(retain_text, "header:Depository-Retain-Until")
                            or "")
    media_type = headers.get("content-type") or "application/octet-stream"
    if len(media_type) > 255 or not _MEDIA_TYPE.match(media_type):
        raise Problem("invalid-header", "Content-Type must be a media type such as "
                      "text/plain", field="header:Content-Type")
    cl_text = headers.get("content-length")
    content_length = int(cl_text) if cl_text and cl_text.isdigit() else None
    return UploadRequest(p, wait, meta, prov, retain, media_type, content_length)


def start_put(ctx: AppContext, req: UploadRequest, product: str, name: str,
              body: Any) -> Future[Receipt]:
    """``Store.put_async`` for a checked upload (``body``: bytes or a stream)."""
    return ctx.store.put_async(product, name, body, metadata=req.meta,
                               provenance=req.prov, media_type=req.media_type,
                               retain_until=req.retain, actor=req.principal.actor)


def refused(ctx: AppContext, exc: StoreError, product: str, name: str) -> Exception:
    """What a store refusal of a put answers (counted as a refused write): a problem for
    a metadata refusal, else ``exc`` itself."""
    ctx.metrics.observe_write(product, "refused", 0)
    if isinstance(exc, MetadataError):
        return classify_metadata_error(str(exc), f"artifact {name!r} in product {product!r}")
    return exc


def accepted(ctx: AppContext, receipt: Receipt, product: str, name: str
             ) -> tuple[int, bytes, dict[str, str]]:
    """Count an acknowledged put; its (status, receipt JSON, extra headers)."""
    result = "duplicate" if receipt.duplicate else "created"
    ctx.metrics.observe_write(product, result, receipt.size)
    if not receipt.duplicate:
        ctx.writes.add(time.monotonic(), 1, receipt.size)
    return answer(receipt, product, name)


def answer(receipt: Receipt, product: str, name: str) -> tuple[int, bytes, dict[str, str]]:
    body = _RECEIPT_JSON(receipt.to_json()).encode()
    return (200 if receipt.duplicate else 201, body,
            {"Location": f"/v1/products/{product}/artifacts/"
                         f"{name if _PLAIN_NAME.match(name) else quote(name)}"})


async def upload(ctx: AppContext, headers: Mapping[str, str], query: bytes, product: str,
                 name: str, receive: Receive) -> tuple[int, bytes, dict[str, str]]:
    """PUT an artifact: (status, receipt JSON, extra headers), or raise a problem.

    ``headers`` maps lower-case names to latin-1 decoded values (as ASGI gives them).
    """
    req = check_upload(ctx, headers, query, product, name)

    def put(body: Any) -> Any:
        return start_put(ctx, req, product, name, body)

    ctx.in_flight += 1
    ctx.writes.note_level(time.monotonic(), ctx.in_flight)
    try:
        try:
            fut = await _upload.ingest(
                receive, put, content_length=req.content_length,
                max_size=ctx.config.max_artifact_size,
                inline_max=ctx.config.inline_max, idle_timeout=ctx.idle_timeout,
                executor=ctx.upload_pool, streams=ctx.streams)
            receipt: Receipt = await _upload.result(fut)
        except StoreError as exc:
            out = refused(ctx, exc, product, name)
            if out is exc:
                raise
            raise out from exc
    finally:
        ctx.in_flight -= 1
    if req.wait == "checkpoint":
        receipt = await run_in_threadpool(ctx.store.with_proof, receipt)
    return accepted(ctx, receipt, product, name)


def response_parts(status: int, body: bytes, extra: Mapping[str, str],
                   ctype: bytes = b"application/json") -> list[tuple[bytes, bytes]]:
    """The upload's response headers, as the ASGI route sends them (in this order)."""
    raw = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
    return raw


def problem_parts(exc: BaseException, path: str | None
                  ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """An upload's failure as (status, headers, body): the problem it raised, a store
    refusal's problem, or an internal error."""
    if isinstance(exc, Problem):
        prob = exc
    elif isinstance(exc, StoreError):
        prob = from_store_error(exc)
    else:
        log.error("unexpected failure in %s", PUT_ROUTE, exc_info=exc)
        prob = Problem("internal", "an unexpected failure; nothing acknowledged was "
                       "lost")
    body = json.dumps(prob.to_json(path), ensure_ascii=False).encode()
    return prob.code, response_parts(prob.code, body, prob.headers, _PROBLEM_TYPE), body


async def put_asgi(ctx: AppContext, scope: Scope, receive: Receive, send: Send,
                   product: str, name: str) -> None:
    """The upload route as a bare ASGI handler: the hot path skips the framework's
    request objects and routing (same behaviour, same answers)."""
    t0 = time.perf_counter()
    headers = {UPLOAD_HEADERS[k]: v.decode("latin-1") for k, v in scope["headers"]
               if k in UPLOAD_HEADERS}
    try:
        status, body, extra = await upload(ctx, headers, scope.get("query_string", b""),
                                           product, name, receive)
        raw = response_parts(status, body, extra)
    except Exception as exc:
        status, raw, body = problem_parts(exc, scope.get("path"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
    ctx.metrics.observe_request(PUT_ROUTE, "PUT", status, time.perf_counter() - t0)


class HotPut:
    """Sends ``PUT /v1/products/{product}/artifacts/{name}`` straight to the service's
    upload handler; everything else goes through the router."""

    def __init__(self, app: ASGIApp, ctx: AppContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "PUT":
            path: str = scope["path"]
            if path.startswith("/v1/products/"):
                product, sep, tail = path[13:].partition("/")
                if sep and product and tail.startswith("artifacts/"):
                    await put_asgi(self.ctx, scope, receive, send, product, tail[10:])
                    return
        await self.app(scope, receive, send)


async def put_artifact(request: Request, ctx: AppContext) -> Response:
    status, body, headers = await upload(
        ctx, request.headers, request.scope.get("query_string", b""),
        request.path_params["product"], request.path_params["name"], request.receive)
    return Response(body, status_code=status, media_type="application/json",
                    headers=headers)


# --------------------------------------------------------------------- reads


async def get_content(request: Request, ctx: AppContext) -> Response:
    product = request.path_params["product"]
    name = request.path_params["name"]
    p = ctx.principal(request)
    _auth.require_content(ctx.store, p, product, name)
    art = artifact_by_name(ctx, p, product, name)
    if art.disposed:
        raise Problem("disposed", f"artifact {art.id} ({product}/{name}) was disposed "
                      "after its retention; its record and proofs remain in the log")
    etag = f'"{art.sha256}"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "private, "
               "max-age=31536000, immutable", "Depository-Artifact-Id": art.id}
    if request.headers.get("if-none-match") in (etag, "*"):
        return Response(status_code=304, headers=headers)
    rng = None
    if_range = request.headers.get("if-range")
    if if_range is None or if_range == etag:
        rng = parse_range(request.headers.get("range"), art.size)
    start, end = rng if rng else (0, art.size - 1)
    length = end - start + 1 if art.size else 0
    status = 206 if rng else 200
    if rng:
        headers["Content-Range"] = f"bytes {start}-{end}/{art.size}"
    else:
        headers["Repr-Digest"] = (
            f"sha-256=:{b64(bytes.fromhex(art.sha256))}:")
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=art.media_type)
    f = ctx.store.open_content(art)
    if art.storage == "inline":
        with f:
            data = f.read()
        body = data[start:end + 1]
        return Response(body, status_code=status, headers=headers,
                        media_type=art.media_type)
    return StreamingResponse(file_chunks(f, start, length), status_code=status,
                             headers=headers, media_type=art.media_type)


def artifact_json(ctx: AppContext, art: Artifact) -> dict[str, Any]:
    out = art.to_json()
    out["holds"] = [h.id for h in ctx.store.holds_covering(art)]
    return out


async def get_metadata(request: Request, ctx: AppContext) -> Response:
    product = request.path_params["product"]
    name = request.path_params["name"]
    p = ctx.principal(request)
    _auth.require_metadata(ctx.store, p, product, name)
    art = artifact_by_name(ctx, p, product, name)
    return await json_response_off_loop(lambda: artifact_json(ctx, art))


async def get_by_id(request: Request, ctx: AppContext) -> Response:
    p = ctx.principal(request)
    art = artifact_by_id(ctx, p, request.path_params["artifact_id"])
    return await json_response_off_loop(lambda: artifact_json(ctx, art))


async def list_artifacts(request: Request, ctx: AppContext) -> Response:
    product = request.path_params["product"]
    p = ctx.principal(request)
    _auth.require_metadata(ctx.store, p, product)
    qp = request.query_params
    prefix = qp.get("prefix") or None
    if prefix is not None and (len(prefix) > 1024 or any(ord(c) < 32 for c in prefix)):
        raise Problem("invalid-parameter", "prefix must be at most 1024 characters "
                      "without control characters", field="query:prefix")
    since = time_param(qp.get("since"), "query:since")
    until = time_param(qp.get("until"), "query:until")
    meta: dict[str, str] = {}
    for item in qp.getlist("meta"):
        k, sep, v = item.partition("=")
        if not sep or not k or len(item) > 2048:
            raise Problem("invalid-parameter", "meta filters are KEY=VALUE, e.g. "
                          "meta=course%3Dalgebra", field="query:meta")
        meta[k] = v
    cursor_raw = qp.get("cursor")
    cursor: int | None = None
    if cursor_raw:
        if not re.fullmatch(r"\d{1,18}", cursor_raw):
            raise Problem("invalid-parameter", "cursor must be a value returned as "
                          "next_cursor by a previous page", field="query:cursor")
        cursor = int(cursor_raw)
    limit = int_param(request, "limit", default=100, minimum=1, maximum=LIST_MAX)
    assert limit is not None
    def page() -> dict[str, Any]:
        arts = ctx.store.ls(product=product, prefix=prefix, since=since, until=until,
                            meta=meta or None, after=cursor, limit=limit)
        nxt = str(arts[-1].log_index) if len(arts) == limit else None
        return {"product": product, "items": [a.to_json() for a in arts],
                "next_cursor": nxt}

    return await json_response_off_loop(page)
