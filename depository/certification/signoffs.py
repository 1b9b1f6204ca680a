"""Required sign-offs: who must approve a report, how each approval is made, and how it is
verified — offline, every time a report is rendered, finalized or verified.

A signer approves the exact report data digest, the text of ``REPORT_DIR/report.digest``
(``sha256:<hex of the canonical report.json>``), in one of two ways:

* **Ed25519** (offline): a C2SP signed note over a short statement naming the digest, the
  role and the time, signed with the signer's key (``PRIVATE+KEY+...``, as ``depository
  key generate`` writes); the configuration names the signer's verifier key.
* **Sigstore**: a Sigstore bundle over the bytes of ``report.digest``, verified with
  sigstore-python against a pinned trust config (trusted root) and the configured identity
  (e-mail or URI) and OIDC issuer; never the network.

A sign-off over another digest, by another identity, or under an unknown key is rejected
with the reason, and the role stays pending.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from depository.certification.content import ROLES
from depository.signing import SigningKeyError, sign_note, verifier_key_from_signer
from depository.tlog.errors import VerificationError
from depository.tlog.note import parse_verifier_key, verify_note

__all__ = [
    "SIGNOFF_CONFIG",
    "SignerSpec",
    "SignoffConfigError",
    "SignoffError",
    "SignoffStatus",
    "digest_text",
    "ed25519_statement",
    "load_signoff_config",
    "make_ed25519_signoff",
    "make_sigstore_signoff",
    "role_slug",
    "verify_signoff",
]

SIGNOFF_CONFIG = Path("certification") / "signoffs.yaml"
STATEMENT_HEADER = "depository certification sign-off"


class SignoffConfigError(ValueError):
    """The sign-off configuration is invalid (the message names the entry)."""


class SignoffError(ValueError):
    """A sign-off was rejected; the message says why."""


@dataclass(frozen=True)
class SignerSpec:
    """One required signer."""

    role: str
    responsibility: str
    name: str
    method: str | None  # "ed25519", "sigstore", or None (no signer configured)
    ed25519_key: str | None = None
    identity: str | None = None
    issuer: str | None = None
    trust_config_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "responsibility": self.responsibility,
                               "name": self.name, "method": self.method}
        if self.method == "ed25519":
            out["ed25519_key"] = self.ed25519_key
        if self.method == "sigstore":
            out.update(identity=self.identity, issuer=self.issuer,
                       trust_config_sha256=self.trust_config_sha256)
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SignerSpec:
        return cls(role=d["role"], responsibility=d.get("responsibility", ""),
                   name=d.get("name", ""), method=d.get("method"),
                   ed25519_key=d.get("ed25519_key"), identity=d.get("identity"),
                   issuer=d.get("issuer"), trust_config_sha256=d.get("trust_config_sha256"))

    def describe(self) -> str:
        if self.method == "ed25519":
            return f"Ed25519 key {self.ed25519_key}"
        if self.method == "sigstore":
            return f"Sigstore identity {self.identity} (issuer {self.issuer})"
        return "no signer configured"


@dataclass
class SignoffStatus:
    role: str
    state: str  # "signed" | "pending" | "rejected"
    who: str = ""
    when: str = ""
    how: str = ""
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "state": self.state, "who": self.who, "when": self.when,
                "how": self.how, "reason": self.reason}


def role_slug(role: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", role.lower()).strip("-") or "role"


def digest_text(report_sha256: str) -> bytes:
    """The exact bytes of ``report.digest``: what every signer approves."""
    return f"sha256:{report_sha256}\n".encode()


# ------------------------------------------------------------------ configuration
def _find_config(store_dir: Path | None, path: Path | None) -> tuple[dict[str, Any], Path | None]:
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SignoffConfigError(f"{path}: cannot read: {exc}") from exc
        return _mapping(data, str(path)), path.parent
    if store_dir is not None:
        candidate = store_dir / SIGNOFF_CONFIG
        if candidate.is_file():
            return _find_config(None, candidate)
        main = store_dir / "depository.yaml"
        if main.is_file():
            try:
                data = yaml.safe_load(main.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError):
                data = {}
            cert = data.get("certification") if isinstance(data, dict) else None
            if isinstance(cert, dict):
                return cert, store_dir
    return {}, None


def _mapping(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SignoffConfigError(f"{where}: must be a mapping with a 'signers' list")
    return data


def load_signoff_config(
    store_dir: Path | None, path: Path | None = None,
) -> tuple[list[SignerSpec], dict[str, bytes], dict[str, Any]]:
    """(required signers, trust configs by SHA-256, other settings such as
    ``validity_months``). Without a configuration, the five roles are required with no
    signer configured (they stay pending)."""
    data, base = _find_config(store_dir, path)
    responsibilities = dict(ROLES)
    trust: dict[str, bytes] = {}
    settings = {k: v for k, v in data.items() if k in ("validity_months", "organisation",
                                                          "accept_extrapolated")}
    raw = data.get("signers")
    if raw is None:
        return ([SignerSpec(role=r, responsibility=resp, name="", method=None)
                 for r, resp in ROLES], trust, settings)
    if not isinstance(raw, list) or not raw:
        raise SignoffConfigError("signers: must be a non-empty list")

    def read_trust(ref: Any, where: str) -> str:
        if not isinstance(ref, str) or not ref:
            raise SignoffConfigError(f"{where}: must name a trust-config JSON file")
        p = (base / ref) if base is not None and not Path(ref).is_absolute() else Path(ref)
        try:
            blob = p.read_bytes()
        except OSError as exc:
            raise SignoffConfigError(f"{where}: cannot read {p}: {exc.strerror}") from exc
        check_trust_config(blob, where)
        digest = hashlib.sha256(blob).hexdigest()
        trust[digest] = blob
        return digest

    default_trust = data.get("sigstore_trust_config")
    specs: list[SignerSpec] = []
    for n, entry in enumerate(raw):
        where = f"signers[{n}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("role"), str):
            raise SignoffConfigError(f"{where}: needs a 'role'")
        role = entry["role"].strip()
        if any(s.role == role for s in specs):
            raise SignoffConfigError(f"{where}: role {role!r} is listed twice")
        name = str(entry.get("name", ""))
        resp = str(entry.get("responsibility", responsibilities.get(role, "")))
        key = entry.get("ed25519_key")
        if key is None and entry.get("ed25519_key_file"):
            kf = Path(str(entry["ed25519_key_file"]))
            kf = base / kf if base is not None and not kf.is_absolute() else kf
            try:
                key = kf.read_text().strip()
            except OSError as exc:
                raise SignoffConfigError(f"{where}: cannot read {kf}: {exc.strerror}") from exc
        sig = entry.get("sigstore")
        if (key is None) == (sig is None):
            raise SignoffConfigError(
                f"{where} ({role}): give exactly one of 'ed25519_key' (or 'ed25519_key_file') "
                "and 'sigstore: {identity, issuer}'")
        if key is not None:
            try:
                parse_verifier_key(str(key).strip())
            except VerificationError as exc:
                raise SignoffConfigError(f"{where} ({role}): ed25519_key: {exc}") from exc
            specs.append(SignerSpec(role, resp, name, "ed25519", ed25519_key=str(key).strip()))
            continue
        if not isinstance(sig, dict) or not sig.get("identity") or not sig.get("issuer"):
            raise SignoffConfigError(f"{where} ({role}): sigstore needs 'identity' and 'issuer'")
        ref = sig.get("trust_config", default_trust)
        digest = read_trust(ref, f"{where}.sigstore.trust_config") if ref else None
        specs.append(SignerSpec(role, resp, name, "sigstore", identity=str(sig["identity"]),
                                issuer=str(sig["issuer"]), trust_config_sha256=digest))
    return specs, trust, settings


def check_trust_config(blob: bytes, where: str) -> None:
    try:
        doc = json.loads(blob)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SignoffConfigError(f"{where}: not JSON: {exc}") from exc
    if not isinstance(doc, dict) or not ("trustedRoot" in doc or "tlogs" in doc):
        raise SignoffConfigError(f"{where}: not a Sigstore trust config or trusted root")


# ------------------------------------------------------------------ making sign-offs
def ed25519_statement(report_sha256: str, role: str, when: datetime) -> bytes:
    """The note text an Ed25519 signer signs: the digest, the role and the time."""
    t = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f"{STATEMENT_HEADER}\nreport sha256:{report_sha256}\nrole {role}\ntime {t}\n"
            ).encode()


def make_ed25519_signoff(report_sha256: str, role: str, signer_key: str,
                         now: datetime | None = None) -> dict[str, Any]:
    """A sign-off record signed with an Ed25519 signer key (``PRIVATE+KEY+...``)."""
    when = now or datetime.now(UTC)
    try:
        note = sign_note(ed25519_statement(report_sha256, role, when), signer_key.strip())
        vkey = verifier_key_from_signer(signer_key.strip())
    except SigningKeyError as exc:
        raise SignoffError(f"the signer key cannot sign: {exc}") from exc
    return {"role": role, "method": "ed25519", "note": note.decode(), "signer_key": vkey}


def make_sigstore_signoff(role: str, bundle: bytes, trust_config: bytes | None
                          ) -> dict[str, Any]:
    try:
        parsed = json.loads(bundle)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SignoffError(f"the Sigstore bundle is not JSON: {exc}") from exc
    out: dict[str, Any] = {"role": role, "method": "sigstore", "bundle": parsed}
    if trust_config is not None:
        check_trust_config(trust_config, "--trust-config")
        out["trust_config"] = json.loads(trust_config)
        out["trust_config_sha256"] = hashlib.sha256(trust_config).hexdigest()
    return out


# ------------------------------------------------------------------ verification
def verify_signoff(
    spec: SignerSpec, record: Mapping[str, Any] | None, report_sha256: str,
    trust_configs: Mapping[str, bytes],
) -> SignoffStatus:
    """Verify one role's sign-off offline; never raises for a bad sign-off."""
    if record is None:
        reason = "no signer configured for this role" if spec.method is None else \
            "not signed yet"
        return SignoffStatus(spec.role, "pending", reason=reason)
    try:
        if record.get("role") != spec.role:
            raise SignoffError(f"the sign-off is for role {record.get('role')!r}")
        if spec.method is None:
            raise SignoffError("no signer is configured for this role, so no sign-off can "
                               "be accepted")
        if record.get("method") != spec.method:
            raise SignoffError(f"the role requires a {spec.method} sign-off, got "
                               f"{record.get('method')!r}")
        if spec.method == "ed25519":
            return _verify_ed25519(spec, record, report_sha256)
        return _verify_sigstore(spec, record, report_sha256, trust_configs)
    except SignoffError as exc:
        return SignoffStatus(spec.role, "rejected", reason=str(exc))


def _verify_ed25519(spec: SignerSpec, record: Mapping[str, Any], report_sha256: str
                    ) -> SignoffStatus:
    assert spec.ed25519_key is not None
    note = str(record.get("note", "")).encode()
    try:
        verified = verify_note(note, [spec.ed25519_key])
    except VerificationError as exc:
        claimed = str(record.get("signer_key", "")) or "an unknown key"
        if claimed.split("+")[:2] != spec.ed25519_key.split("+")[:2]:
            raise SignoffError(f"signed by {claimed.split('+')[0]}+"
                               f"{claimed.split('+')[1] if '+' in claimed else '?'}, which is "
                               f"not the key configured for {spec.role} "
                               f"({'+'.join(spec.ed25519_key.split('+')[:2])}): unknown key"
                               ) from exc
        raise SignoffError(f"the signature does not verify: {exc}") from exc
    lines = verified.text.decode().splitlines()
    fields = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
    if not lines or lines[0] != STATEMENT_HEADER:
        raise SignoffError("the signed text is not a certification sign-off statement")
    if fields.get("report") != f"sha256:{report_sha256}":
        raise SignoffError(f"the sign-off approves {fields.get('report')}, not this report "
                           f"(sha256:{report_sha256})")
    if fields.get("role") != spec.role:
        raise SignoffError(f"the signed statement is for role {fields.get('role')!r}")
    name = spec.ed25519_key.split("+")[0]
    return SignoffStatus(
        spec.role, "signed", who=spec.name or name, when=fields.get("time", ""),
        how=f"Ed25519 signed note verified with {'+'.join(spec.ed25519_key.split('+')[:2])} "
            "(time as stated in the signed text)")


def _trusted_root(spec: SignerSpec, record: Mapping[str, Any],
                  trust_configs: Mapping[str, bytes]) -> tuple[Any, str, str]:
    from sigstore.models import ClientTrustConfig, TrustedRoot
    from sigstore_models.trustroot.v1 import TrustedRoot as _InnerRoot

    note = ""
    if spec.trust_config_sha256 is not None:
        blob = trust_configs.get(spec.trust_config_sha256)
        if blob is None:
            raise SignoffError(f"the pinned trust config sha256:{spec.trust_config_sha256} "
                               "is not available")
        digest = spec.trust_config_sha256
    elif record.get("trust_config") is not None:
        blob = json.dumps(record["trust_config"]).encode()
        digest = str(record.get("trust_config_sha256", hashlib.sha256(blob).hexdigest()))
        note = " (trust config supplied with the sign-off, not pinned by the report)"
    else:
        raise SignoffError("no Sigstore trust config: pin one in the sign-off configuration "
                           "or pass --trust-config")
    doc = json.loads(blob)
    try:
        if "trustedRoot" in doc:
            root = ClientTrustConfig.from_json(blob.decode()).trusted_root
        else:
            root = TrustedRoot(_InnerRoot.from_json(blob))
    except Exception as exc:  # sigstore raises several types for a bad document
        raise SignoffError(f"the trust config cannot be loaded: {exc}") from exc
    return root, digest, note


def _verify_sigstore(spec: SignerSpec, record: Mapping[str, Any], report_sha256: str,
                     trust_configs: Mapping[str, bytes]) -> SignoffStatus:
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle
    from sigstore.verify import Verifier
    from sigstore.verify.policy import Identity

    assert spec.identity is not None and spec.issuer is not None
    root, digest, note = _trusted_root(spec, record, trust_configs)
    try:
        bundle = Bundle.from_json(json.dumps(record.get("bundle")))
    except (SigstoreError, ValueError) as exc:
        raise SignoffError(f"the Sigstore bundle is malformed: {exc}") from exc
    data = digest_text(report_sha256)
    try:
        Verifier(trusted_root=root).verify_artifact(
            data, bundle, Identity(identity=spec.identity, issuer=spec.issuer))
    except (SigstoreError, ValueError) as exc:
        text = str(exc)
        if "digest mismatch" in text.lower() or "signature is invalid" in text.lower():
            text = f"the bundle does not sign this report's digest ({text})"
        raise SignoffError(f"Sigstore verification failed: {text}") from exc
    entry = bundle.log_entry._inner
    when = datetime.fromtimestamp(int(entry.integrated_time), tz=UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ") if entry.integrated_time else ""
    return SignoffStatus(
        spec.role, "signed", who=spec.name or spec.identity, when=when,
        how=(f"Sigstore bundle for {spec.identity} (issuer {spec.issuer}): certificate chain, "
             f"SCT, transparency-log inclusion proof and signed entry timestamp verified "
             f"offline against trust config sha256:{digest[:16]}…{note}"),
        details={"log_index": int(entry.log_index)})


def verify_all(specs: Sequence[SignerSpec], records: Mapping[str, Mapping[str, Any]],
               report_sha256: str, trust_configs: Mapping[str, bytes]) -> list[SignoffStatus]:
    return [verify_signoff(s, records.get(s.role), report_sha256, trust_configs) for s in specs]
