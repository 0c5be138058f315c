"""HTTP API v2 (Alertmanager-compatible) on quart-trio."""

from daemon.api.app import create_app
from daemon.api.backend import AlertStatus, ApiBackend

__all__ = ["AlertStatus", "ApiBackend", "create_app"]
