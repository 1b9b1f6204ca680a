"""Limit 5, artifact count (target 100,000): with the store seeded to the target count,
writers and readers run together; write and query latency at that size.

    DEPOSITORY_TOKEN=... DEPOSITORY_PRODUCT=gurukul locust -f \\
        depository/loadtests/locustfile_artifact_count.py --host http://127.0.0.1:8080 \\
        --headless

(The query users need ``seeded_names`` in the parameters file the runner writes.)
"""

from __future__ import annotations

from locust import LoadTestShape

from depository.loadtests import shapes, users

__all__ = ["ArtifactCountShape", "CountReader", "CountWriter"]

_WRITERS = int(users.LP.get("writers", 4))
_READERS = int(users.LP.get("readers", 4))


class CountWriter(users.Writer):
    fixed_count = _WRITERS


class CountReader(users.Querier):
    fixed_count = _READERS


class ArtifactCountShape(shapes.StageTable, LoadTestShape):
    stages = (shapes.load(users.PARAMS["stages"]) if users.PARAMS.get("stages")
              else shapes.constant(_WRITERS + _READERS, 30))
