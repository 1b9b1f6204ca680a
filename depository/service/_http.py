"""What the route modules share: the route table's entry (:class:`Endpoint`), the wrapper
that turns problems into problem+json and measures every answer, response helpers, and
the lookups several areas use (an artifact by name or id, the latest checkpoint)."""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from depository.service import _upload
from depository.service._auth import Principal
from depository.service._context import AppContext
from depository.service._params import check_name
from depository.service._problems import Problem, artifact_not_found, from_store_error
from depository.store import Artifact, NotFoundError, StoreError, artifact_id

log = logging.getLogger("depository.service")

Handler = Callable[[Request, AppContext], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    """One row of the route table: ``method path`` served by ``handler``.

    ``query`` marks the routes whose latency counts as a query (the query-response
    monitoring view).
    """

    method: str
    path: str
    handler: Handler
    query: bool = False

    @property
    def label(self) -> str:
        """The route as metrics and logs name it (``{name:path}`` shown as ``{name}``)."""
        return f"{self.method} {self.path.replace(':path}', '}')}"

    def route(self, ctx: AppContext) -> Route:
        return Route(self.path, measured(ctx, self), methods=[self.method])


def measured(ctx: AppContext, ep: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    """``ep``'s handler bound to ``ctx``: problems become problem+json, and every answer
    is measured."""
    fn, label, query = ep.handler, ep.label, ep.query

    async def endpoint(request: Request) -> Response:
        t0 = time.perf_counter()
        try:
            resp = await fn(request, ctx)
        except Problem as p:
            resp = p.response(request.scope.get("path"))
        except StoreError as exc:
            resp = from_store_error(exc).response(request.scope.get("path"))
        except Exception:
            log.exception("unexpected failure in %s", label)
            resp = Problem("internal", "an unexpected failure; nothing acknowledged was "
                           "lost").response(request.scope.get("path"))
        dt = time.perf_counter() - t0
        ctx.metrics.observe_request(label, request.method, resp.status_code, dt)
        if query:
            ctx.note_query(dt)
        return resp

    endpoint.__name__ = endpoint.__qualname__ = fn.__name__
    return endpoint


# ------------------------------------------------------------------ responses
def b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


def json_bytes(data: Any) -> bytes:
    """The JSON every route answers with (compact, UTF-8)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    return Response(json_bytes(data), status_code=status, media_type="application/json",
                    headers=headers)


async def json_response_off_loop(build: Callable[[], Any]) -> Response:
    """``json_response(build())`` with the building and the encoding in a worker thread:
    a listing page is ~100 objects to make and encode, which on the event loop would
    hold up every upload waiting for its answer."""
    body = await run_in_threadpool(lambda: json_bytes(build()))
    return Response(body, media_type="application/json")


def text_response(text: bytes | str, *, cache: str) -> Response:
    return Response(text, media_type="text/plain; charset=utf-8",
                    headers={"Cache-Control": cache})


def file_chunks(f: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    with f:
        f.seek(start)
        left = length
        while left > 0:
            chunk = f.read(min(left, _upload.BLOCK))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


# -------------------------------------------------------------------- lookups
_ARTIFACT_ID = re.compile(r"art_[a-z2-7]{24}")


def artifact_by_name(ctx: AppContext, p: Principal, product: str, name: str) -> Artifact:
    check_name(product, name)
    try:
        art = ctx.store.get_by_id(artifact_id(product, name))
    except NotFoundError:
        raise artifact_not_found(product, name) from None
    if art.product != product or art.name != name:  # pragma: no cover - id collision
        raise artifact_not_found(product, name)
    return art


def artifact_by_id(ctx: AppContext, p: Principal, aid: str) -> Artifact:
    if not _ARTIFACT_ID.fullmatch(aid):
        raise Problem("not-found", f"no artifact {aid!r}", field="path:artifact_id")
    try:
        art = ctx.store.get_by_id(aid)
    except NotFoundError:
        raise Problem("not-found", f"no artifact {aid!r}",
                      field="path:artifact_id") from None
    if p.product is not None and art.product != p.product:
        raise Problem("not-found", f"no artifact {aid!r}", field="path:artifact_id")
    return art


def latest_checkpoint(ctx: AppContext) -> tuple[int, bytes]:
    try:
        return ctx.store.latest_checkpoint()
    except NotFoundError:
        raise Problem("not-yet-available", "no checkpoint has been signed yet",
                      headers={"Retry-After": "1"}) from None
