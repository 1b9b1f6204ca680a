"""Route handlers one by one: each is a plain ``async def handler(request, ctx)``, so a
test calls it with a request and an :class:`AppContext` (no app), or serves just that
route with :func:`build_app`."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from test_service_support import bearer, issue_tokens, make_store

from depository.service import _routes_artifacts, _routes_log, _routes_service
from depository.service._context import AppContext
from depository.service._problems import Problem
from depository.service.app import ROUTES, Endpoint, build_app
from depository.store import StoreError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[AppContext]:
    store = make_store(tmp_path / "store")
    context = AppContext.create(store, clock=lambda: NOW)
    yield context
    context.reads.close()
    store.close()


def _request(method: str, path: str, *, token: str | None = None,
             path_params: dict[str, str] | None = None) -> Request:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    return Request({"type": "http", "method": method, "path": path, "raw_path": path.encode(),
                    "query_string": b"", "headers": headers, "path_params": path_params or {}})


def _call(handler: Any, request: Request, ctx: AppContext) -> Any:
    return asyncio.run(handler(request, ctx))


def test_health_answers_from_the_context_clock_and_store(ctx: AppContext,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    r = _call(_routes_service.health, _request("GET", "/health"), ctx)
    assert r.status_code == 200
    assert r.body.startswith(b'{"status":"ok","time":"2026-01-02T03:04:05.')
    assert r.body.endswith(b'Z","writes":"accepted"}')

    def broken() -> Any:
        raise StoreError("database is gone")

    monkeypatch.setattr(ctx.store, "governance_status", broken)
    r = _call(_routes_service.health, _request("GET", "/health"), ctx)
    assert b'"status":"unavailable"' in r.body and b'"writes":"refused"' in r.body


def test_a_handler_raises_problems_and_the_wrapper_answers_them(ctx: AppContext) -> None:
    secrets = issue_tokens(ctx.store)
    req = _request("GET", "/v1/log/inclusion", token=secrets["auditor"])
    with pytest.raises(Problem) as info:  # no ?index=
        _call(_routes_log.inclusion, req, ctx)
    assert (info.value.slug, info.value.field) == ("invalid-parameter", "query:index")
    with pytest.raises(Problem) as info:
        _call(_routes_log.log_checkpoint, _request("GET", "/v1/log/checkpoint"), ctx)
    assert info.value.slug == "unauthorized"
    ctx.store.checkpoint()
    req = _request("GET", "/v1/log/checkpoint", token=secrets["auditor"])
    r = _call(_routes_log.log_checkpoint, req, ctx)
    assert r.status_code == 200 and r.body == ctx.store.latest_checkpoint()[1]
    # Through the route's wrapper the problem becomes problem+json.
    app = build_app(ctx, [e for e in ROUTES if e.handler is _routes_log.inclusion])
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/v1/log/inclusion", headers=bearer(secrets["auditor"]))
    assert r.status_code == 400 and r.json()["field"] == "query:index"


def test_get_content_alone(ctx: AppContext) -> None:
    secrets = issue_tokens(ctx.store)
    ctx.store.put("gurukul", "l/one.txt", b"hello", media_type="text/plain")
    req = _request("GET", "/v1/products/gurukul/artifacts/l/one.txt",
                   token=secrets["reader:gurukul"],
                   path_params={"product": "gurukul", "name": "l/one.txt"})
    r = _call(_routes_artifacts.get_content, req, ctx)
    assert (r.status_code, r.body) == (200, b"hello")
    assert r.headers["etag"].strip('"') == ctx.store.get_by_id(
        r.headers["depository-artifact-id"]).sha256
    other = _request("GET", "/v1/products/ai-avatar/artifacts/l/one.txt",
                     token=secrets["reader:gurukul"],
                     path_params={"product": "ai-avatar", "name": "l/one.txt"})
    with pytest.raises(Problem) as info:
        _call(_routes_artifacts.get_content, other, ctx)
    assert info.value.code == 404  # another product's token sees nothing


def test_one_route_app_serves_that_route_only(ctx: AppContext) -> None:
    secrets = issue_tokens(ctx.store)
    app = build_app(ctx, [Endpoint("GET", "/v1/whoami", _routes_service.whoami)])
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/v1/whoami", headers=bearer(secrets["auditor"]))
        assert r.status_code == 200 and r.json()["role"] == "auditor"
        r = c.get("/v1/whoami")  # the wrapper turns the handler's problem into a 401
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        r = c.get("/health")  # not in this app's table
        assert r.status_code == 404 and r.json()["type"] == "/problems/not-found"


def test_the_route_table_is_consistent() -> None:
    labels = [e.label for e in ROUTES]
    assert len(labels) == len(set(labels)), "a route is registered twice"
    assert "PUT /v1/products/{product}/artifacts/{name}" in labels
    assert Endpoint("GET", "/tile/{path:path}", _routes_log.tile).label == "GET /tile/{path}"
    for e in ROUTES:  # every handler takes (request, ctx)
        assert list(e.handler.__annotations__)[:2] == ["request", "ctx"], e.label



def test_the_service_does_not_import_the_cli() -> None:
    # The HTTP layer sits below the CLI (cli > service): e.g. the worker processes get
    # their uvicorn config from depository.service.server, not from cli/_serve.py.
    import ast

    import depository.service as service

    for path in Path(service.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("depository.cli"), path.name
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("depository.cli") for a in node.names)
