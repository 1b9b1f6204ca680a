"""Explicit limits on the metadata and provenance JSON the store accepts.

Whatever the store accepts it must be able to serve, list, prove and export: every
reader (the HTTP API's encoders, the offline verifier, evidence packages) parses and
re-encodes this JSON, and Python's parsers and encoders recurse once per nesting level.
So the store refuses, before anything is stored, metadata or provenance nested deeper
than :data:`METADATA_MAX_DEPTH` or whose canonical encoding exceeds
:data:`METADATA_MAX_BYTES` — far below what every reader handles
(:data:`depository.tlog.safejson.MAX_DEPTH`). The library, the CLI and the HTTP API
(400 ``invalid-metadata``) all refuse through :func:`check_metadata`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from depository.store._errors import MetadataError
from depository.tlog.safejson import JSONLimitError, check_value

__all__ = ["METADATA_MAX_BYTES", "METADATA_MAX_DEPTH", "check_metadata"]

METADATA_MAX_DEPTH = 32
"""Deepest nesting of objects and arrays in metadata or provenance (the object itself
is depth 1). A record holds it at depth 3, so records stay under 40 levels."""

METADATA_MAX_BYTES = 64 * 1024
"""Largest compact JSON encoding of metadata or of provenance, each (the HTTP API's
header limit, 16 KiB of header text, is tighter)."""


def check_metadata(what: str, metadata: Any, provenance: Any) -> None:
    """Refuse metadata or provenance over the limits with a :class:`MetadataError`
    naming the field, what was measured and the limit."""
    for field, value in (("metadata", metadata), ("provenance", provenance)):
        if not isinstance(value, Mapping | list | tuple):
            continue  # scalars cannot nest; the type checks word their refusal
        try:
            check_value(value, max_depth=METADATA_MAX_DEPTH, max_bytes=METADATA_MAX_BYTES,
                        what=field)
        except JSONLimitError as exc:
            raise MetadataError(f"{what}: {exc}; flatten or shorten it",
                                part=field) from None
