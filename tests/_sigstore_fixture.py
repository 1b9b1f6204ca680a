"""Fixtures for the certification tests.

* A private Sigstore instance (``LocalSigstore``: its own Fulcio CA, CT log key and Rekor
  log key, built with ``cryptography`` alone) whose bundles unmodified sigstore-python
  verifies offline, and helpers to damage a bundle in the ways that must be rejected.
* A small store for the four products, and load results (``results.json``) written by
  hand to the load-test contract.
* A loopback RFC 3161 timestamp server (pyHanko's test TSA behind ``http.server``) for
  ``finalize --tsa URL``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from depository.certification.local_sigstore import LocalSigstore
from depository.store import Store
from depository.store.config import default_config_dict

IDENTITY = "executor-lane@example.org"
ISSUER = "https://oidc.example.org"

FULL_LIMITS: list[tuple[str, float | None, float, str, str]] = [
    ("artifact-size", 500_000_000, 500_000_000, "bytes", "measured"),
    ("total-storage", 1_000_000_000_000, 1_180_000_000_000, "bytes", "extrapolated"),
    ("concurrent-writers", 100, 100, "writers", "measured"),
    ("write-throughput", 1000, 1412.5, "writes/s", "measured"),
    ("artifact-count", 100_000, 100_000, "artifacts", "measured"),
    ("query-response", 5.0, 0.41, "seconds", "measured"),
    ("audit-trail", None, 2_000_000, "records", "extrapolated"),
]


@pytest.fixture
def sigstore_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep sigstore-python away from the user's caches (it never needs the network)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture(scope="session")
def sigstore_instance() -> LocalSigstore:
    return LocalSigstore.create("sigstore.test")


def damage_bundle(bundle: str, what: str) -> str:
    """Break one verified part of a bundle: 'set' (the signed entry timestamp), 'proof'
    (an inclusion-proof hash), 'checkpoint' (the signed checkpoint), 'signature'."""
    doc: dict[str, Any] = json.loads(bundle)
    entry = doc["verificationMaterial"]["tlogEntries"][0]

    def flip(b64: str) -> str:
        raw = bytearray(base64.b64decode(b64))
        raw[len(raw) // 2] ^= 0x01
        return base64.b64encode(bytes(raw)).decode()

    if what == "set":
        entry["inclusionPromise"]["signedEntryTimestamp"] = flip(
            entry["inclusionPromise"]["signedEntryTimestamp"])
    elif what == "proof":
        entry["inclusionProof"]["hashes"][0] = flip(entry["inclusionProof"]["hashes"][0])
    elif what == "checkpoint":
        env = entry["inclusionProof"]["checkpoint"]["envelope"]
        text, sig = env.rsplit(" ", 1)
        entry["inclusionProof"]["checkpoint"]["envelope"] = f"{text} {flip(sig.strip())}\n"
    elif what == "signature":
        doc["messageSignature"]["signature"] = flip(doc["messageSignature"]["signature"])
    else:
        raise ValueError(what)
    return json.dumps(doc)


def make_store(path: Path, *, artifacts: bool = True) -> Path:
    """A store for the four demo products with a few inline and file artifacts."""
    cfg = default_config_dict("cert.test/log")
    cfg["checkpoint"] = {"every_entries": 1000, "every_ms": 60_000}
    with Store.init(path, config=cfg) as s:
        if artifacts:
            for i, p in enumerate(sorted(cfg["products"])):
                s.put(p, f"docs/{i}.txt", f"{p} document {i}".encode(),
                      metadata={"n": i}, provenance={"author": f"team-{p}"})
            s.put("ai-avatar", "media/clip.bin", b"\x00\x01" * 60_000,
                  provenance={"author": "camera-7"})
            s.checkpoint()
    return path


# The commit the fixture's load results and certifications claim: certification binds the
# results to the certifying code's commit, injected here so tests do not depend on git.
COMMIT = "c0ffee" * 6 + "c0ff"


def _extrapolation(status: str = "supported") -> dict[str, Any]:
    return {"label": "EXTRAPOLATED beyond the largest measurement, not measured",
            "model": "write p99 (ms) = a + b * log10(artifacts), least squares",
            "points": [{"x": 1000, "y": 20.0}, {"x": 10000, "y": 22.5},
                       {"x": 100000, "y": 25.1}],
            "uncertainty": {"confidence": 0.95, "low": 30.1, "high": 38.4},
            "predicted": 34.2, "status": status,
            "reason": "write p99 (ms) at 1e+09 artifacts: 34.2 (95 % up to 38.4) < 100"}


def write_results(directory: Path, *, overrides: dict[str, dict[str, Any]] | None = None,
                  drop: tuple[str, ...] = (), chart: bool = True, profile: str = "certify",
                  commit: str | None = COMMIT, dirty: bool = False) -> Path:
    """A load-test results.json valid against the results schema (plus an SVG chart)."""
    directory.mkdir(parents=True, exist_ok=True)
    limits = []
    when = "2026-11-20T10:00:00Z"
    for lid, target, measured, unit, method in FULL_LIMITS:
        if lid in drop:
            continue
        entry: dict[str, Any] = {
            "id": lid, "title": lid, "description": lid, "target": target, "unit": unit,
            "profile_target": target, "measured": measured, "pass": True,
            "status": "measured", "figure": method, "method": f"the {lid} suite",
            "profile": profile, "load": {},
            "latency_ms": {"p50": 4.2, "p95": 18.0, "p99": 41.5, "max": 80.0},
            "throughput": None, "requests": 100, "errors": 0, "lost": 0, "checks": [],
            "details": {"extrapolation": _extrapolation()} if method == "extrapolated"
            else {},
            "reason": None, "raw": [], "chart": None, "started": when, "ended": when,
            "seconds": 1.0,
        }
        if chart and lid == "write-throughput":
            (directory / "charts").mkdir(exist_ok=True)
            (directory / "charts" / "write-throughput.svg").write_text(
                "<svg xmlns='http://www.w3.org/2000/svg' width='200' height='40'>"
                "<rect width='150' height='20' fill='#1e88e5'/></svg>")
            entry["chart"] = "charts/write-throughput.svg"
        entry.update((overrides or {}).get(lid, {}))
        limits.append(entry)
    not_measured = [{"id": e["id"], "reason": e["reason"]} for e in limits
                    if e["status"] != "measured"]
    complete = not not_measured and not drop
    doc = {"schema_version": 1, "tool": "depository loadtest", "profile": profile,
           "complete": complete, "pass": complete and all(e["pass"] for e in limits),
           "started": when, "ended": when, "seconds": 7.0,
           "target": {"mode": "spawn", "url": None, "store": None},
           "command": ["depository", "loadtest", "run", "--spawn", "--profile", profile],
           "environment": {"cpu": "2 cores", "memory": "24 GiB", "cpu_model": "test",
                           "cpu_count": 2, "memory_bytes": 24 << 30, "os": "Linux",
                           "python": "3.11", "sqlite": "3.40", "packages": {},
                           "git_commit": commit, "git_dirty": dirty},
           "limits": limits, "not_measured": not_measured, "error": None}
    (directory / "results.json").write_text(json.dumps(doc, indent=1))
    return directory


class _TSAHandler(BaseHTTPRequestHandler):
    stamper: Any = None

    def do_POST(self) -> None:
        from asn1crypto import tsp

        req = tsp.TimeStampReq.load(self.rfile.read(int(self.headers["Content-Length"])))
        resp = self.stamper.request_tsa_response(req)
        body = resp.dump()
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def loopback_tsa(stamper: Any) -> Iterator[str]:
    """An RFC 3161 TSA on 127.0.0.1 for the duration; yields its URL."""
    handler = type("Handler", (_TSAHandler,), {"stamper": stamper})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
