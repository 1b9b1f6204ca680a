"""Every RFC 6962 vector in tests/vectors/rfc6962 (transparency-dev/merkle testdata).

Each file is one case: ``wantErr`` cases must raise a VerificationError subclass, the others
must verify. Where we are deliberately stricter than upstream, the case is listed in
:data:`STRICTER` with the reason and the error we raise instead — never skipped.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from depository.tlog.errors import (
    ConsistencyProofError,
    InclusionProofError,
    MalformedInputError,
    VerificationError,
)
from depository.tlog.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

VECTOR_DIR = Path(__file__).parent / "vectors" / "rfc6962"
FILES = sorted(VECTOR_DIR.rglob("*.json"))
IDS = [f.relative_to(VECTOR_DIR).as_posix() for f in FILES]

# Upstream expects success, we raise. Keyed by path relative to VECTOR_DIR.
STRICTER: dict[str, tuple[type[VerificationError], str]] = {
    "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json": (
        MalformedInputError,
        # size1 == size2 == 1 with equal 12-byte "roots": upstream only compares the roots
        # when the sizes are equal; we reject any hash that is not exactly 32 bytes.
        "roots are 12 bytes, not 32",
    ),
}

# The standard 8-leaf tree the numbered vector directories are built from.
STD_LEAVES = [
    leaf_hash(bytes.fromhex(h))
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


def _b64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def _load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return case


def _proof(case: dict[str, Any]) -> list[bytes]:
    return [_b64(p) for p in case["proof"] or []]  # "proof": null means no hashes


def _verify(case: dict[str, Any]) -> None:
    if "leafIdx" in case:
        verify_inclusion(
            _b64(case["leafHash"]),
            case["leafIdx"],
            case["treeSize"],
            _proof(case),
            _b64(case["root"]),
        )
    else:
        verify_consistency(
            case["size1"], case["size2"], _proof(case), _b64(case["root1"]), _b64(case["root2"])
        )


def test_vector_count() -> None:
    assert len(FILES) == 196, "tests/vectors/rfc6962 should hold all 196 upstream files"
    assert sum(i.startswith("inclusion/") for i in IDS) > 0
    assert sum(i.startswith("consistency/") for i in IDS) > 0


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_vector(path: Path) -> None:
    case = _load(path)
    rel = path.relative_to(VECTOR_DIR).as_posix()
    kind = InclusionProofError if "leafIdx" in case else ConsistencyProofError
    if rel in STRICTER:
        error, _reason = STRICTER[rel]
        assert case["wantErr"] is False
        with pytest.raises(error):
            _verify(case)
    elif case["wantErr"]:
        with pytest.raises(VerificationError) as exc:
            _verify(case)
        assert type(exc.value) in (kind, MalformedInputError), exc.value
    else:
        _verify(case)


def test_stricter_table_is_current() -> None:
    """Each STRICTER entry exists and upstream really expects success for it."""
    for rel in STRICTER:
        assert _load(VECTOR_DIR / rel)["wantErr"] is False, rel


def test_stricter_case_with_real_hashes_passes() -> None:
    """The shape we reject with 12-byte roots is accepted with well-formed 32-byte roots."""
    r = root(STD_LEAVES[:1])
    verify_consistency(1, 1, [], r, r)


def test_no_upstream_success_for_empty_trees_or_out_of_range_indexes() -> None:
    """We reject size1 == 0, tree size 0 and index >= size; upstream never expects otherwise.

    If a future copy of the vectors adds such a success case, it must go into STRICTER.
    """
    for path in FILES:
        case = _load(path)
        if case["wantErr"]:
            continue
        if "leafIdx" in case:
            assert 0 <= case["leafIdx"] < case["treeSize"], path
        else:
            assert 0 < case["size1"] <= case["size2"], path


@pytest.mark.parametrize(
    "path",
    [f for f in FILES if f.name == "happy-path.json"],
    ids=lambda f: f.relative_to(VECTOR_DIR).as_posix(),
)
def test_happy_paths_match_our_generators(path: Path) -> None:
    """Upstream's happy-path proofs are exactly what we generate for the standard tree."""
    case = _load(path)
    if "leafIdx" in case:
        size = case["treeSize"]
        assert root(STD_LEAVES[:size]) == _b64(case["root"])
        assert STD_LEAVES[case["leafIdx"]] == _b64(case["leafHash"])
        assert inclusion_proof(STD_LEAVES, case["leafIdx"], size) == _proof(case)
    else:
        size1, size2 = case["size1"], case["size2"]
        assert root(STD_LEAVES[:size1]) == _b64(case["root1"])
        assert root(STD_LEAVES[:size2]) == _b64(case["root2"])
        assert consistency_proof(STD_LEAVES, size1, size2) == _proof(case)
