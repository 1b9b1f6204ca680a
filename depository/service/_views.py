"""The monitoring views (``/v1/monitoring``) and the gauges of ``/metrics``, computed
from an :class:`~depository.service._context.AppContext`."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import Metric

from depository.service._monitoring import Figures, gauge, scale_status, storage_alerts
from depository.service._routes_ops import OPS_VIEWS, ops_gauges, ops_views
from depository.store import NotFoundError, format_time

if TYPE_CHECKING:
    from depository.service._context import AppContext

VIEWS = ("scale", "writes", "storage", "throughput", "queries", "alerts", "thresholds",
         "certification", *OPS_VIEWS)


def queue_depth(ctx: AppContext) -> int:
    fn = getattr(ctx.store, "queue_depth", None)
    if callable(fn):
        return int(fn())
    # Until the store offers queue_depth(): its writer queue's length (read-only).
    q = getattr(ctx.store, "_queue", None)
    return len(q) if q is not None else 0


def compute_views(ctx: AppContext) -> dict[str, Any]:
    """Every monitoring view, computed now (runs in a worker thread)."""
    now_text = format_time(ctx.clock())
    mono = time.monotonic()
    usage = ctx.usage.refresh()
    log_size = ctx.store.size()
    if ctx.oldest_record_time is None and log_size:
        ctx.oldest_record_time = ctx.store.record(0).time
    live_bytes = sum(v[0] for v in usage.per_product.values())
    live_count = sum(v[1] for v in usage.per_product.values())
    q = ctx.queries.percentiles(mono, 60.0)
    fig = Figures(
        largest_artifact=usage.largest, storage_bytes=live_bytes,
        concurrent_writes=ctx.in_flight, writes_per_second=ctx.writes.rate(mono, 10),
        artifact_count=live_count, query_p99_seconds=q["p99"] or 0.0,
        log_size=log_size, oldest_record_time=ctx.oldest_record_time)
    scale = scale_status(fig, ctx.config)
    try:
        du = shutil.disk_usage(ctx.store.path)
        disk: tuple[int, int] | None = (du.used, du.total)
        disk_json: dict[str, Any] | None = {"used": du.used, "free": du.free,
                                            "total": du.total}
    except OSError:
        disk, disk_json = None, None
    quota = storage_alerts(usage.per_product, ctx.config, disk)
    ctx.alerts.evaluate([*scale, *quota], now_text)
    ctx.last_scale, ctx.last_storage = scale, quota
    try:
        cp_size, _ = ctx.store.latest_checkpoint()
    except NotFoundError:
        cp_size = 0
    products = {}
    for pid, prod in sorted(ctx.config.products.items()):
        b, n = usage.per_product.get(pid, [0, 0])
        products[pid] = {
            "bytes": b, "artifacts": n, "quota_bytes": prod.quota_bytes,
            "quota_artifacts": prod.quota_artifacts,
            "bytes_percent": round(100.0 * b / prod.quota_bytes, 3),
            "artifacts_percent": round(100.0 * n / prod.quota_artifacts, 3),
        }
    target = ctx.config.scale_limits.get("total-storage", {}).get("target")
    views: dict[str, Any] = {
        "time": now_text,
        "scale": {"limits": scale, "alert_levels": list(ctx.config.alert_levels)},
        "writes": {
            "concurrent": ctx.in_flight, "peak_60s": ctx.writes.peak(mono, 60),
            "queue_depth": queue_depth(ctx),
            "limit": ctx.config.scale_limits.get("concurrent-writers", {}).get("target"),
        },
        "storage": {
            "total_bytes": live_bytes, "total_artifacts": live_count,
            "capacity_target_bytes": target, "largest_artifact": usage.largest,
            "max_artifact_size": ctx.config.max_artifact_size,
            "products": products, "disk": disk_json,
        },
        "throughput": {
            "writes_per_second_10s": round(ctx.writes.rate(mono, 10), 3),
            "writes_per_second_60s": round(ctx.writes.rate(mono, 60), 3),
            "bytes_per_second_10s": round(ctx.writes.byte_rate(mono, 10), 1),
            "log_size": log_size, "checkpoint_size": cp_size,
            "limit": ctx.config.scale_limits.get("write-throughput", {}).get("target"),
        },
        "queries": {"window_seconds": 60, **q,
                    "limit_seconds": ctx.config.scale_limits.get(
                        "query-response", {}).get("target")},
        "alerts": ctx.alerts.snapshot(),
        "thresholds": {
            "alert_levels": list(ctx.config.alert_levels),
            "scale_limits": {k: dict(v) for k, v in ctx.config.scale_limits.items()},
            "quotas": {pid: {"bytes": p.quota_bytes, "artifacts": p.quota_artifacts}
                       for pid, p in sorted(ctx.config.products.items())},
            "max_artifact_size": ctx.config.max_artifact_size,
        },
        "certification": ctx.certs.view(ctx.clock()),
    }
    views.update(ops_views(ctx, views, fig, scale, q, now_text))
    ctx.last_views = views
    return views


def gauges(ctx: AppContext) -> Iterator[Metric]:
    views = ctx.last_views or compute_views(ctx)
    yield gauge("depository_writes_in_flight", "Uploads in progress", ctx.in_flight)
    yield gauge("depository_writer_queue_depth", "Operations waiting for the writer",
                queue_depth(ctx))
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
    yield from ops_gauges(ctx)
