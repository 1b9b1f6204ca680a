"""Evidence exports over HTTP: legal tokens export a matter's package.

An export runs :func:`depository.evidence.export_package` in a worker thread (at most
:data:`EXPORT_WORKERS` at once) into a fresh ``.partial-*`` directory under the exports
directory (default ``STORE/exports``; never ``objects/``). Only once the zip is complete
and its digest written beside it is that directory renamed ``export-<log index>``: the
index of its ``evidence.export`` record, also the package's ``External-Identifier``. A
failed export leaves nothing behind (a crash mid-export may leave a ``.partial-*``
directory, safe to delete while no export runs).

Exports are kept until an operator deletes their directory; the audit log keeps the
record of each export either way. Each export directory records the package's product,
and only legal tokens that may see that product can fetch it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from depository.evidence import (
    EvidenceError,
    EvidenceKeyError,
    TimestampRequestError,
    export_package,
)
from depository.service._auth import LEGAL, Principal
from depository.service._problems import Problem
from depository.store import Hold, NotFoundError, Store, format_time

log = logging.getLogger("depository.service")

EXPORTS_DIR = "exports"
EXPORT_WORKERS = 2  # exports are long and I/O heavy; uploads and reads keep the rest
IDS_MAX = 1000
META_FILE = "export.json"
ROUTE = "/v1/evidence/exports"
_ID = re.compile(r"export-(\d{1,19})\Z")
_AID = re.compile(r"art_[a-z2-7]{24}\Z")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ExportSettings:
    """Where packages go and how they are signed (as ``depository evidence export``)."""

    directory: Path
    evidence_key_file: Path | None = None
    tsa_url: str | None = None
    organisation: str | None = None

    @classmethod
    def from_env(cls, store_path: Path) -> ExportSettings:
        """The CLI's environment variables, so ``depository serve`` signs like it."""
        env = os.environ
        key = env.get("DEPOSITORY_EVIDENCE_KEY")
        return cls(directory=Path(env.get("DEPOSITORY_EXPORTS_DIR")
                                  or Path(store_path) / EXPORTS_DIR),
                   evidence_key_file=Path(key) if key else None,
                   tsa_url=env.get("DEPOSITORY_TSA_URL") or None,
                   organisation=env.get("DEPOSITORY_ORGANISATION") or None)


@dataclass(frozen=True)
class ExportRequest:
    """A parsed, well-formed request body (not yet checked against the store)."""

    matter: str
    reason: str
    product: str | None
    since: datetime | None
    until: datetime | None
    artifacts: tuple[str, ...]
    holds: tuple[str, ...]
    load_file: str | None


@dataclass(frozen=True)
class ExportInfo:
    """A stored export, as answered on creation and kept in ``export.json``."""

    export_id: str
    matter: str
    product: str
    package: str
    sha256: str
    size: int
    log_index: int
    leaf_hash: str
    checkpoint_size: int
    artifacts: int
    disposed: int
    records: int
    holds: int
    evidence_key: str
    timestamped: bool
    created: str
    actor: str

    @property
    def location(self) -> str:
        return f"{ROUTE}/{self.export_id}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "location": self.location}


def _not_found(export_id: str) -> Problem:
    # One answer for a missing export, another product's, and a role that may not fetch.
    return Problem("not-found", f"no export {export_id[:80]!r}", field="path:export_id")


def _package_name(matter: str, now: datetime) -> str:
    safe = _UNSAFE.sub("-", matter).strip(".-")[:64] or "matter"
    return f"{safe}-{now.strftime('%Y%m%dT%H%M%SZ')}.zip"


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class Exports:
    """Creates and finds exports for the service's routes."""

    def __init__(self, store: Store, settings: ExportSettings) -> None:
        self.store = store
        self.settings = settings
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # made in the event loop that uses it
            self._limiter = anyio.CapacityLimiter(EXPORT_WORKERS)
        return self._limiter

    # ------------------------------------------------------------------ create
    async def create(self, p: Principal, req: ExportRequest, now: datetime) -> ExportInfo:
        """Check ``req`` against what ``p`` may see, then export (in a worker thread)."""
        await anyio.to_thread.run_sync(self._check, p, req)
        return await anyio.to_thread.run_sync(self._export, p, req, now,
                                              limiter=self.limiter)

    def _check(self, p: Principal, req: ExportRequest) -> None:
        """Refuse, with the field at fault, what the library would refuse in CLI terms,
        and answer a scoped token's questions about other products as about missing
        things."""
        store, scope = self.store, p.product
        if req.product is not None:
            if scope is not None and req.product != scope:
                raise Problem("not-found", f"no product {req.product!r} visible to this "
                              "token", field="body:product")
            if req.product not in store.config.products:
                raise Problem("unknown-product", f"unknown product {req.product!r}; "
                              "configured products: "
                              f"{', '.join(sorted(store.config.products))}",
                              field="body:product")
        if req.since and req.until and req.since >= req.until:
            raise Problem("invalid-body", "from must be earlier than to", field="body:to")
        products: set[str] = set()
        for i, aid in enumerate(req.artifacts):
            where = f"body:artifacts/{i}"
            try:
                art = store.get_by_id(aid) if _AID.match(aid) else None
            except NotFoundError:
                art = None
            if art is None or (scope is not None and art.product != scope):
                raise Problem("not-found", f"no artifact {aid[:80]!r}", field=where)
            if req.product is not None and art.product != req.product:
                raise Problem("export-refused", f"artifact {aid} is in product "
                              f"{art.product!r}, not {req.product!r}", field=where)
            products.add(art.product)
        if len(products) > 1:
            raise Problem("export-refused", f"the artifacts span products "
                          f"{', '.join(sorted(products))}; a package holds one product: "
                          "export each product's artifacts separately",
                          field="body:artifacts")
        if req.artifacts:
            return
        visible = [h for h in store.holds(include_released=True)
                   if scope is None or h.product == scope]
        if req.holds:
            by_id = {h.id: h for h in visible}
            chosen: list[Hold] = []
            for i, hid in enumerate(req.holds):
                where = f"body:holds/{i}"
                h = by_id.get(hid)
                if h is None:
                    raise Problem("not-found", f"no hold {hid[:80]!r}", field=where)
                if h.matter != req.matter:
                    raise Problem("export-refused", f"hold {hid} belongs to matter "
                                  f"{h.matter!r}, not {req.matter!r}", field=where)
                if req.product is not None and h.product != req.product:
                    # The library would fall back to the whole product: refuse instead.
                    raise Problem("export-refused", f"hold {hid} is in product "
                                  f"{h.product!r}, not {req.product!r}", field=where)
                chosen.append(h)
            what, where = "the holds", "body:holds"
        else:
            chosen = [h for h in visible if h.matter == req.matter]
            what, where = f"matter {req.matter!r}'s holds", "body:product"
            if not chosen and req.product is None:
                raise Problem(
                    "not-found", f"matter {req.matter!r} has no legal hold visible to this "
                    "token; name what to export with holds or artifacts, or give product "
                    "to export all of a product's artifacts", field="body:matter")
            if chosen and req.product is not None and all(
                    h.product != req.product for h in chosen):
                raise Problem(
                    "export-refused", f"matter {req.matter!r} has no legal hold in product "
                    f"{req.product!r} (its holds are in "
                    f"{', '.join(sorted({str(h.product) for h in chosen}))}); name the "
                    "artifacts with artifacts, or export one of those products",
                    field="body:product")
        spans = sorted({str(h.product) for h in chosen})
        if req.product is None and len(spans) > 1:
            raise Problem("export-refused", f"{what} span products {', '.join(spans)}; a "
                          "package holds one product: give product (one export per "
                          "product)", field=where)

    def _export(self, p: Principal, req: ExportRequest, now: datetime) -> ExportInfo:
        root = self.settings.directory
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".partial-", dir=root))
        try:
            return self._export_into(work, p, req, now)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    def _export_into(self, work: Path, p: Principal, req: ExportRequest, now: datetime
                     ) -> ExportInfo:
        s = self.settings
        out = work / _package_name(req.matter, now)
        try:
            res = export_package(
                self.store, matter=req.matter, out=out, reason=req.reason, actor=p.actor,
                product=req.product, since=req.since, until=req.until,
                artifact_ids=req.artifacts, hold_ids=req.holds, now=now,
                evidence_key_file=s.evidence_key_file, organisation=s.organisation,
                load_file=req.load_file, tsa_url=s.tsa_url, scope=p.product)
        except EvidenceError as exc:
            raise self._problem(exc, req) from exc
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise Problem("disk-full", "the exports directory's disk is full; nothing "
                              "was kept") from exc
            raise
        info = ExportInfo(
            export_id=f"export-{res.log_index}", matter=res.matter, product=res.product,
            package=out.name, sha256=_sha256(out), size=out.stat().st_size,
            log_index=res.log_index, leaf_hash=res.leaf_hash,
            checkpoint_size=res.checkpoint_size, artifacts=res.artifacts,
            disposed=res.disposed, records=res.records, holds=res.holds,
            evidence_key=res.evidence_key, timestamped=res.timestamped,
            created=format_time(now), actor=p.actor)
        meta = work / META_FILE
        with open(meta, "x", encoding="utf-8") as f:
            json.dump(asdict(info), f, ensure_ascii=False, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        # Visible under its id only when complete: a crash leaves a .partial-* directory.
        os.rename(work, s.directory / info.export_id)
        return info

    def _problem(self, exc: EvidenceError, req: ExportRequest) -> Problem:
        cause = exc.__cause__
        if isinstance(cause, TimestampRequestError):
            return Problem("timestamp-failed", str(exc).replace(
                "no package was written; retry, or export without --tsa",
                "no package was kept"))
        if isinstance(cause, EvidenceKeyError):
            log.error("evidence export: %s", exc)
            return Problem("unavailable", "the evidence signing key cannot be used; an "
                           "operator must fix it (the service log names the problem)",
                           action="Ask an operator to check DEPOSITORY_EVIDENCE_KEY or "
                           "STORE/keys/evidence.key.")
        text = str(exc)
        if text.startswith("nothing to export"):
            field = "body:from" if req.since or req.until else "body"
            return Problem("export-refused", text, field=field,
                           action="Widen the selection: other from/to, holds or artifacts.")
        # Other refusals (a damaged store, a concurrent disposal) name their remedy.
        return Problem("export-refused", text, field="body")

    # -------------------------------------------------------------------- find
    def find(self, p: Principal, export_id: str) -> tuple[ExportInfo, Path]:
        """The export and its zip's path, if ``p`` may fetch it; else a 404 problem."""
        if p.role != LEGAL or not _ID.match(export_id):
            raise _not_found(export_id)
        d = self.settings.directory / export_id
        try:
            raw = json.loads((d / META_FILE).read_text(encoding="utf-8"))
            info = ExportInfo(**raw)
        except (OSError, ValueError, TypeError):
            raise _not_found(export_id) from None
        if p.product is not None and info.product != p.product:
            raise _not_found(export_id)
        path = d / info.package
        if info.export_id != export_id or "/" in info.package or not path.is_file():
            raise _not_found(export_id)
        return info, path

