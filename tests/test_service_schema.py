"""The OpenAPI document is true: schemathesis fuzzes every documented operation (a
bounded number of examples each) and checks status codes, content types, response
schemas and headers against the document, and that nothing answers 5xx except the
documented 503/507."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send
from test_service_support import bearer, issue_tokens, make_store

from depository.service import create_app
from depository.store import Store


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Starlette,
                                                                       dict[str, str]]]:
    store = make_store(tmp_path_factory.mktemp("schema") / "store")
    secrets = issue_tokens(store)
    store.put("gurukul", "seed/one.txt", b"one", metadata={"course": "algebra"})
    store.checkpoint()
    app = create_app(store)
    yield store, app, secrets
    store.close()


@pytest.fixture(scope="module")
def api_schema(served: tuple[Store, Starlette, dict[str, str]]) -> Any:
    app = served[1]

    async def without_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        # schemathesis starts a test client (and so the app's lifespan) per request;
        # the app works without its lifespan, which only runs background monitoring.
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        await app(scope, receive, send)

    return schemathesis.openapi.from_asgi("/openapi.json", without_lifespan)


def _operations() -> list[tuple[str, str]]:
    doc = yaml.safe_load(resources.files("depository.service").joinpath("openapi.yaml")
                         .read_text(encoding="utf-8"))
    return [(m.upper(), p) for p, ops in doc["paths"].items() for m in ops
            if m in ("get", "put", "post")]


# Bounded for the suite; raise it for a deeper run: DEPOSITORY_SCHEMA_EXAMPLES=200 pytest ...
_EXAMPLES = int(os.environ.get("DEPOSITORY_SCHEMA_EXAMPLES", "6"))
_CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
           checks.content_type_conformance, checks.response_schema_conformance,
           checks.response_headers_conformance]


def _token_for(method: str, path: str, secrets: dict[str, str]) -> str:
    """A token whose role may perform the operation, so the happy paths are reached."""
    if path == "/v1/products/{product}/artifacts/{name}":
        return secrets["writer:gurukul"] if method == "PUT" else secrets["reader:gurukul"]
    if path.startswith(("/v1/holds", "/v1/artifacts/{artifact_id}/retention")):
        return secrets["legal"]
    return secrets["admin"]


@pytest.mark.parametrize(("method", "path"), _operations())
def test_openapi_document_is_true(method: str, path: str, api_schema: Any,
                                  served: tuple[Store, Starlette, dict[str, str]]) -> None:
    _, _, secrets = served
    op = api_schema[path][method]
    headers = bearer(_token_for(method, path, secrets))
    fixed = {"product": "gurukul"} if "{product}" in path else None
    strategies = [(op.as_strategy(GenerationMode.POSITIVE), False),
                  (op.as_strategy(GenerationMode.NEGATIVE), True)]
    if fixed:
        strategies.append((op.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed),
                           False))

    for strategy, negative in strategies:
        @given(case=strategy)
        @settings(max_examples=_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            response = case.call(headers=headers)
            case.validate_response(response, checks=_CHECKS)
            assert response.status_code < 500 or response.status_code in (503, 507), (
                response.text)

        try:
            run()
        except Unsatisfiable:
            assert negative  # no parameter or body to make invalid


def test_every_route_is_documented_and_every_documented_route_exists(
        served: tuple[Store, Starlette, dict[str, str]]) -> None:
    from starlette.routing import Route

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    _, app, _ = served
    doc = TestClient(app).get("/openapi.json").json()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops
                  if m in ("get", "put", "post", "delete", "patch")}
    served_routes = set()
    for r in app.routes:
        assert isinstance(r, Route)
        path = r.path.replace(":path}", "}")
        for m in r.methods or ():
            if m != "HEAD":
                served_routes.add((m, path))
    assert documented == served_routes
