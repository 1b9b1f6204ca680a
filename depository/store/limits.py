"""Explicit limits on the metadata and provenance JSON the store accepts.

Whatever the store accepts it must be able to serve, list, prove and export: every
reader (the HTTP API's encoders, the offline verifier, evidence packages) parses and
re-encodes this JSON, and Python's parsers and encoders recurse once per nesting level.
So the store refuses, before anything is stored, metadata or provenance nested deeper
than :data:`METADATA_MAX_DEPTH` or whose canonical encoding exceeds
:data:`METADATA_MAX_BYTES` — far below what every reader handles
(:data:`depository.tlog.safejson.MAX_DEPTH`). The library, the CLI and the HTTP API
(400 ``invalid-metadata``) all refuse through :func:`check_metadata` and
:func:`check_encoded_size`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from depository.store._errors import MetadataError
from depository.tlog.safejson import JSONLimitError, check_value

__all__ = ["METADATA_MAX_BYTES", "METADATA_MAX_DEPTH", "check_encoded_size", "check_metadata"]

METADATA_MAX_DEPTH = 32
"""Deepest nesting of objects and arrays in metadata or provenance (the object itself
is depth 1). A record holds it at depth 3, so records stay under 40 levels."""

METADATA_MAX_BYTES = 64 * 1024
"""Largest compact JSON encoding of metadata or of provenance, each (the HTTP API's
header limit, 16 KiB of header text, is tighter)."""


def check_metadata(what: str, metadata: Any, provenance: Any) -> None:
    """Refuse metadata or provenance over the limits with a :class:`MetadataError`
    naming the field, what was measured and the limit. A flat value (depth 1) is left
    to :func:`check_encoded_size` on the encoding the caller writes."""
    for field, value in (("metadata", metadata), ("provenance", provenance)):
        if not isinstance(value, Mapping | list | tuple):
            continue  # scalars cannot nest; the type checks word their refusal
        if _flat(value):
            continue  # depth 1; the caller checks the size on the encoding it writes
        try:
            check_value(value, max_depth=METADATA_MAX_DEPTH, max_bytes=METADATA_MAX_BYTES,
                        what=field)
        except JSONLimitError as exc:
            raise MetadataError(f"{what}: {exc}; flatten or shorten it",
                                part=field) from None


def check_encoded_size(what: str, field: str, encoded: bytes) -> None:
    """Refuse metadata or provenance whose canonical encoding (the bytes the record holds)
    exceeds :data:`METADATA_MAX_BYTES`, with a :class:`MetadataError` naming the field."""
    if len(encoded) > METADATA_MAX_BYTES:
        raise MetadataError(
            f"{what}: {field} encodes to more than {METADATA_MAX_BYTES} bytes of JSON (at "
            f"least {len(encoded)}); the limit is {METADATA_MAX_BYTES}; flatten or shorten "
            "it", part=field)


def _flat(value: Mapping[Any, Any] | list[Any] | tuple[Any, ...]) -> bool:
    """True when ``value`` holds no nested object or array (depth 1): it cannot nest too
    deep, and the encoder cannot recurse on it, so its size is checked on the encoding
    the store writes anyway (:func:`check_encoded_size`) instead of by the exact walk of
    :func:`check_value` (~25 µs a put)."""
    children = value.values() if isinstance(value, Mapping) else value
    # Exact scalar types settle it without the ABC check (the common case, ~3x faster).
    if all(type(child) in _SCALARS for child in children):
        return True
    return not any(isinstance(child, Mapping | list | tuple) for child in children)


_SCALARS = frozenset({str, int, bool, float, type(None)})
