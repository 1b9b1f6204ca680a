"""Load suites for the seven scale limits the certification states.

One locust file per limit (``locustfile_<limit>.py``) drives a running ``depository
serve``; the users live in :mod:`~depository.loadtests.users` and the load shapes, as
declarative stage tables, in :mod:`~depository.loadtests.shapes`. Engineers who know
locust can run a locust file directly::

    DEPOSITORY_TOKEN=dep_tok-3_... DEPOSITORY_PRODUCT=gurukul \\
        locust -f depository/loadtests/locustfile_concurrent_writers.py \\
        --host http://127.0.0.1:8080 --headless

Everyone else uses ``depository loadtest run`` (:mod:`~depository.loadtests.runner`), which
runs locust headless in its own process, checks the store afterwards, and writes
``results.json`` (schema: ``results.schema.json`` beside this file), the raw locust
statistics and a chart per limit.

Only the locust files and :mod:`~depository.loadtests.users` import locust (which
monkey-patches the standard library with gevent); nothing else here does, so the runner,
the CLI and the tests never load it in their own process.
"""

from __future__ import annotations

LIMIT_IDS: tuple[str, ...] = (
    "artifact-size",
    "total-storage",
    "concurrent-writers",
    "write-throughput",
    "artifact-count",
    "query-response",
    "audit-trail",
)
