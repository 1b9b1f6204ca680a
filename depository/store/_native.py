"""The engine behind the store's per-put encoding: the C twin or the Python specification.

Issue 13 / ADR 0012: the per-record work of a put -- the canonical JSON of its metadata,
its record's bytes, its artifact id, its leaf hash and the Merkle nodes it completes --
runs in ``depository.store._cput`` (C, SHA-256 from libcrypto) when that extension is
built and ``DEPOSITORY_NATIVE`` is not ``0``. The pure-Python functions named ``*_py``
here are the specification: ``tests/test_native_put.py`` checks the two give the same
bytes on the same inputs. The C functions decline (return None) wherever the Python path
would take its exact, slow branch or raise, so errors are always worded by Python.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from types import ModuleType
from typing import Any

from depository.store import _encode
from depository.store._logstore import LeafRow
from depository.store._model import artifact_id as artifact_id_py
from depository.store._model import format_time as format_time_py
from depository.store._model import meta_index_rows
from depository.store._prepared import PreparedPut
from depository.store._tree import NodeRow
from depository.tlog.merkle import leaf_hash, node_hash
from depository.tlog.record import canonical_json

__all__ = ["ENGINE", "PUT_TAIL", "append_put", "append_put_py", "artifact_id",
           "artifact_id_py", "canonical", "canonical_py", "format_time", "format_time_py",
           "meta_rows", "meta_rows_py", "put_head", "put_head_py", "put_rows",
           "put_rows_py"]

_PUT = "artifact.put"
PUT_TAIL = _encode.put_tail()
"""An ``artifact.put`` record's bytes after its ``time`` value."""


def _load() -> ModuleType | None:
    if os.environ.get("DEPOSITORY_NATIVE", "").strip() == "0":
        return None
    try:
        from depository.store import _cput  # type: ignore[attr-defined]
    except ImportError:  # not built: the Python twins do the work
        return None
    mod: ModuleType = _cput
    return mod


_C = _load()
ENGINE = "native (C, depository.store._cput)" if _C is not None else "python"
"""Which engine encodes puts in this process (reported by benchmarks and the CLI)."""


# ------------------------------------------------------------ the specification
def canonical_py(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value (:func:`depository.tlog.record.canonical_json`)."""
    return canonical_json(value)


def meta_rows_py(product: str, meta: dict[str, Any]) -> tuple[tuple[str, str, str], ...]:
    """The metadata index rows of a put (:func:`._model.meta_index_rows`)."""
    return tuple(meta_index_rows(product, meta))


def put_head_py(actor: str, product: str, aid: str, media_type: str, meta_json: bytes,
                name: str, prov_json: bytes, received: str, retain: str, sha256: str,
                size: int, storage: str) -> bytes:
    """The ``artifact.put`` record up to its ``seq`` value (see :mod:`._encode`)."""
    body = _encode.put_body(
        artifact_id=aid, name=name, sha256=sha256, size=size, media_type=media_type,
        metadata_json=meta_json, provenance_json=prov_json, retain_until=retain,
        storage=storage, received=received)
    return _encode.envelope_parts(_PUT, actor, product, body)[0]


def append_put_py(stack: list[tuple[int, bytes]], size: int, head: bytes, time_json: bytes,
                  tail: bytes, nodes: list[NodeRow]) -> tuple[bytes, bytes]:
    """The leaf at index ``size`` and its hash; merges it into the frontier ``stack`` (in
    place, as :meth:`depository.store._tree.Frontier.append`), completed nodes to
    ``nodes``. The caller advances the tree's size."""
    leaf = _encode.splice(head, size, time_json, tail)
    lh = h = leaf_hash(leaf)
    level = 0
    while stack and stack[-1][0] == level:
        h = node_hash(stack.pop()[1], h)
        level += 1
        nodes.append((level, size >> level, h))
    stack.append((level, h))
    return leaf, lh


def put_rows_py(puts: list[PreparedPut], seq: int, stack: list[tuple[int, bytes]],
                time_json: bytes, tail: bytes, now_text: str, leaves: list[LeafRow],
                nodes: list[NodeRow], artifacts: list[tuple[Any, ...]],
                meta: list[tuple[str, str, str, int]], inline: list[tuple[int, bytes]]
                ) -> list[bytes]:
    """The rows of accepted puts appended at ``seq``, ``seq + 1``, ...: per put its leaf
    row, the tree nodes it completes, its artifact row, metadata index rows and inline
    bytes, each appended to its list; returns the leaf hashes in order."""
    out = []
    for pp in puts:
        leaf, lh = append_put_py(stack, seq, pp.head, time_json, tail, nodes)
        out.append(lh)
        leaves.append((seq, leaf, lh))
        artifacts.append((seq, pp.aid, pp.prod.id, pp.name, pp.sha256, pp.size,
                          pp.media_type, pp.meta_json, pp.prov_json, pp.retain,
                          "inline" if pp.data is not None else "file", pp.actor, now_text))
        meta.extend([(p, k, v, seq) for p, k, v in pp.meta_rows])
        if pp.data is not None:
            inline.append((seq, pp.data))
        seq += 1
    return out


# ----------------------------------------------------------------- the engine
def _canonical_c(value: Any) -> bytes:
    assert _C is not None
    out: bytes | None = _C.canonical(value)
    return out if out is not None else canonical_json(value)


def _format_time_c(t: datetime) -> str:
    assert _C is not None
    out: str | None = _C.format_time(t)
    return out if out is not None else format_time_py(t)


def _meta_rows_c(product: str, meta: dict[str, Any]) -> tuple[tuple[str, str, str], ...]:
    assert _C is not None
    out: tuple[tuple[str, str, str], ...] | None = _C.meta_rows(product, meta)
    return out if out is not None else meta_rows_py(product, meta)


canonical: Callable[[Any], bytes] = _canonical_c if _C is not None else canonical_py
format_time: Callable[[datetime], str] = _format_time_c if _C is not None else format_time_py
meta_rows: Callable[[str, dict[str, Any]], tuple[tuple[str, str, str], ...]] = (
    _meta_rows_c if _C is not None else meta_rows_py)
put_head: Callable[..., bytes] = _C.put_head if _C is not None else put_head_py
artifact_id: Callable[[str, str], str] = (_C.artifact_id if _C is not None
                                          else artifact_id_py)
append_put: Callable[[list[tuple[int, bytes]], int, bytes, bytes, bytes, list[NodeRow]],
                     tuple[bytes, bytes]] = (_C.append_put if _C is not None
                                             else append_put_py)
put_rows: Callable[..., list[bytes]] = _C.put_rows if _C is not None else put_rows_py
