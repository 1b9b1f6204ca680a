"""Limit 3, concurrent writers (target 100): that many writers at once for the whole hold
stage; every receipt validated. The runner then checks every acknowledged write is in
the store and runs the offline verifier.

    DEPOSITORY_TOKEN=... DEPOSITORY_PRODUCT=gurukul locust -f \\
        depository/loadtests/locustfile_concurrent_writers.py --host http://127.0.0.1:8080 \\
        --headless
"""

from __future__ import annotations

from locust import LoadTestShape

from depository.loadtests import shapes, users
from depository.loadtests.users import Writer

__all__ = ["ConcurrentWritersShape", "Writer"]


class ConcurrentWritersShape(shapes.StageTable, LoadTestShape):
    stages = (shapes.load(users.PARAMS["stages"]) if users.PARAMS.get("stages")
              else shapes.ramp_hold(int(users.LP.get("writers", 100)),
                                    float(users.LP.get("ramp_s", 10)),
                                    float(users.LP.get("hold_s", 60))))
