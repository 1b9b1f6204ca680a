"""Offline verification of Depository stores and evidence packages.

This package is what an auditor runs on their own machine: :mod:`.store` replays a store
read-only, :mod:`.package` checks an evidence package, :mod:`.timestamp` checks RFC 3161
tokens, and :mod:`.commands` holds the shared ``store|package|proof|note`` commands behind
``python -m depository.verifier`` and ``depository verify``. It imports only the standard
library, ``cryptography``, ``rfc8785`` and :mod:`depository.tlog` (the log formats it checks:
Merkle proofs, signed notes, checkpoints, records); a test enforces it. Every ``verify_*``
function returns ``None`` or raises a subclass of :class:`VerificationError`, re-exported here
from :mod:`depository.tlog.errors`.
"""

from depository.tlog.errors import (
    CheckpointError,
    ConsistencyProofError,
    InclusionProofError,
    MalformedInputError,
    ProofFileError,
    RecordError,
    SignatureError,
    StoreVerificationError,
    VerificationError,
)

__all__ = [
    "CheckpointError",
    "ConsistencyProofError",
    "InclusionProofError",
    "MalformedInputError",
    "ProofFileError",
    "RecordError",
    "SignatureError",
    "StoreVerificationError",
    "VerificationError",
]
