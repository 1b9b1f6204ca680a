"""The depository's HTTP service: :func:`create_app` builds the ASGI app over an open
store; :func:`run` serves it on uvicorn with the depository's protocol and connection
limits (``depository serve``). See ``openapi.yaml`` for the API."""

from depository.service._exports import EXPORTS_DIR, ExportSettings
from depository.service._monitoring import level_name
from depository.service._workers import run_parent
from depository.service.app import create_app
from depository.service.server import ConnectionLimits, run, server_config

__all__ = ["EXPORTS_DIR", "ConnectionLimits", "ExportSettings", "create_app", "level_name",
           "run", "run_parent", "server_config"]
