"""The check framework: a check runs steps, each with what ran, what was expected and what
was observed; the check's status follows from its steps and never defaults to a pass.

Statuses: ``pass`` (at least one step ran and every step met its expectation), ``fail``
(a step did not), ``error`` (the check itself broke: an unexpected exception), ``missing``
(what the check needs is not installed or not available; it did not run).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from depository.signing import generate_key
from depository.store import Store, StoreError
from depository.tlog.record import parse_record

STATUSES = ("pass", "fail", "error", "missing")

__all__ = ["STATUSES", "CheckContext", "CheckResult", "Missing", "Recorder", "run_check"]


class Missing(Exception):
    """What a check needs is not available; the check is reported as missing."""


@dataclass
class Step:
    action: str
    expected: str
    observed: str
    ok: bool

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "expected": self.expected, "observed": self.observed,
                "ok": self.ok}


@dataclass
class CheckResult:
    id: str
    title: str
    target: str
    status: str
    summary: str
    steps: list[Step]
    evidence: list[dict[str, Any]]
    started: str
    duration_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "target": self.target, "status": self.status,
            "summary": self.summary, "steps": [s.to_json() for s in self.steps],
            "evidence": self.evidence, "started": self.started, "duration_ms": self.duration_ms,
        }


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:400]


class Recorder:
    """What one check records: steps and evidence."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.evidence: list[dict[str, Any]] = []
        self.notes: list[str] = []

    def step(self, action: str, expected: str, observed: str, ok: bool) -> bool:
        self.steps.append(Step(action, expected, observed, bool(ok)))
        return bool(ok)

    def expect(self, action: str, ok: bool, observed: str, expected: str = "holds") -> bool:
        return self.step(action, expected, observed, ok)

    def refused(
        self, action: str, fn: Callable[[], Any],
        errors: type[BaseException] | tuple[type[BaseException], ...] = StoreError,
        *, expected: str = "refused", match: str | None = None,
    ) -> BaseException | None:
        """Run ``fn``; the step passes when it raises one of ``errors`` (matching text)."""
        try:
            value = fn()
        except errors as exc:
            ok = match is None or match.lower() in str(exc).lower()
            self.step(action, expected, f"refused — {_short(exc)}", ok)
            return exc
        self.step(action, expected, f"ACCEPTED (returned {str(value)[:120]!r})", False)
        return None

    def note(self, text: str) -> None:
        self.notes.append(text)

    def add_evidence(self, kind: str, ref: str, **detail: Any) -> None:
        self.evidence.append({"kind": kind, "ref": ref, **detail})

    def record_evidence(self, store: Store, index: int, where: str) -> dict[str, Any]:
        """Cite a log record (index, type, leaf SHA-256) of ``where`` (store or a copy)."""
        leaf = dict(store.log_entries(index, index + 1))[index]
        rec = parse_record(leaf, index=index)
        item = {"kind": "log-record", "ref": f"{where}#{index}", "where": where,
                "index": index, "type": rec.type, "actor": rec.actor,
                "leaf_sha256": hashlib.sha256(leaf).hexdigest()}
        self.evidence.append(item)
        return item

    def last_records(self, store: Store, count: int, where: str) -> list[dict[str, Any]]:
        n = store.size()
        return [self.record_evidence(store, i, where) for i in range(max(0, n - count), n)]


@dataclass
class CheckContext:
    """Everything a check may use: the real store (read-only), a pristine snapshot taken
    right after the certification checkpoint, scratch copies of it, and the evidence dir."""

    store_dir: Path
    snapshot: Path
    scratch: Path
    evidence_dir: Path
    verifier_key: str
    checkpoint_note: bytes
    checkpoint_size: int
    checkpoint_root: bytes
    origin: str
    certification_index: int | None = None
    previous_checkpoint: bytes | None = None
    signer_key_file: Path | None = None
    jobs: int = 1
    throwaway_key: bool = False
    service_factory: Callable[[Store], Any] | None = None
    _copies: int = 0
    replay_ok: bool | None = None
    shared: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ copies
    def copy(self, label: str, *, source: Path | None = None) -> Path:
        """A fresh scratch copy of the snapshot, or of ``source`` (database copied, blob
        files linked)."""
        self._copies += 1
        dest = self.scratch / f"{self._copies:02d}-{label}"
        copy_store(source or self.snapshot, dest)
        return dest

    @contextlib.contextmanager
    def open_copy(self, label: str, rec: Recorder | None = None) -> Iterator[Store]:
        """A scratch copy opened for writing; a lock inherited from the store is lifted in
        the copy (only there) so drills are not refused for the wrong reason."""
        path = self.copy(label)
        store = Store.open(path, signer_key_file=self.copy_signer(path))
        try:
            status = store.governance_status()
            if status["locked"]:
                store.unlock(reason="certification drill on a scratch copy", actor="certify")
                if rec is not None:
                    rec.note(f"the store is under a governance lock ({status['reason']}); the "
                             "scratch copy was unlocked for the drill")
            yield store
        finally:
            store.close()

    def copy_signer(self, path: Path) -> Path | None:
        """The signer key a copy opens with: the store's, or a throwaway one."""
        local = path / "keys" / "log.key"
        if local.is_file():
            return local
        if self.signer_key_file is not None and self.signer_key_file.is_file():
            return self.signer_key_file
        if os.environ.get("DEPOSITORY_SIGNER_KEY"):
            return Path(os.environ["DEPOSITORY_SIGNER_KEY"])
        signer, _ = generate_key(self.origin)
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(signer + "\n")
        local.chmod(0o600)
        self.throwaway_key = True
        return local

    def replay(self, path: Path, *, since: bytes | None = None) -> Any:
        """The offline verifier's replay of ``path`` (a :class:`StoreResult`)."""
        try:
            from depository.verifier.store import store_result
        except ImportError as exc:
            raise Missing(f"the offline store verifier is not installed ({exc})") from exc
        return store_result(path, [self.verifier_key], since_checkpoint=since, jobs=self.jobs)


def copy_store(src: Path, dest: Path, *, from_live: bool = False) -> None:
    """Copy a store directory: a consistent SQLite snapshot (backup API), the
    configuration and keys, and the blob files (hard links where possible: they are
    read-only and a drill replaces, never edits, a file)."""
    dest.mkdir(parents=True)
    src_db = src / "depository.db"
    if from_live:
        ro = sqlite3.connect(f"file:{src_db}?mode=ro", uri=True)
        out = sqlite3.connect(dest / "depository.db")
        try:
            ro.backup(out)
            out.execute("PRAGMA journal_mode=DELETE")
        finally:
            out.close()
            ro.close()
    else:
        shutil.copyfile(src_db, dest / "depository.db")
    for name in ("depository.yaml",):
        if (src / name).is_file():
            shutil.copy2(src / name, dest / name)
    if (src / "keys").is_dir():
        shutil.copytree(src / "keys", dest / "keys")
    objects = src / "objects"
    (dest / "objects" / "tmp").mkdir(parents=True, exist_ok=True)
    if objects.is_dir():
        for root, dirs, files in os.walk(objects):
            rel = Path(root).relative_to(objects)
            if rel.parts and rel.parts[0] == "tmp":
                dirs[:] = []
                continue
            target = dest / "objects" / rel
            target.mkdir(parents=True, exist_ok=True)
            for f in files:
                try:
                    os.link(Path(root) / f, target / f)
                except OSError:
                    shutil.copy2(Path(root) / f, target / f)


def replace_file(path: Path, data: bytes) -> None:
    """Replace a (possibly hard-linked, read-only) file without touching other links."""
    path.unlink()
    path.write_bytes(data)


CheckFn = Callable[[CheckContext, Recorder], str]


def run_check(ctx: CheckContext, check_id: str, title: str, target: str, fn: CheckFn
              ) -> CheckResult:
    """Run one check; its status follows from the steps it recorded."""
    rec = Recorder()
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    t0 = time.monotonic()
    summary = ""
    try:
        summary = fn(ctx, rec)
        if not rec.steps:
            status, summary = "error", "no step ran; a check that ran nothing is not a pass"
        elif all(s.ok for s in rec.steps):
            status = "pass"
        else:
            status = "fail"
            bad = [s for s in rec.steps if not s.ok]
            summary = (f"{len(bad)} of {len(rec.steps)} steps did not hold; first: "
                       f"{bad[0].action} — expected {bad[0].expected}, observed "
                       f"{bad[0].observed}")
    except Missing as exc:
        status, summary = "missing", f"did not run: {exc}"
    except Exception as exc:
        status = "error"
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
        summary = f"the check broke{where}: {_short(exc)}"
        rec.step("(check aborted)", "the check completes", summary, False)
    if rec.notes:
        summary = (summary + " Notes: " + "; ".join(rec.notes)).strip()
    return CheckResult(
        id=check_id, title=title, target=target, status=status, summary=summary,
        steps=rec.steps, evidence=rec.evidence, started=started,
        duration_ms=int((time.monotonic() - t0) * 1000),
    )
