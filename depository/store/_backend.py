"""The blob-backend interface: where artifacts' bytes live outside the SQLite catalog.

Two implementations:

- ``local`` (default): the content-addressed directory ``STORE/objects/ab/cd/<sha256>``
  (:class:`depository.store._blobs.BlobDir`), unchanged.
- ``s3``: S3 with Object Lock in COMPLIANCE mode (:class:`depository.store._s3.S3Blobs`):
  every version is written with retention equal to the artifact's, extensions map to
  ``PutObjectRetention``, legal holds to ``PutObjectLegalHold``.

The catalog and the log stay the source of order and proof. A backend's only promise is
write-ahead: when :meth:`BlobBackend.ingest` returns, the bytes are durably stored,
verified against their SHA-256, and (for ``s3``) locked, so a record queued afterwards
never points at a missing or half-written object.

Chosen in ``depository.yaml``::

    backend:
      type: s3
      endpoint_url: https://s3.eu-west-1.amazonaws.com   # optional
      bucket: acme-depository
      region: eu-west-1
      prefix: prod/            # optional key prefix
      profile: depository      # optional AWS profile name
    anchors:
      url: s3://acme-depository-anchors/checkpoints/   # or a local directory

Credentials never go in the file: boto3's standard chain (environment, profile, instance
role) provides them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from depository.store._errors import ConfigError, StoreError

if TYPE_CHECKING:
    from depository.store._blobs import Ingested

MiB = 1024 * 1024

BACKEND_TYPES = ("local", "s3")
VERIFY_MODES = ("auto", "checksum", "readback")
_CREDENTIAL_KEYS = re.compile(r"(secret|access_?key|password|token|credential|session)", re.I)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")


class BlobBackendError(StoreError, OSError):
    """The blob backend failed (network, permissions, a refused request).

    Also an :class:`OSError`, so the writer treats it like an I/O failure: the batch
    rolls back and nothing is recorded.
    """


@dataclass(frozen=True)
class BlobStat:
    """What the backend knows about one stored blob."""

    sha256: str
    size: int
    retain_until: datetime | None = None  # None: no Object Lock (local backend)
    mode: str | None = None  # "COMPLIANCE" for the s3 backend
    legal_hold: bool = False
    version_id: str | None = None
    versions: int = 1  # >1: someone wrote the key again (scrub reports it)


@dataclass(frozen=True)
class BackendConfig:
    """``backend:`` in ``depository.yaml``."""

    type: str = "local"
    bucket: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    prefix: str = ""
    profile: str | None = None
    part_size: int = 16 * MiB
    concurrency: int = 4
    verify: str = "auto"


@dataclass(frozen=True)
class AnchorConfig:
    """``anchors:`` in ``depository.yaml``: where signed checkpoints go under WORM."""

    url: str
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    retention_days: int | None = None  # None: the log's retention


class BlobBackend(Protocol):
    """Where artifacts above ``inline_max`` keep their bytes, by SHA-256 (hex)."""

    kind: str
    """``local`` or ``s3``."""
    object_lock: bool
    """True when the backend itself enforces retention and legal holds."""
    tmp: Path
    """Local scratch directory for uploads in progress (cleared by the writer on open)."""

    def create(self) -> None:
        """Prepare a new store's storage (directories; nothing for ``s3``)."""

    def path(self, sha256_hex: str) -> Path:
        """The local file of a blob (``local`` only; ``s3`` raises ``StoreError``)."""

    def ingest(self, stream: BinaryIO, *, max_size: int, inline_max: int, what: str,
               retain_until: datetime | None = None) -> Ingested:
        """Put a stream; return its :class:`~depository.store._blobs.Ingested` (hash, size).

        Constant memory. Bytes up to ``inline_max`` come back inline (``data``) for the
        catalog; larger ones are stored durably, verified and (``s3``) locked until
        ``retain_until`` before this returns. Raises ``TooLargeError`` past ``max_size``.
        """

    def open(self, sha256_hex: str, start: int = 0, length: int | None = None) -> BinaryIO:
        """A reader over a blob's bytes, optionally a range ``[start, start+length)``."""

    def exists(self, sha256_hex: str) -> bool:
        """Whether the blob is stored."""

    def stat(self, sha256_hex: str) -> BlobStat | None:
        """Size, retention and hold of a blob, or None when it is not stored."""

    def hash(self, sha256_hex: str) -> str | None:
        """Re-read the blob and return its SHA-256 hex (None when it is missing)."""

    def dispose(self, sha256_hex: str) -> bool:
        """Delete a blob whose artifacts are all disposed; whether bytes were removed.

        For ``s3`` every version of the key is deleted; a version the cluster still locks
        (its own clock says retention has not run out, or a legal hold) stays, and False
        is returned; ``scrub`` retries later.
        """

    def remove(self, sha256_hex: str) -> bool:
        """Alias of :meth:`dispose`."""

    def extend_retention(self, sha256_hex: str, until: datetime) -> None:
        """Make the stored blob retained until at least ``until`` (extension only)."""

    def set_legal_hold(self, sha256_hex: str, on: bool) -> None:
        """Turn the blob's legal hold on or off (no-op without Object Lock)."""

    def iter_objects(self) -> Iterator[str]:
        """Every stored blob's SHA-256 hex (scrub compares them with the catalog)."""

    def clear_stale(self) -> None:
        """Clean up uploads a crash interrupted (called by the writer-lock holder)."""

    def defer(self, problem: str) -> None:
        """Remember a best-effort lock change that failed after a commit (logged; ``audit``
        lists it under ``deferred``; scrub re-applies the state)."""

    def audit(self, expected: Mapping[str, tuple[str, bool]], *, disposed: AbstractSet[str],
              fix: bool) -> dict[str, Any]:
        """Scrub's backend pass, given the catalog's view as plain values.

        ``expected``: per live blob (SHA-256 hex), the retain-until (RFC 3339) and legal
        hold the catalog requires; ``disposed``: SHA-256 of disposed artifacts. Reports
        blobs neither names (``orphaned_objects``: a crash before the record, harmless),
        and with Object Lock each object's retention and hold against ``expected``
        (re-applied when ``fix``). ``lock_problems`` are failures scrub counts as damage.
        """


class AnchorSink(Protocol):
    """Where each signed checkpoint is written under WORM retention (``checkpoints/<size>``)."""

    url: str

    def write(self, size: int, note: bytes, now: datetime) -> None:
        """Anchor one signed checkpoint; raises :class:`BlobBackendError` on failure."""


# --------------------------------------------------------------------------- config


def _need(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {msg}")


def _opt_str(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    v = raw.get(key)
    _need(v is None or (isinstance(v, str) and bool(v.strip())), f"{where}.{key}",
          "must be a non-empty string")
    return None if v is None else str(v)


def _no_credentials(raw: Mapping[str, Any], where: str) -> None:
    for k in raw:
        _need(not _CREDENTIAL_KEYS.search(str(k)), f"{where}.{k}",
              "credentials never go in depository.yaml: give them through the standard AWS "
              "chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance "
              "or pod role), or name a profile with 'profile'")


def parse_backend(raw: Any) -> BackendConfig:
    """Validate ``backend:``; raises :class:`ConfigError` naming the key at fault."""
    if raw is None:
        return BackendConfig()
    if isinstance(raw, str):
        raw = {"type": raw}
    _need(isinstance(raw, dict), "backend", "must be a mapping (type: local or s3, ...)")
    _no_credentials(raw, "backend")
    allowed = {"type", "bucket", "endpoint_url", "region", "prefix", "profile", "part_size",
               "concurrency", "verify"}
    bad = sorted(set(raw) - allowed)
    _need(not bad, f"backend.{bad[0] if bad else ''}",
          f"unknown key (expected one of {', '.join(sorted(allowed))})")
    kind = raw.get("type", "local")
    _need(kind in BACKEND_TYPES, "backend.type", f"must be one of {', '.join(BACKEND_TYPES)}, "
          f"got {kind!r}")
    if kind == "local":
        extra = sorted(set(raw) - {"type"})
        _need(not extra, f"backend.{extra[0] if extra else ''}",
              "only applies to backend.type s3")
        return BackendConfig()
    bucket = raw.get("bucket")
    _need(isinstance(bucket, str) and bool(_BUCKET.match(bucket)), "backend.bucket",
          "backend.type s3 needs a bucket name (3-63 lower-case letters, digits, '.', '-'), "
          "created with Object Lock enabled")
    endpoint = _opt_str(raw, "endpoint_url", "backend")
    _need(endpoint is None or endpoint.startswith(("http://", "https://")),
          "backend.endpoint_url", "must be an http:// or https:// URL")
    prefix = raw.get("prefix", "")
    _need(isinstance(prefix, str) and not prefix.startswith("/"), "backend.prefix",
          "must be a key prefix such as 'depository/' (no leading '/')")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    part = raw.get("part_size", 16 * MiB)
    _need(isinstance(part, int) and not isinstance(part, bool) and 5 * MiB <= part <= 512 * MiB,
          "backend.part_size", "must be an integer from 5 MiB (5242880) to 512 MiB")
    conc = raw.get("concurrency", 4)
    _need(isinstance(conc, int) and not isinstance(conc, bool) and 1 <= conc <= 32,
          "backend.concurrency", "must be an integer from 1 to 32")
    verify = raw.get("verify", "auto")
    _need(verify in VERIFY_MODES, "backend.verify",
          f"must be one of {', '.join(VERIFY_MODES)} (auto: ChecksumSHA256 where the "
          "endpoint enforces it, otherwise a read-back hash)")
    return BackendConfig(
        type="s3", bucket=str(bucket), endpoint_url=endpoint,
        region=_opt_str(raw, "region", "backend"), prefix=prefix,
        profile=_opt_str(raw, "profile", "backend"), part_size=int(part),
        concurrency=int(conc), verify=str(verify),
    )


def parse_anchors(raw: Any, *, minimum_days: int) -> AnchorConfig | None:
    """Validate ``anchors:`` (a URL string or a mapping with ``url``)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"url": raw}
    _need(isinstance(raw, dict), "anchors",
          "must be s3://bucket/prefix, a directory, or a mapping with 'url'")
    _no_credentials(raw, "anchors")
    allowed = {"url", "endpoint_url", "region", "profile", "retention_days"}
    bad = sorted(set(raw) - allowed)
    _need(not bad, f"anchors.{bad[0] if bad else ''}",
          f"unknown key (expected one of {', '.join(sorted(allowed))})")
    url = raw.get("url")
    _need(isinstance(url, str) and bool(url.strip()), "anchors.url",
          "must be s3://bucket/prefix or a local directory path")
    if url.startswith("s3://"):
        bucket = url[5:].split("/", 1)[0]
        _need(bool(_BUCKET.match(bucket)), "anchors.url", f"bad bucket name in {url!r}")
    days = raw.get("retention_days")
    _need(days is None or (isinstance(days, int) and not isinstance(days, bool)
                           and days >= minimum_days), "anchors.retention_days",
          f"must be an integer of at least the log's retention ({minimum_days} days)")
    return AnchorConfig(
        url=url, endpoint_url=_opt_str(raw, "endpoint_url", "anchors"),
        region=_opt_str(raw, "region", "anchors"), profile=_opt_str(raw, "profile", "anchors"),
        retention_days=None if days is None else int(days),
    )


# --------------------------------------------------------------------------- factories


def log_retention_days(default_retention_days: int, scale_limits: Mapping[str, Any]) -> int:
    """The log's retention in days: the longer of artifacts' minimum and the audit trail's."""
    years = scale_limits.get("audit-trail", {}).get("retention_years") or 0
    return max(default_retention_days, math.ceil(float(years) * 365.25))


def open_backend(objects: Path, config: BackendConfig, *, readonly: bool = False
                 ) -> BlobBackend:
    """The configured backend; ``objects`` is ``STORE/objects`` (local blobs or scratch).

    For ``s3`` this checks the bucket at once and refuses (with a message saying how to
    fix it) when Object Lock is not enabled.
    """
    if config.type == "s3":
        from depository.store._s3 import S3Blobs

        return S3Blobs(objects, config, readonly=readonly)
    from depository.store._blobs import BlobDir

    return BlobDir(objects)


def open_anchor_sink(config: AnchorConfig | None, backend: BackendConfig, *,
                     retention_days: int) -> AnchorSink | None:
    """The configured anchor destination (checked at once), or None.

    ``retention_days`` is the log's retention, used unless ``anchors.retention_days`` is
    longer.
    """
    if config is None:
        return None
    from depository.store._anchor_sinks import open_anchor_sink as _open

    return _open(config, backend, retention_days)


def check_backend(config: BackendConfig) -> None:
    """Refuse a misconfigured backend before anything is created (``init``)."""
    if config.type == "s3":
        from depository.store._s3client import check_bucket, make_client

        assert config.bucket is not None
        check_bucket(make_client(config.endpoint_url, config.region, config.profile),
                     config.bucket)
