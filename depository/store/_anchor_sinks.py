"""Checkpoint anchors under WORM retention (S3 COMPLIANCE or a directory), and fetching
them back for `verify anchors`."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from depository.store._backend import (
    AnchorConfig,
    BackendConfig,
    BlobBackendError,
)
from depository.store._errors import StoreError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

from depository.store._s3client import (
    COMPLIANCE,
    MAX_ANCHOR_BYTES,
    _b64,
    _ceil_second,
    _message,
    backend_error,
    check_bucket,
    make_client,
)

# --------------------------------------------------------------------------- anchors


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix ending in '/' or empty)."""
    rest = url[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


class S3AnchorSink:
    """Signed checkpoints as ``<prefix><size>`` objects under COMPLIANCE retention."""

    def __init__(self, url: str, client: S3Client, retention_days: int) -> None:
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        self.client = client
        self.retention_days = retention_days
        check_bucket(client, self.bucket, what="anchors.url")

    def write(self, size: int, note: bytes, now: datetime) -> None:
        key = f"{self.prefix}{size}"
        until = _ceil_second(now + timedelta(days=self.retention_days))
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=note, ContentLength=len(note),
                ContentType="text/plain; charset=utf-8",
                ContentMD5=_b64(hashlib.md5(note).digest()),
                ObjectLockMode=COMPLIANCE, ObjectLockRetainUntilDate=until,
            )
        except Exception as exc:
            raise backend_error(exc, f"anchoring checkpoint {size} at s3://{self.bucket}/{key}"
                                ) from exc


class DirAnchorSink:
    """Signed checkpoints as files ``DIR/<size>`` (WORM only if the file system is)."""

    def __init__(self, path: Path) -> None:
        self.url = str(path)
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def write(self, size: int, note: bytes, now: datetime) -> None:
        target = self.path / str(size)
        try:
            if target.exists():
                if target.read_bytes() == note:
                    return
                target = self.path / f"{size}.{hashlib.sha256(note).hexdigest()[:12]}"
            tmp = self.path / f".{size}.{secrets.token_hex(4)}.tmp"
            tmp.write_bytes(note)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, 0o444)
            os.link(tmp, target)  # never replaces an existing anchor
            tmp.unlink()
        except FileExistsError:
            with contextlib.suppress(OSError):
                tmp.unlink()
        except OSError as exc:
            raise BlobBackendError(f"anchoring checkpoint {size} in {self.path}: "
                                   f"{exc.strerror or exc}") from exc


def open_anchor_sink(config: AnchorConfig, backend: BackendConfig,
                     retention_days: int | None = None) -> S3AnchorSink | DirAnchorSink:
    days = config.retention_days or retention_days or 7 * 365 + 2
    if config.url.startswith("s3://"):
        same = backend.type == "s3"
        client = make_client(
            config.endpoint_url or (backend.endpoint_url if same else None),
            config.region or (backend.region if same else None),
            config.profile or (backend.profile if same else None),
        )
        return S3AnchorSink(config.url, client, days)
    return DirAnchorSink(Path(config.url))


def fetch_anchors(url: str, *, endpoint_url: str | None = None, region: str | None = None,
                  profile: str | None = None, client: S3Client | None = None) -> list[bytes]:
    """Every anchored checkpoint at ``url``: ``s3://bucket/prefix`` or a local directory.

    For S3, **every version** of every key is returned (a second write to
    ``checkpoints/<size>`` makes a new version; the locked original is still there and
    still counts), including versions hidden behind delete markers. For a directory,
    every regular file below it (a single file is read as one anchor). Credentials and
    the endpoint come from the AWS chain (``AWS_ENDPOINT_URL`` works) unless given.
    """
    if url.startswith("s3://"):
        bucket, prefix = parse_s3_url(url)
        c = client or make_client(endpoint_url, region, profile)
        out: list[bytes] = []
        try:
            paginator = c.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for v in page.get("Versions", []):
                    if int(v.get("Size", 0)) > MAX_ANCHOR_BYTES:
                        continue
                    body = c.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
                    out.append(body["Body"].read())
        except Exception as exc:
            raise StoreError(f"cannot read anchors at {url}: {_message(exc)}") from exc
        return out
    p = Path(url[len("file://"):] if url.startswith("file://") else url)
    if p.is_file():
        return [p.read_bytes()]
    if not p.is_dir():
        raise StoreError(f"no anchors at {url}: not an s3:// URL, a directory or a file")
    return [f.read_bytes() for f in sorted(p.rglob("*"))
            if f.is_file() and not f.name.startswith(".") and f.stat().st_size <= MAX_ANCHOR_BYTES]
