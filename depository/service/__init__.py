"""The depository's HTTP service: :func:`create_app` builds the ASGI app over an open
store; ``depository serve`` runs it on uvicorn. See ``openapi.yaml`` for the API."""

from depository.service._monitoring import level_name
from depository.service.app import create_app

__all__ = ["create_app", "level_name"]
