"""C2SP tlog-checkpoint parsing, signing and cosigning, and tlog-proof@v1 files."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import seeded_key

from depository.signing import add_signatures, cosign_checkpoint, sign_note
from depository.tlog import (
    CheckpointError,
    InclusionProofError,
    MalformedInputError,
    ProofFileError,
    SignatureError,
    VerificationError,
)
from depository.tlog.checkpoint import (
    Checkpoint,
    ProofFile,
    format_checkpoint,
    format_proof_file,
    parse_checkpoint,
    parse_proof_file,
    verify_checkpoint,
    verify_proof_file,
)
from depository.tlog.merkle import leaf_hash, verify_inclusion

ORIGIN = "log.example/depository"
ROOT = hashlib.sha256(b"root").digest()
ROOT_B64 = base64.b64encode(ROOT).decode()


LOG_S, LOG_V = seeded_key(ORIGIN)
W1_S, W1_V = seeded_key("witness.example/w1", witness=True)
W2_S, W2_V = seeded_key("witness.example/w2", witness=True)


# A small RFC 6962 tree, built independently of depository.tlog.merkle.
def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _root(hashes: Sequence[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return _node(_root(hashes[:k]), _root(hashes[k:]))


def _path(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    if len(hashes) == 1:
        return []
    k = _split(len(hashes))
    if index < k:
        return [*_path(index, hashes[:k]), _root(hashes[k:])]
    return [*_path(index - k, hashes[k:]), _root(hashes[:k])]


LEAVES = [f"record {i}".encode() for i in range(13)]
HASHES = [leaf_hash(d) for d in LEAVES]
TREE_ROOT = _root(HASHES)


def _signed_checkpoint(size: int = len(HASHES), cosign: bool = True) -> bytes:
    body = format_checkpoint(Checkpoint(ORIGIN, size, _root(HASHES[:size])))
    signed = sign_note(body, LOG_S)
    if cosign:
        lines = cosign_checkpoint(body, W1_S, 1_700_000_000) + cosign_checkpoint(
            body, W2_S, 1_700_000_001
        )
        signed = add_signatures(signed, lines)
    return signed


SIGNED_CP = _signed_checkpoint()


# The 8-leaf test tree of tests/vectors/README.md, behind the checkpoint in notes.json.
README_LEAVES = [
    bytes.fromhex(h)
    for h in (
        *("", "00", "10", "2021", "3031", "40414243"),
        *("5051525354555657", "606162636465666768696a6b6c6d6e6f"),
    )
]
README_ROOT = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def test_leaf_hash_is_rfc6962() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert _root([leaf_hash(d) for d in README_LEAVES]).hex() == README_ROOT


# --- checkpoint bodies ----------------------------------------------------------------


@pytest.mark.parametrize(
    "cp",
    [
        Checkpoint(ORIGIN, 0, ROOT),
        Checkpoint("o", 1, ROOT),
        Checkpoint(ORIGIN, 2**64 - 1, ROOT, ("ext one", "ext two")),
        Checkpoint("with space+plus ünïcode", 20852163, ROOT),
    ],
)
def test_checkpoint_round_trip(cp: Checkpoint) -> None:
    text = format_checkpoint(cp)
    assert parse_checkpoint(text) == cp
    assert format_checkpoint(parse_checkpoint(text)) == text


def test_checkpoint_format_is_exact() -> None:
    cp = Checkpoint(ORIGIN, 5, ROOT, ("x",))
    assert format_checkpoint(cp) == f"{ORIGIN}\n5\n{ROOT_B64}\nx\n".encode()


@pytest.mark.parametrize(
    "size", ["-1", "+1", "01", "00", "1e3", "1.0", " 1", "1 ", "", "0x10", str(2**64), "１"]
)
def test_bad_sizes_rejected(size: str) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(f"{ORIGIN}\n{size}\n{ROOT_B64}\n".encode())


def test_max_size_accepted() -> None:
    assert parse_checkpoint(f"{ORIGIN}\n{2**64 - 1}\n{ROOT_B64}\n".encode()).size == 2**64 - 1


@pytest.mark.parametrize(
    "text",
    [
        f"\n1\n{ROOT_B64}\n",
        f"{ORIGIN}\n1\n{base64.b64encode(b'r' * 31).decode()}\n",
        f"{ORIGIN}\n1\n{base64.b64encode(b'r' * 33).decode()}\n",
        f"{ORIGIN}\n1\n{ROOT_B64.rstrip('=')}\n",
        f"{ORIGIN}\n1\n{ROOT_B64[:-2]}B=\n",
        f"{ORIGIN}\n1\n\n",
        f"{ORIGIN}\n1\n{ROOT_B64}",
        f"{ORIGIN}\n1\n",
        f"{ORIGIN}\n1\n{ROOT_B64}\n\n",
        f"{ORIGIN}\n1\n{ROOT_B64}\n\next\n",
        f"{ORIGIN}\r\n1\n{ROOT_B64}\n",
        "",
    ],
)
def test_bad_checkpoint_bodies_rejected(text: str) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(text.encode())


def test_non_utf8_checkpoint_rejected() -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(b"\xff\n1\n" + ROOT_B64.encode() + b"\n")


@pytest.mark.parametrize(
    ("origin", "size", "root", "ext"),
    [
        ("", 1, ROOT, ()),
        ("a\nb", 1, ROOT, ()),
        ("o", -1, ROOT, ()),
        ("o", 2**64, ROOT, ()),
        ("o", 1, ROOT[:31], ()),
        ("o", 1, ROOT, ("",)),
        ("o", 1, ROOT, ("a\nb",)),
    ],
)
def test_invalid_checkpoint_values(
    origin: str, size: int, root: bytes, ext: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError):
        Checkpoint(origin, size, root, ext)


def test_format_rejects_control_characters() -> None:
    with pytest.raises(ValueError):
        format_checkpoint(Checkpoint("tab\there", 1, ROOT))


# --- signed checkpoints ---------------------------------------------------------------


def test_verify_checkpoint_with_witness_cosignatures() -> None:
    cp, note = verify_checkpoint(SIGNED_CP, [LOG_V, W1_V, W2_V], origin=ORIGIN)
    assert cp == Checkpoint(ORIGIN, len(HASHES), TREE_ROOT)
    assert note.verified == (ORIGIN, "witness.example/w1", "witness.example/w2")
    assert note.cosignatures == (
        ("witness.example/w1", 1_700_000_000),
        ("witness.example/w2", 1_700_000_001),
    )
    assert note.unknown == 0


def test_verify_checkpoint_log_key_only_ignores_cosignatures() -> None:
    cp, note = verify_checkpoint(SIGNED_CP, [LOG_V])
    assert cp.origin == ORIGIN
    assert note.unknown == 2
    assert note.cosignatures == ()


def test_witness_signatures_alone_are_not_enough() -> None:
    with pytest.raises(SignatureError, match="log key"):
        verify_checkpoint(SIGNED_CP, [W1_V, W2_V])


def test_origin_mismatch() -> None:
    with pytest.raises(CheckpointError):
        verify_checkpoint(SIGNED_CP, [LOG_V], origin="log.example/other")


def test_log_key_must_be_named_after_origin() -> None:
    body = format_checkpoint(Checkpoint(ORIGIN, 1, ROOT))
    other_s, other_v = seeded_key("log.example/impostor")
    with pytest.raises(SignatureError):
        verify_checkpoint(sign_note(body, other_s), [other_v])


def test_witness_key_named_like_origin_is_not_a_log_signature() -> None:
    body = format_checkpoint(Checkpoint(ORIGIN, 1, ROOT))
    w_s, w_v = seeded_key(ORIGIN, witness=True)
    signed = body + b"\n" + cosign_checkpoint(body, w_s, 7)
    log_line = sign_note(body, LOG_S).splitlines(keepends=True)[-1]
    assert verify_checkpoint(add_signatures(signed, log_line), [LOG_V, w_v])
    with pytest.raises(SignatureError):
        verify_checkpoint(signed, [w_v])


def test_tampered_cosignature_timestamp_rejected() -> None:
    body = format_checkpoint(Checkpoint(ORIGIN, 1, ROOT))
    line = cosign_checkpoint(body, W1_S, 100)
    raw = bytearray(base64.b64decode(line.split(b" ")[-1]))
    raw[11] ^= 1  # the low byte of the u64 timestamp after the 4-byte key ID
    bad = line.rsplit(b" ", 1)[0] + b" " + base64.b64encode(bytes(raw)) + b"\n"
    signed = add_signatures(sign_note(body, LOG_S), bad)
    assert verify_checkpoint(signed, [LOG_V])[1].unknown == 1
    with pytest.raises(SignatureError, match=r"witness\.example/w1"):
        verify_checkpoint(signed, [LOG_V, W1_V])


def test_cosignature_timestamp_above_2_63_rejected() -> None:
    body = format_checkpoint(Checkpoint(ORIGIN, 1, ROOT))
    line = cosign_checkpoint(body, W1_S, 2**63 - 1)
    signed = add_signatures(sign_note(body, LOG_S), line)
    assert verify_checkpoint(signed, [LOG_V, W1_V])[1].cosignatures[0][1] == 2**63 - 1
    raw = bytearray(base64.b64decode(line.split(b" ")[-1]))
    raw[4] |= 0x80
    bad = line.rsplit(b" ", 1)[0] + b" " + base64.b64encode(bytes(raw)) + b"\n"
    with pytest.raises(SignatureError):
        verify_checkpoint(add_signatures(signed, bad), [LOG_V, W1_V])


@pytest.mark.parametrize("timestamp", [-1, 2**63, 1.5, True])
def test_cosign_rejects_bad_timestamps(timestamp: int) -> None:
    with pytest.raises(ValueError):
        cosign_checkpoint(format_checkpoint(Checkpoint(ORIGIN, 1, ROOT)), W1_S, timestamp)


def test_cosign_rejects_non_checkpoint_text() -> None:
    with pytest.raises(ValueError):
        cosign_checkpoint(b"just a note\n", W1_S, 1)


def test_verify_checkpoint_rejects_signed_non_checkpoint() -> None:
    with pytest.raises(CheckpointError):
        verify_checkpoint(sign_note(f"{ORIGIN}\n01\n{ROOT_B64}\n".encode(), LOG_S), [LOG_V])


def test_every_bit_flip_of_a_signed_checkpoint_fails() -> None:
    signed = _signed_checkpoint(size=5, cosign=False)
    for i in range(len(signed)):
        for bit in range(8):
            mutated = bytearray(signed)
            mutated[i] ^= 1 << bit
            with pytest.raises(VerificationError):
                verify_checkpoint(bytes(mutated), [LOG_V])


# --- tlog-proof@v1 --------------------------------------------------------------------


def _proof_file(index: int, extra: bytes | None = None) -> bytes:
    return format_proof_file(index, _path(index, HASHES), SIGNED_CP, extra)


def test_proof_file_format_is_exact() -> None:
    proof = _path(3, HASHES)
    data = format_proof_file(3, proof, SIGNED_CP, b"ctx")
    expected = (
        b"c2sp.org/tlog-proof@v1\nextra Y3R4\nindex 3\n"
        + b"".join(base64.b64encode(h) + b"\n" for h in proof)
        + b"\n"
        + SIGNED_CP
    )
    assert data == expected


@pytest.mark.parametrize("extra", [None, b"\x00opaque\xff context"])
def test_proof_file_round_trip(extra: bytes | None) -> None:
    data = _proof_file(6, extra)
    pf = parse_proof_file(data)
    assert pf == ProofFile(6, tuple(_path(6, HASHES)), SIGNED_CP, extra)
    assert format_proof_file(pf.index, pf.proof, pf.checkpoint_note, pf.extra) == data


def test_every_leaf_verifies() -> None:
    keys = [LOG_V, W1_V, W2_V]
    for i, h in enumerate(HASHES):
        proof = _path(i, HASHES)
        verify_inclusion(h, i, len(HASHES), proof, TREE_ROOT)
        cp = verify_proof_file(_proof_file(i), h, keys, origin=ORIGIN)
        assert cp == Checkpoint(ORIGIN, len(HASHES), TREE_ROOT)


def test_single_leaf_tree_empty_proof() -> None:
    signed = _signed_checkpoint(size=1, cosign=False)
    data = format_proof_file(0, [], signed)
    assert data.startswith(b"c2sp.org/tlog-proof@v1\nindex 0\n\n")
    assert verify_proof_file(data, HASHES[0], [LOG_V]).size == 1


def test_vector_checkpoint_proof() -> None:
    vectors = json.loads(
        (Path(__file__).parent / "vectors" / "signed-note" / "notes.json").read_text("utf-8")
    )
    (case,) = [c for c in vectors["cases"] if c["desc"].startswith("same checkpoint, log key")]
    hashes = [leaf_hash(d) for d in README_LEAVES]
    assert _root(hashes).hex() == README_ROOT
    note = case["note"].encode()
    for i, h in enumerate(hashes):
        data = format_proof_file(i, _path(i, hashes), note)
        assert verify_proof_file(data, h, case["vkeys"]).size == 8


def test_wrong_leaf_fails() -> None:
    with pytest.raises(InclusionProofError):
        verify_proof_file(_proof_file(4), HASHES[5], [LOG_V])


def test_wrong_origin_fails() -> None:
    with pytest.raises(CheckpointError):
        verify_proof_file(_proof_file(4), HASHES[4], [LOG_V], origin="log.example/other")


def test_untrusted_log_fails() -> None:
    with pytest.raises(SignatureError):
        verify_proof_file(_proof_file(4), HASHES[4], [W1_V])


def test_leaf_hash_must_be_32_bytes() -> None:
    with pytest.raises(MalformedInputError):
        verify_proof_file(_proof_file(4), HASHES[4][:31], [LOG_V])


def test_index_beyond_tree_fails() -> None:
    data = format_proof_file(len(HASHES), _path(4, HASHES), SIGNED_CP)
    with pytest.raises(ProofFileError, match="not below"):
        verify_proof_file(data, HASHES[4], [LOG_V])


def test_extra_is_not_authenticated() -> None:
    data = _proof_file(4, b"one")
    changed = data.replace(b"extra " + base64.b64encode(b"one"), b"extra " + b"dHdv")
    assert parse_proof_file(changed).extra == b"two"
    assert verify_proof_file(changed, HASHES[4], [LOG_V]).size == len(HASHES)


def test_tampering_any_line_fails() -> None:
    data = _proof_file(5)
    lines = data.split(b"\n")
    assert len(lines) > 8
    for n, line in enumerate(lines):
        for replacement in (line + b"x", line[:-1], b"", b"AAAA"):
            if replacement == line:
                continue
            tampered = b"\n".join([*lines[:n], replacement, *lines[n + 1 :]])
            with pytest.raises(VerificationError):
                verify_proof_file(tampered, HASHES[5], [LOG_V, W1_V, W2_V])
        removed = b"\n".join([*lines[:n], *lines[n + 1 :]])
        if line.startswith("— witness".encode()):
            # Dropping a cosignature leaves a valid, less-witnessed proof: quorum is policy.
            verify_proof_file(removed, HASHES[5], [LOG_V, W1_V, W2_V])
            continue
        with pytest.raises(VerificationError):
            verify_proof_file(removed, HASHES[5], [LOG_V, W1_V, W2_V])


def test_every_bit_flip_of_a_proof_file_fails() -> None:
    signed = _signed_checkpoint(size=6, cosign=False)
    data = format_proof_file(2, _path(2, HASHES[:6]), signed)
    for i in range(len(data)):
        for bit in range(8):
            mutated = bytearray(data)
            mutated[i] ^= 1 << bit
            with pytest.raises(VerificationError):
                verify_proof_file(bytes(mutated), HASHES[2], [LOG_V])


@pytest.mark.parametrize(
    "header",
    [
        b"c2sp.org/tlog-proof@v2\nindex 1\n",
        b"c2sp.org/tlog-proof@v1\n",
        b"c2sp.org/tlog-proof@v1\nindex 01\n",
        b"c2sp.org/tlog-proof@v1\nindex -1\n",
        b"c2sp.org/tlog-proof@v1\nindex 18446744073709551616\n",
        b"c2sp.org/tlog-proof@v1\nindex  1\n",
        b"c2sp.org/tlog-proof@v1\nIndex 1\n",
        b"c2sp.org/tlog-proof@v1\nextra \nindex 1\n",
        b"c2sp.org/tlog-proof@v1\nextra !!!!\nindex 1\n",
        b"c2sp.org/tlog-proof@v1\nindex 1\nextra YQ==\n",
        b"c2sp.org/tlog-proof@v1\nindex 1\n" + base64.b64encode(b"h" * 31) + b"\n",
        b"c2sp.org/tlog-proof@v1\nindex 1\n" + (base64.b64encode(b"h" * 32) + b"\n") * 65,
        b"c2sp.org/tlog-proof@v1\r\nindex 1\n",
        b"\nc2sp.org/tlog-proof@v1\nindex 1\n",
    ],
)
def test_malformed_proof_headers(header: bytes) -> None:
    with pytest.raises(ProofFileError):
        parse_proof_file(header + b"\n" + SIGNED_CP)


@pytest.mark.parametrize(
    "data",
    [b"", b"c2sp.org/tlog-proof@v1\nindex 1\n", b"c2sp.org/tlog-proof@v1\nindex 1\n\n"],
)
def test_truncated_proof_files(data: bytes) -> None:
    with pytest.raises(ProofFileError):
        parse_proof_file(data)


def test_proof_file_with_unsigned_checkpoint() -> None:
    body = format_checkpoint(Checkpoint(ORIGIN, 1, ROOT))
    with pytest.raises(ProofFileError):
        parse_proof_file(b"c2sp.org/tlog-proof@v1\nindex 0\n\n" + body)


@pytest.mark.parametrize(
    ("index", "proof", "extra"),
    [
        (-1, [], None),
        (2**64, [], None),
        (0, [b"x" * 31], None),
        (0, [b"x" * 32] * 65, None),
        (0, [], b""),
    ],
)
def test_format_proof_file_rejects_bad_values(
    index: int, proof: list[bytes], extra: bytes | None
) -> None:
    with pytest.raises(ValueError):
        format_proof_file(index, proof, SIGNED_CP, extra)


def test_format_proof_file_requires_signed_checkpoint() -> None:
    with pytest.raises(ValueError):
        format_proof_file(0, [], format_checkpoint(Checkpoint(ORIGIN, 1, ROOT)))
    with pytest.raises(ValueError):
        format_proof_file(0, [], sign_note(b"not a checkpoint\n", LOG_S))
