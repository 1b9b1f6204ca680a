"""The verifier's one error type and its named subclasses."""


class VerificationError(Exception):
    """Something failed to verify. Every verifier failure is a subclass of this."""


class MalformedInputError(VerificationError):
    """Input could not be parsed (bad base64, wrong lengths, bad encoding, bad sizes)."""


class InclusionProofError(VerificationError):
    """An inclusion proof does not prove the leaf is in the tree."""


class ConsistencyProofError(VerificationError):
    """A consistency proof does not prove one tree is a prefix of another."""


class SignatureError(VerificationError):
    """A signed note has no valid signature from a trusted key, or a bad one."""


class CheckpointError(VerificationError):
    """A checkpoint body is not a valid C2SP tlog-checkpoint."""


class ProofFileError(VerificationError):
    """A C2SP tlog-proof file is malformed or does not verify."""


class RecordError(VerificationError):
    """An audit record is not the canonical encoding of a valid envelope."""


class StoreVerificationError(VerificationError):
    """A store replay found a problem (see the message for index and check)."""
