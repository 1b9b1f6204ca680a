"""RFC 3161 time-stamping: a hand-encoded DER ``TimeStampReq`` sent over HTTP.

The response is checked before it is stored (status granted, message imprint, nonce,
the CMS signature with the TSA's certificate from the token), with the same code the
offline verifier uses.
"""

from __future__ import annotations

import hashlib
import secrets
import urllib.error
import urllib.request

from depository.tlog.errors import VerificationError
from depository.verifier.timestamp import (
    HASH_OID_OF,
    der_int,
    der_tlv,
    encode_oid,
    verify_timestamp,
)

CONTENT_TYPE_QUERY = "application/timestamp-query"
MAX_RESPONSE = 1024 * 1024


class TimestampRequestError(Exception):
    """The timestamp authority could not be reached or gave an unusable answer."""


def build_request(data: bytes, *, nonce: int, alg: str = "sha256") -> bytes:
    """DER ``TimeStampReq`` (v1) for ``data``'s hash, asking for the TSA's certificate."""
    digest = hashlib.new(alg, data).digest()
    algorithm = der_tlv(0x30, encode_oid(HASH_OID_OF[alg]) + b"\x05\x00")
    imprint = der_tlv(0x30, algorithm + der_tlv(0x04, digest))
    cert_req = b"\x01\x01\xff"
    return der_tlv(0x30, der_int(1) + imprint + der_int(nonce) + cert_req)


def timestamp(data: bytes, url: str, *, timeout: float = 30.0) -> bytes:
    """Ask the TSA at ``url`` to timestamp ``data``; return the DER ``TimeStampResp``."""
    nonce = secrets.randbits(63)
    req = urllib.request.Request(
        url, data=build_request(data, nonce=nonce), method="POST",
        headers={"Content-Type": CONTENT_TYPE_QUERY, "Accept": "application/timestamp-reply"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body: bytes = resp.read(MAX_RESPONSE + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TimestampRequestError(f"timestamp authority {url}: {exc}") from exc
    if len(body) > MAX_RESPONSE:
        raise TimestampRequestError(f"timestamp authority {url}: response over 1 MiB")
    try:
        verify_timestamp(body, data, nonce=nonce)
    except VerificationError as exc:
        raise TimestampRequestError(f"timestamp authority {url}: unusable response: {exc}"
                                    ) from exc
    return body
