"""Hypothesis properties of depository.tlog.merkle on trees of up to a few thousand leaves.

Every generated proof verifies; every tampering with a proof, a root, a leaf, an index or a
size is rejected with a VerificationError subclass; garbage input never raises anything else.

One honest caveat, tested rather than hidden: an RFC 6962 proof does not bind the tree size
on its own. Re-using a proof *and its root* with a size off by one is accepted whenever the
proof's shape is the same for both sizes (e.g. leaf 0 of size 5 and of size 6: both chain
three hashes on the right), because the verifier then computes the very same root. For a
random leaf of a large tree that is the usual case, not a corner case (about 99% of
size±1 mutations in these trees). The size is bound to the root by the signed checkpoint,
not by the proof. So for size mutations we assert two things: against the *true* root(s)
of the mutated size(s) the proof is always rejected, and against the original root(s) our
verdict equals the naive reference's (tests/_rfc6962_reference.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import cache
from typing import Any

import _rfc6962_reference as ref
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depository.tlog.errors import VerificationError
from depository.tlog.merkle import (
    NodeFn,
    consistency_proof,
    consistency_proof_from_nodes,
    inclusion_proof,
    inclusion_proof_from_nodes,
    node_hash,
    root,
    root_from_nodes,
    verify_consistency,
    verify_inclusion,
)

N_MAX = 3000
LEAVES = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(N_MAX)]


def _perfect_nodes(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    nodes = {(0, k): h for k, h in enumerate(leaves)}
    level, row = 0, leaves
    while len(row) > 1:
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
        level += 1
        nodes.update(((level, k), h) for k, h in enumerate(row))
    return nodes


NODES = _perfect_nodes(LEAVES)


def store(size: int) -> NodeFn:
    """The store's view of the tree of the first ``size`` leaves."""

    def node(level: int, k: int) -> bytes:
        assert (k + 1) << level <= size, f"node ({level}, {k}) beyond size {size}"
        return NODES[(level, k)]

    return node


@cache
def tree_root(size: int) -> bytes:
    return root_from_nodes(store(size), size)


COMMON = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def cfg(max_examples: int) -> settings:
    return settings(COMMON, max_examples=max_examples)


@st.composite
def index_and_size(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, N_MAX))
    index = draw(st.integers(0, size - 1))
    return index, size


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    size2 = draw(st.integers(1, N_MAX))
    size1 = draw(st.integers(1, size2))
    return size1, size2


def flips(h: bytes) -> list[bytes]:
    """Every single-bit flip of ``h``."""
    out = []
    for bit in range(len(h) * 8):
        b = bytearray(h)
        b[bit // 8] ^= 1 << (bit % 8)
        out.append(bytes(b))
    return out


def rejected(fn: Callable[..., None], *args: Any) -> None:
    with pytest.raises(VerificationError):
        fn(*args)


def accepts(fn: Callable[..., None], *args: Any) -> bool:
    try:
        fn(*args)
    except VerificationError:
        return False
    return True


# --------------------------------------------------------------------------- inclusion


@cfg(60)
@given(index_and_size())
def test_inclusion_proofs_verify_and_generators_agree(case: tuple[int, int]) -> None:
    index, size = case
    proof = inclusion_proof_from_nodes(store(size), index, size)
    assert proof == inclusion_proof(LEAVES, index, size)
    assert tree_root(size) == root(LEAVES[:size])
    verify_inclusion(LEAVES[index], index, size, proof, tree_root(size))


@cfg(50)
@given(index_and_size())
def test_inclusion_tampering_is_rejected(case: tuple[int, int]) -> None:
    index, size = case
    leaf, r = LEAVES[index], tree_root(size)
    proof = inclusion_proof_from_nodes(store(size), index, size)
    verify_inclusion(leaf, index, size, proof, r)

    for i, p in enumerate(proof):
        for bad in flips(p):
            rejected(verify_inclusion, leaf, index, size, [*proof[:i], bad, *proof[i + 1 :]], r)
    for bad in flips(r):
        rejected(verify_inclusion, leaf, index, size, proof, bad)
    for bad in flips(leaf):
        rejected(verify_inclusion, bad, index, size, proof, r)

    extra = LEAVES[(index + 1) % N_MAX]
    rejected(verify_inclusion, leaf, index, size, [*proof, extra], r)
    rejected(verify_inclusion, leaf, index, size, [extra, *proof], r)
    rejected(verify_inclusion, leaf, index, size, [*proof, r], r)
    if proof:
        rejected(verify_inclusion, leaf, index, size, proof[:-1], r)
        rejected(verify_inclusion, leaf, index, size, proof[1:], r)
        rejected(verify_inclusion, leaf, index, size, proof[::-1] if len(proof) > 1 else [], r)

    for wrong in (index - 1, index + 1, index ^ 2, size, size + 1):
        if wrong >= 0 and wrong != index:
            rejected(verify_inclusion, leaf, wrong, size, proof, r)

    for wrong in (size - 1, size + 1):
        if 1 <= wrong <= N_MAX:
            # Against the true root of the other size: always rejected.
            rejected(verify_inclusion, leaf, index, wrong, proof, tree_root(wrong))
        if wrong >= 1:
            # Against the original root: see the module docstring.
            want = ref.root_from_path(index, wrong, leaf, proof) == r
            assert accepts(verify_inclusion, leaf, index, wrong, proof, r) == want


def test_size_is_not_bound_by_an_inclusion_proof_alone() -> None:
    """The documented caveat, pinned: leaf 0's proof in size 5 also "verifies" for size 6."""
    proof = inclusion_proof(LEAVES, 0, 5)
    verify_inclusion(LEAVES[0], 0, 6, proof, tree_root(5))
    rejected(verify_inclusion, LEAVES[0], 0, 6, proof, tree_root(6))
    rejected(verify_inclusion, LEAVES[0], 0, 4, proof, tree_root(5))  # shape differs


# --------------------------------------------------------------------------- consistency


@cfg(60)
@given(two_sizes())
def test_consistency_proofs_verify_and_generators_agree(case: tuple[int, int]) -> None:
    size1, size2 = case
    proof = consistency_proof_from_nodes(store(size2), size1, size2)
    assert proof == consistency_proof(LEAVES, size1, size2)
    verify_consistency(size1, size2, proof, tree_root(size1), tree_root(size2))


@cfg(50)
@given(two_sizes())
def test_consistency_tampering_is_rejected(case: tuple[int, int]) -> None:
    size1, size2 = case
    r1, r2 = tree_root(size1), tree_root(size2)
    proof = consistency_proof_from_nodes(store(size2), size1, size2)
    verify_consistency(size1, size2, proof, r1, r2)

    for i, p in enumerate(proof):
        for bad in flips(p):
            rejected(verify_consistency, size1, size2, [*proof[:i], bad, *proof[i + 1 :]], r1, r2)
    for bad in flips(r1):
        rejected(verify_consistency, size1, size2, proof, bad, r2)
    for bad in flips(r2):
        rejected(verify_consistency, size1, size2, proof, r1, bad)

    extra = LEAVES[size1 % N_MAX]
    rejected(verify_consistency, size1, size2, [*proof, extra], r1, r2)
    rejected(verify_consistency, size1, size2, [extra, *proof], r1, r2)
    rejected(verify_consistency, size1, size2, [r1, *proof], r1, r2)
    if proof:
        rejected(verify_consistency, size1, size2, proof[:-1], r1, r2)
        rejected(verify_consistency, size1, size2, proof[1:], r1, r2)
    if r1 != r2:
        rejected(verify_consistency, size1, size2, proof, r2, r1)

    for w1, w2 in ((size1 - 1, size2), (size1 + 1, size2), (size1, size2 - 1), (size1, size2 + 1)):
        if 1 <= w1 <= N_MAX and 1 <= w2 <= N_MAX:
            # Against the true roots of the other sizes: always rejected.
            rejected(verify_consistency, w1, w2, proof, tree_root(w1), tree_root(w2))
        if w1 >= 0 and w2 >= 0:
            # Against the original roots: see the module docstring.
            want = ref.roots_from_proof(w1, w2, proof, r1) == (r1, r2)
            assert accepts(verify_consistency, w1, w2, proof, r1, r2) == want
    rejected(verify_consistency, 0, size2, proof, r1, r2)


# --------------------------------------------------------------------------- bad input

NOT_A_HASH = st.one_of(
    st.binary(max_size=64).filter(lambda b: len(b) != 32),
    st.binary(min_size=32, max_size=32).map(bytearray),
    st.binary(min_size=32, max_size=32).map(memoryview),
    st.binary(min_size=32, max_size=32).map(bytes.hex),
    st.text(max_size=40),
    st.integers(),
    st.none(),
    st.lists(st.integers(0, 255), max_size=40),
)
NOT_A_SIZE = st.one_of(
    st.integers(max_value=-1),
    st.booleans(),
    st.floats(),
    st.text(max_size=5),
    st.none(),
    st.binary(max_size=4),
    st.integers(min_value=2**64, max_value=2**80),  # valid ints, but no such tree
)
NOT_A_PROOF = st.one_of(
    st.none(),
    st.binary(max_size=96),
    st.text(max_size=5),
    st.integers(),
    st.lists(NOT_A_HASH, min_size=1, max_size=4),
)


@cfg(300)
@given(index_and_size(), st.integers(0, 4), st.data())
def test_inclusion_garbage_is_a_verification_error(
    case: tuple[int, int], which: int, data: st.DataObject
) -> None:
    index, size = case
    args: list[Any] = [
        LEAVES[index],
        index,
        size,
        inclusion_proof_from_nodes(store(size), index, size),
        tree_root(size),
    ]
    strategy = {0: NOT_A_HASH, 1: NOT_A_SIZE, 2: NOT_A_SIZE, 3: NOT_A_PROOF, 4: NOT_A_HASH}
    args[which] = data.draw(strategy[which])
    if which == 1 and data.draw(st.booleans()):
        args[1] = data.draw(st.integers(min_value=size))  # index >= size
    rejected(verify_inclusion, *args)


@cfg(300)
@given(two_sizes(), st.integers(0, 4), st.data())
def test_consistency_garbage_is_a_verification_error(
    case: tuple[int, int], which: int, data: st.DataObject
) -> None:
    size1, size2 = case
    args: list[Any] = [
        size1,
        size2,
        consistency_proof_from_nodes(store(size2), size1, size2),
        tree_root(size1),
        tree_root(size2),
    ]
    strategy = {0: NOT_A_SIZE, 1: NOT_A_SIZE, 2: NOT_A_PROOF, 3: NOT_A_HASH, 4: NOT_A_HASH}
    args[which] = data.draw(strategy[which])
    rejected(verify_consistency, *args)


@given(
    st.integers(0, 2**70 - 1),
    st.lists(st.binary(min_size=32, max_size=32), max_size=80),
    st.binary(min_size=32, max_size=32),
)
@cfg(100)
def test_size_2_pow_70_fails_cleanly(index: int, proof: list[bytes], r: bytes) -> None:
    rejected(verify_inclusion, LEAVES[0], index, 2**70, proof, r)
    rejected(verify_consistency, max(1, index), 2**70, proof, r, LEAVES[0])
