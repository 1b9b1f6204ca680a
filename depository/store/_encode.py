"""Pre-encoded records: the canonical bytes of a put, built in the caller's thread.

The single writer thread is the store's bottleneck, so everything about a record that does
not depend on its position in the log is encoded before it is queued. RFC 8785 encodes a
JSON object as its members sorted by key with each value encoded on its own, so the
canonical bytes of a record are the canonical bytes of its parts spliced in key order:

    {"actor":A,"body":B,"product":P,"seq":S,"time":T,"type":Y,"v":1}

The writer adds only ``seq`` and ``time``. ``tests/test_store.py`` checks the result is
byte-identical to :func:`depository.tlog.record.encode_record` over random records.
"""

from __future__ import annotations

from json.encoder import encode_basestring

from depository.tlog.record import RECORD_VERSION, canonical_json


def _text(value: str) -> bytes:
    """Canonical JSON of a string: RFC 8785 escapes exactly what json's (non-ASCII)
    encoder does (quote, backslash, controls as \\b \\t \\n \\f \\r or \\u00xx)."""
    return encode_basestring(value).encode()


def envelope_parts(type_: str, actor: str, product: str | None, body: bytes
                   ) -> tuple[bytes, bytes]:
    """(head, tail) of a record around its ``seq`` and ``time`` values.

    ``body`` must be the canonical encoding of the record's body object.
    """
    head = (b'{"actor":' + _text(actor) + b',"body":' + body + b',"product":'
            + (b"null" if product is None else _text(product)) + b',"seq":')
    tail = b',"type":' + canonical_json(type_) + b',"v":' + str(RECORD_VERSION).encode() + b"}"
    return head, tail


def put_tail() -> bytes:
    """The bytes of every ``artifact.put`` record after its ``time`` value."""
    return envelope_parts("artifact.put", "x", None, b"{}")[1]


def splice(head: bytes, seq: int, time_json: bytes, tail: bytes) -> bytes:
    """The record's bytes; ``time_json`` is the canonical encoding of its time string."""
    return b"".join((head, str(seq).encode(), b',"time":', time_json, tail))


def put_body(
    *, artifact_id: str, name: str, sha256: str, size: int, media_type: str,
    metadata_json: bytes, provenance_json: bytes, retain_until: str, storage: str,
    received: str,
) -> bytes:
    """The canonical ``artifact.put`` body, reusing the already-encoded metadata and
    provenance (members in RFC 8785 key order: all keys are ASCII)."""
    return b"".join((
        b'{"artifact_id":', _text(artifact_id),
        b',"media_type":', _text(media_type),
        b',"metadata":', metadata_json,
        b',"name":', _text(name),
        b',"provenance":', provenance_json,
        b',"received":', _text(received),
        b',"retain_until":', _text(retain_until),
        b',"sha256":', _text(sha256),
        b',"size":', canonical_json(size),
        b',"storage":', _text(storage),
        b"}",
    ))

