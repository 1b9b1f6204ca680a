"""A small real store, its proofs and an evidence package, for the hostile-input tests
(``test_hostile_inputs.py``, ``test_fuzz_*.py``), built once per test module."""

from __future__ import annotations

import hashlib
import random
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from depository.signing import key_from_seed
from depository.store import Store
from depository.store.config import default_config_dict

ORIGIN = "hostile.example/depository"
EXPORT_TIME = datetime(2100, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """Moves 1 ms per reading, so record times differ and are reproducible."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@dataclass
class Inputs:
    """Valid inputs of every offline entry point but a package (:func:`export`), as
    files under ``root``."""

    root: Path
    store: Path
    vkey: str
    vkey_file: Path
    file_blob: Path  # a blob file under objects/ (the 100 kB artifact)
    file_blob_size: int
    leaf: Path  # record 1's bytes
    leaf_index: int
    proof: Path  # its tlog-proof file
    note: Path  # the latest signed checkpoint
    size1: int
    size2: int
    root1: str
    root2: str
    consistency: Path  # hex hashes, one per line
    inclusion: Path  # hex hashes of record 1's inclusion proof at size2


def _seeded_key(name: str, **kw: Any) -> tuple[str, str]:
    return key_from_seed(name, hashlib.sha256(name.encode()).digest(), **kw)


def _seeded_key_file(path: Path, name: str) -> Path:
    """A signer key derived from ``name``: the same inputs on every run, so a fuzz case
    that fails replays from its printed seed (random keys made every signature differ)."""
    path.write_text(_seeded_key(name)[0] + "\n")
    path.chmod(0o600)
    return path


def build(root: Path) -> Inputs:
    """A store with inline and file artifacts, a hold, checkpoints; proofs. Deterministic:
    seeded keys, a fixed clock and seeded blob bytes."""
    cfg = default_config_dict(ORIGIN)
    cfg["default_retention_days"] = 30
    with mock.patch("depository.store._store.generate_key", _seeded_key):
        store = Store.init(root / "store", config=cfg,
                           clock=Clock(datetime(2026, 1, 1, tzinfo=UTC)))
    try:
        # above inline_max: a blob file under objects/
        big = random.Random(15).randbytes(100_000)
        r1 = store.put("gurukul", "lessons/l1.txt", b"lesson one",
                       metadata={"course": "algebra", "n": 1}, provenance={"author": "t-1"},
                       actor="cli:writer")
        r2 = store.put("gurukul", "lessons/video.mp4", big, metadata={"course": "algebra"},
                       actor="cli:writer")
        store.checkpoint()
        size1 = store.size()
        store.put("gurukul", "lessons/l3.txt", b"lesson three", metadata={"tags": ["a", "b"]},
                  actor="cli:writer")
        store.place_hold(matter="M-1", reason="subpoena", actor="legal:ann",
                         artifact_ids=[r1.artifact_id, r2.artifact_id])
        store.checkpoint()
        size2, note = store.latest_checkpoint()
        vkey = store.verifier_key
        (root / "log.vkey").write_text(vkey + "\n")
        leaf_index = r1.log_index
        (root / "leaf.json").write_bytes(store.log_entries(leaf_index, leaf_index + 1)
                                         .__next__()[1])
        (root / "leaf.tlog-proof").write_bytes(store.proof_file(leaf_index, size2))
        (root / "checkpoint.txt").write_bytes(note)
        (root / "consistency.txt").write_text(
            "".join(h.hex() + "\n" for h in store.consistency_proof(size1, size2)))
        (root / "inclusion.txt").write_text(
            "".join(h.hex() + "\n" for h in store.inclusion_proof(leaf_index, size2)))
        root1, root2 = store.root_at(size1).hex(), store.root_at(size2).hex()
    finally:
        store.close()
    blob = root / "store" / "objects" / r2.sha256[:2] / r2.sha256[2:4] / r2.sha256
    assert blob.is_file(), blob
    return Inputs(root, root / "store", vkey, root / "log.vkey", blob, len(big),
                  root / "leaf.json", leaf_index, root / "leaf.tlog-proof",
                  root / "checkpoint.txt", size1, size2, root1, root2,
                  root / "consistency.txt", root / "inclusion.txt")


def export(inp: Inputs) -> Path:
    """An evidence package of the hold's matter, as a bag directory (a few seconds: the
    PDF index; so only the tests that need one build it)."""
    from depository.evidence import export_package

    out = inp.root / "case-M-1"
    if not out.exists():
        store = Store.open(inp.store, clock=Clock(EXPORT_TIME - timedelta(hours=1)))
        try:
            export_package(store, matter="M-1", out=out, reason="production",
                           actor="legal:ann", now=EXPORT_TIME, index_limit=2,
                           evidence_key_file=_seeded_key_file(inp.root / "evidence.key",
                                                              f"{ORIGIN}/evidence"))
        finally:
            store.close()
    return out


def copy_store(inp: Inputs, dest: Path) -> Path:
    """A fresh copy of the store directory to attack."""
    shutil.copytree(inp.store, dest, symlinks=True)
    return dest
