"""Reading what a locust run left behind and turning it into figures (no locust import).

Locust's final statistics come from its ``--json-file`` output (written at exit), never
from the CSV it flushes periodically; the per-request rows from ``requests.csv`` and the
acknowledged writes from ``acks.jsonl``, both written by the users at exit.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depository.loadtests.common import percentile
from depository.loadtests.shapes import Stage


@dataclass(frozen=True)
class Row:
    t: float  # completion time, seconds since the test started
    name: str
    latency_ms: float
    status: int
    ok: bool


def read_rows(path: Path) -> list[Row]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [Row(float(r["t"]), r["name"], float(r["latency_ms"]), int(r["status"]),
                    r["ok"] == "1") for r in csv.DictReader(f)]


def read_acks(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_extra(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def read_locust_json(path: Path) -> list[dict[str, Any]]:
    """Locust's final per-endpoint statistics (``--json-file``); [] when missing."""
    if not path.is_file():
        return []
    data = json.loads(path.read_text() or "[]")
    return list(data) if isinstance(data, list) else []


def hist_percentile(hist: Mapping[str, int] | Mapping[int, int], p: float) -> float | None:
    """Percentile of a locust response-time histogram ({rounded ms: count})."""
    items = sorted((float(k), int(v)) for k, v in hist.items())
    total = sum(c for _, c in items)
    if total == 0:
        return None
    rank = math.ceil(p / 100 * total)
    seen = 0
    for value, count in items:
        seen += count
        if seen >= rank:
            return value
    return items[-1][0]


def locust_summary(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Totals over every endpoint of a locust JSON file: requests, failures, latency
    percentiles (ms, from the merged histogram) and the endpoints' own lines."""
    hist: dict[float, int] = {}
    requests = failures = 0
    max_ms = 0.0
    first = last = None
    per_name: dict[str, Any] = {}
    for e in entries:
        requests += int(e.get("num_requests", 0))
        failures += int(e.get("num_failures", 0))
        max_ms = max(max_ms, float(e.get("max_response_time") or 0))
        for k, v in (e.get("response_times") or {}).items():
            hist[float(k)] = hist.get(float(k), 0) + int(v)
        st, lt = e.get("start_time"), e.get("last_request_timestamp")
        if st:
            first = st if first is None else min(first, st)
        if lt:
            last = lt if last is None else max(last, lt)
        rt = {str(k): int(v) for k, v in (e.get("response_times") or {}).items()}
        per_name[f"{e.get('method', '')} {e.get('name', '')}".strip()] = {
            "requests": int(e.get("num_requests", 0)),
            "failures": int(e.get("num_failures", 0)),
            "p50_ms": hist_percentile(rt, 50), "p95_ms": hist_percentile(rt, 95),
            "p99_ms": hist_percentile(rt, 99), "max_ms": e.get("max_response_time"),
        }
    h = {str(k): v for k, v in hist.items()}
    span = (last - first) if first is not None and last is not None and last > first else None
    return {
        "requests": requests, "failures": failures,
        "p50_ms": hist_percentile(h, 50), "p95_ms": hist_percentile(h, 95),
        "p99_ms": hist_percentile(h, 99), "max_ms": max_ms if requests else None,
        "throughput_rps": requests / span if span else None,
        "endpoints": per_name,
    }


def latency(rows: Iterable[Row]) -> dict[str, Any]:
    """p50/p95/p99/max (ms) and counts over per-request rows."""
    rows = list(rows)
    ms = [r.latency_ms for r in rows]
    return {
        "requests": len(rows), "errors": sum(1 for r in rows if not r.ok),
        "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99), "max_ms": max(ms) if ms else None,
    }


def stage_stats(rows: Sequence[Row], stages: Sequence[Stage], *, name: str | None = None,
                settle_s: float = 1.0) -> list[dict[str, Any]]:
    """Per stage: offered and achieved rate of successful requests, latency, errors.

    Requests completing in the first ``settle_s`` seconds of a stage (users being added)
    are left out of the rate and latency of that stage, not of the error count.
    """
    out: list[dict[str, Any]] = []
    start = 0.0
    for i, st in enumerate(stages):
        window = [r for r in rows if start <= r.t < st.until and (name is None
                                                                  or r.name == name)]
        settled = [r for r in window if r.t >= start + min(settle_s, (st.until - start) / 4)]
        span = st.until - max(start, start + min(settle_s, (st.until - start) / 4))
        ok = [r for r in settled if r.ok]
        lat = latency(settled)
        out.append({
            "stage": i, "label": st.label, "from_s": start, "until_s": st.until,
            "users": st.users, "offered_rate": st.offered_rate,
            "achieved_rate": len(ok) / span if span > 0 else None,
            "errors": sum(1 for r in window if not r.ok),
            "requests": len(window),
            "p50_ms": lat["p50_ms"], "p95_ms": lat["p95_ms"], "p99_ms": lat["p99_ms"],
            "max_ms": lat["max_ms"],
        })
        start = st.until
    return out


LOADGEN_BOUND = 0.9  # share of one core at which a locust process is the bottleneck


def cpu_share(samples: Sequence[tuple[float, float]], start: float, end: float
              ) -> float | None:
    """CPU seconds per second (a share of one core) between run times ``start`` and
    ``end``, from cumulative ``(run time, CPU seconds)`` samples; None with fewer than
    two samples in the window."""
    inside = [s for s in samples if start <= s[0] <= end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float] | None:
    """Least squares y = a + b·x, with r²; None with fewer than two distinct x."""
    n = len(xs)
    if n < 2 or len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    b = sxy / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return {"a": a, "b": b, "r2": r2}


def throughput(rows: Sequence[Row]) -> float | None:
    """Successful requests per second over the span of the rows."""
    ok = [r.t for r in rows if r.ok]
    if len(ok) < 2:
        return None
    span = max(ok) - min(r.t - r.latency_ms / 1000 for r in rows)
    return len(ok) / span if span > 0 else None


def by_name(rows: Iterable[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for r in rows:
        out.setdefault(r.name, []).append(r)
    return out


# Two-sided 95 % Student t quantiles by degrees of freedom (n - 2 for a line).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def _t95(dof: int) -> float:
    return next((v for k, v in sorted(_T95.items()) if dof <= k), 1.96)


MIN_EXTRAPOLATION_POINTS = 3


def extrapolate(points: Sequence[tuple[float, float]], *, model: str, x_at: float,
                transform: str, bound: float, bound_label: str,
                x_label: str, y_label: str) -> dict[str, Any]:
    """A least-squares line through ``points`` (x, y), its 95 % prediction interval at
    ``x_at`` and whether the upper end stays under ``bound``.

    ``transform`` is applied to x before the fit ("log10", "log2" or "linear"). The
    result always states the model, the data points and the uncertainty; ``status`` is
    ``supported`` (the upper end, never below the largest observed y, is under the
    bound), ``not-supported``, or ``insufficient-data`` (fewer than three distinct points,
    or a fit that predicts a non-positive or non-finite value: such a line says nothing).
    The modelled quantity is a cost that cannot fall as the store grows: a negative fitted
    slope is constrained to 0 and said so in ``fit``."""
    fx = {"log10": math.log10, "log2": math.log2, "linear": float}[transform]
    pts = [(float(x), float(y)) for x, y in points
           if x is not None and y is not None and x > 0 and math.isfinite(float(y))]
    out: dict[str, Any] = {
        "label": "EXTRAPOLATED beyond the largest measurement, not measured",
        "model": model, "x": x_label, "y": y_label, "transform": transform,
        "points": [{"x": x, "y": y} for x, y in pts], "at": x_at,
        "bound": bound, "bound_label": bound_label,
        "largest_measured_x": max((x for x, _ in pts), default=None),
        "fit": None, "uncertainty": None, "predicted": None, "status": "insufficient-data",
        "reason": "",
    }
    xs = [fx(x) for x, _ in pts]
    ys = [y for _, y in pts]
    n = len(pts)
    if n < MIN_EXTRAPOLATION_POINTS or len(set(xs)) < MIN_EXTRAPOLATION_POINTS:
        out["reason"] = (f"insufficient data: {len(set(xs))} distinct data point(s); an "
                         f"extrapolation needs at least {MIN_EXTRAPOLATION_POINTS} (with two "
                         "any line fits exactly and its uncertainty is unknown)")
        return out
    fit = linear_fit(xs, ys)
    assert fit is not None
    mx = sum(xs) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    x0 = fx(x_at)
    if fit["b"] < 0:
        # A cost cannot fall as the store grows: a falling fit is noise around a flat line,
        # so the slope is constrained to 0 (the mean, with n - 1 degrees of freedom).
        my = sum(ys) / n
        s = math.sqrt(sum((y - my) ** 2 for y in ys) / (n - 1))
        pred = my
        half = _t95(n - 1) * s * math.sqrt(1 + 1 / n)
        out["fit"] = {"a": my, "b": 0.0, "r2": 0.0, "n": n, "residual_sd": s,
                      "slope_se": None, "unconstrained_b": fit["b"],
                      "constrained": "the fitted slope was negative; a cost cannot fall as "
                                     "the store grows, so the slope is constrained to 0"}
    else:
        ss_res = sum((y - (fit["a"] + fit["b"] * x)) ** 2
                     for x, y in zip(xs, ys, strict=True))
        s = math.sqrt(ss_res / (n - 2))
        pred = fit["a"] + fit["b"] * x0
        half = _t95(n - 2) * s * math.sqrt(1 + 1 / n + (x0 - mx) ** 2 / sxx)
        out["fit"] = {**fit, "n": n, "residual_sd": s,
                      "slope_se": s / math.sqrt(sxx) if sxx > 0 else None}
    out["predicted"] = pred
    high = max(pred + half, max(ys))
    out["uncertainty"] = {"confidence": 0.95, "method": "Student t prediction interval",
                          "low": pred - half, "high": pred + half,
                          "judged": high, "judged_note": "upper end, never below the "
                          "largest observed value"}
    if not (math.isfinite(pred) and math.isfinite(half)) or pred <= 0:
        out["reason"] = (f"insufficient data: the fit predicts {pred:.3g} {y_label} at "
                         f"{x_at:.3g} {x_label}, which is not a usable value")
        return out
    if high < bound:
        out["status"] = "supported"
        out["reason"] = (f"{y_label} at {x_at:.3g} {x_label}: {pred:.3g} (95 % up to "
                         f"{high:.3g}) < {bound_label} {bound:g}")
    else:
        out["status"] = "not-supported"
        out["reason"] = (f"{y_label} at {x_at:.3g} {x_label}: {pred:.3g} (95 % up to "
                         f"{high:.3g}) does not stay under {bound_label} {bound:g}")
    return out
