"""depository.tlog.merkle against a naive RFC 6962 §2.1 reference, sizes 1..70 exhaustively."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import _rfc6962_reference as ref
import pytest

from depository.tlog import merkle
from depository.tlog.errors import (
    ConsistencyProofError,
    InclusionProofError,
    MalformedInputError,
)
from depository.tlog.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    consistency_proof,
    consistency_proof_from_nodes,
    inclusion_proof,
    inclusion_proof_from_nodes,
    leaf_hash,
    node_hash,
    root,
    root_from_inclusion_proof,
    root_from_nodes,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 70
DATA = [i.to_bytes(2, "big") * (i % 5) for i in range(MAX_SIZE)]  # includes empty entries
LEAVES = [leaf_hash(d) for d in DATA]

STD_DATA = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
STD_LEAVES = [leaf_hash(d) for d in STD_DATA]
# Roots of the standard tree's prefixes (size 1..8), as published with RFC 6962 test code.
STD_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def perfect_nodes(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every perfect aligned subtree hash ``(level, k)`` over ``leaves`` (what the store keeps)."""
    nodes = {(0, k): h for k, h in enumerate(leaves)}
    level, row = 0, leaves
    while len(row) > 1:
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
        level += 1
        nodes.update(((level, k), h) for k, h in enumerate(row))
    return nodes


NODES = perfect_nodes(LEAVES)


class CountingStore:
    """A NodeFn over :data:`NODES` that counts fetches and refuses nodes beyond ``size``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.fetches = 0

    def __call__(self, level: int, k: int) -> bytes:
        assert (k + 1) << level <= self.size, f"node ({level}, {k}) is beyond size {self.size}"
        self.fetches += 1
        return NODES[(level, k)]


# --------------------------------------------------------------------------- known values


def test_empty_root() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root([]) == EMPTY_ROOT
    assert root_from_nodes(CountingStore(0), 0) == EMPTY_ROOT
    assert ref.mth([]) == EMPTY_ROOT


def test_hash_primitives() -> None:
    assert HASH_SIZE == 32
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    a, b = LEAVES[1], LEAVES[2]
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    with pytest.raises(ValueError):
        node_hash(a, b[:-1])
    with pytest.raises(ValueError):
        node_hash(a + b"\x00", b)


def test_standard_tree_roots() -> None:
    for size in range(1, 9):
        want = bytes.fromhex(STD_ROOTS[size - 1])
        assert root(STD_LEAVES[:size]) == want
        assert ref.mth(STD_DATA[:size]) == want
    assert root(STD_LEAVES).hex() == (
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    )


def test_single_leaf_root_is_leaf_hash() -> None:
    assert root(LEAVES[:1]) == LEAVES[0]
    assert root([bytearray(LEAVES[0])]) == LEAVES[0]  # always returns bytes
    assert type(root([bytearray(LEAVES[0])])) is bytes


def test_root_rejects_wrong_length_leaf_hashes() -> None:
    with pytest.raises(ValueError):
        root([LEAVES[0], LEAVES[1][:31]])
    with pytest.raises(ValueError):
        root([b""])


@pytest.mark.parametrize("size", [1023, 1024, 1025, 2047, 2048, 2049, 3072, 3073, 4097])
def test_root_across_chunk_boundaries(size: int) -> None:
    """root() hashes aligned 1024-leaf chunks first; sizes around the boundaries."""
    data = [i.to_bytes(4, "big") for i in range(size)]
    leaves = [leaf_hash(d) for d in data]
    nodes = perfect_nodes(leaves)
    assert root(leaves) == ref.mth(data)
    assert root(leaves) == root_from_nodes(lambda level, k: nodes[(level, k)], size)
    with pytest.raises(ValueError):
        root([*leaves[:-1], leaves[-1][:31]])


# --------------------------------------------------------------------------- vs reference


@pytest.mark.parametrize("size", range(1, MAX_SIZE + 1))
def test_root_matches_reference(size: int) -> None:
    want = ref.mth(DATA[:size])
    assert root(LEAVES[:size]) == want
    store = CountingStore(size)
    assert root_from_nodes(store, size) == want
    assert store.fetches == bin(size).count("1")


@pytest.mark.parametrize("size", range(1, MAX_SIZE + 1))
def test_inclusion_proofs_match_reference(size: int) -> None:
    tree_root = ref.mth(DATA[:size])
    for index in range(size):
        want = ref.path(index, DATA[:size])
        assert inclusion_proof(LEAVES, index, size) == want
        store = CountingStore(size)
        assert inclusion_proof_from_nodes(store, index, size) == want
        assert store.fetches <= 2 * size.bit_length()
        verify_inclusion(LEAVES[index], index, size, want, tree_root)
        assert root_from_inclusion_proof(LEAVES[index], index, size, want) == tree_root
        assert ref.root_from_path(index, size, LEAVES[index], want) == tree_root


@pytest.mark.parametrize("size2", range(1, MAX_SIZE + 1))
def test_consistency_proofs_match_reference(size2: int) -> None:
    root2 = ref.mth(DATA[:size2])
    for size1 in range(1, size2 + 1):
        root1 = ref.mth(DATA[:size1])
        want = ref.proof(size1, DATA[:size2])
        assert consistency_proof(LEAVES, size1, size2) == want
        store = CountingStore(size2)
        assert consistency_proof_from_nodes(store, size1, size2) == want
        assert store.fetches <= 2 * size2.bit_length() + 1
        verify_consistency(size1, size2, want, root1, root2)
        assert ref.roots_from_proof(size1, size2, want, root1) == (root1, root2)


def test_in_memory_generators_use_only_the_first_size_leaves() -> None:
    assert inclusion_proof(LEAVES, 2, 5) == inclusion_proof(LEAVES[:5], 2, 5)
    assert consistency_proof(LEAVES, 3, 7) == consistency_proof(LEAVES[:7], 3, 7)


# --------------------------------------------------------------------------- huge trees


def _uniform_tree_node(level: int, k: int) -> bytes:
    """Node store of a (virtual) tree whose every leaf hash is the same value."""
    return _UNIFORM[level]


_UNIFORM = [hashlib.sha256(b"same leaf").digest()]
for _ in range(80):
    _UNIFORM.append(node_hash(_UNIFORM[-1], _UNIFORM[-1]))


@pytest.mark.parametrize(
    ("index", "size1", "size2"),
    [
        (0, 2**70, 2**70 + 1),
        (2**70 - 1, 2**64 + 12345, 2**70),
        (2**69 + 3, 2**70 - 1, 2**71 - 7),
        (12345678901234567890, 2**66, 2**72),
    ],
)
def test_huge_trees_from_nodes(index: int, size1: int, size2: int) -> None:
    root1 = root_from_nodes(_uniform_tree_node, size1)
    root2 = root_from_nodes(_uniform_tree_node, size2)
    leaf = _UNIFORM[0]
    proof = inclusion_proof_from_nodes(_uniform_tree_node, index, size2)
    assert len(proof) <= size2.bit_length()
    verify_inclusion(leaf, index, size2, proof, root2)
    cproof = consistency_proof_from_nodes(_uniform_tree_node, size1, size2)
    verify_consistency(size1, size2, cproof, root1, root2)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(size1, size2, cproof, root2, root1)
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf, index, size2, proof[:-1], root2)


def test_huge_size_with_junk_proof_fails_cleanly() -> None:
    junk = [hashlib.sha256(bytes([i])).digest() for i in range(70)]
    with pytest.raises(InclusionProofError, match="does not match"):
        verify_inclusion(LEAVES[0], 2**70 - 1, 2**70, junk, LEAVES[1])
    with pytest.raises(InclusionProofError, match="want 70"):
        verify_inclusion(LEAVES[0], 2**70 - 1, 2**70, junk[:3], LEAVES[1])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(2**69 + 1, 2**70, junk, LEAVES[0], LEAVES[1])
    with pytest.raises(InclusionProofError):
        verify_inclusion(LEAVES[0], 2**1000, 2**1000 + 1, junk, LEAVES[1])


# --------------------------------------------------------------------------- error messages


def test_inclusion_mismatch_message_has_hex_got_and_want() -> None:
    proof = inclusion_proof(STD_LEAVES, 3, 8)
    wrong_root = bytes(32)
    got = root(STD_LEAVES)
    with pytest.raises(InclusionProofError) as exc:
        verify_inclusion(STD_LEAVES[3], 3, 8, proof, wrong_root)
    assert str(exc.value) == (
        f"calculated root {got.hex()} does not match expected root {wrong_root.hex()} "
        "(index 3, size 8)"
    )


def test_consistency_mismatch_message_has_hex_got_and_want() -> None:
    proof = consistency_proof(STD_LEAVES, 3, 8)
    r3, r8 = root(STD_LEAVES[:3]), root(STD_LEAVES)
    with pytest.raises(ConsistencyProofError, match=f"expected root1 {bytes(32).hex()}"):
        verify_consistency(3, 8, proof, bytes(32), r8)
    with pytest.raises(ConsistencyProofError, match=f"calculated root2 {r8.hex()}"):
        verify_consistency(3, 8, proof, r3, bytes(32))
    assert len(proof) == 4
    with pytest.raises(ConsistencyProofError, match="proof has 3 hashes, want 4"):
        verify_consistency(3, 8, proof[:3], r3, r8)


# --------------------------------------------------------------------------- strictness


def test_verify_inclusion_strict_arguments() -> None:
    proof = inclusion_proof(STD_LEAVES, 5, 8)
    r = root(STD_LEAVES)
    leaf = STD_LEAVES[5]
    verify_inclusion(leaf, 5, 8, proof, r)
    verify_inclusion(leaf, 5, 8, tuple(proof), r)
    with pytest.raises(InclusionProofError, match="not below"):
        verify_inclusion(leaf, 8, 8, proof, r)
    with pytest.raises(InclusionProofError, match="not below"):
        verify_inclusion(leaf, 0, 0, [], EMPTY_ROOT)
    with pytest.raises(MalformedInputError):
        verify_inclusion(leaf, -1, 8, proof, r)
    with pytest.raises(MalformedInputError):
        verify_inclusion(leaf, 5, -8, proof, r)
    with pytest.raises(MalformedInputError):
        verify_inclusion(leaf, True, 8, proof, r)
    with pytest.raises(MalformedInputError):
        verify_inclusion(leaf, 5, 8.0, proof, r)  # type: ignore[arg-type]
    with pytest.raises(MalformedInputError):
        verify_inclusion(leaf, 5, 8, proof, bytearray(r))  # type: ignore[arg-type]
    with pytest.raises(MalformedInputError):
        verify_inclusion(leaf.hex(), 5, 8, proof, r)  # type: ignore[arg-type]
    with pytest.raises(MalformedInputError):
        verify_inclusion(leaf, 5, 8, None, r)  # type: ignore[arg-type]
    with pytest.raises(MalformedInputError):
        verify_inclusion(leaf, 5, 8, b"".join(proof), r)
    with pytest.raises(MalformedInputError):
        verify_inclusion(leaf, 5, 8, [*proof[:2], proof[2][:31]], r)
    with pytest.raises(InclusionProofError, match="proof has 4 hashes, want 3"):
        verify_inclusion(leaf, 5, 8, [*proof, proof[0]], r)


def test_verify_consistency_strict_arguments() -> None:
    r = [root(STD_LEAVES[:n]) for n in range(9)]
    proof = consistency_proof(STD_LEAVES, 6, 8)
    verify_consistency(6, 8, proof, r[6], r[8])
    verify_consistency(8, 8, [], r[8], r[8])
    with pytest.raises(ConsistencyProofError, match="empty tree"):
        verify_consistency(0, 8, [], EMPTY_ROOT, r[8])
    with pytest.raises(ConsistencyProofError, match="empty tree"):
        verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(ConsistencyProofError, match="greater"):
        verify_consistency(8, 6, proof, r[8], r[6])
    with pytest.raises(ConsistencyProofError, match="want 0"):
        verify_consistency(8, 8, [r[8]], r[8], r[8])
    with pytest.raises(ConsistencyProofError, match="does not match root2"):
        verify_consistency(8, 8, [], r[8], r[7])
    with pytest.raises(ConsistencyProofError, match="proof has 0 hashes"):
        verify_consistency(6, 8, [], r[6], r[8])
    with pytest.raises(MalformedInputError):
        verify_consistency(-1, 8, proof, r[6], r[8])
    with pytest.raises(MalformedInputError):
        verify_consistency(6, "8", proof, r[6], r[8])  # type: ignore[arg-type]
    with pytest.raises(MalformedInputError):
        verify_consistency(6, 8, proof, r[6][:16], r[8])
    with pytest.raises(MalformedInputError):
        verify_consistency(6, 8, proof, r[6], None)  # type: ignore[arg-type]
    with pytest.raises(MalformedInputError):
        verify_consistency(8, 8, [], b"x" * 12, b"x" * 12)


GeneratorCall = Callable[[], object]


@pytest.mark.parametrize(
    "call",
    [
        lambda: inclusion_proof(LEAVES, 5, 5),
        lambda: inclusion_proof(LEAVES, -1, 5),
        lambda: inclusion_proof(LEAVES, 0, 0),
        lambda: inclusion_proof(LEAVES[:4], 1, 5),
        lambda: consistency_proof(LEAVES, 0, 5),
        lambda: consistency_proof(LEAVES, 6, 5),
        lambda: consistency_proof(LEAVES, -1, 5),
        lambda: consistency_proof(LEAVES[:4], 1, 5),
        lambda: inclusion_proof_from_nodes(CountingStore(5), 5, 5),
        lambda: consistency_proof_from_nodes(CountingStore(5), 0, 5),
        lambda: consistency_proof_from_nodes(CountingStore(5), 6, 5),
        lambda: root_from_nodes(CountingStore(5), -1),
    ],
)
def test_generators_reject_bad_arguments(call: GeneratorCall) -> None:
    with pytest.raises(ValueError):
        call()


def test_generators_reject_non_int_sizes() -> None:
    with pytest.raises(TypeError):
        inclusion_proof(LEAVES, 0, 5.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        consistency_proof(LEAVES, True, 5)


def test_equal_sizes_give_empty_consistency_proof() -> None:
    assert consistency_proof(LEAVES, 9, 9) == []
    assert consistency_proof_from_nodes(CountingStore(9), 9, 9) == []


def test_public_api() -> None:
    assert set(merkle.__all__) == {
        "EMPTY_ROOT",
        "HASH_SIZE",
        "NodeFn",
        "combine",
        "consistency_proof",
        "consistency_ranges",
        "inclusion_ranges",
        "subtrees",
        "consistency_proof_from_nodes",
        "inclusion_proof",
        "inclusion_proof_from_nodes",
        "leaf_hash",
        "node_hash",
        "root",
        "root_from_inclusion_proof",
        "root_from_nodes",
        "verify_consistency",
        "verify_inclusion",
    }


def test_subtrees_and_combine_give_every_proof_range_hash() -> None:
    """What the store fetches (subtrees) and how it joins them (combine) give exactly
    the hashes the in-memory generators compute, for every range of every proof."""
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(40)]

    def mth(lo: int, hi: int) -> bytes:
        return merkle.combine([
            merkle.root(leaves[k << level:(k + 1) << level])
            for level, k in merkle.subtrees(lo, hi)])

    for size in range(1, 41):
        for index in range(size):
            assert [mth(lo, hi) for lo, hi in merkle.inclusion_ranges(index, size)] == (
                inclusion_proof(leaves, index, size))
        for size1 in range(1, size + 1):
            assert [mth(lo, hi) for lo, hi in merkle.consistency_ranges(size1, size)] == (
                consistency_proof(leaves, size1, size))
    assert merkle.subtrees(8, 15) == [(2, 2), (1, 6), (0, 14)]
    with pytest.raises(ValueError, match="not aligned"):
        merkle.subtrees(3, 7)
