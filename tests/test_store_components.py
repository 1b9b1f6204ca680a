"""The store's component contracts: typed errors mapped to problems without reading
messages, blob backends that never see a Store, the writer seam and its wire forms."""

from __future__ import annotations

import io
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_service_support import store_config

from depository.service._problems import from_store_error
from depository.store import (
    GovernanceLockedError,
    MetadataError,
    PutItem,
    Receipt,
    Store,
    StoreError,
    WriteOnceError,
)


def test_problem_comes_from_the_error_data_not_its_wording() -> None:
    # Messages deliberately mention other parts: only the attributes may decide.
    p = from_store_error(MetadataError("a name about metadata", part="provenance"))
    assert (p.slug, p.field) == ("invalid-header", "header:Depository-Provenance")
    p = from_store_error(MetadataError("provenance name", part="metadata", field="a/b"))
    assert (p.slug, p.field) == ("metadata-invalid", "header:Depository-Metadata/a/b")
    p = from_store_error(MetadataError("x", part="metadata", field=""))
    assert (p.slug, p.field) == ("metadata-invalid", "header:Depository-Metadata")
    p = from_store_error(MetadataError("metadata provenance", part="actor"), subject="body")
    assert (p.slug, p.field) == ("invalid-parameter", "body")
    p = from_store_error(MetadataError("metadata", part="name"))
    assert (p.slug, p.field) == ("invalid-parameter", "path:name")
    p = from_store_error(GovernanceLockedError("reworded entirely", reason="drill"))
    assert p.slug == "governance-locked" and p.extra == {"reason": "drill"}
    assert p.headers == {"Retry-After": "60"}
    assert from_store_error(StoreError("anything")).slug == "refused"


def test_governance_error_carries_its_reason() -> None:
    e = GovernanceLockedError.of("scrub found 1 damaged artifacts")
    assert e.reason == "scrub found 1 damaged artifacts" and e.attrs() == {"reason": e.reason}
    assert str(e).startswith("the store is under a governance lock: scrub found 1")
    rebuilt = type(e)(str(e), **e.attrs())
    assert rebuilt.reason == e.reason


# ------------------------------------------------------------- BlobBackend verbs


class _RecordingLocks:
    """A backend stand-in that only records the narrow lock verbs the store calls."""

    object_lock = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, object]] = []
        self.deferred: list[str] = []

    def set_legal_hold(self, sha256_hex: str, on: bool) -> None:
        self.calls.append(("hold", sha256_hex, on))

    def extend_retention(self, sha256_hex: str, until: datetime) -> None:
        self.calls.append(("retain", sha256_hex, until))

    def defer(self, problem: str) -> None:
        self.deferred.append(problem)


def test_lock_mirror_tells_the_backend_the_desired_state(tmp_path: Path) -> None:
    """The store works out holds from the catalog; the backend only gets sha + on/off."""
    from depository.store._locks import LockMirror, expect_lock

    with Store.init(tmp_path / "s", config=store_config()) as s:
        big = s.put("gurukul", "big", b"B" * 100_000)  # a file blob (above inline_max)
        s.put("gurukul", "small", b"s")  # inline: no object to lock
        other = s.put("ai-avatar", "other", b"O" * 100_000)
        fake = _RecordingLocks()
        mirror = LockMirror(s.reads, fake)  # type: ignore[arg-type]
        scope = {"artifact_ids": [big.artifact_id]}
        assert mirror.before_hold("gurukul", scope) == big.log_index
        assert fake.calls == [("hold", big.sha256, True)]
        hold = s.place_hold(matter="m", reason="r", actor="legal",
                            artifact_ids=[big.artifact_id])
        fake.calls.clear()
        mirror.after_put(big.artifact_id)  # an existing hold covers it: hold stays on
        assert fake.calls == [("hold", big.sha256, True)]
        fake.calls.clear()
        mirror.after_put(other.artifact_id)  # nothing covers it: no call
        assert fake.calls == []
        s.release_hold(hold.id, reason="done", actor="legal")
        mirror.after_release(hold.id)
        assert fake.calls == [("hold", big.sha256, False)]
        # What scrub hands the backend's audit: plain values per blob.
        expected: dict[str, tuple[str, bool]] = {}
        for art in s.ls(product="gurukul"):
            if art.storage == "file":
                expect_lock(expected, art, s.holds())
        assert expected == {big.sha256: (big.retain_until, False)}


def test_local_audit_takes_catalog_values_not_a_store(tmp_path: Path) -> None:
    with Store.init(tmp_path / "s", config=store_config()) as s:
        r = s.put("gurukul", "big", b"B" * 100_000)
        stray = "f" * 64
        p = s.blobs.path(stray)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"orphan")
        expected = {r.sha256: (r.retain_until, False)}
        got = s.blobs.audit(expected, disposed=set(), fix=False)
        assert got["orphaned_objects"] == [stray]
        assert s.blobs.audit({}, disposed={r.sha256, stray}, fix=False)[
            "orphaned_objects"] == []
        assert s.scrub()["backend"]["orphaned_objects"] == [stray]


# ------------------------------------------------------ the writer over a socket


def test_remote_writer_is_a_store_writer_over_the_channel(tmp_path: Path) -> None:
    """A store attached to another store's writer: puts, calls and typed refusals."""
    from depository.store import RemoteWriter, WriterServer

    path = tmp_path / "s"
    lost: list[bool] = []
    with Store.init(path, config=store_config()) as parent:
        assert parent.local_writer is not None
        server = WriterServer(parent.local_writer, parent.product, path)
        try:
            worker = Store.attach(
                path, lambda reads: RemoteWriter(server.path, reads, lambda: lost.append(True)))
            try:
                r = worker.put("gurukul", "a", b"one", metadata={"k": "v"}, actor="w")
                assert parent.get("gurukul", "a").log_index == r.log_index
                assert worker.put("gurukul", "a", b"one").duplicate
                with pytest.raises(WriteOnceError):
                    worker.put("gurukul", "a", b"two")
                big = worker.put("gurukul", "big", b"B" * 100_000)  # bytes stored here
                assert worker.open_content(worker.get("gurukul", "big")).read() == (
                    b"B" * 100_000)
                res = worker.put_many([PutItem("gurukul", "m/1", b"1"),
                                       PutItem("gurukul", "a", b"x")])
                assert isinstance(res[0], Receipt) and isinstance(res[1], WriteOnceError)
                gen = worker.token_generation
                secret, tok = worker.create_token(role="auditor", actor="admin")
                assert worker.token_generation != gen
                assert parent.authenticate(secret, datetime.now(UTC)) == tok
                hold = worker.place_hold(matter="m", reason="r", actor="legal",
                                         artifact_ids=[big.artifact_id])
                assert [h.id for h in parent.holds()] == [hold.id]
                note = worker.checkpoint()
                assert parent.latest_checkpoint()[1] == note
                worker.lock("drill", check="manual", actor="admin")
                with pytest.raises(GovernanceLockedError) as e:
                    worker.put("gurukul", "b", b"x")
                assert e.value.reason == "drill"
                with pytest.raises(GovernanceLockedError):  # refused before storing
                    worker.put("gurukul", "c", io.BytesIO(b"C" * 100_000))
                assert worker.unlock(reason="ok", actor="admin") > 0
            finally:
                worker.close()
        finally:
            server.close()
    assert lost == []  # our own close is not the writer going away


def test_remote_calls_are_limited_to_the_writer_contract(tmp_path: Path) -> None:
    from depository.store import _remote

    with Store.init(tmp_path / "s", config=store_config()) as s:
        assert s.local_writer is not None
        server = _remote.WriterServer(s.local_writer, s.product, tmp_path / "s")
        try:
            ch = _remote._Channel(server.path, lambda: None)
            try:
                with pytest.raises(StoreError, match="cannot be called"):
                    ch.call("close", [], {})
                with pytest.raises(StoreError, match="cannot be called"):
                    ch.call("__init__", [], {})
            finally:
                ch.close()
        finally:
            server.close()
        assert s.put("gurukul", "still", b"open").log_index > 0


# ----------------------------------------------------------- the LogStorage seam


def test_the_writer_reaches_storage_only_through_log_storage(tmp_path: Path) -> None:
    """Every write of a batch goes through LogStorage methods: a storage whose commit
    fails loses the batch as a whole, and the writer recovers on the next batch."""
    from depository.store._engine import WriterEngine

    with Store.init(tmp_path / "s", config=store_config()) as s:
        assert s.local_writer is not None
        engine: WriterEngine = s.local_writer.engine
        real = engine.db
        seen: list[str] = []

        class Spy:
            def __getattr__(self, name: str) -> Any:
                seen.append(name)
                attr = getattr(real, name)
                if name == "commit" and fail:
                    def broken() -> None:
                        raise sqlite3.OperationalError("disk I/O error (simulated)")
                    return broken
                return attr

        fail = True
        engine.db = Spy()  # type: ignore[assignment]
        size = s.size()
        with pytest.raises(StoreError, match="storage error"):
            s.put("gurukul", "x", b"x")
        assert s.size() == size  # rolled back: nothing of the batch is visible
        fail = False
        r = s.put("gurukul", "x", b"x")
        assert r.log_index == size
        assert {"begin", "write_rows", "commit", "rollback"} <= set(seen)
        engine.db = real
