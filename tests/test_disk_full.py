"""Disk full: writes fail with a clear error, nothing acknowledged is lost, and the store
stays verifiable. Uses a real size-limited tmpfs mount (needs root, as in CI)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from depository.store import DiskFullError, Store
from depository.store.config import default_config_dict
from depository.verifier.store import verify_store


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root (CI runs as root)")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_fails_cleanly_and_loses_nothing(small_disk: Path) -> None:
    path = small_disk / "store"
    cfg = default_config_dict("full.example/log")
    with Store.init(path, config=cfg) as s:
        acked = {}
        errors: list[DiskFullError] = []
        for i in range(400):
            # Mix file blobs (150 kB) and inline ones (20 kB) to hit both write paths.
            size = 150_000 if i % 3 == 0 else 20_000
            data = (b"%08d" % i) * (size // 8)
            try:
                r = s.put("gurukul", f"f{i}", data)
            except DiskFullError as exc:
                errors.append(exc)
                if len(errors) >= 5:
                    break
                continue
            acked[f"f{i}"] = r.sha256
        assert errors, "the 4 MB disk never filled up"
        assert "disk is full" in str(errors[0]) and "nothing" in str(errors[0])
        assert acked
        assert not list(s.blobs.tmp.iterdir()), "a failed upload left a temp file"
        # Make room again (as an operator would) and keep writing.
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
        r = s.put("gurukul", "after", b"room again")
        acked["after"] = r.sha256
        s.checkpoint()
        vkey = s.verifier_key
    with Store.open(path) as s:
        for name, sha in acked.items():
            assert s.get("gurukul", name).sha256 == sha
    verify_store(path, [vkey])
