"""Sequencer election and fencing on a real PostgreSQL (tests/_pg.py), ADR 0014.

The writer engines here are the store's own (group commit over :class:`SequencerStorage`);
the database is a real server started by the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from _pg import PgDatabase, pg_db, pg_server  # noqa: F401

from depository.signing import generate_key
from depository.store import _pg
from depository.store._engine import Txn, WriterEngine
from depository.store._errors import FencedError, NotSequencerError, StoreError
from depository.store._model import utc_now
from depository.store.cluster import SequencerStorage
from depository.tlog.record import parse_record

ORIGIN = "test.example/log"


@pytest.fixture
def db(pg_db: PgDatabase) -> Iterator[tuple[PgDatabase, str]]:  # noqa: F811
    signer, vkey = generate_key(ORIGIN)
    _pg.create_database(pg_db.owner_dsn, pg_db.service_dsn, origin=ORIGIN, verifier_key=vkey)
    yield pg_db, signer


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
