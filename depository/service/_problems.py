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
from collections.abc import Callable, Mapping
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
    NotSequencerError,
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


def _metadata_problem(exc: MetadataError, subject: str) -> Problem:
    text = str(exc)
    if exc.part == "metadata" and exc.field is not None:  # the product's schema said no
        return Problem("metadata-invalid", text, field="header:Depository-Metadata"
                       + (f"/{exc.field}" if exc.field else ""))
    slug, fld = _METADATA_PARTS.get(exc.part or "", ("invalid-parameter", subject))
    return Problem(slug, text, field=fld)


# A put's part at fault -> (problem slug, field); other parts name the caller's subject.
_METADATA_PARTS: dict[str, tuple[str, str]] = {
    "provenance": ("invalid-header", "header:Depository-Provenance"),
    "metadata": ("invalid-header", "header:Depository-Metadata"),
    "name": ("invalid-parameter", "path:name"),
}

# Store error type -> its problem, built from the error's attributes (never its message's
# wording). The first entry the error is an instance of applies; anything else is
# "refused". ``subject`` is the field the caller's request put at fault.
_STORE_PROBLEMS: tuple[tuple[type[Any], Callable[[Any, str], Problem]], ...] = (
    (WriteOnceError, lambda e, s: Problem("write-once", str(e), field="path:name")),
    (AuthorityError, lambda e, s: Problem("forbidden", str(e),
                                          field="header:Authorization")),
    (QuotaError, lambda e, s: Problem(
        "quota-storage" if e.kind == "bytes" else "quota-count", str(e),
        extra={"quota": {"kind": e.kind, "used": e.used, "limit": e.limit}})),
    (TooLargeError, lambda e, s: Problem("too-large", str(e), field="body",
                                         headers={"Connection": "close"})),
    (MetadataError, _metadata_problem),
    (GovernanceLockedError, lambda e, s: Problem(
        "governance-locked", str(e), headers={"Retry-After": "60"},
        extra={"reason": e.reason})),
    (DiskFullError, lambda e, s: Problem("disk-full", str(e))),
    (RetentionError, lambda e, s: Problem("retention-refused", str(e), field=s)),
    (HoldError, lambda e, s: Problem("hold-refused", str(e), field=s)),
    (UnknownProductError, lambda e, s: Problem("unknown-product", str(e),
                                               field="path:product")),
    (NotFoundError, lambda e, s: Problem("not-found", str(e))),
    # Several nodes (ADR 0014): no sequencer reachable from this node; a failover is ~1 s.
    (NotSequencerError, lambda e, s: Problem("unavailable", str(e),
                                             headers={"Retry-After": "1"})),
    (StoreClosedError, lambda e, s: Problem("unavailable", str(e),
                                            headers={"Retry-After": "5"})),
)


def from_store_error(exc: StoreError, *, subject: str = "body") -> Problem:
    """The problem for a store refusal. ``subject`` names the field for refusals about the
    request as a whole (retention, holds, a part of a put without a header of its own)."""
    for cls, make in _STORE_PROBLEMS:
        if isinstance(exc, cls):
            return make(exc, subject)
    return Problem("refused", str(exc))


def problem_catalogue() -> list[dict[str, Any]]:
    return [t.to_json() for t in _TYPES]


def describe(slug: str) -> Mapping[str, Any] | None:
    t = TYPES.get(slug)
    return t.to_json() if t else None
