"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 and cosignature/v1 keys.

Verification follows Go's ``golang.org/x/mod/sumdb/note.Open``: the text ends at the last
blank line, signatures from unknown keys are ignored, a bad signature from a known key
rejects the whole note, and at least one known key must verify. Two deliberate tightenings:
base64 must be canonical (so a note has exactly one encoding), and a known key may sign a
note only once (Go silently skips the repeats without verifying them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from depository.tlog.errors import MalformedInputError, SignatureError

SIG_TYPE_ED25519 = 0x01
"""Signature type byte of plain Ed25519 note signatures."""

SIG_TYPE_COSIGNATURE_V1 = 0x04
"""Signature type byte of timestamped Ed25519 witness cosignatures (c2sp.org/tlog-cosignature)."""

MAX_SIGNATURES = 100
"""Most signature lines a note may carry (Go's limit; the spec requires at least 16)."""

COSIGNATURE_V1_HEADER = b"cosignature/v1\n"
MAX_COSIGNATURE_TIMESTAMP = 2**63 - 1

_SIG_PREFIX = "— ".encode()
_SUPPORTED_SIG_TYPES = (SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE_V1)
_ED25519_SIG_LEN = 64
_TIMESTAMP_LEN = 8
_KEY_ID_LEN = 4
_HEX_KEY_ID = re.compile(r"[0-9a-fA-F]{8}")
_CONTROL = re.compile(rb"[\x00-\x09\x0b-\x1f]")
# Go's unicode.IsSpace: the Unicode White_Space property.
_WHITE_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


@dataclass(frozen=True)
class VerifierKey:
    """A trusted public key: name, 4-byte key ID, signature type and 32-byte Ed25519 key."""

    name: str
    key_id: bytes
    sig_type: int
    public_key: bytes


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, 4-byte key ID and the signature bytes after the ID."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class Note:
    """A verified note.

    ``signatures`` are all parsed signature lines, ``verified`` the names of trusted keys whose
    signatures verified (in line order), ``unknown`` the number of distinct ignored lines from
    unknown keys, and ``cosignatures`` the (witness name, timestamp) of verified cosignature/v1
    lines.
    """

    text: bytes
    signatures: tuple[Signature, ...]
    verified: tuple[str, ...]
    unknown: int
    cosignatures: tuple[tuple[str, int], ...]


def compute_key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """Return SHA-256(name || 0x0A || sig_type || public_key)[:4]."""
    h = hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key)
    return h.digest()[:_KEY_ID_LEN]


def format_signature_line(sig: Signature) -> bytes:
    """Encode ``sig`` as a note signature line ``— <name> <base64(key_id || sig)>\\n``."""
    b64 = base64.b64encode(sig.key_id + sig.signature)
    return _SIG_PREFIX + sig.name.encode() + b" " + b64 + b"\n"


def parse_verifier_key(vkey: str) -> VerifierKey:
    """Parse ``<name>+<hex key ID>+<base64(sig_type || public key)>``; check the key ID."""
    if not isinstance(vkey, str):
        raise MalformedInputError("verifier key must be a string")
    name, _, rest = vkey.partition("+")
    hex_id, _, b64 = rest.partition("+")
    if not is_valid_key_name(name):
        raise MalformedInputError(f"verifier key has an invalid name: {name!r}")
    if not _HEX_KEY_ID.fullmatch(hex_id):
        raise MalformedInputError(f"verifier key {name}: key ID must be 8 hex digits")
    raw = decode_base64(b64)
    if not raw:
        raise MalformedInputError(f"verifier key {name}: key data is not canonical base64")
    sig_type, public_key = raw[0], raw[1:]
    if sig_type not in _SUPPORTED_SIG_TYPES:
        raise MalformedInputError(
            f"verifier key {name}: unsupported signature type 0x{sig_type:02x}"
        )
    if len(public_key) != 32:
        raise MalformedInputError(f"verifier key {name}: Ed25519 public key must be 32 bytes")
    key_id = bytes.fromhex(hex_id)
    if key_id != compute_key_id(name, sig_type, public_key):
        raise MalformedInputError(f"verifier key {name}: key ID {hex_id} does not match the key")
    try:
        Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as e:
        raise MalformedInputError(f"verifier key {name}: invalid Ed25519 public key") from e
    return VerifierKey(name, key_id, sig_type, public_key)


def parse_note(text: bytes) -> tuple[bytes, list[Signature]]:
    """Split a signed note into its text and signature lines without verifying anything."""
    data = _as_bytes(text)
    validate_note_text(data)
    split = data.rfind(b"\n\n")
    if split < 0:
        raise MalformedInputError("malformed note: no blank line before the signatures")
    body, block = data[: split + 1], data[split + 2 :]
    return body, parse_signature_block(block)


def verify_note(text: bytes, verifier_keys: Sequence[str]) -> Note:
    """Verify a signed note against trusted verifier keys; raise unless a trusted key signed."""
    note, _ = _open_note(text, _parse_keys(verifier_keys))
    return note


def _open_note(text: bytes, keys: Sequence[VerifierKey]) -> tuple[Note, tuple[VerifierKey, ...]]:
    """Verify ``text`` against parsed keys; return the note and the keys that verified."""
    body, sigs = parse_note(text)
    by_id = {(k.name, k.key_id): k for k in keys}
    seen_known: set[tuple[str, bytes]] = set()
    seen_unknown: set[Signature] = set()
    verified: list[VerifierKey] = []
    cosignatures: list[tuple[str, int]] = []
    for sig in sigs:
        key = by_id.get((sig.name, sig.key_id))
        if key is None:
            seen_unknown.add(sig)
            continue
        if (key.name, key.key_id) in seen_known:
            raise SignatureError(f"more than one signature from known key {_key_label(key)}")
        seen_known.add((key.name, key.key_id))
        timestamp = _verify_signature(key, body, sig.signature)
        verified.append(key)
        if timestamp is not None:
            cosignatures.append((key.name, timestamp))
    if not verified:
        raise SignatureError(
            f"no signature from a trusted key ({len(seen_unknown)} unknown signatures ignored)"
        )
    note = Note(
        text=body,
        signatures=tuple(sigs),
        verified=tuple(k.name for k in verified),
        unknown=len(seen_unknown),
        cosignatures=tuple(cosignatures),
    )
    return note, tuple(verified)


def _parse_keys(verifier_keys: Sequence[str]) -> list[VerifierKey]:
    """Parse trusted keys; reject two different keys sharing a name and key ID."""
    if isinstance(verifier_keys, str | bytes):
        raise MalformedInputError("verifier_keys must be a sequence of key strings")
    keys: dict[tuple[str, bytes], VerifierKey] = {}
    for vkey in verifier_keys:
        key = parse_verifier_key(vkey)
        other = keys.setdefault((key.name, key.key_id), key)
        if other != key:
            raise MalformedInputError(f"ambiguous verifier keys for {_key_label(key)}")
    return list(keys.values())


def _verify_signature(key: VerifierKey, body: bytes, sig: bytes) -> int | None:
    """Verify one signature; return its timestamp for cosignatures, ``None`` otherwise."""
    timestamp: int | None = None
    message = body
    if key.sig_type == SIG_TYPE_COSIGNATURE_V1:
        if len(sig) != _TIMESTAMP_LEN + _ED25519_SIG_LEN:
            raise SignatureError(f"invalid signature from known key {_key_label(key)}: bad length")
        timestamp = int.from_bytes(sig[:_TIMESTAMP_LEN], "big")
        if timestamp > MAX_COSIGNATURE_TIMESTAMP:
            raise SignatureError(
                f"invalid signature from known key {_key_label(key)}: timestamp exceeds 2^63-1"
            )
        sig = sig[_TIMESTAMP_LEN:]
        message = cosignature_v1_message(body, timestamp)
    if len(sig) != _ED25519_SIG_LEN:
        raise SignatureError(f"invalid signature from known key {_key_label(key)}: bad length")
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(sig, message)
    except InvalidSignature:
        raise SignatureError(f"invalid signature from known key {_key_label(key)}") from None
    return timestamp


def cosignature_v1_message(body: bytes, timestamp: int) -> bytes:
    """Return the message an Ed25519 cosignature/v1 signs: header, time line, note text."""
    return COSIGNATURE_V1_HEADER + b"time %d\n" % timestamp + body


def parse_signature_block(block: bytes) -> list[Signature]:
    """Parse the signature lines after a note's blank line (text already validated).

    ``block`` is every line after the separating blank line, each ending in ``\n``; returns
    the unverified :class:`Signature` entries or raises :class:`MalformedInputError`.
    """
    if not block or not block.endswith(b"\n"):
        raise MalformedInputError("malformed note: empty signature block or no final newline")
    lines = block[:-1].split(b"\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedInputError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    sigs = []
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise MalformedInputError("malformed note: signature line does not start with '— '")
        name_bytes, _, b64 = line[len(_SIG_PREFIX) :].partition(b" ")
        name = name_bytes.decode()
        raw = decode_base64(b64)
        if not is_valid_key_name(name):
            raise MalformedInputError(f"malformed note: invalid key name {name!r}")
        if raw is None:
            raise MalformedInputError(f"malformed note: signature by {name} is not base64")
        if len(raw) <= _KEY_ID_LEN:
            raise MalformedInputError(f"malformed note: signature by {name} is too short")
        sigs.append(Signature(name, raw[:_KEY_ID_LEN], raw[_KEY_ID_LEN:]))
    return sigs


def validate_note_text(data: bytes) -> str:
    """Require UTF-8 with no ASCII control characters other than newline; return the text."""
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MalformedInputError("malformed note: not valid UTF-8") from e
    m = _CONTROL.search(data)
    if m is not None:
        raise MalformedInputError(
            f"malformed note: control character 0x{m.group()[0]:02x} at byte {m.start()}"
        )
    return decoded


def decode_base64(s: str | bytes) -> bytes | None:
    """Decode canonical standard base64 (padding required, no stray bits); None if invalid."""
    try:
        data = s.encode("ascii") if isinstance(s, str) else s
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw) == data else None


def is_valid_key_name(name: str) -> bool:
    """Key names are non-empty UTF-8 with no white space, control characters or '+'."""
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return (
        bool(name)
        and "+" not in name
        and _WHITE_SPACE.isdisjoint(name)
        and _CONTROL.search(encoded) is None
    )


def _as_bytes(data: bytes) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedInputError(f"expected bytes, got {type(data).__name__}")
    return bytes(data)


def _key_label(key: VerifierKey) -> str:
    return f"{key.name}+{key.key_id.hex()}"
