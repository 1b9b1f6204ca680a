"""The ``sequencer.elected`` record (ADR 0014): its rules and the offline verifier's replay.

The records are appended through a real store's writer (the way a newly elected
sequencer appends its first record) and the store is verified from its SQLite file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_service_support import make_store

from depository.store import Store
from depository.store._engine import Txn
from depository.tlog.authority import SEQUENCER_ELECTED, election_problem
from depository.verifier.store import store_result


def _elect(store: Store, body: dict[str, Any], actor: str = "depository") -> int:
    def op(txn: Txn) -> int:
        return txn.append(SEQUENCER_ELECTED, actor, None, body)

    assert store.local_writer is not None
    seq: int = store.local_writer.engine.submit(op).result()
    return seq


def _body(node: str, epoch: int, previous: str | None, previous_epoch: int | None
          ) -> dict[str, Any]:
    return {"node_id": node, "epoch": epoch, "previous": previous,
            "previous_epoch": previous_epoch}


def _findings(path: Path, key: str) -> list[str]:
    return [f.message for f in store_result(path, [key]).findings]


def test_a_chain_of_elections_verifies(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s")
    _elect(store, _body("a", 1, None, None))
    _elect(store, _body("b", 2, "a", 1))
    # Node c died between its election (epoch 3) and its record: d names it, the log skips it.
    _elect(store, _body("d", 4, "c", 3))
    store.checkpoint()
    key = store.verifier_key
    store.close()
    res = store_result(tmp_path / "s", [key])
    assert res.ok, res.findings


@pytest.mark.parametrize(("second", "words"), [
    (_body("b", 1, "a", 1), "not greater than the previous"),     # epoch not increasing
    (_body("b", 2, "x", 1), "but the log's election of that epoch is node 'a'"),
    (_body("b", 3, None, None), "older than the logged election"),  # hides its predecessor
    ({"node_id": "b", "epoch": 2, "previous": "a"}, "previous_epoch"),  # malformed body
])
def test_a_replayed_or_forged_election_is_a_finding(tmp_path: Path, second: dict[str, Any],
                                                    words: str) -> None:
    store = make_store(tmp_path / "s")
    _elect(store, _body("a", 1, None, None))
    idx = _elect(store, second)
    store.checkpoint()
    key = store.verifier_key
    store.close()
    found = _findings(tmp_path / "s", key)
    assert any(f"record {idx}" in m and words in m for m in found), found


def test_a_token_cannot_cause_an_election(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s")
    _, tok = store.create_token(role="admin", actor="test")
    with pytest.raises(Exception, match=r"may not cause sequencer\.elected"):
        _elect(store, _body("a", 1, None, None), actor=f"token:{tok.id}")
    store.close()


def test_election_problem_rules() -> None:
    assert election_problem(None, "a", 1, None, None) is None
    assert election_problem(None, "a", 0, None, None) is not None
    assert election_problem((1, "a"), "b", 2, "a", 1) is None
    assert election_problem((1, "a"), "b", 1, "a", 0) is not None
    assert election_problem((1, "a"), "b", 2, None, 1) is not None  # half-null
