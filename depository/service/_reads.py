"""Read-only queries the store's public API does not offer yet.

Tiles need ranges of stored tree nodes; monitoring needs storage figures that stay cheap
at millions of artifacts (kept incrementally, by rowid, over append-only tables) and the
log's certification records. These read the store's database through a separate
read-only connection per thread (``mode=ro``, ``query_only``); they never write. Each
method here is a candidate for a ``Store`` method (see the service notes in
``docs/benchmarks.md``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

DB_NAME = "depository.db"


class StoreReads:
    """Thread-local read-only connections to a store's database."""

    def __init__(self, store_path: Path) -> None:
        self._uri = f"file:{Path(store_path) / DB_NAME}?mode=ro"
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._generation = 0

    def conn(self) -> sqlite3.Connection:
        mine: tuple[int, sqlite3.Connection] | None = getattr(self._local, "conn", None)
        if mine is not None and mine[0] == self._generation:
            return mine[1]
        c = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
        c.execute("PRAGMA query_only=1")
        with self._lock:
            self._local.conn = (self._generation, c)
            self._all.append(c)
        return c

    def close(self) -> None:
        """Close every connection; a later call to :meth:`conn` opens a fresh one."""
        with self._lock:
            self._generation += 1
            for c in self._all:
                c.close()
            self._all.clear()

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """``log.leaf_hash`` for indexes ``[start, end)`` (level 0 of the tree)."""
        return [bytes(r[0]) for r in self.conn().execute(
            "SELECT leaf_hash FROM log WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))]

    def node_hashes(self, level: int, k0: int, k1: int) -> list[bytes]:
        """Perfect subtree hashes ``node(level, k)`` for ``k`` in ``[k0, k1)``, level >= 1."""
        return [bytes(r[0]) for r in self.conn().execute(
            "SELECT hash FROM node WHERE level = ? AND k >= ? AND k < ? ORDER BY k",
            (level, k0, k1))]

    def leaves(self, start: int, end: int) -> list[bytes]:
        return [bytes(r[0]) for r in self.conn().execute(
            "SELECT leaf FROM log WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))]

    def records_containing(self, needle: bytes, start: int) -> tuple[list[tuple[int, bytes]],
                                                                      int]:
        """Leaves at or after ``start`` containing ``needle``; and the log size scanned to."""
        c = self.conn()
        row = c.execute("SELECT max(idx) FROM log").fetchone()
        end = 0 if row[0] is None else int(row[0]) + 1
        found = [(int(i), bytes(leaf)) for i, leaf in c.execute(
            "SELECT idx, leaf FROM log WHERE idx >= ? AND idx < ? AND instr(leaf, ?) > 0 "
            "ORDER BY idx", (start, end, needle))]
        return found, end


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
            c = self._reads.conn()
            c.execute("BEGIN")
            try:
                rows = c.execute(
                    "SELECT product, sum(size), count(*), max(size), max(rowid) FROM artifact "
                    "WHERE rowid > ? GROUP BY product", (self._art_rowid,)).fetchall()
                drows = c.execute(
                    "SELECT a.product, sum(a.size), count(*), max(d.rowid) FROM disposal d "
                    "JOIN artifact a ON a.id = d.artifact_id WHERE d.rowid > ? "
                    "GROUP BY a.product", (self._disp_rowid,)).fetchall()
            finally:
                c.execute("COMMIT")
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
