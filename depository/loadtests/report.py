"""Reading, validating and summarising a ``results.json`` (no locust import)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("results.schema.json")


def load(path: Path) -> dict[str, Any]:
    """Read ``results.json`` from a file or a results directory."""
    file = path / "results.json" if path.is_dir() else path
    try:
        data: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {file}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ValueError(f"{file} is not JSON: {exc}") from exc
    return data


def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return data


def validate(doc: Mapping[str, Any]) -> list[str]:
    """Schema violations of a results document ([] when valid)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))]


def fmt_value(value: Any, unit: str | None) -> str:
    if value is None:
        return "-"
    if unit == "bytes" and isinstance(value, int | float):
        for div, name in ((1000**3, "GB"), (1000**2, "MB"), (1000, "kB")):
            if value >= div:
                return f"{value / div:,.4g} {name}"
        return f"{value:,.0f} B"
    if isinstance(value, float):
        text = f"{value:,.3g}" if value < 100 else f"{value:,.0f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}" if unit and unit != "bytes" else text


def _target(lim: Mapping[str, Any]) -> str:
    t = lim.get("target")
    if t is None:
        return "unlimited"
    if lim["id"] == "query-response":
        return f"< {t:g} s"
    return fmt_value(t, lim.get("unit"))


def table(doc: Mapping[str, Any]) -> str:
    """The summary table ``depository loadtest report`` prints."""
    rows = [("limit", "target", "measured", "figure", "p99 ms", "errors", "lost", "result")]
    for lim in doc.get("limits", []):
        unit = "s" if lim["id"] == "query-response" else lim.get("unit")
        verdict = ("PASS" if lim.get("pass") else "FAIL") if lim.get("status") == "measured" \
            else "NOT MEASURED"
        p99 = (lim.get("latency_ms") or {}).get("p99")
        rows.append((lim["id"], _target(lim), fmt_value(lim.get("measured"), unit),
                     str(lim.get("figure", "")), "-" if p99 is None else f"{p99:,.1f}",
                     str(lim.get("errors", "-")),
                     "-" if lim.get("lost") is None else str(lim["lost"]), verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    env = doc.get("environment") or {}
    head = (f"profile {doc.get('profile')}  started {doc.get('started')}  "
            f"{doc.get('seconds', 0):.0f} s  target {doc.get('target', {}).get('mode')}\n"
            f"machine: {env.get('cpu_model')} x{env.get('cpu_count')}, "
            f"{(env.get('memory_bytes') or 0) / 1e9:.1f} GB, Python {env.get('python')}, "
            f"SQLite {env.get('sqlite')}, commit {str(env.get('git_commit'))[:12]}"
            f"{' (dirty)' if env.get('git_dirty') else ''}\n")
    tail = []
    for lim in doc.get("limits", []):
        if lim.get("reason"):
            tail.append(f"  {lim['id']}: {lim['reason']}")
    overall = ("PASS" if doc.get("pass") else
               "FAIL" if doc.get("complete") else "INCOMPLETE (not every limit was measured)")
    out = head + "\n".join(lines) + f"\n\noverall: {overall}\n"
    if doc.get("profile") == "quick":
        out += ("note: quick profile - targets are scaled down; figures marked scaled-down "
                "are not certification figures\n")
    if tail:
        out += "notes:\n" + "\n".join(tail) + "\n"
    return out
