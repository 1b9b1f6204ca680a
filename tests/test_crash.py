"""Crash drill: a writer under concurrent load is killed with SIGKILL at random moments.

After each kill the store must open for writing (its open-time integrity checks pass),
verify offline, and hold every write that had been acknowledged.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from depository.store import Store
from depository.store.config import default_config_dict
from depository.verifier.store import verify_store

WRITER = Path(__file__).with_name("_crash_writer.py")


def _run_and_kill(store: Path, run: int, delay: float) -> list[list[str]]:
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(store), f"r{run}", "8"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    ready = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("READY"):
                ready.set()
            lines.append(line)

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    assert ready.wait(30), "writer did not start: " + (proc.stderr.read() if proc.stderr else "")
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    th.join(10)
    assert proc.returncode == -signal.SIGKILL
    return [ln.split() for ln in lines if ln.startswith("ACK ")]


def test_sigkill_under_load_loses_no_acknowledged_write(tmp_path: Path) -> None:
    path = tmp_path / "store"
    cfg = default_config_dict("crash.example/log")
    cfg["checkpoint"] = {"every_entries": 200, "every_ms": 100}
    Store.init(path, config=cfg).close()
    rng = random.Random(1234)
    acked: list[list[str]] = []
    for run in range(4):
        got = _run_and_kill(path, run, rng.uniform(0.3, 1.5))
        assert got, f"run {run}: no write was acknowledged before the kill"
        acked += got
        with Store.open(path) as s:  # open-time checks: schema, tree vs checkpoint
            assert not s.governance_status()["locked"]
            for _, product, name, sha, index in acked:
                art = s.get(product, name)
                assert art.sha256 == sha and art.log_index == int(index), name
                with s.open_content(art) as f:
                    assert len(f.read()) == art.size
            s.checkpoint()
            vkey = s.verifier_key
        verify_store(path, [vkey])
    assert len(acked) > 100
