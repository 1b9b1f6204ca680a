"""Limit 7, audit trail (unlimited, 7-year retention): inclusion proofs by artifact id at
the current log size (the runner grows the log between runs and verifies a sample
offline).

    DEPOSITORY_TOKEN=... DEPOSITORY_PRODUCT=gurukul locust -f \\
        depository/loadtests/locustfile_audit_trail.py --host http://127.0.0.1:8080 \\
        --headless

(The provers need ``seeded_names`` in the parameters file the runner writes.)
"""

from __future__ import annotations

from locust import LoadTestShape

from depository.loadtests import shapes, users
from depository.loadtests.users import Prover

__all__ = ["AuditTrailShape", "Prover"]


class AuditTrailShape(shapes.StageTable, LoadTestShape):
    stages = (shapes.load(users.PARAMS["stages"]) if users.PARAMS.get("stages")
              else shapes.constant(4, 10))
