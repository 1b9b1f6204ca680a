"""Checkpoints anchored in WORM storage (S3 Object Lock, COMPLIANCE mode), and the attacks
they catch for an auditor who saved nothing: the tamper drill's rollback (an older copy of
the store restored) and a rewrite by someone who holds the log's signing key."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest_s3 import S3Env, ceph, s3

from depository.signing import sign_note
from depository.store import Store
from depository.store._anchors import check_anchors
from depository.store._backend import log_retention_days
from depository.store._s3 import fetch_anchors, parse_s3_url
from depository.store.config import default_config_dict
from depository.tlog.checkpoint import Checkpoint, format_checkpoint

__all__ = ["ceph", "s3"]

ORIGIN = "anchors.example/log"


def _base() -> dict[str, Any]:
    cfg = default_config_dict(ORIGIN)
    cfg["checkpoint"] = {"every_entries": 1000, "every_ms": 60_000}
    return cfg


def _grow(s: Store, tag: str, n: int) -> None:
    for i in range(n):
        s.put("gurukul", f"{tag}/{i}", f"{tag} {i}".encode())
    s.checkpoint()


def _restore(old: Path, store: Path) -> None:
    """The tamper drill's rollback: put an older, internally consistent copy back."""
    for suffix in ("", "-wal", "-shm"):
        (store / f"depository.db{suffix}").unlink(missing_ok=True)
        if (old / f"depository.db{suffix}").exists():
            shutil.copyfile(old / f"depository.db{suffix}", store / f"depository.db{suffix}")


def _snapshot(store: Path, to: Path) -> None:
    """A backup of the closed store's database (with its WAL, if any)."""
    to.mkdir()
    for suffix in ("", "-wal"):
        if (store / f"depository.db{suffix}").exists():
            shutil.copyfile(store / f"depository.db{suffix}", to / f"depository.db{suffix}")


def test_each_checkpoint_is_anchored_under_compliance_retention(s3: S3Env,
                                                                tmp_path: Path) -> None:
    cfg = s3.config(_base())
    url = cfg["anchors"]["url"]
    with Store.init(tmp_path / "s", config=cfg) as s:
        _grow(s, "a", 3)
        _grow(s, "b", 2)
        assert s.anchor_errors == []
        sizes = [1, 4, 6]
        bucket, prefix = parse_s3_url(url)
        listed = s3.client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
        assert sorted(int(o["Key"].rsplit("/", 1)[1]) for o in listed) == sizes
        days = log_retention_days(s.config.default_retention_days, s.config.scale_limits)
        for size in sizes:
            obj = s3.client.get_object(Bucket=bucket, Key=f"{prefix}{size}")
            assert obj["Body"].read() == s.checkpoint_at(size)
            assert obj["ObjectLockMode"] == "COMPLIANCE"
            assert obj["ObjectLockRetainUntilDate"] >= (
                datetime.now(UTC) + timedelta(days=days) - timedelta(minutes=5))
        notes = fetch_anchors(url, endpoint_url=s3.cluster.endpoint)
        report = check_anchors(s, notes)
        assert report.ok and report.consistent == 3 and report.latest_anchored == 6


def test_an_anchored_checkpoint_cannot_be_replaced(s3: S3Env, tmp_path: Path) -> None:
    cfg = s3.config(_base())
    url = cfg["anchors"]["url"]
    bucket, prefix = parse_s3_url(url)
    with Store.init(tmp_path / "s", config=cfg) as s:
        _grow(s, "a", 3)
        key = f"{prefix}4"
        (v,) = s3.client.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
        for call, kw in [
            (s3.client.delete_object, {"VersionId": v["VersionId"]}),
            (s3.client.delete_object, {"VersionId": v["VersionId"],
                                       "BypassGovernanceRetention": True}),
            (s3.client.put_object_retention, {"VersionId": v["VersionId"], "Retention": {
                "Mode": "COMPLIANCE", "RetainUntilDate": datetime.now(UTC) + timedelta(days=1)}}),
        ]:
            with pytest.raises(ClientError, match="AccessDenied"):
                call(Bucket=bucket, Key=key, **kw)
        # A key thief signs a different tree of size 4 and "replaces" the anchor: S3 keeps
        # both versions, and the auditor reads every version.
        signer = (s.path / "keys" / "log.key").read_text().strip()
        forged = sign_note(format_checkpoint(Checkpoint(ORIGIN, 4, b"\x07" * 32)), signer)
        s3.client.put_object(Bucket=bucket, Key=key, Body=forged)
        s3.client.delete_object(Bucket=bucket, Key=key)  # and hides the key
        notes = fetch_anchors(url, endpoint_url=s3.cluster.endpoint)
        assert s.checkpoint_at(4) in notes and forged in notes
        report = check_anchors(s, notes)
        problems = " | ".join(f["problem"] for f in report.findings)
        assert not report.ok
        assert "fork: two signed checkpoints of size 4" in problems
        assert "history up to there was rewritten" in problems


def test_rollback_is_caught_through_anchors_alone(s3: S3Env, tmp_path: Path) -> None:
    """The tamper drill's rollback attack, with no checkpoint saved by anyone."""
    cfg = s3.config(_base())
    d, old = tmp_path / "s", tmp_path / "old"
    with Store.init(d, config=cfg) as s:
        _grow(s, "a", 5)
        vkey = s.verifier_key
    _snapshot(d, old)
    with Store.open(d) as s:
        _grow(s, "b", 7)
        full = s.size()
    _restore(old, d)
    with Store.open(d) as s:  # internally consistent: the store alone cannot tell
        assert s.size() < full and s.governance_status()["locked"] is False
        notes = fetch_anchors(cfg["anchors"]["url"], endpoint_url=s3.cluster.endpoint)
        report = check_anchors(s, notes, verifier_keys=[vkey])
    assert not report.ok
    assert any(f"covers {full} records but the store has only" in f["problem"]
               and "rolled back" in f["problem"] for f in report.findings)


def test_a_rewrite_with_the_stolen_key_is_caught_through_anchors(s3: S3Env,
                                                                tmp_path: Path) -> None:
    """Rolled back, then grown past the anchored size with other records and freshly
    signed (and even anchored) checkpoints: every signature verifies, the old anchors
    still contradict it."""
    cfg = s3.config(_base())
    d, old = tmp_path / "s", tmp_path / "old"
    with Store.init(d, config=cfg) as s:
        _grow(s, "a", 3)
        vkey = s.verifier_key
    _snapshot(d, old)
    with Store.open(d) as s:
        _grow(s, "real", 4)
        anchored = s.size()
    _restore(old, d)
    with Store.open(d) as s:  # the attacker's history, signed with the real key
        _grow(s, "forged", 9)
        assert s.size() > anchored
        report = check_anchors(s, fetch_anchors(cfg["anchors"]["url"],
                                                endpoint_url=s3.cluster.endpoint),
                               verifier_keys=[vkey])
    assert not report.ok
    problems = [f["problem"] for f in report.findings]
    assert any(f"root at size {anchored}" in p and "rewritten" in p for p in problems)


def test_local_directory_anchors(tmp_path: Path) -> None:
    """Anchors in a local directory (e.g. a WORM-mounted file system, or the files an
    auditor downloaded): the same checks, no cluster needed."""
    anchors = tmp_path / "anchors"
    cfg = _base()
    cfg["anchors"] = str(anchors)
    d, old = tmp_path / "s", tmp_path / "old"
    with Store.init(d, config=cfg) as s:
        _grow(s, "a", 2)
    _snapshot(d, old)
    with Store.open(d) as s:
        _grow(s, "b", 2)
        assert check_anchors(s, fetch_anchors(str(anchors))).ok
        assert sorted(p.name for p in anchors.iterdir()) == ["1", "3", "5"]
        assert all(p.stat().st_mode & 0o222 == 0 for p in anchors.iterdir())
    _restore(old, d)
    with Store.open(d, readonly=True) as s:
        report = check_anchors(s, fetch_anchors(str(anchors)))
    assert [f["size"] for f in report.findings] == [5]
    # An unsigned file in the anchor space is an incident; another log's anchor is skipped.
    (anchors / "junk").write_bytes(b"not a checkpoint\n")
    other = sign_note(format_checkpoint(Checkpoint("other.example/log", 1, b"\x01" * 32)),
                      _other_signer())
    (anchors / "other").write_bytes(other)
    with Store.open(d, readonly=True) as s:
        report = check_anchors(s, fetch_anchors(str(anchors)))
    assert len(report.skipped) == 1
    assert any("not a checkpoint signed by a trusted key" in f["problem"]
               for f in report.findings)


def _other_signer() -> str:
    from depository.signing import generate_key

    return generate_key("other.example/log")[0]
