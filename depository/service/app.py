"""The depository's HTTP API: an ASGI app over one open :class:`Store`.

Every route is a plain handler ``async def handler(request, ctx) -> Response`` in a
module per area (``_routes_artifacts``, ``_routes_log``, ``_routes_governance``,
``_routes_evidence``, ``_routes_monitoring``, ``_routes_service``), given the request and
the app's :class:`~depository.service._context.AppContext`. :data:`ROUTES` is the one
table of them; :func:`create_app` only builds the context and wires the table, opening
nothing and starting nothing outside the app's lifespan. Time comes from the injected
``clock``. The routes, their parameters and every answer are described in
``openapi.yaml`` beside this module (served at ``/openapi.json``); the roles are in
:mod:`depository.service._auth`.

To add a route: write its handler in the area's module, add one :class:`Endpoint` row
here, and document the operation in ``openapi.yaml`` (a test checks the two agree).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from depository.service import (
    _routes_artifacts,
    _routes_dashboard,
    _routes_evidence,
    _routes_governance,
    _routes_log,
    _routes_monitoring,
    _routes_ops,
    _routes_service,
)
from depository.service._context import AppContext, Clock
from depository.service._dashboard import DashboardState
from depository.service._exports import ExportSettings
from depository.service._http import Endpoint
from depository.service._paths import StrictTarget
from depository.service._problems import Problem
from depository.store import Store, utc_now

__all__ = ["ROUTES", "AppContext", "Endpoint", "build_app", "create_app"]

log = logging.getLogger("depository.service")

_a, _l, _g = _routes_artifacts, _routes_log, _routes_governance
_e, _m, _s, _o = _routes_evidence, _routes_monitoring, _routes_service, _routes_ops
_d = _routes_dashboard

ROUTES: tuple[Endpoint, ...] = (  # the hot paths first: the router tries them in order
    Endpoint("PUT", "/v1/products/{product}/artifacts/{name:path}", _a.put_artifact),
    Endpoint("GET", "/v1/products/{product}/artifacts/{name:path}", _a.get_content,
             query=True),
    Endpoint("GET", "/health", _s.health),
    Endpoint("GET", "/openapi.json", _s.openapi),
    Endpoint("GET", "/problems/{slug}", _s.problem_doc),
    Endpoint("GET", "/metrics", _m.metrics),
    Endpoint("GET", "/checkpoint", _l.tiles_checkpoint),
    Endpoint("GET", "/tile/{path:path}", _l.tile),
    Endpoint("GET", "/v1/whoami", _s.whoami),
    Endpoint("GET", "/v1/products/{product}/artifacts", _a.list_artifacts, query=True),
    Endpoint("GET", "/v1/products/{product}/metadata/{name:path}", _a.get_metadata,
             query=True),
    Endpoint("GET", "/v1/artifacts/{artifact_id}", _a.get_by_id, query=True),
    Endpoint("GET", "/v1/artifacts/{artifact_id}/proof", _l.artifact_proof, query=True),
    Endpoint("POST", "/v1/artifacts/{artifact_id}/retention", _g.extend_retention),
    Endpoint("GET", "/v1/log/checkpoint", _l.log_checkpoint),
    Endpoint("GET", "/v1/log/entries", _l.log_entries, query=True),
    Endpoint("GET", "/v1/log/inclusion", _l.inclusion, query=True),
    Endpoint("GET", "/v1/log/consistency", _l.consistency, query=True),
    Endpoint("GET", "/v1/holds", _g.list_holds),
    Endpoint("POST", "/v1/holds", _g.place_hold),
    Endpoint("POST", "/v1/holds/{hold_id}/release", _g.release_hold),
    Endpoint("POST", "/v1/evidence/exports", _e.create_export),
    Endpoint("GET", "/v1/evidence/exports/{export_id}", _e.get_export),
    Endpoint("GET", "/v1/governance", _g.governance),
    Endpoint("POST", "/v1/governance/{action}", _g.governance_change),
    Endpoint("POST", "/v1/governance/scale/validate", _o.scale_validate),
    Endpoint("POST", "/v1/alerts/{fingerprint}/ack", _o.alert_ack),
    Endpoint("GET", "/v1/tokens", _g.list_tokens),
    Endpoint("POST", "/v1/tokens", _g.create_token),
    Endpoint("POST", "/v1/tokens/{token_id}/revoke", _g.revoke_token),
    Endpoint("GET", "/v1/monitoring", _m.monitoring),
    Endpoint("POST", "/v1/monitoring/query-latency", _o.record_query_latency),
    Endpoint("GET", "/v1/monitoring/{view}", _m.monitoring_view),
    # The read-only web dashboard (HTML; a session cookie instead of a bearer header).
    Endpoint("GET", "/ui", _d.index),
    Endpoint("GET", "/ui/login", _d.login_form),
    Endpoint("POST", "/ui/login", _d.login),
    Endpoint("POST", "/ui/logout", _d.logout),
    Endpoint("GET", "/ui/products/{product}", _d.product),
    Endpoint("GET", "/ui/artifacts/{artifact_id}/proof", _d.proof),
    Endpoint("GET", "/ui/artifacts/{artifact_id}/record", _d.record),
    Endpoint("GET", "/ui/checkpoint", _d.checkpoint),
    Endpoint("GET", "/ui/static/{name}", _d.static),
)


def build_app(ctx: AppContext, endpoints: Sequence[Endpoint] = ROUTES) -> Starlette:
    """The ASGI app serving ``endpoints`` over ``ctx`` (all of :data:`ROUTES` by default;
    a test may serve a single route)."""

    async def http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        path = request.scope.get("path")
        if exc.status_code == 405:
            resp = Problem("method-not-allowed", f"{request.method} is not allowed here",
                           headers=dict(exc.headers or {})).response(path)
        elif exc.status_code == 404:
            resp = Problem("not-found", "no such route").response(path)
        else:
            resp = Problem("invalid-parameter", str(exc.detail),
                           status=exc.status_code).response(path)
        ctx.metrics.observe_request("(unmatched)", request.method, resp.status_code, 0.0)
        return resp

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return Problem("internal", "an unexpected failure; nothing acknowledged was lost"
                       ).response(request.scope.get("path"))

    middleware = [Middleware(StrictTarget, templates=[e.path for e in endpoints],
                             on_refused=ctx.note_refused)]
    if any(e.handler is _routes_artifacts.put_artifact for e in endpoints):
        middleware.append(Middleware(_routes_artifacts.HotPut, ctx=ctx))
    app = Starlette(routes=[e.route(ctx) for e in endpoints], lifespan=ctx.lifespan,
                    middleware=middleware,
                    exception_handlers={HTTPException: http_exception,
                                        Exception: internal_error})
    app.router.redirect_slashes = False
    app.state.service = ctx
    return app


def create_app(
    store: Store, *, clock: Clock = utc_now, public_tiles: bool = False,
    upload_idle_timeout: float = 30.0, max_streaming_uploads: int = 32,
    exports: ExportSettings | None = None, load_results: Path | None = None,
    certification_report: Path | None = None, certification_trust: Path | None = None,
    dashboard: bool = True, run_checks: bool = True, alerts_elsewhere: bool = False,
) -> Starlette:
    """The ASGI app serving ``store`` (opened for writing by the caller, who closes it).

    ``public_tiles`` serves ``/checkpoint`` and hash tiles (not entry bundles) without a
    token, for tiles clients that cannot send one. ``exports`` says where evidence
    packages go and how they are signed (default: from the CLI's environment variables).
    ``load_results`` (a load test's results.json) and ``certification_report`` (a signed
    report PDF, its signer checked against ``certification_trust`` when given) are what
    the dashboard at ``/ui`` shows; ``dashboard=False`` answers ``/ui`` with a 503 page
    (HTTP worker processes: the dashboard's sessions live in one process).
    ``run_checks`` runs the scheduled checks and alert delivery in the app's lifespan;
    ``alerts_elsewhere`` marks an HTTP worker whose parent process runs them.
    """
    ctx = AppContext.create(store, clock=clock, public_tiles=public_tiles,
                            upload_idle_timeout=upload_idle_timeout,
                            max_streaming_uploads=max_streaming_uploads, exports=exports,
                            run_checks=run_checks, alerts_elsewhere=alerts_elsewhere)
    ctx.dashboard = DashboardState(load_results=load_results,
                                   certification_report=certification_report,
                                   certification_trust=certification_trust,
                                   enabled=dashboard)
    if certification_report is not None and ctx.ops.schedule.certification_report is None:
        # `serve --certification-report` also feeds the certification-expiry check
        ctx.ops.use_certification_report(certification_report)
    return build_app(ctx)
