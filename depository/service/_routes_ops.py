"""Operations routes and views: the seed's remaining monitoring views, the gauges the
Prometheus rules read, ``POST /v1/governance/scale/validate``,
``POST /v1/alerts/{fingerprint}/ack`` and ``POST /v1/monitoring/query-latency``.

Handlers are ``async def handler(request, ctx) -> Response``; ``ctx`` is the app's shared
state (the store, clock, metrics, :class:`~depository.service.operations.Operations` as
``ctx.ops``, the latest scale and storage candidates as ``ctx.last_scale`` /
``ctx.last_storage``, client-reported latencies as ``ctx.reported``).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import Metric
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from depository.service import _auth
from depository.service._auth import ADMIN, AUDITOR
from depository.service._http import json_response
from depository.service._monitoring import (
    VALIDATE_FIELDS,
    Figures,
    does_not_scale,
    gauge,
    latency_buckets,
    never_assume,
    query_latency_view,
    read_load_results,
    scales_safely,
    validate_operation,
    what_scales,
)
from depository.service._params import json_body, str_field
from depository.service._problems import Problem
from depository.service.alerts import AlertError
from depository.service.operations import record_ack_offline
from depository.store import format_time, parse_time

Ctx = Any  # the app's shared state (see the module docstring)

OPS_VIEWS = ("query-latency", "what-scales", "scales-safely", "does-not-scale",
             "never-assume", "schedule", "escalations")


def load_results_path(ctx: Ctx) -> Path | None:
    """``serve --load-results`` when given, else ``monitoring.loadtest_results``."""
    given = getattr(getattr(ctx, "dashboard", None), "load_results", None)
    if given:
        return Path(given)
    raw = ctx.config.monitoring.get("loadtest_results")
    if not raw:
        return None
    p = Path(str(raw))
    return p if p.is_absolute() else Path(ctx.store.path) / p


# --------------------------------------------------------------------------- views
def compute_views(ctx: Ctx) -> dict[str, Any]:
    from depository.service._views import compute_views as compute

    return compute(ctx)


def ops_views(ctx: Ctx, views: dict[str, Any], fig: Figures, scale: list[dict[str, Any]],
              q: dict[str, Any], now_text: str) -> dict[str, Any]:
    """The seed's remaining views, computed from measurements (see ``_monitoring``)."""
    limits = ctx.config.scale_limits
    load = read_load_results(load_results_path(ctx))
    ws = what_scales(scale, load)
    ops = ctx.ops.snapshot(ctx.clock())
    sched = ops["schedule"]
    esc = ops["escalation"]
    total = next(s for s in scale if s["id"] == "total-storage")
    disk = views["storage"]["disk"]
    return {
        "query-latency": query_latency_view(
            latency_buckets(ctx.metrics), q, limits.get("query-response", {}).get("target"),
            reported={"source": "reported by clients with POST /v1/monitoring/query-latency "
                                "(their own measurement, not the service's)",
                      "window_seconds": 3600,
                      **ctx.reported.percentiles(time.monotonic(), 3600.0)}),
        "what-scales": ws,
        "scales-safely": scales_safely(ws, ctx.config.alert_levels[0]),
        "does-not-scale": does_not_scale(
            log_size=fig.log_size, oldest_record=fig.oldest_record_time,
            now_text=now_text, storage_bytes=fig.storage_bytes,
            storage_target=limits.get("total-storage", {}).get("target"),
            writes_peak=float(views["writes"]["peak_60s"]),
            write_limit=limits.get("write-throughput", {}).get("target"),
            queue_depth=views["writes"]["queue_depth"],
            artifact_count=fig.artifact_count, query_p99=q["p99"],
            query_limit=limits.get("query-response", {}).get("target"),
            full_verify_seconds=sched["last_full_seconds"],
            verified_size=sched["verified_size"],
            retention_years=int(limits.get("audit-trail", {}).get("retention_years") or 7)),
        "never-assume": never_assume(
            storage_percent=total["percent"],
            disk_free=disk["free"] if disk else None, load=load, now_text=now_text,
            live_p99=q["p99"],
            unverified_records=max(0, fig.log_size - sched["verified_size"]),
            last_verification=next((j["last_run"] for j in sched["jobs"]
                                    if j["name"] == "verify"), None),
            certification_days=sched["certification"]["days_left"],
            routes_without_contact=[r["scenario"] for r in esc["routes"]
                                    if not r["contacts"]],
            failed_deliveries=sum(1 for d in esc["deliveries"]
                                  if d["result"] != "delivered"),
            unacked_overdue=sum(1 for e in esc["open"] if e["overdue"])),
        "schedule": sched,
        "escalations": {"firing": ops["firing"], **esc},
        # every alert firing (governance, verification, certification... too), beside the
        # level changes of the scale and storage figures
        "alerts": {**views["alerts"], "firing": ops["firing"]},
    }


def ops_gauges(ctx: Ctx) -> Iterator[Metric]:
    """What ``alerts.rules.yaml`` evaluates: the same figures the service alerts on."""
    inp = ctx.ops.alert_inputs(ctx.clock(), scale=ctx.last_scale, storage=ctx.last_storage)
    used: dict[tuple[str, ...], float] = {
        (str(c["id"]),): float(c["percent"]) for c in ctx.last_storage
        if c["percent"] is not None}
    for s in ctx.last_scale:
        if s["id"] == "total-storage" and s["percent"] is not None:
            used[("total-storage",)] = float(s["percent"])
    yield gauge("depository_storage_used_percent",
                "Storage use, percent of quota, disk or the total-storage limit",
                labelled=used, labels=["scope"])
    yield gauge("depository_governance_locked", "1 while the store is under a "
                "governance lock", 1 if inp.locked else 0)
    yield gauge("depository_verification_failed", "1 while a scheduled check's "
                "violation stands (until a full replay passes)",
                1 if inp.verification_failed else 0)
    sched = ctx.ops.checks.jobs["verify"]
    if sched.last_run is not None:
        yield gauge("depository_verification_last_run_timestamp_seconds",
                    "When the scheduled verification last ran (Unix time)",
                    parse_time(sched.last_run).timestamp())
    yield gauge("depository_checkpoint_unsigned_records",
                "Records not yet covered by a signed checkpoint", inp.unsigned_records)
    yield gauge("depository_checkpoint_unsigned_age_seconds",
                "Age of the oldest record not covered by a signed checkpoint (0: none)",
                round(inp.unsigned_age_seconds, 3))
    if inp.certification_days_left is not None:
        yield gauge("depository_certification_days_left",
                    "Days until the certification expires (negative: expired)",
                    inp.certification_days_left)


# --------------------------------------------------------------------------- routes
async def scale_validate(request: Request, ctx: Ctx) -> Response:
    _auth.require_role(ctx.principal(request), (ADMIN, AUDITOR), "validate operations")
    body = await json_body(request)
    op = body.get("operation")
    if not isinstance(op, dict) or not op:
        raise Problem("invalid-body", "operation must be an object with at least one of "
                      f"{', '.join(VALIDATE_FIELDS)}", field="body:operation")
    for k, v in op.items():
        if k not in VALIDATE_FIELDS:
            raise Problem("invalid-body", f"unknown figure {k!r}; figures: "
                          f"{', '.join(VALIDATE_FIELDS)}", field=f"body:operation.{k}")
        if not isinstance(v, int | float) or isinstance(v, bool) or not 0 <= v <= 1e17:
            raise Problem("invalid-body", f"{k} must be a number from 0 to 1e17",
                          field=f"body:operation.{k}")
    views = await run_in_threadpool(compute_views, ctx)
    load = read_load_results(load_results_path(ctx))
    return json_response({"time": views["time"],
                  **validate_operation(op, views["scale"]["limits"], load)})


async def alert_ack(request: Request, ctx: Ctx) -> Response:
    p = ctx.principal(request)
    _auth.require_role(p, (ADMIN,), "acknowledge alerts")
    body = await json_body(request)
    reason = str_field(body, "reason")
    assert reason is not None
    fp = request.path_params["fingerprint"]
    try:
        esc = await run_in_threadpool(functools.partial(
            ctx.ops.ack, fp, actor=p.actor, reason=reason, now=ctx.clock()))
    except AlertError as exc:
        if not ctx.alerts_elsewhere or not re.fullmatch(r"[0-9a-f]{16}", fp):
            raise Problem("not-found", str(exc), field="path:fingerprint") from None
        # An HTTP worker: alerts run in the parent process, which reads this record back
        # on its next pass and stops re-sending.
        idx = await run_in_threadpool(functools.partial(
            record_ack_offline, ctx.store, fp, actor=p.actor, reason=reason))
        return json_response({"alertname": "", "fingerprint": fp, "acknowledged": True,
                      "acked_at": format_time(ctx.clock()), "acked_by": p.actor,
                      "ack_log_index": idx})
    return json_response(esc.to_json(ctx.clock()))


async def record_query_latency(request: Request, ctx: Ctx) -> Response:
    ctx.principal(request)  # any valid token: product teams report their own queries
    body = await json_body(request)
    secs = body.get("seconds")
    if not isinstance(secs, int | float) or isinstance(secs, bool) or not 0 <= secs <= 3600:
        raise Problem("invalid-body", "seconds must be a number from 0 to 3600 (the query "
                      "latency the client measured)", field="body:seconds")
    ctx.reported.add(time.monotonic(), float(secs))
    return json_response({"recorded": True, "seconds": float(secs),
                  "source": "reported by the client; shown apart from the service's own "
                            "measurements in the query-latency view"})
