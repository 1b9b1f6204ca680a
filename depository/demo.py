"""The main job on the embedded default: ``make demo``.

Builds a log of sample audit records, signs checkpoints, writes proofs, and verifies them
offline with the auditor's verifier run as a separate process.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import subprocess
import sys
from pathlib import Path

from depository.signing import generate_key, sign_note
from depository.verifier import merkle
from depository.verifier.checkpoint import Checkpoint, format_checkpoint, format_proof_file
from depository.verifier.record import Record, encode_record

_PRODUCTS = ("ai-assistant", "ai-avatar", "gurukul", "enforcement")
_ORIGIN = "demo.depository.example/log"


def _records(count: int) -> list[bytes]:
    leaves = []
    for seq in range(count):
        product = _PRODUCTS[seq % len(_PRODUCTS)]
        content = f"{product} sample artifact {seq}".encode()
        rec = Record(
            seq=seq,
            time=f"2026-11-28T12:{seq // 60 % 60:02d}:{seq % 60:02d}.000000Z",
            type="artifact.put",
            actor=f"writer@{product}",
            product=product,
            body={
                "artifact_id": f"{product}/sample-{seq:04d}",
                "name": f"sample-{seq:04d}.txt",
                "sha256": hashlib.sha256(content).hexdigest(),
                "size": len(content),
                "media_type": "text/plain",
                "metadata": {"sample": True},
                "provenance": {"source": "make demo"},
                "retain_until": "2033-11-28T00:00:00Z",
            },
        )
        leaves.append(encode_record(rec))
    return leaves


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def _verify(*args: str) -> None:
    cmd = [sys.executable, "-m", "depository.verifier", *args]
    print("$ python -m depository.verifier " + " ".join(args))
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    print("\n".join("    " + line for line in done.stdout.splitlines()))
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        raise SystemExit(f"demo: verification failed (exit {done.returncode})")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit code."""
    ap = argparse.ArgumentParser(description="Depository demo: log, checkpoints, proofs.")
    ap.add_argument("--out", type=Path, default=Path("demo-out"))
    ap.add_argument("--records", type=int, default=300)
    args = ap.parse_args(argv)
    out: Path = args.out / "log-core"
    out.mkdir(parents=True, exist_ok=True)

    signer, vkey = generate_key(_ORIGIN)
    skey_path = _write(out / "log.key", signer + "\n")
    skey_path.chmod(0o600)
    vkey_path = _write(out / "log.vkey", vkey + "\n")
    print(f"log key: {vkey}")

    leaves = _records(args.records)
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    print(f"built {len(leaves)} canonical audit records (RFC 8785), {len(_PRODUCTS)} products")

    size1, size2 = args.records * 2 // 3, args.records
    notes = {}
    for size in (size1, size2):
        cp = Checkpoint(origin=_ORIGIN, size=size, root_hash=merkle.root(hashes[:size]))
        notes[size] = sign_note(format_checkpoint(cp), signer)
        _write(out / f"checkpoint-{size}.txt", notes[size])
    print(f"signed checkpoints at sizes {size1} and {size2}")

    index = 123 % args.records
    leaf_path = _write(out / f"leaf-{index}.json", leaves[index])
    proof = merkle.inclusion_proof(hashes, index, size2)
    proof_path = _write(
        out / f"leaf-{index}.tlog-proof", format_proof_file(index, proof, notes[size2])
    )
    cons = merkle.consistency_proof(hashes, size1, size2)
    cons_path = _write(
        out / f"consistency-{size1}-{size2}.txt",
        "".join(base64.b64encode(h).decode() + "\n" for h in cons),
    )
    root1 = merkle.root(hashes[:size1]).hex()
    root2 = merkle.root(hashes[:size2]).hex()

    print("\nverifying offline with the auditor's verifier:")
    _verify("note", str(out / f"checkpoint-{size2}.txt"), "--key", str(vkey_path))
    _verify("proof", str(proof_path), "--leaf", str(leaf_path), "--key", str(vkey_path))
    _verify(
        "consistency", "--size1", str(size1), "--size2", str(size2), "--root1", root1,
        "--root2", root2, "--proof", str(cons_path),
    )
    print(f"\nall checks passed; files are in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
