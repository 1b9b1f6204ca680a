"""PAdES signatures with pyHanko, a local demo CA, and reading a report PDF back.

A report is signed once, as an incremental update covering the whole file (PAdES B-B, or
B-T with an RFC 3161 timestamp); nothing ever rewrites a signed report.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DemoCA",
    "PdfSignatureCheck",
    "attachments",
    "create_demo_ca",
    "sign_pdf",
    "validate_signature",
]


@dataclass(frozen=True)
class DemoCA:
    """Paths of a demo CA and a certification signer issued by it."""

    ca_cert: Path
    ca_key: Path
    signer_cert: Path
    signer_key: Path
    tsa_cert: Path
    tsa_key: Path


def _name(org: str, cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _leaf(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, subject: x509.Name,
          key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
          eku: Sequence[x509.ObjectIdentifier],
          now: datetime, days: int, critical_eku: bool = False) -> x509.Certificate:
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(eku)), critical=critical_eku)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def create_demo_ca(directory: Path, organisation: str = "Depository Demo Org",
                   *, now: datetime | None = None) -> DemoCA:
    """Create a local demo CA, a certification signer certificate and a TSA certificate
    (for a local test timestamp authority) in ``directory``. For demos and tests only:
    a real organisation signs with its own certificate."""
    now = now or datetime.now(UTC)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(organisation, f"{organisation} demo root CA")
    ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer = _leaf(ca_key, ca, _name(organisation, f"{organisation} certification signer"),
                   signer_key, [ExtendedKeyUsageOID.EMAIL_PROTECTION,
                                ExtendedKeyUsageOID.CODE_SIGNING], now, 825)
    # RSA: pyHanko's in-process test TSA signs with RSA only.
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa = _leaf(ca_key, ca, _name(organisation, f"{organisation} demo timestamp authority"),
                tsa_key, [ExtendedKeyUsageOID.TIME_STAMPING], now, 825, critical_eku=True)
    out = DemoCA(directory / "ca.pem", directory / "ca.key", directory / "signer.pem",
                 directory / "signer.key", directory / "tsa.pem", directory / "tsa.key")
    out.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(out.ca_key, ca_key)
    out.signer_cert.write_bytes(signer.public_bytes(serialization.Encoding.PEM))
    _write_key(out.signer_key, signer_key)
    out.tsa_cert.write_bytes(tsa.public_bytes(serialization.Encoding.PEM))
    _write_key(out.tsa_key, tsa_key)
    return out


def dummy_timestamper(tsa_cert: Path, tsa_key: Path) -> Any:
    """pyHanko's in-process TSA (tests and the demo's local timestamp server)."""
    from asn1crypto import keys as asn1_keys  # type: ignore[import-untyped]
    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign.timestamps import DummyTimeStamper

    cert = asn1_x509.Certificate.load(
        x509.load_pem_x509_certificate(tsa_cert.read_bytes()).public_bytes(
            serialization.Encoding.DER))
    key = serialization.load_pem_private_key(tsa_key.read_bytes(), password=None)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return DummyTimeStamper(tsa_cert=cert, tsa_key=asn1_keys.PrivateKeyInfo.load(der))


def _pdfa3_writer(pdf: bytes, when: datetime) -> Any:
    """An incremental writer that keeps a PDF/A-3 file PDF/A-3 (ISO 19005-3).

    pyHanko by default raises the file to PDF 2.0 for an ECDSA key on a curve of ISO 32002
    (P-256 among them) and registers that PDF 2.0 extension; PDF/A-3 is PDF 1.7, where
    PAdES signs with ECDSA just as well (ETSI EN 319 142-1). It also writes its own name as
    the XMP producer but appends it to the Info producer, and dates the XMP alone. Here
    the version stays 1.7, only extensions based on PDF <= 1.7 are registered, and Info
    and XMP get the same producer and modification date."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.metadata.model import VENDOR

    class PdfA3Writer(IncrementalPdfFileWriter):
        def ensure_output_version(self, version: tuple[int, int]) -> None:
            if version <= (1, 7):
                super().ensure_output_version(version)  # type: ignore[no-untyped-call]

        def register_extension(self, ext: Any) -> None:
            if str(ext.base_version).lstrip("/") <= "1.7":
                super().register_extension(ext)

    writer = PdfA3Writer(io.BytesIO(pdf))
    # pyHanko always writes VENDOR as the XMP producer and appends it to an Info producer
    # that lacks it: the same value in both is VENDOR itself (the tool that wrote the
    # final revision). Info /ModDate, when present, and xmp:ModifyDate get one instant.
    info_ref = writer.trailer.raw_get("/Info")
    info = info_ref.get_object()
    info["/Producer"] = generic.TextStringObject(VENDOR)
    writer.mark_update(info_ref)
    writer.document_meta.last_modified = when.astimezone(UTC).replace(microsecond=0)
    return writer


def sign_pdf(pdf: bytes, *, key_file: Path, cert_file: Path,
             chain: Sequence[Path] = (), tsa_url: str | None = None,
             timestamper: Any = None, reason: str = "Certification report",
             location: str | None = None, when: datetime | None = None) -> bytes:
    """Sign ``pdf`` (PAdES B-B; B-T with a timestamp from ``tsa_url`` or ``timestamper``)
    as an incremental update that keeps a PDF/A-3b file PDF/A-3b."""
    from pyhanko.sign import fields, signers
    from pyhanko.sign.timestamps import HTTPTimeStamper

    signer = signers.SimpleSigner.load(  # type: ignore[no-untyped-call]
        str(key_file), str(cert_file), ca_chain_files=tuple(str(c) for c in chain))
    if signer is None:
        raise ValueError(f"cannot load the signing key {key_file} and certificate {cert_file}")
    if timestamper is None and tsa_url:
        timestamper = HTTPTimeStamper(tsa_url)
    meta = signers.PdfSignatureMetadata(
        field_name="CertificationReport", subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason, location=location, use_pades_lta=False,
    )
    writer = _pdfa3_writer(pdf, when or datetime.now(UTC))
    out = signers.sign_pdf(writer, meta, signer=signer, timestamper=timestamper)
    data: bytes = out.getvalue()
    return data


@dataclass
class PdfSignatureCheck:
    present: bool
    intact: bool = False
    valid: bool = False
    trusted: bool | None = None
    whole_file: bool = False
    signer: str = ""
    signing_time: str = ""
    timestamp: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.present and self.intact and self.valid and self.whole_file
                and self.trusted is not False)


def validate_signature(pdf: bytes, trust: Sequence[Path] = ()) -> PdfSignatureCheck:
    """Validate the report's PAdES signature offline (no revocation fetching)."""
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        sigs = reader.embedded_signatures
    except Exception as exc:  # pyHanko raises several types for a damaged file
        return PdfSignatureCheck(False, problems=[f"the PDF cannot be read: {exc}"])
    if not sigs:
        return PdfSignatureCheck(False, problems=["the PDF has no signature"])
    sig = sigs[-1]
    roots = [asn1_x509.Certificate.load(
        x509.load_pem_x509_certificate(p.read_bytes()).public_bytes(serialization.Encoding.DER))
        for p in trust]
    vc = ValidationContext(trust_roots=roots, allow_fetching=False, revocation_mode="soft-fail")
    out = PdfSignatureCheck(True)
    try:
        # pyHanko logs a PathBuildingError traceback whenever the signer does not chain to
        # a root (always, without --trust); the outcome is reported through ``trusted``.
        with _quiet_pyhanko():
            status = validate_pdf_signature(sig, vc)
    except Exception as exc:  # a damaged signature is a failed check, not a crash
        out.problems.append(f"the signature cannot be validated: {exc}")
        return out
    out.intact, out.valid = bool(status.intact), bool(status.valid)
    out.trusted = bool(status.trusted) if roots else None
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    out.whole_file = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    cert = status.signing_cert
    out.signer = cert.subject.human_friendly if cert is not None else ""
    if status.signer_reported_dt is not None:
        out.signing_time = status.signer_reported_dt.astimezone(UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
    if status.timestamp_validity is not None:
        out.timestamp = status.timestamp_validity.timestamp.astimezone(UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
    if not out.intact:
        out.problems.append("the signed bytes were changed (digest mismatch)")
    elif not out.valid:
        out.problems.append("the signature value does not verify")
    if not out.whole_file:
        out.problems.append("the signature does not cover the whole file: it was modified "
                            "after signing")
    if roots and not out.trusted and out.intact and out.valid:
        # The chain is only meaningful for a signature that verifies.
        out.problems.append("the signer's certificate does not chain to the given trust "
                            "anchor")
    return out


@contextlib.contextmanager
def _quiet_pyhanko() -> Iterator[None]:
    logger = logging.getLogger("pyhanko")
    old = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(old)


def attachments(pdf: bytes) -> dict[str, tuple[bytes, str | None]]:
    """The embedded files of a PDF: name -> (bytes, AFRelationship)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    out: dict[str, tuple[bytes, str | None]] = {}
    try:
        names = reader.root["/Names"]["/EmbeddedFiles"]
    except KeyError:
        return out

    def walk(node: Any) -> None:
        node = node.get_object()
        if "/Names" in node:
            arr = node["/Names"]
            for i in range(0, len(arr), 2):
                spec = arr[i + 1].get_object()
                name = str(spec.get("/UF", spec.get("/F", arr[i])))
                data = spec["/EF"]["/F"].get_object().data
                rel = spec.get("/AFRelationship")
                out[name] = (bytes(data), str(rel).lstrip("/") if rel is not None else None)
        for kid in node.get("/Kids", []):
            walk(kid)

    walk(names)
    return out
