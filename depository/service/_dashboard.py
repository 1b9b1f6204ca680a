"""The read-only web dashboard at ``/ui``: server-rendered pages over the same tokens.

Sign-in: the login form POSTs a bearer token; the server keeps it in memory under a
random session id and sets only that id in a cookie (HttpOnly, SameSite=Strict, Secure
when the request came over https, Path=/ui). Every request re-authenticates the token
through the API's :class:`~._auth.Authenticator`, so revocation and expiry apply at once
and the roles and product scope are exactly the API's. Sessions end on logout, after
:data:`IDLE_SECONDS` without a request or :data:`MAX_SECONDS` after sign-in. The token
never appears in a URL, a page or a log.

Everything else is GET and changes nothing; the two POSTs (login, logout) refuse
cross-site requests (``Sec-Fetch-Site`` / ``Origin``). Pages carry a Content-Security-
Policy without inline script: the chart script and the style sheet are static files
from the package. Templates autoescape everything.

Not found is one page, byte for byte, whether the product or artifact is missing or
belongs to a product the token may not see (as the API's 404s).
"""

from __future__ import annotations

import functools
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from depository.service import _dashboard_data as data
from depository.service._auth import Authenticator, Principal
from depository.service._problems import Problem
from depository.store import NotFoundError, Store

COOKIE = "depository_ui"
IDLE_SECONDS = 30 * 60
MAX_SECONDS = 8 * 3600
MAX_SESSIONS = 10_000
LOGIN_BODY_MAX = 4096
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_STATIC = {"charts.js": "text/javascript; charset=utf-8",
           "dashboard.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}
_ARTIFACT_ID = re.compile(r"art_[a-z2-7]{24}\Z")
_PRODUCT = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")

Clock = Callable[[], datetime]


class Sessions:
    """Session id -> bearer secret, in this process's memory only."""

    def __init__(self, *, idle: float = IDLE_SECONDS, lifetime: float = MAX_SECONDS,
                 max_sessions: int = MAX_SESSIONS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._idle, self._lifetime, self._max = idle, lifetime, max_sessions
        self._now = monotonic
        self._lock = threading.Lock()
        # sid -> (secret, created, last used); oldest first
        self._d: OrderedDict[str, tuple[str, float, float]] = OrderedDict()

    def create(self, secret: str) -> str:
        sid = secrets.token_urlsafe(32)
        now = self._now()
        with self._lock:
            while len(self._d) >= self._max:
                self._d.popitem(last=False)
            self._d[sid] = (secret, now, now)
        return sid

    def secret(self, sid: str | None) -> str | None:
        if not sid:
            return None
        now = self._now()
        with self._lock:
            entry = self._d.get(sid)
            if entry is None:
                return None
            secret, created, used = entry
            if now - used > self._idle or now - created > self._lifetime:
                del self._d[sid]
                return None
            self._d[sid] = (secret, created, now)
            self._d.move_to_end(sid)
            return secret

    def drop(self, sid: str | None) -> None:
        if sid:
            with self._lock:
                self._d.pop(sid, None)

    def __len__(self) -> int:
        return len(self._d)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("depository", "templates/dashboard"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)
    env.filters["num"] = _num
    env.filters["size"] = _size
    return env


def _num(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.3f}".rstrip("0").rstrip(".")
    return f"{int(v):,}"


def _size(v: Any) -> str:
    if v is None:
        return "—"
    n = float(v)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(v)  # pragma: no cover


Page = Callable[["Dashboard", Request, Principal], Awaitable[Response]]


def _signed_in(fn: Page) -> Callable[[Dashboard, Request], Awaitable[Response]]:
    """A page for signed-in sessions; anyone else is sent to the login form."""

    @functools.wraps(fn)
    async def wrapper(self: Dashboard, request: Request) -> Response:
        p = await run_in_threadpool(self._principal, request)
        if p is None:
            return self._to_login(request)
        return await fn(self, request, p)

    return wrapper


class Dashboard:
    """The ``/ui`` routes over one store."""

    def __init__(self, sources: data.Sources, auth: Authenticator, clock: Clock, *,
                 enabled: bool = True) -> None:
        self.enabled = enabled
        self.src = sources
        self.store: Store = sources.store
        self.auth = auth
        self.clock = clock
        self.sessions = Sessions()
        self.cert_cache = data.CertificationCache()
        self.alert_records = data.RecordScanner(data.ALERT_RECORD_TYPES)
        self._env = _env()
        self._not_found: bytes | None = None

    # ------------------------------------------------------------------ plumbing
    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
             "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
             "Cache-Control": "no-store"}
        h.update(extra or {})
        return h

    def _page(self, template: str, status: int = 200, **ctx: Any) -> Response:
        html = self._env.get_template(template).render(**ctx)
        return Response(html, status_code=status, media_type="text/html; charset=utf-8",
                        headers=self._headers())

    def not_found(self) -> Response:
        """The one 404 page (identical bytes for missing and not-visible)."""
        if self._not_found is None:
            self._not_found = self._env.get_template("not_found.html.j2").render().encode()
        return Response(self._not_found, status_code=404,
                        media_type="text/html; charset=utf-8", headers=self._headers())

    def _principal(self, request: Request) -> Principal | None:
        secret = self.sessions.secret(request.cookies.get(COOKIE))
        if secret is None:
            return None
        try:
            return self.auth.authenticate(f"Bearer {secret}")
        except Problem:  # revoked or expired since sign-in: the session ends
            self.sessions.drop(request.cookies.get(COOKIE))
            return None

    def _to_login(self, request: Request) -> Response:
        resp = RedirectResponse("/ui/login", status_code=303, headers=self._headers())
        if COOKIE in request.cookies:
            resp.delete_cookie(COOKIE, path="/ui")
        return resp

    @staticmethod
    def _cross_site(request: Request) -> bool:
        """A browser's cross-site POST (login CSRF). Browsers send Sec-Fetch-Site; with
        ``Referrer-Policy: no-referrer`` their Origin is ``null``, so it decides only
        when Sec-Fetch-Site is absent. Clients sending neither are not browsers."""
        site = request.headers.get("sec-fetch-site")
        if site is not None:
            return site not in ("same-origin", "none")
        origin = request.headers.get("origin")
        if origin is None:
            return False
        host = request.headers.get("host", "")
        return origin not in (f"http://{host}", f"https://{host}")

    # ------------------------------------------------------------------ sign-in
    async def login_form(self, request: Request) -> Response:
        return self._page("login.html.j2", error=None)

    async def login(self, request: Request) -> Response:
        if self._cross_site(request):
            return self._page("login.html.j2", 403, error="cross-site sign-in refused")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > LOGIN_BODY_MAX:
                return self._page("login.html.j2", 413, error="the form is too large")
        try:
            fields = parse_qs(bytes(body).decode("latin-1"), max_num_fields=4)
        except ValueError:
            return self._page("login.html.j2", 400, error="the form is malformed: send "
                              "token=... as application/x-www-form-urlencoded")
        token = (fields.get("token") or [""])[-1].strip()
        try:
            await run_in_threadpool(self.auth.authenticate, f"Bearer {token}")
        except Problem:
            return self._page("login.html.j2", 401,
                              error="that token is unknown, expired or revoked")
        self.sessions.drop(request.cookies.get(COOKIE))  # a new id at every sign-in
        sid = self.sessions.create(token)
        resp = RedirectResponse("/ui", status_code=303, headers=self._headers())
        resp.set_cookie(COOKIE, sid, max_age=MAX_SECONDS, path="/ui", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
        return resp

    async def logout(self, request: Request) -> Response:
        if self._cross_site(request):
            return self._page("login.html.j2", 403, error="cross-site sign-out refused")
        self.sessions.drop(request.cookies.get(COOKIE))
        resp = RedirectResponse("/ui/login", status_code=303, headers=self._headers())
        resp.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
        return resp

    # ------------------------------------------------------------------ pages
    @_signed_in
    async def index(self, request: Request, p: Principal) -> Response:
        ctx = await run_in_threadpool(data.overview, self.src, p, self.clock(),
                                      self.cert_cache, self.alert_records)
        return self._page("overview.html.j2", **ctx)

    @_signed_in
    async def product(self, request: Request, p: Principal) -> Response:
        product = request.path_params["product"]
        if (not _PRODUCT.match(product) or product not in
                data.visible_products(self.store, p)):
            return self.not_found()
        raw = request.query_params.get("cursor")
        if raw is not None and not re.fullmatch(r"\d{1,18}", raw):
            return self.not_found()
        ctx = await run_in_threadpool(data.product_page, self.src, p, product,
                                      int(raw) if raw else None)
        return self._page("product.html.j2", **ctx)

    def _artifact(self, p: Principal, aid: str) -> Any:
        if not _ARTIFACT_ID.match(aid):
            return None
        try:
            art = self.store.get_by_id(aid)
        except NotFoundError:
            return None
        if p.product is not None and art.product != p.product:
            return None
        return art

    @_signed_in
    async def proof(self, request: Request, p: Principal) -> Response:
        art = await run_in_threadpool(self._artifact, p, request.path_params["artifact_id"])
        if art is None:
            return self.not_found()
        try:
            blob = await run_in_threadpool(self.store.proof_file, art.log_index)
        except NotFoundError:
            return self._page("message.html.j2", 409, title="Not yet provable",
                              message="no signed checkpoint covers this record yet; "
                                      "try again in a moment")
        return Response(blob, media_type="text/plain; charset=utf-8", headers=self._headers(
            {"Content-Disposition": f'attachment; filename="{art.id}.tlog-proof"'}))

    @_signed_in
    async def record(self, request: Request, p: Principal) -> Response:
        art = await run_in_threadpool(self._artifact, p, request.path_params["artifact_id"])
        if art is None:
            return self.not_found()
        leaf = await run_in_threadpool(
            lambda: next(iter(self.store.log_entries(art.log_index, art.log_index + 1)))[1])
        return Response(leaf, media_type="application/json", headers=self._headers(
            {"Content-Disposition": f'attachment; filename="{art.id}.leaf.json"'}))

    @_signed_in
    async def checkpoint(self, request: Request, p: Principal) -> Response:
        try:
            _, note = await run_in_threadpool(self.store.latest_checkpoint)
        except NotFoundError:
            return self._page("message.html.j2", 409, title="No checkpoint yet",
                              message="no checkpoint has been signed yet")
        return Response(note, media_type="text/plain; charset=utf-8", headers=self._headers(
            {"Content-Disposition": 'attachment; filename="checkpoint.txt"'}))

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        media = _STATIC.get(name)
        if media is None:
            return self.not_found()
        body = resources.files("depository").joinpath("templates", "dashboard", name
                                                      ).read_bytes()
        return Response(body, media_type=media, headers=self._headers(
            {"Cache-Control": "no-cache"}))

    async def unavailable(self, request: Request) -> Response:
        return self._page("message.html.j2", 503, title="Dashboard not served here",
                          message="The dashboard is served by `depository serve` with "
                                  "--workers 1 (its sign-in sessions live in one process). "
                                  "The API serves the same figures to the same tokens.")

    def routes(self) -> list[Route]:
        if not self.enabled:
            return [Route(r.path, self.unavailable, methods=list(r.methods or ()))
                    for r in self._routes()]
        return self._routes()

    def _routes(self) -> list[Route]:
        return [
            Route("/ui", self.index, methods=["GET"]),
            Route("/ui/login", self.login_form, methods=["GET"]),
            Route("/ui/login", self.login, methods=["POST"]),
            Route("/ui/logout", self.logout, methods=["POST"]),
            Route("/ui/products/{product}", self.product, methods=["GET"]),
            Route("/ui/artifacts/{artifact_id}/proof", self.proof, methods=["GET"]),
            Route("/ui/artifacts/{artifact_id}/record", self.record, methods=["GET"]),
            Route("/ui/checkpoint", self.checkpoint, methods=["GET"]),
            Route("/ui/static/{name}", self.static, methods=["GET"]),
        ]
