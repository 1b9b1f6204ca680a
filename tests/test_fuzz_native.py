"""Bounded fuzz of the native verifier's C entry points (``_cverify.loads``/``scan``):
seeded mutations of canonical records, hostile splices included, each checked against
the pure-Python specification (``tests/test_verify_native.py``'s rule: C never accepts
what Python refuses, and decodes to the same value). A few seconds in ``make test``;
``benchmarks/fuzz.py`` runs it ``--scale`` times longer with a fresh seed.
"""

from __future__ import annotations

import pytest
from _fuzz import cases, mutate
from test_verify_native import check_leaf, native

from depository.tlog.record import canonical_json


@pytest.mark.skipif(native is None, reason="native engine not built/disabled")
def test_fuzz_c_parser_bounded() -> None:
    """Seeded random hostile inputs straight into the C entry points, a few seconds
    (``benchmarks/fuzz.py`` runs ``tests/test_fuzz_native.py`` longer)."""
    seeds = [canonical_json(v) for v in (
        {"actor": "a", "body": {"metadata": {"k": [1, "é", None, {"x": True}]}}, "seq": 3},
        {"a": "\n\u2028\x7f", "b": -12345, "c": [[], {}]},
    )]
    for _, rng in cases("native-loads", 3000, 3):
        leaf = mutate(rng, rng.choice(seeds), seeds)
        check_leaf(leaf)
        native.scan([(0, leaf, native.leaf_hash(leaf))])
