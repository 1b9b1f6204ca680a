"""Sequencer election and fencing on a real PostgreSQL (tests/_pg.py), ADR 0014.

The writer engines here are the store's own (group commit over :class:`SequencerStorage`);
the database is a real server started by the fixture.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _pg import PgDatabase, pg_db, pg_server  # noqa: F401

from depository.signing import generate_key
from depository.store import Store, _pg
from depository.store._engine import Txn, WriterEngine
from depository.store._errors import ConfigError, FencedError, NotSequencerError, StoreError
from depository.store._model import utc_now
from depository.store.cluster import ClusterWriter, SequencerStorage, open_node
from depository.store.config import default_config_dict
from depository.tlog.record import parse_record

ORIGIN = "test.example/log"


@pytest.fixture
def db(pg_db: PgDatabase) -> Iterator[tuple[PgDatabase, str]]:  # noqa: F811
    signer, vkey = generate_key(ORIGIN)
    _pg.create_database(pg_db.owner_dsn, pg_db.service_dsn, origin=ORIGIN, verifier_key=vkey)
    yield pg_db, signer


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _engine(storage: SequencerStorage, signer: str) -> WriterEngine:
    return WriterEngine(storage, origin=ORIGIN, signer=signer, clock=utc_now, anchors=None,
                        checkpoint_every_ms=3_600_000, checkpoint_every_entries=1_000_000,
                        products=["gurukul"])


def _event(n: int) -> Any:
    def op(txn: Txn) -> int:
        return txn.append("evidence.export", "test", None, {"n": n})
    return op


def _elect(engine: WriterEngine, storage: SequencerStorage, addr: str) -> int:
    epoch: int = engine.submit(lambda txn: storage.elect(txn, addr)).result()
    return epoch


def _rows(d: PgDatabase, sql: str) -> list[tuple[Any, ...]]:
    with d.connect() as c:
        c.execute("SET search_path = depository")
        return [tuple(r) for r in c.execute(sql).fetchall()]


def test_one_sequencer_holds_the_lock_and_elections_are_logged(db: tuple[PgDatabase, str]
                                                               ) -> None:
    d, signer = db
    a = SequencerStorage(d.service_dsn, "node-a")
    ea = _engine(a, signer)
    assert _elect(ea, a, "127.0.0.1:1") == 1
    with pytest.raises(StoreError, match="holds the writer lock"):
        SequencerStorage(d.service_dsn, "node-b")  # a live sequencer: b cannot take over
    ea.submit(_event(1)).result()
    ea.close()  # its session ends: the lock is free
    b = SequencerStorage(d.service_dsn, "node-b")
    eb = _engine(b, signer)
    assert _elect(eb, b, "127.0.0.1:2") == 2
    eb.close()
    assert _rows(d, "SELECT epoch, node_id, log_idx FROM sequencer ORDER BY epoch") == [
        (1, "node-a", 0), (2, "node-b", 2)]  # a: its election and an event; then b
    leaves = [parse_record(bytes(r[0])) for r in _rows(d, "SELECT leaf FROM log ORDER BY idx")]
    elected = [r.body for r in leaves if r.type == "sequencer.elected"]
    assert elected == [
        {"node_id": "node-a", "epoch": 1, "previous": None, "previous_epoch": None},
        {"node_id": "node-b", "epoch": 2, "previous": "node-a", "previous_epoch": 1}]
    # The table is append-only like the log: even its owner cannot rewrite an epoch.
    with d.connect() as c, pytest.raises(psycopg.Error, match="write-once"):
        c.execute("UPDATE depository.sequencer SET node_id = 'x' WHERE epoch = 1")


def test_a_deposed_sequencer_that_has_not_noticed_cannot_commit(db: tuple[PgDatabase, str]
                                                                ) -> None:
    d, signer = db
    a = SequencerStorage(d.service_dsn, "node-a")
    ea = _engine(a, signer)
    _elect(ea, a, "127.0.0.1:1")
    ea.submit(_event(1)).result()
    # a loses the writer lock while its session lives on (as after a pooler's or an
    # operator's pg_advisory_unlock_all): it has not noticed anything.
    a.conn.execute("SELECT pg_advisory_unlock_all()")
    b = SequencerStorage(d.service_dsn, "node-b")
    eb = _engine(b, signer)
    assert _elect(eb, b, "127.0.0.1:2") == 2
    eb.submit(_event(2)).result()
    log_before = _rows(d, "SELECT idx, leaf_hash FROM log ORDER BY idx")
    cps_before = _rows(d, "SELECT size, root FROM checkpoint ORDER BY size")
    # a's next batch and its checkpoint are refused inside their transactions.
    with pytest.raises(FencedError, match="superseded by node 'node-b' \\(epoch 2\\)"):
        ea.submit(_event(3)).result()
    assert a.fenced
    with pytest.raises(NotSequencerError):
        ea.checkpoint()
    assert _rows(d, "SELECT idx, leaf_hash FROM log ORDER BY idx") == log_before
    assert _rows(d, "SELECT size, root FROM checkpoint ORDER BY size") == cps_before
    # The new sequencer carries on.
    eb.submit(_event(4)).result()
    eb.close()
    ea.close()
    assert len(_rows(d, "SELECT idx FROM log")) == len(log_before) + 1  # event 4


def test_nodes_fail_over_and_a_fenced_sequencer_steps_down_and_follows(
        tmp_path: Path, pg_db: PgDatabase) -> None:  # noqa: F811
    """Two nodes in this process (ClusterWriter, real peer channel): the sequencer is
    deposed behind its back, its next write is fenced, it steps down and then forwards
    to the new sequencer."""
    cfg = default_config_dict(ORIGIN)
    cfg["engine"] = {"type": "postgresql", "dsn": pg_db.service_dsn}
    Store.init(tmp_path / "s", config=cfg, admin_dsn=pg_db.owner_dsn).close()

    def node(name: str) -> Store:
        return open_node(tmp_path / "s", node_id=name, advertise=f"127.0.0.1:{_port()}",
                         secret=b"k" * 32, interval=0.1)

    a = node("a")
    b = node("b")
    try:
        wa, wb = a.writer, b.writer
        assert isinstance(wa, ClusterWriter) and isinstance(wb, ClusterWriter)
        assert wa.is_sequencer and not wb.is_sequencer and wa.epoch == 1
        r = b.put("gurukul", "via-b", b"1")  # forwarded to a
        assert a.get("gurukul", "via-b").log_index == r.log_index
        storage = wa._storage
        assert storage is not None
        storage.conn.execute("SELECT pg_advisory_unlock_all()")  # a has not noticed
        deadline = time.monotonic() + 10
        while not wb.is_sequencer and time.monotonic() < deadline:
            time.sleep(0.05)
        assert wb.is_sequencer and wb.epoch == 2
        assert wa.is_sequencer  # still believes it
        with pytest.raises(FencedError):
            a.put("gurukul", "via-a-fenced", b"2")
        while wa.is_sequencer and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not wa.is_sequencer, "the fenced sequencer did not step down"
        r2 = a.put("gurukul", "via-a", b"3")  # now forwarded to b
        assert b.get("gurukul", "via-a").log_index == r2.log_index
        with pytest.raises(StoreError):
            b.get("gurukul", "via-a-fenced")
    finally:
        a.close()
        b.close()


def test_a_node_that_cannot_listen_for_peers_does_not_stand_for_election(
        tmp_path: Path, pg_db: PgDatabase) -> None:  # noqa: F811
    cfg = default_config_dict(ORIGIN)
    cfg["engine"] = {"type": "postgresql", "dsn": pg_db.service_dsn}
    Store.init(tmp_path / "s", config=cfg, admin_dsn=pg_db.owner_dsn).close()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        addr = f"127.0.0.1:{busy.getsockname()[1]}"
        with pytest.raises(NotSequencerError, match="cannot listen on its --advertise"):
            open_node(tmp_path / "s", node_id="a", advertise=addr, secret=b"k" * 32)
    assert _rows(pg_db, "SELECT epoch FROM sequencer") == []


def test_an_election_continues_the_epochs_the_log_holds(db: tuple[PgDatabase, str]) -> None:
    """A database whose log already holds elections but whose sequencer table is empty
    (a clustered store migrated into it): the next epoch follows the log's, so the
    verifier's 'epochs only grow' still holds."""
    d, signer = db
    plain = _pg.PgLogStorage(d.service_dsn)
    e = WriterEngine(plain, origin=ORIGIN, signer=signer, clock=utc_now, anchors=None,
                     checkpoint_every_ms=3_600_000, checkpoint_every_entries=1_000_000,
                     products=["gurukul"])
    e.submit(lambda txn: txn.append("sequencer.elected", "depository", None, {
        "node_id": "old", "epoch": 5, "previous": "older", "previous_epoch": 4})).result()
    # Later, the same words inside a record's body: not an election.
    e.submit(lambda txn: txn.append("evidence.export", "test", None, {
        "x": {"type": "sequencer.elected", "epoch": 99}})).result()
    e.close()
    a = SequencerStorage(d.service_dsn, "node-a")
    ea = _engine(a, signer)
    assert _elect(ea, a, "127.0.0.1:1") == 6
    ea.close()
    leaves = [parse_record(bytes(r[0])) for r in _rows(d, "SELECT leaf FROM log ORDER BY idx")]
    assert leaves[-1].body == {"node_id": "node-a", "epoch": 6, "previous": "old",
                               "previous_epoch": 5}


def test_node_settings_are_checked(tmp_path: Path, pg_db: PgDatabase) -> None:  # noqa: F811
    cfg = default_config_dict(ORIGIN)
    cfg["engine"] = {"type": "postgresql", "dsn": pg_db.service_dsn}
    Store.init(tmp_path / "s", config=cfg, admin_dsn=pg_db.owner_dsn).close()
    ok = {"node_id": "a", "advertise": f"127.0.0.1:{_port()}", "secret": b"k" * 32}
    for bad, words in (({"advertise": "nope"}, "is not HOST:PORT"),
                       ({"advertise": "127.0.0.1:0"}, "is not HOST:PORT"),
                       ({"secret": b"short"}, "at least 16 bytes"),
                       ({"node_id": ""}, "1-64 printable")):
        with pytest.raises(ConfigError, match=words):
            open_node(tmp_path / "s", **{**ok, **bad})  # type: ignore[arg-type]
    assert _rows(pg_db, "SELECT epoch FROM sequencer") == []
