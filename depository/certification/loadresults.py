"""The seven scale limits, from a load-test ``results.json``.

The contract read here: a top-level ``limits`` list, each entry with ``id`` (one of the
seven limit ids), ``target``, ``measured``, ``unit``, ``pass`` and how the figure was
obtained — ``measured``, ``scaled-down`` or ``extrapolated`` — in ``method`` (or in
``figure``, with ``method`` then describing the procedure); optional ``status``
(``not-measured`` means no figure), latencies (``latency_ms`` or ``latencies``), charts
(``chart`` or ``charts``: SVG paths relative to the results directory), ``reason``,
``checks``; and a top-level ``environment`` object.

Nothing is taken on trust: the pass/fail is recomputed from target and measured value
where the direction is known, a limit absent from the results is "missing", and a figure
the results call passing but that misses the configured target is a failure.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from depository.certification.content import LIMITS

__all__ = ["FIGURE_KINDS", "ResultsError", "read_results", "scale_limits"]

FIGURE_KINDS = ("measured", "scaled-down", "extrapolated")
RESULTS_NAME = "results.json"
_MAX_CHART_BYTES = 2_000_000


class ResultsError(ValueError):
    """The load results cannot be read or do not follow the contract."""


def read_results(path: Path) -> tuple[dict[str, Any], bytes, Path]:
    """(parsed document, exact bytes, directory) for a results file or its directory."""
    file = path / RESULTS_NAME if path.is_dir() else path
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ResultsError(f"cannot read load results {file}: {exc.strerror}") from exc
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{file}: not JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("limits"), list):
        raise ResultsError(f"{file}: expected an object with a 'limits' list")
    return doc, raw, file.parent


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(float(value)) else None


def _figure_kind(entry: Mapping[str, Any]) -> str | None:
    for key in ("method", "figure"):
        value = entry.get(key)
        if isinstance(value, str) and value in FIGURE_KINDS:
            return value
    return None


def _latencies(entry: Mapping[str, Any]) -> dict[str, float]:
    raw = entry.get("latencies", entry.get("latency_ms"))
    out: dict[str, float] = {}
    if isinstance(raw, Mapping):
        for k, v in raw.items():
            n = _num(v)
            if n is not None:
                out[str(k)] = n
    elif isinstance(raw, list):
        values = sorted(x for x in (_num(v) for v in raw) if x is not None)
        for p in (50, 95, 99):
            if values:
                out[f"p{p}"] = values[min(len(values) - 1, math.ceil(p / 100 * len(values)) - 1)]
    return out


def _charts(entry: Mapping[str, Any], base: Path) -> list[dict[str, Any]]:
    names: list[str] = []
    for key in ("charts", "chart"):
        value = entry.get(key)
        if isinstance(value, str):
            names.append(value)
        elif isinstance(value, list):
            names += [v for v in value if isinstance(v, str)]
    out = []
    for name in names:
        p = (base / name).resolve()
        if base.resolve() not in p.parents or p.suffix.lower() != ".svg" or not p.is_file():
            out.append({"file": name, "embedded": False})
            continue
        data = p.read_bytes()
        if len(data) > _MAX_CHART_BYTES:
            out.append({"file": name, "embedded": False})
            continue
        out.append({"file": name, "embedded": True,
                    "sha256": hashlib.sha256(data).hexdigest(), "path": str(p)})
    return out


def _judge(lid: str, higher_is_better: bool, target: float | None, measured: float | None,
           claimed: bool | None) -> tuple[bool, str]:
    if measured is None and claimed is None:
        return False, "no figure"
    if target is not None and measured is not None:
        meets = measured >= target if higher_is_better else measured <= target
        if claimed is not None and meets != claimed:
            return False, (f"the results say {'pass' if claimed else 'fail'} but "
                           f"{measured:g} {'>=' if higher_is_better else '<='} {target:g} "
                           f"is {meets}; treated as a failure")
        return meets, ""
    return bool(claimed), "" if claimed is not None else "no pass/fail in the results"


def scale_limits(doc: Mapping[str, Any], raw: bytes, base: Path,
                 configured: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The report's scale-limit section: one entry per limit, in the certification order."""
    entries: dict[str, Mapping[str, Any]] = {}
    unknown = []
    for e in doc.get("limits", []):
        if isinstance(e, Mapping) and isinstance(e.get("id"), str):
            if any(lim.id == e["id"] for lim in LIMITS):
                entries[e["id"]] = e
            else:
                unknown.append(e["id"])
    limits = []
    for lim in LIMITS:
        conf = configured.get(lim.id, {})
        conf_target = _num(conf.get("target"))
        e = entries.get(lim.id)
        item: dict[str, Any] = {
            "id": lim.id, "title": lim.title, "seed_figure": lim.seed_figure,
            "seed_method": lim.seed_method, "configured_target": conf.get("target"),
            "unit": conf.get("unit"),
        }
        if e is None:
            limits.append({**item, "target": conf.get("target"), "measured": None,
                           "method": None, "pass": False, "status": "missing",
                           "note": "not in the load results", "latencies": {}, "charts": [],
                           "procedure": None})
            continue
        target = _num(e.get("target"))
        measured = _num(e.get("measured"))
        kind = _figure_kind(e)
        claimed = e.get("pass") if isinstance(e.get("pass"), bool) else None
        notes = []
        if str(e.get("status", "measured")) not in ("measured", "") or (
                measured is None and e.get("measured") is not None):
            ok, status = False, "missing"
            notes.append(str(e.get("reason") or "not measured"))
        else:
            # A measured figure is judged against the configured target; a scaled-down or
            # extrapolated one against the target the load test stated, shown as such.
            judge_target = conf_target if conf_target is not None else target
            # The load suites state the scaled target they ran against as profile_target.
            stated = _num(e.get("profile_target"))
            if stated is None:
                stated = target
            if kind != "measured" and stated is not None:
                judge_target = stated
                if conf_target is not None and stated != conf_target:
                    notes.append(f"{kind}: tested against {stated:g} of the configured "
                                 f"target {conf_target:g}")
            elif conf_target is not None and target is not None and target != conf_target:
                notes.append(f"the load test aimed at {target:g}; judged against the "
                             f"configured target {conf_target:g}")
            ok, why = _judge(lim.id, lim.higher_is_better, judge_target, measured, claimed)
            if why:
                notes.append(why)
            if kind is None:
                ok = False
                notes.append("the results do not say whether the figure was measured, "
                             "scaled down or extrapolated")
            status = "pass" if ok else "fail"
            if not ok and e.get("reason"):
                notes.append(str(e["reason"]))
        procedure = e.get("method") if isinstance(e.get("method"), str) and \
            e.get("method") not in FIGURE_KINDS else e.get("description")
        limits.append({
            **item, "target": e.get("target", conf.get("target")),
            "measured": e.get("measured"), "unit": e.get("unit", conf.get("unit")),
            "method": kind, "pass": ok, "status": status, "note": "; ".join(notes),
            "latencies": _latencies(e), "charts": _charts(e, base),
            "procedure": procedure if isinstance(procedure, str) else None,
            "checks": [c for c in e.get("checks", []) if isinstance(c, Mapping)][:20],
        })
    env = doc.get("environment")
    return {
        "source": {"file": "loadtest-results.json", "sha256": hashlib.sha256(raw).hexdigest()},
        "profile": doc.get("profile"),
        "environment": dict(env) if isinstance(env, Mapping) else {},
        "unknown_ids": unknown,
        "limits": limits,
    }
