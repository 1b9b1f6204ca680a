"""Small, dependency-free SVG charts for the report (rendered inline by WeasyPrint)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["checks_chart", "latency_chart", "limits_chart"]

_FONT = "font-family='DejaVu Sans, sans-serif'"
_PASS = "#2e7d32"
_FAIL = "#c62828"
_MISSING = "#9e9e9e"


def _share(limit: Mapping[str, Any]) -> float | None:
    """Measured as a share of the target (both as stated; no inversion)."""
    t, m = limit.get("target"), limit.get("measured")
    if not isinstance(t, int | float) or not isinstance(m, int | float) or isinstance(t, bool) \
            or isinstance(m, bool) or not t:
        return None
    return float(m) / float(t)


def _pct(share: float) -> str:
    p = share * 100
    return f"{p:,.0f} %" if p >= 10 else f"{p:.1f} %"


def limits_chart(limits: Sequence[Mapping[str, Any]], directions: Mapping[str, bool]) -> str:
    """Each limit's measured figure as a share of its target. A limit where lower is better
    (a response-time ceiling) is met left of the 100 % line and says "of the ceiling";
    every other limit is met at or right of it. Bars are capped at 200 %; the label
    always gives the real share."""
    row, left, width = 26, 160, 250
    height = 48 + row * len(limits)
    x100 = left + width / 2
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='600' height='{height}' "
        f"viewBox='0 0 600 {height}' {_FONT} font-size='10'>",
        f"<text x='{left}' y='14' font-size='11' font-weight='bold'>Measured as a share of "
        "the target (100 % = the target)</text>",
        f"<text x='{left}' y='27' font-size='8'>A ceiling (lower is better) is met at or "
        "below 100 %; every other target at or above it.</text>",
    ]
    for i, lim in enumerate(limits):
        y = 34 + i * row
        share = _share(lim)
        ceiling = not directions.get(str(lim.get("id")), True)
        status = lim.get("status")
        color = _PASS if status == "pass" else _MISSING if status == "missing" else _FAIL
        label = f"{lim.get('title', lim.get('id'))}" + (" (ceiling)" if ceiling else "")
        parts.append(f"<text x='{left - 6}' y='{y + 13}' text-anchor='end'>"
                     f"{escape(label)}</text>")
        if share is None:
            parts.append(f"<text x='{left + 4}' y='{y + 13}' fill='{_MISSING}'>"
                         f"{escape(str(status or 'no figure'))}</text>")
            continue
        w = max(min(share, 2.0) / 2.0 * width, 0.5)
        parts.append(f"<rect x='{left}' y='{y + 3}' width='{w:.1f}' height='14' "
                     f"fill='{color}'/>")
        method = lim.get("method") or "?"
        what = "of the ceiling" if ceiling else "of target"
        parts.append(f"<text x='{left + width + 6}' y='{y + 14}'>{_pct(share)} {what} "
                     f"({escape(str(method))})</text>")
    parts.append(f"<line x1='{x100}' y1='30' x2='{x100}' y2='{height - 8}' stroke='#333' "
                 "stroke-dasharray='3,2'/>")
    parts.append(f"<text x='{x100 + 3}' y='{height - 1}' font-size='8'>100 %</text>")
    parts.append(f"<text x='{left + width}' y='{height - 1}' font-size='8' "
                 "text-anchor='end'>200 %+</text>")
    parts.append("</svg>")
    return "".join(parts)


def _ms(v: float) -> str:
    """A latency label: never scientific notation, at most four significant digits."""
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}" if v >= 0.001 else f"{v:.6f}".rstrip("0")


def latency_chart(limits: Sequence[Mapping[str, Any]]) -> str | None:
    """Latency percentiles (ms, log scale) per limit that reported them."""
    rows = [(str(lim.get("title")), {k: v for k, v in dict(lim.get("latencies") or {}).items()
                                     if k in ("p50", "p95", "p99") and v and v > 0})
            for lim in limits]
    rows = [(t, v) for t, v in rows if v]
    if not rows:
        return None
    top = max(max(v.values()) for _, v in rows)
    lo = min(min(v.values()) for _, v in rows)
    lmin = math.floor(math.log10(lo))
    lmax = max(math.ceil(math.log10(top)), lmin + 1)
    row, left, width = 40, 190, 300
    height = 44 + row * len(rows)
    colors = {"p50": "#90caf9", "p95": "#1e88e5", "p99": "#0d47a1"}
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='560' height='{height}' "
        f"viewBox='0 0 560 {height}' {_FONT} font-size='10'>",
        f"<text x='{left}' y='14' font-size='11' font-weight='bold'>Latency percentiles "
        "(ms, log scale)</text>",
    ]
    for j, (k, c) in enumerate(colors.items()):
        parts.append(f"<rect x='{left + 230 + j * 40}' y='5' width='10' height='10' "
                     f"fill='{c}'/><text x='{left + 243 + j * 40}' y='14'>{k}</text>")

    def x(v: float) -> float:
        return left + (math.log10(v) - lmin) / (lmax - lmin) * width

    for i, (title, vals) in enumerate(rows):
        y = 26 + i * row
        parts.append(f"<text x='{left - 6}' y='{y + 18}' text-anchor='end'>"
                     f"{escape(title)}</text>")
        for j, k in enumerate(("p50", "p95", "p99")):
            if k in vals:
                w = max(1.0, x(vals[k]) - left)
                parts.append(f"<rect x='{left}' y='{y + 2 + j * 11}' width='{w:.1f}' "
                             f"height='9' fill='{colors[k]}'/>")
                parts.append(f"<text x='{left + w + 3:.1f}' y='{y + 10 + j * 11}' "
                             f"font-size='8'>{_ms(vals[k])}</text>")
    for e in range(lmin, lmax + 1):
        xe = left + (e - lmin) / (lmax - lmin) * width
        parts.append(f"<line x1='{xe:.1f}' y1='22' x2='{xe:.1f}' y2='{height - 14}' "
                     "stroke='#ccc'/>")
        parts.append(f"<text x='{xe:.1f}' y='{height - 3}' font-size='8' "
                     f"text-anchor='middle'>{_ms(10.0 ** e)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def checks_chart(counts: Mapping[str, int]) -> str:
    """One stacked bar: how many checks passed, failed, broke or did not run."""
    total = sum(counts.values()) or 1
    width = 520
    colors = {"pass": _PASS, "fail": _FAIL, "error": "#ef6c00", "missing": _MISSING}
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='560' height='46' "
             f"viewBox='0 0 560 46' {_FONT} font-size='10'>"]
    x = 20.0
    for k in ("pass", "fail", "error", "missing"):
        n = counts.get(k, 0)
        if not n:
            continue
        w = n / total * width
        parts.append(f"<rect x='{x:.1f}' y='4' width='{w:.1f}' height='18' "
                     f"fill='{colors[k]}'/>")
        parts.append(f"<text x='{x + 3:.1f}' y='36'>{n} {k}</text>")
        x += w
    parts.append("</svg>")
    return "".join(parts)
