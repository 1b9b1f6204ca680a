"""Continuous checks: scheduled verification, sampling, anchoring and certification validity.

:class:`ContinuousChecks` runs the jobs of ``schedule`` in ``depository.yaml`` when they
are due at the ``now`` it is given (``depository serve`` ticks it from its clock;
``depository watch`` runs passes; tests drive it with an injected clock):

``verify``
    The first pass, and one every ``full_every``, is a full offline replay through the
    verifier's public API (:func:`depository.verifier.store.store_result`, blobs
    excluded: they are sampled below) anchored at the last verified checkpoint. Passes in
    between are incremental: the latest signed checkpoint must verify with the store's
    key, every record since the last verified one must be canonical and in sequence, and
    the Merkle root recomputed from the verified history plus those records must be the
    checkpoint's root. Each pass also re-reads ``record_sample`` random older records and
    checks each against the verified root with an inclusion proof, so bytes flipped in
    old records are caught between full replays.
``blob_sample``
    Re-hash ``count`` random live artifacts' bytes against their records.
``anchor``
    Where WORM anchors are configured: sign (and so anchor) a checkpoint when records
    wait, and report anchor writes that failed.
``certification``
    Days left on the certification: from the newest ``certification.result`` record in
    the log (the verdict and validity `certify run` records), else from the signed
    report named by ``monitoring.certification_report``.

A violation locks governance through ``lock`` (the store's lock API) and sets
:attr:`ContinuousChecks.violation`, which raises ``DepositoryVerificationFailed`` until a
later full replay passes.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from depository.service.alerts import parse_duration
from depository.store import ConfigError, NotFoundError, Store, StoreError, format_time
from depository.tlog import VerificationError, merkle
from depository.tlog.checkpoint import verify_checkpoint
from depository.tlog.record import parse_record
from depository.verifier.store import CHECK_UNSIGNED, store_result

JOBS = ("verify", "blob_sample", "anchor", "certification")


@dataclass(frozen=True)
class ScheduleSettings:
    """``schedule`` in ``depository.yaml``, validated (``every: 0`` never happens)."""

    verify_every: timedelta = timedelta(minutes=10)
    full_every: timedelta = timedelta(hours=24)
    record_sample: int = 64
    blob_every: timedelta = timedelta(hours=1)
    blob_sample: int = 32
    anchor_every: timedelta = timedelta(minutes=5)
    certification_every: timedelta = timedelta(hours=1)
    certification_report: Path | None = None
    enabled: tuple[str, ...] = JOBS

    def every(self, job: str) -> timedelta:
        return {"verify": self.verify_every, "blob_sample": self.blob_every,
                "anchor": self.anchor_every,
                "certification": self.certification_every}[job]


def _count(v: Any, key: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 100_000:
        raise ConfigError(f"{key}: must be an integer 0..100000, got {v!r}")
    return v


def parse_schedule(raw: Any, monitoring: Any, store_dir: Path) -> ScheduleSettings:
    """Validate ``schedule`` (and ``monitoring.certification_report``)."""
    if not isinstance(raw, dict):
        raise ConfigError("schedule: must be a mapping of jobs")
    bad = sorted(set(raw) - set(JOBS))
    if bad:
        raise ConfigError(f"schedule.{bad[0]}: unknown job (expected one of "
                          f"{', '.join(JOBS)})")
    keys = {"verify": {"every", "full_every", "record_sample", "enabled"},
            "blob_sample": {"every", "count", "enabled"}, "anchor": {"every", "enabled"},
            "certification": {"every", "enabled"}}
    jobs: dict[str, dict[str, Any]] = {}
    for job in JOBS:
        spec = raw.get(job, {})
        if not isinstance(spec, dict):
            raise ConfigError(f"schedule.{job}: must be a mapping")
        bad = sorted(set(spec) - keys[job])
        if bad:
            raise ConfigError(f"schedule.{job}.{bad[0]}: unknown key (expected one of "
                              f"{', '.join(sorted(keys[job]))})")
        jobs[job] = spec
    d = ScheduleSettings()
    report = None
    mon = monitoring if isinstance(monitoring, dict) else {}
    if mon.get("certification_report"):
        report = Path(str(mon["certification_report"]))
        if not report.is_absolute():
            report = store_dir / report
    enabled = tuple(j for j in JOBS if jobs[j].get("enabled", True) is not False)

    def dur(job: str, key: str, default: timedelta) -> timedelta:
        v = jobs[job].get(key)
        return default if v is None else parse_duration(v, f"schedule.{job}.{key}")

    return ScheduleSettings(
        verify_every=dur("verify", "every", d.verify_every),
        full_every=dur("verify", "full_every", d.full_every),
        record_sample=_count(jobs["verify"].get("record_sample", d.record_sample),
                             "schedule.verify.record_sample"),
        blob_every=dur("blob_sample", "every", d.blob_every),
        blob_sample=_count(jobs["blob_sample"].get("count", d.blob_sample),
                           "schedule.blob_sample.count"),
        anchor_every=dur("anchor", "every", d.anchor_every),
        certification_every=dur("certification", "every", d.certification_every),
        certification_report=report, enabled=enabled)


@dataclass
class JobStatus:
    """A job's progress and last result, for the monitoring views and the dashboard."""

    name: str
    every_seconds: int
    enabled: bool = True
    runs: int = 0
    failures: int = 0
    running: bool = False
    last_run: str | None = None
    last_ok: bool | None = None
    last_summary: str = "not run yet"
    last_seconds: float | None = None
    next_due: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "every_seconds": self.every_seconds,
                "enabled": self.enabled, "runs": self.runs, "failures": self.failures,
                "running": self.running, "last_run": self.last_run, "last_ok": self.last_ok,
                "last_summary": self.last_summary, "last_seconds": self.last_seconds,
                "next_due": self.next_due, "details": dict(self.details)}


@dataclass(frozen=True)
class Outcome:
    job: str
    ok: bool
    summary: str
    problems: tuple[str, ...] = ()


@dataclass
class CertificationState:
    days_left: int | None = None
    until: str | None = None
    report_id: str | None = None
    state: str = "none"
    source: str = ""


LockFn = Callable[[str, str], bool]
"""Lock governance with (reason, check); True when the lock was recorded."""


def _store_lock(store: Store) -> LockFn:
    def lock(reason: str, check: str) -> bool:
        if store.readonly:
            return False
        try:
            if store.governance_status()["locked"]:
                return True
            store.lock(reason, check=check, actor="depository:checks")
            return True
        except StoreError:
            return False

    return lock


class ContinuousChecks:
    """The scheduled jobs over one store (opened for writing or read-only)."""

    def __init__(self, store: Store, settings: ScheduleSettings, *,
                 verifier_keys: Sequence[str] | None = None, lock: LockFn | None = None,
                 rng: random.Random | None = None) -> None:
        self.store = store
        self.settings = settings
        self.keys = list(verifier_keys or [store.verifier_key])
        self.lock = lock or _store_lock(store)
        self.rng = rng or random.Random()
        self.jobs = {j: JobStatus(j, int(settings.every(j).total_seconds()),
                                  enabled=j in settings.enabled) for j in JOBS}
        self._due: dict[str, datetime | None] = dict.fromkeys(JOBS)
        self._mutex = threading.Lock()
        # verified history: size, its signed checkpoint, the RFC 6962 compact range
        self.verified_size = 0
        self.verified_root: bytes | None = None
        self.verified_note: bytes | None = None
        self._stack: list[tuple[int, bytes]] = []
        self.last_full: datetime | None = None
        self.last_full_seconds: float | None = None
        self.violation: str | None = None
        self.locked_by_checks = False
        self.certification = CertificationState()
        self._cert_scanned = 0
        self._cert_result: tuple[int, dict[str, Any]] | None = None

    # ------------------------------------------------------------------ driving
    def run_due(self, now: datetime) -> list[Outcome]:
        """Run every enabled job that is due at ``now`` (one at a time)."""
        out = []
        with self._mutex:
            for job in JOBS:
                st = self.jobs[job]
                due = self._due[job]
                if not st.enabled or (due is not None and now < due):
                    continue
                out.append(self._run(job, now))
        return out

    def run_all(self, now: datetime) -> list[Outcome]:
        """Every enabled job once, due or not (``depository watch --once``)."""
        with self._mutex:
            return [self._run(j, now) for j in JOBS if self.jobs[j].enabled]

    def status(self) -> list[JobStatus]:
        return [self.jobs[j] for j in JOBS]

    def snapshot(self) -> dict[str, Any]:
        return {
            "jobs": [s.to_json() for s in self.status()],
            "verified_size": self.verified_size,
            "last_full_verification": format_time(self.last_full) if self.last_full else None,
            "last_full_seconds": self.last_full_seconds,
            "violation": self.violation, "locked_by_checks": self.locked_by_checks,
            "certification": {"state": self.certification.state,
                              "days_left": self.certification.days_left,
                              "valid_until": self.certification.until,
                              "report_id": self.certification.report_id,
                              "source": self.certification.source},
        }

    def _run(self, job: str, now: datetime) -> Outcome:
        st = self.jobs[job]
        st.running = True
        t0 = time.perf_counter()
        try:
            outcome: Outcome = getattr(self, f"_job_{job}")(now)
        except (StoreError, VerificationError, OSError, ValueError, sqlite3.Error) as exc:
            outcome = Outcome(job, False, f"the job could not run: {exc}")
        finally:
            st.running = False
        st.runs += 1
        st.failures += 0 if outcome.ok else 1
        st.last_run = format_time(now)
        st.last_ok = outcome.ok
        st.last_summary = outcome.summary
        st.last_seconds = round(time.perf_counter() - t0, 6)
        nxt = now + self.settings.every(job)
        self._due[job] = nxt
        st.next_due = format_time(nxt)
        if outcome.problems:
            self._violate(job, outcome)
        return outcome

    def _violate(self, job: str, outcome: Outcome) -> None:
        reason = f"scheduled {job} found: {outcome.problems[0]}"
        if len(outcome.problems) > 1:
            reason += f" (and {len(outcome.problems) - 1} more)"
        self.violation = reason[:900]
        if self.lock(self.violation, f"scheduled-{job}"):
            self.locked_by_checks = True

    # ------------------------------------------------------------------ verify
    def _job_verify(self, now: datetime) -> Outcome:
        st = self.jobs["verify"]
        if self.last_full is None or now - self.last_full >= self.settings.full_every:
            out = self._full()
            self.last_full = now
        else:
            out = self._incremental()
        if out.ok:
            sampled = self._sample_records()
            if sampled.problems:
                return sampled
            out = Outcome("verify", True, f"{out.summary}; {sampled.summary}")
        st.details.update(verified_size=self.verified_size,
                          last_full=format_time(self.last_full) if self.last_full else None)
        return out

    def _full(self) -> Outcome:
        t0 = time.perf_counter()
        details = self.jobs["verify"].details

        def progress(done: int, total: int) -> None:  # shown while the replay runs
            details["progress"] = {"records_done": done, "records_total": total}

        res = store_result(self.store.path, self.keys, since_checkpoint=self.verified_note,
                           check_blobs=False, progress=progress)
        self.last_full_seconds = round(time.perf_counter() - t0, 6)
        # Records beyond the last checkpoint are normal on a live store; the checkpoint
        # staleness alert watches them.
        problems = [str(f) for f in res.findings if f.check != CHECK_UNSIGNED]
        if problems:
            return Outcome("verify", False, f"full replay of {res.size} records: "
                           f"{len(problems)} problems", tuple(problems))
        if self.violation and self.violation.startswith("scheduled verify"):
            self.violation = None  # a clean full replay clears an earlier finding
        if res.latest_checkpoint is not None:
            size = res.latest_checkpoint_size
            self._rebuild(size)
            self.verified_note = res.latest_checkpoint
        return Outcome("verify", True, f"full replay: {res.size} records, "
                       f"{res.checkpoints} checkpoints verified (blobs are sampled "
                       "separately)")

    def _rebuild(self, size: int) -> None:
        stack: list[tuple[int, bytes]] = []
        for _, leaf in self.store.log_entries(0, size):
            _push(stack, merkle.leaf_hash(leaf))
        self._stack, self.verified_size = stack, size
        self.verified_root = _fold(stack)

    def _incremental(self) -> Outcome:
        try:
            _, note = self.store.latest_checkpoint()
        except NotFoundError:
            return Outcome("verify", True, "no checkpoint yet")
        cp, _ = verify_checkpoint(note, self.keys, origin=self.store.origin)
        if cp.size < self.verified_size:
            return Outcome("verify", False, "rolled back", (
                f"the latest checkpoint covers {cp.size} records but {self.verified_size} "
                "were verified before: the log was truncated or an older copy restored",))
        stack = list(self._stack)
        n = self.verified_size
        for idx, leaf in self.store.log_entries(self.verified_size, cp.size):
            if idx != n:
                return Outcome("verify", False, "gap", (f"record {n} is missing",))
            try:
                parse_record(leaf, index=idx)
            except VerificationError as exc:
                return Outcome("verify", False, "bad record", (f"record {idx}: {exc}",))
            _push(stack, merkle.leaf_hash(leaf))
            n += 1
        if n != cp.size:
            return Outcome("verify", False, "short log", (
                f"the log holds {n} records; its checkpoint covers {cp.size}",))
        root = _fold(stack)
        if root != cp.root_hash:
            return Outcome("verify", False, "root mismatch", (
                f"the checkpoint of size {cp.size} does not extend the verified history of "
                f"size {self.verified_size} with the records now in the log: history was "
                "rewritten",))
        new = cp.size - self.verified_size
        self._stack, self.verified_size, self.verified_root = stack, cp.size, root
        self.verified_note = note
        return Outcome("verify", True, f"incremental: {new} new records verified against "
                       f"the checkpoint of size {cp.size}")

    def _sample_records(self) -> Outcome:
        size, root = self.verified_size, self.verified_root
        if not size or root is None:
            return Outcome("verify", True, "no records to sample")
        k = min(self.settings.record_sample, size)
        picks = sorted(self.rng.sample(range(size), k))
        bad = []
        for i in picks:
            leaf = next(iter(self.store.log_entries(i, i + 1)), (i, b""))[1]
            try:
                proof = self.store.inclusion_proof(i, size)
                merkle.verify_inclusion(merkle.leaf_hash(leaf), i, size, proof, root)
            except (VerificationError, StoreError) as exc:
                bad.append(f"record {i} no longer matches the verified tree of size {size} "
                           f"({exc}): its bytes were altered")
        if bad:
            return Outcome("verify", False, f"{len(bad)} of {k} sampled records altered",
                           tuple(bad))
        return Outcome("verify", True, f"{k} sampled records match the verified root")

    # ------------------------------------------------------------------ blobs
    def _job_blob_sample(self, now: datetime) -> Outcome:
        size = self.store.size()
        want = self.settings.blob_sample
        if not size or not want:
            return Outcome("blob_sample", True, "nothing to sample")
        order = list(range(size))
        self.rng.shuffle(order)
        checked, bad = 0, []
        for i in order[: want * 8]:  # bounded: most records are artifact puts
            if checked >= want:
                break
            try:
                rec = self.store.record(i)
            except VerificationError:
                continue  # a damaged record: the verify job reports it
            if rec.type != "artifact.put":
                continue
            try:
                art = self.store.get_by_id(str(rec.body["artifact_id"]))
            except NotFoundError:
                continue
            if art.disposed:
                continue
            checked += 1
            try:
                h = hashlib.sha256()
                with self.store.open_content(art) as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                got = h.hexdigest()
            except (OSError, StoreError) as exc:
                bad.append(f"artifact {art.id} ({art.product}/{art.name}): bytes unreadable "
                           f"({exc})")
                continue
            if got != art.sha256:
                bad.append(f"artifact {art.id} ({art.product}/{art.name}): bytes hash to "
                           f"{got}, the record says {art.sha256}")
        self.jobs["blob_sample"].details = {"checked": checked, "damaged": len(bad)}
        if bad:
            return Outcome("blob_sample", False, f"{len(bad)} of {checked} sampled artifacts "
                           "damaged", tuple(bad))
        return Outcome("blob_sample", True, f"{checked} sampled artifacts re-hashed: intact")

    # ------------------------------------------------------------------ anchors
    def _job_anchor(self, now: datetime) -> Outcome:
        if self.store.config.anchors is None:
            return Outcome("anchor", True, "no anchors configured")
        if self.store.readonly:
            return Outcome("anchor", True, "read-only: the serving process anchors")
        before = len(self.store.anchor_errors)
        self.store.checkpoint()
        errors = list(self.store.anchor_errors[before:])
        self.jobs["anchor"].details = {"recent_errors": list(self.store.anchor_errors[-5:])}
        if errors:
            # A failed anchor write is not tampering: alerted through the job's status.
            return Outcome("anchor", False, f"anchoring failed: {errors[-1]}")
        return Outcome("anchor", True, f"checkpoint of size {self.store.size()} anchored")

    # ------------------------------------------------------------------ certification
    def _latest_result(self) -> tuple[int, dict[str, Any]] | None:
        """The newest ``certification.result`` record (verdict and validity, written by
        `certify run` after its checks), scanning only records appended since last time."""
        size = self.store.size()
        for idx, leaf in self.store.log_entries(self._cert_scanned, size):
            if b'"type":"certification.result"' in leaf:
                try:
                    rec = self.store.record(idx)
                except VerificationError:
                    continue  # a damaged record: the verify job reports it
                if rec.type == "certification.result":
                    self._cert_result = (idx, dict(rec.body))
        self._cert_scanned = size
        return self._cert_result

    def _job_certification(self, now: datetime) -> Outcome:
        found = self._latest_result()
        if found is not None:
            idx, body = found
            until = str(body.get("valid_until") or "")
            verdict = str(body.get("verdict"))
            try:
                days = (date.fromisoformat(until[:10]) - now.date()).days
            except ValueError:
                return Outcome("certification", False, f"certification.result record {idx} "
                               f"has no readable valid_until ({until!r})")
            passed = verdict == "pass"
            state = ("CERTIFIED" if passed and days >= 0 else "EXPIRED" if passed
                     else f"NOT CERTIFIED (verdict {verdict})")
            self.certification = CertificationState(
                days_left=days if passed else None, until=until[:10],
                report_id=str(body.get("report_id")), state=state,
                source=f"certification.result record {idx} in the log")
            return Outcome("certification", state == "CERTIFIED",
                           f"{state}: valid until {until[:10]} ({days} days; record {idx})")
        path = self.settings.certification_report
        if path is None:
            self.certification = CertificationState(
                source="no monitoring.certification_report configured")
            return Outcome("certification", True, "no certification report configured")
        if not path.exists():
            self.certification = CertificationState(state="missing", source=str(path))
            return Outcome("certification", False, f"certification report {path} not found")
        from depository.certification.verify import report_status

        try:
            st = report_status(path, today=now.date())
        except Exception as exc:  # a report that cannot be read is itself the finding
            self.certification = CertificationState(state="unreadable", source=str(path))
            return Outcome("certification", False, f"certification report {path}: {exc}")
        self.certification = CertificationState(
            days_left=int(st["days_to_expiry"]), until=str(st["valid_until"]),
            report_id=str(st["report_id"]), state=str(st["state"]),
            source=f"signed report {path.name} (validity from the report)")
        return Outcome("certification", st["state"] == "CERTIFIED",
                       f"{st['state']}: valid until {st['valid_until']} "
                       f"({st['days_to_expiry']} days)")


def _push(stack: list[tuple[int, bytes]], h: bytes) -> None:
    stack.append((1, h))
    while len(stack) >= 2 and stack[-2][0] == stack[-1][0]:
        (n, left), (_, right) = stack[-2], stack[-1]
        stack[-2:] = [(2 * n, merkle.node_hash(left, right))]


def _fold(stack: Sequence[tuple[int, bytes]]) -> bytes:
    if not stack:
        return hashlib.sha256(b"").digest()
    acc = stack[-1][1]
    for _, h in reversed(stack[:-1]):
        acc = merkle.node_hash(h, acc)
    return acc
