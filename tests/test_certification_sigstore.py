"""Sigstore sign-offs without the network: a private Sigstore instance (own Fulcio CA, CT
log key, Rekor key, trust config) produces bundles that unmodified sigstore-python verifies
offline; every damaged or mismatched bundle is rejected with the reason."""

from __future__ import annotations

import hashlib
import json

import pytest
from _sigstore_fixture import IDENTITY, ISSUER, damage_bundle, sigstore_env, sigstore_instance

from depository.certification.local_sigstore import LocalSigstore
from depository.certification.signoffs import (
    SignerSpec,
    digest_text,
    make_sigstore_signoff,
    verify_signoff,
)

__all__ = ["sigstore_env", "sigstore_instance"]  # fixtures
SHA = hashlib.sha256(b"report").hexdigest()
DATA = digest_text(SHA)


def _spec(inst: LocalSigstore, identity: str = IDENTITY, issuer: str = ISSUER
          ) -> tuple[SignerSpec, dict[str, bytes]]:
    blob = inst.trust_config_json().encode()
    digest = hashlib.sha256(blob).hexdigest()
    return (SignerSpec("Executor Lane", "governance validation", "Lane", "sigstore",
                       identity=identity, issuer=issuer, trust_config_sha256=digest),
            {digest: blob})


def test_unmodified_sigstore_python_verifies_offline(sigstore_env: None,
                                                     sigstore_instance: LocalSigstore) -> None:
    from sigstore.models import Bundle, ClientTrustConfig
    from sigstore.verify import Verifier
    from sigstore.verify.policy import Identity

    bundle = Bundle.from_json(sigstore_instance.sign(DATA, identity=IDENTITY, issuer=ISSUER))
    root = ClientTrustConfig.from_json(sigstore_instance.trust_config_json()).trusted_root
    Verifier(trusted_root=root).verify_artifact(DATA, bundle,
                                                Identity(identity=IDENTITY, issuer=ISSUER))
    # The log entry carries an inclusion proof with a signed checkpoint and an SET.
    entry = bundle.log_entry._inner
    assert entry.inclusion_proof.checkpoint is not None and entry.inclusion_promise is not None
    assert int(entry.inclusion_proof.tree_size) > int(entry.log_index) >= 5


def test_signoff_verifies_and_reports_who_and_when(sigstore_env: None,
                                                   sigstore_instance: LocalSigstore) -> None:
    spec, trust = _spec(sigstore_instance)
    rec = make_sigstore_signoff(spec.role, sigstore_instance.sign(
        DATA, identity=IDENTITY, issuer=ISSUER).encode(), None)
    st = verify_signoff(spec, rec, SHA, trust)
    assert st.state == "signed" and st.who == "Lane" and st.when.endswith("Z")
    assert "inclusion proof" in st.how and "offline" in st.how


@pytest.mark.parametrize("what,reason", [
    ("set", "inclusion promise"),
    ("proof", "inclusion proof"),
    ("checkpoint", "checkpoint"),
    ("signature", "signature is invalid"),
])
def test_damaged_bundles_are_rejected(sigstore_env: None, sigstore_instance: LocalSigstore,
                                      what: str, reason: str) -> None:
    spec, trust = _spec(sigstore_instance)
    bad = damage_bundle(sigstore_instance.sign(DATA, identity=IDENTITY, issuer=ISSUER), what)
    st = verify_signoff(spec, make_sigstore_signoff(spec.role, bad.encode(), None), SHA, trust)
    assert st.state == "rejected" and reason in st.reason.lower(), st.reason


def test_mismatches_are_rejected_with_the_reason(sigstore_env: None,
                                                 sigstore_instance: LocalSigstore) -> None:
    spec, trust = _spec(sigstore_instance)

    def check(bundle: str, want: str, spec: SignerSpec = spec) -> None:
        st = verify_signoff(spec, make_sigstore_signoff(spec.role, bundle.encode(), None), SHA,
                            trust)
        assert st.state == "rejected" and want in st.reason, st.reason

    check(sigstore_instance.sign(DATA, identity="mallory@example.org", issuer=ISSUER),
          "SANs do not match")
    check(sigstore_instance.sign(DATA, identity=IDENTITY, issuer="https://evil.example"),
          "OIDCIssuer")
    check(sigstore_instance.sign(digest_text("0" * 64), identity=IDENTITY, issuer=ISSUER),
          "does not sign this report")
    check(LocalSigstore.create("rogue.test").sign(DATA, identity=IDENTITY, issuer=ISSUER),
          "certificate chain")
    check(sigstore_instance.sign(DATA, identity="https://ci.example/workflow", issuer=ISSUER),
          "SANs do not match")
    ok = sigstore_instance.sign(DATA, identity=IDENTITY, issuer=ISSUER)
    check(ok, "role requires a ed25519", SignerSpec("Executor Lane", "", "", "ed25519",
                                                    ed25519_key="x+00000000+AQ=="))


def test_trust_config_supplied_with_the_signoff(sigstore_env: None,
                                                sigstore_instance: LocalSigstore) -> None:
    """Without a pinned trust root, the one given at sign-off is used and flagged."""
    spec = SignerSpec("Executor Lane", "", "", "sigstore", identity=IDENTITY, issuer=ISSUER)
    bundle = sigstore_instance.sign(DATA, identity=IDENTITY, issuer=ISSUER).encode()
    none = verify_signoff(spec, make_sigstore_signoff(spec.role, bundle, None), SHA, {})
    assert none.state == "rejected" and "no Sigstore trust config" in none.reason
    rec = make_sigstore_signoff(spec.role, bundle, sigstore_instance.trust_config_json().encode())
    st = verify_signoff(spec, json.loads(json.dumps(rec)), SHA, {})
    assert st.state == "signed" and "not pinned" in st.how
