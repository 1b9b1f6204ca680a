"""RFC 3161 timestamps on evidence packages, against a local test TSA.

The test TSA is OpenSSL's own (``openssl ts -reply``) behind a tiny HTTP server, with a
throw-away CA and TSA certificate: an independent implementation answers our
hand-encoded request, and ``openssl ts -verify`` independently checks the stored token
against the tag manifest.
"""

from __future__ import annotations

import datetime as dt
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from depository.evidence import EvidenceError, build_request, export_package
from depository.store import Store
from depository.store.config import default_config_dict
from depository.verifier.package import (
    TimestampError,
    package_outcome,
    package_result,
    parse_timestamp_response,
    verify_timestamp,
)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

_CNF = """[ tsa ]
default_tsa = tsa1
[ tsa1 ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.2
certs = $dir/tsa.pem
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    d = tmp_path_factory.mktemp("tsa")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Test TSA Root"))
          .issuer_name(_name("Test TSA Root")).public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder().subject_name(_name("Test TSA")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                           critical=True)
            .sign(ca_key, hashes.SHA256()))
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "tsa.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "tsa.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (d / "serial").write_text("01\n")
    (d / "tsa.cnf").write_text(_CNF.format(dir=d))
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                (d / "req.tsq").write_bytes(body)
                proc = subprocess.run(
                    ["openssl", "ts", "-reply", "-config", str(d / "tsa.cnf"),
                     "-queryfile", str(d / "req.tsq"), "-out", str(d / "resp.tsr")],
                    capture_output=True)
                resp = (d / "resp.tsr").read_bytes() if proc.returncode == 0 else b""
            self.send_response(200 if resp else 500)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(resp)))
            self.end_headers()
            self.wfile.write(resp)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tsa", d
    finally:
        server.shutdown()
        server.server_close()


def test_request_is_valid_rfc3161_for_openssl(tmp_path: Path) -> None:
    req = tmp_path / "r.tsq"
    req.write_bytes(build_request(b"hello\n", nonce=0x1234_5678_9ABC))
    text = subprocess.run(["openssl", "ts", "-query", "-in", str(req), "-text"], check=True,
                          capture_output=True, text=True).stdout
    assert "Hash Algorithm: sha256" in text and "Certificate required: yes" in text
    assert "0x123456789ABC" in text.replace(" ", "")


def test_timestamped_package(tsa: tuple[str, Path], tmp_path: Path) -> None:
    url, d = tsa
    store = Store.init(tmp_path / "store", config=default_config_dict("tsa.example/log"))
    try:
        for i in range(3):
            store.put("gurukul", f"f{i}.txt", f"file {i}".encode())
        store.place_hold(matter="M-T", reason="timestamp test", actor="legal:ann",
                         product="gurukul")
        res = export_package(store, matter="M-T", out=tmp_path / "pkg", reason="r",
                             actor="legal:ann", tsa_url=url)
        assert res.timestamped
        with pytest.raises(EvidenceError, match="timestamp authority"):
            export_package(store, matter="M-T", out=tmp_path / "pkg2", reason="r",
                           actor="legal:ann", tsa_url="http://127.0.0.1:9/none",
                           tsa_timeout=2)
        assert not (tmp_path / "pkg2").exists()
        vkey = store.verifier_key
    finally:
        store.close()
    pkg = tmp_path / "pkg"
    tsr = pkg / "tagmanifest.tsr"
    assert tsr.is_file()
    # OpenSSL agrees the token timestamps the tag manifest and chains to the CA.
    subprocess.run(["openssl", "ts", "-verify", "-data", str(pkg / "tagmanifest-sha256.txt"),
                    "-in", str(tsr), "-CAfile", str(d / "ca.pem")], check=True,
                   capture_output=True)
    plain = package_result(pkg, [vkey])
    assert plain.ok, [str(p) for p in plain.problems]
    assert plain.summary["timestamp"]["trusted"] is False
    trusted = package_result(pkg, [vkey], tsa_certs=[(d / "ca.pem").read_bytes()])
    assert trusted.ok and trusted.summary["timestamp"]["trusted"] is True
    assert trusted.summary["timestamp"]["signer"] == "CN=Test TSA"
    outcome = package_outcome(str(pkg), [vkey], tsa_certs=[str(d / "tsa.pem")])
    assert outcome.ok
    # a TSA we do not trust
    other = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    stranger = (x509.CertificateBuilder().subject_name(_name("Other")).issuer_name(_name("Other"))
                .public_key(other.public_key()).serial_number(9)
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=1)).sign(other, hashes.SHA256()))
    res = package_result(pkg, [vkey], tsa_certs=[stranger.public_bytes(
        serialization.Encoding.PEM)])
    assert not res.ok and [p.path for p in res.problems] == ["tagmanifest.tsr"]
    # removing the timestamp is caught: the log-signed export record names the TSA
    stripped = tmp_path / "stripped"
    shutil.copytree(pkg, stripped)
    (stripped / "tagmanifest.tsr").unlink()
    res = package_result(stripped, [vkey])
    assert not res.ok and "tagmanifest.tsr" in [p.path for p in res.problems]
    # a token altered by one byte no longer verifies, and the verifier names it
    data = bytearray(tsr.read_bytes())
    tok = parse_timestamp_response(bytes(data))
    pos = bytes(data).index(tok.imprint)
    data[pos] ^= 1
    tsr.write_bytes(bytes(data))
    res = package_result(pkg, [vkey])
    assert not res.ok and "tagmanifest.tsr" in [p.path for p in res.problems]


def test_timestamp_of_other_data_is_refused(tsa: tuple[str, Path]) -> None:
    from depository.evidence._tsa import timestamp

    url, _ = tsa
    resp = timestamp(b"one\n", url)
    info = verify_timestamp(resp, b"one\n")
    assert info.hash_algorithm == "sha256" and info.policy == "1.2.3.4.1"
    with pytest.raises(TimestampError, match="imprint"):
        verify_timestamp(resp, b"two\n")
    with pytest.raises(TimestampError):
        verify_timestamp(b"\x30\x03\x02\x01\x02", b"one\n")  # status 2: rejection
