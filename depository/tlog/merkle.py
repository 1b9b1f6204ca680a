"""RFC 6962 / RFC 9162 §2.1 Merkle tree hashing, proof generation and proof verification.

SHA-256 throughout; leaf indexes are 0-based. A tree of ``n`` leaves is identified by its
size and its root hash ("tree head"). The empty tree's root is ``SHA-256("")``.

Generators come in two flavours that return byte-identical results:

* in-memory: :func:`root`, :func:`inclusion_proof`, :func:`consistency_proof` take the leaf
  hashes themselves;
* storage-backed: :func:`root_from_nodes`, :func:`inclusion_proof_from_nodes`,
  :func:`consistency_proof_from_nodes` take a :data:`NodeFn` returning the hash of the
  *perfect, aligned* subtree ``(level, k)`` = leaves ``[k·2^level, (k+1)·2^level)`` and fetch
  only O(log n) nodes.

Generators raise :class:`ValueError` (or :class:`TypeError`) on bad arguments. The
``verify_*`` functions return ``None`` or raise a :class:`~depository.verifier.VerificationError`
subclass: :class:`MalformedInputError` for ill-typed or ill-sized input,
:class:`InclusionProofError` / :class:`ConsistencyProofError` when a proof does not prove.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from depository.tlog.errors import (
    ConsistencyProofError,
    InclusionProofError,
    MalformedInputError,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "NodeFn",
    "combine",
    "consistency_proof",
    "consistency_proof_from_nodes",
    "consistency_ranges",
    "inclusion_proof",
    "inclusion_proof_from_nodes",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_inclusion_proof",
    "root_from_nodes",
    "subtrees",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Length in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root hash of the empty tree, ``SHA-256("")``."""

NodeFn = Callable[[int, int], bytes]
"""``node(level, k)`` → hash of the perfect subtree over leaves ``[k·2^level, (k+1)·2^level)``."""

_sha256 = hashlib.sha256
# A SHA-256 state that has already absorbed the 0x01 node prefix. ``.copy()`` of it is
# measurably cheaper than constructing a fresh hash object and concatenating the prefix.
_NODE_STATE = _sha256(b"\x01")


# --------------------------------------------------------------------------- hashing


def leaf_hash(data: bytes) -> bytes:
    """Return the leaf hash ``SHA-256(0x00 ‖ data)``."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the interior node hash ``SHA-256(0x01 ‖ left ‖ right)`` of two 32-byte hashes."""
    if len(left) != HASH_SIZE or len(right) != HASH_SIZE:
        raise ValueError(f"node_hash needs two {HASH_SIZE}-byte hashes")
    return _node(left, right)


def _node(left: bytes, right: bytes) -> bytes:
    h = _NODE_STATE.copy()
    h.update(left)
    h.update(right)
    return h.digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the RFC 6962 tree head ``MTH`` over ``leaf_hashes`` (32-byte leaf hashes).

    One SHA-256 per internal node. The leaves are taken in aligned chunks of ``_CHUNK``
    (a power of two, so each chunk is a perfect subtree, the last one possibly partial)
    and the chunk roots are then combined the same way, which gives the same MTH while
    keeping the extra memory at O(n / _CHUNK) instead of O(n) (0.1 MB, not 55 MB, at 1M).
    """
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n <= _CHUNK:
        return bytes(_levels(_checked(leaf_hashes)))
    return _levels(
        [_levels(_checked(leaf_hashes[s : s + _CHUNK])) for s in range(0, n, _CHUNK)]
    )


_CHUNK = 1024


def _checked(hashes: Sequence[bytes]) -> Sequence[bytes]:
    if set(map(len, hashes)) != {HASH_SIZE}:
        raise ValueError(f"every leaf hash must be {HASH_SIZE} bytes")
    return hashes


def _levels(level: Sequence[bytes]) -> bytes:
    """MTH of a non-empty list of subtree hashes that are all perfect except maybe the last.

    Level by level: hash adjacent pairs and carry an odd last hash up unchanged, which is
    exactly the RFC's split at the largest power of two below the size.
    """
    copy = _NODE_STATE.copy
    n = len(level)
    while n > 1:
        it = iter(level)
        nxt: list[bytes] = []
        append = nxt.append
        for a, b in zip(it, it, strict=False):  # pairs (0,1), (2,3), …
            h = copy()
            h.update(a)
            h.update(b)
            append(h.digest())
        if n & 1:
            append(level[-1])
        level = nxt
        n = len(nxt)
    return level[0]


# --------------------------------------------------------------------------- proof shapes


def _split(n: int) -> int:
    """Largest power of two strictly less than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges ``[lo, hi)`` whose subtree hashes form the inclusion proof, leaf first."""
    _check_int("index", index)
    _check_int("size", size)
    if index >= size:
        raise ValueError(f"index {index} is not below size {size}")
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:  # PATH(m, D[lo:hi]), top-down
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def _consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """Leaf ranges ``[lo, hi)`` whose subtree hashes form the consistency proof, in order."""
    _check_int("size1", size1)
    _check_int("size2", size2)
    if size1 == 0:
        raise ValueError("size1 must be positive: a proof from the empty tree proves nothing")
    if size1 > size2:
        raise ValueError(f"size1 {size1} is greater than size2 {size2}")
    ranges: list[tuple[int, int]] = []
    lo, hi, complete = 0, size2, True
    while size1 != hi:  # SUBPROOF(size1 - lo, D[lo:hi], complete), top-down
        k = _split(hi - lo)
        if size1 <= lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            complete = False
    if not complete:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


# --------------------------------------------------------------------------- in-memory


def _checked_leaves(leaf_hashes: Sequence[bytes], size: int) -> Sequence[bytes]:
    if size > len(leaf_hashes):
        raise ValueError(f"size {size} exceeds the {len(leaf_hashes)} leaf hashes given")
    return leaf_hashes


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """Return the inclusion proof of leaf ``index`` in the tree of the first ``size`` leaves."""
    ranges = _inclusion_ranges(index, size)
    leaves = _checked_leaves(leaf_hashes, size)
    return [root(leaves[lo:hi]) for lo, hi in ranges]


def consistency_proof(leaf_hashes: Sequence[bytes], size1: int, size2: int) -> list[bytes]:
    """Return the proof that the first ``size1`` leaves are a prefix of the first ``size2``."""
    ranges = _consistency_ranges(size1, size2)
    leaves = _checked_leaves(leaf_hashes, size2)
    return [root(leaves[lo:hi]) for lo, hi in ranges]


# --------------------------------------------------------------------------- storage-backed


def subtrees(lo: int, hi: int) -> list[tuple[int, int]]:
    """The perfect aligned subtrees ``(level, k)`` that make up leaves ``[lo, hi)``.

    Largest first (the binary digits of ``hi - lo``); ``lo`` must be aligned to the
    largest power of two not above ``hi - lo``, as every range of a proof is.
    """
    parts: list[tuple[int, int]] = []
    start, n = lo, hi - lo
    while n:
        level = n.bit_length() - 1
        width = 1 << level
        if start & (width - 1):
            raise ValueError(f"range [{lo}, {hi}) is not aligned")
        parts.append((level, start >> level))
        start += width
        n -= width
    return parts


def combine(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from the hashes of its :func:`subtrees`, combined right to left."""
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = _node(left, h)
    return h


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges ``[lo, hi)`` whose hashes form the inclusion proof of ``index``, leaf first."""
    return _inclusion_ranges(index, size)


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """Leaf ranges ``[lo, hi)`` whose hashes form the consistency proof, in proof order."""
    return _consistency_ranges(size1, size2)


def _range_hash(node: NodeFn, lo: int, hi: int) -> bytes:
    """MTH of leaves ``[lo, hi)`` from stored perfect subtrees (see :func:`subtrees`)."""
    return combine([node(level, k) for level, k in subtrees(lo, hi)])


def root_from_nodes(node: NodeFn, size: int) -> bytes:
    """Return the tree head of size ``size`` from stored perfect subtree hashes."""
    _check_int("size", size)
    if size == 0:
        return EMPTY_ROOT
    return _range_hash(node, 0, size)


def inclusion_proof_from_nodes(node: NodeFn, index: int, size: int) -> list[bytes]:
    """Return the inclusion proof of leaf ``index`` in tree ``size`` from stored nodes."""
    return [_range_hash(node, lo, hi) for lo, hi in _inclusion_ranges(index, size)]


def consistency_proof_from_nodes(node: NodeFn, size1: int, size2: int) -> list[bytes]:
    """Return the consistency proof between trees ``size1`` and ``size2`` from stored nodes."""
    return [_range_hash(node, lo, hi) for lo, hi in _consistency_ranges(size1, size2)]


# --------------------------------------------------------------------------- verification


def _size(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedInputError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise MalformedInputError(f"{name} must not be negative, got {value}")
    return value


def _hash(name: str, value: object) -> bytes:
    if not isinstance(value, bytes):
        raise MalformedInputError(f"{name} must be bytes, got {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise MalformedInputError(f"{name} is {len(value)} bytes, want {HASH_SIZE}")
    return value


def _proof(value: object) -> list[bytes]:
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray, str)):
        raise MalformedInputError(f"proof must be a sequence of hashes, got {type(value).__name__}")
    path = list(value)
    for i, p in enumerate(path):
        if not isinstance(p, bytes) or len(p) != HASH_SIZE:
            _hash(f"proof[{i}]", p)  # raises with the details
    return path


def _decompose(index: int, size: int) -> tuple[int, int]:
    """Split an inclusion proof for ``index < size`` into (inner, border) element counts."""
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """Return the root implied by an inclusion proof (RFC 9162 §2.1.3.2).

    Raises :class:`MalformedInputError` for bad input and :class:`InclusionProofError` if
    ``index >= size`` or the proof has the wrong length for ``(index, size)``.
    """
    leaf = _hash("leaf hash", leaf_hash)
    index = _size("index", index)
    size = _size("size", size)
    path = _proof(proof)
    if index >= size:
        raise InclusionProofError(f"index {index} is not below tree size {size}")
    inner, border = _decompose(index, size)
    if len(path) != inner + border:
        raise InclusionProofError(
            f"proof has {len(path)} hashes, want {inner + border} (index {index}, size {size})"
        )
    h = leaf
    for i, p in enumerate(path[:inner]):
        h = _node(p, h) if (index >> i) & 1 else _node(h, p)
    for p in path[inner:]:
        h = _node(p, h)
    return h


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree with ``size`` and ``root``."""
    want = _hash("root", root)
    got = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if got != want:
        raise InclusionProofError(
            f"calculated root {got.hex()} does not match expected root {want.hex()} "
            f"(index {index}, size {size})"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that tree ``(size1, root1)`` is a prefix of tree ``(size2, root2)``.

    RFC 9162 §2.1.4.2. Stricter than the RFC in one respect: ``size1 == 0`` is rejected,
    because a consistency proof from the empty tree proves nothing.
    """
    size1 = _size("size1", size1)
    size2 = _size("size2", size2)
    path = _proof(proof)
    r1 = _hash("root1", root1)
    r2 = _hash("root2", root2)
    where = f"(size1 {size1}, size2 {size2})"
    if size1 == 0:
        raise ConsistencyProofError(
            f"size1 is 0: a consistency proof from the empty tree proves nothing {where}"
        )
    if size1 > size2:
        raise ConsistencyProofError(f"size1 is greater than size2 {where}")
    if size1 == size2:
        if path:
            raise ConsistencyProofError(f"proof has {len(path)} hashes, want 0 {where}")
        if r1 != r2:
            raise ConsistencyProofError(
                f"root1 {r1.hex()} does not match root2 {r2.hex()} for equal sizes {where}"
            )
        return

    # The proof is an inclusion proof for leaf size1 - 1 of tree size2, with the part below
    # the largest perfect subtree ending at size1 replaced by that subtree's hash (the seed).
    inner, border = _decompose(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1  # trailing zero bits of size1
    inner -= shift
    if size1 == 1 << shift:  # size1 is a power of two: the seed is root1 itself
        seed, start = r1, 0
    else:
        if not path:
            raise ConsistencyProofError(f"proof has 0 hashes, want {1 + inner + border} {where}")
        seed, start = path[0], 1
    if len(path) != start + inner + border:
        raise ConsistencyProofError(
            f"proof has {len(path)} hashes, want {start + inner + border} {where}"
        )
    path = path[start:]
    mask = (size1 - 1) >> shift

    h1 = seed
    h2 = seed
    for i, p in enumerate(path[:inner]):
        if (mask >> i) & 1:
            h1 = _node(p, h1)
            h2 = _node(p, h2)
        else:
            h2 = _node(h2, p)
    for p in path[inner:]:
        h1 = _node(p, h1)
        h2 = _node(p, h2)
    if h1 != r1:
        raise ConsistencyProofError(
            f"calculated root1 {h1.hex()} does not match expected root1 {r1.hex()} {where}"
        )
    if h2 != r2:
        raise ConsistencyProofError(
            f"calculated root2 {h2.hex()} does not match expected root2 {r2.hex()} {where}"
        )
