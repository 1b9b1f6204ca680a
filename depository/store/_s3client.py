"""The S3 client of the Object Lock backend and the anchors: clients, errors, the bucket
check, and a ranged reader over one object version."""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from depository.store._backend import (
    BlobBackendError,
)
from depository.store._errors import StoreError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("depository.s3")

COMPLIANCE: Literal["COMPLIANCE"] = "COMPLIANCE"
MAX_PARTS = 10_000
MAX_ANCHOR_BYTES = 64 * 1024
_LOCK_FIX = (
    "Object Lock can only be turned on when a bucket is created: create a new bucket with "
    "`aws s3api create-bucket --bucket NAME --object-lock-enabled-for-bucket` (see "
    "docs/guides/operations.md) and point backend.bucket at it"
)


# --------------------------------------------------------------------------- client


_CLIENTS: dict[tuple[Any, ...], Any] = {}
_CLIENTS_MU = threading.Lock()


def make_client(endpoint_url: str | None, region: str | None, profile: str | None,
                *, pool: int = 16) -> S3Client:
    """A boto3 S3 client (shared per endpoint, region, profile and credentials: clients are
    thread-safe and costly to build); credentials come from the standard AWS chain only."""
    ident = (endpoint_url, region, profile, pool, os.environ.get("AWS_ACCESS_KEY_ID"),
             os.environ.get("AWS_PROFILE"))
    with _CLIENTS_MU:
        cached = _CLIENTS.get(ident)
        if cached is None:
            cached = _CLIENTS[ident] = _new_client(endpoint_url, region, profile, pool=pool)
    client: S3Client = cached
    return client


def _new_client(endpoint_url: str | None, region: str | None, profile: str | None,
                *, pool: int) -> S3Client:
    try:
        import boto3
        from botocore.config import Config as BotoConfig
    except ImportError as exc:  # pragma: no cover - boto3 is a dependency
        raise StoreError(
            "the s3 backend needs boto3 (`pip install boto3`)"
        ) from exc
    options: dict[str, Any] = {
        "retries": {"max_attempts": 5, "mode": "standard"},
        "max_pool_connections": max(10, pool),
        "connect_timeout": 10,
        "read_timeout": 300,
        # We compute and send checksums ourselves; botocore's default trailing CRC
        # (aws-chunked) is not understood by every S3-compatible endpoint.
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
    }
    if endpoint_url:
        options["s3"] = {"addressing_style": "path"}
    if region:
        options["region_name"] = region
    try:
        session = (boto3.session.Session(profile_name=profile) if profile
                   else boto3.session.Session())
        client: S3Client = session.client(
            "s3", endpoint_url=endpoint_url, config=BotoConfig(**options)
        )
    except Exception as exc:  # botocore.exceptions.ProfileNotFound and friends
        raise StoreError(f"cannot set up the S3 client: {exc}") from exc
    return client


def _code(exc: BaseException) -> str:
    resp = getattr(exc, "response", None)
    if isinstance(resp, Mapping):
        err = resp.get("Error", {})
        code = err.get("Code") if isinstance(err, Mapping) else None
        if code:
            return str(code)
        status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status:
            return str(status)
    return type(exc).__name__


def _message(exc: BaseException) -> str:
    resp = getattr(exc, "response", None)
    if isinstance(resp, Mapping):
        err = resp.get("Error", {})
        msg = err.get("Message") if isinstance(err, Mapping) else None
        return f"{_code(exc)}: {msg}" if msg else _code(exc)
    return f"{type(exc).__name__}: {exc}"


def _is_boto_error(exc: BaseException) -> bool:
    mod = type(exc).__module__
    return mod.startswith(("botocore", "boto3", "urllib3")) or hasattr(exc, "response")


def backend_error(exc: BaseException, what: str) -> BlobBackendError:
    return BlobBackendError(f"{what}: {_message(exc)}")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _ceil_second(t: datetime) -> datetime:
    """Retention dates go to the cluster rounded up to a whole second (never shorter)."""
    t = t.astimezone(UTC)
    if t.microsecond:
        t = t.replace(microsecond=0) + timedelta(seconds=1)
    return t


def _utc(t: Any) -> datetime | None:
    if isinstance(t, datetime):
        return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    return None


def check_bucket(client: S3Client, bucket: str, *, what: str = "backend.bucket") -> None:
    """Refuse (with how to fix it) unless ``bucket`` exists with Object Lock enabled."""
    try:
        cfg = client.get_object_lock_configuration(Bucket=bucket)
    except Exception as exc:
        code = _code(exc)
        if code in ("ObjectLockConfigurationNotFoundError", "InvalidRequest"):
            raise StoreError(
                f"{what}: bucket {bucket!r} does not have S3 Object Lock enabled, so records "
                f"could be deleted or overwritten; the depository refuses to use it. {_LOCK_FIX}"
            ) from None
        if code in ("NoSuchBucket", "404"):
            raise StoreError(
                f"{what}: bucket {bucket!r} does not exist. {_LOCK_FIX}"
            ) from None
        if code in ("AccessDenied", "403"):
            raise StoreError(
                f"{what}: access denied reading the Object Lock configuration of {bucket!r}; "
                "the depository's role needs s3:GetBucketObjectLockConfiguration (see the IAM "
                "policy in docs/guides/operations.md)"
            ) from None
        raise StoreError(f"{what}: cannot reach bucket {bucket!r}: {_message(exc)}") from None
    enabled = cfg.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
    if enabled != "Enabled":
        raise StoreError(
            f"{what}: bucket {bucket!r} does not have S3 Object Lock enabled "
            f"(ObjectLockEnabled={enabled!r}); the depository refuses to use it. {_LOCK_FIX}"
        )


# --------------------------------------------------------------------------- reading


class _S3Reader(io.RawIOBase):
    """A seekable reader over one object version; each (re)positioning is a ranged GET."""

    def __init__(self, client: S3Client, bucket: str, key: str, version: str, size: int,
                 start: int = 0, end: int | None = None) -> None:
        super().__init__()
        self._client, self._bucket, self._key, self._version = client, bucket, key, version
        self._lo = start
        self._hi = size if end is None else min(end, size)
        self._pos = start
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos - self._lo

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: self._lo, io.SEEK_CUR: self._pos, io.SEEK_END: self._hi}[whence]
        pos = max(self._lo, min(base + offset, self._hi))
        if pos != self._pos:
            self._drop()
            self._pos = pos
        return self._pos - self._lo

    def _drop(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
            self._body = None

    def readinto(self, buf: Any) -> int:
        want = min(len(buf), self._hi - self._pos)
        if want <= 0:
            return 0
        if self._body is None:
            try:
                resp = self._client.get_object(
                    Bucket=self._bucket, Key=self._key, VersionId=self._version,
                    Range=f"bytes={self._pos}-{self._hi - 1}",
                )
            except Exception as exc:
                raise backend_error(exc, f"reading s3 object {self._key}") from exc
            self._body = resp["Body"]
        try:
            data = self._body.read(want)
        except Exception as exc:
            self._drop()
            raise backend_error(exc, f"reading s3 object {self._key}") from exc
        n = len(data)
        if n == 0:
            raise BlobBackendError(f"reading s3 object {self._key}: the stream ended early")
        buf[:n] = data
        self._pos += n
        return n

    def close(self) -> None:
        self._drop()
        super().close()
