"""What every route handler is given besides the request: :class:`AppContext`.

A handler is a plain ``async def handler(request, ctx) -> Response``; everything it may
use (the store, the authenticator, configuration, metrics, monitoring state, the
evidence exporter) is a field of the context, so a handler can be called, and tested,
with a context built by :meth:`AppContext.create` and no app around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from depository.service._auth import Authenticator, Principal
from depository.service._dashboard import DashboardState
from depository.service._exports import Exports, ExportSettings
from depository.service._monitoring import (
    AlertTracker,
    LatencyWindow,
    RateWindow,
    ServiceMetrics,
)
from depository.service._reads import CertificationScanner, UsageTracker
from depository.service.operations import Operations
from depository.store import Store, StoreReads, utc_now
from depository.store.config import Config

log = logging.getLogger("depository.service")

Clock = Callable[[], datetime]
MONITOR_EVERY = 5.0  # seconds between background alert evaluations


@dataclass(eq=False)
class AppContext:
    """The store and the state the routes share (one per app)."""

    store: Store
    clock: Clock
    auth: Authenticator
    exports: Exports
    reads: StoreReads
    public_tiles: bool = False
    idle_timeout: float = 30.0  # seconds without body bytes before an upload is abandoned
    max_streams: int = 32  # streaming uploads at once
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    writes: RateWindow = field(default_factory=lambda: RateWindow(60))
    queries: LatencyWindow = field(default_factory=LatencyWindow)
    in_flight: int = 0  # uploads in progress
    dashboard: DashboardState = field(default_factory=DashboardState)  # /ui
    alerts: AlertTracker = field(init=False)
    usage: UsageTracker = field(init=False)
    certs: CertificationScanner = field(init=False)
    # Lazily made on the serving loop / thread; closed by the lifespan.
    _upload_pool: ThreadPoolExecutor | None = field(default=None, init=False)
    _streams: asyncio.Semaphore | None = field(default=None, init=False)
    _openapi: bytes | None = field(default=None, init=False)
    oldest_record_time: str | None = field(default=None, init=False)
    last_views: dict[str, Any] | None = field(default=None, init=False)
    _monitor_task: asyncio.Task[None] | None = field(default=None, init=False)
    # Operations (alerts, escalation, scheduled checks): run here unless run_checks is
    # False; alerts_elsewhere: an HTTP worker, whose parent process runs them.
    run_checks: bool = True
    alerts_elsewhere: bool = False
    ops: Operations = field(init=False)
    reported: LatencyWindow = field(default_factory=lambda: LatencyWindow(maxlen=10_000))
    last_scale: list[dict[str, Any]] = field(default_factory=list, init=False)
    last_storage: list[dict[str, Any]] = field(default_factory=list, init=False)
    _checks_task: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        from depository.service import _views

        self.usage = UsageTracker(self.reads, list(self.config.products))
        self.certs = CertificationScanner(self.reads)
        self.alerts = AlertTracker(n_levels=len(self.config.alert_levels))
        self.ops = Operations(self.store)  # validates alerting/schedule/monitoring
        self.metrics.add_gauges(lambda: _views.gauges(self))

    @classmethod
    def create(cls, store: Store, *, clock: Clock = utc_now, public_tiles: bool = False,
               upload_idle_timeout: float = 30.0, max_streaming_uploads: int = 32,
               exports: ExportSettings | None = None, run_checks: bool = True,
               alerts_elsewhere: bool = False) -> AppContext:
        """The context for serving ``store`` (open; the caller closes it)."""
        return cls(store=store, clock=clock, auth=Authenticator(store, clock),
                   exports=Exports(store, exports or ExportSettings.from_env(store.path)),
                   reads=store.reads, public_tiles=public_tiles,
                   idle_timeout=upload_idle_timeout, max_streams=max_streaming_uploads,
                   run_checks=run_checks, alerts_elsewhere=alerts_elsewhere)

    @property
    def config(self) -> Config:
        return self.store.config

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
        if self.run_checks:
            self._checks_task = asyncio.create_task(self._checks_loop())
        try:
            yield
        finally:
            for task in (self._monitor_task, self._checks_task):
                if task is None:
                    continue
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            pool, self._upload_pool = self._upload_pool, None
            if pool is not None:  # waits for uploads still being written
                await run_in_threadpool(pool.shutdown, True)
            # The read connections are the store's (store.reads): it closes them.

    async def _monitor_loop(self) -> None:
        from depository.service._views import compute_views

        while True:
            await asyncio.sleep(MONITOR_EVERY)
            try:
                await run_in_threadpool(compute_views, self)
                if self.run_checks:
                    await run_in_threadpool(self.dispatch_alerts)
            except Exception:  # the next round retries; monitoring never stops serving
                log.exception("monitoring evaluation failed")

    async def _checks_loop(self) -> None:
        while True:
            await asyncio.sleep(MONITOR_EVERY)
            try:
                await run_in_threadpool(self.ops.run_checks, self.clock())
            except Exception:  # the next round retries
                log.exception("scheduled checks failed")

    def dispatch_alerts(self, now: datetime | None = None) -> list[Any]:
        """Deliver the alerts firing now (from the latest views)."""
        return self.ops.dispatch(now or self.clock(), scale=self.last_scale,
                                 storage=self.last_storage)

    def compute_views(self) -> dict[str, Any]:
        """Every monitoring view, computed now (see :mod:`._views`)."""
        from depository.service._views import compute_views

        return compute_views(self)

    # ------------------------------------------------------------------ plumbing
    def principal(self, request: Request) -> Principal:
        return self.auth.authenticate(request.headers.get("authorization"))

    def openapi(self) -> bytes:
        if self._openapi is None:
            text = resources.files("depository.service").joinpath("openapi.yaml").read_text(
                encoding="utf-8")
            self._openapi = json.dumps(yaml.safe_load(text), ensure_ascii=False).encode()
        return self._openapi

    def note_query(self, seconds: float) -> None:
        self.queries.add(time.monotonic(), seconds)

    def note_refused(self, method: str, status: int) -> None:
        self.metrics.observe_request("(unmatched)", method, status, 0.0)
