"""Transparency-log formats: the ground floor every other part of Depository builds on.

RFC 6962 hashing and proofs (:mod:`.merkle`), C2SP signed notes (:mod:`.note`), C2SP
tlog-checkpoint and tlog-proof files (:mod:`.checkpoint`), canonical audit records
(:mod:`.record`), what a bearer token may cause (:mod:`.authority`) and the one
:class:`VerificationError` hierarchy (:mod:`.errors`).

Pure functions over bytes and dataclasses. This package imports only the standard library,
``cryptography`` and ``rfc8785`` and nothing else from ``depository`` (a test enforces it;
see ``docs/adr/0006-layers.md``), so the offline verifier can ship with it alone.
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
