"""The evidence key: an Ed25519 C2SP signer key that signs packages' tag manifests."""

from __future__ import annotations

import os
from pathlib import Path

from depository.signing import SigningKeyError, generate_key, verifier_key_from_signer

EVIDENCE_KEY_NAME = "evidence.key"
EVIDENCE_VKEY_NAME = "evidence.vkey"
KEY_DIR = "keys"


class EvidenceKeyError(Exception):
    """The evidence key cannot be read or created."""


def evidence_key(store_dir: Path, origin: str, key_file: Path | None = None) -> tuple[str, str]:
    """(signer key, verifier key) for signing packages.

    ``key_file`` if given; otherwise ``STORE/keys/evidence.key``, created on first use
    (mode 0600, named ``<origin>/evidence``) with ``STORE/keys/evidence.vkey`` beside it.
    """
    path = key_file or store_dir / KEY_DIR / EVIDENCE_KEY_NAME
    if key_file is None and not path.exists():
        signer, vkey = generate_key(f"{origin}/evidence")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another export created it first: read theirs
        else:
            with os.fdopen(fd, "w") as f:
                f.write(signer + "\n")
                f.flush()
                os.fsync(f.fileno())
            (path.parent / EVIDENCE_VKEY_NAME).write_text(vkey + "\n")
            return signer, vkey
    try:
        signer = path.read_text().strip()
    except OSError as exc:
        raise EvidenceKeyError(f"cannot read the evidence key {path}: {exc.strerror}") from exc
    try:
        return signer, verifier_key_from_signer(signer)
    except SigningKeyError as exc:
        raise EvidenceKeyError(f"{path}: not an Ed25519 signer key: {exc}") from exc
