"""The aiohttp server: the app factory, the routes, the WebSocket broadcaster, security, rate
limits, health, Prometheus, and the Redis broker for replicas.

``from otel_dashboard.server import DashboardWebSocketServer, create_app`` works; the names load on
first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_dashboard.server.app import DashboardWebSocketServer, create_app

__all__ = ["DashboardWebSocketServer", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("otel_dashboard.server.app"), name)
    raise AttributeError(f"module 'otel_dashboard.server' has no attribute {name!r}")
