"""Small uploads answered by the HTTP protocol itself, without the ASGI stack.

A ``PUT /v1/products/{product}/artifacts/{name}`` whose whole body (a Content-Length of
at most :data:`MAX_BODY` bytes, and at most the store's ``inline_max``) has arrived is
the service's most frequent request. The protocol (:mod:`._protocol`) hands it to
:meth:`SmallPut.handle` instead of starting an ASGI task: the same token check and
header checks (:func:`._routes_artifacts.check_upload`), the same store call
(``put_async``, durable before the answer), the same metrics, and the same response
bytes (:func:`._routes_artifacts.response_parts` / ``problem_parts``) as the ASGI route,
minus a task, the ASGI messages, the middleware chain and the body's watchdog timer.

Anything else takes the ASGI route, decided before anything is checked: another method
or path, a query string, percent-escapes or non-ASCII bytes in the target, chunked
bodies, ``Expect``, an upgrade, HTTP/1.0, a pipelined request, a body larger than
:data:`MAX_BODY`, or one that has not fully arrived within a second of its headers
(``_protocol.BODY_WAIT``; the ASGI route's idle timeout applies from there). The path
is off with ``serve --access-log`` (access logging sees every request through uvicorn's
ASGI cycle) and with ``DEPOSITORY_SMALL_PUT=0``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future

from depository.service import _upload
from depository.service._context import AppContext
from depository.service._routes_artifacts import (
    PUT_ROUTE,
    UPLOAD_HEADERS,
    accepted,
    check_upload,
    problem_parts,
    refused,
    response_parts,
    start_put,
)
from depository.store import Receipt, StoreError

MAX_BODY = 64 * 1024  # also uvicorn's read-pause mark: a small body never pauses reading
ENV = "DEPOSITORY_SMALL_PUT"

Headers = list[tuple[bytes, bytes]]
Respond = Callable[[int, Headers, bytes], None]


def enabled_by_env() -> bool:
    """False when ``DEPOSITORY_SMALL_PUT=0`` turns the path off."""
    return os.environ.get(ENV, "1").strip() != "0"


class SmallPut:
    """The small-PUT path of one app (its :class:`AppContext`); one per server process."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.max_body = min(MAX_BODY, ctx.config.inline_max)
        self.taken = 0  # requests answered here: tests and benchmarks read it
        self._pending: list[Callable[[], None]] = []

    @staticmethod
    def target(url: bytes) -> tuple[str, str] | None:
        """(product, name) when ``url`` is a plain upload target: ASCII, no query,
        fragment or percent-escape (so the ASGI path's strict decoding has nothing to
        refuse and decodes it to the same text)."""
        if not url.startswith(b"/v1/products/") or not url.isascii() or \
                b"%" in url or b"?" in url or b"#" in url:
            return None
        product, sep, tail = url[13:].decode("ascii").partition("/")
        if not sep or not product or not tail.startswith("artifacts/"):
            return None
        return product, tail[10:]

    def handle(self, raw_headers: Iterable[tuple[bytes, bytes]], product: str, name: str,
               body: bytes, path: str, respond: Respond) -> None:
        """Check and store one upload; ``respond(status, headers, body)`` is called once,
        on the event loop, now (a refusal) or when the store has made it durable."""
        ctx = self.ctx
        t0 = time.perf_counter()
        self.taken += 1

        def fail(exc: BaseException) -> None:
            status, raw, out = problem_parts(exc, path)
            respond(status, raw, out)
            ctx.metrics.observe_request(PUT_ROUTE, "PUT", status, time.perf_counter() - t0)

        headers = {UPLOAD_HEADERS[k]: v.decode("latin-1") for k, v in raw_headers
                   if k in UPLOAD_HEADERS}
        try:
            req = check_upload(ctx, headers, b"", product, name)
            max_size = ctx.config.max_artifact_size
            if (req.content_length or 0) > max_size or len(body) > max_size:
                raise _upload.too_large(max_size)
        except Exception as exc:
            fail(exc)
            return
        loop = asyncio.get_running_loop()

        def start() -> None:  # on the loop, after this round's reads (see _flush)
            ctx.in_flight += 1
            ctx.writes.note_level(time.monotonic(), ctx.in_flight)
            try:
                fut = start_put(ctx, req, product, name, body)
            except Exception as exc:
                ctx.in_flight -= 1
                fail(refused(ctx, exc, product, name) if isinstance(exc, StoreError)
                     else exc)
                return
            fut.add_done_callback(wake)

        def done(f: Future[Receipt]) -> None:  # on the loop
            ctx.in_flight -= 1
            try:
                receipt = f.result()
            except StoreError as exc:
                fail(refused(ctx, exc, product, name))
                return
            except Exception as exc:
                fail(exc)
                return
            status, out, extra = accepted(ctx, receipt, product, name)
            respond(status, response_parts(status, out, extra), out)
            ctx.metrics.observe_request(PUT_ROUTE, "PUT", status, time.perf_counter() - t0)

        def wake(f: Future[Receipt]) -> None:  # on the store's writer thread (or here)
            if not loop.is_closed():
                loop.call_soon_threadsafe(done, f)

        self._pending.append(start)
        if len(self._pending) == 1:
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Hand this loop round's uploads to the store together, after the round's socket
        reads, as the ASGI route's tasks do: submitted one by one from inside each read,
        they wake the store's writer thread for the first, which then contends for the
        GIL with the reads and commits (and fsyncs) smaller batches."""
        pending, self._pending = self._pending, []
        for start in pending:
            start()
