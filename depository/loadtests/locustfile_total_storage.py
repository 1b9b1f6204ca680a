"""Limit 2, total storage (target 1000 GB): what can be measured of it here. Three user
classes, one per phase (the runner picks one per locust run):

- ``MixedWriter``: mixed sizes, identical and conflicting re-uploads, over several
  products, for the byte-exact accounting check;
- ``QuotaFiller``: fills a small-quota product past its limit (clean 507/429 refusals);
- ``Writer``: a short write burst at each seeded store size (the growth curve).

    DEPOSITORY_TOKEN=... DEPOSITORY_PRODUCT=gurukul locust -f \\
        depository/loadtests/locustfile_total_storage.py --host http://127.0.0.1:8080 \\
        --headless MixedWriter
"""

from __future__ import annotations

from locust import LoadTestShape

from depository.loadtests import shapes, users
from depository.loadtests.users import MixedWriter, QuotaFiller, Writer

__all__ = ["MixedWriter", "QuotaFiller", "TotalStorageShape", "Writer"]


class TotalStorageShape(shapes.StageTable, LoadTestShape):
    stages = (shapes.load(users.PARAMS["stages"]) if users.PARAMS.get("stages")
              else shapes.constant(8, 10))
