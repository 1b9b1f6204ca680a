"""C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint) and tlog-proof@v1 files.

A checkpoint is a signed note whose text is the log origin, the tree size, the base64 RFC 6962
root hash and optional extension lines. A tlog-proof file (https://c2sp.org/tlog-proof) bundles
an entry index, its inclusion proof and a signed checkpoint for offline verification.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from depository.tlog.errors import (
    CheckpointError,
    MalformedInputError,
    ProofFileError,
    SignatureError,
)
from depository.tlog.merkle import verify_inclusion
from depository.tlog.note import (
    SIG_TYPE_ED25519,
    Note,
    _as_bytes,
    _open_note,
    _parse_keys,
    decode_base64,
    parse_note,
    validate_note_text,
)

PROOF_HEADER = b"c2sp.org/tlog-proof@v1"
"""First line of every tlog-proof@v1 file."""

MAX_PROOF_HASHES = 64
"""An inclusion proof in a tree of at most 2^64 leaves has at most 64 hashes."""

_HASH_LEN = 32
_MAX_UINT64 = 2**64 - 1
_DECIMAL = re.compile(rb"0|[1-9][0-9]{0,19}")
_EXTRA_PREFIX = b"extra "
_INDEX_PREFIX = b"index "


@dataclass(frozen=True)
class Checkpoint:
    """A log's signed tree head: origin, tree size, 32-byte root hash, extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Reject values that have no checkpoint encoding (raises ``ValueError``)."""
        lines = (self.origin, *self.extensions)
        if not all(isinstance(x, str) and x for x in lines):
            raise ValueError("checkpoint origin and extension lines must be non-empty strings")
        if any("\n" in x for x in lines):
            raise ValueError("checkpoint origin and extension lines must not contain newlines")
        if type(self.size) is not int or not 0 <= self.size <= _MAX_UINT64:
            raise ValueError("checkpoint size must be an integer in [0, 2^64-1]")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != _HASH_LEN:
            raise ValueError("checkpoint root hash must be 32 bytes")


@dataclass(frozen=True)
class ProofFile:
    """A parsed tlog-proof@v1 file; ``extra`` is unauthenticated opaque data."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint_note: bytes
    extra: bytes | None


def format_checkpoint(cp: Checkpoint) -> bytes:
    """Encode a checkpoint body (the note text a log signs)."""
    root = base64.b64encode(cp.root_hash).decode()
    text = "\n".join((cp.origin, str(cp.size), root, *cp.extensions)) + "\n"
    data = text.encode()
    try:
        validate_note_text(data)
    except MalformedInputError as e:
        raise ValueError(f"checkpoint is not valid note text: {e}") from None
    return data


def parse_checkpoint(text: bytes) -> Checkpoint:
    """Parse a checkpoint body; raise :class:`CheckpointError` if it is not well formed."""
    try:
        decoded = validate_note_text(_as_bytes(text))
    except MalformedInputError as e:
        raise CheckpointError(f"checkpoint: {e}") from None
    if not decoded.endswith("\n"):
        raise CheckpointError("checkpoint must end with a newline")
    lines = decoded[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint needs an origin, a size and a root hash line")
    origin, size_line, root_line, *extensions = lines
    if not origin:
        raise CheckpointError("checkpoint origin is empty")
    size = _parse_uint64(size_line.encode())
    if size is None:
        raise CheckpointError(f"checkpoint size {size_line!r} is not a decimal uint64")
    root = decode_base64(root_line)
    if root is None or len(root) != _HASH_LEN:
        raise CheckpointError("checkpoint root hash is not base64 of 32 bytes")
    if not all(extensions):
        raise CheckpointError("checkpoint extension lines must be non-empty")
    return Checkpoint(origin, size, root, tuple(extensions))


def verify_checkpoint(
    signed: bytes, verifier_keys: Sequence[str], *, origin: str | None = None
) -> tuple[Checkpoint, Note]:
    """Verify a signed checkpoint: a trusted Ed25519 key named after its origin must sign it.

    Cosignatures from trusted witness keys are verified too and reported in the returned note.
    If ``origin`` is given, the checkpoint's origin must equal it.
    """
    note, verified = _open_note(signed, _parse_keys(verifier_keys))
    cp = parse_checkpoint(note.text)
    if origin is not None and cp.origin != origin:
        raise CheckpointError(f"checkpoint origin {cp.origin!r} is not the expected {origin!r}")
    if not any(k.sig_type == SIG_TYPE_ED25519 and k.name == cp.origin for k in verified):
        raise SignatureError(f"checkpoint has no valid signature from the log key {cp.origin!r}")
    return cp, note


def format_proof_file(
    index: int,
    proof: Sequence[bytes],
    signed_checkpoint: bytes,
    extra: bytes | None = None,
) -> bytes:
    """Encode a tlog-proof@v1 file (raises ``ValueError`` on values it cannot encode)."""
    if type(index) is not int or not 0 <= index <= _MAX_UINT64:
        raise ValueError("proof index must be an integer in [0, 2^64-1]")
    if len(proof) > MAX_PROOF_HASHES:
        raise ValueError(f"inclusion proof has more than {MAX_PROOF_HASHES} hashes")
    if not all(isinstance(h, bytes) and len(h) == _HASH_LEN for h in proof):
        raise ValueError("inclusion proof hashes must be 32 bytes each")
    if extra is not None and not extra:
        raise ValueError("extra data must be non-empty (use None for no extra line)")
    try:
        body, _ = parse_note(signed_checkpoint)
        parse_checkpoint(body)
    except MalformedInputError as e:
        raise ValueError(f"not a signed checkpoint: {e}") from None
    except CheckpointError as e:
        raise ValueError(f"not a signed checkpoint: {e}") from None
    lines = [PROOF_HEADER]
    if extra is not None:
        lines.append(_EXTRA_PREFIX + base64.b64encode(extra))
    lines.append(_INDEX_PREFIX + str(index).encode())
    lines.extend(base64.b64encode(h) for h in proof)
    return b"\n".join(lines) + b"\n\n" + bytes(signed_checkpoint)


def parse_proof_file(data: bytes) -> ProofFile:
    """Parse a tlog-proof@v1 file, including the syntax of its signed checkpoint."""
    raw = _as_bytes(data)
    split = raw.find(b"\n\n")
    if split < 0:
        raise ProofFileError("proof file has no blank line before the checkpoint")
    lines, checkpoint_note = raw[:split].split(b"\n"), raw[split + 2 :]
    if lines[0] != PROOF_HEADER:
        raise ProofFileError(f"proof file does not start with {PROOF_HEADER.decode()!r}")
    pos = 1
    extra = None
    if pos < len(lines) and lines[pos].startswith(_EXTRA_PREFIX):
        extra = decode_base64(lines[pos][len(_EXTRA_PREFIX) :])
        if not extra:
            raise ProofFileError("proof file extra line is not non-empty base64")
        pos += 1
    if pos >= len(lines) or not lines[pos].startswith(_INDEX_PREFIX):
        raise ProofFileError("proof file has no 'index' line")
    index = _parse_uint64(lines[pos][len(_INDEX_PREFIX) :])
    if index is None:
        raise ProofFileError("proof file index is not a decimal uint64")
    hash_lines = lines[pos + 1 :]
    if len(hash_lines) > MAX_PROOF_HASHES:
        raise ProofFileError(f"inclusion proof has more than {MAX_PROOF_HASHES} hashes")
    proof = []
    for n, line in enumerate(hash_lines):
        h = decode_base64(line)
        if h is None or len(h) != _HASH_LEN:
            raise ProofFileError(f"inclusion proof line {n + 1} is not base64 of 32 bytes")
        proof.append(h)
    try:
        body, _ = parse_note(checkpoint_note)
        parse_checkpoint(body)
    except (MalformedInputError, CheckpointError) as e:
        raise ProofFileError(f"proof file checkpoint: {e}") from None
    return ProofFile(index, tuple(proof), checkpoint_note, extra)


def verify_proof_file(
    data: bytes,
    leaf_hash: bytes,
    verifier_keys: Sequence[str],
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Verify a tlog-proof@v1 file proves ``leaf_hash`` is in a log checkpoint we trust.

    Checks the checkpoint's signatures (see :func:`verify_checkpoint`), then the inclusion of
    ``leaf_hash`` at the file's index under the checkpoint's size and root. The ``extra`` line
    is not authenticated and plays no part.
    """
    if not isinstance(leaf_hash, bytes) or len(leaf_hash) != _HASH_LEN:
        raise MalformedInputError("leaf hash must be 32 bytes")
    pf = parse_proof_file(data)
    cp, _ = verify_checkpoint(pf.checkpoint_note, verifier_keys, origin=origin)
    if pf.index >= cp.size:
        raise ProofFileError(f"proof index {pf.index} is not below checkpoint size {cp.size}")
    verify_inclusion(leaf_hash, pf.index, cp.size, pf.proof, cp.root_hash)
    return cp


def _parse_uint64(s: bytes) -> int | None:
    """Parse ASCII decimal with no sign or leading zeros, at most 2^64-1; None if invalid."""
    if not _DECIMAL.fullmatch(s):
        return None
    value = int(s)
    return value if value <= _MAX_UINT64 else None
