"""Service routes: health, the OpenAPI document, problem types, whoami."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from depository.service._context import AppContext
from depository.service._http import json_response
from depository.service._problems import Problem, describe, problem_catalogue
from depository.store import StoreError, format_time


async def health(request: Request, ctx: AppContext) -> Response:
    status = "ok"
    try:
        if ctx.store.governance_status()["locked"]:
            status = "locked"
    except StoreError:
        status = "unavailable"
    return json_response({"status": status, "time": format_time(ctx.clock()),
                          "writes": "refused" if status != "ok" else "accepted"})


async def openapi(request: Request, ctx: AppContext) -> Response:
    return Response(ctx.openapi(), media_type="application/json")


async def problem_doc(request: Request, ctx: AppContext) -> Response:
    slug = request.path_params["slug"]
    if slug == "index":
        return json_response(problem_catalogue())
    doc = describe(slug)
    if doc is None:
        raise Problem("not-found", f"no problem type {slug!r}", field="path:slug")
    return json_response(doc)


async def whoami(request: Request, ctx: AppContext) -> Response:
    return json_response(ctx.principal(request).to_json())
