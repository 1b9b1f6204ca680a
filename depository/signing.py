"""Ed25519 signer keys, signed notes and witness cosignatures (C2SP signed-note formats).

Signer keys use Go's sumdb/note encoding ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type ||
seed)>``; type 0x01 keys sign notes and type 0x04 keys make timestamped cosignature/v1
signatures (the encoding transparency-dev/formats reads). Ed25519 signing is deterministic, so
the same key and text always give the same note.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from depository.tlog.checkpoint import parse_checkpoint
from depository.tlog.errors import CheckpointError, MalformedInputError
from depository.tlog.note import (
    MAX_COSIGNATURE_TIMESTAMP,
    MAX_SIGNATURES,
    SIG_TYPE_COSIGNATURE_V1,
    SIG_TYPE_ED25519,
    Signature,
    compute_key_id,
    cosignature_v1_message,
    decode_base64,
    format_signature_line,
    is_valid_key_name,
    parse_note,
    parse_signature_block,
    validate_note_text,
)

__all__ = [
    "SIG_TYPE_COSIGNATURE_V1",
    "SIG_TYPE_ED25519",
    "SigningKeyError",
    "add_signatures",
    "cosign_checkpoint",
    "generate_key",
    "key_from_seed",
    "sign_note",
    "verifier_key_from_signer",
]

_SEED_LEN = 32
_PRIVATE_PREFIX = "PRIVATE+KEY+"


class SigningKeyError(ValueError):
    """A signer key string is malformed, inconsistent or of the wrong type for the operation."""


class _SignerKey:
    """A parsed signer key."""

    def __init__(self, name: str, sig_type: int, seed: bytes) -> None:
        self.name = name
        self.sig_type = sig_type
        self.private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self.private.public_key().public_bytes_raw()
        self.key_id = compute_key_id(name, sig_type, self.public)

    def verifier_key(self) -> str:
        b64 = base64.b64encode(bytes([self.sig_type]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{b64}"

    def signer_key(self, seed: bytes) -> str:
        b64 = base64.b64encode(bytes([self.sig_type]) + seed).decode()
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id.hex()}+{b64}"


def generate_key(name: str, *, sig_type: int = SIG_TYPE_ED25519) -> tuple[str, str]:
    """Return a new random (signer key, verifier key) pair.

    ``sig_type`` is :data:`SIG_TYPE_ED25519` for note signers (logs) or
    :data:`SIG_TYPE_COSIGNATURE_V1` for witnesses.
    """
    return key_from_seed(name, os.urandom(_SEED_LEN), sig_type=sig_type)


def key_from_seed(name: str, seed: bytes, *, sig_type: int = SIG_TYPE_ED25519) -> tuple[str, str]:
    """Return the (signer key, verifier key) pair for a 32-byte Ed25519 seed."""
    if not is_valid_key_name(name):
        raise SigningKeyError(f"invalid key name {name!r}: need non-empty, no spaces or '+'")
    if sig_type not in (SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE_V1):
        raise SigningKeyError(f"unsupported signature type {sig_type!r}")
    if not isinstance(seed, bytes) or len(seed) != _SEED_LEN:
        raise SigningKeyError("Ed25519 seed must be 32 bytes")
    key = _SignerKey(name, sig_type, seed)
    return key.signer_key(seed), key.verifier_key()


def verifier_key_from_signer(signer_key: str) -> str:
    """Return the verifier key string matching a signer key."""
    return _parse_signer_key(signer_key).verifier_key()


def sign_note(text: bytes, signer_key: str) -> bytes:
    """Sign note text (valid UTF-8, no control characters but newline, ending in newline)."""
    key = _parse_signer_key(signer_key)
    if key.sig_type != SIG_TYPE_ED25519:
        raise SigningKeyError(
            f"key {key.name} is a cosignature/v1 witness key; use cosign_checkpoint"
        )
    body = _check_note_text(text)
    sig = Signature(key.name, key.key_id, key.private.sign(body))
    return body + b"\n" + format_signature_line(sig)


def cosign_checkpoint(checkpoint_text: bytes, witness_signer_key: str, timestamp: int) -> bytes:
    """Return a cosignature/v1 signature line over a checkpoint body at POSIX ``timestamp``.

    The caller (the witness) must already have checked the log's signature and consistency.
    Append the line to the signed checkpoint with :func:`add_signatures`.
    """
    key = _parse_signer_key(witness_signer_key)
    if key.sig_type != SIG_TYPE_COSIGNATURE_V1:
        raise SigningKeyError(f"key {key.name} is not a cosignature/v1 witness key")
    if type(timestamp) is not int or not 0 <= timestamp <= MAX_COSIGNATURE_TIMESTAMP:
        raise ValueError("cosignature timestamp must be an integer in [0, 2^63-1]")
    body = _check_note_text(checkpoint_text)
    try:
        parse_checkpoint(body)
    except CheckpointError as e:
        raise ValueError(f"not a checkpoint body: {e}") from None
    signed = key.private.sign(cosignature_v1_message(body, timestamp))
    sig = Signature(key.name, key.key_id, timestamp.to_bytes(8, "big") + signed)
    return format_signature_line(sig)


def add_signatures(signed_note: bytes, lines: bytes) -> bytes:
    """Append signature lines to a signed note.

    A new line from the same key (name and key ID) as an existing one replaces it, as Go's
    ``note.Sign`` does. Signatures are not verified here.
    """
    try:
        body, existing = parse_note(signed_note)
        validate_note_text(lines)
        new = parse_signature_block(lines)
    except MalformedInputError as e:
        raise ValueError(str(e)) from None
    replaced = {(s.name, s.key_id) for s in new}
    kept = [s for s in existing if (s.name, s.key_id) not in replaced]
    if len(kept) + len(new) > MAX_SIGNATURES:
        raise ValueError(f"a note may carry at most {MAX_SIGNATURES} signatures")
    return body + b"\n" + b"".join(format_signature_line(s) for s in (*kept, *new))


def _check_note_text(text: bytes) -> bytes:
    if not isinstance(text, bytes | bytearray):
        raise TypeError("note text must be bytes")
    body = bytes(text)
    try:
        validate_note_text(body)
    except MalformedInputError as e:
        raise ValueError(str(e).replace("malformed note", "invalid note text")) from None
    if not body.endswith(b"\n"):
        raise ValueError("note text must end with a newline")
    return body


def _parse_signer_key(skey: str) -> _SignerKey:
    """Parse ``PRIVATE+KEY+<name>+<hex id>+<base64(type || seed)>`` and check the key ID."""
    if not isinstance(skey, str):
        raise SigningKeyError("signer key must be a string")
    parts = skey.split("+", 4)
    if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
        raise SigningKeyError("signer key must look like PRIVATE+KEY+<name>+<id>+<key>")
    _, _, name, hex_id, b64 = parts
    if not is_valid_key_name(name):
        raise SigningKeyError(f"signer key has an invalid name {name!r}")
    raw = decode_base64(b64)
    if len(hex_id) != 8 or raw is None:
        raise SigningKeyError(f"signer key {name}: malformed key ID or key data")
    if not raw or raw[0] not in (SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE_V1):
        raise SigningKeyError(f"signer key {name}: unsupported signature type")
    if len(raw) != 1 + _SEED_LEN:
        raise SigningKeyError(f"signer key {name}: Ed25519 seed must be 32 bytes")
    key = _SignerKey(name, raw[0], raw[1:])
    if hex_id.lower() != key.key_id.hex():
        raise SigningKeyError(f"signer key {name}: key ID {hex_id} does not match the key")
    return key
