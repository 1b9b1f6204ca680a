"""RFC 9457 problem details: every error the service returns, with a stable ``type``.

A problem's ``type`` is the relative URI ``/problems/<slug>``; the server serves each
one's description there, so the type both identifies the problem and documents it.
Every problem names the ``field`` at fault (``header:Depository-Metadata``,
``path:name``, ``query:limit``, ``body``...) when there is one, and ``action``: what to
do about it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from depository.store import (
    AuthorityError,
    DiskFullError,
    GovernanceLockedError,
    HoldError,
    MetadataError,
    NotFoundError,
    QuotaError,
    RetentionError,
    StoreClosedError,
    StoreError,
    TooLargeError,
    UnknownProductError,
    WriteOnceError,
)

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "/problems/"


@dataclass(frozen=True)
class ProblemType:
    """A documented problem type: its slug, status, title and the usual remedy."""

    slug: str
    status: int
    title: str
    description: str
    action: str

    def to_json(self) -> dict[str, Any]:
        return {"type": TYPE_PREFIX + self.slug, "status": self.status, "title": self.title,
                "description": self.description, "action": self.action}


_TYPES = [
    ProblemType("unauthorized", 401, "Authentication required",
                "No bearer token was given, or it is unknown, expired or revoked.",
                "Send 'Authorization: Bearer <token>' with a live token; ask an admin for "
                "a new one if yours expired or was revoked."),
    ProblemType("forbidden", 403, "Not allowed for this role",
                "The token is valid but its role may not do this.",
                "Use a token with a role that may (see the roles table in the API "
                "description)."),
    ProblemType("not-found", 404, "Not found",
                "No such artifact, hold, token, record or route visible to this token. "
                "Another product's artifact is indistinguishable from a missing one.",
                "Check the product, name or id, and that the token is for that product."),
    ProblemType("unknown-product", 404, "Unknown product",
                "The product id is not configured in this store.",
                "Use one of the configured product ids."),
    ProblemType("invalid-header", 400, "Invalid request header",
                "A request header is malformed: not UTF-8, not JSON, not an object, "
                "NaN/Infinity, duplicate keys, or a value the store cannot encode exactly.",
                "Send the header as a UTF-8 JSON object (e.g. '{\"course\": \"algebra\"}')."),
    ProblemType("header-too-large", 431, "Request header too large",
                "A Depository-Metadata or Depository-Provenance header exceeds its limit.",
                "Keep metadata and provenance under the limit; store large documents as "
                "artifacts and reference them by id."),
    ProblemType("invalid-parameter", 400, "Invalid parameter",
                "A path or query parameter, or a JSON body field, has the wrong type or value.",
                "Fix the named field as described in 'detail'."),
    ProblemType("invalid-body", 400, "Invalid request body",
                "The JSON request body is malformed or is not an object with the expected "
                "fields.",
                "Send a JSON object with the fields the operation documents."),
    ProblemType("metadata-invalid", 422, "Metadata rejected by the product schema",
                "The artifact metadata does not validate against the product's frozen JSON "
                "Schema. Nothing was stored.",
                "Fix the named metadata field to match the product's schema."),
    ProblemType("too-large", 413, "Artifact too large",
                "The body exceeds the configured maximum artifact size; the upload was "
                "refused as soon as that was known and nothing was stored.",
                "Split the artifact or ask an operator about max_artifact_size."),
    ProblemType("write-once", 409, "Artifact already exists with different bytes",
                "Artifacts are write-once: the name already holds different bytes. The "
                "attempt is recorded in the audit log.",
                "Store the new version under a new name."),
    ProblemType("quota-storage", 507, "Storage quota exceeded",
                "The product's storage quota would be exceeded. Nothing was stored.",
                "Ask an operator to raise the quota (a new store configuration) or wait for "
                "disposal of expired artifacts."),
    ProblemType("quota-count", 429, "Artifact-count quota exceeded",
                "The product's artifact-count quota would be exceeded. Nothing was stored.",
                "Ask an operator to raise the quota or wait for disposal of expired "
                "artifacts."),
    ProblemType("disk-full", 507, "Disk full",
                "The store's disk is full. Nothing was written and the log is unchanged.",
                "Retry after an operator frees space."),
    ProblemType("governance-locked", 503, "Store under a governance lock",
                "The store refuses writes until an admin investigates and unlocks it. "
                "Reads keep working.",
                "Retry later; an admin sees the reason at /v1/governance."),
    ProblemType("retention-refused", 409, "Retention can only be extended",
                "The requested retain-until is not later than the current one, or is below "
                "the minimum retention. A shortening attempt is recorded in the audit log.",
                "Give a later date."),
    ProblemType("hold-refused", 409, "Hold operation refused",
                "The hold request is invalid (no matter or reason, mixed products) or the "
                "hold is already released.",
                "Fix the request as described in 'detail'."),
    ProblemType("refused", 409, "Refused by the store",
                "The store refused the operation in its current state.",
                "Read 'detail'; the state may need to change first."),
    ProblemType("disposed", 410, "Artifact disposed",
                "The artifact's retention ended and its bytes were disposed; its record and "
                "proofs remain in the log.",
                "Fetch its metadata or proof instead."),
    ProblemType("range-not-satisfiable", 416, "Range not satisfiable",
                "The Range header asks for bytes outside the artifact.",
                "Ask for a range within the size given in Content-Range."),
    ProblemType("not-yet-available", 404, "Not yet covered by a checkpoint",
                "The record or tile is not covered by a signed checkpoint yet.",
                "Retry after the next checkpoint (about a second), or upload with "
                "?wait=checkpoint."),
    ProblemType("entry-too-large", 422, "Entry too large for a tile bundle",
                "A log entry in this bundle exceeds 65535 bytes, which the tlog-tiles "
                "bundle format cannot carry.",
                "Read the entries with /v1/log/entries instead."),
    ProblemType("upload-timeout", 408, "Upload too slow",
                "No body bytes arrived for the idle timeout; the upload was abandoned and "
                "nothing was stored.",
                "Retry on a better connection."),
    ProblemType("upload-incomplete", 400, "Upload incomplete",
                "The connection ended before the whole body arrived; nothing was stored.",
                "Retry the upload."),
    ProblemType("export-refused", 422, "Evidence export refused",
                "The export cannot be made as asked: the selection spans products, selects "
                "nothing, or names a hold of another matter. Nothing was written or recorded.",
                "Fix the named field as described in 'detail'."),
    ProblemType("timestamp-failed", 502, "Timestamp authority failed",
                "The export was recorded in the audit log, but the RFC 3161 timestamp "
                "authority could not be reached or gave an unusable answer; no package was "
                "kept.",
                "Retry the export (it is recorded again), or ask an operator to check the "
                "timestamp authority (DEPOSITORY_TSA_URL)."),
    ProblemType("method-not-allowed", 405, "Method not allowed",
                "The route exists but not with this method.", "Use a documented method."),
    ProblemType("unavailable", 503, "Service unavailable",
                "The store is closing or otherwise unavailable.", "Retry shortly."),
    ProblemType("too-many-connections", 503, "Too many connections",
                "The client's address, or the server as a whole, has reached its limit of "
                "open connections; this connection was answered and closed at once.",
                "Reuse connections (keep-alive) instead of opening many, and retry after "
                "the Retry-After delay."),
    ProblemType("request-timeout", 408, "Request headers too slow",
                "The request headers did not all arrive within the server's header "
                "timeout; the connection was closed and nothing was done.",
                "Send the whole header block at once; retry on a better connection."),
    ProblemType("internal", 500, "Internal error",
                "An unexpected failure inside the service. Nothing acknowledged was lost.",
                "Report it with the time of the request."),
]
TYPES: dict[str, ProblemType] = {t.slug: t for t in _TYPES}


@dataclass
class Problem(Exception):
    """An error answered as problem+json. Raise it anywhere inside a handler."""

    slug: str
    detail: str
    field: str | None = None
    status: int | None = None
    action: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    headers: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.detail)
        if self.slug not in TYPES:
            raise ValueError(f"undocumented problem type {self.slug!r}")

    @property
    def code(self) -> int:
        return self.status or TYPES[self.slug].status

    def to_json(self, instance: str | None = None) -> dict[str, Any]:
        t = TYPES[self.slug]
        out: dict[str, Any] = {
            "type": TYPE_PREFIX + t.slug, "title": t.title, "status": self.code,
            "detail": self.detail, "action": self.action or t.action,
        }
        if self.field is not None:
            out["field"] = self.field
        if instance is not None:
            out["instance"] = instance
        out.update(self.extra)
        return out

    def response(self, instance: str | None = None) -> Response:
        return Response(
            json.dumps(self.to_json(instance), ensure_ascii=False).encode(),
            status_code=self.code, media_type=MEDIA_TYPE, headers=self.headers or None,
        )


def not_found(what: str = "no such resource visible to this token") -> Problem:
    return Problem("not-found", what)


def artifact_not_found(product: str, name: str) -> Problem:
    # Identical for a missing artifact, another product's artifact and another product:
    # it only echoes what the caller sent.
    return Problem("not-found", f"no artifact {name!r} in product {product!r}",
                   field="path:name")


_META_FIELD = re.compile(r"metadata field (\S+):")


def from_store_error(exc: StoreError, *, subject: str = "body") -> Problem:
    """The problem for a store refusal. ``subject`` names the field for metadata errors."""
    text = str(exc)
    if isinstance(exc, WriteOnceError):
        return Problem("write-once", text, field="path:name")
    if isinstance(exc, AuthorityError):
        return Problem("forbidden", text, field="header:Authorization")
    if isinstance(exc, QuotaError):
        figures = {"quota": {"kind": exc.kind, "used": exc.used, "limit": exc.limit}}
        if exc.kind == "bytes":
            return Problem("quota-storage", text, extra=figures)
        return Problem("quota-count", text, extra=figures)
    if isinstance(exc, TooLargeError):
        return Problem("too-large", text, field="body", headers={"Connection": "close"})
    if isinstance(exc, MetadataError):
        m = _META_FIELD.search(text)
        if m:
            where = m.group(1)
            fld = "header:Depository-Metadata" + ("" if where == "(top level)" else "/" + where)
            return Problem("metadata-invalid", text, field=fld)
        if "provenance" in text:
            return Problem("invalid-header", text, field="header:Depository-Provenance")
        if "metadata" in text:
            return Problem("invalid-header", text, field="header:Depository-Metadata")
        if "name" in text:
            return Problem("invalid-parameter", text, field="path:name")
        return Problem("invalid-parameter", text, field=subject)
    if isinstance(exc, GovernanceLockedError):
        return Problem("governance-locked", text, headers={"Retry-After": "60"},
                       extra={"reason": _lock_reason(text)})
    if isinstance(exc, DiskFullError):
        return Problem("disk-full", text)
    if isinstance(exc, RetentionError):
        return Problem("retention-refused", text, field=subject)
    if isinstance(exc, HoldError):
        return Problem("hold-refused", text, field=subject)
    if isinstance(exc, UnknownProductError):
        return Problem("unknown-product", text, field="path:product")
    if isinstance(exc, NotFoundError):
        return Problem("not-found", text)
    if isinstance(exc, StoreClosedError):
        return Problem("unavailable", text, headers={"Retry-After": "5"})
    return Problem("refused", text)


def _lock_reason(text: str) -> str:
    prefix = "the store is under a governance lock: "
    if text.startswith(prefix):
        return text[len(prefix):].split(". Writes are refused", 1)[0]
    return text


def problem_catalogue() -> list[dict[str, Any]]:
    return [t.to_json() for t in _TYPES]


def describe(slug: str) -> Mapping[str, Any] | None:
    t = TYPES.get(slug)
    return t.to_json() if t else None
