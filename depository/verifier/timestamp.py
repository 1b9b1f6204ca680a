"""RFC 3161 time-stamp responses: a small DER reader and writer and the token check.

The offline verifier uses :func:`verify_timestamp` on an evidence package's
``tagmanifest.tsr``; :mod:`depository.evidence` uses the same check (and the DER writers
:func:`der_tlv`, :func:`der_int`, :func:`encode_oid`) when it asks a TSA for a token, so the
token stored is the token the auditor will accept. Standard library and ``cryptography`` only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from depository.tlog.errors import MalformedInputError, VerificationError

__all__ = [
    "HASH_OIDS",
    "HASH_OID_OF",
    "TIMESTAMPED_FILE",
    "TimestampError",
    "TimestampInfo",
    "der_int",
    "der_tlv",
    "encode_oid",
    "parse_timestamp_response",
    "verify_timestamp",
]

TIMESTAMPED_FILE = "tagmanifest-sha256.txt"
"""What a package's token covers (named in the imprint-mismatch message)."""


class TimestampError(VerificationError):
    """An RFC 3161 time-stamp response or token is malformed or does not verify."""


@dataclass(frozen=True)
class TimestampInfo:
    """What a verified time-stamp token says."""

    gen_time: str
    serial: int
    policy: str
    hash_algorithm: str
    nonce: int | None
    signer: str
    trusted: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_TST_INFO = "1.2.840.113549.1.9.16.1.4"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
OID_EKU_TIMESTAMPING = "1.3.6.1.5.5.7.3.8"
HASH_OIDS = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
HASH_OID_OF = {v: k for k, v in HASH_OIDS.items()}


@dataclass(frozen=True)
class _Tlv:
    tag: int
    value: bytes
    raw: bytes


def _der(data: bytes, pos: int = 0) -> tuple[_Tlv, int]:
    """One DER TLV at ``pos``: (tlv, end). Low tag numbers, definite lengths only."""
    if pos + 2 > len(data):
        raise TimestampError("truncated DER")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise TimestampError("unsupported high-numbered DER tag")
    length = data[pos + 1]
    p = pos + 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or p + n > len(data):
            raise TimestampError("bad DER length")
        length = int.from_bytes(data[p:p + n], "big")
        p += n
    end = p + length
    if end > len(data):
        raise TimestampError("truncated DER")
    return _Tlv(tag, data[p:end], data[pos:end]), end


def _children(value: bytes) -> list[_Tlv]:
    out = []
    pos = 0
    while pos < len(value):
        tlv, pos = _der(value, pos)
        out.append(tlv)
    return out


def _expect(tlv: _Tlv, tag: int, what: str) -> _Tlv:
    if tlv.tag != tag:
        raise TimestampError(f"{what}: expected DER tag 0x{tag:02x}, got 0x{tlv.tag:02x}")
    return tlv


def _oid(tlv: _Tlv) -> str:
    _expect(tlv, 0x06, "OID")
    v = tlv.value
    if not v:
        raise TimestampError("empty OID")
    parts: list[int] = []
    n = 0
    for b in v:
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(n)
            n = 0
    first = parts[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(x) for x in head + parts[1:])


def _int(tlv: _Tlv) -> int:
    _expect(tlv, 0x02, "INTEGER")
    return int.from_bytes(tlv.value, "big", signed=True)


def encode_oid(oid: str) -> bytes:
    """DER of an OBJECT IDENTIFIER (used to build time-stamp requests)."""
    nums = [int(x) for x in oid.split(".")]
    body = bytearray()
    for n in [nums[0] * 40 + nums[1], *nums[2:]]:
        chunk = [n & 0x7F]
        n >>= 7
        while n:
            chunk.append(0x80 | (n & 0x7F))
            n >>= 7
        body.extend(reversed(chunk))
    return der_tlv(0x06, bytes(body))


def der_tlv(tag: int, value: bytes) -> bytes:
    """DER encode one TLV."""
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + value


def der_int(n: int) -> bytes:
    """DER encode an INTEGER."""
    size = max(1, (n.bit_length() + 8) // 8)
    return der_tlv(0x02, n.to_bytes(size, "big", signed=True))


@dataclass(frozen=True)
class _Token:
    status: int
    tst_info: bytes
    imprint_alg: str
    imprint: bytes
    serial: int
    policy: str
    gen_time: str
    nonce: int | None
    certs: tuple[bytes, ...]
    signer_infos: tuple[_Tlv, ...]


def parse_timestamp_response(tsr: bytes) -> _Token:
    """Parse a DER ``TimeStampResp``; raise :class:`TimestampError` unless granted."""
    try:
        top, end = _der(tsr)
        if end != len(tsr):
            raise TimestampError("trailing bytes after the TimeStampResp")
        parts = _children(_expect(top, 0x30, "TimeStampResp").value)
        status_info = _children(_expect(parts[0], 0x30, "PKIStatusInfo").value)
        status = _int(status_info[0])
        if status not in (0, 1):
            raise TimestampError(f"the TSA refused the request (PKIStatus {status})")
        if len(parts) < 2:
            raise TimestampError("granted response carries no time-stamp token")
        ci = _children(_expect(parts[1], 0x30, "ContentInfo").value)
        if _oid(ci[0]) != OID_SIGNED_DATA:
            raise TimestampError("token is not CMS SignedData")
        sd = _children(_children(_expect(ci[1], 0xA0, "content").value)[0].value)
        encap = _children(_expect(sd[2], 0x30, "EncapsulatedContentInfo").value)
        if _oid(encap[0]) != OID_TST_INFO:
            raise TimestampError("token content is not TSTInfo")
        econtent = _children(_expect(encap[1], 0xA0, "eContent").value)[0]
        tst_der = _expect(econtent, 0x04, "eContent").value
        certs: list[bytes] = []
        signer_infos: tuple[_Tlv, ...] = ()
        for part in sd[3:]:
            if part.tag == 0xA0:
                certs.extend(c.raw for c in _children(part.value) if c.tag == 0x30)
            elif part.tag == 0x31:
                signer_infos = tuple(_children(part.value))
        tst = _children(_expect(_der(tst_der)[0], 0x30, "TSTInfo").value)
        policy = _oid(tst[1])
        mi = _children(_expect(tst[2], 0x30, "MessageImprint").value)
        alg = _oid(_children(_expect(mi[0], 0x30, "AlgorithmIdentifier").value)[0])
        imprint = _expect(mi[1], 0x04, "hashedMessage").value
        serial = _int(tst[3])
        gen = _expect(tst[4], 0x18, "genTime").value.decode("ascii")
        nonce = None
        for extra in tst[5:]:
            if extra.tag == 0x02:
                nonce = _int(extra)
    except (IndexError, UnicodeDecodeError) as exc:
        raise TimestampError(f"malformed time-stamp response: {exc}") from exc
    if alg not in HASH_OIDS:
        raise TimestampError(f"unsupported message imprint hash {alg}")
    return _Token(status, tst_der, HASH_OIDS[alg], imprint, serial, policy,
                  _gen_time(gen), nonce, tuple(certs), signer_infos)


def _gen_time(text: str) -> str:
    m = re.fullmatch(r"(\d{14})(\.\d+)?Z", text)
    if not m:
        raise TimestampError(f"genTime {text!r} is not GeneralizedTime in UTC")
    t = datetime.strptime(m[1], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (m[2] or "") + "Z"


def verify_timestamp(
    tsr: bytes, data: bytes, *, tsa_certs: Sequence[bytes] = (), nonce: int | None = None,
) -> TimestampInfo:
    """Verify an RFC 3161 ``TimeStampResp`` over ``data``.

    Checks the status, that the token's message imprint is the hash of ``data``, the nonce
    (when given), and the CMS signature (signed attributes: content type TSTInfo and the
    message digest of the TSTInfo) with the signer's certificate from the token. With
    ``tsa_certs`` (PEM or DER), the signer must be one of them or directly issued by one,
    carry the timeStamping extended key usage and be valid at the time stamped.
    """
    tok = parse_timestamp_response(tsr)
    if hashlib.new(tok.imprint_alg, data).digest() != tok.imprint:
        raise TimestampError("the token's message imprint is not the hash of "
                             f"{TIMESTAMPED_FILE} (it timestamps something else)")
    if nonce is not None and tok.nonce != nonce:
        raise TimestampError("the response's nonce is not the request's")
    signer, cert = _verify_cms_signature(tok)
    trusted = False
    if tsa_certs:
        trusted = _check_trust(cert, tsa_certs, tok.gen_time)
    return TimestampInfo(tok.gen_time, tok.serial, tok.policy, tok.imprint_alg, tok.nonce,
                         signer, trusted)


def _verify_cms_signature(tok: _Token) -> tuple[str, Any]:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    if len(tok.signer_infos) != 1:
        raise TimestampError(f"token has {len(tok.signer_infos)} signers, expected 1")
    try:
        si = _children(_expect(tok.signer_infos[0], 0x30, "SignerInfo").value)
        sid = si[1]
        digest_alg = _oid(_children(si[2].value)[0])
        pos = 3
        signed_attrs: _Tlv | None = None
        if si[pos].tag == 0xA0:
            signed_attrs = si[pos]
            pos += 1
        sig_alg = _oid(_children(si[pos].value)[0])
        signature = _expect(si[pos + 1], 0x04, "signature").value
    except IndexError as exc:
        raise TimestampError("malformed SignerInfo") from exc
    if digest_alg not in HASH_OIDS:
        raise TimestampError(f"unsupported signer digest {digest_alg}")
    hname = HASH_OIDS[digest_alg]
    certs = []
    for der in tok.certs:
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError:
            continue
    cert = _find_signer(certs, sid)
    if cert is None:
        raise TimestampError("the token does not carry its signer's certificate (ask the "
                             "TSA for it: certReq)")
    if signed_attrs is not None:
        attrs: dict[str, _Tlv] = {}
        for attr in _children(signed_attrs.value):
            a = _children(attr.value)
            attrs[_oid(a[0])] = _children(a[1].value)[0]
        if OID_CONTENT_TYPE not in attrs or _oid(attrs[OID_CONTENT_TYPE]) != OID_TST_INFO:
            raise TimestampError("signed attributes do not declare TSTInfo content")
        md = attrs.get(OID_MESSAGE_DIGEST)
        if md is None or md.value != hashlib.new(hname, tok.tst_info).digest():
            raise TimestampError("signed message digest does not match the TSTInfo (the "
                                 "token was altered)")
        message = b"\x31" + signed_attrs.raw[1:]
    else:
        message = tok.tst_info
    algorithm: hashes.HashAlgorithm = {
        "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512(),
    }[hname]
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if sig_alg == "1.2.840.113549.1.1.10":
                raise TimestampError("RSASSA-PSS token signatures are not supported")
            key.verify(signature, message, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            raise TimestampError(f"unsupported TSA key type {type(key).__name__}")
    except InvalidSignature:
        raise TimestampError("the token's signature does not verify with its signer's "
                             "certificate") from None
    return cert.subject.rfc4514_string(), cert


def _find_signer(certs: list[Any], sid: _Tlv) -> Any:
    from cryptography import x509

    if sid.tag == 0x30:
        parts = _children(sid.value)
        issuer, serial = parts[0].raw, _int(parts[1])
        for c in certs:
            if c.serial_number == serial and c.issuer.public_bytes() == issuer:
                return c
        for c in certs:
            if c.serial_number == serial:
                return c
    elif sid.tag == 0x80:
        for c in certs:
            try:
                ski = c.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            except x509.ExtensionNotFound:
                continue
            if ski.digest == sid.value:
                return c
    return None


def _check_trust(cert: Any, tsa_certs: Sequence[bytes], gen_time: str) -> bool:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    trusted = []
    for data in tsa_certs:
        try:
            if b"-----BEGIN" in data:
                trusted.extend(x509.load_pem_x509_certificates(data))
            else:
                trusted.append(x509.load_der_x509_certificate(data))
        except ValueError as exc:
            raise MalformedInputError(f"not a certificate: {exc}") from exc
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        has_ts = any(u.dotted_string == OID_EKU_TIMESTAMPING for u in eku)
    except x509.ExtensionNotFound:
        has_ts = False
    if not has_ts:
        raise TimestampError("the TSA certificate lacks the timeStamping extended key usage")
    when = datetime.fromisoformat(gen_time.replace("Z", "+00:00"))
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        raise TimestampError("the TSA certificate was not valid at the time stamped")
    for t in trusted:
        if t == cert:
            return True
        try:
            cert.verify_directly_issued_by(t)
            return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    raise TimestampError(f"the TSA certificate ({cert.subject.rfc4514_string()}) is not one "
                         "of the trusted TSA certificates nor issued by one")
