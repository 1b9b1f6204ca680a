"""Artifacts on their way in: a put's checks, bytes and encoding (:class:`Preparer`), and
bulk ingestion's chunking (:func:`iter_put_many`).

The writer's decisions about a prepared put (write-once, quota, lock) are in
:mod:`depository.store._decisions`.
"""

from __future__ import annotations

import io
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import jsonschema

from depository.store import _native
from depository.store._backend import BlobBackend
from depository.store._errors import (
    GovernanceLockedError,
    MetadataError,
    RetentionError,
    StoreError,
)
from depository.store._model import (
    Clock,
    PutItem,
    Receipt,
    format_time,
)
from depository.store._prepared import PreparedPut
from depository.store.config import Config, Product
from depository.store.limits import check_encoded_size, check_metadata

_CONTROL = re.compile(r"[\x00-\x1f]")
_ANY_OBJECT = {"type": "object"}
# put_many: items (and inline bytes) per writer operation, and the chunks queued at once.
# Several queued chunks let the writer commit more than one per fsync; measured on the
# 2-core benchmark machine, 2,000 x 4 ran ~1.5x faster than 1,000 x 2. Memory stays
# bounded: at most BULK_INFLIGHT chunks of BULK_CHUNK_BYTES inline bytes each.
BULK_CHUNK = 2000
BULK_CHUNK_BYTES = 16 * 1024 * 1024
BULK_INFLIGHT = 4


class Preparer:
    """Everything about a put that needs no writer: checks, bytes, encodings."""

    def __init__(self, config: Config, blobs: BlobBackend, clock: Clock,
                 product: Callable[[str], Product],
                 known_lock: Callable[[], str | None],
                 before_stream: Callable[[], None]) -> None:
        self.config = config
        self.blobs = blobs
        self.clock = clock
        self.product = product
        # The writer decides on the lock for every put; these refuse early where it can
        # be told cheaply (see StoreWriter.known_lock and .before_stream).
        self.known_lock = known_lock
        self.before_stream = before_stream
        # A schema of {"type": "object"} alone (the default) accepts every dict, and
        # ``prepare`` only ever validates a dict: no validator runs for it.
        self._validators = {
            pid: None if dict(p.metadata_schema) == _ANY_OBJECT
            else jsonschema.Draft202012Validator(p.metadata_schema)
            for pid, p in config.products.items()
        }

    def prepare(
        self, product: str, name: str, stream: BinaryIO | bytes, *,
        metadata: Mapping[str, Any] | None, provenance: Mapping[str, Any] | None,
        media_type: str, retain_until: datetime | None, actor: str,
    ) -> PreparedPut:
        if not isinstance(stream, bytes | bytearray):
            self.before_stream()
        prod = self.product(product)
        if not isinstance(name, str) or not name or len(name) > 1024 or _CONTROL.search(name):
            raise MetadataError(f"artifact {name!r} in product {product!r}: name must be "
                                "1-1024 printable characters", part="name")
        what = f"artifact {name!r} in product {product!r}"
        if not isinstance(actor, str) or not actor:
            raise MetadataError(f"{what}: the actor must be a non-empty string", part="actor")
        if not isinstance(media_type, str):
            raise MetadataError(f"{what}: media type must be a string", part="media_type")
        for part, text in (("name", name), ("actor", actor), ("media_type", media_type)):
            if not _is_utf8(text):
                raise MetadataError(f"{what}: the {part.replace('_', ' ')} holds a lone "
                                    "surrogate (not valid Unicode text); give it as proper "
                                    "UTF-8", part=part)
        meta = dict(metadata or {})
        check_metadata(what, meta, provenance)
        meta_json = self._validate_json(meta, prod, what)
        if not isinstance(provenance or {}, Mapping):
            raise MetadataError(f"{what}: provenance must be a JSON object", part="provenance")
        try:
            prov_json = _native.canonical(dict(provenance)) if provenance else b"{}"
        except ValueError as exc:
            raise MetadataError(f"{what}: provenance: {exc}", part="provenance") from exc
        check_encoded_size(what, "metadata", meta_json)
        check_encoded_size(what, "provenance", prov_json)
        locked = self.known_lock()
        if locked:
            raise GovernanceLockedError.of(locked)
        created_floor = self.clock()
        minimum = created_floor + timedelta(days=self.config.default_retention_days)
        if retain_until is None:
            retain = minimum
        else:
            retain = retain_until.astimezone(UTC)
            if retain < minimum - timedelta(seconds=60):
                raise RetentionError(
                    f"{what}: retain-until {format_time(retain)} is before the minimum "
                    f"retention ({self.config.default_retention_days} days, "
                    f"{format_time(minimum)}); give a later date or omit it"
                )
        if isinstance(stream, bytes | bytearray):
            stream = io.BytesIO(bytes(stream))
        ing = self.blobs.ingest(stream, max_size=self.config.max_artifact_size,
                                inline_max=self.config.inline_max, what=what,
                                retain_until=retain)
        aid = _native.artifact_id(product, name)
        retain_text = _native.format_time(retain)
        storage = "inline" if ing.data is not None else "file"
        # Retention runs from receipt; the record carries that time so the minimum can be
        # checked however long the upload and the queue took.
        head = _native.put_head(actor, prod.id, aid, media_type, meta_json, name, prov_json,
                                _native.format_time(created_floor), retain_text, ing.sha256,
                                ing.size, storage)
        return PreparedPut(
            prod=prod, name=name, aid=aid, sha256=ing.sha256, size=ing.size, data=ing.data,
            media_type=media_type, meta_json=meta_json.decode(), prov_json=prov_json.decode(),
            meta_rows=_native.meta_rows(prod.id, meta), retain=retain_text, actor=actor,
            head=head)

    def _validate_json(self, meta: dict[str, Any], prod: Product, what: str) -> bytes:
        try:
            encoded = _native.canonical(meta)
        except ValueError as exc:
            raise MetadataError(f"{what}: metadata: {exc}", part="metadata") from exc
        validator = self._validators[prod.id]
        if validator is None:
            return encoded
        errors = list(validator.iter_errors(meta))
        if errors:
            errors.sort(key=lambda e: e.path)
            e = errors[0]
            path = "/".join(str(p) for p in e.absolute_path)
            raise MetadataError(
                f"{what}: metadata field {path or '(top level)'}: {e.message} (product "
                f"{prod.id} schema); fix the metadata to match the product's schema",
                part="metadata", field=path)
        return encoded


Submit = Callable[[Sequence[PreparedPut]], "Future[list[Receipt | StoreError]]"]


def iter_put_many(prepare: Callable[[PutItem], PreparedPut], submit: Submit,
                  items: Iterable[PutItem], chunk_size: int
                  ) -> Iterator[Receipt | StoreError]:
    """Prepare items in this thread, ``chunk_size`` (or 16 MiB of inline bytes) per
    writer operation, at most :data:`BULK_INFLIGHT` chunks queued; yield per item, in
    order, its receipt once its chunk is durable, or the error refusing it."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    inflight: deque[tuple[list[PreparedPut | StoreError], Future[Any] | None]] = deque()
    chunk: list[PreparedPut | StoreError] = []
    held = 0  # inline bytes in this chunk

    def send(chunk: list[PreparedPut | StoreError]) -> Future[Any] | None:
        todo = [p for p in chunk if isinstance(p, PreparedPut)]
        return submit(todo) if todo else None

    for n, item in enumerate(items):
        try:
            pp = prepare(item)
            held += len(pp.data) if pp.data is not None else 0
            chunk.append(pp)
        except StoreError as exc:
            chunk.append(_name_item(exc, n, item))
        if len(chunk) >= chunk_size or held >= BULK_CHUNK_BYTES:
            inflight.append((chunk, send(chunk)))
            chunk, held = [], 0
            while len(inflight) >= BULK_INFLIGHT:
                yield from _chunk_results(*inflight.popleft())
    if chunk:
        inflight.append((chunk, send(chunk)))
    while inflight:
        yield from _chunk_results(*inflight.popleft())


def _name_item(exc: StoreError, n: int, item: PutItem) -> StoreError:
    """The error refusing bulk item ``n``, its message naming the item."""
    exc.args = (f"item {n} ({item.product}/{item.name}): {exc}", *exc.args[1:])
    return exc


def _chunk_results(chunk: list[PreparedPut | StoreError], fut: Future[Any] | None
                   ) -> Iterator[Receipt | StoreError]:
    """Per-item results of a put_many chunk, once it is durable (or failed as a whole)."""
    results: list[Receipt | StoreError] = []
    if fut is not None:
        try:
            results = list(fut.result())
        except StoreError as exc:
            # Below the items (disk full, I/O): the chunk's transaction rolled back.
            results = [exc] * sum(isinstance(p, PreparedPut) for p in chunk)
    done = iter(results)
    for p in chunk:
        yield next(done) if isinstance(p, PreparedPut) else p


def _is_utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (no lone surrogates): records are UTF-8 JSON."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
