"""Dashboard routes (``/ui``): HTML pages, sign-in and sign-out, downloads, static files.

The rules (sessions, cookies, cross-site refusal, one not-found page) are described in
:mod:`._dashboard`; what the pages show comes from :mod:`._dashboard_data`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from depository.service import _dashboard_data as data
from depository.service._auth import Principal
from depository.service._context import AppContext
from depository.service._dashboard import COOKIE, LOGIN_BODY_MAX, MAX_SECONDS, STATIC
from depository.service._problems import Problem
from depository.store import Artifact, NotFoundError

_ARTIFACT_ID = re.compile(r"art_[a-z2-7]{24}\Z")
_PRODUCT = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")

Handler = Callable[[Request, AppContext], Awaitable[Response]]
Page = Callable[[Request, AppContext, Principal], Awaitable[Response]]


def sources(ctx: AppContext) -> data.Sources:
    """The dashboard's inputs in this app; paths not set fall back to the store
    configuration's ``monitoring`` settings when it has them."""
    from depository.service._views import compute_views

    d = ctx.dashboard
    mon = getattr(ctx.config, "monitoring", None) or {}

    def configured(key: str) -> Path | None:
        raw = mon.get(key)
        if not raw:
            return None
        p = Path(str(raw))
        return p if p.is_absolute() else ctx.store.path / p

    ops = getattr(ctx, "ops", None)  # alert delivery and scheduled checks, when present
    return data.Sources(
        ctx.store, functools.partial(compute_views, ctx),
        load_results=d.load_results or configured("loadtest_results"),
        certification_report=d.certification_report or configured("certification_report"),
        certification_trust=d.certification_trust or configured("certification_trust"),
        operations=ops.snapshot if ops is not None else None,
        find_records=ctx.reads.records_containing)


def _served(fn: Handler) -> Handler:
    """Answers 503 where the dashboard is not served (HTTP worker processes)."""

    @functools.wraps(fn)
    async def handler(request: Request, ctx: AppContext) -> Response:
        if not ctx.dashboard.enabled:
            return ctx.dashboard.page(
                "message.html.j2", 503, title="Dashboard not served here",
                message="The dashboard is served by `depository serve` with --workers 1 "
                        "(its sign-in sessions live in one process). The API serves the "
                        "same figures to the same tokens.")
        return await fn(request, ctx)

    return handler


def _principal(ctx: AppContext, request: Request) -> Principal | None:
    sid = request.cookies.get(COOKIE)
    secret = ctx.dashboard.sessions.secret(sid)
    if secret is None:
        return None
    try:
        return ctx.auth.authenticate(f"Bearer {secret}")
    except Problem:  # revoked or expired since sign-in: the session ends
        ctx.dashboard.sessions.drop(sid)
        return None


def _signed_in(fn: Page) -> Handler:
    """A page for signed-in sessions; anyone else is sent to the login form."""

    @_served
    @functools.wraps(fn)
    async def handler(request: Request, ctx: AppContext) -> Response:
        p = await run_in_threadpool(_principal, ctx, request)
        if p is None:
            resp = RedirectResponse("/ui/login", status_code=303,
                                    headers=ctx.dashboard.headers())
            if COOKIE in request.cookies:
                resp.delete_cookie(COOKIE, path="/ui")
            return resp
        return await fn(request, ctx, p)

    return handler


def _cross_site(request: Request) -> bool:
    """A browser's cross-site POST (login CSRF). Browsers send Sec-Fetch-Site; with
    ``Referrer-Policy: no-referrer`` their Origin is ``null``, so it decides only when
    Sec-Fetch-Site is absent. Clients sending neither are not browsers."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    host = request.headers.get("host", "")
    return origin not in (f"http://{host}", f"https://{host}")


# ------------------------------------------------------------------ sign-in
@_served
async def login_form(request: Request, ctx: AppContext) -> Response:
    return ctx.dashboard.page("login.html.j2", error=None)


@_served
async def login(request: Request, ctx: AppContext) -> Response:
    d = ctx.dashboard
    if _cross_site(request):
        return d.page("login.html.j2", 403, error="cross-site sign-in refused")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > LOGIN_BODY_MAX:
            return d.page("login.html.j2", 413, error="the form is too large")
    try:
        fields = parse_qs(bytes(body).decode("latin-1"), max_num_fields=4)
    except ValueError:
        return d.page("login.html.j2", 400, error="the form is malformed: send token=... "
                      "as application/x-www-form-urlencoded")
    token = (fields.get("token") or [""])[-1].strip()
    try:
        await run_in_threadpool(ctx.auth.authenticate, f"Bearer {token}")
    except Problem:
        return d.page("login.html.j2", 401, error="that token is unknown, expired or revoked")
    d.sessions.drop(request.cookies.get(COOKIE))  # a new id at every sign-in
    sid = d.sessions.create(token)
    resp = RedirectResponse("/ui", status_code=303, headers=d.headers())
    resp.set_cookie(COOKIE, sid, max_age=MAX_SECONDS, path="/ui", httponly=True,
                    samesite="strict", secure=request.url.scheme == "https")
    return resp


@_served
async def logout(request: Request, ctx: AppContext) -> Response:
    d = ctx.dashboard
    if _cross_site(request):
        return d.page("login.html.j2", 403, error="cross-site sign-out refused")
    d.sessions.drop(request.cookies.get(COOKIE))
    resp = RedirectResponse("/ui/login", status_code=303, headers=d.headers())
    resp.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return resp


# ------------------------------------------------------------------ pages
@_signed_in
async def index(request: Request, ctx: AppContext, p: Principal) -> Response:
    d = ctx.dashboard
    page = await run_in_threadpool(data.overview, sources(ctx), p, ctx.clock(),
                                   d.cert_cache, d.alert_records)
    return d.page("overview.html.j2", **page)


@_signed_in
async def product(request: Request, ctx: AppContext, p: Principal) -> Response:
    name = request.path_params["product"]
    if not _PRODUCT.match(name) or name not in data.visible_products(ctx.store, p):
        return ctx.dashboard.not_found()
    raw = request.query_params.get("cursor")
    if raw is not None and not re.fullmatch(r"\d{1,18}", raw):
        return ctx.dashboard.not_found()
    page = await run_in_threadpool(data.product_page, sources(ctx), p, name,
                                   int(raw) if raw else None)
    return ctx.dashboard.page("product.html.j2", **page)


def _artifact(ctx: AppContext, p: Principal, aid: str) -> Artifact | None:
    if not _ARTIFACT_ID.match(aid):
        return None
    try:
        art = ctx.store.get_by_id(aid)
    except NotFoundError:
        return None
    if p.product is not None and art.product != p.product:
        return None
    return art


def _download(ctx: AppContext, body: bytes, media: str, filename: str) -> Response:
    return Response(body, media_type=media, headers=ctx.dashboard.headers(
        {"Content-Disposition": f'attachment; filename="{filename}"'}))


@_signed_in
async def proof(request: Request, ctx: AppContext, p: Principal) -> Response:
    art = await run_in_threadpool(_artifact, ctx, p, request.path_params["artifact_id"])
    if art is None:
        return ctx.dashboard.not_found()
    try:
        blob = await run_in_threadpool(ctx.store.proof_file, art.log_index)
    except NotFoundError:
        return ctx.dashboard.page("message.html.j2", 409, title="Not yet provable",
                                  message="no signed checkpoint covers this record yet; "
                                          "try again in a moment")
    return _download(ctx, blob, "text/plain; charset=utf-8", f"{art.id}.tlog-proof")


@_signed_in
async def record(request: Request, ctx: AppContext, p: Principal) -> Response:
    art = await run_in_threadpool(_artifact, ctx, p, request.path_params["artifact_id"])
    if art is None:
        return ctx.dashboard.not_found()

    def leaf() -> bytes:
        assert art is not None
        return next(iter(ctx.store.log_entries(art.log_index, art.log_index + 1)))[1]

    return _download(ctx, await run_in_threadpool(leaf), "application/json",
                     f"{art.id}.leaf.json")


@_signed_in
async def checkpoint(request: Request, ctx: AppContext, p: Principal) -> Response:
    try:
        _, note = await run_in_threadpool(ctx.store.latest_checkpoint)
    except NotFoundError:
        return ctx.dashboard.page("message.html.j2", 409, title="No checkpoint yet",
                                  message="no checkpoint has been signed yet")
    return _download(ctx, note, "text/plain; charset=utf-8", "checkpoint.txt")


@_served
async def static(request: Request, ctx: AppContext) -> Response:
    name = request.path_params["name"]
    media = STATIC.get(name)
    if media is None:
        return ctx.dashboard.not_found()
    body = resources.files("depository").joinpath("templates", "dashboard", name
                                                  ).read_bytes()
    headers: dict[str, Any] = ctx.dashboard.headers({"Cache-Control": "no-cache"})
    return Response(body, media_type=media, headers=headers)
