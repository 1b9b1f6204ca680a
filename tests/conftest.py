"""Helpers shared by test modules (pytest loads this file first; import from ``conftest``).

``Clock`` and ``seeded_key`` used to be copied into each module that needed them.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from depository.signing import key_from_seed
from depository.tlog.note import SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519


class Clock:
    """A settable clock that moves 1 ms per reading, so record times differ and are
    reproducible. Set ``now`` to jump (e.g. years ahead, to let retention run out)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def seeded_key(name: str, witness: bool = False) -> tuple[str, str]:
    """A deterministic (signer, verifier) key pair for ``name``: the seed is SHA-256(name).

    ``witness=True`` gives a cosignature/v1 key (for witness cosignatures).
    """
    sig_type = SIG_TYPE_COSIGNATURE_V1 if witness else SIG_TYPE_ED25519
    return key_from_seed(name, hashlib.sha256(name.encode()).digest(), sig_type=sig_type)
