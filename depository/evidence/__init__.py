"""Evidence packages for legal: self-contained, offline-verifiable, with chain of custody.

:func:`export_package` writes a BagIt bag (RFC 8493) for one matter and one product:
the artifacts' original bytes, their exact audit records and those of the holds,
retention changes and disposals touching them, one signed checkpoint and a C2SP
tlog-proof per record, the custody log, a PDF/A index and optionally a Concordance DAT
load file. The export is itself a log record whose proof rides in the package; the tag
manifest is signed with the evidence key and optionally timestamped (RFC 3161).

Verify a package with :mod:`depository.verifier.package` (``depository verify package``).
"""

from depository.evidence._export import (
    DEFAULT_INDEX_LIMIT,
    LOAD_FILE_FORMATS,
    EvidenceError,
    ExportResult,
    export_package,
)
from depository.evidence._keys import (
    EVIDENCE_KEY_NAME,
    EVIDENCE_VKEY_NAME,
    EvidenceKeyError,
    evidence_key,
)
from depository.evidence._tsa import TimestampRequestError, build_request

__all__ = [
    "DEFAULT_INDEX_LIMIT",
    "EVIDENCE_KEY_NAME",
    "EVIDENCE_VKEY_NAME",
    "LOAD_FILE_FORMATS",
    "EvidenceError",
    "EvidenceKeyError",
    "ExportResult",
    "TimestampRequestError",
    "build_request",
    "evidence_key",
    "export_package",
]
