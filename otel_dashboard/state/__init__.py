"""The dashboard's state: the event bus that numbers events, the state derived from them (metrics,
running agents, opportunities) and the trace view. No aiohttp, no OpenTelemetry SDK.

``from otel_dashboard.state import DashboardState, get_dashboard, reset_dashboard`` keeps working;
the names load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_dashboard.state.dashboard import DashboardState, get_dashboard, reset_dashboard

__all__ = ["DashboardState", "get_dashboard", "reset_dashboard"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("otel_dashboard.state.dashboard"), name)
    raise AttributeError(f"module 'otel_dashboard.state' has no attribute {name!r}")
