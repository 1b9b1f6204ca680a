"""Evidence routes: export a matter's package (legal), fetch it (also by range)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from depository.service import _auth
from depository.service._auth import LEGAL
from depository.service._context import AppContext
from depository.service._exports import ExportRequest
from depository.service._http import b64, file_chunks, json_response
from depository.service._params import id_list, json_body, parse_range, str_field, time_param
from depository.service._problems import Problem
from depository.store import parse_time

_EXPORT_FIELDS = ("matter", "reason", "product", "from", "to", "artifacts", "holds",
                  "load_file")


def export_request(body: dict[str, Any]) -> ExportRequest:
    """The body of ``POST /v1/evidence/exports``, well-formed (not yet checked)."""
    for key in body:
        if key not in _EXPORT_FIELDS:  # a misspelt selection must not widen the export
            raise Problem("invalid-body", f"unknown field {key[:40]!r}; the fields are "
                          f"{', '.join(_EXPORT_FIELDS)}", field=f"body:{key[:40]}")
    matter = str_field(body, "matter", max_len=256)
    reason = str_field(body, "reason")
    assert matter is not None and reason is not None
    product = str_field(body, "product", required=False, max_len=64)
    since = time_param(str_field(body, "from", required=False, max_len=64), "body:from")
    until = time_param(str_field(body, "to", required=False, max_len=64), "body:to")
    artifacts = id_list(body, "artifacts", "artifact id")
    holds = id_list(body, "holds", "hold id")
    if artifacts and holds:
        raise Problem("invalid-body", "give artifacts or holds, not both", field="body:holds")
    load_file = body.get("load_file")
    if load_file not in (None, "dat"):
        raise Problem("invalid-body", "load_file must be 'dat' (Concordance DAT) when given",
                      field="body:load_file")
    return ExportRequest(matter=matter.strip(), reason=reason.strip(), product=product,
                         since=parse_time(since) if since else None,
                         until=parse_time(until) if until else None,
                         artifacts=artifacts, holds=holds, load_file=load_file)


async def create_export(request: Request, ctx: AppContext) -> Response:
    p = ctx.principal(request)
    _auth.require_role(p, (LEGAL,), "export evidence packages")
    req = export_request(await json_body(request))
    info = await ctx.exports.create(p, req, ctx.clock())
    return json_response(info.to_json(), 201, headers={"Location": info.location})


async def get_export(request: Request, ctx: AppContext) -> Response:
    p = ctx.principal(request)
    info, path = await run_in_threadpool(ctx.exports.find, p,
                                         request.path_params["export_id"])
    etag = f'"{info.sha256}"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "private, no-ctx.store",
               "Content-Disposition": f'attachment; filename="{info.package}"',
               "Depository-Log-Index": str(info.log_index)}
    rng = None
    if request.headers.get("if-range") in (None, etag):
        rng = parse_range(request.headers.get("range"), info.size)
    start, end = rng if rng else (0, info.size - 1)
    if rng:
        headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    else:
        headers["Repr-Digest"] = f"sha-256=:{b64(bytes.fromhex(info.sha256))}:"
    headers["Content-Length"] = str(end - start + 1)
    if request.method == "HEAD":
        return Response(status_code=206 if rng else 200, headers=headers,
                        media_type="application/zip")
    try:
        f = await run_in_threadpool(open, path, "rb")
    except FileNotFoundError:  # an operator removed it just now
        raise Problem("not-found", f"no export {info.export_id!r}",
                      field="path:export_id") from None
    return StreamingResponse(file_chunks(f, start, end - start + 1),
                             status_code=206 if rng else 200, headers=headers,
                             media_type="application/zip")
