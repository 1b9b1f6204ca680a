"""Limit 6, query response (target < 5 s): the query mix (product, name prefix, time
range, metadata field, content, proof by artifact id) under concurrent write load.

    DEPOSITORY_TOKEN=... DEPOSITORY_PRODUCT=gurukul locust -f \\
        depository/loadtests/locustfile_query_response.py --host http://127.0.0.1:8080 \\
        --headless

(The query users need ``seeded_names`` in the parameters file the runner writes.)
"""

from __future__ import annotations

from locust import LoadTestShape

from depository.loadtests import shapes, users

__all__ = ["QueryReader", "QueryResponseShape", "QueryWriter"]

_WRITERS = int(users.LP.get("writers", 8))
_READERS = int(users.LP.get("readers", 8))


class QueryWriter(users.Writer):
    fixed_count = _WRITERS


class QueryReader(users.Querier):
    fixed_count = _READERS


class QueryResponseShape(shapes.StageTable, LoadTestShape):
    stages = (shapes.load(users.PARAMS["stages"]) if users.PARAMS.get("stages")
              else shapes.constant(_WRITERS + _READERS, 30))
