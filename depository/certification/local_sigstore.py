"""A private Sigstore instance built with ``cryptography`` alone, for demos and tests.

It has its own Fulcio CA (the certificate authority that issues short-lived signing
certificates to OIDC identities), its own certificate-transparency log key (the SCT
embedded in each certificate), and its own Rekor transparency log (a real RFC 6962 tree
with signed checkpoints, inclusion proofs and signed entry timestamps). It exports a
standard client trust-config JSON, so the bundles it makes are verified by unmodified
sigstore-python (``Verifier(trusted_root=...)``) without the network.

Nothing here talks to an OIDC provider: :meth:`LocalSigstore.sign` simply asserts the
identity, which is exactly why this instance must never be trusted for real sign-offs.
Its trust config is what a verifier pins; a bundle from any other instance is rejected.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from depository.tlog import merkle
from depository.tlog.record import canonical_json

__all__ = ["LocalSigstore"]

SCT_LIST_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
OIDC_ISSUER_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
SIGNING_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
_KEY_DETAILS = "PKIX_ECDSA_P256_SHA_256"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    """RFC 6962 key id: SHA-256 of the DER SubjectPublicKeyInfo (what Sigstore uses)."""
    return hashlib.sha256(_spki(key)).digest()


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pem_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_private(data: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("expected an EC private key")
    return key


@dataclass
class LocalSigstore:
    """A self-contained Sigstore instance: Fulcio CA, CT log key, Rekor log key and log."""

    name: str
    fulcio_key: ec.EllipticCurvePrivateKey
    fulcio_cert: x509.Certificate
    ct_key: ec.EllipticCurvePrivateKey
    rekor_key: ec.EllipticCurvePrivateKey
    created: datetime
    log: list[bytes] = field(default_factory=list)  # Rekor leaf hashes

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(cls, name: str = "sigstore.local", *, now: datetime | None = None
               ) -> LocalSigstore:
        """A new instance with fresh keys and a self-signed Fulcio root valid ten years."""
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        fulcio_key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{name} fulcio root"),
        ])
        ski = x509.SubjectKeyIdentifier.from_public_key(fulcio_key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(fulcio_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
            .sign(fulcio_key, hashes.SHA256())
        )
        # A few earlier entries, so inclusion proofs are not trivially empty.
        log = [merkle.leaf_hash(f"{name} genesis {i}".encode()) for i in range(5)]
        return cls(name=name, fulcio_key=fulcio_key, fulcio_cert=cert,
                   ct_key=ec.generate_private_key(ec.SECP256R1()),
                   rekor_key=ec.generate_private_key(ec.SECP256R1()), created=now, log=log)

    def save(self, directory: Path) -> None:
        """Write the instance (private keys included) and its trust config to ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            "name": self.name,
            "created": _time(self.created),
            "fulcio_key": _pem_private(self.fulcio_key).decode(),
            "fulcio_cert": self.fulcio_cert.public_bytes(serialization.Encoding.PEM).decode(),
            "ct_key": _pem_private(self.ct_key).decode(),
            "rekor_key": _pem_private(self.rekor_key).decode(),
            "log": [h.hex() for h in self.log],
        }
        secret = directory / "instance.json"
        secret.write_text(json.dumps(state, indent=1) + "\n")
        secret.chmod(0o600)
        (directory / "trust-config.json").write_text(self.trust_config_json())

    @classmethod
    def load(cls, directory: Path) -> LocalSigstore:
        state = json.loads((directory / "instance.json").read_text())
        return cls(
            name=state["name"],
            fulcio_key=_load_private(state["fulcio_key"].encode()),
            fulcio_cert=x509.load_pem_x509_certificate(state["fulcio_cert"].encode()),
            ct_key=_load_private(state["ct_key"].encode()),
            rekor_key=_load_private(state["rekor_key"].encode()),
            created=datetime.fromisoformat(state["created"].replace("Z", "+00:00")),
            log=[bytes.fromhex(h) for h in state["log"]],
        )

    # ------------------------------------------------------------- trust config
    def trusted_root(self) -> dict[str, Any]:
        """The instance's trusted root (Sigstore ``TrustedRoot`` JSON, version 0.1)."""
        start = {"start": _time(self.created - timedelta(days=1))}

        def log_instance(key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, Any]:
            pub = key.public_key()
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": _b64(_spki(pub)), "keyDetails": _KEY_DETAILS,
                              "validFor": start},
                "logId": {"keyId": _b64(_key_id(pub))},
            }

        return {
            "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
            "tlogs": [log_instance(self.rekor_key, f"https://rekor.{self.name}")],
            "certificateAuthorities": [{
                "subject": {"organization": self.name, "commonName": f"{self.name} fulcio root"},
                "uri": f"https://fulcio.{self.name}",
                "certChain": {"certificates": [
                    {"rawBytes": _b64(self.fulcio_cert.public_bytes(serialization.Encoding.DER))}
                ]},
                "validFor": start,
            }],
            "ctlogs": [log_instance(self.ct_key, f"https://ctfe.{self.name}")],
            "timestampAuthorities": [],
        }

    def trust_config(self) -> dict[str, Any]:
        """A client trust config: the trusted root plus a (never contacted) signing config."""
        start = {"start": _time(self.created - timedelta(days=1))}

        def service(url: str) -> dict[str, Any]:
            return {"url": url, "majorApiVersion": 1, "validFor": start,
                    "operator": self.name}

        return {
            "mediaType": TRUST_CONFIG_MEDIA_TYPE,
            "trustedRoot": self.trusted_root(),
            "signingConfig": {
                "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
                "caUrls": [service(f"https://fulcio.{self.name}")],
                "oidcUrls": [service(f"https://oauth2.{self.name}")],
                "rekorTlogUrls": [service(f"https://rekor.{self.name}")],
                "tsaUrls": [],
                "rekorTlogConfig": {"selector": "ANY"},
                "tsaConfig": {"selector": "ANY"},
            },
        }

    def trust_config_json(self) -> str:
        return json.dumps(self.trust_config(), indent=2, sort_keys=True) + "\n"

    # ------------------------------------------------------------------ signing
    def issue_certificate(
        self, identity: str, issuer: str, public_key: ec.EllipticCurvePublicKey, *,
        now: datetime,
    ) -> x509.Certificate:
        """A Fulcio-style ten-minute code-signing certificate with an embedded SCT."""
        san: x509.GeneralName = (
            x509.UniformResourceIdentifier(identity) if "://" in identity
            else x509.RFC822Name(identity)
        )
        ca_ski = self.fulcio_cert.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.fulcio_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(seconds=30))
            .not_valid_after(now + timedelta(minutes=10))
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca_ski), critical=False)
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_OID, issuer.encode()),
                           critical=False)
            .add_extension(x509.UnrecognizedExtension(
                OIDC_ISSUER_V2_OID, _der(0x0C, issuer.encode())), critical=False)
        )
        # The SCT signs the precertificate: this certificate's TBS without the SCT list.
        precert = builder.sign(self.fulcio_key, hashes.SHA256())
        sct_list = self._sct_list(precert.tbs_certificate_bytes, now)
        cert = builder.add_extension(
            x509.UnrecognizedExtension(SCT_LIST_OID, _der(0x04, sct_list)), critical=False
        ).sign(self.fulcio_key, hashes.SHA256())
        if cert.tbs_precertificate_bytes != precert.tbs_certificate_bytes:
            raise AssertionError("precertificate TBS does not match the SCT's input")
        return cert

    def _sct_list(self, tbs_precert: bytes, now: datetime) -> bytes:
        issuer_key_hash = _key_id(self.fulcio_key.public_key())
        ts_ms = int(now.timestamp() * 1000)
        n = len(tbs_precert)
        signed_entry = issuer_key_hash + struct.pack("!BBB", n >> 16, (n >> 8) & 0xFF, n & 0xFF)
        signed_entry += tbs_precert
        # RFC 6962 §3.2 digitally-signed struct: v1, certificate_timestamp, time,
        # precert_entry, the entry, no extensions.
        data = struct.pack("!BBQH", 0, 0, ts_ms, 1) + signed_entry + struct.pack("!H", 0)
        sig = self.ct_key.sign(data, ec.ECDSA(hashes.SHA256()))
        sct = (struct.pack("!B", 0) + _key_id(self.ct_key.public_key())
               + struct.pack("!QH", ts_ms, 0) + bytes([4, 3]) + struct.pack("!H", len(sig))
               + sig)
        inner = struct.pack("!H", len(sct)) + sct
        return struct.pack("!H", len(inner)) + inner

    def sign(self, data: bytes, *, identity: str, issuer: str,
             now: datetime | None = None) -> str:
        """A Sigstore bundle (v0.3, hashedrekord) over ``data`` for ``identity``.

        Issues an ephemeral key and certificate, signs SHA-256(data), appends the entry to
        this instance's Rekor log, and includes the inclusion proof, the signed checkpoint
        and the signed entry timestamp. Returns the bundle JSON.
        """
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.issue_certificate(identity, issuer, key.public_key(), now=now)
        digest = hashlib.sha256(data).digest()
        signature = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        body = canonical_json({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                "signature": {"content": _b64(signature),
                              "publicKey": {"content": _b64(cert_pem)}},
            },
        })
        index = len(self.log)
        self.log.append(merkle.leaf_hash(body))
        size = len(self.log)
        root = merkle.root(self.log)
        proof = merkle.inclusion_proof(self.log, index, size)
        rekor_pub = self.rekor_key.public_key()
        log_id = _key_id(rekor_pub)
        integrated = int(now.timestamp())
        origin = f"rekor.{self.name} - 1"
        note = f"{origin}\n{size}\n{_b64(root)}\n"
        note_sig = self.rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        envelope = f"{note}\n\u2014 rekor.{self.name} {_b64(log_id[:4] + note_sig)}\n"
        set_payload = canonical_json({
            "body": _b64(body), "integratedTime": integrated, "logID": log_id.hex(),
            "logIndex": index,
        })
        set_sig = self.rekor_key.sign(set_payload, ec.ECDSA(hashes.SHA256()))
        bundle = {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {
                "certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [{
                    "logIndex": str(index),
                    "logId": {"keyId": _b64(log_id)},
                    "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
                    "integratedTime": str(integrated),
                    "inclusionPromise": {"signedEntryTimestamp": _b64(set_sig)},
                    "inclusionProof": {
                        "logIndex": str(index),
                        "rootHash": _b64(root),
                        "treeSize": str(size),
                        "hashes": [_b64(h) for h in proof],
                        "checkpoint": {"envelope": envelope},
                    },
                    "canonicalizedBody": _b64(body),
                }],
            },
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": _b64(digest)},
                "signature": _b64(signature),
            },
        }
        return json.dumps(bundle, indent=2) + "\n"
