"""What the web dashboard shows, gathered for one caller at one instant.

The pages (:mod:`._dashboard`) only render what :func:`overview` and :func:`product_page`
return: plain JSON-able dicts built from the store, the service's monitoring views, the
latest load results and the signed certification report. The seam for operations data
(alert deliveries and escalations, schedule progress) is :attr:`Sources.operations`:
a callable returning the operations snapshot, None while the service has none.

Visibility follows the API's rules (:mod:`._auth`): monitoring, certification and
governance for admin and auditor tokens; the log's size and checkpoints for every token;
product figures and artifacts within the token's scope.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from depository.service._auth import ADMIN, AUDITOR, Principal
from depository.service._monitoring import load_results_file
from depository.store import NotFoundError, Store, format_time
from depository.store.config import DEFAULT_SCALE_LIMITS

MONITORING_ROLES = (ADMIN, AUDITOR)
PAGE_SIZE = 50


@dataclass(frozen=True)
class Sources:
    """Where the dashboard's figures come from."""

    store: Store
    views: Callable[[], dict[str, Any]]  # the service's monitoring views, computed now
    load_results: Path | None = None  # a results.json, or a directory holding one
    certification_report: Path | None = None  # a signed report PDF (or report directory)
    certification_trust: Path | None = None  # the CA certificate the PDF signer chains to
    # The operations snapshot (alert deliveries, escalations, schedule), when the service
    # runs scheduled checks and alert delivery; None: not available in this service.
    operations: Callable[[datetime], Mapping[str, Any]] | None = None
    # Leaves at or after an index containing a byte string, and the log size scanned to
    # (the service's read-only connection); finds the alert records in the log.
    find_records: Callable[[bytes, int], tuple[list[tuple[int, bytes]], int]] | None = None


ALERT_RECORD_TYPES = ("alert.delivery", "alert.ack")


class RecordScanner:
    """The latest ``keep`` log records of some types, read incrementally (each call scans
    only the records appended since the last one)."""

    def __init__(self, types: tuple[str, ...], keep: int = 200) -> None:
        self.types = types
        self.keep = keep
        self._needles = [b'"type":"%s"' % t.encode() for t in types]
        self._scanned: dict[bytes, int] = {}
        self._found: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def refresh(self, find: Callable[[bytes, int], tuple[list[tuple[int, bytes]], int]]
                ) -> list[dict[str, Any]]:
        """The records found so far, newest first."""
        with self._lock:
            for needle in self._needles:
                leaves, end = find(needle, self._scanned.get(needle, 0))
                for idx, leaf in leaves:
                    try:
                        rec = json.loads(leaf)
                    except ValueError:  # pragma: no cover - the log holds canonical JSON
                        continue
                    if isinstance(rec, dict) and rec.get("type") in self.types:
                        self._found[idx] = {"log_index": idx, "type": rec["type"],
                                            "time": rec.get("time"),
                                            "actor": rec.get("actor"),
                                            "body": rec.get("body") or {}}
                self._scanned[needle] = max(self._scanned.get(needle, 0), end)
            for old in sorted(self._found)[:-self.keep]:
                del self._found[old]
            return [self._found[i] for i in sorted(self._found, reverse=True)]


def sees_monitoring(p: Principal) -> bool:
    return p.role in MONITORING_ROLES and p.store_wide


def visible_products(store: Store, p: Principal) -> list[str]:
    if p.product is not None:
        return [p.product] if p.product in store.config.products else []
    return sorted(store.config.products)


# ------------------------------------------------------------------ load results
def read_load_results(path: Path | None) -> dict[str, Any]:
    """The latest load results as the dashboard shows them, or why there are none."""
    if path is None:
        return {"state": "none", "detail": "no load results configured (depository serve "
                                           "--load-results PATH)", "limits": []}
    try:
        doc = load_results_file(path)
    except ValueError as exc:
        return {"state": "unreadable", "detail": str(exc), "limits": []}
    limits: list[dict[str, Any]] = []
    by_id = {str(x.get("id")): x for x in doc["limits"] if isinstance(x, dict)}
    for lid in DEFAULT_SCALE_LIMITS:
        x = by_id.get(lid)
        if x is None:
            limits.append({"id": lid, "title": lid, "status": "not-measured",
                           "measured": None, "pass": False, "reason": "absent from the run"})
            continue
        raw_lat = x.get("latency_ms")
        lat: dict[str, Any] = raw_lat if isinstance(raw_lat, dict) else {}
        limits.append({
            "id": lid, "title": str(x.get("title") or lid), "unit": x.get("unit"),
            "target": _num(x.get("target")), "profile_target": _num(x.get("profile_target")),
            "measured": _num(x.get("measured")), "pass": x.get("pass") is True,
            "status": x.get("status"), "figure": x.get("figure"),
            "profile": x.get("profile"), "reason": x.get("reason"),
            "latency_ms": {k: _num(lat.get(k)) for k in ("p50", "p95", "p99", "max")},
        })
    return {"state": "read", "path": doc["_path"], "profile": doc.get("profile"),
            "ended": doc.get("ended"), "complete": doc.get("complete") is True,
            "pass": doc.get("pass") is True, "limits": limits,
            "detail": ("every limit measured at the certification profile"
                       if doc.get("profile") == "certify" else
                       f"profile {doc.get('profile')!r}: scaled-down figures, indicative "
                       "only (not a measurement at the targets)")}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


# ------------------------------------------------------------------ certification
class CertificationCache:
    """The signed report's verification, redone only when the file or the day changes
    (verifying a PAdES signature takes a while)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._value: dict[str, Any] = {}

    def get(self, path: Path, log_key: str, today: date,
            trust: Path | None = None) -> dict[str, Any]:
        try:
            st = path.stat()
            key: tuple[Any, ...] = (str(path), st.st_mtime_ns, st.st_size, log_key, today,
                                    trust)
        except OSError as exc:
            return {"state": "MISSING", "verdict": f"the report {path} cannot be read: "
                    f"{exc.strerror or exc}", "checked_against": [], "problems": []}
        with self._lock:
            if key != self._key:
                self._value = verify_signed_report(path, log_key, today, trust)
                self._key = key
            return dict(self._value)


def verify_signed_report(path: Path, log_key: str, today: date,
                         trust: Path | None = None) -> dict[str, Any]:
    """The report's verdict as :func:`depository.certification.verify.verify_report`
    establishes it with this store's log key (and ``trust``, the CA certificate the PDF's
    signer must chain to, when given), and what it was checked against."""
    from depository.certification.verify import verify_report

    if path.is_dir():
        from depository.certification.verify import report_status

        try:
            st = report_status(path, today)
        except (OSError, ValueError, KeyError) as exc:
            return {"state": "UNREADABLE", "verdict": f"{path}: {exc}",
                    "checked_against": [], "problems": [str(exc)]}
        return {"state": st["state"], "verdict": st["state"] + " (report directory, not "
                "the signed PDF: sign-offs checked, no document signature)",
                "report_id": st["report_id"], "valid_until": st["valid_until"],
                "days_left": st["days_to_expiry"], "report_verdict": st["verdict"],
                "checked_against": ["sign-offs against the required signers in report.json"],
                "problems": [], "source": str(path)}
    try:
        out = verify_report(path, log_keys=[log_key], today=today,
                            trust=[trust] if trust is not None else ())
    except Exception as exc:  # a damaged file: report it, never show a verdict
        return {"state": "NOT AUTHENTIC", "verdict": f"NOT AUTHENTIC — {path.name} could not "
                f"be verified: {str(exc)[:300]}", "checked_against": [],
                "problems": [str(exc)[:300]], "source": str(path)}
    data = out.data or {}
    until = (data.get("validity") or {}).get("until")
    days = None
    if isinstance(until, str):
        try:
            days = (date.fromisoformat(until) - today).days
        except ValueError:
            days = None
    state = ("CERTIFIED" if out.certified and out.authentic and out.final
             else out.verdict.split(" — ")[0].split(" on ")[0])
    return {"state": state, "verdict": out.verdict, "report_id": data.get("report_id"),
            "valid_until": until, "days_left": days,
            "report_verdict": data.get("verdict"),
            "checked_against": list(out.ok_lines), "problems": list(out.problems),
            "source": str(path)}


def certification(src: Sources, cache: CertificationCache, views: Mapping[str, Any],
                  now: datetime) -> dict[str, Any]:
    recorded = views.get("certification") or {}
    last_run = recorded.get("last")
    out: dict[str, Any] = {"recorded_runs": recorded.get("runs", 0), "last_run": last_run}
    if src.certification_report is None:
        out.update(state="NO SIGNED REPORT", verdict=(
            "no signed certification report configured (depository serve "
            "--certification-report PATH): nothing is certified here"),
            checked_against=[], problems=[], days_left=None)
        return out
    out.update(cache.get(src.certification_report, src.store.verifier_key, now.date(),
                         src.certification_trust))
    rid = out.get("report_id")
    if rid and last_run is not None:
        body = last_run.get("body") or {}
        out["in_log"] = body.get("report_id") == rid
    return out


# ------------------------------------------------------------------ pages
def overview(src: Sources, p: Principal, now: datetime, cache: CertificationCache,
             alert_records: RecordScanner | None = None) -> dict[str, Any]:
    """The front page for ``p``."""
    store = src.store
    views = src.views()
    try:
        cp_size, cp_note = store.latest_checkpoint()
        checkpoint: dict[str, Any] | None = {"size": cp_size, "note": cp_note.decode()}
    except NotFoundError:
        checkpoint = None
    products = {pid: dict(v) for pid, v in views["storage"]["products"].items()
                if pid in visible_products(store, p)}
    out: dict[str, Any] = {
        "time": format_time(now), "principal": p.to_json(), "log_size": store.size(),
        "checkpoint": checkpoint, "origin": store.origin, "products": products,
        "monitoring": sees_monitoring(p),
    }
    if not out["monitoring"]:
        return out
    scale = views["scale"]["limits"]
    out["scale"] = scale
    out["alert_levels"] = views["scale"]["alert_levels"]
    out["load"] = read_load_results(src.load_results)
    out["alerts"] = views["alerts"]
    out["governance"] = store.governance_status()
    out["certification"] = certification(src, cache, views, now)
    out["operations"] = None
    if src.operations is not None:
        out["operations"] = dict(src.operations(now))
    out["alert_records"] = None
    if src.find_records is not None and alert_records is not None:
        out["alert_records"] = alert_records.refresh(src.find_records)
    return out


def product_page(src: Sources, p: Principal, product: str, after: int | None
                 ) -> dict[str, Any]:
    """One page of ``product``'s artifacts (the caller has checked the scope)."""
    store = src.store
    arts = store.ls(product=product, after=after, limit=PAGE_SIZE)
    nxt = arts[-1].log_index if len(arts) == PAGE_SIZE else None
    try:
        cp_size, _ = store.latest_checkpoint()
    except NotFoundError:
        cp_size = 0
    usage = src.views()["storage"]["products"].get(product, {})
    return {"principal": p.to_json(), "product": product, "usage": usage,
            "items": [a.to_json() | {"provable": a.log_index < cp_size} for a in arts],
            "next_cursor": nxt, "checkpoint_size": cp_size}
