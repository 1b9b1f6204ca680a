"""A put made ready outside the writer, and its wire form for ``serve --workers``.

Everything about a put that needs no writer -- checks, the bytes stored, the record
encoded up to its sequence number -- happens in the caller's thread (or an HTTP worker
process) and yields a :class:`PreparedPut`. The writer then re-checks what depends on the
log (write-once, quota, governance lock) and appends it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import NamedTuple

from depository.store.config import Product


class PreparedPut(NamedTuple):
    """A put validated, stored (bytes) and encoded (a tuple: one is built per artifact on
    the hot path)."""

    prod: Product
    name: str
    aid: str
    sha256: str
    size: int
    data: bytes | None  # inline bytes, or None when stored in the blob backend
    media_type: str
    meta_json: str
    prov_json: str
    meta_rows: tuple[tuple[str, str, str], ...]  # (product, key, value)
    retain: str
    actor: str
    head: bytes  # the record up to its seq (see _encode)

    def encode(self) -> bytes:
        """This put as bytes for another process; see :meth:`decode`.

        A JSON header, then the encoded record head and the inline bytes raw (no base64
        on the hot path)."""
        header = json.dumps([
            self.prod.id, self.name, self.aid, self.sha256, self.size, self.media_type,
            self.meta_json, self.prov_json, self.meta_rows, self.retain, self.actor,
            self.data is not None,
        ], ensure_ascii=False, separators=(",", ":")).encode()
        data = self.data if self.data is not None else b""
        return b"".join((_WIRE_LEN.pack(len(header), len(self.head), len(data)), header,
                         self.head, data))

    @classmethod
    def decode(cls, buf: bytes | memoryview, product: Callable[[str], Product]
               ) -> PreparedPut:
        """The put :meth:`encode` encoded. ``product`` resolves the product id in this
        process's configuration (the same file both read), so an unknown id fails here
        rather than at the writer."""
        mv = memoryview(buf)
        n_header, n_head, n_data = _WIRE_LEN.unpack_from(mv)
        at = _WIRE_LEN.size
        h = json.loads(bytes(mv[at:at + n_header]))
        at += n_header
        head = bytes(mv[at:at + n_head])
        at += n_head
        data = bytes(mv[at:at + n_data]) if h[11] else None
        return cls(
            prod=product(h[0]), name=h[1], aid=h[2], sha256=h[3], size=int(h[4]),
            data=data, media_type=h[5], meta_json=h[6], prov_json=h[7],
            meta_rows=tuple((str(a), str(b), str(c)) for a, b, c in h[8]), retain=h[9],
            actor=h[10], head=head)


_WIRE_LEN = struct.Struct("!III")
