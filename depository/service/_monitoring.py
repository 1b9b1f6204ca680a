"""Monitoring: scale status, alerts and Prometheus metrics.

The computations (:func:`scale_status`, :func:`alert_level`, :func:`storage_alerts`...)
are pure functions of measured figures and the store configuration, so they are tested
without a server. The trackers (:class:`RateWindow`, :class:`LatencyWindow`,
:class:`AlertTracker`) take the current time as an argument for the same reason.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from depository.store import parse_time
from depository.store.config import DEFAULT_SCALE_LIMITS, Config
from depository.tlog import safejson
from depository.verifier.files import InputFileError, read_file

SCALE_LIMIT_IDS = tuple(DEFAULT_SCALE_LIMITS)  # the seed's seven, in its order

ESCALATION = {
    "ok": "none",
    "warning": "notify the operators' channel; review the growth trend this week",
    "high": "page the on-call operator; plan capacity (quota, disk, sharding) within days",
    "critical": "escalate now to the engineering lead and the compliance officer; writes "
                "may soon be refused",
}


def alert_level(percent: float | None, levels: Sequence[int]) -> int:
    """How many configured levels ``percent`` has reached (0 = none)."""
    if percent is None:
        return 0
    return sum(1 for lv in levels if percent >= lv)


def level_name(level: int, n_levels: int) -> str:
    """``ok`` for 0; the top level is ``critical``, the one below ``high``, others
    ``warning``."""
    if level <= 0:
        return "ok"
    if level >= n_levels:
        return "critical"
    if level == n_levels - 1:
        return "high"
    return "warning"


def percent_of(value: float, target: float | None) -> float | None:
    if target is None or target <= 0:
        return None
    return round(100.0 * value / target, 3)


@dataclass(frozen=True)
class Figures:
    """What the scale limits are measured against, at one instant."""

    largest_artifact: int
    storage_bytes: int
    concurrent_writes: int
    writes_per_second: float
    artifact_count: int
    query_p99_seconds: float
    log_size: int
    oldest_record_time: str | None = None


def scale_status(fig: Figures, config: Config) -> list[dict[str, Any]]:
    """The seven scale limits: threshold, current value, percentage, alert level and
    escalation, computed from ``fig`` against the configured targets and alert levels."""
    current: dict[str, float] = {
        "artifact-size": fig.largest_artifact,
        "total-storage": fig.storage_bytes,
        "concurrent-writers": fig.concurrent_writes,
        "write-throughput": round(fig.writes_per_second, 3),
        "artifact-count": fig.artifact_count,
        "query-response": round(fig.query_p99_seconds, 6),
        "audit-trail": fig.log_size,
    }
    measured = {
        "artifact-size": "largest artifact stored",
        "total-storage": "live bytes over all products",
        "concurrent-writers": "uploads in progress now",
        "write-throughput": "acknowledged writes per second over the last 10 s",
        "artifact-count": "live artifacts over all products",
        "query-response": "p99 of read requests over the last 60 s",
        "audit-trail": "records in the audit log",
    }
    levels = config.alert_levels
    out = []
    for lid in SCALE_LIMIT_IDS:
        spec = dict(config.scale_limits.get(lid, DEFAULT_SCALE_LIMITS[lid]))
        target = spec.get("target")
        pct = percent_of(current[lid], target if isinstance(target, int | float) else None)
        lvl = alert_level(pct, levels)
        name = level_name(lvl, len(levels))
        entry: dict[str, Any] = {
            "id": lid, "threshold": target, "unit": spec.get("unit"),
            "current": current[lid], "measured": measured[lid], "percent": pct,
            "alert_level": name, "level": lvl, "escalation": ESCALATION[name],
        }
        if lid == "audit-trail":
            entry["retention_years"] = spec.get("retention_years")
            entry["oldest_record"] = fig.oldest_record_time
            if target is None:
                entry["note"] = ("no size threshold: the log only grows; records are kept "
                                 f"at least {spec.get('retention_years')} years")
        out.append(entry)
    return out


def storage_alerts(usage: Mapping[str, Sequence[int]], config: Config,
                   disk: tuple[int, int] | None) -> list[dict[str, Any]]:
    """Per-product quota use (bytes and count) and disk use, as alert candidates.

    ``usage`` maps product -> (bytes, artifacts); ``disk`` is (used, total) bytes.
    """
    levels = config.alert_levels
    out = []
    for pid, prod in sorted(config.products.items()):
        used = usage.get(pid, (0, 0))
        for kind, value, limit in (("bytes", used[0], prod.quota_bytes),
                                   ("artifacts", used[1], prod.quota_artifacts)):
            pct = percent_of(value, limit)
            lvl = alert_level(pct, levels)
            out.append({"id": f"quota-{kind}:{pid}", "product": pid, "current": value,
                        "threshold": limit, "unit": kind, "percent": pct, "level": lvl,
                        "alert_level": level_name(lvl, len(levels))})
    if disk is not None:
        pct = percent_of(disk[0], disk[1])
        lvl = alert_level(pct, levels)
        out.append({"id": "disk", "product": None, "current": disk[0], "threshold": disk[1],
                    "unit": "bytes", "percent": pct, "level": lvl,
                    "alert_level": level_name(lvl, len(levels))})
    return out


@dataclass
class AlertTracker:
    """Active alerts and the history of level changes (since the server started)."""

    n_levels: int
    history_max: int = 1000
    active: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: deque[dict[str, Any]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def evaluate(self, candidates: Iterable[Mapping[str, Any]], now: str) -> None:
        """Record every change of level among ``candidates`` (dicts with ``id``,
        ``level``, ``percent``, ``current``, ``threshold``)."""
        with self._lock:
            for c in candidates:
                aid = str(c["id"])
                lvl = int(c["level"])
                prev = self.active.get(aid)
                prev_lvl = int(prev["level"]) if prev else 0
                if lvl == prev_lvl:
                    if prev is not None:
                        prev.update(current=c.get("current"), percent=c.get("percent"))
                    continue
                self.history.append({
                    "id": aid, "time": now, "from": level_name(prev_lvl, self.n_levels),
                    "to": level_name(lvl, self.n_levels), "percent": c.get("percent"),
                    "current": c.get("current"), "threshold": c.get("threshold"),
                })
                while len(self.history) > self.history_max:
                    self.history.popleft()
                if lvl == 0:
                    self.active.pop(aid, None)
                else:
                    self.active[aid] = {
                        "id": aid, "level": lvl,
                        "alert_level": level_name(lvl, self.n_levels),
                        "since": now if prev is None else prev["since"],
                        "percent": c.get("percent"), "current": c.get("current"),
                        "threshold": c.get("threshold"),
                        "escalation": ESCALATION[level_name(lvl, self.n_levels)],
                    }

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"active": sorted((dict(a) for a in self.active.values()),
                                     key=lambda a: (-int(a["level"]), str(a["id"]))),
                    "history": list(self.history)}


class RateWindow:
    """Per-second counts over the last ``span`` seconds (a ring of buckets)."""

    def __init__(self, span: int = 60) -> None:
        self.span = span
        self._sec = [-1] * span
        self._count = [0] * span
        self._bytes = [0] * span
        self._peak = [0] * span

    def add(self, now: float, count: int = 1, nbytes: int = 0) -> None:
        s = int(now)
        i = s % self.span
        if self._sec[i] != s:
            self._sec[i], self._count[i], self._bytes[i], self._peak[i] = s, 0, 0, 0
        self._count[i] += count
        self._bytes[i] += nbytes

    def note_level(self, now: float, level: int) -> None:
        """Record an instantaneous level (e.g. concurrent writes) for the peak."""
        s = int(now)
        i = s % self.span
        if self._sec[i] != s:
            self._sec[i], self._count[i], self._bytes[i], self._peak[i] = s, 0, 0, 0
        if level > self._peak[i]:
            self._peak[i] = level

    def _live(self, now: float, window: int) -> Iterator[int]:
        s = int(now)
        for i in range(self.span):
            if s - window < self._sec[i] <= s:
                yield i

    def rate(self, now: float, window: int = 10) -> float:
        """Events per second over the last ``window`` whole seconds (plus the current)."""
        window = min(window, self.span)
        return sum(self._count[i] for i in self._live(now, window)) / window

    def byte_rate(self, now: float, window: int = 10) -> float:
        window = min(window, self.span)
        return sum(self._bytes[i] for i in self._live(now, window)) / window

    def peak(self, now: float, window: int = 60) -> int:
        return max((self._peak[i] for i in self._live(now, min(window, self.span))),
                   default=0)


class LatencyWindow:
    """Recent durations, for percentiles over a time window."""

    def __init__(self, maxlen: int = 20_000) -> None:
        self._d: deque[tuple[float, float]] = deque(maxlen=maxlen)

    def add(self, now: float, seconds: float) -> None:
        self._d.append((now, seconds))

    def percentiles(self, now: float, window: float = 60.0) -> dict[str, Any]:
        vals = sorted(d for t, d in list(self._d) if t > now - window)
        if not vals:
            return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}

        def pick(q: float) -> float:
            return round(vals[min(len(vals) - 1, int(q * len(vals)))], 6)

        return {"count": len(vals), "p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99),
                "max": round(vals[-1], 6)}


_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class ServiceMetrics:
    """Request and write metrics on a registry of the app's own (not the global one).

    Kept as plain numbers updated on the event loop (a dict update and a bisect per
    observation, where prometheus_client's instruments take a lock per counter) and
    turned into the same Prometheus families, ``_created`` samples included, at scrape
    time. Scrapes may run on another thread: they read copies taken without yielding
    the GIL.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._bounds = _LATENCY_BUCKETS
        # (route, method, status) -> count; route -> [per-bucket counts..., +Inf], sum
        self._requests: dict[tuple[str, str, str], int] = {}
        self._latency: dict[str, list[int]] = {}
        self._latency_sum: dict[str, float] = {}
        self._writes: dict[tuple[str, str], int] = {}
        self._write_bytes: dict[str, int] = {}
        self._created: dict[tuple[str, ...], float] = {}
        self.registry.register(_FnCollector(self._families))

    def _first(self, key: tuple[str, ...]) -> None:
        self._created.setdefault(key, time.time())

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, str(status))
        n = self._requests.get(key)
        if n is None:
            self._first(("requests", *key))
            n = 0
        self._requests[key] = n + 1
        buckets = self._latency.get(route)
        if buckets is None:
            self._first(("latency", route))
            buckets = self._latency[route] = [0] * (len(self._bounds) + 1)
            self._latency_sum[route] = 0.0
        buckets[bisect.bisect_left(self._bounds, seconds)] += 1  # le: bound >= seconds
        self._latency_sum[route] += seconds

    def observe_write(self, product: str, result: str, nbytes: int) -> None:
        """Upload latency is the upload route's request histogram."""
        key = (product, result)
        n = self._writes.get(key)
        if n is None:
            self._first(("writes", *key))
            n = 0
        self._writes[key] = n + 1
        if result == "created":
            b = self._write_bytes.get(product)
            if b is None:
                self._first(("bytes", product))
                b = 0
            self._write_bytes[product] = b + nbytes

    def _families(self) -> Iterator[Metric]:
        created = dict(self._created)
        requests = CounterMetricFamily("depository_http_requests", "HTTP requests answered",
                                       labels=["route", "method", "status"])
        for key, n in dict(self._requests).items():
            requests.add_metric(list(key), n, created=created.get(("requests", *key)))
        yield requests
        name = "depository_http_request_duration_seconds"
        latency = HistogramMetricFamily(name, "HTTP request latency by route",
                                        labels=["route"])
        sums = dict(self._latency_sum)
        for route, counts in dict(self._latency).items():
            counts = list(counts)
            cumulative, acc = [], 0
            bounds = (*map(floatToGoString, self._bounds), "+Inf")
            for bound, n in zip(bounds, counts, strict=True):
                acc += n
                cumulative.append((bound, float(acc)))
            latency.add_metric([route], cumulative, sums.get(route, 0.0))
            when = created.get(("latency", route))
            if when is not None:
                latency.samples.append(Sample(f"{name}_created", {"route": route}, when))
        yield latency
        writes = CounterMetricFamily("depository_writes", "Artifact uploads by result",
                                     labels=["product", "result"])
        for wkey, n in dict(self._writes).items():
            writes.add_metric(list(wkey), n, created=created.get(("writes", *wkey)))
        yield writes
        wbytes = CounterMetricFamily("depository_write_bytes",
                                     "Bytes of newly stored artifacts", labels=["product"])
        for product, n in dict(self._write_bytes).items():
            wbytes.add_metric([product], n, created=created.get(("bytes", product)))
        yield wbytes

    def add_gauges(self, fn: Callable[[], Iterable[Metric]]) -> None:
        self.registry.register(_FnCollector(fn))


class _FnCollector(Collector):
    def __init__(self, fn: Callable[[], Iterable[Metric]]) -> None:
        self._fn = fn

    def collect(self) -> Iterable[Metric]:
        return self._fn()

    def describe(self) -> Iterable[Metric]:
        return []  # computed at scrape time; nothing to check at registration


def gauge(name: str, doc: str, value: float | None = None,
          labelled: Mapping[tuple[str, ...], float] | None = None,
          labels: Sequence[str] = ()) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, value=value, labels=list(labels) if labelled is not None
                          else None)
    for lv, v in (labelled or {}).items():
        g.add_metric(list(lv), v)
    return g


# ------------------------------------------------------------------ scale views
# The views below answer the seed's remaining monitoring questions from measurements:
# the service's own latency histograms, the latest load-test results
# (``monitoring.loadtest_results``), store sizes and the scheduled checks. Where a figure
# comes from a document (the seed's targets) rather than a measurement, ``source`` says so.

SEED = "document: the seed's certification content (a target, not a measurement)"


def latency_buckets(metrics: ServiceMetrics) -> dict[str, tuple[list[int], float]]:
    """Per route: the request-latency histogram's per-bucket counts (+Inf last) and sum."""
    sums = dict(metrics._latency_sum)
    return {r: (list(c), sums.get(r, 0.0)) for r, c in dict(metrics._latency).items()}


def histogram_quantile(q: float, bounds: Sequence[float], counts: Sequence[int]
                       ) -> float | None:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket that
    holds rank ``q``; None without observations; the largest finite bound when the rank
    falls in +Inf."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    acc = 0
    for i, n in enumerate(counts):
        if acc + n >= rank and n > 0:
            if i >= len(bounds):
                return float(bounds[-1])
            lo = 0.0 if i == 0 else float(bounds[i - 1])
            return lo + (float(bounds[i]) - lo) * (rank - acc) / n
        acc += n
    return float(bounds[-1])


def query_latency_view(buckets: Mapping[str, tuple[list[int], float]],
                       window: Mapping[str, Any], limit: float | None,
                       reported: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Record-query latency: per read route, percentiles estimated from the service's own
    histogram (since start), and the 60 s window of exact durations."""
    routes = []
    for route, (counts, total) in sorted(buckets.items()):
        if not route.startswith("GET ") or route in ("GET /metrics", "GET /health"):
            continue
        n = sum(counts)
        p = {f"p{int(q * 100)}": (None if (v := histogram_quantile(q, _LATENCY_BUCKETS,
                                                                   counts)) is None
                                  else round(v, 6))
             for q in (0.5, 0.95, 0.99)}
        routes.append({"route": route, "count": n,
                       "mean": round(total / n, 6) if n else None, **p,
                       "over_limit": bool(limit is not None and p["p99"] is not None
                                          and p["p99"] >= limit)})
    return {"limit_seconds": limit, "limit_source": SEED,
            "window_60s": dict(window), "routes": routes,
            "method": "per route since the server started, estimated from the histogram "
                      "depository_http_request_duration_seconds (as Prometheus' "
                      "histogram_quantile); window_60s holds exact durations of the last 60 s",
            "reported": dict(reported or {})}


RESULTS_MAX = 16 * 1024 * 1024
"""Largest load-test ``results.json`` the views read (a real one is a few hundred KiB)."""


def load_results_file(path: Path) -> dict[str, Any]:
    """The load-test ``results.json`` at ``path`` (a file or a directory holding one),
    read bounded (a regular file of at most :data:`RESULTS_MAX` bytes, JSON depth
    limited); only the keys the views use are required. Raises ``ValueError`` saying
    why it cannot be used."""
    p = path / "results.json" if path.is_dir() else path
    try:
        raw = read_file(str(p), limit=RESULTS_MAX, what="load-test results file")
    except InputFileError as exc:
        raise ValueError(str(exc)) from None
    try:
        doc = safejson.loads(raw, what="the file")
    except ValueError as exc:  # bad JSON, bad UTF-8, over the depth limit
        raise ValueError(f"{p}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("limits"), list):
        raise ValueError(f"{p}: not a load-test results.json (no 'limits' list)")
    doc["_path"] = str(p)
    return doc


def read_load_results(path: Any) -> dict[str, Any] | None:
    """:func:`load_results_file` for the views: None when there is none to use."""
    if not path:
        return None
    try:
        return load_results_file(Path(str(path)))
    except ValueError:
        return None


def _load_by_id(load: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    if not load:
        return {}
    return {str(x.get("id")): x for x in load.get("limits", []) if isinstance(x, dict)}


def what_scales(scale: Sequence[Mapping[str, Any]], load: Mapping[str, Any] | None
                ) -> dict[str, Any]:
    """Each of the seven limits: the target (a document), what the latest load test
    measured (and how: measured, scaled-down or extrapolated), and the live figure."""
    by_id = _load_by_id(load)
    out = []
    for s in scale:
        lr = by_id.get(str(s["id"]))
        measured = None if lr is None else lr.get("measured")
        entry = {
            "id": s["id"], "unit": s.get("unit"), "target": s.get("threshold"),
            "target_source": SEED, "current": s.get("current"),
            "current_percent": s.get("percent"), "alert_level": s.get("alert_level"),
            "load_test": None if lr is None else {
                "measured": measured, "pass": bool(lr.get("pass")),
                "figure": lr.get("figure"), "profile": lr.get("profile"),
                "profile_target": lr.get("profile_target"), "status": lr.get("status")},
        }
        if lr is None:
            entry["verdict"] = "unmeasured"
            entry["why"] = "no load-test result for this limit (monitoring.loadtest_results)"
        elif not lr.get("pass"):
            entry["verdict"] = "fails"
            entry["why"] = str(lr.get("reason") or "the load test did not pass this limit")
        elif lr.get("profile") != "certify" or lr.get("figure") != "measured":
            entry["verdict"] = "indicative"
            entry["why"] = (f"passed, but the figure is {lr.get('figure')} "
                            f"(profile {lr.get('profile')}): not a measurement at the target")
        else:
            entry["verdict"] = "scales"
            entry["why"] = "measured at the configured target and passed"
        out.append(entry)
    return {"limits": out, "load_results": None if not load else {
        "path": load.get("_path"), "ended": load.get("ended"), "profile": load.get("profile"),
        "pass": load.get("pass")}}


def scales_safely(ws: Mapping[str, Any], first_level: int) -> dict[str, Any]:
    """Limits that scale (measured at target, passed) and are used below the first alert
    level now: the rest, with the reason each is not safe."""
    safe: list[dict[str, Any]] = []
    not_safe: list[dict[str, Any]] = []
    for e in ws["limits"]:
        pct = e.get("current_percent")
        ok = e["verdict"] == "scales" and (pct is None or pct < first_level)
        why = e["why"] if e["verdict"] != "scales" else (
            f"in use at {pct}% (first alert level {first_level}%)")
        (safe if ok else not_safe).append({"id": e["id"], "why": why if not ok else
                                           f"{e['why']}; in use at {pct}%"})
    return {"safe": safe, "not_safe": not_safe, "first_alert_level": first_level}


def does_not_scale(*, log_size: int, oldest_record: str | None, now_text: str,
                   storage_bytes: int, storage_target: float | None, writes_peak: float,
                   write_limit: float | None, queue_depth: int, artifact_count: int,
                   query_p99: float | None, query_limit: float | None,
                   full_verify_seconds: float | None, verified_size: int,
                   retention_years: int) -> dict[str, Any]:
    """The five things that do not scale and must be watched, each with its figure now
    and, where a growth rate is measurable, where it will be at the end of retention."""

    days = None
    if oldest_record:
        days = max((parse_time(now_text) - parse_time(oldest_record)).total_seconds()
                   / 86400, 1 / 86400)
    horizon = retention_years * 365.25

    def per_day(v: float) -> float | None:
        return None if days is None else round(v / days, 3)

    rec_rate, byte_rate = per_day(log_size), per_day(storage_bytes)
    items = [
        {"id": "audit-trail-growth", "title": "The audit trail only grows",
         "current": log_size, "unit": "records", "rate_per_day": rec_rate,
         "projected_at_retention": None if rec_rate is None else round(rec_rate * horizon),
         "why": "records are never deleted; every proof and replay reads more of them"},
        {"id": "storage-growth", "title": "Total storage against the tier",
         "current": storage_bytes, "unit": "bytes", "rate_per_day": byte_rate,
         "target": storage_target,
         "days_to_target": (None if not byte_rate or not storage_target
                            else round(max(0.0, storage_target - storage_bytes) / byte_rate,
                                       1)),
         "why": "bytes are kept for the whole retention; the target is a tier figure"},
        {"id": "single-writer", "title": "One writer serialises every write",
         "current": writes_peak, "unit": "writes/s (peak of 60 s)", "limit": write_limit,
         "queue_depth": queue_depth,
         "why": "one process appends to the log; more writers queue rather than add "
                "throughput"},
        {"id": "query-latency-vs-count", "title": "Query latency grows with artifact count",
         "current": query_p99, "unit": "seconds (p99, 60 s)", "limit": query_limit,
         "artifacts": artifact_count,
         "why": "listings and metadata queries scan more rows as products grow"},
        {"id": "full-verification-time", "title": "A full offline replay grows with the log",
         "current": full_verify_seconds, "unit": "seconds (last full replay)",
         "records": verified_size,
         "projected_at_retention_seconds": (
             None if not full_verify_seconds or not verified_size or rec_rate is None
             else round(full_verify_seconds / verified_size * rec_rate * horizon, 1)),
         "why": "an auditor's replay reads every record and hashes every node"},
    ]
    return {"items": items, "observed_days": None if days is None else round(days, 3),
            "retention_years": retention_years,
            "method": "rates are the figure divided by the time since the first record; "
                      "projections multiply them by the retention period (linear, labelled "
                      "EXTRAPOLATED)"}


def never_assume(*, storage_percent: float | None, disk_free: int | None,
                 load: Mapping[str, Any] | None, now_text: str, live_p99: float | None,
                 unverified_records: int, last_verification: str | None,
                 certification_days: int | None, routes_without_contact: Sequence[str],
                 failed_deliveries: int, unacked_overdue: int) -> dict[str, Any]:
    """The five assumptions never to make, each checked against the store now."""

    load_age = None
    if load and load.get("ended"):
        load_age = round((parse_time(now_text) - parse_time(str(load["ended"])))
                         .total_seconds() / 86400, 1)
    load_p99 = None
    for lr in (load or {}).get("limits", []):
        if isinstance(lr, dict) and lr.get("id") == "query-response":
            load_p99 = (lr.get("latency_ms") or {}).get("p99")
    items: list[dict[str, Any]] = [
        {"id": "storage-is-unlimited", "assumption": "storage is unlimited",
         "evidence": {"storage_percent": storage_percent, "disk_free_bytes": disk_free},
         "status": "watch" if (storage_percent or 0) >= 70 else "ok"},
        {"id": "load-test-holds-in-production",
         "assumption": "the load-test figures hold in production",
         "evidence": {"load_results_age_days": load_age,
                      "load_test_query_p99_ms": load_p99,
                      "live_query_p99_ms": None if live_p99 is None else round(live_p99 * 1000,
                                                                             3)},
         "status": "unknown" if load is None else ("stale" if (load_age or 0) > 183 else "ok")},
        {"id": "checkpoint-means-verified", "assumption": "a signed checkpoint means verified",
         "evidence": {"records_not_yet_verified": unverified_records,
                      "last_verification": last_verification},
         "status": "ok" if last_verification and unverified_records == 0 else "watch"},
        {"id": "certification-stays-valid", "assumption": "a certification stays valid",
         "evidence": {"days_left": certification_days},
         "status": ("unknown" if certification_days is None else "expired"
                    if certification_days < 0 else "watch" if certification_days <= 30
                    else "ok")},
        {"id": "alerts-reach-someone", "assumption": "alerts reach someone",
         "evidence": {"routes_without_contact": list(routes_without_contact),
                      "failed_deliveries": failed_deliveries,
                      "overdue_unacknowledged": unacked_overdue},
         "status": "ok" if not routes_without_contact and not failed_deliveries
                   and not unacked_overdue else "watch"},
    ]
    return {"items": items}


VALIDATE_FIELDS = {
    "artifact_size": "artifact-size", "storage_bytes": "total-storage",
    "writers": "concurrent-writers", "writes_per_second": "write-throughput",
    "artifacts": "artifact-count", "query_seconds": "query-response",
}


def validate_operation(op: Mapping[str, Any], scale: Sequence[Mapping[str, Any]],
                       load: Mapping[str, Any] | None) -> dict[str, Any]:
    """Would ``op`` stay within the limits? Additive figures (storage, artifacts, writers,
    writes/s) are added to the current use; the rest are compared alone. Limits are never
    relaxed by a request (the seed's refusal 4)."""
    by_id = {str(s["id"]): s for s in scale}
    by_load = _load_by_id(load)
    checks = []
    for fld, lid in VALIDATE_FIELDS.items():
        if fld not in op:
            continue
        s = by_id[lid]
        want = float(op[fld])
        additive = lid in ("total-storage", "artifact-count", "concurrent-writers",
                           "write-throughput")
        current = float(s.get("current") or 0)
        total = want + current if additive else want
        target = s.get("threshold")
        lr = by_load.get(lid)
        ok = target is None or (total < target if lid == "query-response"
                                else total <= target)
        checks.append({
            "limit": lid, "requested": want, "current": current if additive else None,
            "after": total, "target": target, "target_source": SEED, "ok": ok,
            "percent_after": percent_of(total, target),
            "load_tested": None if lr is None else {"measured": lr.get("measured"),
                                                    "pass": lr.get("pass"),
                                                    "figure": lr.get("figure")},
            "detail": (f"{total:g} {s.get('unit')} is within {target}" if ok else
                       f"{total:g} {s.get('unit')} exceeds the limit {target}: refused (the "
                       "depository does not relax its limits)")})
    return {"allowed": all(c["ok"] for c in checks), "checks": checks}
