"""Every case in tests/vectors/signed-note/notes.json, plus Go sumdb/note signing compatibility."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from depository.signing import add_signatures, sign_note, verifier_key_from_signer
from depository.tlog import VerificationError
from depository.tlog.checkpoint import verify_checkpoint
from depository.tlog.note import (
    SIG_TYPE_COSIGNATURE_V1,
    SIG_TYPE_ED25519,
    parse_note,
    parse_verifier_key,
    verify_note,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "signed-note" / "notes.json").read_text("utf-8")
)
CASES: list[dict[str, Any]] = VECTORS["cases"]
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"


def _case(desc_start: str) -> dict[str, Any]:
    (case,) = [c for c in CASES if c["desc"].startswith(desc_start)]
    return case


@pytest.mark.parametrize("case", CASES, ids=[c["desc"] for c in CASES])
def test_vector(case: dict[str, Any]) -> None:
    note_bytes = case["note"].encode("utf-8")
    expected = case["expected"]
    if expected["ok"]:
        note = verify_note(note_bytes, case["vkeys"])
        assert set(note.verified) == set(expected["verified"])
        assert len(note.verified) == len(expected["verified"])
        assert note.unknown == expected["unknown_ignored"]
        assert note.text == note_bytes[: note_bytes.rindex(b"\n\n") + 1]
    else:
        with pytest.raises(VerificationError):
            verify_note(note_bytes, case["vkeys"])


def test_vector_count() -> None:
    assert len(CASES) == 11


def test_go_signature_reproduced_byte_for_byte() -> None:
    expected = _case("single Ed25519 signature")["note"].encode()
    text = (
        b"If you think cryptography is the answer to your problem,\n"
        b"then you don't know what your problem is.\n"
    )
    assert sign_note(text, VECTORS["go_private_key_for_PeterNeumann"]) == expected


def test_go_private_key_matches_verifier_key() -> None:
    assert verifier_key_from_signer(VECTORS["go_private_key_for_PeterNeumann"]) == PETER_VKEY


def test_add_signatures_reproduces_go_doubly_signed_note() -> None:
    single = _case("single Ed25519 signature")["note"].encode()
    double = _case("two signatures, both keys trusted")["note"].encode()
    enoch_line = double.splitlines(keepends=True)[-1]
    assert add_signatures(single, enoch_line) == double


@pytest.mark.parametrize("vkey", VECTORS["external_vkeys_checked"])
def test_external_verifier_keys_parse(vkey: str) -> None:
    key = parse_verifier_key(vkey)
    assert key.sig_type in (SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE_V1)
    assert key.key_id.hex() == vkey.split("+")[1]
    assert len(key.public_key) == 32


def test_vector_checkpoint_with_cosignature() -> None:
    case = _case("checkpoint (8-leaf")
    cp, note = verify_checkpoint(
        case["note"].encode(), case["vkeys"], origin="example.com/tlog-research/test"
    )
    assert cp.size == 8
    assert cp.root_hash.hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert note.cosignatures == (("witness.example.com/w1", 1700000000),)


def test_vector_signature_bytes_are_parsed() -> None:
    text, sigs = parse_note(_case("single Ed25519 signature")["note"].encode())
    assert text.endswith(b"is.\n")
    assert [(s.name, s.key_id.hex(), len(s.signature)) for s in sigs] == [
        ("PeterNeumann", "c74f20a3", 64)
    ]
