"""Signed notes: signing round trips, key handling, malformed input and tampering."""

from __future__ import annotations

import base64

import pytest
from conftest import seeded_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depository.signing import (
    SigningKeyError,
    add_signatures,
    cosign_checkpoint,
    generate_key,
    key_from_seed,
    sign_note,
    verifier_key_from_signer,
)
from depository.tlog import MalformedInputError, SignatureError, VerificationError
from depository.tlog.note import (
    MAX_SIGNATURES,
    SIG_TYPE_COSIGNATURE_V1,
    Signature,
    format_signature_line,
    parse_note,
    parse_verifier_key,
    verify_note,
)

TEXT = b"Hello, auditor.\n\nThis line follows a blank line.\n"


ALICE_S, ALICE_V = seeded_key("example.com/alice")
BOB_S, BOB_V = seeded_key("example.com/bob")
SIGNED = sign_note(TEXT, ALICE_S)


def _sig_line(note: bytes) -> bytes:
    return note.splitlines(keepends=True)[-1]


def test_round_trip_with_generated_key() -> None:
    skey, vkey = generate_key("log.example/x")
    assert skey.startswith("PRIVATE+KEY+log.example/x+")
    assert verifier_key_from_signer(skey) == vkey
    note = verify_note(sign_note(TEXT, skey), [vkey])
    assert note.text == TEXT
    assert note.verified == ("log.example/x",)
    assert note.unknown == 0
    assert note.cosignatures == ()


def test_generated_keys_differ_and_signing_is_deterministic() -> None:
    assert generate_key("a")[0] != generate_key("a")[0]
    assert sign_note(TEXT, ALICE_S) == SIGNED


def test_unknown_keys_ignored() -> None:
    both = add_signatures(SIGNED, _sig_line(sign_note(TEXT, BOB_S)))
    note = verify_note(both, [ALICE_V])
    assert note.verified == ("example.com/alice",)
    assert note.unknown == 1
    assert len(note.signatures) == 2
    assert set(verify_note(both, [ALICE_V, BOB_V]).verified) == {
        "example.com/alice",
        "example.com/bob",
    }


def test_same_name_other_key_is_unknown() -> None:
    _, other_alice_v = key_from_seed("example.com/alice", b"\x07" * 32)
    with pytest.raises(SignatureError, match="no signature from a trusted key"):
        verify_note(SIGNED, [other_alice_v])


def test_known_bad_signature_rejects_even_with_a_good_one() -> None:
    bob_line = _sig_line(sign_note(b"other text\n", BOB_S))
    both = add_signatures(SIGNED, bob_line)
    assert verify_note(both, [ALICE_V]).verified == ("example.com/alice",)
    with pytest.raises(SignatureError, match=r"example\.com/bob"):
        verify_note(both, [ALICE_V, BOB_V])


def test_no_trusted_keys() -> None:
    with pytest.raises(SignatureError):
        verify_note(SIGNED, [])


def test_duplicate_unknown_lines_counted_once() -> None:
    bob_line = _sig_line(sign_note(TEXT, BOB_S))
    note_bytes = SIGNED + bob_line + bob_line
    assert verify_note(note_bytes, [ALICE_V]).unknown == 1


def _sig_b64(note: bytes) -> bytes:
    return _sig_line(note).split(b" ")[-1].rstrip(b"\n")


def _non_canonical(b64: bytes) -> bytes:
    """Set a padding bit in the last base64 digit: same bytes for a lax decoder."""
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = b64.rstrip(b"=")
    bumped = alphabet[alphabet.index(last[-1]) ^ 1]
    out = last[:-1] + bytes([bumped]) + b64[len(last) :]
    assert base64.b64decode(out) == base64.b64decode(b64)
    return out


def _malformed_notes() -> dict[str, bytes]:
    line = _sig_line(SIGNED)
    raw = base64.b64decode(_sig_b64(SIGNED))
    wrong_id = bytes([raw[0] ^ 1]) + raw[1:]
    return {
        "non-UTF-8 text": SIGNED.replace(b"Hello", b"H\xffllo"),
        "overlong UTF-8": SIGNED.replace(b"Hello", b"H\xc0\xafllo"),
        "UTF-8 surrogate": SIGNED.replace(b"Hello", b"H\xed\xa0\x80llo"),
        "missing final newline": SIGNED[:-1],
        "carriage return in text": SIGNED.replace(b"auditor.\n", b"auditor.\r\n"),
        "CRLF line endings": SIGNED.replace(b"\n", b"\r\n"),
        "NUL in text": SIGNED.replace(b"Hello", b"Hel\x00lo"),
        "tab in signature line": SIGNED.replace("— ".encode(), "—\t".encode()),
        "bad base64": SIGNED.replace(_sig_b64(SIGNED), _sig_b64(SIGNED)[:-2] + b"!="),
        "base64 without padding": SIGNED.replace(b"=\n", b"\n"),
        "non-canonical base64": SIGNED.replace(_sig_b64(SIGNED), _non_canonical(_sig_b64(SIGNED))),
        "short signature": SIGNED.replace(_sig_b64(SIGNED), base64.b64encode(raw[:4])),
        "truncated signature": SIGNED.replace(_sig_b64(SIGNED), base64.b64encode(raw[:40])),
        "empty signature": SIGNED.replace(_sig_b64(SIGNED), b""),
        "wrong key ID": SIGNED.replace(_sig_b64(SIGNED), base64.b64encode(wrong_id)),
        "duplicate signature line": SIGNED + line,
        "duplicate known key, second bad": SIGNED + _sig_line(sign_note(b"x\n", ALICE_S)),
        "no blank line": SIGNED.replace(b"\n\n\xe2", b"\n\xe2"),
        "no signatures": TEXT + b"\n",
        "blank line only": b"\n\n",
        "empty": b"",
        "hyphen not em dash": SIGNED.replace("— ".encode(), b"- "),
        "no space after dash": SIGNED.replace("— ".encode(), "—".encode()),
        "name only": TEXT + "\n— example.com/alice\n".encode(),
        "empty name": SIGNED.replace(b"example.com/alice ", b" "),
        "plus in name": SIGNED.replace(b"example.com/alice", b"example.com+alice"),
        "trailing garbage line": SIGNED + b"garbage\n",
        "trailing blank line": SIGNED + b"\n",
        "too many signatures": SIGNED + line * MAX_SIGNATURES,
    }


@pytest.mark.parametrize("name", list(_malformed_notes()))
def test_malformed_note_rejected(name: str) -> None:
    with pytest.raises(VerificationError):
        verify_note(_malformed_notes()[name], [ALICE_V])


def test_max_signatures_accepted() -> None:
    lines = b"".join(
        _sig_line(sign_note(TEXT, key_from_seed(f"w{i}", bytes([i]) * 32)[0])) for i in range(99)
    )
    note = verify_note(SIGNED + lines, [ALICE_V])
    assert note.unknown == 99
    with pytest.raises(MalformedInputError):
        verify_note(SIGNED + lines + _sig_line(sign_note(TEXT, BOB_S)), [ALICE_V])


def test_non_bytes_input_is_a_verification_error() -> None:
    with pytest.raises(MalformedInputError):
        verify_note(SIGNED.decode(), [ALICE_V])  # type: ignore[arg-type]


def test_text_may_contain_signature_like_lines() -> None:
    text = "a\n\n— example.com/alice AAAA\n\n".encode()
    note = verify_note(sign_note(text, ALICE_S), [ALICE_V])
    assert note.text == text


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "example.com/alice",
        ALICE_V.replace("+", " ", 1),
        "+" + ALICE_V.split("+", 1)[1],
        "exa mple+" + ALICE_V.split("+", 1)[1],
        ALICE_V.replace(ALICE_V.split("+")[1], "0" * 8),
        ALICE_V.replace(ALICE_V.split("+")[1], "0x" + ALICE_V.split("+")[1][:6]),
        ALICE_V.replace(ALICE_V.split("+")[1], ALICE_V.split("+")[1][:7]),
        ALICE_V + "A",
        ALICE_V[:-4],
        ALICE_V.rsplit("+", 1)[0] + "+",
        ALICE_V.rsplit("+", 1)[0] + "+" + base64.b64encode(b"\x02" + b"k" * 32).decode(),
        ALICE_V.rsplit("+", 1)[0] + "+" + base64.b64encode(b"\x01" + b"k" * 31).decode(),
        "example.com/alice\u2003+" + ALICE_V.split("+", 1)[1],
    ],
)
def test_bad_verifier_keys(vkey: str) -> None:
    with pytest.raises(MalformedInputError):
        parse_verifier_key(vkey)
    with pytest.raises(MalformedInputError):
        verify_note(SIGNED, [ALICE_V, vkey])


def test_verifier_key_fields_and_uppercase_hex() -> None:
    key = parse_verifier_key(ALICE_V)
    assert key.name == "example.com/alice"
    assert key.sig_type == 0x01
    hex_id = ALICE_V.split("+")[1]
    assert parse_verifier_key(ALICE_V.replace(hex_id, hex_id.upper())) == key


def test_single_string_as_key_list_rejected() -> None:
    with pytest.raises(MalformedInputError):
        verify_note(SIGNED, ALICE_V)


def test_duplicate_identical_keys_allowed() -> None:
    assert verify_note(SIGNED, [ALICE_V, ALICE_V]).verified == ("example.com/alice",)


def test_cosignature_note_and_witness_keys() -> None:
    w_s, w_v = seeded_key("witness.example/w", witness=True)
    assert parse_verifier_key(w_v).sig_type == SIG_TYPE_COSIGNATURE_V1
    with pytest.raises(SigningKeyError, match="witness"):
        sign_note(TEXT, w_s)
    with pytest.raises(SigningKeyError):
        cosign_checkpoint(b"o\n1\n" + base64.b64encode(b"\0" * 32) + b"\n", ALICE_S, 5)


@pytest.mark.parametrize(
    "skey",
    [
        "",
        ALICE_S.removeprefix("PRIVATE+"),
        ALICE_S.replace("PRIVATE", "private"),
        ALICE_S.replace(ALICE_S.split("+")[3], "00000000"),
        ALICE_S.replace(ALICE_S.split("+")[3], "zzzzzzzz"),
        ALICE_S[:-4],
        ALICE_S.rsplit("+", 1)[0] + "+" + base64.b64encode(b"\x02" + b"k" * 32).decode(),
        ALICE_S.replace("example.com/alice", "example.com alice"),
        ALICE_V,
    ],
)
def test_bad_signer_keys(skey: str) -> None:
    with pytest.raises(SigningKeyError):
        sign_note(TEXT, skey)
    with pytest.raises(ValueError):
        verifier_key_from_signer(skey)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b", "a\tb", "a\x01b"])
def test_generate_key_rejects_bad_names(name: str) -> None:
    with pytest.raises(SigningKeyError):
        generate_key(name)


def test_generate_key_rejects_unknown_type() -> None:
    with pytest.raises(SigningKeyError):
        generate_key("x", sig_type=2)


@pytest.mark.parametrize(
    "text", [b"", b"no newline", b"cr\r\n", b"\xff\n", b"nul\x00\n", b"esc\x1b\n"]
)
def test_sign_note_rejects_bad_text(text: bytes) -> None:
    with pytest.raises(ValueError):
        sign_note(text, ALICE_S)


def test_add_signatures_replaces_same_key_and_validates() -> None:
    other = sign_note(b"different\n", ALICE_S)
    replaced = add_signatures(SIGNED, _sig_line(other))
    assert replaced == TEXT + b"\n" + _sig_line(other)
    with pytest.raises(SignatureError):
        verify_note(replaced, [ALICE_V])
    for bad in [b"", b"garbage\n", _sig_line(SIGNED)[:-1]]:
        with pytest.raises(ValueError):
            add_signatures(SIGNED, bad)
    with pytest.raises(ValueError):
        add_signatures(TEXT, _sig_line(SIGNED))


def test_parse_note_returns_signatures() -> None:
    text, sigs = parse_note(SIGNED)
    assert text == TEXT
    assert len(sigs) == 1
    assert format_signature_line(sigs[0]) == _sig_line(SIGNED)
    assert sigs[0] == Signature("example.com/alice", sigs[0].key_id, sigs[0].signature)


def test_every_bit_flip_of_the_signed_note_fails() -> None:
    for i in range(len(SIGNED)):
        for bit in range(8):
            mutated = bytearray(SIGNED)
            mutated[i] ^= 1 << bit
            with pytest.raises(VerificationError):
                verify_note(bytes(mutated), [ALICE_V])


def test_every_bit_flip_of_the_signature_bytes_fails() -> None:
    (sig,) = parse_note(SIGNED)[1]
    for i in range(len(sig.signature)):
        for bit in range(8):
            flipped = bytearray(sig.signature)
            flipped[i] ^= 1 << bit
            line = format_signature_line(Signature(sig.name, sig.key_id, bytes(flipped)))
            with pytest.raises(SignatureError):
                verify_note(TEXT + b"\n" + line, [ALICE_V])


def _mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, pos, value in ops:
        pos = pos % (len(out) + 1)
        if kind == 0 and pos < len(out):
            out[pos] = value
        elif kind == 1:
            out.insert(pos, value)
        elif kind == 2:
            del out[pos : pos + 1 + value % 8]
        else:
            out[pos:pos] = "— ".encode() if value % 2 else b"\n\n"
    return bytes(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 400), st.integers(0, 255)),
        min_size=1,
        max_size=4,
    )
)
def test_random_mutations_raise_only_verification_errors(
    ops: list[tuple[int, int, int]],
) -> None:
    mutated = _mutate(SIGNED, ops)
    try:
        note = verify_note(mutated, [ALICE_V, BOB_V])
    except VerificationError:
        return
    assert note.text == TEXT  # only harmless edits, e.g. to an ignored unknown line


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_verification_errors(data: bytes) -> None:
    with pytest.raises(VerificationError):
        verify_note(data, [ALICE_V])
