"""Offline verification of evidence packages (``verify package``).

An evidence package is a BagIt bag (RFC 8493) written by ``depository evidence export``.
The recipient needs the package, the log's verifier key and this module: no store, no
network. Every file is checked, and every problem names the file (and the record or
``items.jsonl`` line) it was found in.

1. **Bag.** ``bagit.txt``; both payload manifests (``manifest-sha256.txt``,
   ``manifest-sha512.txt``) list every file under ``data/`` and nothing else, and every
   file is re-hashed with both algorithms (always full validation: the size-only
   ``Payload-Oxum`` is checked as well, never instead); both tag manifests match the
   tag files; no file outside the manifests except the tag manifests, their signature
   and their timestamp; no symbolic links or unsafe names.
2. **Log.** ``data/checkpoint.txt`` is signed by a trusted log key; every
   ``data/records/N.json`` is a canonical record whose ``seq`` is ``N`` and
   ``data/proofs/N.tlog-proof`` proves its inclusion under that same checkpoint.
3. **Export record.** Exactly one ``evidence.export`` record; its body binds
   ``items.jsonl`` (SHA-256), the set of exported records (SHA-256 over their leaf
   hashes), the counts and the evidence key. Every record belongs to its product.
4. **Items.** Each ``items.jsonl`` line equals its ``artifact.put`` record (name, hash,
   size, metadata, provenance, time, actor); retention equals the put's as extended by
   the included ``retention.extend`` records; a live item's file hashes to the record's
   SHA-256; a disposed item has its ``artifact.dispose`` record and no file; its holds'
   ``hold.place`` records are present. No stray artifacts, records or proofs.
5. **Custody.** ``data/custody.jsonl`` is hash-chained and its export entry equals the
   log-signed export record; ``bag-info.txt`` agrees with it.
6. **Signature.** ``tagmanifest.sig`` is a C2SP signed note whose text is
   ``depository-evidence/v1`` followed by ``tagmanifest-sha256.txt`` verbatim, signed by
   the evidence key (the one given, else the one the log-signed export record names).
7. **Timestamp** (optional ``tagmanifest.tsr``): an RFC 3161 ``TimeStampResp`` whose
   token's message imprint is the hash of ``tagmanifest-sha256.txt`` and whose CMS
   signature verifies with the certificate inside it (and chains to ``tsa_certs`` when
   given).

A package is read in place, from a directory or a zip (never extracted), one file at a
time; memory grows only with the number of files, not their sizes. Only the standard
library, ``cryptography`` and ``rfc8785`` are used.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from depository.tlog import merkle, safejson
from depository.tlog.checkpoint import (
    Checkpoint,
    parse_proof_file,
    verify_checkpoint,
)
from depository.tlog.errors import (
    MalformedInputError,
    ProofFileError,
    VerificationError,
)
from depository.tlog.note import parse_note, verify_note
from depository.tlog.record import Record, canonical_json, parse_record
from depository.verifier.files import InputFileError, open_regular
from depository.verifier.timestamp import (
    TimestampError,
    TimestampInfo,
    parse_timestamp_response,
    verify_timestamp,
)

if TYPE_CHECKING:
    from depository.verifier.commands import Outcome

__all__ = [
    "PROFILE",
    "SIGNATURE_HEADER",
    "PackageResult",
    "PackageVerificationError",
    "Problem",
    "TimestampError",
    "TimestampInfo",
    "package_outcome",
    "package_result",
    "parse_timestamp_response",
    "verify_package",
    "verify_timestamp",
]

# What reading a member of a damaged zip can raise: a truncated deflate stream ends in
# EOFError, a corrupt one in zlib.error, neither of which is an OSError.
_MEMBER_READ_ERRORS = (OSError, EOFError, zlib.error, zipfile.BadZipFile, InputFileError)

PROFILE = "depository-evidence/v1"
"""The package profile; also the first line of the tag-manifest signature's note text."""

SIGNATURE_HEADER = (PROFILE + "\n").encode()
"""The signed note text is this line followed by ``tagmanifest-sha256.txt`` verbatim."""

# Bag layout (paths relative to the bag root).
BAGIT_TXT = "bagit.txt"
BAG_INFO = "bag-info.txt"
PAYLOAD_MANIFESTS = ("manifest-sha256.txt", "manifest-sha512.txt")
TAG_MANIFESTS = ("tagmanifest-sha256.txt", "tagmanifest-sha512.txt")
SIGNATURE_FILE = "tagmanifest.sig"
TIMESTAMP_FILE = "tagmanifest.tsr"
UNLISTED_TAG_FILES = frozenset((*TAG_MANIFESTS, SIGNATURE_FILE, TIMESTAMP_FILE))
ALGORITHMS = ("sha256", "sha512")
BAGIT_TXT_BYTES = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"

DATA = "data/"
ITEMS = "data/items.jsonl"
CUSTODY = "data/custody.jsonl"
CHECKPOINT = "data/checkpoint.txt"
LOG_VKEY = "data/log.vkey"
EVIDENCE_VKEY = "data/evidence.vkey"
INDEX_PDF = "data/index.pdf"
LOAD_FILE = "data/loadfile.dat"
RECORDS_DIR = "data/records/"
PROOFS_DIR = "data/proofs/"
ARTIFACTS_DIR = "data/artifacts/"
RECORD_DIGITS = 12

ARTIFACT_TYPES = frozenset({
    "artifact.put", "artifact.refused", "retention.extend", "retention.refused",
    "artifact.dispose",
})
HOLD_TYPES = frozenset({"hold.place", "hold.release"})
EXPORT_TYPE = "evidence.export"

ITEM_KEYS = frozenset({
    "artifact_id", "product", "name", "path", "sha256", "size", "media_type", "created",
    "actor", "retain_until", "metadata", "provenance", "log_index", "disposed",
    "disposal_index", "holds", "records",
})
CUSTODY_EXPORT_FIELDS = (
    "matter", "reason", "items_sha256", "records_sha256", "artifacts", "disposed", "records",
    "evidence_key", "tool_version",
)

MAX_PROBLEMS = 1000
"""Problems kept in a result (all are counted in ``problems_total``)."""

MAX_ZIP_ENTRIES = 5_000_000
MAX_TOTAL_BYTES = 1 << 40  # 1 TiB declared uncompressed: a zip claiming more is refused
MAX_RATIO = 1000  # compression ratio above which a large member is refused (zip bomb)
MAX_TEXT_FILE = 64 * 1024 * 1024  # tag files, checkpoint, keys, one record or proof
_CHUNK = 1024 * 1024
_RECORD_RE = re.compile(rf"data/records/(\d{{{RECORD_DIGITS}}})\.json\Z")
_PROOF_RE = re.compile(rf"data/proofs/(\d{{{RECORD_DIGITS}}})\.tlog-proof\Z")
_HEX = {"sha256": re.compile(r"[0-9a-fA-F]{64}\Z"), "sha512": re.compile(r"[0-9a-fA-F]{128}\Z")}


class PackageVerificationError(VerificationError):
    """An evidence package failed verification (the message lists the problems)."""


class PackageInputError(MalformedInputError):
    """The path is not a readable package (no such file, not a directory or zip)."""


@dataclass(frozen=True)
class Problem:
    """One failed check: which check, the file (bag-relative) and record it concerns."""

    check: str
    message: str
    path: str | None = None
    index: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = self.path or ""
        if self.index is not None:
            where += f"{' ' if where else ''}(record {self.index})"
        return f"[{self.check}] {where + ': ' if where else ''}{self.message}"


@dataclass
class PackageResult:
    """What verifying a package found. ``ok`` only if there is no problem."""

    checks: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.problems_total == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": self.ok,
            "checks": list(self.checks),
            "problems": [p.to_json() for p in self.problems],
            "problems_total": self.problems_total,
            "summary": dict(self.summary),
        }


# =========================================================================== sources


class _Source:
    """Read-only access to the bag's files by bag-relative POSIX path."""

    label: str

    def files(self) -> dict[str, int]:
        """Every regular file and its size."""
        raise NotImplementedError

    def open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the source."""

    def read(self, name: str, limit: int = MAX_TEXT_FILE) -> bytes:
        with self.open(name) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise _FileTooLarge(f"larger than {limit} bytes")
        return data


class _FileTooLarge(Exception):
    pass


def _unsafe_name(name: str) -> str | None:
    """Why a member name cannot be a bag path, or None if it is fine."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return "absolute, empty or with a backslash or NUL"
    if re.match(r"[A-Za-z]:", name):
        return "has a drive letter"
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "has an empty, '.' or '..' component"
    return None


class _DirSource(_Source):
    def __init__(self, root: Path, problems: Callable[[Problem], None]) -> None:
        self.root = root
        self.label = str(root)
        self._files: dict[str, int] = {}
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            rel_dir = os.path.relpath(dirpath, root)
            for name in sorted(dirnames):
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    rel = _rel(rel_dir, name)
                    problems(Problem("unsafe", "a symbolic link; not allowed in a package",
                                     rel))
                    dirnames.remove(name)
            for name in filenames:
                full = os.path.join(dirpath, name)
                rel = _rel(rel_dir, name)
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    problems(Problem("unsafe", "a symbolic link; not allowed in a package", rel))
                elif not stat.S_ISREG(st.st_mode):
                    problems(Problem("unsafe", "not a regular file", rel))
                else:
                    self._files[rel] = st.st_size

    def files(self) -> dict[str, int]:
        return self._files

    def open(self, name: str) -> IO[bytes]:
        # Listed as a regular file, but it may have been swapped since: open it so that
        # a FIFO, a device or a link is refused (never waited on), and read no more than
        # the size it was listed with, plus one byte to notice it grew.
        fd, _ = open_regular(str(self.root / name), follow_symlinks=False, what="package file")
        return io.BufferedReader(_Capped(os.fdopen(fd, "rb"), self._files[name] + 1))


class _Capped(io.RawIOBase):
    """A read-only stream that ends after ``limit`` bytes of ``inner``."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self._inner = inner
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._left)
        if n <= 0:
            return 0
        data = self._inner.read(n)
        view[:len(data)] = data
        self._left -= len(data)
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


def _rel(rel_dir: str, name: str) -> str:
    return name if rel_dir == "." else f"{rel_dir.replace(os.sep, '/')}/{name}"


class _ZipSource(_Source):
    def __init__(self, path: Path, problems: Callable[[Problem], None]) -> None:
        self.label = str(path)
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise PackageInputError(f"{path}: not a readable zip file: {exc}") from exc
        infos = self.zf.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            self.zf.close()
            raise PackageInputError(f"{path}: more than {MAX_ZIP_ENTRIES} zip entries")
        total = sum(i.file_size for i in infos)
        if total > MAX_TOTAL_BYTES:
            self.zf.close()
            raise PackageInputError(f"{path}: declares {total} bytes uncompressed (over the "
                                    f"{MAX_TOTAL_BYTES}-byte cap)")
        names = [i.filename for i in infos if not i.is_dir()]
        prefix = ""
        if BAGIT_TXT not in names and names:
            top = {n.split("/", 1)[0] for n in names}
            if len(top) == 1 and all("/" in n for n in names):
                prefix = top.pop() + "/"
        self._infos: dict[str, zipfile.ZipInfo] = {}
        self._files: dict[str, int] = {}
        for info in infos:
            raw = info.filename
            bad = _unsafe_name(raw.rstrip("/") if info.is_dir() else raw)
            if bad:
                problems(Problem("unsafe", f"zip entry name is unsafe ({bad})", raw))
                continue
            if info.is_dir():
                continue
            name = raw[len(prefix):] if raw.startswith(prefix) else raw
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                problems(Problem("unsafe", "a symbolic link; not allowed in a package", name))
                continue
            if info.flag_bits & 0x1:
                problems(Problem("unsafe", "an encrypted zip entry", name))
                continue
            if (info.file_size > 64 * 1024 * 1024
                    and info.file_size > MAX_RATIO * max(info.compress_size, 1)):
                problems(Problem("unsafe", f"compression ratio over {MAX_RATIO}:1 "
                                 "(refused as a possible zip bomb)", name))
                continue
            if name in self._infos:
                problems(Problem("unsafe", "appears twice in the zip", name))
                continue
            self._infos[name] = info
            self._files[name] = info.file_size

    def files(self) -> dict[str, int]:
        return self._files

    def open(self, name: str) -> IO[bytes]:
        return self.zf.open(self._infos[name])

    def close(self) -> None:
        self.zf.close()


def _open_source(path: Path, problems: Callable[[Problem], None]) -> _Source:
    if path.is_dir():
        return _DirSource(path, problems)
    try:  # a FIFO or a device is refused here, not waited on by zipfile
        fd, _ = open_regular(str(path), what="package (a .zip, or give the bag directory)")
    except InputFileError as exc:
        raise PackageInputError(str(exc)) from None
    os.close(fd)
    if not zipfile.is_zipfile(path):
        raise PackageInputError(f"{path}: neither a directory nor a zip file")
    return _ZipSource(path, problems)


# =========================================================================== verifier


class _Verifier:
    def __init__(
        self, source: _Source, log_keys: Sequence[str], evidence_keys: Sequence[str],
        tsa_certs: Sequence[bytes], result: PackageResult,
    ) -> None:
        self.src = source
        self.log_keys = list(log_keys)
        self.evidence_keys = list(evidence_keys)
        self.tsa_certs = list(tsa_certs)
        self.res = result
        self.files = source.files()
        self.sha256: dict[str, str] = {}  # path -> hex, for every file hashed
        self.cp: Checkpoint | None = None
        self.cp_note: bytes | None = None
        # index -> (type, product, subject id, leaf hash)
        self.records: dict[int, tuple[str, str | None, str | None, bytes]] = {}
        self.export: Record | None = None
        self.export_leaf_hash: bytes | None = None
        self.product: str | None = None
        self.bag_info: dict[str, str] = {}

    # ------------------------------------------------------------------ reporting
    def fail(self, check: str, message: str, path: str | None = None,
             index: int | None = None) -> None:
        self.res.problems_total += 1
        if len(self.res.problems) < MAX_PROBLEMS:
            self.res.problems.append(Problem(check, message, path, index))

    def ok(self, text: str) -> None:
        self.res.checks.append(text)

    def text(self, name: str, check: str, *, required: bool = True) -> bytes | None:
        if name not in self.files:
            if required:
                self.fail(check, "missing", name)
            return None
        try:
            return self.src.read(name)
        except _FileTooLarge as exc:
            self.fail(check, str(exc), name)
        except _MEMBER_READ_ERRORS as exc:
            self.fail(check, f"unreadable: {exc}", name)
        return None

    # ------------------------------------------------------------------ steps
    def run(self) -> None:
        self.check_bagit_txt()
        self.check_payload()
        tag_ok = self.check_tag_manifests()
        self.check_bag_info()
        self.check_log()
        self.check_export_record()
        self.check_items()
        self.check_custody()
        self.check_bag_info_against_export()
        self.check_signature()
        self.check_timestamp()
        if tag_ok:
            self.ok("every tag file matches both tag manifests")

    def check_bagit_txt(self) -> None:
        data = self.text(BAGIT_TXT, "bagit")
        if data is None:
            return
        if data.replace(b"\r\n", b"\n") != BAGIT_TXT_BYTES:
            self.fail("bagit", "must declare 'BagIt-Version: 1.0' and "
                      "'Tag-File-Character-Encoding: UTF-8'", BAGIT_TXT)
        else:
            self.ok("bagit.txt declares BagIt 1.0, UTF-8 (RFC 8493)")

    def parse_manifest(self, name: str, alg: str, *, payload: bool) -> dict[str, str] | None:
        data = self.text(name, "manifest")
        if data is None:
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            self.fail("manifest", "not UTF-8", name)
            return None
        entries: dict[str, str] = {}
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split(None, 1)
            if len(parts) != 2 or not _HEX[alg].match(parts[0]):
                self.fail("manifest", f"line {n} is not '<{alg} hex> <path>'", name)
                continue
            path = _decode_manifest_path(parts[1].strip())
            if path.startswith("*"):
                path = path[1:]
            if _unsafe_name(path):
                self.fail("manifest", f"line {n}: unsafe path {path!r}", name)
                continue
            if payload != path.startswith(DATA):
                self.fail("manifest", f"line {n}: {path} is not a "
                          f"{'payload' if payload else 'tag'} file", name)
                continue
            if path in entries:
                self.fail("manifest", f"line {n}: {path} is listed twice", name)
                continue
            entries[path] = parts[0].lower()
        return entries

    def hash_file(self, name: str) -> dict[str, str] | None:
        hashes = {alg: hashlib.new(alg) for alg in ALGORITHMS}
        size = 0
        try:
            with self.src.open(name) as f:
                while chunk := f.read(_CHUNK):
                    size += len(chunk)
                    for h in hashes.values():
                        h.update(chunk)
        except _MEMBER_READ_ERRORS as exc:
            self.fail("unreadable", f"cannot be read: {exc}", name)
            return None
        out = {alg: h.hexdigest() for alg, h in hashes.items()}
        self.sha256[name] = out["sha256"]
        self.files[name] = size
        return out

    def check_payload(self) -> None:
        manifests = {}
        for name, alg in zip(PAYLOAD_MANIFESTS, ALGORITHMS, strict=True):
            m = self.parse_manifest(name, alg, payload=True)
            if m is not None:
                manifests[name] = (alg, m)
        payload = sorted(n for n in self.files if n.startswith(DATA))
        listed: set[str] = set()
        for _, m in manifests.values():
            listed.update(m)
        bad = 0
        for name in payload:
            for mname, (_, m) in manifests.items():
                if name not in m:
                    self.fail("manifest", f"a payload file not listed in {mname} (added?)", name)
                    bad += 1
            got = self.hash_file(name)
            if got is None:
                bad += 1
                continue
            differ = [(mname, alg, m[name]) for mname, (alg, m) in manifests.items()
                      if name in m and m[name] != got[alg]]
            if differ:
                self.fail("manifest", "changed: " + "; ".join(
                    f"its {alg} is {got[alg][:16]}…, {mname} says {want[:16]}…"
                    for mname, alg, want in differ), name)
                bad += 1
        present = set(payload)
        for name in sorted(listed - present):
            self.fail("manifest", "listed in the payload manifest but missing (removed?)", name)
            bad += 1
        if len(manifests) == len(PAYLOAD_MANIFESTS) and not bad:
            octets = sum(self.files[n] for n in payload)
            self.ok(f"payload: {len(payload)} files, {octets} bytes, every one re-hashed with "
                    "SHA-256 and SHA-512 and matching both manifests")

    def check_tag_manifests(self) -> bool:
        tag_files = sorted(n for n in self.files if not n.startswith(DATA))
        listed: set[str] = set()
        good = True
        hashed: dict[str, dict[str, str] | None] = {}
        changed: set[str] = set()
        for name, alg in zip(TAG_MANIFESTS, ALGORITHMS, strict=True):
            m = self.parse_manifest(name, alg, payload=False)
            if m is None:
                good = False
                continue
            for required in (BAGIT_TXT, BAG_INFO, *PAYLOAD_MANIFESTS):
                if required not in m:
                    self.fail("tag-manifest", f"does not list {required}", name)
                    good = False
            for path, want in sorted(m.items()):
                listed.add(path)
                if path in UNLISTED_TAG_FILES:
                    self.fail("tag-manifest", f"must not list {path}", name)
                    good = False
                    continue
                if path not in self.files:
                    self.fail("tag-manifest", f"listed in {name} but missing (removed?)", path)
                    good = False
                    continue
                if path not in hashed:
                    hashed[path] = self.hash_file(path)
                got = hashed[path]
                if got is None:
                    good = False
                elif got[alg] != want:
                    if alg == ALGORITHMS[0] or path not in changed:
                        self.fail("tag-manifest", f"changed: its {alg} is {got[alg][:16]}…, "
                                  f"{name} says {want[:16]}…", path)
                    changed.add(path)
                    good = False
        for name in tag_files:
            if name not in listed and name not in UNLISTED_TAG_FILES:
                self.fail("tag-manifest", "a file outside data/ that no tag manifest lists "
                          "(added?)", name)
                good = False
        return good

    def check_bag_info(self) -> None:
        data = self.text(BAG_INFO, "bag-info")
        if data is None:
            return
        try:
            info = _parse_bag_info(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            self.fail("bag-info", f"malformed: {exc}", BAG_INFO)
            return
        self.bag_info = info
        oxum = info.get("Payload-Oxum", "")
        m = re.fullmatch(r"(\d+)\.(\d+)", oxum)
        payload = [n for n in self.files if n.startswith(DATA)]
        octets = sum(self.files[n] for n in payload)
        if not m:
            self.fail("bag-info", f"Payload-Oxum {oxum!r} is not '<octets>.<files>'", BAG_INFO)
        elif (int(m[1]), int(m[2])) != (octets, len(payload)):
            self.fail("bag-info", f"Payload-Oxum says {m[1]} bytes in {m[2]} files; the "
                      f"payload has {octets} bytes in {len(payload)} files", BAG_INFO)
        else:
            self.ok(f"Payload-Oxum {oxum} matches the payload")
        if info.get("Depository-Profile") != PROFILE:
            self.fail("bag-info", f"Depository-Profile is not {PROFILE!r}", BAG_INFO)

    # ------------------------------------------------------------------ log
    def check_log(self) -> None:
        note = self.text(CHECKPOINT, "checkpoint")
        if note is not None:
            try:
                self.cp, _ = verify_checkpoint(note, self.log_keys)
                self.cp_note = note
                self.ok(f"checkpoint signed by the trusted log key {self.cp.origin}: tree size "
                        f"{self.cp.size}, root {self.cp.root_hash.hex()}")
                self.res.summary.update(origin=self.cp.origin, checkpoint_size=self.cp.size,
                                        checkpoint_root=self.cp.root_hash.hex())
            except VerificationError as exc:
                self.fail("checkpoint", f"does not verify with the trusted log key: {exc}",
                          CHECKPOINT)
        vkey = self.text(LOG_VKEY, "log-key")
        if vkey is not None and vkey.decode("utf-8", "replace").strip() not in self.log_keys:
            self.fail("log-key", "is not the log key you trust (whoever gave you the package "
                      "claims another key; rely on the one you obtained independently)",
                      LOG_VKEY)
        records: dict[int, str] = {}
        proofs: dict[int, str] = {}
        for name in self.files:
            if name.startswith(RECORDS_DIR):
                m = _RECORD_RE.match(name)
                if m is None:
                    self.fail("records", "unexpected file (records are "
                              f"{RECORDS_DIR}<{RECORD_DIGITS} digits>.json)", name)
                else:
                    records[int(m[1])] = name
            elif name.startswith(PROOFS_DIR):
                m = _PROOF_RE.match(name)
                if m is None:
                    self.fail("proofs", "unexpected file (proofs are "
                              f"{PROOFS_DIR}<{RECORD_DIGITS} digits>.tlog-proof)", name)
                else:
                    proofs[int(m[1])] = name
        for idx in sorted(set(proofs) - set(records)):
            self.fail("proofs", "a proof with no record", proofs[idx], idx)
        proven = 0
        for idx in sorted(records):
            name = records[idx]
            leaf = self.text(name, "record")
            if leaf is None:
                continue
            try:
                rec = parse_record(leaf, index=idx)
            except VerificationError as exc:
                self.fail("record", str(exc), name, idx)
                continue
            lh = merkle.leaf_hash(leaf)
            body = rec.body
            subject = body.get("artifact_id") if rec.type in ARTIFACT_TYPES else (
                body.get("hold_id") if rec.type in HOLD_TYPES else None)
            self.records[idx] = (rec.type, rec.product, subject if isinstance(subject, str)
                                 else None, lh)
            if rec.type == EXPORT_TYPE:
                if self.export is not None:
                    self.fail("export", "a second evidence.export record", name, idx)
                else:
                    self.export, self.export_leaf_hash = rec, lh
            elif rec.type not in ARTIFACT_TYPES | HOLD_TYPES:
                self.fail("isolation", f"record type {rec.type} does not belong in an "
                          "evidence package", name, idx)
            if idx not in proofs:
                self.fail("proof", "record has no inclusion proof", name, idx)
                continue
            pname = proofs[idx]
            pdata = self.text(pname, "proof")
            if pdata is None or self.cp is None or self.cp_note is None:
                continue
            try:
                pf = parse_proof_file(pdata)
                if pf.index != idx:
                    self.fail("proof", f"proves index {pf.index}, not {idx}", pname, idx)
                    continue
                if pf.checkpoint_note != self.cp_note:
                    self.fail("proof", f"its checkpoint differs from {CHECKPOINT} (a package "
                              "has exactly one checkpoint)", pname, idx)
                    continue
                # The note is byte-identical to the checkpoint verified above, so only the
                # inclusion remains to check (what verify_proof_file does after the note).
                if pf.index >= self.cp.size:
                    raise ProofFileError(f"index {pf.index} is not below the checkpoint size")
                merkle.verify_inclusion(lh, pf.index, self.cp.size, pf.proof,
                                        self.cp.root_hash)
                proven += 1
            except VerificationError as exc:
                self.fail("proof", f"does not prove the record under the checkpoint: {exc}",
                          pname, idx)
        if records and proven == len(records):
            self.ok(f"{proven} records: each canonical, and each proven included under the "
                    "checkpoint by its tlog-proof")
        self.res.summary["records"] = len(records)

    def check_export_record(self) -> None:
        ex = self.export
        if ex is None:
            self.fail("export", "no evidence.export record in the package", RECORDS_DIR)
            return
        self.product = ex.product
        b = ex.body
        name = _record_name(ex.seq)
        self.res.summary.update(
            export_index=ex.seq, matter=b.get("matter"), product=ex.product,
            exporter=ex.actor, export_time=ex.time, artifacts=b.get("artifacts"),
            disposed=b.get("disposed"),
        )
        needed = {"matter": str, "reason": str, "items_sha256": str, "records_sha256": str,
                  "artifacts": int, "disposed": int, "records": int, "evidence_key": str,
                  "tool_version": str}
        for key, typ in needed.items():
            if not isinstance(b.get(key), typ):
                self.fail("export", f"export record body lacks {key} ({typ.__name__})", name,
                          ex.seq)
                return
        if ex.product is None:
            self.fail("isolation", "the export record has no product", name, ex.seq)
        tsa = b.get("timestamp_authority")
        if isinstance(tsa, str) and TIMESTAMP_FILE not in self.files:
            self.fail("timestamp", f"missing: the export record says the tag manifest was "
                      f"timestamped by {tsa} (removed?)", TIMESTAMP_FILE, ex.seq)
        others = sorted(i for i in self.records if i != ex.seq)
        digest = hashlib.sha256(b"".join(self.records[i][3] for i in others)).hexdigest()
        good = True
        if digest != b["records_sha256"] or len(others) != b["records"]:
            self.fail("export", f"the package's {len(others)} records are not the "
                      f"{b['records']} the log says were exported (records_sha256 "
                      f"{b['records_sha256']}, got {digest}): a record was added or removed",
                      RECORDS_DIR, ex.seq)
            good = False
        items = self.sha256.get(ITEMS)
        if items is None:
            if ITEMS not in self.files:
                self.fail("items", "missing", ITEMS)
        elif items != b["items_sha256"]:
            self.fail("items", f"SHA-256 {items} is not the {b['items_sha256']} the log-signed "
                      f"export record (index {ex.seq}) binds", ITEMS, ex.seq)
            good = False
        for idx in others:
            product = self.records[idx][1]
            if product != ex.product:
                self.fail("isolation", f"record belongs to product {product!r}, not the "
                          f"package's {ex.product!r}", _record_name(idx), idx)
                good = False
        if good:
            self.ok(f"export record {ex.seq} (matter {b['matter']!r}, product {ex.product}, by "
                    f"{ex.actor} at {ex.time}) binds items.jsonl and all {len(others)} "
                    "records, all of that product")

    # ------------------------------------------------------------------ items
    def check_items(self) -> None:
        if ITEMS not in self.files or self.export is None:
            return
        put_of: dict[str, int] = {}
        dispose_of: dict[str, int] = {}
        recs_of: dict[str, set[int]] = {}
        holds: set[str] = set()
        for idx, (rtype, _, subject, _) in self.records.items():
            if rtype in ARTIFACT_TYPES and subject:
                recs_of.setdefault(subject, set()).add(idx)
                if rtype == "artifact.put":
                    put_of[subject] = idx
                elif rtype == "artifact.dispose":
                    dispose_of[subject] = idx
            elif rtype == "hold.place" and subject:
                holds.add(subject)
        seen: set[str] = set()
        paths: set[str] = set()
        n = 0
        disposed = 0
        bad = 0
        try:
            with self.src.open(ITEMS) as f:
                while raw := f.readline(MAX_TEXT_FILE + 1):
                    n += 1
                    where = f"{ITEMS} line {n}"
                    if len(raw) > MAX_TEXT_FILE:
                        self.fail("items", f"longer than {MAX_TEXT_FILE} bytes; no item is "
                                  "that large, so the file is refused from here on", where)
                        return
                    problems_before = self.res.problems_total
                    item = self.check_item(raw, where, put_of, dispose_of, recs_of, holds, seen,
                                           paths)
                    if item is not None and item.get("disposed") is True:
                        disposed += 1
                    if self.res.problems_total != problems_before:
                        bad += 1
        except _MEMBER_READ_ERRORS as exc:
            self.fail("items", f"unreadable: {exc}", ITEMS)
            return
        b = self.export.body
        if (n, disposed) != (b.get("artifacts"), b.get("disposed")):
            self.fail("items", f"{n} items ({disposed} disposed), but the export record says "
                      f"{b.get('artifacts')} ({b.get('disposed')} disposed)", ITEMS)
            bad += 1
        for aid in sorted(set(put_of) - seen):
            self.fail("items", f"artifact.put record for {aid} has no items.jsonl line",
                      _record_name(put_of[aid]), put_of[aid])
            bad += 1
        for aid in sorted(set(recs_of) - set(put_of)):
            for idx in sorted(recs_of[aid]):
                self.fail("items", f"record about {aid}, which is not an exported item",
                          _record_name(idx), idx)
                bad += 1
        for name in sorted(self.files):
            if name.startswith(ARTIFACTS_DIR) and name not in paths:
                self.fail("artifact", "a file no items.jsonl line names (added?)", name)
                bad += 1
        self.res.summary["items"] = n
        if not bad:
            self.ok(f"{n} items ({disposed} disposed) match their artifact.put records; every "
                    "live artifact's bytes hash to its record's SHA-256; every disposal, "
                    "retention change and hold is there")

    def check_item(
        self, raw: bytes, where: str, put_of: dict[str, int], dispose_of: dict[str, int],
        recs_of: dict[str, set[int]], holds: set[str], seen: set[str], paths: set[str],
    ) -> dict[str, Any] | None:
        try:
            item = safejson.loads(raw, what="the line")
        except safejson.JSONLimitError as exc:
            self.fail("items", f"refused: {exc}", where)
            return None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            self.fail("items", f"not JSON: {exc}", where)
            return None
        if not isinstance(item, dict) or set(item) != ITEM_KEYS:
            got = sorted(item) if isinstance(item, dict) else type(item).__name__
            self.fail("items", f"wrong fields {got}", where)
            return None
        aid = item["artifact_id"]
        where = f"{where} ({aid})"
        if not isinstance(aid, str) or aid in seen:
            self.fail("items", "artifact id missing or repeated", where)
            return None
        seen.add(aid)
        idx = item["log_index"]
        if not isinstance(idx, int) or put_of.get(aid) != idx:
            self.fail("items", f"log_index {idx!r} is not this artifact's artifact.put record "
                      "in the package", where)
            return item
        put = self.load_record(idx)
        if put is None:
            return item
        pb = put.body
        expect = {
            "product": put.product, "name": pb.get("name"), "sha256": pb.get("sha256"),
            "size": pb.get("size"), "media_type": pb.get("media_type"),
            "created": put.time, "actor": put.actor,
        }
        for key, want in expect.items():
            if item[key] != want:
                self.fail("items", f"{key} is {item[key]!r}, but the signed record {idx} says "
                          f"{want!r}", where, idx)
        for key in ("metadata", "provenance"):
            if _canon(item[key]) != _canon(pb.get(key)):
                self.fail("items", f"{key} differs from the signed record {idx}", where, idx)
        mine = recs_of.get(aid, set())
        listed = item["records"]
        if (not isinstance(listed, list) or not all(type(r) is int for r in listed)
                or set(listed) != mine or len(listed) != len(mine)):
            self.fail("items", f"records {listed!r} are not the package's records about this "
                      f"artifact {sorted(mine)}", where)
        retain = pb.get("retain_until")
        for r in sorted(mine):
            if self.records[r][0] == "retention.extend":
                ext = self.load_record(r)
                if ext is not None and isinstance(ext.body.get("retain_until"), str) and (
                        not isinstance(retain, str) or ext.body["retain_until"] > retain):
                    retain = ext.body["retain_until"]
        if item["retain_until"] != retain:
            self.fail("items", f"retain_until {item['retain_until']!r} is not the retention the "
                      f"records give ({retain!r})", where)
        hold_ids = item["holds"]
        if not isinstance(hold_ids, list):
            self.fail("items", "holds is not a list", where)
        else:
            for h in hold_ids:
                if not isinstance(h, str) or h not in holds:
                    self.fail("items", f"hold {h!r} has no hold.place record in the package",
                              where)
        d_idx = dispose_of.get(aid)
        if item["disposed"] is True:
            if d_idx is None or item["disposal_index"] != d_idx:
                self.fail("items", "marked disposed, but its artifact.dispose record is not in "
                          "the package", where)
            if item["path"] is not None:
                self.fail("items", "a disposed item cannot have a file", where)
            return item
        if item["disposed"] is not False or item["disposal_index"] is not None:
            self.fail("items", "disposed must be false with a null disposal_index", where)
        if d_idx is not None:
            self.fail("items", f"not marked disposed, but record {d_idx} disposed it", where,
                      d_idx)
        path = item["path"]
        full = DATA + path if isinstance(path, str) else None
        if full is None or not full.startswith(ARTIFACTS_DIR) or _unsafe_name(full):
            self.fail("items", f"path {path!r} is not a file under {ARTIFACTS_DIR}", where)
            return item
        if full in paths:
            self.fail("items", f"path {path!r} is used twice", where)
            return item
        paths.add(full)
        if full not in self.files:
            self.fail("artifact", f"missing (the bytes of {aid}, record {idx})", full, idx)
            return item
        digest = self.sha256.get(full) or (self.hash_file(full) or {}).get("sha256")
        if digest != pb.get("sha256"):
            self.fail("artifact", f"bytes hash to {digest}, but the signed record {idx} says "
                      f"{pb.get('sha256')}", full, idx)
        elif self.files[full] != pb.get("size"):
            self.fail("artifact", f"{self.files[full]} bytes, but the record says "
                      f"{pb.get('size')}", full, idx)
        return item

    def load_record(self, idx: int) -> Record | None:
        name = _record_name(idx)
        data = self.text(name, "record")
        if data is None:
            return None
        try:
            return parse_record(data, index=idx)
        except VerificationError as exc:
            self.fail("record", str(exc), name, idx)
            return None

    # ------------------------------------------------------------------ custody
    def check_custody(self) -> None:
        data = self.text(CUSTODY, "custody")
        ex = self.export
        if data is None or ex is None:
            return
        prev: str | None = None
        first: dict[str, Any] | None = None
        good = True
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        else:
            self.fail("custody", "must end with a newline", CUSTODY)
            good = False
        for n, line in enumerate(lines, 1):
            where = f"{CUSTODY} line {n}"
            try:
                entry = safejson.loads(line, what="the line")
            except safejson.JSONLimitError as exc:
                self.fail("custody", f"refused: {exc}", where)
                return
            except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
                self.fail("custody", f"not JSON: {exc}", where)
                return
            if not isinstance(entry, dict) or entry.get("seq") != n - 1 or entry.get(
                    "prev_sha256") != prev:
                self.fail("custody", "broken chain: seq must count from 0 and prev_sha256 be "
                          "the SHA-256 of the previous line (null on the first)", where)
                good = False
            prev = hashlib.sha256(line).hexdigest()
            if n == 1:
                first = entry if isinstance(entry, dict) else None
        if first is None or first.get("event") != "export":
            self.fail("custody", "the first entry must be the export", CUSTODY)
            return
        b = ex.body
        lh = self.export_leaf_hash.hex() if self.export_leaf_hash else None
        expect: dict[str, Any] = {
            "log_index": ex.seq, "leaf_hash": lh, "actor": ex.actor, "product": ex.product,
            "log_time": ex.time,
            **{k: b.get(k) for k in CUSTODY_EXPORT_FIELDS},
        }
        if self.cp is not None:
            expect["log_origin"] = self.cp.origin
        for key, want in expect.items():
            if first.get(key) != want:
                self.fail("custody", f"{key} is {first.get(key)!r}, but the log-signed export "
                          f"record says {want!r}", f"{CUSTODY} line 1", ex.seq)
                good = False
        if good:
            self.res.summary["custody_entries"] = len(lines)
            self.ok(f"custody log: {len(lines)} chained entries; the export entry (who, what, "
                    "when, why, tool version) equals the log-signed export record")

    def check_bag_info_against_export(self) -> None:
        ex = self.export
        if ex is None or not self.bag_info:
            return
        b = ex.body
        expect = {
            "Depository-Matter": b.get("matter"),
            "Depository-Product": ex.product,
            "Depository-Exporter": ex.actor,
            "Depository-Export-Log-Index": str(ex.seq),
            "Depository-Artifacts": str(b.get("artifacts")),
            "Depository-Disposed-Artifacts": str(b.get("disposed")),
            "Depository-Records": str(b.get("records")),
            "Depository-Evidence-Key": b.get("evidence_key"),
        }
        if self.cp is not None:
            expect["Depository-Log-Origin"] = self.cp.origin
            expect["Depository-Checkpoint-Size"] = str(self.cp.size)
        good = True
        for key, want in expect.items():
            if self.bag_info.get(key) != _one_line(str(want)):
                self.fail("bag-info", f"{key} is {self.bag_info.get(key)!r}, but the export "
                          f"record says {want!r}", BAG_INFO)
                good = False
        if good:
            self.ok("bag-info.txt agrees with the export record (matter, product, exporter, "
                    "counts, keys)")

    # ------------------------------------------------------------------ signature
    def check_signature(self) -> None:
        tag = self.text(TAG_MANIFESTS[0], "signature")
        sig = self.text(SIGNATURE_FILE, "signature")
        if tag is None or sig is None:
            return
        named = self.export.body.get("evidence_key") if self.export is not None else None
        vkey_file = self.text(EVIDENCE_VKEY, "signature", required=False)
        if vkey_file is not None and named is not None and vkey_file.decode(
                "utf-8", "replace").strip() != named:
            self.fail("signature", "differs from the evidence key the export record names",
                      EVIDENCE_VKEY)
        if self.evidence_keys:
            keys, source = self.evidence_keys, "the evidence key given"
            if isinstance(named, str) and named not in keys:
                self.fail("signature", "the log-signed export record names another evidence "
                          f"key ({named}) than the one given", SIGNATURE_FILE)
        elif isinstance(named, str):
            keys, source = [named], "the evidence key named in the log-signed export record"
        else:
            self.fail("signature", "no evidence key to check it with (give --evidence-key)",
                      SIGNATURE_FILE)
            return
        try:
            text, _ = parse_note(sig)
        except VerificationError as exc:
            self.fail("signature", f"not a signed note: {exc}", SIGNATURE_FILE)
            return
        if text != SIGNATURE_HEADER + tag:
            self.fail("signature", f"its text is not {PROFILE!r} followed by "
                      f"{TAG_MANIFESTS[0]} (the tag manifest was changed)", SIGNATURE_FILE)
            return
        try:
            note = verify_note(sig, keys)
        except VerificationError as exc:
            self.fail("signature", f"does not verify with {source}: {exc}", SIGNATURE_FILE)
            return
        self.res.summary["evidence_key"] = named
        self.ok(f"tag manifest signed by {', '.join(note.verified)} ({source})")

    def check_timestamp(self) -> None:
        if TIMESTAMP_FILE not in self.files:
            return
        tsr = self.text(TIMESTAMP_FILE, "timestamp")
        tag = self.text(TAG_MANIFESTS[0], "timestamp")
        if tsr is None or tag is None:
            return
        try:
            info = verify_timestamp(tsr, tag, tsa_certs=self.tsa_certs)
        except VerificationError as exc:
            self.fail("timestamp", str(exc), TIMESTAMP_FILE)
            return
        self.res.summary["timestamp"] = info.to_json()
        trust = ("chains to a trusted TSA certificate" if info.trusted else
                 "verified with the certificate inside the token; not checked against a "
                 "trusted TSA certificate")
        self.ok(f"RFC 3161 timestamp of {TAG_MANIFESTS[0]} at {info.gen_time} by "
                f"{info.signer} ({trust})")


def _record_name(idx: int) -> str:
    return f"{RECORDS_DIR}{idx:0{RECORD_DIGITS}d}.json"


def _canon(value: Any) -> bytes | None:
    try:
        return canonical_json(value)
    except ValueError:
        return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _decode_manifest_path(path: str) -> str:
    """RFC 8493 §2.1.3: CR, LF and % in manifest paths are percent-encoded."""
    return path.replace("%0D", "\r").replace("%0d", "\r").replace("%0A", "\n").replace(
        "%0a", "\n").replace("%25", "%")


def _parse_bag_info(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    label: str | None = None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line[0] in " \t":
            if label is None:
                raise ValueError(f"line {n}: continuation with no label")
            out[label] += " " + line.strip()
            continue
        label, sep, value = line.partition(":")
        if not sep or not label.strip():
            raise ValueError(f"line {n} is not 'Label: value'")
        label = label.strip()
        if label in out:
            raise ValueError(f"line {n}: {label} repeated")
        out[label] = value.strip()
    return out


# =========================================================================== entry points


def package_result(
    path: Path, verifier_keys: Sequence[str], *, evidence_keys: Sequence[str] = (),
    tsa_certs: Sequence[bytes] = (),
) -> PackageResult:
    """Verify the package at ``path`` (a bag directory or a zip of one).

    ``verifier_keys`` are the log keys the recipient trusts; ``evidence_keys`` optionally
    pin the evidence key (otherwise the one the log-signed export record names is used);
    ``tsa_certs`` (PEM or DER) are trusted timestamp authority certificates. Raises
    :class:`PackageInputError` (a :class:`MalformedInputError`) if ``path`` is not a
    readable directory or zip, or a key does not parse.
    """
    from depository.tlog.note import parse_verifier_key

    for k in (*verifier_keys, *evidence_keys):
        parse_verifier_key(k)
    result = PackageResult()
    source = _open_source(Path(path), lambda p: _add(result, p))
    try:
        _Verifier(source, verifier_keys, evidence_keys, tsa_certs, result).run()
    finally:
        source.close()
    return result


def _add(result: PackageResult, problem: Problem) -> None:
    result.problems_total += 1
    if len(result.problems) < MAX_PROBLEMS:
        result.problems.append(problem)


def verify_package(
    path: Path, verifier_keys: Sequence[str], *, evidence_keys: Sequence[str] = (),
    tsa_certs: Sequence[bytes] = (),
) -> None:
    """Verify a package; raise :class:`PackageVerificationError` listing the problems."""
    res = package_result(path, verifier_keys, evidence_keys=evidence_keys, tsa_certs=tsa_certs)
    if not res.ok:
        shown = "; ".join(str(p) for p in res.problems[:20])
        more = res.problems_total - min(20, len(res.problems))
        raise PackageVerificationError(
            f"{res.problems_total} problem(s): {shown}" + (f"; and {more} more" if more else "")
        )


def package_outcome(
    path: str | Path, keys: Sequence[str], evidence_keys: Sequence[str] = (),
    tsa_certs: Sequence[str] = (),
) -> Outcome:
    """The ``verify package`` verb: an :class:`~depository.verifier.commands.Outcome`.

    ``keys`` and ``evidence_keys`` are key strings or files of keys (as ``--key``);
    ``tsa_certs`` are certificate files. Raises ``UsageError`` (exit code 2) for an
    unreadable package path, key or certificate.
    """
    from depository.verifier.commands import Outcome, UsageError, read_bytes, read_keys
    from depository.verifier.files import MAX_CERT_BYTES

    log_keys = read_keys(keys)
    ev_keys = read_keys(evidence_keys) if evidence_keys else []
    certs = [read_bytes(c, limit=MAX_CERT_BYTES, what="TSA certificate") for c in tsa_certs]
    outcome = Outcome(verb="package", ok=True)
    try:
        res = package_result(Path(path), log_keys, evidence_keys=ev_keys, tsa_certs=certs)
    except PackageInputError as exc:
        raise UsageError(str(exc)) from exc
    except MalformedInputError as exc:
        raise UsageError(f"--key/--evidence-key: {exc}") from exc
    outcome.ok = res.ok
    outcome.checks.extend(res.checks)
    outcome.details.update(path=str(path), problems=[p.to_json() for p in res.problems],
                           problems_total=res.problems_total, summary=res.summary)
    if not res.ok:
        shown = res.problems[:50]
        lines = [f"  FAIL {p}" for p in shown]
        if res.problems_total > len(shown):
            lines.append(f"  ... and {res.problems_total - len(shown)} more (see --json)")
        outcome.error = f"{res.problems_total} problem(s) found:\n" + "\n".join(lines)
        outcome.details["error_type"] = PackageVerificationError.__name__
    return outcome
