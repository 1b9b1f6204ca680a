"""The main job on the embedded default: ``make demo``.

One certification cycle, end to end, on SQLite and local files: create a store for the
four products, ingest sample artifacts, place a legal hold, serve the HTTP API and write
through it, verify everything offline as an auditor would, export an evidence package,
run the quick load profile, certify, collect sign-offs, sign the PDF and verify it.
Everything lands under ``--out`` (``demo-out/``).
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from depository.certification.demo import certification_cycle
from depository.service import create_app
from depository.store import Store

ORIGIN = "demo.depository.example/log"
_SAMPLES: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "ai-assistant": [
        (f"conversations/2026/11/c-{i:04d}.json", "application/json",
         {"conversation_id": f"c-{i:04d}", "model": "assistant-v3", "turns": 4 + i % 9})
        for i in range(60)
    ],
    "ai-avatar": [
        (f"media/avatar-{i:03d}.meta.json", "application/json",
         {"avatar_id": f"av-{i:03d}", "constraint": "safe-for-minors" if i % 2 else "general"})
        for i in range(40)
    ],
    "gurukul": [
        (f"courses/algebra/lesson-{i:02d}.md", "text/markdown",
         {"course": "algebra", "lesson": i, "author": f"teacher-{i % 3}"})
        for i in range(40)
    ],
    "enforcement": [
        (f"decisions/2026/d-{i:04d}.json", "application/json",
         {"decision_id": f"D-{i:04d}", "outcome": "upheld" if i % 3 else "overturned"})
        for i in range(60)
    ],
}


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _run(args: list[str], *, show: bool = True, ok: tuple[int, ...] = (0,)) -> str:
    shown = " ".join(a if len(a) < 90 else a[:40] + "…" for a in args)
    print(f"$ {shown}", flush=True)
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    out = done.stdout
    if show:
        for line in out.splitlines():
            print(f"    {line}")
    if done.returncode not in ok:
        print(done.stderr, file=sys.stderr)
        raise SystemExit(f"demo: step failed (exit {done.returncode}): {shown}")
    return out


def _content(product: str, name: str, i: int) -> bytes:
    base = json.dumps({"product": product, "name": name, "n": i}).encode() + b"\n"
    # Every tenth artifact is large enough to be stored as a blob file, not inline.
    return base * (2000 if i % 10 == 0 else 3)


def _ingest(store: Store) -> dict[str, Any]:
    receipts = {}
    for product, items in _SAMPLES.items():
        futures = [
            store.put_async(product, name, _content(product, name, i), metadata=meta,
                            media_type=media, actor=f"ingest@{product}",
                            provenance={"source": f"{product}-service", "build": "demo"})
            for i, (name, media, meta) in enumerate(items)
        ]
        receipts[product] = [f.result() for f in futures]
    return receipts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _http(method: str, url: str, token: str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers={
        "Authorization": f"Bearer {token}", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def _serve_and_write(store_dir: Path, tokens: dict[str, str], out: Path) -> None:
    port = _free_port()
    log = open(out / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "depository", "serve", "--store", str(store_dir), "--port",
         str(port)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(base + "/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("demo: the server did not start (see server.log)")
        print(f"serving {store_dir} on {base}")
        body = b'{"decision_id": "D-9001", "outcome": "upheld"}\n'
        status, data = _http(
            "PUT", f"{base}/v1/products/enforcement/artifacts/decisions/2026/d-9001.json"
            "?wait=checkpoint", tokens["enforcement"], body,
            {"Depository-Metadata": json.dumps({"decision_id": "D-9001", "outcome": "upheld"}),
             "Depository-Provenance": json.dumps({"source": "enforcement-engine"}),
             "Content-Type": "application/json"})
        receipt = json.loads(data)
        print(f"PUT /v1/products/enforcement/artifacts/decisions/2026/d-9001.json -> {status}"
              f" (log index {receipt.get('log_index')})")
        status, _ = _http("GET", f"{base}/v1/products/gurukul/artifacts/"
                          "courses/algebra/lesson-01.md", tokens["enforcement"])
        print(f"GET another product's artifact with the enforcement token -> {status} "
              "(isolation: indistinguishable from missing)")
        status, cp = _http("GET", f"{base}/v1/log/checkpoint", tokens["enforcement"])
        size = cp.split(b"\n")[1].decode()
        print(f"GET /v1/log/checkpoint -> {status}: size {size}")
    finally:
        proc.send_signal(signal.SIGINT)  # graceful: drains the writer, signs a checkpoint
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit code."""
    ap = argparse.ArgumentParser(description="Depository demo: one certification cycle.")
    ap.add_argument("--out", type=Path, default=Path("demo-out"))
    args = ap.parse_args(argv)
    out: Path = args.out.resolve()
    t0 = time.monotonic()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    store_dir, auditor = out / "store", out / "auditor"
    auditor.mkdir()
    py = sys.executable
    verifier = [py, "-m", "depository.verifier"]

    _say("1. create a store for the four products")
    store = Store.init(store_dir, origin=ORIGIN, actor="admin@demo")
    vkey = store.verifier_key
    (auditor / "log.vkey").write_text(vkey + "\n")
    print(f"store {store_dir}; log verifier key (given to auditors): {vkey}")

    _say("2. ingest sample artifacts (group commit: durable before acknowledged)")
    receipts = _ingest(store)
    for product, rs in receipts.items():
        print(f"  {product:<13} {len(rs)} artifacts, log indexes {rs[0].log_index}.."
              f"{rs[-1].log_index}")
    first_cp = store.checkpoint()
    (auditor / "checkpoint-1.txt").write_bytes(first_cp)
    first_size = first_cp.split(b"\n")[1].decode()
    print(f"signed checkpoint of size {first_size}; the auditor saves it")

    _say("3. retention, a legal hold, tokens")
    decision = receipts["enforcement"][7]
    later = datetime.now(UTC) + timedelta(days=365 * 10)
    store.extend_retention("enforcement", decision.artifact_id, later, actor="legal@demo",
                           reason="regulator request R-17")
    hold = store.place_hold(matter="MATTER-2026-001", reason="appeal of decision D-0007",
                            actor="legal@demo", product="enforcement",
                            since=datetime(2026, 1, 1, tzinfo=UTC))
    print(f"retention of {decision.artifact_id} extended; hold {hold.id} on enforcement "
          f"(matter {hold.matter})")
    tokens = {}
    for product in _SAMPLES:
        secret, _tok = store.create_token(role="writer", product=product, actor="admin@demo",
                                         note="demo writer")
        tokens[product] = secret
    secret, _ = store.create_token(role="auditor", actor="admin@demo", note="demo auditor")
    tokens["auditor"] = secret
    print(f"issued {len(tokens)} tokens (stored as hashes only)")
    store.close()

    _say("4. serve the HTTP API and write through it")
    _serve_and_write(store_dir, tokens, out)

    _say("5. proofs: a record's tlog-proof and a consistency proof between checkpoints")
    with Store.open(store_dir, readonly=True) as ro:
        size2, cp2 = ro.latest_checkpoint()
        size1 = int(first_cp.split(b"\n")[1])
        (auditor / "checkpoint-2.txt").write_bytes(cp2)
        idx = decision.log_index
        (auditor / f"record-{idx}.json").write_bytes(dict(ro.log_entries(idx, idx + 1))[idx])
        (auditor / f"record-{idx}.tlog-proof").write_bytes(ro.proof_file(idx, size2))
        cons = ro.consistency_proof(size1, size2)
        (auditor / f"consistency-{size1}-{size2}.txt").write_text(
            "".join(base64.b64encode(h).decode() + "\n" for h in cons))
        root1, root2 = ro.root_at(size1).hex(), ro.root_at(size2).hex()

    _say("6. the auditor verifies offline (verifier dependencies only)")
    k = str(auditor / "log.vkey")
    _run([*verifier, "note", str(auditor / "checkpoint-2.txt"), "--key", k])
    _run([*verifier, "proof", str(auditor / f"record-{idx}.tlog-proof"), "--leaf",
          str(auditor / f"record-{idx}.json"), "--key", k])
    _run([*verifier, "consistency", "--size1", str(size1), "--size2", str(size2),
          "--root1", root1, "--root2", root2, "--proof",
          str(auditor / f"consistency-{size1}-{size2}.txt")])
    _run([*verifier, "store", str(store_dir), "--key", k, "--since-checkpoint",
          str(auditor / "checkpoint-1.txt"), "--jobs", "2"])

    _say("7. legal exports an evidence package for the matter and the recipient verifies it")
    package = out / "evidence" / "MATTER-2026-001.zip"
    package.parent.mkdir()
    _run([py, "-m", "depository", "evidence", "export", "--store", str(store_dir),
          "--matter", hold.matter, "--hold", hold.id, "--out", str(package),
          "--actor", "legal@demo", "--reason", "production to opposing counsel"], show=False)
    evidence_vkey = store_dir / "keys" / "evidence.vkey"
    _run([*verifier, "package", str(package), "--key", k, "--evidence-key",
          str(evidence_vkey)])

    loadtest = out / "loadtest"
    _say("8. the quick load profile against a spawned store and server (~3 min)")
    # Exit 1 means a limit was measured and missed: the report shows it, the demo goes on.
    _run([py, "-m", "depository", "loadtest", "run", "--spawn", "--profile", "quick",
          "--out", str(loadtest)], show=False, ok=(0, 1))
    _run([py, "-m", "depository", "loadtest", "report", str(loadtest)], ok=(0, 1))

    _say("9. certify: executed checks, load results, sign-offs, signed PDF/A, offline check")
    print(f"$ certification cycle --store {store_dir} --results {loadtest} "
          f"--out {out / 'certification'}", flush=True)
    if certification_cycle(store_dir, loadtest, out / "certification",
                           service_factory=create_app) != 0:
        raise SystemExit("demo: step failed: the certification cycle did not verify")

    _say(f"done in {time.monotonic() - t0:.0f} s; everything is under {out}/")
    for label, path in [
        ("store", store_dir), ("auditor's files", auditor), ("evidence package", package),
        ("load-test results", loadtest / "results.json"),
        ("signed certification report", out / "certification" / "report.pdf"),
    ]:
        print(f"  {label:<28} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
