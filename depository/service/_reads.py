"""Monitoring figures kept incrementally from the store's reads.

Storage figures must stay cheap at millions of artifacts, so they are kept by rowid over
the append-only tables (:meth:`StoreReads.usage_since`); certification records are found
by scanning only records appended since the last look. The queries are the store's
(:class:`depository.store.StoreReads`); the service opens no connection itself.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from depository.store import StoreReads


@dataclass
class UsageFigures:
    """Live bytes and counts per product, and the largest artifact ever stored."""

    per_product: dict[str, list[int]] = field(default_factory=dict)  # [bytes, artifacts]
    largest: int = 0
    artifacts_seen: int = 0  # including disposed

    def to_json(self) -> dict[str, Any]:
        return {pid: {"bytes": v[0], "artifacts": v[1]}
                for pid, v in sorted(self.per_product.items())}


class UsageTracker:
    """Keeps :class:`UsageFigures` current by reading only rows added since last time.

    ``artifact`` and ``disposal`` are append-only, so rowid marks progress exactly.
    """

    def __init__(self, reads: StoreReads, products: list[str]) -> None:
        self._reads = reads
        self._lock = threading.Lock()
        self._art_rowid = 0
        self._disp_rowid = 0
        self.figures = UsageFigures(per_product={p: [0, 0] for p in products})

    def refresh(self) -> UsageFigures:
        with self._lock:
            rows, drows = self._reads.usage_since(self._art_rowid, self._disp_rowid)
            f = self.figures
            for pid, b, n, biggest, last in rows:
                cur = f.per_product.setdefault(pid, [0, 0])
                cur[0] += int(b)
                cur[1] += int(n)
                f.artifacts_seen += int(n)
                f.largest = max(f.largest, int(biggest))
                self._art_rowid = max(self._art_rowid, int(last))
            for pid, b, n, last in drows:
                cur = f.per_product.setdefault(pid, [0, 0])
                cur[0] -= int(b)
                cur[1] -= int(n)
                self._disp_rowid = max(self._disp_rowid, int(last))
            return UsageFigures({k: list(v) for k, v in f.per_product.items()}, f.largest,
                                f.artifacts_seen)


class CertificationScanner:
    """Finds ``certification.run`` records (written before the checks) and
    ``certification.result`` records (the verdict and validity, written after them),
    scanning only records appended since last time."""

    NEEDLE = b'"type":"certification.'

    def __init__(self, reads: StoreReads) -> None:
        self._reads = reads
        self._lock = threading.Lock()
        self._scanned = 0
        self.runs: list[dict[str, Any]] = []
        self.results: dict[str, dict[str, Any]] = {}

    def refresh(self) -> list[dict[str, Any]]:
        with self._lock:
            found, end = self._reads.records_containing(self.NEEDLE, self._scanned)
            for idx, leaf in found:
                try:
                    rec = json.loads(leaf)
                except ValueError:  # pragma: no cover - the log holds canonical JSON
                    continue
                entry = {"log_index": idx, "time": rec.get("time"), "actor": rec.get("actor"),
                         "product": rec.get("product"), "body": rec.get("body")}
                if rec.get("type") == "certification.run":
                    self.runs.append(entry)
                elif rec.get("type") == "certification.result" and isinstance(
                        rec.get("body"), dict):
                    self.results[str(rec["body"].get("report_id"))] = entry
            self._scanned = max(self._scanned, end)
            return list(self.runs)

    def view(self, now: datetime) -> dict[str, Any]:
        """The certification view: the latest run, and its verdict, validity and days left
        from the ``certification.result`` record written after its checks."""
        runs = self.refresh()
        if not runs:
            return {"status": "none", "runs": 0, "last": None, "verdict": None,
                    "valid_until": None, "days_left": None,
                    "detail": "no certification has run on this store yet (the log holds no "
                              "certification.run record)"}
        last = runs[-1]
        body = last.get("body")
        res = self.results.get(str(body.get("report_id"))) if isinstance(body, dict) else None
        out: dict[str, Any] = {"runs": len(runs), "last": last, "result": res}
        if res is None:
            return {**out, "status": "no verdict", "verdict": None, "valid_until": None,
                    "days_left": None,
                    "detail": "the latest certification.run has no certification.result "
                              "record: its checks did not complete"}
        rb = res["body"]
        until = str(rb.get("valid_until"))
        try:
            days = (date.fromisoformat(until) - now.astimezone(UTC).date()).days
        except ValueError:
            days = None
        verdict = str(rb.get("verdict"))
        status = ("expired" if days is not None and days < 0 else
                  {"pass": "certified", "demo": "demo (not a certification)"}.get(
                      verdict, "not certified"))
        return {**out, "status": status, "verdict": verdict, "valid_from": rb.get("valid_from"),
                "valid_until": until, "days_left": days,
                "recertification_due": rb.get("recertification_due"),
                "detail": f"report {rb.get('report_id')}: verdict {verdict}, valid until "
                          f"{until}" + (f" ({days} days left)" if days is not None else "")
                          + "; sign-offs are checked on the signed report "
                            "(depository certify status)"}
