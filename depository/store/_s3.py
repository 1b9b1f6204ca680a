"""The S3 Object Lock blob backend, checkpoint anchors in WORM storage, and fetching them.

Layout in the bucket (under the configured ``prefix``)::

    objects/<sha256>      artifact bytes, content-addressed, COMPLIANCE-mode retention
    checkpoints/<size>    signed checkpoints (anchors), COMPLIANCE-mode retention

Semantics (see ``docs/guides/operations.md``):

- The bucket must have Object Lock enabled; the backend refuses to start otherwise.
- ``ingest`` spools the stream to ``STORE/objects/tmp`` while hashing it (constant
  memory), then uploads ``objects/<sha256>`` in one request or in parts (multipart, a
  bounded number in flight) with ``ObjectLockMode=COMPLIANCE`` and the artifact's
  retain-until date, then verifies the SHA-256 end to end: ``ChecksumSHA256`` where the
  endpoint enforces it (probed once), otherwise by reading the stored version back.
  Only then does the store queue the log record. A failed multipart upload is aborted,
  so no half-written object ever becomes visible.
- Two artifacts with the same bytes share one object; its retention is extended (never
  shortened) to the longest; its legal hold is on while any covering hold is active.
- Reads use the key's **oldest** version: a later write to the same key (an "overwrite",
  which S3 turns into a new version) or a delete marker cannot change what the store
  reads, and scrub reports both.
- Disposal deletes every version of the key once no live artifact references it; a
  version the cluster still locks stays (the cluster's clock and holds win) and scrub
  retries later.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import os
import secrets
import threading
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from depository.store._anchor_sinks import fetch_anchors, open_anchor_sink, parse_s3_url
from depository.store._backend import (
    BackendConfig,
    BlobBackendError,
    BlobStat,
)
from depository.store._blobs import CHUNK, Ingested, disk_error, read_limited
from depository.store._errors import StoreError
from depository.store._s3audit import audit as s3_audit
from depository.store._s3client import (
    COMPLIANCE,
    MAX_PARTS,
    _b64,
    _ceil_second,
    _code,
    _is_boto_error,
    _message,
    _S3Reader,
    _utc,
    backend_error,
    check_bucket,
    make_client,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("depository.s3")

__all__ = ["S3Blobs", "check_bucket", "fetch_anchors", "make_client", "open_anchor_sink",
           "parse_s3_url"]


# --------------------------------------------------------------------------- the backend


@dataclass
class _Version:
    version_id: str
    size: int


@dataclass
class _Spool:
    path: Path
    sha256: str
    size: int
    part_size: int
    part_sha256: list[bytes] = field(default_factory=list)


class S3Blobs:
    """Blobs as ``objects/<sha256>`` in an S3 bucket with Object Lock (COMPLIANCE mode)."""

    kind = "s3"
    object_lock = True

    def __init__(self, objects: Path, config: BackendConfig, *, readonly: bool = False,
                 client: S3Client | None = None) -> None:
        assert config.type == "s3" and config.bucket
        self.root = objects
        self.tmp = objects / "tmp"
        self.config = config
        self.bucket = config.bucket
        self.prefix = config.prefix
        self.readonly = readonly
        self.client = client or make_client(config.endpoint_url, config.region, config.profile,
                                            pool=max(16, 2 * config.concurrency + 8))
        self._canon: dict[str, _Version] = {}  # verified versions, by sha256
        self._mu = threading.Lock()
        self._checksum: bool | None = None
        self.problems: list[str] = []  # failures of best-effort (after-commit) calls
        if not readonly:  # read-only opens (catalog queries) need no round trip
            check_bucket(self.client, self.bucket)

    # -------------------------------------------------------------- basics
    def key(self, sha256_hex: str) -> str:
        return f"{self.prefix}objects/{sha256_hex}"

    def path(self, sha256_hex: str) -> Path:
        raise StoreError(f"the s3 backend keeps {self.key(sha256_hex)} in bucket "
                         f"{self.bucket!r}, not in a local file")

    def create(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)

    def clear_stale(self) -> None:
        """Abort multipart uploads a crash left behind (called by the lock holder), and
        settle how uploads are verified (so the first put does not pay for the probe)."""
        with contextlib.suppress(StoreError):
            _ = self.checksum_enforced
        try:
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}objects/"):
                for up in page.get("Uploads", []):
                    with contextlib.suppress(Exception):
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
        except Exception as exc:
            log.warning("could not list stale multipart uploads: %s", _message(exc))

    @property
    def checksum_enforced(self) -> bool:
        """Whether uploads are verified by ``ChecksumSHA256`` (else by a read-back hash)."""
        if self._checksum is None:
            mode = self.config.verify
            if mode == "readback":
                self._checksum = False
            else:
                enforced = self.probe_checksum()
                if mode == "checksum" and not enforced:
                    raise StoreError(
                        "backend.verify is 'checksum' but the endpoint does not enforce "
                        "ChecksumSHA256 (a wrong checksum was accepted); use verify: auto or "
                        "readback"
                    )
                self._checksum = enforced
        return self._checksum

    def probe_checksum(self) -> bool:
        """Does the endpoint refuse a part whose ``ChecksumSHA256`` is wrong?

        Uses a multipart upload that is always aborted, so nothing is stored.
        """
        key = f"{self.prefix}objects/.checksum-probe-{secrets.token_hex(4)}"
        data = b"depository checksum probe"
        wrong = _b64(hashlib.sha256(b"not the data").digest())
        right = _b64(hashlib.sha256(data).digest())
        try:
            up = self.client.create_multipart_upload(Bucket=self.bucket, Key=key,
                                                     ChecksumAlgorithm="SHA256")
        except Exception as exc:
            log.info("ChecksumSHA256 not supported (%s); verifying by read-back", _message(exc))
            return False
        uid = up["UploadId"]
        try:
            try:
                self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=1,
                                        Body=data, ChecksumSHA256=wrong)
            except Exception as exc:
                if not _is_boto_error(exc):
                    raise
                try:
                    self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=uid,
                                            PartNumber=1, Body=data, ChecksumSHA256=right)
                except Exception:
                    return False
                return True
            return False
        finally:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid)

    # -------------------------------------------------------------- versions
    def _list_versions(self, sha256_hex: str) -> tuple[list[_Version], list[str]]:
        """(object versions newest first, delete-marker version ids) of the key."""
        key = self.key(sha256_hex)
        versions: list[_Version] = []
        markers: list[str] = []
        try:
            paginator = self.client.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
                for v in page.get("Versions", []):
                    if v.get("Key") == key:
                        versions.append(_Version(str(v["VersionId"]), int(v.get("Size", 0))))
                for m in page.get("DeleteMarkers", []):
                    if m.get("Key") == key:
                        markers.append(str(m["VersionId"]))
        except Exception as exc:
            raise backend_error(exc, f"listing versions of {key}") from exc
        return versions, markers

    def _canonical(self, sha256_hex: str, *, refresh: bool = False) -> _Version | None:
        """The key's oldest version: the bytes the store wrote first and reads."""
        if not refresh:
            with self._mu:
                v = self._canon.get(sha256_hex)
            if v is not None:
                return v
        versions, _ = self._list_versions(sha256_hex)
        return versions[-1] if versions else None

    def _remember(self, sha256_hex: str, version: _Version) -> None:
        with self._mu:
            self._canon[sha256_hex] = version
            if len(self._canon) > 100_000:
                self._canon.pop(next(iter(self._canon)))

    # -------------------------------------------------------------- writing
    def ingest(self, stream: BinaryIO, *, max_size: int, inline_max: int, what: str,
               retain_until: datetime | None = None) -> Ingested:
        """Spool and hash the stream, upload it under Object Lock, verify, then return."""
        if retain_until is None:
            raise StoreError(f"{what}: the s3 backend needs the artifact's retain-until date")
        part_size = self._part_size(max_size)
        want_parts = self.checksum_enforced
        spool = self._spool(stream, max_size=max_size, inline_max=inline_max, what=what,
                            part_size=part_size, part_hashes=want_parts)
        if isinstance(spool, Ingested):
            return spool
        try:
            self._put_verified(spool, _ceil_second(retain_until), what)
        finally:
            spool.path.unlink(missing_ok=True)
        return Ingested(sha256=spool.sha256, size=spool.size, data=None)

    def _part_size(self, max_size: int) -> int:
        need = math.ceil(max_size / MAX_PARTS)
        mib = 1024 * 1024
        return max(self.config.part_size, math.ceil(need / mib) * mib)

    def _spool(self, stream: BinaryIO, *, max_size: int, inline_max: int, what: str,
               part_size: int, part_hashes: bool) -> _Spool | Ingested:
        h = hashlib.sha256()
        ph = hashlib.sha256()
        in_part = 0
        parts: list[bytes] = []
        buf = bytearray()
        size = 0
        self.tmp.mkdir(parents=True, exist_ok=True)
        path = self.tmp / f"upload-{secrets.token_hex(8)}"
        fd = -1
        ok = False
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            for chunk in read_limited(stream, max_size=max_size, what=what):
                size += len(chunk)
                h.update(chunk)
                if size <= inline_max:
                    buf += chunk
                if part_hashes:
                    view = memoryview(chunk)
                    while view:
                        take = min(len(view), part_size - in_part)
                        ph.update(view[:take])
                        in_part += take
                        view = view[take:]
                        if in_part == part_size:
                            parts.append(ph.digest())
                            ph, in_part = hashlib.sha256(), 0
                _write_all(fd, chunk)
            if part_hashes and in_part:
                parts.append(ph.digest())
            if 0 < size <= inline_max:
                return Ingested(sha256=h.hexdigest(), size=size, data=bytes(buf))
            ok = True
            return _Spool(path, h.hexdigest(), size, part_size, parts)
        except OSError as exc:
            raise disk_error(exc, what) from exc
        finally:
            if fd >= 0:
                os.close(fd)
            if not ok:
                path.unlink(missing_ok=True)

    def _put_verified(self, spool: _Spool, until: datetime, what: str) -> None:
        sha = spool.sha256
        key = self.key(sha)
        with self._mu:
            existing = self._canon.get(sha)  # verified by this process
        if existing is None:
            existing = self._canonical(sha, refresh=True)
            if existing is not None:
                # Written before this process knew of it: trust nothing, hash it.
                got = self._hash_version(key, existing.version_id)
                if existing.size != spool.size or got != sha:
                    raise BlobBackendError(
                        f"{what}: the bucket already holds {key} (version "
                        f"{existing.version_id}) with different bytes ({got}); someone wrote "
                        "into the depository's key space. Nothing was recorded; run "
                        "`depository scrub` and investigate"
                    )
                self._remember(sha, existing)
        if existing is not None:
            self.extend_retention(sha, until)
            return
        if spool.size <= spool.part_size:
            version = self._put_single(spool, key, until, what)
        else:
            version = self._put_multipart(spool, key, until, what)
        if not self.checksum_enforced:
            got = self._hash_version(key, version)
            if got != sha:
                raise BlobBackendError(
                    f"{what}: read-back of {key} version {version} hashes to {got}, not {sha}; "
                    "the locked version is left as an orphan (scrub reports it) and nothing "
                    "was recorded"
                )
        self._remember(sha, _Version(version, spool.size))

    def _lock_args(self, until: datetime) -> dict[str, Any]:
        return {"ObjectLockMode": COMPLIANCE, "ObjectLockRetainUntilDate": until}

    def _put_single(self, spool: _Spool, key: str, until: datetime, what: str) -> str:
        data = spool.path.read_bytes()
        args: dict[str, Any] = {
            "Bucket": self.bucket, "Key": key, "Body": data, "ContentLength": len(data),
            "ContentType": "application/octet-stream",
            "ContentMD5": _b64(hashlib.md5(data).digest()), **self._lock_args(until),
        }
        if self.checksum_enforced:
            args["ChecksumSHA256"] = _b64(bytes.fromhex(spool.sha256))
        try:
            resp = self.client.put_object(**args)
        except Exception as exc:
            raise backend_error(exc, f"{what}: uploading {key}; nothing was recorded") from exc
        got = resp.get("ChecksumSHA256")
        if self.checksum_enforced and got and got != args["ChecksumSHA256"]:
            raise BlobBackendError(f"{what}: {key}: the endpoint reports checksum {got}")
        return str(resp.get("VersionId") or "null")

    def _put_multipart(self, spool: _Spool, key: str, until: datetime, what: str) -> str:
        checksum = self.checksum_enforced
        create: dict[str, Any] = {"Bucket": self.bucket, "Key": key,
                                  "ContentType": "application/octet-stream",
                                  **self._lock_args(until)}
        if checksum:
            create["ChecksumAlgorithm"] = "SHA256"
        try:
            uid = self.client.create_multipart_upload(**create)["UploadId"]
        except Exception as exc:
            raise backend_error(exc, f"{what}: starting the upload of {key}") from exc
        n_parts = math.ceil(spool.size / spool.part_size)
        fd = os.open(spool.path, os.O_RDONLY)
        done: dict[int, dict[str, Any]] = {}

        def upload(n: int) -> None:
            off = (n - 1) * spool.part_size
            data = os.pread(fd, min(spool.part_size, spool.size - off), off)
            args: dict[str, Any] = {
                "Bucket": self.bucket, "Key": key, "UploadId": uid, "PartNumber": n,
                "Body": data, "ContentLength": len(data),
            }
            if checksum:
                args["ChecksumSHA256"] = _b64(spool.part_sha256[n - 1])
            else:
                args["ContentMD5"] = _b64(hashlib.md5(data).digest())
            resp = self.client.upload_part(**args)
            part: dict[str, Any] = {"PartNumber": n, "ETag": resp["ETag"]}
            if checksum:
                part["ChecksumSHA256"] = args["ChecksumSHA256"]
            done[n] = part

        try:
            with ThreadPoolExecutor(max_workers=self.config.concurrency,
                                    thread_name_prefix="depository-s3-part") as pool:
                pending: set[Future[None]] = set()
                for n in range(1, n_parts + 1):
                    if len(pending) >= self.config.concurrency:
                        finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                        for f in finished:
                            f.result()
                    pending.add(pool.submit(upload, n))
                for f in pending:
                    f.result()
            parts = [done[n] for n in range(1, n_parts + 1)]
            resp = self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=uid,
                MultipartUpload={"Parts": cast(Any, parts)},
            )
            if checksum:
                composite = _b64(hashlib.sha256(b"".join(spool.part_sha256)).digest())
                got = resp.get("ChecksumSHA256")
                if got and got.split("-")[0] != composite:
                    raise BlobBackendError(f"{what}: {key}: composite checksum {got} is not "
                                           f"{composite}-{n_parts}")
            return str(resp.get("VersionId") or "null")
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid)
            if isinstance(exc, StoreError):
                raise
            if isinstance(exc, Exception):
                raise backend_error(exc, f"{what}: uploading {key} (aborted; nothing was "
                                    "recorded)") from exc
            raise
        finally:
            os.close(fd)

    # -------------------------------------------------------------- reading
    def open(self, sha256_hex: str, start: int = 0, length: int | None = None) -> BinaryIO:
        v = self._canonical(sha256_hex)
        if v is None:
            raise BlobBackendError(f"object {self.key(sha256_hex)} is missing from the bucket")
        end = None if length is None else start + length
        raw = _S3Reader(self.client, self.bucket, self.key(sha256_hex), v.version_id, v.size,
                        start, end)
        return io.BufferedReader(raw, buffer_size=CHUNK)

    def exists(self, sha256_hex: str) -> bool:
        return self._canonical(sha256_hex, refresh=True) is not None

    def stat(self, sha256_hex: str) -> BlobStat | None:
        versions, _ = self._list_versions(sha256_hex)
        if not versions:
            return None
        v = versions[-1]
        key = self.key(sha256_hex)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, VersionId=v.version_id)
        except Exception as exc:
            raise backend_error(exc, f"reading {key}") from exc
        return BlobStat(
            sha256=sha256_hex, size=int(head.get("ContentLength", v.size)),
            retain_until=_utc(head.get("ObjectLockRetainUntilDate")),
            mode=head.get("ObjectLockMode"),
            legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON",
            version_id=v.version_id, versions=len(versions),
        )

    def _hash_version(self, key: str, version: str) -> str:
        h = hashlib.sha256()
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key, VersionId=version)["Body"]
            for chunk in body.iter_chunks(CHUNK):
                h.update(chunk)
        except Exception as exc:
            raise backend_error(exc, f"reading back {key}") from exc
        return h.hexdigest()

    def hash(self, sha256_hex: str) -> str | None:
        v = self._canonical(sha256_hex, refresh=True)
        if v is None:
            return None
        return self._hash_version(self.key(sha256_hex), v.version_id)

    def iter_objects(self) -> Iterator[str]:
        prefix = f"{self.prefix}objects/"
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(prefix):]
                    if len(name) == 64 and "/" not in name:
                        yield name
        except Exception as exc:
            raise backend_error(exc, f"listing {prefix}") from exc

    # -------------------------------------------------------------- locks
    def extend_retention(self, sha256_hex: str, until: datetime) -> None:
        """PutObjectRetention (COMPLIANCE) when ``until`` is later than the current date."""
        until = _ceil_second(until)
        v = self._canonical(sha256_hex)
        key = self.key(sha256_hex)
        if v is None:
            raise BlobBackendError(f"cannot extend retention: {key} is missing")
        try:
            cur = self.client.get_object_retention(Bucket=self.bucket, Key=key,
                                                   VersionId=v.version_id).get("Retention", {})
        except Exception as exc:
            if _code(exc) not in ("NoSuchObjectLockConfiguration",
                                  "ObjectLockConfigurationNotFoundError"):
                raise backend_error(exc, f"reading the retention of {key}") from exc
            cur = {}
        current = _utc(cur.get("RetainUntilDate"))
        if cur.get("Mode") == COMPLIANCE and current is not None and current >= until:
            return
        try:
            self.client.put_object_retention(
                Bucket=self.bucket, Key=key, VersionId=v.version_id,
                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until},
            )
        except Exception as exc:
            raise backend_error(exc, f"extending the retention of {key}") from exc

    def set_legal_hold(self, sha256_hex: str, on: bool) -> None:
        v = self._canonical(sha256_hex)
        key = self.key(sha256_hex)
        if v is None:
            if on:
                raise BlobBackendError(f"cannot place a legal hold: {key} is missing")
            return
        try:
            self.client.put_object_legal_hold(
                Bucket=self.bucket, Key=key, VersionId=v.version_id,
                LegalHold={"Status": "ON" if on else "OFF"},
            )
        except Exception as exc:
            raise backend_error(exc, f"setting the legal hold of {key}") from exc

    # -------------------------------------------------------------- disposal
    def dispose(self, sha256_hex: str) -> bool:
        """Delete every version (and delete marker) of the key; False if any stays locked."""
        key = self.key(sha256_hex)
        with self._mu:
            self._canon.pop(sha256_hex, None)
        try:
            versions, markers = self._list_versions(sha256_hex)
        except BlobBackendError as exc:
            self._note(f"dispose {key}: {exc}")
            return False
        removed_all = bool(versions)
        for vid in [v.version_id for v in versions] + markers:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=vid)
            except Exception as exc:
                removed_all = False
                self._note(f"dispose {key} version {vid}: {_message(exc)} (kept; scrub "
                           "retries once the cluster releases it)")
        return removed_all

    remove = dispose

    def _note(self, text: str) -> None:
        log.warning("%s", text)
        with self._mu:
            self.problems.append(text)
            del self.problems[:-100]

    def defer(self, problem: str) -> None:
        self._note(problem)

    def audit(self, expected: Mapping[str, tuple[str, bool]], *, disposed: AbstractSet[str],
              fix: bool) -> dict[str, Any]:
        """Compare every object's lock state with the catalog's; see :func:`audit`."""
        return s3_audit(self, expected, disposed=disposed, fix=fix)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]

