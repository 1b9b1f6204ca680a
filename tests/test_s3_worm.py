"""What the cluster itself refuses, whatever the depository (or its administrator) asks:
raw S3 calls against the objects the store wrote, on a real Ceph RADOS Gateway."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest_s3 import S3Env, ceph, s3

from depository.store import Store
from depository.store._s3 import S3Blobs
from depository.store.config import default_config_dict

__all__ = ["ceph", "s3"]


def _cfg(s3: S3Env, **top: Any) -> dict[str, Any]:
    cfg = default_config_dict("worm.example/log")
    cfg["checkpoint"] = {"every_entries": 50, "every_ms": 200}
    cfg.update(top)
    return s3.config(cfg)


def _version(s: Store, sha: str) -> tuple[S3Blobs, str, str]:
    b = s.blobs
    assert isinstance(b, S3Blobs)
    v = b._canonical(sha, refresh=True)
    assert v is not None
    return b, b.key(sha), v.version_id


def _refused(fn: Any, **kw: Any) -> str:
    with pytest.raises(ClientError) as exc:
        fn(**kw)
    code = str(exc.value.response["Error"]["Code"])
    assert code == "AccessDenied", exc.value
    return str(exc.value)


def test_raw_delete_and_overwrite_of_a_locked_version_are_refused(s3: S3Env,
                                                                  tmp_path: Path) -> None:
    with Store.init(tmp_path / "s", config=_cfg(s3)) as s:
        r = s.put("enforcement", "decision-1", b"the original decision")
        b, key, vid = _version(s, r.sha256)
        c = b.client
        # Deleting the version: refused, with or without the governance bypass header.
        msg = _refused(c.delete_object, Bucket=b.bucket, Key=key, VersionId=vid)
        assert "object lock" in msg.lower()
        _refused(c.delete_object, Bucket=b.bucket, Key=key, VersionId=vid,
                 BypassGovernanceRetention=True)
        resp = c.delete_objects(Bucket=b.bucket, Delete={"Objects": [
            {"Key": key, "VersionId": vid}]})
        assert resp.get("Errors") and resp["Errors"][0]["Code"] == "AccessDenied"
        # Downgrading the lock or dropping it: refused.
        _refused(c.put_object_retention, Bucket=b.bucket, Key=key, VersionId=vid,
                 Retention={"Mode": "GOVERNANCE",
                            "RetainUntilDate": datetime.now(UTC) + timedelta(days=3650)})
        # Versioning cannot be suspended on an Object Lock bucket.
        with pytest.raises(ClientError, match="InvalidBucketState"):
            c.put_bucket_versioning(Bucket=b.bucket,
                                    VersioningConfiguration={"Status": "Suspended"})
        # "Overwriting" makes a new version and a delete marker hides the key, but the
        # locked version is byte-identical and is what the store still reads.
        c.put_object(Bucket=b.bucket, Key=key, Body=b"a forged decision")
        c.delete_object(Bucket=b.bucket, Key=key)
        got = c.get_object(Bucket=b.bucket, Key=key, VersionId=vid)["Body"].read()
        assert got == b"the original decision"
        b._canon.clear()
        with s.open_content(s.get("enforcement", "decision-1")) as f:
            assert f.read() == b"the original decision"
        report = s.scrub()
        assert report["problems"] == []
        problems = [f["problem"] for f in report["backend"]["key_space_findings"]]
        assert any("holds other bytes" in p for p in problems)
        assert any("delete marker" in p for p in problems)


def test_shortening_retention_is_refused_by_the_cluster(s3: S3Env, tmp_path: Path) -> None:
    with Store.init(tmp_path / "s", config=_cfg(s3)) as s:
        r = s.put("gurukul", "lesson", b"lesson")
        b, key, vid = _version(s, r.sha256)
        until = b.client.get_object_retention(Bucket=b.bucket, Key=key, VersionId=vid
                                              )["Retention"]["RetainUntilDate"]
        for bypass in (False, True):
            _refused(b.client.put_object_retention, Bucket=b.bucket, Key=key, VersionId=vid,
                     BypassGovernanceRetention=bypass,
                     Retention={"Mode": "COMPLIANCE",
                                "RetainUntilDate": until - timedelta(days=1)})
        later = until + timedelta(days=10)
        s.extend_retention("gurukul", "lesson", later, actor="legal", reason="regulator")
        now_until = b.client.get_object_retention(Bucket=b.bucket, Key=key, VersionId=vid
                                                  )["Retention"]["RetainUntilDate"]
        assert now_until >= later


def test_a_held_artifact_survives_its_retention_date(s3: S3Env, tmp_path: Path) -> None:
    """Retention of one day, with the store's clock set so that it runs out 4 s from now
    in real time: the cluster's clock is the one that counts."""
    skew = timedelta(days=1) - timedelta(seconds=4)

    def clock() -> datetime:
        return datetime.now(UTC) - skew

    cfg = _cfg(s3, default_retention_days=1)
    with Store.init(tmp_path / "s", config=cfg, clock=clock) as s:
        held = s.put("gurukul", "held", b"evidence under hold")
        free = s.put("gurukul", "free", b"evidence, no hold")
        hold = s.place_hold(matter="CASE-7", reason="litigation", actor="legal",
                            artifact_ids=[held.artifact_id])
        b, hkey, hvid = _version(s, held.sha256)
        _, fkey, fvid = _version(s, free.sha256)
        for key, vid in ((hkey, hvid), (fkey, fvid)):  # both within retention
            _refused(b.client.delete_object, Bucket=b.bucket, Key=key, VersionId=vid)
        expiry = datetime.fromisoformat(held.retain_until.replace("Z", "+00:00"))
        time.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds()) + 1.5)
        # Past its retention date, the held version is still refused by the cluster...
        msg = _refused(b.client.delete_object, Bucket=b.bucket, Key=hkey, VersionId=hvid)
        assert "object lock" in msg.lower()
        # ...and by the store; the unheld one is disposed and its version deleted. The
        # store's clock (set back a day for the puts) now reads real time again.
        s.clock = lambda: datetime.now(UTC)
        now = datetime.now(UTC)
        assert [a.id for a in s.disposable(now)] == [free.artifact_id]
        s.dispose(now, actor="ops")
        assert not s.blobs.exists(free.sha256)
        assert s.blobs.exists(held.sha256)
        s.release_hold(hold.id, reason="case closed", actor="legal")
        assert b.client.get_object_legal_hold(Bucket=b.bucket, Key=hkey, VersionId=hvid
                                              )["LegalHold"]["Status"] == "OFF"
        s.dispose(datetime.now(UTC), actor="ops")
        assert not s.blobs.exists(held.sha256)
        rec = s.record(s.size() - 1)
        assert rec.type == "artifact.dispose" and rec.body["bytes_removed"] is True


def test_a_version_whose_lock_ran_out_is_still_read_and_scrubbed(s3: S3Env,
                                                                 tmp_path: Path) -> None:
    """Scrub finishes a disposal the cluster refused earlier, once its lock has run out."""
    skew = timedelta(days=1) - timedelta(seconds=3)
    cfg = _cfg(s3, default_retention_days=1)
    with Store.init(tmp_path / "s", config=cfg,
                    clock=lambda: datetime.now(UTC) - skew) as s:
        r = s.put("gurukul", "soon", b"short-lived")
        # The store's clock runs ahead of the cluster's: disposal is judged (and recorded)
        # at the store's time, but the cluster still refuses to delete the locked version.
        s.clock = lambda: datetime.now(UTC) + timedelta(seconds=5)
        s.dispose(actor="ops")
        assert s.get("gurukul", "soon").disposed and s.blobs.exists(r.sha256)
        time.sleep(4.5)
        report = s.scrub()
        assert report["disposed_bytes_removed"] == [r.artifact_id]
        assert not s.blobs.exists(r.sha256)
