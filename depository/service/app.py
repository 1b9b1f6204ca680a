"""The depository's HTTP API: an ASGI app over one open :class:`Store`.

:func:`create_app` only wires routes to the store; it opens nothing and starts nothing
outside the app's lifespan. Time comes from the injected ``clock``. The routes, their
parameters and every answer are described in ``openapi.yaml`` beside this module
(served at ``/openapi.json``); the roles are in :mod:`depository.service._auth`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from importlib import resources
from typing import Any, BinaryIO
from urllib.parse import parse_qs, quote

import yaml
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import Metric
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from depository.service import _auth, _tiles, _upload
from depository.service._auth import ADMIN, AUDITOR, LEGAL, Authenticator, Principal
from depository.service._exports import ExportRequest, Exports, ExportSettings
from depository.service._monitoring import (
    AlertTracker,
    Figures,
    LatencyWindow,
    RateWindow,
    ServiceMetrics,
    gauge,
    scale_status,
    storage_alerts,
)
from depository.service._problems import (
    MEDIA_TYPE,
    Problem,
    artifact_not_found,
    describe,
    from_store_error,
    problem_catalogue,
)
from depository.service._reads import CertificationScanner, StoreReads, UsageTracker
from depository.store import (
    Artifact,
    MetadataError,
    NotFoundError,
    Receipt,
    Store,
    StoreError,
    artifact_id,
    format_time,
    parse_time,
    utc_now,
)
from depository.store.config import Config

log = logging.getLogger("depository.service")

Clock = Callable[[], datetime]
Handler = Callable[[Request], Awaitable[Response]]

PUT_ROUTE = "PUT /v1/products/{product}/artifacts/{name}"
HEADER_MAX = 16 * 1024  # Depository-Metadata / -Provenance, each (keeps records < 64 KiB)
BODY_MAX = 64 * 1024  # JSON bodies of the management routes
LIST_MAX = 1000
ENTRIES_MAX = 1000
HOLD_IDS_MAX = 1000
MONITOR_EVERY = 5.0  # seconds between background alert evaluations
VIEWS = ("scale", "writes", "storage", "throughput", "queries", "alerts", "thresholds",
         "certification")
_MEDIA_TYPE = re.compile(r"[\x21-\x7e]+/[\x21-\x7e]+( *;[\x20-\x7e]*)?\Z")
# One encoder for every receipt: json.dumps with options builds a new one per call.
_RECEIPT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# The request headers the upload reads (ASGI names are lower case): only these are decoded.
_UPLOAD_HEADERS = {k.encode(): k for k in (
    "authorization", "content-type", "content-length", "depository-metadata",
    "depository-provenance", "depository-retain-until")}
# Names that need no percent-encoding in the Location header (the usual ones).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9._~/-]*\Z")


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(),
                    status_code=status, media_type="application/json", headers=headers)


def _text(text: bytes | str, *, cache: str) -> Response:
    return Response(text, media_type="text/plain; charset=utf-8",
                    headers={"Cache-Control": cache})


# ---------------------------------------------------------------- parameter parsing
def _int_param(request: Request, name: str, *, default: int | None = None,
               minimum: int = 0, maximum: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"\d{1,19}", raw):
        raise Problem("invalid-parameter", f"{name} must be a non-negative integer, got "
                      f"{raw[:40]!r}", field=f"query:{name}")
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise Problem("invalid-parameter", f"{name} must be {bound}, got {value}",
                      field=f"query:{name}")
    return value


def _time_param(raw: str | None, field: str) -> str | None:
    if raw is None or raw == "":
        return None
    try:
        return format_time(parse_time(raw))
    except (ValueError, OverflowError) as exc:
        raise Problem("invalid-parameter", f"{exc}".replace("\n", " ")[:300],
                      field=field) from None


def _header_text(headers: Mapping[str, str], name: str) -> str | None:
    raw = headers.get(name.lower())
    if raw is None or raw.isascii():  # ASCII: latin-1 and UTF-8 agree
        return raw
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise Problem("invalid-header", f"{name} is not UTF-8 text",
                      field=f"header:{name}") from None


def _no_constants(c: str) -> Any:
    raise ValueError(f"{c} is not valid JSON")


def _unique_pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(items)
    if len(out) != len(items):
        seen: set[str] = set()
        for k, _ in items:
            if k in seen:
                raise ValueError(f"duplicate key {k!r}")
            seen.add(k)
    return out


# Strict JSON: no NaN/Infinity, no duplicate keys (I-JSON); one decoder for every call.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_pairs, parse_constant=_no_constants)


def _strict_object(text: str, field: str) -> dict[str, Any]:
    kind = "invalid-header" if field.startswith("header:") else "invalid-body"
    try:
        value = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise Problem(kind, f"not valid JSON: {str(exc)[:300]}", field=field) from None
    if not isinstance(value, dict):
        raise Problem(kind, f"must be a JSON object, got {type(value).__name__}",
                      field=field)
    return value


def _json_header(headers: Mapping[str, str], name: str) -> dict[str, Any]:
    text = _header_text(headers, name)
    if text is None or not text.strip():
        return {}
    size = len(text) if text.isascii() else len(text.encode())
    if size > HEADER_MAX:
        raise Problem("header-too-large", f"{name} is {size} bytes; the limit "
                      f"is {HEADER_MAX}", field=f"header:{name}")
    return _strict_object(text, f"header:{name}")


async def _json_body(request: Request) -> dict[str, Any]:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > BODY_MAX:
            raise Problem("invalid-body", f"the JSON body exceeds {BODY_MAX} bytes",
                          field="body", status=413, headers={"Connection": "close"})
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise Problem("invalid-body", "the body is not UTF-8", field="body") from None
    if not text.strip():
        raise Problem("invalid-body", "a JSON object body is required", field="body")
    return _strict_object(text, "body")


def _str_field(body: dict[str, Any], key: str, *, required: bool = True,
               max_len: int = 4096) -> str | None:
    v = body.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str) or (required and not v.strip()) or len(v) > max_len:
        need = "a non-empty string" if required else "a string"
        raise Problem("invalid-body", f"{key} must be {need} of at most {max_len} "
                      "characters", field=f"body:{key}")
    return v


def _id_list(body: dict[str, Any], key: str, what: str) -> tuple[str, ...]:
    v = body.get(key)
    if v is None:
        return ()
    if (not isinstance(v, list) or not v or len(v) > HOLD_IDS_MAX
            or not all(isinstance(i, str) and 0 < len(i) <= 256 for i in v)):
        raise Problem("invalid-body", f"{key} must be a list of 1-{HOLD_IDS_MAX} {what} "
                      "strings", field=f"body:{key}")
    seen: set[str] = set()
    for i, item in enumerate(v):
        if item in seen:
            raise Problem("invalid-body", f"{item[:80]!r} is listed twice",
                          field=f"body:{key}/{i}")
        seen.add(item)
    return tuple(v)


_EXPORT_FIELDS = ("matter", "reason", "product", "from", "to", "artifacts", "holds",
                  "load_file")


def _export_request(body: dict[str, Any]) -> ExportRequest:
    """The body of ``POST /v1/evidence/exports``, well-formed (not yet checked)."""
    for key in body:
        if key not in _EXPORT_FIELDS:  # a misspelt selection must not widen the export
            raise Problem("invalid-body", f"unknown field {key[:40]!r}; the fields are "
                          f"{', '.join(_EXPORT_FIELDS)}", field=f"body:{key[:40]}")
    matter = _str_field(body, "matter", max_len=256)
    reason = _str_field(body, "reason")
    assert matter is not None and reason is not None
    product = _str_field(body, "product", required=False, max_len=64)
    since = _time_param(_str_field(body, "from", required=False, max_len=64), "body:from")
    until = _time_param(_str_field(body, "to", required=False, max_len=64), "body:to")
    artifacts = _id_list(body, "artifacts", "artifact id")
    holds = _id_list(body, "holds", "hold id")
    if artifacts and holds:
        raise Problem("invalid-body", "give artifacts or holds, not both", field="body:holds")
    load_file = body.get("load_file")
    if load_file not in (None, "dat"):
        raise Problem("invalid-body", "load_file must be 'dat' (Concordance DAT) when given",
                      field="body:load_file")
    return ExportRequest(matter=matter.strip(), reason=reason.strip(), product=product,
                         since=parse_time(since) if since else None,
                         until=parse_time(until) if until else None,
                         artifacts=artifacts, holds=holds, load_file=load_file)


_CONTROL = re.compile(r"[\x00-\x1f]")


def _check_name(product: str, name: str) -> None:
    if not name or len(name) > 1024 or _CONTROL.search(name):
        raise Problem("invalid-parameter", "an artifact name must be 1-1024 characters "
                      "without control characters", field="path:name")


_PRODUCT_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")


def _classify_metadata_error(text: str, what: str) -> Problem:
    rest = text[len(what) + 2:] if text.startswith(what + ": ") else text
    if rest.startswith("metadata field "):
        where = rest[len("metadata field "):].split(":", 1)[0]
        fld = "header:Depository-Metadata" + ("" if where == "(top level)" else "/" + where)
        return Problem("metadata-invalid", text, field=fld)
    if rest.startswith("metadata"):
        return Problem("invalid-header", text, field="header:Depository-Metadata")
    if rest.startswith("provenance"):
        return Problem("invalid-header", text, field="header:Depository-Provenance")
    return Problem("invalid-parameter", text, field="path:name")


# ------------------------------------------------------------------------ ranges
def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The single byte range ``[start, end]`` (inclusive) asked for, or None for the
    whole body. Raises 416 when unsatisfiable; ignores syntax it does not support."""
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None  # multiple or malformed ranges: serve the whole representation
    first, last = m.group(1), m.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            return None
        if start >= size:
            raise Problem("range-not-satisfiable", f"the artifact has {size} bytes",
                          field="header:Range", headers={"Content-Range": f"bytes */{size}"})
        return start, end
    suffix = int(last)
    if suffix == 0 or size == 0:
        raise Problem("range-not-satisfiable", f"the artifact has {size} bytes",
                      field="header:Range", headers={"Content-Range": f"bytes */{size}"})
    return max(0, size - suffix), size - 1


def _file_chunks(f: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    with f:
        f.seek(start)
        left = length
        while left > 0:
            chunk = f.read(min(left, _upload.BLOCK))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


class _Service:
    """Everything the routes share: the store, auth, metrics and monitoring state."""

    def __init__(self, store: Store, clock: Clock, *, public_tiles: bool,
                 upload_idle_timeout: float, max_streaming_uploads: int) -> None:
        self.store = store
        self.config: Config = store.config
        self.clock = clock
        self.public_tiles = public_tiles
        self.idle_timeout = upload_idle_timeout
        self.auth = Authenticator(store, clock)
        self.metrics = ServiceMetrics()
        self.metrics.add_gauges(self._gauges)
        self.reads = StoreReads(store.path)
        self.usage = UsageTracker(self.reads, list(self.config.products))
        self.certs = CertificationScanner(self.reads)
        self.alerts = AlertTracker(n_levels=len(self.config.alert_levels))
        self.writes = RateWindow(60)
        self.queries = LatencyWindow()
        self.in_flight = 0
        self._upload_pool: ThreadPoolExecutor | None = None
        self.max_streams = max_streaming_uploads
        self._streams: asyncio.Semaphore | None = None
        self._openapi: bytes | None = None
        self._oldest: str | None = None
        self._last_views: dict[str, Any] | None = None
        self._monitor_task: asyncio.Task[None] | None = None

    @property
    def upload_pool(self) -> ThreadPoolExecutor:
        if self._upload_pool is None:
            self._upload_pool = ThreadPoolExecutor(max_workers=self.max_streams,
                                                   thread_name_prefix="depository-upload")
        return self._upload_pool

    @property
    def streams(self) -> asyncio.Semaphore:
        if self._streams is None:
            self._streams = asyncio.Semaphore(self.max_streams)
        return self._streams

    # ---------------------------------------------------------------- lifecycle
    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._monitor_task = asyncio.create_task(self._monitor_loop())
        try:
            yield
        finally:
            self._monitor_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor_task
            pool, self._upload_pool = self._upload_pool, None
            if pool is not None:  # waits for uploads still being written
                await run_in_threadpool(pool.shutdown, True)
            self.reads.close()

    async def _monitor_loop(self) -> None:
        while True:
            await asyncio.sleep(MONITOR_EVERY)
            try:
                await run_in_threadpool(self.compute_views)
            except Exception:  # the next round retries; monitoring never stops serving
                log.exception("monitoring evaluation failed")

    # ------------------------------------------------------------------ plumbing
    def principal(self, request: Request) -> Principal:
        return self.auth.authenticate(request.headers.get("authorization"))

    def openapi(self) -> bytes:
        if self._openapi is None:
            text = resources.files("depository.service").joinpath("openapi.yaml").read_text(
                encoding="utf-8")
            self._openapi = json.dumps(yaml.safe_load(text), ensure_ascii=False).encode()
        return self._openapi

    # ------------------------------------------------------------------ uploads
    async def upload(self, headers: Mapping[str, str], query: bytes, product: str,
                     name: str, receive: Receive) -> tuple[int, bytes, dict[str, str]]:
        """PUT an artifact: (status, receipt JSON, extra headers), or raise a problem.

        ``headers`` maps lower-case names to latin-1 decoded values (as ASGI gives them).
        """
        store = self.store
        p = self.auth.authenticate(headers.get("authorization"))
        _auth.require_upload(store, p, product, name)
        _check_name(product, name)
        wait = None
        if query:
            waits = parse_qs(query.decode("latin-1")).get("wait")
            wait = waits[-1] if waits else None
            if wait not in (None, "checkpoint"):
                raise Problem("invalid-parameter", "wait must be 'checkpoint' when given",
                              field="query:wait")
        meta = _json_header(headers, "Depository-Metadata")
        prov = _json_header(headers, "Depository-Provenance")
        retain_text = _header_text(headers, "Depository-Retain-Until")
        retain: datetime | None = None
        if retain_text:
            retain = parse_time(_time_param(retain_text, "header:Depository-Retain-Until")
                                or "")
        media_type = headers.get("content-type") or "application/octet-stream"
        if len(media_type) > 255 or not _MEDIA_TYPE.match(media_type):
            raise Problem("invalid-header", "Content-Type must be a media type such as "
                          "text/plain", field="header:Content-Type")
        cl_text = headers.get("content-length")
        content_length = int(cl_text) if cl_text and cl_text.isdigit() else None

        def put(body: Any) -> Any:
            return store.put_async(product, name, body, metadata=meta, provenance=prov,
                                   media_type=media_type, retain_until=retain,
                                   actor=p.actor)

        self.in_flight += 1
        self.writes.note_level(time.monotonic(), self.in_flight)
        try:
            try:
                fut = await _upload.ingest(
                    receive, put, content_length=content_length,
                    max_size=self.config.max_artifact_size,
                    inline_max=self.config.inline_max, idle_timeout=self.idle_timeout,
                    executor=self.upload_pool, streams=self.streams)
                receipt: Receipt = await _upload.result(fut)
            except StoreError as exc:
                self.metrics.observe_write(product, "refused", 0)
                if isinstance(exc, MetadataError):
                    what = f"artifact {name!r} in product {product!r}"
                    raise _classify_metadata_error(str(exc), what) from exc
                raise
        finally:
            self.in_flight -= 1
        result = "duplicate" if receipt.duplicate else "created"
        self.metrics.observe_write(product, result, receipt.size)
        if not receipt.duplicate:
            self.writes.add(time.monotonic(), 1, receipt.size)
        if wait == "checkpoint":
            receipt = await run_in_threadpool(store.with_proof, receipt)
        body = _RECEIPT_JSON(receipt.to_json()).encode()
        return (200 if receipt.duplicate else 201, body,
                {"Location": f"/v1/products/{product}/artifacts/"
                             f"{name if _PLAIN_NAME.match(name) else quote(name)}"})

    async def put_asgi(self, scope: Scope, receive: Receive, send: Send, product: str,
                       name: str) -> None:
        """The upload route as a bare ASGI handler: the hot path skips the framework's
        request objects and routing (same behaviour, same answers)."""
        t0 = time.perf_counter()
        headers = {_UPLOAD_HEADERS[k]: v.decode("latin-1") for k, v in scope["headers"]
                   if k in _UPLOAD_HEADERS}
        ctype = b"application/json"
        try:
            status, body, extra = await self.upload(headers, scope.get("query_string", b""),
                                                    product, name, receive)
        except (Problem, StoreError, Exception) as exc:
            if isinstance(exc, Problem):
                prob = exc
            elif isinstance(exc, StoreError):
                prob = from_store_error(exc)
            else:
                log.exception("unexpected failure in %s", PUT_ROUTE)
                prob = Problem("internal", "an unexpected failure; nothing acknowledged was "
                               "lost")
            status, extra = prob.code, prob.headers
            body = json.dumps(prob.to_json(scope.get("path")), ensure_ascii=False).encode()
            ctype = MEDIA_TYPE.encode()
        raw = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
        self.metrics.observe_request(PUT_ROUTE, "PUT", status, time.perf_counter() - t0)

    # ---------------------------------------------------------------- monitoring
    def queue_depth(self) -> int:
        fn = getattr(self.store, "queue_depth", None)
        if callable(fn):
            return int(fn())
        # Until the store offers queue_depth(): its writer queue's length (read-only).
        q = getattr(self.store, "_queue", None)
        return len(q) if q is not None else 0

    def compute_views(self) -> dict[str, Any]:
        """Every monitoring view, computed now (runs in a worker thread)."""
        now_text = format_time(self.clock())
        mono = time.monotonic()
        usage = self.usage.refresh()
        log_size = self.store.size()
        if self._oldest is None and log_size:
            self._oldest = self.store.record(0).time
        live_bytes = sum(v[0] for v in usage.per_product.values())
        live_count = sum(v[1] for v in usage.per_product.values())
        q = self.queries.percentiles(mono, 60.0)
        fig = Figures(
            largest_artifact=usage.largest, storage_bytes=live_bytes,
            concurrent_writes=self.in_flight, writes_per_second=self.writes.rate(mono, 10),
            artifact_count=live_count, query_p99_seconds=q["p99"] or 0.0,
            log_size=log_size, oldest_record_time=self._oldest)
        scale = scale_status(fig, self.config)
        try:
            du = shutil.disk_usage(self.store.path)
            disk: tuple[int, int] | None = (du.used, du.total)
            disk_json: dict[str, Any] | None = {"used": du.used, "free": du.free,
                                                "total": du.total}
        except OSError:
            disk, disk_json = None, None
        quota = storage_alerts(usage.per_product, self.config, disk)
        self.alerts.evaluate([*scale, *quota], now_text)
        try:
            cp_size, _ = self.store.latest_checkpoint()
        except NotFoundError:
            cp_size = 0
        runs = self.certs.refresh()
        products = {}
        for pid, prod in sorted(self.config.products.items()):
            b, n = usage.per_product.get(pid, [0, 0])
            products[pid] = {
                "bytes": b, "artifacts": n, "quota_bytes": prod.quota_bytes,
                "quota_artifacts": prod.quota_artifacts,
                "bytes_percent": round(100.0 * b / prod.quota_bytes, 3),
                "artifacts_percent": round(100.0 * n / prod.quota_artifacts, 3),
            }
        target = self.config.scale_limits.get("total-storage", {}).get("target")
        views: dict[str, Any] = {
            "time": now_text,
            "scale": {"limits": scale, "alert_levels": list(self.config.alert_levels)},
            "writes": {
                "concurrent": self.in_flight, "peak_60s": self.writes.peak(mono, 60),
                "queue_depth": self.queue_depth(),
                "limit": self.config.scale_limits.get("concurrent-writers", {}).get("target"),
            },
            "storage": {
                "total_bytes": live_bytes, "total_artifacts": live_count,
                "capacity_target_bytes": target, "largest_artifact": usage.largest,
                "max_artifact_size": self.config.max_artifact_size,
                "products": products, "disk": disk_json,
            },
            "throughput": {
                "writes_per_second_10s": round(self.writes.rate(mono, 10), 3),
                "writes_per_second_60s": round(self.writes.rate(mono, 60), 3),
                "bytes_per_second_10s": round(self.writes.byte_rate(mono, 10), 1),
                "log_size": log_size, "checkpoint_size": cp_size,
                "limit": self.config.scale_limits.get("write-throughput", {}).get("target"),
            },
            "queries": {"window_seconds": 60, **q,
                        "limit_seconds": self.config.scale_limits.get(
                            "query-response", {}).get("target")},
            "alerts": self.alerts.snapshot(),
            "thresholds": {
                "alert_levels": list(self.config.alert_levels),
                "scale_limits": {k: dict(v) for k, v in self.config.scale_limits.items()},
                "quotas": {pid: {"bytes": p.quota_bytes, "artifacts": p.quota_artifacts}
                           for pid, p in sorted(self.config.products.items())},
                "max_artifact_size": self.config.max_artifact_size,
            },
            "certification": (
                {"status": "none", "runs": 0, "last": None,
                 "detail": "no certification has run on this store yet (the log holds no "
                           "certification.run record)"}
                if not runs else
                {"status": "recorded", "runs": len(runs), "last": runs[-1],
                 "detail": "the latest certification.run record in the log"}),
        }
        self._last_views = views
        return views

    def _gauges(self) -> Iterator[Metric]:
        views = self._last_views or self.compute_views()
        yield gauge("depository_writes_in_flight", "Uploads in progress", self.in_flight)
        yield gauge("depository_writer_queue_depth", "Operations waiting for the writer",
                    self.queue_depth())
        yield gauge("depository_log_size", "Records in the audit log",
                    views["throughput"]["log_size"])
        yield gauge("depository_checkpoint_size", "Tree size of the latest checkpoint",
                    views["throughput"]["checkpoint_size"])
        prods = views["storage"]["products"]
        yield gauge("depository_storage_bytes", "Live bytes per product",
                    labelled={(p,): v["bytes"] for p, v in prods.items()}, labels=["product"])
        yield gauge("depository_artifacts", "Live artifacts per product",
                    labelled={(p,): v["artifacts"] for p, v in prods.items()},
                    labels=["product"])
        yield gauge("depository_quota_bytes", "Storage quota per product",
                    labelled={(p,): v["quota_bytes"] for p, v in prods.items()},
                    labels=["product"])
        yield gauge("depository_scale_percent", "Scale limit use, percent of threshold",
                    labelled={(s["id"],): s["percent"] for s in views["scale"]["limits"]
                              if s["percent"] is not None}, labels=["limit"])
        yield gauge("depository_alert_level",
                    "Active alert level (1 warning .. n critical) per alert",
                    labelled={(a["id"],): a["level"] for a in views["alerts"]["active"]},
                    labels=["alert"])
        yield gauge("depository_alerts_active", "Number of active alerts",
                    len(views["alerts"]["active"]))

    def note_query(self, seconds: float) -> None:
        self.queries.add(time.monotonic(), seconds)


class _HotPut:
    """Sends ``PUT /v1/products/{product}/artifacts/{name}`` straight to the service's
    upload handler; everything else goes through the router."""

    def __init__(self, app: ASGIApp, svc: _Service) -> None:
        self.app = app
        self.svc = svc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "PUT":
            path: str = scope["path"]
            if path.startswith("/v1/products/"):
                product, sep, tail = path[13:].partition("/")
                if sep and product and tail.startswith("artifacts/"):
                    await self.svc.put_asgi(scope, receive, send, product, tail[10:])
                    return
        await self.app(scope, receive, send)


def _endpoint(svc: _Service, route: str, *, query: bool = False
              ) -> Callable[[Handler], Handler]:
    """Wrap a handler: problems become problem+json, and every answer is measured."""

    def deco(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def wrapper(request: Request) -> Response:
            t0 = time.perf_counter()
            try:
                resp = await fn(request)
            except Problem as p:
                resp = p.response(request.scope.get("path"))
            except StoreError as exc:
                resp = from_store_error(exc).response(request.scope.get("path"))
            except Exception:
                log.exception("unexpected failure in %s", route)
                resp = Problem("internal", "an unexpected failure; nothing acknowledged was "
                               "lost").response(request.scope.get("path"))
            dt = time.perf_counter() - t0
            svc.metrics.observe_request(route, request.method, resp.status_code, dt)
            if query:
                svc.note_query(dt)
            return resp

        return wrapper

    return deco


def create_app(
    store: Store, *, clock: Clock = utc_now, public_tiles: bool = False,
    upload_idle_timeout: float = 30.0, max_streaming_uploads: int = 32,
    exports: ExportSettings | None = None,
) -> Starlette:
    """The ASGI app serving ``store`` (opened for writing by the caller, who closes it).

    ``public_tiles`` serves ``/checkpoint`` and hash tiles (not entry bundles) without a
    token, for tiles clients that cannot send one. ``exports`` says where evidence
    packages go and how they are signed (default: from the CLI's environment variables).
    """
    svc = _Service(store, clock, public_tiles=public_tiles,
                   upload_idle_timeout=upload_idle_timeout,
                   max_streaming_uploads=max_streaming_uploads)
    ep = functools.partial(_endpoint, svc)
    evidence = Exports(store, exports or ExportSettings.from_env(store.path))

    # ------------------------------------------------------------------ public
    @ep("GET /health")
    async def health(request: Request) -> Response:
        status = "ok"
        try:
            if store.governance_status()["locked"]:
                status = "locked"
        except StoreError:
            status = "unavailable"
        return _json({"status": status, "time": format_time(clock()),
                      "writes": "refused" if status != "ok" else "accepted"})

    @ep("GET /openapi.json")
    async def openapi(request: Request) -> Response:
        return Response(svc.openapi(), media_type="application/json")

    @ep("GET /problems/{slug}")
    async def problem_doc(request: Request) -> Response:
        slug = request.path_params["slug"]
        if slug == "index":
            return _json(problem_catalogue())
        doc = describe(slug)
        if doc is None:
            raise Problem("not-found", f"no problem type {slug!r}", field="path:slug")
        return _json(doc)

    @ep("GET /v1/whoami")
    async def whoami(request: Request) -> Response:
        return _json(svc.principal(request).to_json())

    # ----------------------------------------------------------------- uploads
    @ep(PUT_ROUTE)
    async def put_artifact(request: Request) -> Response:
        status, body, headers = await svc.upload(
            request.headers, request.scope.get("query_string", b""),
            request.path_params["product"], request.path_params["name"], request.receive)
        return Response(body, status_code=status, media_type="application/json",
                        headers=headers)

    # ------------------------------------------------------------------- reads
    def _artifact_by_name(p: Principal, product: str, name: str) -> Artifact:
        _check_name(product, name)
        try:
            art = store.get_by_id(artifact_id(product, name))
        except NotFoundError:
            raise artifact_not_found(product, name) from None
        if art.product != product or art.name != name:  # pragma: no cover - id collision
            raise artifact_not_found(product, name)
        return art

    def _artifact_by_id(p: Principal, aid: str) -> Artifact:
        if not re.fullmatch(r"art_[a-z2-7]{24}", aid):
            raise Problem("not-found", f"no artifact {aid!r}", field="path:artifact_id")
        try:
            art = store.get_by_id(aid)
        except NotFoundError:
            raise Problem("not-found", f"no artifact {aid!r}",
                          field="path:artifact_id") from None
        if p.product is not None and art.product != p.product:
            raise Problem("not-found", f"no artifact {aid!r}", field="path:artifact_id")
        return art

    @ep("GET /v1/products/{product}/artifacts/{name}", query=True)
    async def get_content(request: Request) -> Response:
        product = request.path_params["product"]
        name = request.path_params["name"]
        p = svc.principal(request)
        _auth.require_content(store, p, product, name)
        art = _artifact_by_name(p, product, name)
        if art.disposed:
            raise Problem("disposed", f"artifact {art.id} ({product}/{name}) was disposed "
                          "after its retention; its record and proofs remain in the log")
        etag = f'"{art.sha256}"'
        headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "private, "
                   "max-age=31536000, immutable", "Depository-Artifact-Id": art.id}
        if request.headers.get("if-none-match") in (etag, "*"):
            return Response(status_code=304, headers=headers)
        rng = None
        if_range = request.headers.get("if-range")
        if if_range is None or if_range == etag:
            rng = parse_range(request.headers.get("range"), art.size)
        start, end = rng if rng else (0, art.size - 1)
        length = end - start + 1 if art.size else 0
        status = 206 if rng else 200
        if rng:
            headers["Content-Range"] = f"bytes {start}-{end}/{art.size}"
        else:
            headers["Repr-Digest"] = (
                f"sha-256=:{_b64(bytes.fromhex(art.sha256))}:")
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers, media_type=art.media_type)
        f = store.open_content(art)
        if art.storage == "inline":
            with f:
                data = f.read()
            body = data[start:end + 1]
            return Response(body, status_code=status, headers=headers,
                            media_type=art.media_type)
        return StreamingResponse(_file_chunks(f, start, length), status_code=status,
                                 headers=headers, media_type=art.media_type)

    def _artifact_json(art: Artifact) -> dict[str, Any]:
        out = art.to_json()
        out["holds"] = [h.id for h in store.holds_covering(art)]
        return out

    @ep("GET /v1/products/{product}/metadata/{name}", query=True)
    async def get_metadata(request: Request) -> Response:
        product = request.path_params["product"]
        name = request.path_params["name"]
        p = svc.principal(request)
        _auth.require_metadata(store, p, product, name)
        art = _artifact_by_name(p, product, name)
        return _json(await run_in_threadpool(_artifact_json, art))

    @ep("GET /v1/artifacts/{artifact_id}", query=True)
    async def get_by_id(request: Request) -> Response:
        p = svc.principal(request)
        art = _artifact_by_id(p, request.path_params["artifact_id"])
        return _json(await run_in_threadpool(_artifact_json, art))

    @ep("GET /v1/products/{product}/artifacts", query=True)
    async def list_artifacts(request: Request) -> Response:
        product = request.path_params["product"]
        p = svc.principal(request)
        _auth.require_metadata(store, p, product)
        qp = request.query_params
        prefix = qp.get("prefix") or None
        if prefix is not None and (len(prefix) > 1024 or any(ord(c) < 32 for c in prefix)):
            raise Problem("invalid-parameter", "prefix must be at most 1024 characters "
                          "without control characters", field="query:prefix")
        since = _time_param(qp.get("since"), "query:since")
        until = _time_param(qp.get("until"), "query:until")
        meta: dict[str, str] = {}
        for item in qp.getlist("meta"):
            k, sep, v = item.partition("=")
            if not sep or not k or len(item) > 2048:
                raise Problem("invalid-parameter", "meta filters are KEY=VALUE, e.g. "
                              "meta=course%3Dalgebra", field="query:meta")
            meta[k] = v
        cursor_raw = qp.get("cursor")
        cursor: int | None = None
        if cursor_raw:
            if not re.fullmatch(r"\d{1,18}", cursor_raw):
                raise Problem("invalid-parameter", "cursor must be a value returned as "
                              "next_cursor by a previous page", field="query:cursor")
            cursor = int(cursor_raw)
        limit = _int_param(request, "limit", default=100, minimum=1, maximum=LIST_MAX)
        assert limit is not None
        arts = await run_in_threadpool(
            functools.partial(store.ls, product=product, prefix=prefix, since=since,
                              until=until, meta=meta or None, after=cursor, limit=limit))
        nxt = str(arts[-1].log_index) if len(arts) == limit else None
        return _json({"product": product, "items": [a.to_json() for a in arts],
                      "next_cursor": nxt})

    # --------------------------------------------------------------------- log
    def _checkpoint() -> tuple[int, bytes]:
        try:
            return store.latest_checkpoint()
        except NotFoundError:
            raise Problem("not-yet-available", "no checkpoint has been signed yet",
                          headers={"Retry-After": "1"}) from None

    @ep("GET /v1/log/checkpoint")
    async def log_checkpoint(request: Request) -> Response:
        svc.principal(request)
        _, note = _checkpoint()
        return _text(note, cache="no-cache, max-age=1")

    @ep("GET /checkpoint")
    async def tiles_checkpoint(request: Request) -> Response:
        if not svc.public_tiles:
            svc.principal(request)
        _, note = _checkpoint()
        return _text(note, cache="no-cache, max-age=1")

    @ep("GET /tile/{path}")
    async def tile(request: Request) -> Response:
        try:
            ref = _tiles.parse_tile_path(request.path_params["path"])
        except _tiles.TilePathError as exc:
            raise Problem("invalid-parameter", str(exc), field="path:path") from None
        if ref.level is None:
            _auth.require_store_wide_reader(svc.principal(request), "read log entry bundles")
        elif not svc.public_tiles:
            svc.principal(request)
        size, _ = _checkpoint()
        if not _tiles.available(ref, size):
            raise Problem("not-yet-available", f"{ref.path()} is not covered by the latest "
                          f"checkpoint (tree size {size})", field="path:path",
                          headers={"Retry-After": "1"})
        cache = "max-age=31536000, immutable"
        if ref.level is None:
            first = ref.index * _tiles.TILE_WIDTH
            leaves = await run_in_threadpool(svc.reads.leaves, first, first + ref.width)
            try:
                data = _tiles.encode_bundle(leaves)
            except ValueError as exc:
                raise Problem("entry-too-large", str(exc), field="path:path") from None
        else:
            level, k0, k1 = _tiles.hash_range(ref)
            if level == 0:
                hashes = await run_in_threadpool(svc.reads.leaf_hashes, k0, k1)
            else:
                hashes = await run_in_threadpool(svc.reads.node_hashes, level, k0, k1)
            if len(hashes) != ref.width:  # pragma: no cover - the store keeps every node
                raise Problem("internal", f"{ref.path()}: stored tree nodes are missing")
            data = b"".join(hashes)
        return Response(data, media_type="application/octet-stream",
                        headers={"Cache-Control": cache})

    @ep("GET /v1/log/entries", query=True)
    async def log_entries(request: Request) -> Response:
        _auth.require_store_wide_reader(svc.principal(request), "read log entries")
        start = _int_param(request, "start", default=0)
        assert start is not None
        end = _int_param(request, "end", default=start + 100)
        assert end is not None
        if end < start or end - start > ENTRIES_MAX:
            raise Problem("invalid-parameter", f"end must be in [start, start + "
                          f"{ENTRIES_MAX}]", field="query:end")
        rows = await run_in_threadpool(lambda: list(store.log_entries(start, end)))
        from depository.tlog.merkle import leaf_hash

        return _json({"start": start, "end": end, "size": store.size(), "entries": [
            {"index": i, "leaf": leaf.decode(), "leaf_hash": leaf_hash(leaf).hex()}
            for i, leaf in rows]})

    def _inclusion_json(index: int, size: int) -> dict[str, Any]:
        from depository.tlog.merkle import leaf_hash

        proof = store.inclusion_proof(index, size)
        leaf = next(iter(store.log_entries(index, index + 1)))[1]
        out: dict[str, Any] = {
            "index": index, "tree_size": size, "leaf": leaf.decode(),
            "leaf_hash": leaf_hash(leaf).hex(), "proof": [_b64(h) for h in proof],
            "root": _b64(store.root_at(size)), "checkpoint": None, "tlog_proof": None,
        }
        try:
            out["tlog_proof"] = store.proof_file(index, size).decode()
            out["checkpoint"] = store.checkpoint_at(size).decode()
        except NotFoundError:
            pass
        return out

    def _size_param(request: Request, name: str, default: int) -> int:
        size = _int_param(request, name, default=default, minimum=1)
        assert size is not None
        if size > store.size():
            raise Problem("invalid-parameter", f"{name} {size} is beyond the log "
                          f"(size {store.size()})", field=f"query:{name}")
        return size

    @ep("GET /v1/log/inclusion", query=True)
    async def inclusion(request: Request) -> Response:
        p = svc.principal(request)
        index = _int_param(request, "index")
        if index is None:
            raise Problem("invalid-parameter", "index is required", field="query:index")
        cp_size, _ = _checkpoint()
        size = _size_param(request, "size", cp_size)
        if index >= size:
            raise Problem("not-yet-available" if "size" not in request.query_params
                          else "invalid-parameter",
                          f"index {index} is not below tree size {size}", field="query:index")
        if not (p.store_wide and p.role in (AUDITOR, ADMIN, LEGAL)):
            # Product tokens may prove their own product's records only.
            rec = await run_in_threadpool(store.record, index)
            if rec.product != p.product:
                raise Problem("not-found", f"no record {index} visible to this token",
                              field="query:index")
        return _json(await run_in_threadpool(_inclusion_json, index, size))

    @ep("GET /v1/artifacts/{artifact_id}/proof", query=True)
    async def artifact_proof(request: Request) -> Response:
        p = svc.principal(request)
        art = _artifact_by_id(p, request.path_params["artifact_id"])
        cp_size, _ = _checkpoint()
        size = _size_param(request, "size", cp_size)
        if art.log_index >= size:
            raise Problem("not-yet-available", f"the artifact's record {art.log_index} is "
                          f"not covered by tree size {size} yet",
                          headers={"Retry-After": "1"})
        out = await run_in_threadpool(_inclusion_json, art.log_index, size)
        return _json({"artifact_id": art.id, **out})

    @ep("GET /v1/log/consistency", query=True)
    async def consistency(request: Request) -> Response:
        svc.principal(request)
        cp_size, _ = _checkpoint()
        first = _int_param(request, "first", minimum=1)
        if first is None:
            raise Problem("invalid-parameter", "first is required", field="query:first")
        second = _size_param(request, "second", cp_size)
        if first > second:
            raise Problem("invalid-parameter", f"first ({first}) must not exceed second "
                          f"({second})", field="query:first")

        def work() -> dict[str, Any]:
            return {"first": first, "second": second,
                    "proof": [_b64(h) for h in store.consistency_proof(first, second)],
                    "first_root": _b64(store.root_at(first)),
                    "second_root": _b64(store.root_at(second))}

        return _json(await run_in_threadpool(work))

    # ---------------------------------------------------------- holds, retention
    @ep("GET /v1/holds")
    async def list_holds(request: Request) -> Response:
        p = svc.principal(request)
        _auth.require_role(p, (LEGAL, ADMIN, AUDITOR), "list holds")
        include = request.query_params.get("all") in ("1", "true")
        holds = await run_in_threadpool(functools.partial(store.holds,
                                                          include_released=include))
        if p.product is not None:
            holds = [h for h in holds if h.product == p.product]
        return _json({"holds": [h.to_json() for h in holds]})

    @ep("POST /v1/holds")
    async def place_hold(request: Request) -> Response:
        p = svc.principal(request)
        _auth.require_role(p, (LEGAL, ADMIN), "place holds")
        body = await _json_body(request)
        matter = _str_field(body, "matter", max_len=256)
        reason = _str_field(body, "reason")
        assert matter is not None and reason is not None
        ids = body.get("artifact_ids")
        product = body.get("product")
        if ids is not None and (not isinstance(ids, list) or not ids
                                or len(ids) > HOLD_IDS_MAX
                                or not all(isinstance(i, str) for i in ids)):
            raise Problem("invalid-body", f"artifact_ids must be a list of 1-{HOLD_IDS_MAX} "
                          "artifact id strings", field="body:artifact_ids")
        if product is not None and not isinstance(product, str):
            raise Problem("invalid-body", "product must be a string", field="body:product")
        if (ids is None) == (product is None):
            raise Problem("invalid-body", "give either artifact_ids or product (with "
                          "optional from/to)", field="body")
        since = _time_param(_str_field(body, "from", required=False, max_len=64),
                            "body:from")
        until = _time_param(_str_field(body, "to", required=False, max_len=64), "body:to")
        if ids is not None:
            if since or until:
                raise Problem("invalid-body", "from/to apply only to a product hold",
                              field="body:from")
            for aid in ids:
                _artifact_by_id(p, aid)
        else:
            assert isinstance(product, str)
            if p.product is not None and product != p.product:
                raise Problem("not-found", f"no product {product!r} visible to this token",
                              field="body:product")
            if product not in store.config.products:
                raise Problem("unknown-product", f"unknown product {product!r}",
                              field="body:product")
        hold = await run_in_threadpool(functools.partial(
            store.place_hold, matter=matter, reason=reason, actor=p.actor,
            artifact_ids=ids or (), product=product if ids is None else None,
            since=parse_time(since) if since else None,
            until=parse_time(until) if until else None))
        return _json(hold.to_json(), 201)

    @ep("POST /v1/holds/{hold_id}/release")
    async def release_hold(request: Request) -> Response:
        p = svc.principal(request)
        _auth.require_role(p, (LEGAL, ADMIN), "release holds")
        hold_id = request.path_params["hold_id"]
        body = await _json_body(request)
        reason = _str_field(body, "reason")
        assert reason is not None
        holds = await run_in_threadpool(functools.partial(store.holds, include_released=True))
        match = [h for h in holds if h.id == hold_id
                 and (p.product is None or h.product == p.product)]
        if not match:
            raise Problem("not-found", f"no hold {hold_id!r}", field="path:hold_id")
        idx = await run_in_threadpool(functools.partial(
            store.release_hold, hold_id, reason=reason, actor=p.actor))
        return _json({"hold_id": hold_id, "released": True, "log_index": idx})

    @ep("POST /v1/artifacts/{artifact_id}/retention")
    async def extend_retention(request: Request) -> Response:
        p = svc.principal(request)
        _auth.require_role(p, (LEGAL, ADMIN), "extend retention")
        art = _artifact_by_id(p, request.path_params["artifact_id"])
        body = await _json_body(request)
        until_text = _time_param(_str_field(body, "until", max_len=64), "body:until")
        reason = _str_field(body, "reason")
        assert until_text is not None and reason is not None
        idx = await run_in_threadpool(functools.partial(
            store.extend_retention, art.product, art.id, parse_time(until_text),
            actor=p.actor, reason=reason))
        return _json({"artifact_id": art.id, "retain_until": until_text, "log_index": idx})

    # ---------------------------------------------------------------- evidence
    @ep("POST /v1/evidence/exports")
    async def create_export(request: Request) -> Response:
        p = svc.principal(request)
        _auth.require_role(p, (LEGAL,), "export evidence packages")
        req = _export_request(await _json_body(request))
        info = await evidence.create(p, req, clock())
        return _json(info.to_json(), 201, headers={"Location": info.location})

    @ep("GET /v1/evidence/exports/{export_id}")
    async def get_export(request: Request) -> Response:
        p = svc.principal(request)
        info, path = await run_in_threadpool(evidence.find, p,
                                             request.path_params["export_id"])
        etag = f'"{info.sha256}"'
        headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "private, no-store",
                   "Content-Disposition": f'attachment; filename="{info.package}"',
                   "Depository-Log-Index": str(info.log_index)}
        rng = None
        if request.headers.get("if-range") in (None, etag):
            rng = parse_range(request.headers.get("range"), info.size)
        start, end = rng if rng else (0, info.size - 1)
        if rng:
            headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
        else:
            headers["Repr-Digest"] = f"sha-256=:{_b64(bytes.fromhex(info.sha256))}:"
        headers["Content-Length"] = str(end - start + 1)
        if request.method == "HEAD":
            return Response(status_code=206 if rng else 200, headers=headers,
                            media_type="application/zip")
        try:
            f = await run_in_threadpool(open, path, "rb")
        except FileNotFoundError:  # an operator removed it just now
            raise Problem("not-found", f"no export {info.export_id!r}",
                          field="path:export_id") from None
        return StreamingResponse(_file_chunks(f, start, end - start + 1),
                                 status_code=206 if rng else 200, headers=headers,
                                 media_type="application/zip")

    # -------------------------------------------------------------- governance
    @ep("GET /v1/governance")
    async def governance(request: Request) -> Response:
        _auth.require_role(svc.principal(request), (ADMIN, AUDITOR), "read governance")
        return _json(await run_in_threadpool(store.governance_status))

    @ep("POST /v1/governance/{action}")
    async def governance_change(request: Request) -> Response:
        p = svc.principal(request)
        action = request.path_params["action"]
        if action not in ("lock", "unlock"):
            raise Problem("not-found", f"no governance action {action!r}",
                          field="path:action")
        _auth.require_role(p, (ADMIN,), f"{action} the store")
        body = await _json_body(request)
        reason = _str_field(body, "reason")
        assert reason is not None
        if action == "lock":
            idx = await run_in_threadpool(functools.partial(
                store.lock, reason, check="manual", actor=p.actor))
        else:
            idx = await run_in_threadpool(functools.partial(
                store.unlock, reason=reason, actor=p.actor))
        return _json({"locked": action == "lock", "log_index": idx})

    # ------------------------------------------------------------------ tokens
    @ep("GET /v1/tokens")
    async def list_tokens(request: Request) -> Response:
        _auth.require_role(svc.principal(request), (ADMIN,), "list tokens")
        toks = await run_in_threadpool(store.tokens)
        return _json({"tokens": [t.to_json() for t in toks]})

    @ep("POST /v1/tokens")
    async def create_token(request: Request) -> Response:
        p = svc.principal(request)
        _auth.require_role(p, (ADMIN,), "create tokens")
        body = await _json_body(request)
        role = body.get("role")
        if role not in _auth_roles():
            raise Problem("invalid-body", f"role must be one of {', '.join(_auth_roles())}",
                          field="body:role")
        product = _str_field(body, "product", required=False, max_len=64)
        if product is not None and product not in store.config.products:
            raise Problem("invalid-body", f"unknown product {product!r}",
                          field="body:product")
        expires_text = _time_param(_str_field(body, "expires", required=False, max_len=64),
                                   "body:expires")
        note = _str_field(body, "note", required=False, max_len=1024) or ""
        try:
            secret, tok = await run_in_threadpool(functools.partial(
                store.create_token, role=role, actor=p.actor, product=product,
                expires=parse_time(expires_text) if expires_text else None, note=note))
        except StoreError as exc:
            raise Problem("invalid-body", str(exc), field="body") from exc
        svc.auth.invalidate()
        return _json(tok.to_json() | {"secret": secret}, 201)

    @ep("POST /v1/tokens/{token_id}/revoke")
    async def revoke_token(request: Request) -> Response:
        p = svc.principal(request)
        _auth.require_role(p, (ADMIN,), "revoke tokens")
        body = await _json_body(request)
        reason = _str_field(body, "reason")
        assert reason is not None
        tid = request.path_params["token_id"]
        try:
            idx = await run_in_threadpool(functools.partial(
                store.revoke_token, tid, reason=reason, actor=p.actor))
        except NotFoundError:
            raise Problem("not-found", f"no token {tid!r}", field="path:token_id") from None
        finally:
            svc.auth.invalidate()
        return _json({"token_id": tid, "revoked": True, "log_index": idx})

    # -------------------------------------------------------------- monitoring
    @ep("GET /v1/monitoring")
    async def monitoring(request: Request) -> Response:
        _auth.require_role(svc.principal(request), (ADMIN, AUDITOR), "read monitoring")
        return _json(await run_in_threadpool(svc.compute_views))

    @ep("GET /v1/monitoring/{view}")
    async def monitoring_view(request: Request) -> Response:
        _auth.require_role(svc.principal(request), (ADMIN, AUDITOR), "read monitoring")
        view = request.path_params["view"]
        if view not in VIEWS:
            raise Problem("not-found", f"no monitoring view {view!r}; views: "
                          f"{', '.join(VIEWS)}", field="path:view")
        views = await run_in_threadpool(svc.compute_views)
        return _json({"time": views["time"], view: views[view]})

    @ep("GET /metrics")
    async def metrics(request: Request) -> Response:
        _auth.require_role(svc.principal(request), (ADMIN, AUDITOR), "read metrics")
        await run_in_threadpool(svc.compute_views)
        data = await run_in_threadpool(generate_latest, svc.metrics.registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    routes = [  # the hot paths first: the router tries them in order
        Route("/v1/products/{product}/artifacts/{name:path}", put_artifact, methods=["PUT"]),
        Route("/v1/products/{product}/artifacts/{name:path}", get_content, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/problems/{slug}", problem_doc, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/checkpoint", tiles_checkpoint, methods=["GET"]),
        Route("/tile/{path:path}", tile, methods=["GET"]),
        Route("/v1/whoami", whoami, methods=["GET"]),
        Route("/v1/products/{product}/artifacts", list_artifacts, methods=["GET"]),
        Route("/v1/products/{product}/metadata/{name:path}", get_metadata, methods=["GET"]),
        Route("/v1/artifacts/{artifact_id}", get_by_id, methods=["GET"]),
        Route("/v1/artifacts/{artifact_id}/proof", artifact_proof, methods=["GET"]),
        Route("/v1/artifacts/{artifact_id}/retention", extend_retention, methods=["POST"]),
        Route("/v1/log/checkpoint", log_checkpoint, methods=["GET"]),
        Route("/v1/log/entries", log_entries, methods=["GET"]),
        Route("/v1/log/inclusion", inclusion, methods=["GET"]),
        Route("/v1/log/consistency", consistency, methods=["GET"]),
        Route("/v1/holds", list_holds, methods=["GET"]),
        Route("/v1/holds", place_hold, methods=["POST"]),
        Route("/v1/holds/{hold_id}/release", release_hold, methods=["POST"]),
        Route("/v1/evidence/exports", create_export, methods=["POST"]),
        Route("/v1/evidence/exports/{export_id}", get_export, methods=["GET"]),
        Route("/v1/governance", governance, methods=["GET"]),
        Route("/v1/governance/{action}", governance_change, methods=["POST"]),
        Route("/v1/tokens", list_tokens, methods=["GET"]),
        Route("/v1/tokens", create_token, methods=["POST"]),
        Route("/v1/tokens/{token_id}/revoke", revoke_token, methods=["POST"]),
        Route("/v1/monitoring", monitoring, methods=["GET"]),
        Route("/v1/monitoring/{view}", monitoring_view, methods=["GET"]),
    ]

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
        svc.metrics.observe_request("(unmatched)", request.method, resp.status_code, 0.0)
        return resp

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return Problem("internal", "an unexpected failure; nothing acknowledged was lost"
                       ).response(request.scope.get("path"))

    app = Starlette(routes=routes, lifespan=svc.lifespan,
                    middleware=[Middleware(_HotPut, svc=svc)],
                    exception_handlers={HTTPException: http_exception,
                                        Exception: internal_error})
    app.router.redirect_slashes = False
    app.state.service = svc
    return app


def _auth_roles() -> tuple[str, ...]:
    from depository.store import ROLES

    return ROLES
