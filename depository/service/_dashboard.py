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

This module holds the dashboard's state (:class:`DashboardState`, a field of the app
context); the handlers are in :mod:`._routes_dashboard`, what they show is gathered by
:mod:`._dashboard_data`.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import Response

from depository.service._dashboard_data import (
    ALERT_RECORD_TYPES,
    CertificationCache,
    RecordScanner,
)

COOKIE = "depository_ui"
IDLE_SECONDS = 30 * 60
MAX_SECONDS = 8 * 3600
MAX_SESSIONS = 10_000
LOGIN_BODY_MAX = 4096
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
STATIC = {"charts.js": "text/javascript; charset=utf-8",
          "dashboard.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}


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



@dataclass(eq=False)
class DashboardState:
    """The dashboard's settings and state (one per app).

    ``load_results`` (a results.json) and ``certification_report`` (a signed report
    PDF, its signer checked against ``certification_trust`` when given) are what the
    scale-limit and certification sections show. ``enabled=False`` (HTTP worker
    processes: sessions live in one process) answers every ``/ui`` route with a 503 page.
    """

    load_results: Path | None = None
    certification_report: Path | None = None
    certification_trust: Path | None = None
    enabled: bool = True
    sessions: Sessions = field(default_factory=Sessions)
    cert_cache: CertificationCache = field(default_factory=CertificationCache)
    alert_records: RecordScanner = field(
        default_factory=lambda: RecordScanner(ALERT_RECORD_TYPES))
    _env: jinja2.Environment = field(default_factory=_env, init=False)
    _not_found: bytes | None = field(default=None, init=False)

    @staticmethod
    def headers(extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
             "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
             "Cache-Control": "no-store"}
        h.update(extra or {})
        return h

    def page(self, template: str, status: int = 200, **ctx: Any) -> Response:
        html = self._env.get_template(template).render(**ctx)
        return Response(html, status_code=status, media_type="text/html; charset=utf-8",
                        headers=self.headers())

    def not_found(self) -> Response:
        """The one 404 page (identical bytes for missing and not-visible)."""
        if self._not_found is None:
            self._not_found = self._env.get_template("not_found.html.j2").render().encode()
        return Response(self._not_found, status_code=404,
                        media_type="text/html; charset=utf-8", headers=self.headers())
