"""Limit 4, write throughput (target 1000 writes/s): paced writers offer a load stepped
upward; the runner reports the highest step whose achieved durable rate kept p99 under
the bound with zero errors.

    DEPOSITORY_TOKEN=... DEPOSITORY_PRODUCT=gurukul locust -f \\
        depository/loadtests/locustfile_write_throughput.py --host http://127.0.0.1:8080 \\
        --headless
"""

from __future__ import annotations

from locust import LoadTestShape, constant_throughput

from depository.loadtests import shapes, users

__all__ = ["PacedWriter", "WriteThroughputShape"]

_PACE = float(users.LP.get("rate_per_user", 5))


class PacedWriter(users.Writer):
    wait_time = constant_throughput(_PACE)


class WriteThroughputShape(shapes.StageTable, LoadTestShape):
    stages = (shapes.load(users.PARAMS["stages"]) if users.PARAMS.get("stages")
              else shapes.steps([50, 100, 200, 400, 800, 1000], 10, _PACE))
