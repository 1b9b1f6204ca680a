"""Certification: executed checks, a canonical report, sign-offs and a signed PDF.

``depository certify run`` runs every check behind the seven guarantees, seven refusals,
ten threats and seven failure scenarios against the store (read-only) or scratch copies of
it, reads the seven scale limits from load-test results, and writes the report data as
one canonical JSON document (RFC 8785) with OSCAL Assessment Results beside it. Signers
approve its digest (Ed25519 or Sigstore, verified offline); ``finalize`` renders a
PDF/A-3b with the data embedded and signs it (PAdES); ``verify`` checks all of it offline.

Modules: :mod:`.content` (the promises and their checks), :mod:`.checks` (the drills),
:mod:`.loadresults`, :mod:`.signoffs`, :mod:`.report` (the cycle), :mod:`.render`,
:mod:`.pdf` (PAdES, demo CA), :mod:`.verify`, :mod:`.oscal`, :mod:`.local_sigstore`
(a private Sigstore instance for demos and tests).
"""

from depository.certification.pdf import create_demo_ca
from depository.certification.report import (
    CertifyError,
    ReportDir,
    finalize,
    run_certification,
    sign_off,
)
from depository.certification.signoffs import SignoffError
from depository.certification.verify import diff_reports, report_status, verify_report

__all__ = [
    "CertifyError",
    "ReportDir",
    "SignoffError",
    "create_demo_ca",
    "diff_reports",
    "finalize",
    "report_status",
    "run_certification",
    "sign_off",
    "verify_report",
]
