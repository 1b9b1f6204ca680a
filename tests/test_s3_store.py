"""The store test-suite (tests/test_store.py) run again against the S3 Object Lock backend,
on a real Ceph RADOS Gateway (see conftest_s3.py).

Every ``test_*`` function of test_store.py is collected here too, with its ``_config()``
and ``store`` fixture pointed at a fresh prefix of an Object Lock bucket (inline_max 0:
every artifact's bytes are under Object Lock), except the few listed in ``LOCAL_ONLY``
that inspect local files or use the default (local) configuration; each of those has an
S3 counterpart below.
"""

from __future__ import annotations

import hashlib
import io
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import test_store as base
from conftest_s3 import S3Env, ceph, s3

from depository.store import (
    GovernanceLockedError,
    NotFoundError,
    RetentionError,
    Store,
    StoreError,
)
from depository.store._s3 import S3Blobs

__all__ = ["ceph", "s3"]  # session fixtures, used by name

LOCAL_ONLY = {
    # default (local) configuration, no backend involved
    "test_init_layout": "uses the default local configuration",
    "test_dropped_trigger_refuses_to_open_for_writing": "uses the default local configuration",
    # inspect local blob files: S3 counterparts below
    "test_large_artifact_goes_to_a_read_only_file": "test_s3_large_artifact_is_a_locked_object",
    "test_scrub_finds_damaged_bytes_and_locks": "test_s3_scrub_finds_missing_bytes_and_locks",
    "test_holds_block_disposal_and_disposal_keeps_proofs":
        "test_s3_holds_block_disposal_and_the_cluster_keeps_locked_bytes",
    # the cluster keeps a disposed version until its lock runs out (a 2100 store clock
    # is not the cluster's): the S3 disposal tests cover it
    "test_disposal_and_reupload_of_the_same_file_bytes":
        "test_s3_holds_block_disposal_and_the_cluster_keeps_locked_bytes",
    # its blob-table cases need inline rows; with inline_max 0 there are none
    "test_triggers_refuse_updates_and_deletes": "test_s3_triggers_refuse_updates_and_deletes",
    # inline_blob rows per artifact: with inline_max 0 there are none (local only)
    "test_inline_bytes_are_per_artifact_and_disposal_removes_them":
        "test_s3_holds_block_disposal_and_the_cluster_keeps_locked_bytes",
}

for _name in dir(base):
    if _name.startswith("test_") and _name not in LOCAL_ONLY:
        globals()[_name] = getattr(base, _name)


@pytest.fixture(autouse=True)
def _on_s3(monkeypatch: pytest.MonkeyPatch, s3: S3Env) -> None:
    original = base._config

    def config(**product_overrides: Any) -> dict[str, Any]:
        return s3.config(original(**product_overrides))

    monkeypatch.setattr(base, "_config", config)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.init(tmp_path / "store", config=base._config())
    assert isinstance(s.blobs, S3Blobs)
    yield s
    s.close()


def _blobs(s: Store) -> S3Blobs:
    assert isinstance(s.blobs, S3Blobs)
    return s.blobs


def _lock(s: Store, sha: str) -> tuple[str | None, datetime | None, str | None]:
    b = _blobs(s)
    v = b._canonical(sha, refresh=True)
    assert v is not None
    head = b.client.head_object(Bucket=b.bucket, Key=b.key(sha), VersionId=v.version_id)
    return (head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate"),
            head.get("ObjectLockLegalHoldStatus"))


def test_every_artifact_is_a_locked_object(store: Store) -> None:
    r = store.put("gurukul", "tiny", b"x", wait_checkpoint=True)
    assert store.get("gurukul", "tiny").storage == "file"
    assert store.reads.conn().execute("SELECT count(*) FROM inline_blob").fetchone()[0] == 0
    mode, until, hold = _lock(store, r.sha256)
    assert mode == "COMPLIANCE" and hold in (None, "OFF")
    assert until is not None and until >= datetime.fromisoformat(
        r.retain_until.replace("Z", "+00:00"))
    empty = store.put("gurukul", "empty", b"")
    with store.open_content(store.get("gurukul", "empty")) as f:
        assert f.read() == b""
    assert _lock(store, empty.sha256)[0] == "COMPLIANCE"


def test_s3_large_artifact_is_a_locked_object(store: Store) -> None:
    data = bytes(range(256)) * 1024
    r = store.put("ai-avatar", "big.bin", io.BytesIO(data))
    assert _lock(store, r.sha256)[0] == "COMPLIANCE"
    with store.open_content(store.get("ai-avatar", "big.bin")) as f:
        assert f.read() == data
    with store.blobs.open(r.sha256, 1000, 3000) as f:
        assert f.read() == data[1000:4000]
    assert not list(store.blobs.tmp.iterdir())


@pytest.mark.parametrize("sql", [
    "UPDATE artifact SET name = 'x'", "DELETE FROM artifact", "UPDATE log SET leaf = x'00'",
    "DELETE FROM log", "DELETE FROM checkpoint", "UPDATE node SET hash = zeroblob(32)",
    "DELETE FROM hold", "UPDATE retention SET retain_until = '2000-01-01'",
])
def test_s3_triggers_refuse_updates_and_deletes(store: Store, sql: str) -> None:
    base.test_triggers_refuse_updates_and_deletes(store, sql.split()[1].lower(), sql)


def test_s3_scrub_finds_missing_bytes_and_locks(store: Store, s3: S3Env) -> None:
    r = store.put("ai-avatar", "big", b"q" * 100_000)
    store.put("gurukul", "small", b"s")
    report = store.scrub()
    assert report["problems"] == [] and report["backend"]["backend"] == "s3"
    # The locked version cannot be deleted or changed; what scrub can still meet is a key
    # the cluster lost (simulated by pointing the catalog's bytes at another prefix).
    b = _blobs(store)
    b.prefix = "elsewhere/"
    b._canon.clear()
    report = store.scrub()
    assert {x["artifact_id"] for x in report["problems"] if "artifact_id" in x} >= {
        r.artifact_id}
    assert store.governance_status()["locked"]
    with pytest.raises(GovernanceLockedError):
        store.put("gurukul", "after", b"x")


def test_s3_holds_block_disposal_and_the_cluster_keeps_locked_bytes(store: Store) -> None:
    """Disposal judged at a store time (2100) the cluster does not share: the catalog records
    it, but the cluster refuses to delete a version whose retention has not run out by its
    own clock, so the bytes stay until scrub retries after the real date."""
    far = base.FAR_FUTURE
    held = store.put("gurukul", "held", b"h" * 10)
    free = store.put("gurukul", "free", b"f" * 100_000)
    hold = store.place_hold(matter="CASE-1", reason="litigation", actor="legal",
                            artifact_ids=[held.artifact_id])
    assert _lock(store, held.sha256)[2] == "ON"
    store.clock = lambda: far  # disposal is judged at the store's clock
    with pytest.raises(RetentionError, match="legal hold"):
        store.dispose(far, actor="ops", artifact_ids=[held.artifact_id])
    store.dispose(far, actor="ops", artifact_ids=[free.artifact_id])
    art = store.get("gurukul", "free")
    assert art.disposed
    with pytest.raises(NotFoundError, match="disposed"):
        store.open_content(art)
    assert store.blobs.exists(free.sha256), "the cluster must refuse to delete a locked version"
    assert any(free.sha256 in p and "kept" in p for p in _blobs(store).problems)
    store.release_hold(hold.id, reason="settled", actor="legal")
    assert _lock(store, held.sha256)[2] == "OFF"
    store.dispose(far, actor="ops")
    assert store.get("gurukul", "held").disposed


def test_dedup_shares_one_object_with_the_longest_retention(store: Store) -> None:
    a = store.put("gurukul", "a", b"shared bytes")
    later = datetime.now(UTC) + timedelta(days=9 * 365)
    b = store.put("enforcement", "b", b"shared bytes", retain_until=later)
    assert a.sha256 == b.sha256
    versions, _ = _blobs(store)._list_versions(a.sha256)
    assert len(versions) == 1
    until = _lock(store, a.sha256)[1]
    assert until is not None and until >= later - timedelta(seconds=1)


def test_retention_extension_maps_to_the_object(store: Store) -> None:
    r = store.put("gurukul", "a", b"extend me")
    later = datetime.fromisoformat(r.retain_until.replace("Z", "+00:00")) + timedelta(days=30)
    store.extend_retention("gurukul", "a", later, actor="legal", reason="regulator")
    until = _lock(store, r.sha256)[1]
    assert until is not None and until >= later
    with pytest.raises(RetentionError, match="only be extended"):
        store.extend_retention("gurukul", "a", later - timedelta(days=1), actor="x", reason="y")
    assert _lock(store, r.sha256)[1] == until


def test_product_hold_covers_objects_written_later(store: Store) -> None:
    before = store.put("enforcement", "before", b"1")
    store.place_hold(matter="M2", reason="r", actor="legal", product="enforcement",
                     since=datetime(2000, 1, 1, tzinfo=UTC))
    after = store.put("enforcement", "after", b"2")
    other = store.put("gurukul", "other", b"3")
    assert _lock(store, before.sha256)[2] == "ON"
    assert _lock(store, after.sha256)[2] == "ON"
    assert _lock(store, other.sha256)[2] in (None, "OFF")


def test_scrub_reports_orphans_and_resyncs_lock_drift(store: Store) -> None:
    r = store.put("gurukul", "a", b"drift")
    # A crash after the upload and before the record leaves an orphan: harmless, reported.
    ing = store.blobs.ingest(io.BytesIO(b"never recorded"), max_size=10**6, inline_max=0,
                             what="orphan", retain_until=datetime.now(UTC) + timedelta(days=1))
    # Lock drift: the catalog holds it, the object does not (a crash between the two).
    store.place_hold(matter="M", reason="r", actor="legal", artifact_ids=[r.artifact_id])
    store.blobs.set_legal_hold(r.sha256, False)
    report = store.scrub()
    assert report["problems"] == []
    assert report["backend"]["orphaned_objects"] == [ing.sha256]
    assert [f["object"] for f in report["backend"]["locks_fixed"]] == [
        _blobs(store).key(r.sha256)]
    assert _lock(store, r.sha256)[2] == "ON"


def test_upload_failure_leaves_no_object_and_no_record(store: Store, s3: S3Env,
                                                       tmp_path: Path) -> None:
    cfg = s3.config(base._config(), part_size=5 * 1024 * 1024)
    with Store.init(tmp_path / "mp", config=cfg) as s:
        b = _blobs(s)
        size = s.size()
        real = b.client.upload_part
        calls = []

        def flaky(**kw: Any) -> Any:
            calls.append(kw["PartNumber"])
            if kw["PartNumber"] == 3:
                raise OSError("connection reset (injected)")
            return real(**kw)

        b.client.upload_part = flaky  # type: ignore[method-assign]
        data = hashlib.sha256(b"seed").digest() * (20 * 1024 * 1024 // 32)  # 20 MiB, 4 parts
        with pytest.raises(StoreError, match="aborted; nothing was recorded"):
            s.put("ai-avatar", "big", io.BytesIO(data))
        b.client.upload_part = real  # type: ignore[method-assign]
        sha = hashlib.sha256(data).hexdigest()
        assert s.size() == size and not s.blobs.exists(sha)
        assert b.client.list_multipart_uploads(Bucket=b.bucket, Prefix=b.prefix).get(
            "Uploads", []) == []
        assert not list(s.blobs.tmp.iterdir())
        r = s.put("ai-avatar", "big", io.BytesIO(data))  # and it works once the network does
        with s.open_content(s.get("ai-avatar", "big")) as f:
            assert hashlib.sha256(f.read()).hexdigest() == r.sha256 == sha
        with s.blobs.open(sha, 7 * 1024 * 1024 - 5, 10) as f:
            assert f.read() == data[7 * 1024 * 1024 - 5: 7 * 1024 * 1024 + 5]


def test_reopen_aborts_uploads_a_crash_left_behind(s3: S3Env, tmp_path: Path) -> None:
    cfg = s3.config(base._config())
    d = tmp_path / "s"
    Store.init(d, config=cfg).close()
    b = S3Blobs(d / "objects", _backend_config(cfg))
    key = b.key("0" * 64)
    up = b.client.create_multipart_upload(Bucket=b.bucket, Key=key)  # a crashed upload
    b.client.upload_part(Bucket=b.bucket, Key=key, UploadId=up["UploadId"], PartNumber=1,
                         Body=b"half")
    (d / "objects" / "tmp" / "upload-deadbeef").write_bytes(b"half")  # and its spool
    with Store.open(d) as s:
        assert b.client.list_multipart_uploads(Bucket=b.bucket, Prefix=b.prefix).get(
            "Uploads", []) == []
        assert not list(s.blobs.tmp.iterdir())
        assert not s.blobs.exists("0" * 64)


def _backend_config(cfg: dict[str, Any]) -> Any:
    from depository.store._backend import parse_backend

    return parse_backend(cfg["backend"])


def test_config_refusals(s3: S3Env, tmp_path: Path) -> None:
    from depository.store import ConfigError

    cfg = s3.config(base._config())
    cfg["inline_max"] = 4096
    with pytest.raises(ConfigError, match=r"inline_max: must be 0 with backend\.type s3"):
        Store.init(tmp_path / "a", config=cfg)
    cfg = s3.config(base._config())
    cfg["backend"]["secret_access_key"] = "x"
    with pytest.raises(ConfigError, match=r"credentials never go in depository\.yaml"):
        Store.init(tmp_path / "b", config=cfg)
    plain = s3.new_bucket(lock=False)
    cfg = s3.config(base._config(), anchors=False)
    cfg["backend"]["bucket"] = plain
    with pytest.raises(StoreError, match="does not have S3 Object Lock enabled"):
        Store.init(tmp_path / "c", config=cfg)
    assert not (tmp_path / "c").exists(), "refused before anything was created"
    cfg["backend"]["bucket"] = "no-such-bucket-here"
    with pytest.raises(StoreError, match="does not exist"):
        Store.init(tmp_path / "d", config=cfg)


def test_catalog_never_points_at_a_missing_object(store: Store) -> None:
    """Write-ahead: when a put is acknowledged, its object is already there and locked."""
    for i in range(20):
        r = store.put("ai-assistant", f"n{i}", f"body {i}".encode())
        assert _blobs(store)._canonical(r.sha256, refresh=True) is not None
    rows = store.reads.conn().execute("SELECT sha256 FROM artifact").fetchall()
    assert all(store.blobs.exists(row[0]) for row in rows)
    assert sqlite3.connect(store.path / "depository.db").execute(
        "SELECT count(*) FROM inline_blob").fetchone()[0] == 0
