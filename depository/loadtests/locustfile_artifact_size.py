"""Limit 1, artifact size (target 500 MB): stream artifacts of the target size, check the
stored hash by reading each back, and (certify) check one byte over is refused with 413.

    DEPOSITORY_TOKEN=... DEPOSITORY_PRODUCT=gurukul locust -f \\
        depository/loadtests/locustfile_artifact_size.py --host http://127.0.0.1:8080 \\
        --headless
"""

from __future__ import annotations

from locust import LoadTestShape

from depository.loadtests import shapes, users
from depository.loadtests.users import LargeUploader

__all__ = ["ArtifactSizeShape", "LargeUploader"]


class ArtifactSizeShape(shapes.StageTable, LoadTestShape):
    # One uploader; it stops the run itself when its uploads are done (the stage is a cap).
    stages = (shapes.load(users.PARAMS["stages"]) if users.PARAMS.get("stages")
              else shapes.constant(1, 600))
