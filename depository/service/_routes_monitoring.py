"""Monitoring routes: the monitoring views and Prometheus ``/metrics`` (admin, auditor).

To add a route: write ``async def handler(request, ctx) -> Response`` here and add an
:class:`~depository.service._http.Endpoint` row to ``ROUTES`` in
:mod:`depository.service.app` (and the operation to ``openapi.yaml``).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from depository.service import _auth
from depository.service._auth import ADMIN, AUDITOR
from depository.service._context import AppContext
from depository.service._http import json_response
from depository.service._problems import Problem
from depository.service._views import VIEWS, compute_views


async def monitoring(request: Request, ctx: AppContext) -> Response:
    _auth.require_role(ctx.principal(request), (ADMIN, AUDITOR), "read monitoring")
    return json_response(await run_in_threadpool(compute_views, ctx))


async def monitoring_view(request: Request, ctx: AppContext) -> Response:
    _auth.require_role(ctx.principal(request), (ADMIN, AUDITOR), "read monitoring")
    view = request.path_params["view"]
    if view not in VIEWS:
        raise Problem("not-found", f"no monitoring view {view!r}; views: "
                      f"{', '.join(VIEWS)}", field="path:view")
    views = await run_in_threadpool(compute_views, ctx)
    return json_response({"time": views["time"], view: views[view]})


async def metrics(request: Request, ctx: AppContext) -> Response:
    _auth.require_role(ctx.principal(request), (ADMIN, AUDITOR), "read metrics")
    await run_in_threadpool(compute_views, ctx)
    data = await run_in_threadpool(generate_latest, ctx.metrics.registry)
    return Response(data, media_type=CONTENT_TYPE_LATEST)
