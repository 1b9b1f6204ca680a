"""The certification part of ``make demo``: certify a demo store, collect demo sign-offs
(four Ed25519 signers and one through a private, synthetic Sigstore instance), sign the PDF
with a local demo CA (PAdES B-T, timestamped by a local test TSA), and verify it offline.

``make demo`` (``depository/demo.py``) calls :func:`certification_cycle` with the HTTP
service's app factory: the service sits above this package (docs/adr/0006-layers.md).

Everything it creates is for demonstration only: the keys, the CA and the Sigstore
instance are generated on the spot and are trusted by nobody else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from depository.certification.content import ROLES
from depository.certification.local_sigstore import LocalSigstore
from depository.certification.pdf import create_demo_ca, dummy_timestamper
from depository.certification.report import finalize, run_certification, sign_off
from depository.certification.signoffs import SIGNOFF_CONFIG, role_slug
from depository.certification.verify import verify_report
from depository.signing import generate_key
from depository.store import Store

__all__ = ["certification_cycle", "write_demo_signoffs"]

SIGSTORE_ROLE = "Executor Lane"
SIGSTORE_IDENTITY = "executor-lane@demo.depository.example"
SIGSTORE_ISSUER = "https://oidc.demo.depository.example"


def write_demo_signoffs(store_dir: Path, keys_dir: Path) -> tuple[dict[str, str], LocalSigstore]:
    """Demo signer keys (Ed25519) for four roles, a synthetic Sigstore instance for the
    fifth, and ``STORE/certification/signoffs.yaml`` naming them. Returns the Ed25519
    signer keys by role and the Sigstore instance."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    instance = LocalSigstore.create("sigstore.demo.depository.example")
    instance.save(keys_dir / "sigstore-instance")
    signers: list[dict[str, object]] = []
    secret: dict[str, str] = {}
    for role, responsibility in ROLES:
        if role == SIGSTORE_ROLE:
            signers.append({"role": role, "name": "Executor Lane (demo)",
                            "responsibility": responsibility,
                            "sigstore": {"identity": SIGSTORE_IDENTITY, "issuer": SIGSTORE_ISSUER,
                                         "trust_config": str((keys_dir / "sigstore-instance" /
                                                              "trust-config.json").resolve())}})
            continue
        signer, vkey = generate_key(f"{role_slug(role)}.demo")
        path = keys_dir / f"{role_slug(role)}.key"
        path.write_text(signer + "\n")
        path.chmod(0o600)
        (keys_dir / f"{role_slug(role)}.vkey").write_text(vkey + "\n")
        secret[role] = signer
        signers.append({"role": role, "name": f"{role} (demo)",
                        "responsibility": responsibility, "ed25519_key": vkey})
    config = store_dir / SIGNOFF_CONFIG
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("# Demo sign-off configuration written by `make demo`.\n"
                      + yaml.safe_dump({"validity_months": 6, "signers": signers},
                                       sort_keys=False))
    return secret, instance


def certification_cycle(store_dir: Path, results: Path, out: Path, *,
                        service_factory: Callable[[Store], Any],
                        previous: Path | None = None) -> int:
    """Run the whole cycle; prints each step and returns an exit code."""
    t0 = time.monotonic()
    # The report directory is ``out`` itself (``out/report.pdf``); the demo's CA and
    # signer keys, which a real organisation keeps elsewhere, sit beside it.
    keys_root = out.parent / (out.name + "-keys")
    keys_dir = keys_root / "signers"
    ca = create_demo_ca(keys_root / "demo-ca")
    secret, instance = write_demo_signoffs(store_dir, keys_dir)
    report_dir = out
    print(f"certify run --store {store_dir} --results {results} --out {report_dir}")
    res = run_certification(store_dir, results, report_dir, previous=previous,
                            service_factory=service_factory,
                            progress=lambda m: print(f"  {m}", flush=True))
    print(f"  verdict: {res.data['verdict']['result'].upper()} "
          f"({res.seconds.get('total', 0):.1f} s)")
    for r in res.data["verdict"]["reasons"]:
        print(f"    - {r}")
    for r in res.data["verdict"].get("demo_reasons", []):
        print(f"    - not a certification: {r}")
    digest = (report_dir / "report.digest").read_bytes()
    for role, signer in secret.items():
        st = sign_off(report_dir, role, signer_key=signer)
        print(f"certify sign-off --role {role!r} --key {keys_dir / (role_slug(role) + '.key')}"
              f": signed ({st.how})")
    bundle = instance.sign(digest, identity=SIGSTORE_IDENTITY, issuer=SIGSTORE_ISSUER)
    bundle_path = keys_dir / "executor-lane.sigstore.json"
    bundle_path.write_text(bundle)
    st = sign_off(report_dir, SIGSTORE_ROLE, bundle=bundle.encode())
    print(f"certify sign-off --role {SIGSTORE_ROLE!r} --sigstore-bundle {bundle_path}: "
          f"signed ({st.how})")
    pdf, _ = finalize(report_dir, key_file=ca.signer_key, cert_file=ca.signer_cert,
                      chain=[ca.ca_cert],
                      timestamper=dummy_timestamper(ca.tsa_cert, ca.tsa_key))
    print(f"certify finalize: {pdf} (PAdES B-T, demo CA {ca.ca_cert})")
    vkey = res.data["store"]["verifier_key"]
    outcome = verify_report(pdf, trust=[ca.ca_cert], log_keys=[vkey])
    print(f"certify verify {pdf} --trust {ca.ca_cert} --key <log vkey>")
    print("\n".join("  " + line for line in outcome.human().splitlines()))
    print(f"\ncertification files: {report_dir}/ (report.pdf, report.json, report.oscal.json, "
          f"review.pdf); demo CA and keys: {keys_root} "
          f"({time.monotonic() - t0:.1f} s)")
    # The quick profile makes the report DEMO / NOT A CERTIFICATION (docs/guides/
    # reviewer.md); the cycle itself must verify: authentic, every sign-off in, anchored.
    return 0 if outcome.authentic and outcome.final and outcome.anchored else 1

