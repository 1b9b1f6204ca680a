"""Offline verification of Depository logs, proofs, checkpoints and records.

This package is what an auditor runs on their own machine. It imports only the standard
library, ``cryptography`` and ``rfc8785`` (a test enforces it), and every ``verify_*``
function returns ``None`` or raises a subclass of :class:`VerificationError`.

Modules: :mod:`.merkle` (RFC 6962 hashing and proofs), :mod:`.note` (C2SP signed notes),
:mod:`.checkpoint` (C2SP tlog-checkpoint and tlog-proof), :mod:`.record` (canonical
audit records).
"""

from depository.verifier._errors import (
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
