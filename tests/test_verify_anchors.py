"""Anchored checkpoints in the offline verifier: a local anchor directory (the S3 form is
exercised against Ceph in test_s3_anchors.py). Rollbacks and rewrites are caught through
anchors alone, with no checkpoint saved by the auditor."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from depository.store import Store
from depository.store.config import default_config_dict
from depository.verifier.store import store_result


def _store(tmp_path: Path) -> tuple[Path, Path, str]:
    path, anchors = tmp_path / "store", tmp_path / "anchors"
    cfg = default_config_dict("anchor.example/log")
    cfg["anchors"] = str(anchors)
    with Store.init(path, config=cfg) as s:
        for i in range(20):
            s.put("gurukul", f"a{i}", b"%d" % i)
        s.checkpoint()
        vkey = s.verifier_key
    return path, anchors, vkey


def _read(anchors: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(anchors.rglob("*")) if p.is_file()]


def test_anchors_consistent(tmp_path: Path) -> None:
    path, anchors, vkey = _store(tmp_path)
    notes = _read(anchors)
    assert len(notes) >= 2
    res = store_result(path, [vkey], anchors=notes)
    assert res.ok, res.findings
    assert any("anchored in WORM" in c for c in res.checks)


def test_rollback_caught_through_anchors_alone(tmp_path: Path) -> None:
    path, anchors, vkey = _store(tmp_path)
    old = tmp_path / "old"
    shutil.copytree(path, old)  # an older, internally consistent copy...
    with Store.open(path) as s:  # ...then more history is written and anchored
        for i in range(5):
            s.put("ai-avatar", f"b{i}", b"b%d" % i)
        s.checkpoint()
    shutil.rmtree(path)
    shutil.copytree(old, path)  # the attacker restores the old copy
    assert store_result(path, [vkey]).ok  # nothing inside the store gives it away
    res = store_result(path, [vkey], anchors=_read(anchors))
    assert not res.ok
    assert {f.check for f in res.findings} == {"anchor"}
    assert any("rolled back" in f.message for f in res.findings)


def test_rewrite_with_the_key_caught_through_anchors(tmp_path: Path) -> None:
    """An attacker with files and key rebuilds the store with one record changed."""
    path, anchors, vkey = _store(tmp_path)
    key = (path / "keys" / "log.key").read_text().strip()
    forged = tmp_path / "forged"
    cfg = default_config_dict("anchor.example/log")
    with Store.init(forged, config=cfg) as s:
        for i in range(20):
            s.put("gurukul", f"a{i}", b"%d" % i if i != 7 else b"rewritten")
        s.checkpoint()
    # Re-sign the forged history with the real key and swap it in.
    (forged / "keys" / "log.key").write_text(key + "\n")
    conn = sqlite3.connect(forged / "depository.db")
    conn.execute("DROP TRIGGER meta_no_update")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'verifier_key'", (vkey,))
    conn.commit()
    conn.close()
    res = store_result(forged, [vkey], anchors=_read(anchors))
    assert not res.ok
    assert "anchor" in {f.check for f in res.findings}


def test_no_anchors_found_is_a_finding(tmp_path: Path) -> None:
    path, _, vkey = _store(tmp_path)
    res = store_result(path, [vkey], anchors=[])
    assert not res.ok and [f.check for f in res.findings] == ["anchor"]


def test_cli_anchors_directory(tmp_path: Path) -> None:
    path, anchors, vkey = _store(tmp_path)
    ok = subprocess.run([sys.executable, "-m", "depository.verifier", "store", str(path),
                         "--key", vkey, "--anchors", str(anchors)], capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # Another log's anchor is skipped; an unsigned one claiming this log is an incident.
    (anchors / "other-log").write_bytes(b"other.example/log\n1\n" + b"A" * 43 + b"=\n")
    (anchors / "junk").write_bytes(b"anchor.example/log\n5\n" + b"A" * 43 + b"=\n")
    bad = subprocess.run([sys.executable, "-m", "depository", "verify", "store", str(path),
                          "--key", vkey, "--anchors", str(anchors)], capture_output=True,
                         text=True)
    assert bad.returncode == 1 and "anchor" in bad.stdout
