"""Export an evidence package: a signed, self-verifying BagIt bag for one matter.

The export works from a snapshot of the log (its size when the export starts), in
three streaming passes, so memory does not grow with the number of artifacts:

A. **Select** the artifacts (named ones, a hold's, the matter's holds', or a product's
   in a time range) into a scratch SQLite table; note the holds that cover them.
B. **Scan** the log once, in order, and copy every record about a selected artifact
   (put, refusals, retention changes, disposal) or a covering hold (place, release) into
   ``data/records/`` verbatim.
C. **Copy** each live artifact's bytes (re-hashed against its record on the way), and
   write its ``items.jsonl`` line (and load-file row) from its records.

Then the ``evidence.export`` record is appended (it binds the item list, the record set
and the evidence key), one checkpoint is signed covering it, and every record's
inclusion proof is built against that checkpoint. The human index, custody log,
manifests, ``bag-info.txt`` and the tag-manifest signature (and RFC 3161 timestamp)
finish the bag, which appears at ``out`` only once complete.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from depository import __version__
from depository.evidence import _dat, _render
from depository.evidence._bag import BagWriter
from depository.evidence._keys import EvidenceKeyError, evidence_key
from depository.evidence._tsa import TimestampRequestError, timestamp
from depository.signing import sign_note
from depository.store import (
    Artifact,
    Hold,
    NotFoundError,
    Store,
    StoreError,
    format_time,
    hold_covers,
)
from depository.tlog import merkle
from depository.tlog.checkpoint import format_proof_file, parse_checkpoint
from depository.tlog.note import parse_note
from depository.tlog.record import canonical_json, parse_record
from depository.verifier.package import (
    ARTIFACT_TYPES,
    EXPORT_TYPE,
    HOLD_TYPES,
    PROFILE,
    RECORD_DIGITS,
    SIGNATURE_HEADER,
)

LOAD_FILE_FORMATS = ("dat",)
DEFAULT_INDEX_LIMIT = 500
_PAGE = 500
_EXT = re.compile(r"\.[A-Za-z0-9]{1,8}\Z")


class EvidenceError(Exception):
    """The export was refused or failed; nothing was written at the output path."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    path: Path
    matter: str
    product: str
    log_index: int
    leaf_hash: str
    checkpoint_size: int
    artifacts: int
    disposed: int
    records: int
    holds: int
    payload_files: int
    payload_bytes: int
    evidence_key: str
    items_in_index: int
    timestamped: bool

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        return out


@dataclass
class _Selection:
    product: str
    holds: list[Hold]  # holds named by --hold or the matter (the selection)
    covering: dict[str, Hold]  # every hold covering a selected artifact, by id
    count: int


def export_package(
    store: Store, *, matter: str, out: Path, reason: str, actor: str,
    product: str | None = None, since: datetime | None = None, until: datetime | None = None,
    artifact_ids: Sequence[str] = (), hold_ids: Sequence[str] = (),
    now: datetime | None = None, evidence_key_file: Path | None = None,
    organisation: str | None = None, load_file: str | None = None,
    tsa_url: str | None = None, tsa_timeout: float = 30.0,
    index_limit: int = DEFAULT_INDEX_LIMIT, progress: Callable[[str], None] | None = None,
    scope: str | None = None,
) -> ExportResult:
    """Export the evidence package for ``matter`` to ``out`` (``*.zip``, else a directory).

    Selection: ``artifact_ids`` if given; else the artifacts covered by ``hold_ids``; else
    those covered by the matter's holds (released or not); else, with ``product``, all of
    the product's artifacts. ``since``/``until`` narrow any of these by creation time.
    A package holds one product: a matter whose holds span several needs ``product``.
    ``scope`` (a product-scoped caller's product) exports that product and treats every
    other product's holds as absent, so no refusal reveals them.

    The store must be open for writing: the export is appended to its log. Raises
    :class:`EvidenceError` (nothing written at ``out``) or a store error.
    """
    matter = matter.strip()
    if not matter or not reason.strip():
        raise EvidenceError("an export needs a matter id and a reason (both are recorded)")
    if load_file is not None and load_file not in LOAD_FILE_FORMATS:
        raise EvidenceError(f"unknown load file format {load_file!r}; supported: dat")
    if index_limit < 0:
        raise EvidenceError("index_limit must be non-negative")
    if scope is not None:
        if product not in (None, scope):
            raise EvidenceError(f"a caller scoped to product {scope!r} may export only it")
        product = scope
    out = Path(out)
    if out.exists():
        raise EvidenceError(f"{out} already exists; choose a new path (packages are never "
                            "overwritten)")
    if not out.parent.is_dir():
        raise EvidenceError(f"{out.parent} is not a directory")
    now = (now or store.clock()).astimezone(UTC)
    note = progress or (lambda _msg: None)
    try:
        signer, evidence_vkey = evidence_key(store.path, store.origin, evidence_key_file)
    except EvidenceKeyError as exc:
        raise EvidenceError(str(exc)) from exc
    as_zip = out.suffix.lower() == ".zip"
    bag_name = out.stem if as_zip else out.name
    bag = BagWriter(out, as_zip=as_zip, bag_name=bag_name,
                    date_time=now.timetuple()[:6] if now.year >= 1980 else (1980, 1, 1, 0, 0, 0))
    try:
        exporter = _Export(store, bag, matter=matter, reason=reason.strip(), actor=actor,
                           now=now, signer=signer, evidence_vkey=evidence_vkey,
                           organisation=organisation or store.origin, load_file=load_file,
                           tsa_url=tsa_url, tsa_timeout=tsa_timeout, index_limit=index_limit,
                           note=note, bag_name=bag_name, out=out)
        try:
            return exporter.run(product=product, since=since, until=until,
                                artifact_ids=artifact_ids, hold_ids=hold_ids, scope=scope)
        finally:
            exporter.db.close()
    except BaseException:
        bag.abort()
        raise


class _Export:
    def __init__(
        self, store: Store, bag: BagWriter, *, matter: str, reason: str, actor: str,
        now: datetime, signer: str, evidence_vkey: str, organisation: str,
        load_file: str | None, tsa_url: str | None, tsa_timeout: float, index_limit: int,
        note: Callable[[str], None], bag_name: str, out: Path,
    ) -> None:
        self.store = store
        self.bag = bag
        self.matter = matter
        self.reason = reason
        self.actor = actor
        self.now = now
        self.now_text = format_time(now)
        self.signer = signer
        self.evidence_vkey = evidence_vkey
        self.organisation = organisation
        self.load_file = load_file
        self.tsa_url = tsa_url
        self.tsa_timeout = tsa_timeout
        self.index_limit = index_limit
        self.note = note
        self.bag_name = bag_name
        self.out = out
        self.db = sqlite3.connect(bag.workdir / "scratch.db", isolation_level=None)
        self.db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            "CREATE TABLE sel (aid TEXT PRIMARY KEY, put_idx INTEGER NOT NULL);"
            "CREATE TABLE rec (idx INTEGER PRIMARY KEY, aid TEXT, type TEXT NOT NULL);"
            "CREATE INDEX rec_aid ON rec (aid);"
            "CREATE TABLE state (aid TEXT PRIMARY KEY, disposal_idx INTEGER, retain TEXT);"
        )

    # ------------------------------------------------------------------ run
    def run(self, *, product: str | None, since: datetime | None, until: datetime | None,
            artifact_ids: Sequence[str], hold_ids: Sequence[str], scope: str | None
            ) -> ExportResult:
        size0 = self.store.size()
        sel = self.select(size0, product, since, until, artifact_ids, hold_ids, scope)
        self.note(f"selected {sel.count} artifacts of product {sel.product}")
        records, records_digest, releases = self.scan(size0, sel)
        self.note(f"copied {records} audit records")
        items, disposed, items_sha256, index_items, total_items = self.copy_items(sel, releases)
        self.note(f"copied {items - disposed} artifacts' bytes ({disposed} disposed)")
        body = {
            "matter": self.matter,
            "reason": self.reason,
            "selection": self.selection_json(sel, since, until, artifact_ids),
            "artifacts": items,
            "disposed": disposed,
            "records": records,
            "items_sha256": items_sha256,
            "records_sha256": records_digest,
            "evidence_key": self.evidence_vkey,
            "timestamp_authority": self.tsa_url or None,
            "tool_version": __version__,
        }
        export_idx, leaf_hash = self.store.append_event(
            EXPORT_TYPE, actor=self.actor, product=sel.product, body=body)
        cp_note = self.store.checkpoint()
        cp = parse_checkpoint(parse_note(cp_note)[0])
        if cp.size <= export_idx:
            raise EvidenceError("the signed checkpoint does not cover the export record")
        leaf = next(iter(self.store.log_entries(export_idx, export_idx + 1)))[1]
        export_rec = parse_record(leaf, index=export_idx)
        self.bag.payload_bytes_file(_record_file(export_idx), leaf)
        self.db.execute("INSERT INTO rec VALUES (?, NULL, ?)", (export_idx, EXPORT_TYPE))
        self.note(f"export recorded at log index {export_idx}; checkpoint size {cp.size}")
        self.write_proofs(cp.size, cp_note)
        self.bag.payload_bytes_file("checkpoint.txt", cp_note)
        self.bag.payload_bytes_file("log.vkey", (self.store.verifier_key + "\n").encode())
        self.bag.payload_bytes_file("evidence.vkey", (self.evidence_vkey + "\n").encode())
        custody = {
            "seq": 0, "prev_sha256": None, "event": "export", "time": self.now_text,
            "log_time": export_rec.time, "actor": self.actor, "product": sel.product,
            **{k: body[k] for k in ("matter", "reason", "items_sha256", "records_sha256",
                                    "artifacts", "disposed", "records", "evidence_key",
                                    "tool_version")},
            "tool": "depository", "log_origin": cp.origin, "log_index": export_idx,
            "leaf_hash": leaf_hash.hex(), "checkpoint_size": cp.size,
            "selection": body["selection"], "package": self.out.name,
        }
        self.bag.payload_bytes_file("custody.jsonl", canonical_json(custody) + b"\n")
        self.bag.payload_copy("items.jsonl", self.bag.workdir / "items.jsonl")
        if self.load_file == "dat":
            self.bag.payload_copy("loadfile.dat", self.bag.workdir / "loadfile.dat")
        summary = self.pdf_summary(sel, body, export_idx, leaf_hash, cp_note, cp.size,
                                   cp.root_hash.hex())
        holds = [self.hold_row(h, releases) for h in sorted(
            sel.covering.values(), key=lambda h: h.placed_index)]
        self.note("rendering index.pdf")
        pdf = _render.render_pdf(summary, holds, index_items, total_items - len(index_items))
        self.bag.payload_bytes_file("index.pdf", pdf)
        tag_manifest = self.bag.write_tags(self.bag_info(sel, body, export_idx, cp.origin,
                                                         cp.size))
        signature = sign_note(SIGNATURE_HEADER + tag_manifest, self.signer)
        tsr = None
        if self.tsa_url:
            self.note(f"timestamping the tag manifest at {self.tsa_url}")
            try:
                tsr = timestamp(tag_manifest, self.tsa_url, timeout=self.tsa_timeout)
            except TimestampRequestError as exc:
                raise EvidenceError(f"{exc}. The export is recorded in the log (index "
                                    f"{export_idx}) but no package was written; retry, or "
                                    "export without --tsa") from exc
        files, octets = self.bag.payload_files, self.bag.payload_bytes
        self.bag.finish(signature, tsr)
        return ExportResult(
            path=self.out, matter=self.matter, product=sel.product, log_index=export_idx,
            leaf_hash=leaf_hash.hex(), checkpoint_size=cp.size, artifacts=items,
            disposed=disposed, records=records, holds=len(sel.covering),
            payload_files=files, payload_bytes=octets, evidence_key=self.evidence_vkey,
            items_in_index=len(index_items), timestamped=tsr is not None,
        )

    # ------------------------------------------------------------------ pass A
    def select(self, size0: int, product: str | None, since: datetime | None,
               until: datetime | None, artifact_ids: Sequence[str],
               hold_ids: Sequence[str], scope: str | None = None) -> _Selection:
        if product is not None:
            try:
                self.store.product(product)
            except StoreError as exc:
                raise EvidenceError(str(exc)) from exc
        lo = format_time(since) if since else None
        hi = format_time(until) if until else None
        all_holds = [h for h in self.store.holds(include_released=True)
                     if h.placed_index < size0 and scope in (None, h.product)]
        chosen: list[Hold] = []
        if hold_ids:
            by_id = {h.id: h for h in all_holds}
            for hid in hold_ids:
                h = by_id.get(hid)
                if h is None:
                    raise EvidenceError(f"no hold {hid!r}; list them with `depository hold list "
                                        "--all`")
                if h.matter != self.matter:
                    raise EvidenceError(f"hold {hid} belongs to matter {h.matter!r}, not "
                                        f"{self.matter!r}")
                if product is not None and h.product != product:
                    # Dropping it would leave no hold and fall through to exporting the
                    # whole product: refuse instead.
                    raise EvidenceError(f"hold {hid} is not in product {product!r}; export "
                                        "it without --product or name a hold of that product")
                chosen.append(h)
        elif not artifact_ids:
            chosen = [h for h in all_holds if h.matter == self.matter]
            if not chosen and product is None:
                raise EvidenceError(
                    f"matter {self.matter!r} has no legal holds; name what to export with "
                    "--hold, --artifact or --product (with --from/--to)")
            if chosen and product is not None and all(h.product != product for h in chosen):
                raise EvidenceError(
                    f"matter {self.matter!r} has no legal hold in product {product!r} (its "
                    f"holds are in {', '.join(sorted({str(h.product) for h in chosen}))}); "
                    "name the artifacts with --artifact")
        if product is None:
            products = sorted({h.product for h in chosen if h.product}) if chosen else []
            if artifact_ids:
                products = sorted({self._get(a).product for a in artifact_ids})
            if len(products) > 1:
                raise EvidenceError(
                    f"the selection spans products {', '.join(products)}; a package holds one "
                    "product (isolation): export one package per product with --product")
            if not products:
                raise EvidenceError("nothing selected: give --product, --hold or --artifact")
            product = products[0]
        chosen = [h for h in chosen if h.product == product]
        product_holds = [h for h in all_holds if h.product == product]
        covering: dict[str, Hold] = {}

        def add(art: Artifact) -> None:
            if art.product != product or art.log_index >= size0:
                return
            if (lo and art.created < lo) or (hi and art.created >= hi):
                return
            cur = self.db.execute("INSERT OR IGNORE INTO sel VALUES (?, ?)",
                                  (art.id, art.log_index))
            if cur.rowcount:
                for h in product_holds:
                    if hold_covers(h.product, h.scope, art):
                        covering[h.id] = h

        self.db.execute("BEGIN")
        if artifact_ids:
            for aid in artifact_ids:
                art = self._get(aid)
                if art.product != product:
                    # A scoped caller's answer for another product's artifact is a missing one's.
                    raise EvidenceError(f"no artifact {aid!r}" if scope is not None else
                                        f"artifact {aid} is not in product {product!r}")
                add(art)
        elif chosen:
            for h in chosen:
                if "artifact_ids" in h.scope:
                    for aid in h.scope["artifact_ids"]:
                        add(self._get(aid))
                else:
                    h_lo, h_hi = h.scope.get("from"), h.scope.get("to")
                    for art in self._artifacts(product, _max(lo, h_lo), _min(hi, h_hi)):
                        if hold_covers(h.product, h.scope, art):
                            add(art)
        else:
            for art in self._artifacts(product, lo, hi):
                add(art)
        self.db.execute("COMMIT")
        count = int(self.db.execute("SELECT count(*) FROM sel").fetchone()[0])
        if count == 0:
            raise EvidenceError(f"nothing to export: no artifact of product {product!r} "
                                "matches the selection")
        return _Selection(product, chosen, covering, count)

    def _get(self, aid: str) -> Artifact:
        try:
            return self.store.get_by_id(aid)
        except NotFoundError as exc:
            raise EvidenceError(str(exc)) from exc

    def _artifacts(self, product: str, lo: str | None, hi: str | None) -> Iterator[Artifact]:
        after: int | None = None
        while True:
            page = self.store.ls(product=product, since=lo, until=hi, after=after, limit=_PAGE)
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1].log_index

    # ------------------------------------------------------------------ pass B
    def scan(self, size0: int, sel: _Selection) -> tuple[int, str, dict[str, tuple[int, str]]]:
        """Copy every record about a selected artifact or covering hold; returns the count,
        SHA-256 over their leaf hashes in log order, and hold releases by hold id."""
        marker = b'"product":' + json.dumps(sel.product).encode()
        digest = hashlib.sha256()
        count = 0
        releases: dict[str, tuple[int, str]] = {}
        self.db.execute("BEGIN")
        for idx, leaf in self.store.log_entries(0, size0):
            if marker not in leaf:
                continue
            rec = parse_record(leaf, index=idx)
            if rec.product != sel.product:
                continue
            aid: str | None = None
            if rec.type in ARTIFACT_TYPES:
                aid = rec.body.get("artifact_id")
                if not isinstance(aid, str) or self.db.execute(
                        "SELECT 1 FROM sel WHERE aid = ?", (aid,)).fetchone() is None:
                    continue
                if rec.type == "artifact.dispose":
                    self.db.execute(
                        "INSERT INTO state VALUES (?, ?, NULL) ON CONFLICT (aid) DO UPDATE "
                        "SET disposal_idx = excluded.disposal_idx", (aid, idx))
                elif rec.type == "retention.extend":
                    self.db.execute(
                        "INSERT INTO state VALUES (?, NULL, ?) ON CONFLICT (aid) DO UPDATE "
                        "SET retain = max(coalesce(retain, ''), excluded.retain)",
                        (aid, rec.body.get("retain_until")))
            elif rec.type in HOLD_TYPES:
                hid = rec.body.get("hold_id")
                if hid not in sel.covering:
                    continue
                if rec.type == "hold.release":
                    releases[str(hid)] = (idx, rec.time)
            else:
                continue
            self.db.execute("INSERT INTO rec VALUES (?, ?, ?)", (idx, aid, rec.type))
            self.bag.payload_bytes_file(_record_file(idx), leaf)
            digest.update(merkle.leaf_hash(leaf))
            count += 1
        self.db.execute("COMMIT")
        missing = self.db.execute(
            "SELECT count(*) FROM sel s WHERE NOT EXISTS (SELECT 1 FROM rec r WHERE "
            "r.idx = s.put_idx)").fetchone()[0]
        if missing:
            raise EvidenceError(f"{missing} selected artifacts' put records were not found in "
                                "the log; run `depository verify store`")
        return count, digest.hexdigest(), releases

    # ------------------------------------------------------------------ pass C
    def copy_items(self, sel: _Selection, releases: Mapping[str, tuple[int, str]]
                   ) -> tuple[int, int, str, list[dict[str, Any]], int]:
        items_hash = hashlib.sha256()
        index_rows: list[dict[str, Any]] = []
        n = disposed = 0
        dat = open(self.bag.workdir / "loadfile.dat", "wb") if self.load_file else None  # noqa: SIM115
        prefix = re.sub(r"[^A-Z0-9]", "", self.matter.upper())[:10] or "DOC"
        try:
            if dat is not None:
                dat.write(_dat.dat_header())
            with open(self.bag.workdir / "items.jsonl", "wb") as items:
                rows = self.db.execute(
                    "SELECT s.aid, s.put_idx, st.disposal_idx, st.retain FROM sel s "
                    "LEFT JOIN state st ON st.aid = s.aid ORDER BY s.put_idx")
                for aid, put_idx, disposal_idx, retain in rows:
                    n += 1
                    item, md5 = self.copy_item(aid, put_idx, disposal_idx, retain, sel)
                    if item["disposed"]:
                        disposed += 1
                    line = canonical_json(item) + b"\n"
                    items.write(line)
                    items_hash.update(line)
                    if dat is not None:
                        dat.write(_dat.dat_line(_dat_row(item, f"{prefix}-{n:07d}", md5)))
                    if len(index_rows) < self.index_limit:
                        index_rows.append(_index_row(n, item))
                    if n % 1000 == 0:
                        self.note(f"{n}/{sel.count} items")
        finally:
            if dat is not None:
                dat.close()
        return n, disposed, items_hash.hexdigest(), index_rows, n

    def copy_item(self, aid: str, put_idx: int, disposal_idx: int | None, retain: str | None,
                  sel: _Selection) -> tuple[dict[str, Any], str]:
        put = self.store.record(put_idx)
        b = put.body
        if put.type != "artifact.put" or b.get("artifact_id") != aid:
            raise EvidenceError(f"log record {put_idx} is not {aid}'s artifact.put")
        art = self._get(aid)
        recs = [int(r[0]) for r in self.db.execute(
            "SELECT idx FROM rec WHERE aid = ? ORDER BY idx", (aid,))]
        holds = sorted((h.id for h in sel.covering.values()
                        if hold_covers(h.product, h.scope, art)),
                       key=lambda hid: int(hid.rsplit("-", 1)[-1]) if hid[-1:].isdigit() else 0)
        retain_until = b["retain_until"]
        if retain and retain > retain_until:
            retain_until = retain
        path = None
        md5 = ""
        if disposal_idx is None:
            path = f"artifacts/{aid}{_extension(b['name'])}"
            try:
                stream = self.store.open_content(art)
            except NotFoundError as exc:
                raise EvidenceError(f"{exc} during the export; run it again") from exc
            with stream, self.bag.payload(path, size_hint=b["size"], extra=("md5",)) as entry:
                entry.copy_from(stream)
            if entry.sha256.hexdigest() != b["sha256"] or entry.size != b["size"]:
                raise EvidenceError(
                    f"artifact {aid} ({b['name']}): the stored bytes hash to "
                    f"{entry.sha256.hexdigest()} ({entry.size} bytes), not the recorded "
                    f"{b['sha256']} ({b['size']} bytes); the store is damaged: run "
                    "`depository scrub` and `depository verify store`")
            md5 = entry.extra["md5"].hexdigest()
        item = {
            "artifact_id": aid, "product": put.product, "name": b["name"], "path": path,
            "sha256": b["sha256"], "size": b["size"], "media_type": b["media_type"],
            "created": put.time, "actor": put.actor, "retain_until": retain_until,
            "metadata": b["metadata"], "provenance": b["provenance"], "log_index": put_idx,
            "disposed": disposal_idx is not None, "disposal_index": disposal_idx,
            "holds": holds, "records": recs,
        }
        return item, md5

    # ------------------------------------------------------------------ proofs
    def write_proofs(self, size: int, cp_note: bytes) -> None:
        for (idx,) in self.db.execute("SELECT idx FROM rec ORDER BY idx"):
            proof = format_proof_file(idx, self.store.inclusion_proof(idx, size), cp_note)
            self.bag.payload_bytes_file(f"proofs/{idx:0{RECORD_DIGITS}d}.tlog-proof", proof)

    # ------------------------------------------------------------------ text
    def selection_json(self, sel: _Selection, since: datetime | None, until: datetime | None,
                       artifact_ids: Sequence[str]) -> dict[str, Any]:
        return {
            "hold_ids": [h.id for h in sel.holds],
            "artifacts_named": len(artifact_ids),
            "from": format_time(since) if since else None,
            "to": format_time(until) if until else None,
        }

    def selection_text(self, sel: _Selection, body: Mapping[str, Any]) -> str:
        s = body["selection"]
        if s["artifacts_named"]:
            text = f"{s['artifacts_named']} artifacts named by id"
        elif sel.holds:
            text = "artifacts under " + ", ".join(
                f"{h.id}" for h in sel.holds) + f" (matter {self.matter})"
        else:
            text = f"all artifacts of product {sel.product}"
        if s["from"] or s["to"]:
            text += f", created from {s['from'] or 'the start'} to {s['to'] or 'now'}"
        return text

    def pdf_summary(self, sel: _Selection, body: Mapping[str, Any], export_idx: int,
                    leaf_hash: bytes, cp_note: bytes, cp_size: int, root: str
                    ) -> dict[str, Any]:
        example = self.db.execute("SELECT min(idx) FROM rec").fetchone()[0]
        return {
            "matter": self.matter, "product": sel.product,
            "product_name": self.store.product(sel.product).name,
            "organisation": self.organisation, "export_time": self.now_text,
            "actor": self.actor, "reason": self.reason, "origin": self.store.origin,
            "log_index": export_idx, "leaf_hash": leaf_hash.hex(),
            "checkpoint_size": cp_size, "checkpoint_root": root,
            "artifacts": body["artifacts"], "disposed": body["disposed"],
            "records": body["records"], "selection_text": self.selection_text(sel, body),
            "log_key": self.store.verifier_key, "evidence_key": self.evidence_vkey,
            "tool_version": __version__, "load_file": self.load_file is not None,
            "timestamped": bool(self.tsa_url), "package_name": self.out.name,
            "bag_name": self.bag_name, "example_index": f"{example:0{RECORD_DIGITS}d}",
        }

    def hold_row(self, h: Hold, releases: Mapping[str, tuple[int, str]]) -> dict[str, Any]:
        rel = releases.get(h.id)
        return {
            "hold_id": h.id, "matter": h.matter, "reason": h.reason, "actor": h.actor,
            "placed": h.placed_time,
            "status": f"released {rel[1]} (record {rel[0]})" if rel else "in force at export",
        }

    def bag_info(self, sel: _Selection, body: Mapping[str, Any], export_idx: int,
                 origin: str, cp_size: int) -> bytes:
        fields = [
            ("Source-Organization", self.organisation),
            ("External-Description", f"Depository evidence package for matter {self.matter} "
                                     f"(product {sel.product})"),
            ("External-Identifier", f"{origin}/export-{export_idx}"),
            ("Bag-Group-Identifier", self.matter),
            ("Bagging-Date", self.now.strftime("%Y-%m-%d")),
            ("Bag-Software-Agent", f"depository {__version__}"),
            ("Internal-Sender-Identifier", self.actor),
            ("Internal-Sender-Description", self.reason),
            ("Payload-Oxum", f"{self.bag.payload_bytes}.{self.bag.payload_files}"),
            ("Bag-Size", _render.size_text(self.bag.payload_bytes)),
            ("Depository-Profile", PROFILE),
            ("Depository-Matter", self.matter),
            ("Depository-Product", sel.product),
            ("Depository-Export-Time", self.now_text),
            ("Depository-Exporter", self.actor),
            ("Depository-Log-Origin", origin),
            ("Depository-Export-Log-Index", str(export_idx)),
            ("Depository-Checkpoint-Size", str(cp_size)),
            ("Depository-Artifacts", str(body["artifacts"])),
            ("Depository-Disposed-Artifacts", str(body["disposed"])),
            ("Depository-Records", str(body["records"])),
            ("Depository-Evidence-Key", self.evidence_vkey),
        ]
        return "".join(f"{k}: {' '.join(str(v).split())}\n" for k, v in fields).encode()


def _record_file(idx: int) -> str:
    return f"records/{idx:0{RECORD_DIGITS}d}.json"


def _extension(name: str) -> str:
    m = _EXT.search(name.rsplit("/", 1)[-1])
    return m.group().lower() if m else ""


def _max(a: str | None, b: Any) -> str | None:
    vals = [v for v in (a, b) if isinstance(v, str)]
    return max(vals) if vals else None


def _min(a: str | None, b: Any) -> str | None:
    vals = [v for v in (a, b) if isinstance(v, str)]
    return min(vals) if vals else None


def _index_row(n: int, item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "n": n, "name": item["name"], "artifact_id": item["artifact_id"],
        "size_text": _render.size_text(item["size"]), "media_type": item["media_type"],
        "created": item["created"], "actor": item["actor"],
        "retain_until": item["retain_until"], "holds": ", ".join(item["holds"]),
        "sha256": item["sha256"], "disposed": item["disposed"],
        "disposal_index": item["disposal_index"],
    }


def _dat_row(item: Mapping[str, Any], docid: str, md5: str) -> list[str]:
    created = datetime.fromisoformat(item["created"].replace("Z", "+00:00"))
    path = item["path"]
    return [
        docid, docid, docid, item["product"], item["artifact_id"],
        item["name"].rsplit("/", 1)[-1], path.replace("/", "\\") if path else "",
        item["media_type"], str(item["size"]), item["sha256"], md5,
        created.strftime("%m/%d/%Y"), created.strftime("%H:%M:%S"), item["created"],
        item["actor"], item["retain_until"], "Y" if item["disposed"] else "N",
        "; ".join(item["holds"]), str(item["log_index"]),
        canonical_json(item["metadata"]).decode(), canonical_json(item["provenance"]).decode(),
    ]
