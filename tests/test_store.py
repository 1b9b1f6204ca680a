"""The WORM store: write-once, retention, holds, disposal, governance, proofs."""

from __future__ import annotations

import hashlib
import io
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from depository.store import (
    GovernanceLockedError,
    HoldError,
    MetadataError,
    NotFoundError,
    QuotaError,
    Receipt,
    RetentionError,
    SchemaMismatchError,
    Store,
    StoreError,
    StoreExistsError,
    TooLargeError,
    UnknownProductError,
    WriteOnceError,
)
from depository.store.config import default_config_dict
from depository.tlog import merkle
from depository.tlog.checkpoint import verify_checkpoint, verify_proof_file
from depository.tlog.record import parse_record

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def _config(**product_overrides: Any) -> dict[str, Any]:
    cfg = default_config_dict("test.example/log")
    cfg["checkpoint"] = {"every_entries": 50, "every_ms": 200}
    for pid, over in product_overrides.items():
        cfg["products"][pid].update(over)
    return cfg


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store.init(tmp_path / "store", config=_config())
    yield s
    s.close()


def _log_types(s: Store) -> list[str]:
    return [parse_record(leaf, index=i).type for i, leaf in s.log_entries(0, s.size())]


def test_init_layout(tmp_path: Path) -> None:
    s = Store.init(tmp_path / "s", origin="x.example/log")
    s.close()
    d = tmp_path / "s"
    assert (d / "depository.db").is_file() and (d / "objects").is_dir()
    assert (d / "keys" / "log.key").stat().st_mode & 0o777 == 0o600
    assert yaml.safe_load((d / "depository.yaml").read_text())["origin"] == "x.example/log"
    with Store.open(d, readonly=True) as s2:
        assert s2.record(0).type == "store.init"
        assert sorted(s2.config.products) == ["ai-assistant", "ai-avatar", "enforcement",
                                              "gurukul"]
        size, note = s2.latest_checkpoint()
        cp, _ = verify_checkpoint(note, [s2.verifier_key])
        assert cp.size == size == 1
    with pytest.raises(StoreExistsError):
        Store.init(d)


def test_put_get_and_receipt_proof(store: Store) -> None:
    r = store.put("gurukul", "l/1.txt", b"lesson one", metadata={"course": "algebra"},
                  provenance={"author": "t1"}, wait_checkpoint=True)
    assert r.sha256 == hashlib.sha256(b"lesson one").hexdigest()
    assert r.proof is not None and r.checkpoint is not None
    verify_proof_file(r.proof, r.leaf_hash, [store.verifier_key])
    art = store.get("gurukul", "l/1.txt")
    assert art.id == r.artifact_id and art.metadata == {"course": "algebra"}
    with store.open_content(art) as f:
        assert f.read() == b"lesson one"
    rec = store.record(r.log_index)
    assert rec.type == "artifact.put" and rec.body["sha256"] == r.sha256
    assert merkle.leaf_hash(dict(store.log_entries(r.log_index, r.log_index + 1))[r.log_index]
                            ) == r.leaf_hash


def test_large_artifact_goes_to_a_read_only_file(store: Store) -> None:
    data = bytes(range(256)) * 1024  # 256 KiB > inline_max
    r = store.put("ai-avatar", "big.bin", io.BytesIO(data))
    p = store.blobs.path(r.sha256)
    assert p.read_bytes() == data and p.stat().st_mode & 0o222 == 0
    with store.open_content(store.get("ai-avatar", "big.bin")) as f:
        assert f.read() == data
    assert not list(store.blobs.tmp.iterdir())


def test_write_once(store: Store) -> None:
    r1 = store.put("gurukul", "n", b"same")
    size = store.size()
    r2 = store.put("gurukul", "n", b"same")
    assert r2.duplicate and r2.log_index == r1.log_index and store.size() == size
    with pytest.raises(WriteOnceError, match="write-once"):
        store.put("gurukul", "n", b"different")
    assert _log_types(store)[-1] == "artifact.refused"
    with store.open_content(store.get("gurukul", "n")) as f:
        assert f.read() == b"same"
    # The same name in another product is another artifact.
    store.put("enforcement", "n", b"different")


def test_product_isolation(store: Store) -> None:
    store.put("gurukul", "secret", b"g")
    with pytest.raises(NotFoundError):
        store.get("enforcement", "secret")
    aid = store.get("gurukul", "secret").id
    with pytest.raises(NotFoundError):
        store.get("enforcement", aid)
    assert store.ls(product="enforcement") == []
    with pytest.raises(UnknownProductError):
        store.put("nope", "x", b"x")


def test_too_large_is_refused_while_streaming(tmp_path: Path) -> None:
    cfg = _config()
    cfg["max_artifact_size"] = 100_000
    with Store.init(tmp_path / "s", config=cfg) as s:
        size = s.size()
        reads = []

        class Counting(io.BytesIO):
            def read(self, n: int | None = -1) -> bytes:
                chunk = super().read(n)
                reads.append(len(chunk))
                return chunk

        with pytest.raises(TooLargeError, match="maximum"):
            s.put("gurukul", "huge", Counting(b"x" * 5_000_000))
        assert sum(reads) < 5_000_000  # stopped early, did not read everything
        assert s.size() == size and not list(s.blobs.tmp.iterdir())
        with pytest.raises(NotFoundError):
            s.get("gurukul", "huge")


def test_metadata_schema_enforced(tmp_path: Path) -> None:
    schema = {"type": "object", "required": ["decision_id"],
              "properties": {"decision_id": {"type": "string"}}}
    with Store.init(tmp_path / "s", config=_config(enforcement={"metadata_schema": schema})) as s:
        size = s.size()
        with pytest.raises(MetadataError, match="decision_id"):
            s.put("enforcement", "d1", b"x", metadata={"other": 1})
        with pytest.raises(MetadataError, match="decision_id"):
            s.put("enforcement", "d1", b"x", metadata={"decision_id": 7})
        assert s.size() == size
        s.put("enforcement", "d1", b"x", metadata={"decision_id": "D-1"})


def test_quotas(tmp_path: Path) -> None:
    cfg = _config(gurukul={"quota": {"bytes": 10, "artifacts": 2}})
    with Store.init(tmp_path / "s", config=cfg) as s:
        s.put("gurukul", "a", b"12345")
        with pytest.raises(QuotaError) as exc:
            s.put("gurukul", "b", b"1234567")
        assert exc.value.kind == "bytes" and exc.value.used == 5 and exc.value.limit == 10
        s.put("gurukul", "b", b"1")
        with pytest.raises(QuotaError, match="artifact-count"):
            s.put("gurukul", "c", b"1")
        assert [a.name for a in s.ls(product="gurukul")] == ["a", "b"]


@pytest.mark.parametrize("table,sql", [
    ("artifact", "UPDATE artifact SET name = 'x'"),
    ("artifact", "DELETE FROM artifact"),
    ("log", "UPDATE log SET leaf = x'00'"),
    ("log", "DELETE FROM log"),
    ("checkpoint", "DELETE FROM checkpoint"),
    ("node", "UPDATE node SET hash = zeroblob(32)"),
    ("hold", "DELETE FROM hold"),
    ("retention", "UPDATE retention SET retain_until = '2000-01-01'"),
    ("inline_blob", "UPDATE inline_blob SET data = x'00'"),
    ("inline_blob", "DELETE FROM inline_blob"),
])
def test_triggers_refuse_updates_and_deletes(store: Store, table: str, sql: str) -> None:
    r = store.put("gurukul", "a", b"x" * 10)
    store.place_hold(matter="M", reason="r", actor="legal", artifact_ids=[r.artifact_id])
    store.extend_retention("gurukul", "a", FAR_FUTURE, actor="a", reason="r")
    conn = sqlite3.connect(store.path / "depository.db")
    with pytest.raises(sqlite3.IntegrityError, match=r"depository: .* (refused|not been disposed)"):
        conn.execute(sql)
    conn.close()


def test_retention_only_extends(store: Store) -> None:
    r = store.put("gurukul", "a", b"x")
    later = datetime.fromisoformat(r.retain_until.replace("Z", "+00:00")) + timedelta(days=1)
    store.extend_retention("gurukul", "a", later, actor="legal", reason="regulator")
    assert store.get("gurukul", "a").retain_until > r.retain_until
    with pytest.raises(RetentionError, match="only be extended"):
        store.extend_retention("gurukul", "a", later - timedelta(days=2), actor="x", reason="y")
    assert _log_types(store)[-2:] == ["retention.extend", "retention.refused"]
    with pytest.raises(RetentionError, match="minimum"):
        store.put("gurukul", "b", b"x", retain_until=datetime.now(UTC) + timedelta(days=30))


def test_holds_block_disposal_and_disposal_keeps_proofs(store: Store) -> None:
    held = store.put("gurukul", "held", b"h" * 10)
    free = store.put("gurukul", "free", b"f" * 100_000)  # a file blob
    other = store.put("ai-assistant", "x", b"z")
    hold = store.place_hold(matter="CASE-1", reason="litigation", actor="legal",
                            artifact_ids=[held.artifact_id])
    assert [a.id for a in store.disposable(datetime.now(UTC))] == []
    with pytest.raises(RetentionError, match="clock"):
        store.dispose(FAR_FUTURE, actor="ops")  # may not run ahead of the store's clock
    store.clock = lambda: FAR_FUTURE
    ids = {a.id for a in store.disposable(FAR_FUTURE)}
    assert ids == {free.artifact_id, other.artifact_id}
    with pytest.raises(RetentionError, match="legal hold"):
        store.dispose(FAR_FUTURE, actor="ops", artifact_ids=[held.artifact_id])
    note = store.checkpoint()
    store.dispose(FAR_FUTURE, actor="ops", artifact_ids=[free.artifact_id])
    assert not store.blobs.exists(free.sha256)
    art = store.get("gurukul", "free")
    assert art.disposed
    with pytest.raises(NotFoundError, match="disposed"):
        store.open_content(art)
    rec = store.record(store.size() - 1)
    assert rec.type == "artifact.dispose" and rec.body["artifact_id"] == free.artifact_id
    # The disposed artifact's record still proves against the old checkpoint.
    size = int(note.split(b"\n")[1])
    proof = store.inclusion_proof(free.log_index, size)
    cp, _ = verify_checkpoint(note, [store.verifier_key])
    merkle.verify_inclusion(free.leaf_hash, free.log_index, size, proof, cp.root_hash)
    store.release_hold(hold.id, reason="settled", actor="legal")
    with pytest.raises(HoldError, match="already released"):
        store.release_hold(hold.id, reason="again", actor="legal")
    store.dispose(FAR_FUTURE, actor="ops")
    assert store.get("gurukul", "held").disposed
    assert store.get("ai-assistant", "x").disposed


def test_product_hold_with_time_range_covers_future_writes(store: Store) -> None:
    store.place_hold(matter="M2", reason="r", actor="legal", product="enforcement",
                     since=datetime(2000, 1, 1, tzinfo=UTC))
    store.put("enforcement", "later", b"x")
    store.put("gurukul", "other", b"y")
    assert [a.name for a in store.disposable(FAR_FUTURE)] == ["other"]
    store.clock = lambda: FAR_FUTURE
    store.dispose(actor="ops")
    assert store.get("gurukul", "other").disposed
    assert not store.get("enforcement", "later").disposed


def test_governance_lock_and_unlock(store: Store) -> None:
    store.lock("suspicious executor", check="manual")
    with pytest.raises(GovernanceLockedError, match="governance lock"):
        store.put("gurukul", "a", b"x")
    assert store.governance_status()["locked"]
    store.unlock(reason="investigated INC-1", actor="admin")
    store.put("gurukul", "a", b"x")
    assert [h["state"] for h in store.governance_status()["history"]] == ["locked", "unlocked"]


def test_changed_product_schema_refuses_to_open_for_writing(tmp_path: Path) -> None:
    d = tmp_path / "s"
    Store.init(d, config=_config()).close()
    original = (d / "depository.yaml").read_text()
    cfg = yaml.safe_load(original)
    cfg["products"]["gurukul"]["metadata_schema"] = {"type": "object", "required": ["x"]}
    (d / "depository.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(SchemaMismatchError, match="gurukul"):
        Store.open(d)
    (d / "depository.yaml").write_text(original)
    with Store.open(d) as s:  # config restored: opens, but the lock stays until unlocked
        assert s.governance_status()["locked"]
        with pytest.raises(GovernanceLockedError):
            s.put("gurukul", "a", b"x")
        s.unlock(reason="config restored", actor="admin")
        s.put("gurukul", "a", b"x")


def test_dropped_trigger_refuses_to_open_for_writing(tmp_path: Path) -> None:
    d = tmp_path / "s"
    Store.init(d).close()
    conn = sqlite3.connect(d / "depository.db")
    conn.execute("DROP TRIGGER artifact_no_update")
    conn.close()
    with pytest.raises(SchemaMismatchError, match="SQL schema"):
        Store.open(d)


def test_one_writer_process_at_a_time(store: Store) -> None:
    with pytest.raises(StoreError, match="another process"):
        Store.open(store.path)
    with Store.open(store.path, readonly=True) as ro:
        assert ro.size() == store.size()


def test_concurrent_puts_are_group_committed(store: Store) -> None:
    receipts = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        for i in range(40):
            r = store.put("ai-assistant", f"t{t}/{i}", f"{t}-{i}".encode())
            with lock:
                receipts.append(r)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len({r.log_index for r in receipts}) == 640
    assert store.size() == 641
    assert len(store.ls(product="ai-assistant", limit=1000)) == 640


def test_proofs_from_storage_match_reference(store: Store) -> None:
    for i in range(70):
        store.put("gurukul", f"p{i}", str(i).encode())
    n = store.size()
    leaves = [merkle.leaf_hash(leaf) for _, leaf in store.log_entries(0, n)]
    for size in range(1, n + 1):
        assert store.root_at(size) == merkle.root(leaves[:size])
        for index in range(0, size, 7):
            assert store.inclusion_proof(index, size) == merkle.inclusion_proof(
                leaves, index, size)
        for size1 in range(1, size + 1, 5):
            assert store.consistency_proof(size1, size) == merkle.consistency_proof(
                leaves, size1, size)


def test_proof_from_storage_with_a_missing_node_fails_naming_it(tmp_path: Path) -> None:
    d = tmp_path / "s"
    with Store.init(d, config=_config()) as s:
        for i in range(16):
            s.put("gurukul", f"p{i}", str(i).encode())
        n = s.size()
    conn = sqlite3.connect(d / "depository.db")
    conn.execute("DROP TRIGGER node_no_delete")  # as an attacker with file access would
    conn.execute("DELETE FROM node WHERE level = 2 AND k = 0")
    conn.commit()
    conn.close()
    with Store.open(d, readonly=True) as s:
        with pytest.raises(StoreError, match=r"Merkle node \(2, 0\) is missing"):
            s.inclusion_proof(5, n)  # its path needs the subtree over leaves 0-3
        # A proof that does not need the node still comes out right.
        assert s.inclusion_proof(1, 2) == merkle.inclusion_proof(
            [merkle.leaf_hash(leaf) for _, leaf in s.log_entries(0, 2)], 1, 2)


def test_reopen_continues_the_same_tree(tmp_path: Path) -> None:
    d = tmp_path / "s"
    with Store.init(d, config=_config()) as s:
        for i in range(37):
            s.put("gurukul", f"a{i}", str(i).encode())
    with Store.open(d) as s:
        for i in range(29):
            s.put("gurukul", f"b{i}", str(i).encode())
        n = s.size()
        leaves = [merkle.leaf_hash(leaf) for _, leaf in s.log_entries(0, n)]
        s.checkpoint()
        size, note = s.latest_checkpoint()
        assert size == n
        cp, _ = verify_checkpoint(note, [s.verifier_key])
        assert cp.root_hash == merkle.root(leaves)


def test_ls_filters_and_cursor(store: Store) -> None:
    for i in range(12):
        store.put("gurukul", f"course/{i % 3}/l{i}", b"x%d" % i,
                  metadata={"course": f"c{i % 3}", "n": i})
    store.put("ai-avatar", "course/0/x", b"y", metadata={"course": "c0"})
    assert len(store.ls(product="gurukul", prefix="course/1/")) == 4
    assert {a.name for a in store.ls(product="gurukul", meta={"course": "c2"})} == {
        "course/2/l2", "course/2/l5", "course/2/l8", "course/2/l11"}
    assert [a.name for a in store.ls(product="gurukul", meta={"n": "7"})] == ["course/1/l7"]
    page1 = store.ls(product="gurukul", limit=5)
    page2 = store.ls(product="gurukul", limit=5, after=page1[-1].log_index)
    assert len(page1) == 5 and len(page2) == 5 and page1[-1].log_index < page2[0].log_index
    future = "2999-01-01T00:00:00.000000Z"
    assert store.ls(product="gurukul", since=future) == []
    assert len(store.ls(product="gurukul", until=future, limit=100)) == 12


def test_scrub_finds_damaged_bytes_and_locks(store: Store) -> None:
    r = store.put("ai-avatar", "big", b"q" * 100_000)
    store.put("gurukul", "small", b"s")
    assert store.scrub()["problems"] == []
    p = store.blobs.path(r.sha256)
    p.chmod(0o644)
    p.write_bytes(b"tampered")
    report = store.scrub()
    assert [x["artifact_id"] for x in report["problems"]] == [r.artifact_id]
    assert store.governance_status()["locked"]
    with pytest.raises(GovernanceLockedError):
        store.put("gurukul", "after", b"x")


def test_an_operation_that_hits_a_worm_trigger_locks_the_store(store: Store) -> None:
    r = store.put("gurukul", "a", b"x")

    def rogue(txn: Any) -> None:
        txn.db.conn.execute("UPDATE artifact SET name = 'renamed' WHERE id = ?", (r.artifact_id,))

    with pytest.raises(StoreError, match="write-once"):
        store.local_writer.engine.submit(rogue).result()
    store.checkpoint()  # let the writer record the lock
    status = store.governance_status()
    assert status["locked"] and "bypass WORM" in status["reason"]
    assert store.get("gurukul", "a").name == "a"
    with pytest.raises(GovernanceLockedError):
        store.put("gurukul", "b", b"y")


def test_tokens_issue_authenticate_revoke(store: Store) -> None:
    now = datetime.now(UTC)
    secret, tok = store.create_token(role="writer", product="gurukul", actor="admin",
                                     expires=now + timedelta(days=1), note="ci")
    assert secret.startswith("dep_" + tok.id)
    assert store.authenticate(secret, now) == tok
    assert store.authenticate(secret, now + timedelta(days=2)) is None  # expired
    assert store.authenticate(secret + "x", now) is None
    raw = sqlite3.connect(store.path / "depository.db").execute(
        "SELECT group_concat(secret_sha256) FROM token").fetchone()[0]
    assert secret not in raw  # only the hash is stored
    store.revoke_token(tok.id, reason="rotated", actor="admin")
    assert store.authenticate(secret, now) is None
    assert _log_types(store)[-2:] == ["token.issue", "token.revoke"]
    with pytest.raises(StoreError, match="needs a product"):
        store.create_token(role="writer", actor="admin")
    with pytest.raises(StoreError, match="store-wide"):
        store.create_token(role="auditor", product="gurukul", actor="admin")


def test_append_event_only_informational(store: Store) -> None:
    idx, _leaf_hash = store.append_event("evidence.export", actor="legal", product="gurukul",
                                        body={"matter": "M-1", "count": 0})
    assert store.record(idx).type == "evidence.export"
    with pytest.raises(StoreError, match="cannot be appended"):
        store.append_event("artifact.put", actor="x", product=None, body={})


def test_disposal_and_reupload_of_the_same_file_bytes(store: Store) -> None:
    data = b"shared" * 20_000  # a blob file
    a = store.put("gurukul", "a", data)
    store.clock = lambda: FAR_FUTURE
    store.dispose(actor="ops", artifact_ids=[a.artifact_id])
    assert not store.blobs.exists(a.sha256)
    b = store.put("gurukul", "b", data)  # the same bytes again, after the disposal
    with store.open_content(store.get("gurukul", "b")) as f:
        assert f.read() == data
    assert b.sha256 == a.sha256


def test_default_retention_runs_from_receipt(store: Store) -> None:
    r = store.put("gurukul", "a", b"x")
    body = store.record(r.log_index).body
    received = datetime.fromisoformat(body["received"].replace("Z", "+00:00"))
    until = datetime.fromisoformat(r.retain_until.replace("Z", "+00:00"))
    assert until - received == timedelta(days=store.config.default_retention_days)
    assert body["received"] <= r.created


# --------------------------------------------------------------------------- schema v2


def test_pre_encoded_put_records_are_byte_identical_to_encode_record() -> None:
    """The writer splices seq and time into a record encoded in the caller's thread; the
    bytes must be exactly encode_record's, for any body (unicode, escapes, numbers)."""
    import random

    from depository.store import _encode
    from depository.tlog.record import Record, canonical_json, encode_record

    rng = random.Random(8785)
    alphabet = ("abcXYZ019 _-/.\"\\\n\t\r\b\f\x00\x01\x1f\x7f\u00e9\u00fc\u20ac\u0928\u092e"
                "\u2028\u2029\ufeff\uffff\U0001f600\U0001d11e\u6f22")

    def text(lo: int = 0) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, 12)))

    def scalar() -> Any:
        kind = rng.randrange(7)
        if kind == 0:
            return text()
        if kind == 1:
            return rng.randint(-(2**53) + 1, 2**53 - 1)
        if kind == 2:
            return rng.choice([0.0, -0.0, 1.5, 1e21, 1e-7, 123456789.125, -3.3e-300,
                               rng.uniform(-1e6, 1e6), 5e-324, 1.7976931348623157e308])
        if kind == 3:
            return rng.choice([True, False, None])
        if kind == 4:
            return [scalar() for _ in range(rng.randint(0, 3))]
        if kind == 5:
            return {text(1): scalar() for _ in range(rng.randint(0, 3))}
        return rng.randint(-10, 10)

    for i in range(2000):
        meta = {text(1): scalar() for _ in range(rng.randint(0, 5))}
        prov = {text(1): scalar() for _ in range(rng.randint(0, 3))}
        fields = {
            "artifact_id": "art_" + text(1), "name": text(1), "sha256": f"{i:064x}",
            "size": rng.randint(0, 2**53 - 1), "media_type": text(),
            "retain_until": f"2033-01-0{rng.randint(1, 9)}T00:00:00.000000Z",
            "storage": rng.choice(["inline", "file"]),
            "received": f"2026-01-01T00:00:00.{rng.randrange(10**6):06d}Z",
        }
        actor, product = text(1), rng.choice([None, text(1)])
        seq, when = rng.randint(0, 2**40), f"2026-11-28T18:00:{i % 60:02d}.{i:06d}Z"
        body = _encode.put_body(**fields, metadata_json=canonical_json(meta),
                                provenance_json=canonical_json(prov))
        assert body == canonical_json({**fields, "metadata": meta, "provenance": prov})
        head, tail = _encode.envelope_parts("artifact.put", actor, product, body)
        got = _encode.splice(head, seq, canonical_json(when), tail)
        want = encode_record(Record(seq=seq, time=when, type="artifact.put", actor=actor,
                                    product=product, body={**fields, "metadata": meta,
                                                           "provenance": prov}))
        assert got == want, (i, got, want)


def test_store_put_leaves_match_encode_record(store: Store) -> None:
    """End to end: the leaf the writer stored re-encodes to itself."""
    from depository.tlog.record import encode_record

    store.put("gurukul", "\u00fcnicode/\U0001f600 \"q\" \\", b"x",
              metadata={"n": 1.5, "big": 2**53 - 1, "t": "\u2028\\", "f": False},
              provenance={"who": "\u0928\u092e"}, actor="t\u00e9st")
    leaf = dict(store.log_entries(0, store.size()))[store.size() - 1]
    assert encode_record(parse_record(leaf, index=store.size() - 1)) == leaf


def test_same_name_twice_in_one_batch_is_write_once(store: Store) -> None:
    with store.local_writer.paused():  # all four commit as one batch
        f1 = store.put_async("gurukul", "a", b"one")
        f2 = store.put_async("gurukul", "a", b"one")
        f3 = store.put_async("gurukul", "a", b"two")
        f4 = store.put_async("gurukul", "b", b"one")
    r1, r2, r4 = f1.result(), f2.result(), f4.result()
    with pytest.raises(WriteOnceError):
        f3.result()
    assert not r1.duplicate and r2.duplicate and r2.log_index == r1.log_index
    assert r2.leaf_hash == r1.leaf_hash and not r4.duplicate
    assert [a.name for a in store.ls(product="gurukul")] == ["a", "b"]
    assert _log_types(store)[-3:] == ["artifact.put", "artifact.refused", "artifact.put"]
    # And against the committed row in a later batch.
    assert store.put("gurukul", "a", b"one").duplicate
    with pytest.raises(WriteOnceError):
        store.put("gurukul", "a", b"two")


def test_batch_retried_one_by_one_keeps_write_once(store: Store) -> None:
    """A failure below the operations rolls the batch back and retries each op alone:
    the puts of the batch must not see each other's rolled-back rows."""

    def broken(txn: Any) -> None:
        txn.db.conn.execute("INSERT INTO no_such_table VALUES (1)")

    with store.local_writer.paused():
        f1 = store.put_async("gurukul", "a", b"one")
        bad = store.local_writer.engine.submit(broken)
        f2 = store.put_async("gurukul", "a", b"one")
        f3 = store.put_async("gurukul", "a", b"two")
    r1, r2 = f1.result(), f2.result()
    with pytest.raises(StoreError, match="storage error"):
        bad.result()
    with pytest.raises(WriteOnceError):
        f3.result()
    assert r2.duplicate and r2.log_index == r1.log_index
    assert store.get("gurukul", "a").log_index == r1.log_index
    assert store.open_content(store.get("gurukul", "a")).read() == b"one"


def test_put_many_per_item_results(tmp_path: Path) -> None:
    from depository.store import PutItem

    schema = {"type": "object", "required": ["case"], "properties": {"case": {"type": "string"}}}
    with Store.init(tmp_path / "s", config=_config(enforcement={"metadata_schema": schema})
                    ) as s:
        s.put("enforcement", "exists", b"old", metadata={"case": "c0"})
        items = [PutItem("enforcement", f"d/{i}", b"body %d" % i, metadata={"case": f"c{i}"})
                 for i in range(7)]
        items[2] = PutItem("enforcement", "d/2", b"bad", metadata={"case": 2})  # schema
        items[4] = PutItem("enforcement", "exists", b"new", metadata={"case": "c4"})  # WORM
        items[5] = PutItem("nope", "d/5", b"x")  # unknown product
        items.append(PutItem("enforcement", "d/1", b"body 1", metadata={"case": "c1"}))
        items.append(PutItem("ai-avatar", "big", b"B" * 100_000))  # a file blob
        size = s.size()
        res = s.put_many(iter(items), actor="bulk", chunk_size=3)
        assert len(res) == len(items)
        assert isinstance(res[2], MetadataError) and "item 2 (enforcement/d/2)" in str(res[2])
        assert "case" in str(res[2])
        assert isinstance(res[4], WriteOnceError)
        assert isinstance(res[5], UnknownProductError) and "item 5" in str(res[5])
        ok = {i: r for i, r in enumerate(res) if not isinstance(r, Exception)}
        assert sorted(ok) == [0, 1, 3, 6, 7, 8]
        assert ok[7].duplicate and ok[7].log_index == ok[1].log_index
        # Nothing of a refused item was stored; the refused WORM attempt is logged.
        names = [a.name for a in s.ls(product="enforcement", limit=100)]
        assert names == ["exists", "d/0", "d/1", "d/3", "d/6"]
        assert s.open_content(s.get("enforcement", "exists")).read() == b"old"
        assert s.size() == size + 6  # five puts, one artifact.refused
        assert _log_types(s).count("artifact.refused") == 1
        for r in ok.values():
            assert isinstance(r, Receipt)
            leaf = dict(s.log_entries(r.log_index, r.log_index + 1))[r.log_index]
            assert merkle.leaf_hash(leaf) == r.leaf_hash
        assert s.open_content(s.get("ai-avatar", "big")).read() == b"B" * 100_000
        s.lock("drill", check="manual")
        locked = s.put_many([PutItem("enforcement", "d/9", b"x", metadata={"case": "c"})])
        assert isinstance(locked[0], GovernanceLockedError)
    with Store.open(tmp_path / "s", readonly=True) as s:  # durable, and the log verifies
        assert s.get("enforcement", "d/6").size == len(b"body 6")


def test_put_many_chunk_failing_below_the_items(store: Store, monkeypatch: Any) -> None:
    """A storage failure fails its whole chunk, item by item, and writes none of it."""
    from depository.store import PutItem
    from depository.store import _engine as store_mod

    real = store_mod.Txn.flush
    calls = {"n": 0}

    def flaky(self: Any) -> None:
        if self.art_rows and any(r[3] == "fail/1" for r in self.art_rows):
            calls["n"] += 1
            raise sqlite3.OperationalError("simulated I/O error")
        real(self)

    monkeypatch.setattr(store_mod.Txn, "flush", flaky)
    items = [PutItem("gurukul", f"ok/{i}", b"%d" % i) for i in range(2)]
    items += [PutItem("gurukul", f"fail/{i}", b"f%d" % i) for i in range(2)]
    res = store.put_many(items, chunk_size=2)
    assert [type(r).__name__ for r in res] == ["Receipt", "Receipt", "StoreError", "StoreError"]
    assert calls["n"] >= 1
    assert [a.name for a in store.ls(product="gurukul")] == ["ok/0", "ok/1"]
    monkeypatch.setattr(store_mod.Txn, "flush", real)
    assert [type(r).__name__ for r in store.put_many(items)] == [
        "Receipt", "Receipt", "Receipt", "Receipt"]


def test_inline_bytes_are_per_artifact_and_disposal_removes_them(store: Store) -> None:
    a = store.put("gurukul", "a", b"same bytes")
    b = store.put("ai-assistant", "b", b"same bytes")
    conn = store.reads.conn()
    assert conn.execute("SELECT count(*) FROM inline_blob").fetchone()[0] == 2
    store.clock = lambda: FAR_FUTURE
    store.dispose(FAR_FUTURE, actor="ops", artifact_ids=[a.artifact_id])
    rec = store.record(store.size() - 1)
    assert rec.body["bytes_removed"] is True  # inline bytes are this artifact's alone
    assert [r[0] for r in conn.execute("SELECT log_idx FROM inline_blob")] == [b.log_index]
    assert store.open_content(store.get("ai-assistant", "b")).read() == b"same bytes"
    assert store.scrub()["problems"] == []


def test_schema_v1_store_is_refused(tmp_path: Path) -> None:
    Store.init(tmp_path / "s", config=_config()).close()
    conn = sqlite3.connect(tmp_path / "s" / "depository.db")
    conn.execute("DROP TRIGGER meta_no_update")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    for readonly in (False, True):
        with pytest.raises(SchemaMismatchError,
                           match=r"schema version 1, .* reads schema version 2 only"):
            Store.open(tmp_path / "s", readonly=readonly)


def _plan(store: Store, call: Any) -> str:
    traced: list[str] = []
    conn = store.reads.conn()
    conn.set_trace_callback(traced.append)
    try:
        call()
    finally:
        conn.set_trace_callback(None)
    (sql,) = [t for t in traced if t.lstrip().startswith("SELECT")]
    return " / ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql))


def test_ls_query_plans_use_the_v2_indexes(store: Store) -> None:
    for i in range(30):
        store.put("gurukul", f"n/{i}", b"%d" % i, metadata={"course": f"c{i % 3}"})
    meta = _plan(store, lambda: store.ls(product="gurukul", meta={"course": "c1"}, after=3))
    # Matches come out of the metadata key in log order: no sort, stops at the limit.
    assert "SEARCH m0 USING PRIMARY KEY (product=? AND key=? AND value=? AND log_idx>?)" in meta
    assert "SEARCH a USING INTEGER PRIMARY KEY (rowid=?)" in meta
    assert "TEMP B-TREE" not in meta
    window = _plan(store, lambda: store.ls(product="gurukul", since="2000-01-01",
                                           until="2999-01-01", after=2))
    # (created, log_idx) order is log order: the index walk needs no sort.
    assert "SEARCH a USING INDEX artifact_product_created (product=? AND created>? AND " \
        "created<?)" in window
    assert "TEMP B-TREE" not in window
    page = _plan(store, lambda: store.ls(product="gurukul", after=5))
    # A plain cursor page walks the same index: a product of 1M artifacts is not sorted
    # to serve 100 of them.
    assert "SEARCH a USING INDEX artifact_product_created (product=?" in page, page
    assert "TEMP B-TREE" not in page
    names = [a.name for a in store.ls(product="gurukul", limit=1000)]
    assert names == [f"n/{i}" for i in range(30)]
    cursor = store.ls(product="gurukul", limit=10)[-1].log_index
    assert [a.name for a in store.ls(product="gurukul", after=cursor, limit=5)] == [
        f"n/{i}" for i in range(10, 15)]
    by_name = _plan(store, lambda: store.get("gurukul", "n/4"))
    assert "USING INDEX sqlite_autoindex_artifact_1 (id=?)" in by_name
    assert [a.name for a in store.ls(product="gurukul", meta={"course": "c1"}, after=3,
                                     limit=3)] == ["n/4", "n/7", "n/10"]


def test_record_times_never_go_back_along_the_log(store: Store) -> None:
    """A clock that steps back: records keep the last time (so ls by time stays in log
    order), and disposal waits until the clock catches up."""
    first = store.put("gurukul", "t/0", b"0")
    t_first = datetime.fromisoformat(first.created.replace("Z", "+00:00"))
    store.clock = lambda: t_first - timedelta(hours=1)
    second = store.put("gurukul", "t/1", b"1")
    assert second.created == first.created
    times = [parse_record(leaf, index=i).time for i, leaf in store.log_entries(0, store.size())]
    assert times == sorted(times)
    store.clock = lambda: t_first + timedelta(seconds=1)
    third = store.put("gurukul", "t/2", b"2")
    assert third.created > second.created
    got = store.ls(product="gurukul", since="2000-01-01", until="2999-01-01")
    assert [a.name for a in got] == ["t/0", "t/1", "t/2"]
    page = store.ls(product="gurukul", since="2000-01-01", after=second.log_index)
    assert [a.name for a in page] == ["t/2"]
    # Clock behind the log again: a disposal would be judged at a time the clock has not
    # reached, so it is refused.
    store.clock = lambda: FAR_FUTURE
    store.put("gurukul", "t/3", b"3")
    store.clock = lambda: FAR_FUTURE - timedelta(days=1)
    with pytest.raises(RetentionError, match="catches up"):
        store.dispose(actor="ops", artifact_ids=[first.artifact_id])
    assert not store.get("gurukul", "t/0").disposed


@pytest.mark.parametrize("field", ["name", "actor", "media_type"])
def test_a_lone_surrogate_is_refused_clearly_and_writes_nothing(store: Store,
                                                                 field: str) -> None:
    size = store.size()
    kw: dict[str, Any] = {"actor": "cli", "media_type": "text/plain"}
    name = "ok.txt"
    if field == "name":
        name = "bad\ud800.txt"
    else:
        kw[field] = "x\udc00"
    with pytest.raises(MetadataError, match="lone surrogate"):
        store.put("gurukul", name, b"bytes", **kw)
    assert store.size() == size
    assert store.ls(product="gurukul") == []
