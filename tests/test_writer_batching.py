"""The group-commit writer's batching of single puts (issue 13): runs of queued puts go
through one ``apply_puts`` call, ``Store.put`` waits on a lock (``Waiter``), and every
refusal stays per put inside a shared batch."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from depository.store import Store, WriteOnceError
from depository.store._engine import Waiter
from depository.store.config import default_config_dict
from depository.tlog import merkle


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store.init(tmp_path / "s", config=default_config_dict("batch.example/log"))
    yield s
    s.close()


def test_waiter_blocks_until_resolved_and_raises_a_refusal() -> None:
    w = Waiter()
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(w.result()))
    t.start()
    t.join(0.05)
    assert t.is_alive()  # nothing resolved it yet
    w.set_result(42)
    t.join(5)
    assert got == [42] and w.result() == 42
    w2 = Waiter()
    w2.set_exception(WriteOnceError("no"))
    with pytest.raises(WriteOnceError):
        w2.result()


def test_queued_single_puts_run_as_one_call(store: Store, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    writer = store.local_writer
    assert writer is not None
    engine = writer.engine
    runs: list[int] = []
    handler = engine.put_handler
    assert handler is not None

    def counting(txn: Any, pps: list[Any]) -> list[Any]:
        runs.append(len(pps))
        return handler(txn, pps)

    monkeypatch.setattr(engine, "put_handler", counting)
    first = store.put("ai-avatar", "taken", b"one")
    runs.clear()
    with writer.paused():  # everything below is queued before the writer takes any
        futs = [store.put_async("ai-avatar", f"n/{i}", b"x%d" % i) for i in range(10)]
        futs.append(store.put_async("ai-avatar", "taken", b"other"))  # write-once refusal
        futs.append(store.put_async("ai-avatar", "n/3", b"x3"))  # duplicate in the batch
        futs += [store.put_async("gurukul", f"m/{i}", b"y%d" % i) for i in range(5)]
    results: list[Any] = []
    for f in futs:
        try:
            results.append(f.result(10))
        except WriteOnceError as exc:
            results.append(exc)
    assert runs == [len(futs)]
    assert isinstance(results[10], WriteOnceError)
    assert results[11].duplicate and results[11].log_index == results[3].log_index
    leaves = dict(store.log_entries(0, store.size()))
    for r in [first, *results]:
        if not isinstance(r, Exception):
            assert merkle.leaf_hash(leaves[r.log_index]) == r.leaf_hash
    # Accepted puts and the refused record took consecutive sequence numbers in order.
    idx = [r.log_index for i, r in enumerate(results) if i not in (10, 11)]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)


def test_many_threads_put_durably_with_distinct_records(store: Store) -> None:
    receipts: list[Any] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        for i in range(15):
            r = store.put("ai-avatar", f"t{t}/{i}", b"%d-%d" % (t, i), metadata={"t": t})
            with lock:
                receipts.append(r)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert len(receipts) == 240
    assert len({r.log_index for r in receipts}) == 240
    leaves = dict(store.log_entries(0, store.size()))
    assert all(merkle.leaf_hash(leaves[r.log_index]) == r.leaf_hash for r in receipts)


def test_a_refusal_decided_by_the_writer_raises_from_put(store: Store) -> None:
    """Write-once is decided on the writer thread; Store.put raises it via its Waiter."""
    store.put("ai-avatar", "x", b"x")
    with pytest.raises(WriteOnceError):
        store.put("ai-avatar", "x", b"y")
    assert store.put("ai-avatar", "x", b"x").duplicate
