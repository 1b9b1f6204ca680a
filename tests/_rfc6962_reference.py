"""A naive RFC 6962 §2.1 Merkle tree, transcribed from the RFC text. Tests only.

Deliberately slow and literal (recursion on list slices) so that it can serve as an
independent oracle for :mod:`depository.tlog.merkle`. ``D[n]`` is a list of leaf *inputs*
(data entries); the leaf hash ``SHA-256(0x00 ‖ d)`` is applied here, as in the RFC.
The RFC's list concatenation ``A : B`` is written ``[*A, B]``.
"""

from __future__ import annotations

import hashlib


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: list[bytes]) -> bytes:
    """MTH(D[n]) per RFC 6962 §2.1."""
    n = len(d)
    if n == 0:
        return _h(b"")
    if n == 1:
        return _h(b"\x00" + d[0])
    k = _k(n)
    return _h(b"\x01" + mth(d[0:k]) + mth(d[k:n]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the audit path for the (m+1)th leaf, per RFC 6962 §2.1.1."""
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*path(m, d[0:k]), mth(d[k:n])]
    return [*path(m - k, d[k:n]), mth(d[0:k])]


def proof(m: int, d: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): the consistency proof for the first m leaves, per RFC 6962 §2.1.2."""
    return subproof(m, d, True)


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) per RFC 6962 §2.1.2."""
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, d[0:k], b), mth(d[k:n])]
    return [*subproof(m - k, d[k:n], False), mth(d[0:k])]


# Reference *verifiers*: rebuild the roots by walking the same recursion that produced the
# proof (the last element of PATH/SUBPROOF is the top-level sibling). Returns None when the
# proof has the wrong number of elements for (m, n). Inputs are hashes, not leaf data.


def root_from_path(m: int, n: int, leaf_hash: bytes, proof: list[bytes]) -> bytes | None:
    """The root that ``proof`` = PATH(m, D[n]) implies for a leaf with hash ``leaf_hash``."""
    if not 0 <= m < n:
        return None
    if n == 1:
        return leaf_hash if not proof else None
    if not proof:
        return None
    *rest, sibling = proof
    k = _k(n)
    if m < k:
        below = root_from_path(m, k, leaf_hash, rest)
        return None if below is None else _h(b"\x01" + below + sibling)
    below = root_from_path(m - k, n - k, leaf_hash, rest)
    return None if below is None else _h(b"\x01" + sibling + below)


def roots_from_proof(
    m: int, n: int, proof: list[bytes], root1: bytes
) -> tuple[bytes, bytes] | None:
    """The (old, new) roots that ``proof`` = PROOF(m, D[n]) implies, given the old root.

    ``m == 0`` is refused (returns None), matching the project's stricter rule.
    """
    if not 0 < m <= n:
        return None
    return _roots_from_subproof(m, n, True, proof, root1)


def _roots_from_subproof(
    m: int, n: int, b: bool, proof: list[bytes], root1: bytes
) -> tuple[bytes, bytes] | None:
    if m == n:
        if b:
            return (root1, root1) if not proof else None
        return (proof[0], proof[0]) if len(proof) == 1 else None
    if not proof:
        return None
    *rest, sibling = proof
    k = _k(n)
    if m <= k:
        sub = _roots_from_subproof(m, k, b, rest, root1)
        return None if sub is None else (sub[0], _h(b"\x01" + sub[1] + sibling))
    sub = _roots_from_subproof(m - k, n - k, False, rest, root1)
    if sub is None:
        return None
    return _h(b"\x01" + sibling + sub[0]), _h(b"\x01" + sibling + sub[1])
