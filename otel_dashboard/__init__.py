"""otel-dashboard: a live observability dashboard for AI-agent systems, OpenTelemetry native.

The decorators of :mod:`instrumentation` are re-exported here, so an application can write
``from otel_dashboard import agent``. The server (and with it aiohttp) is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from instrumentation import (
    agent,
    agent_span,
    record_opportunity,
    record_quality_score,
    register_agent,
    synthesis,
    synthesis_span,
    tool,
    tool_span,
)
from otel_dashboard.events import DashboardEvent, EventType, QualityThresholds, Severity
from otel_dashboard.processor import DashboardSpanProcessor
from otel_dashboard.state import DashboardState, get_dashboard, reset_dashboard

if TYPE_CHECKING:
    from otel_dashboard.server import DashboardWebSocketServer

__version__ = "0.1.0"

__all__ = [
    "DashboardEvent",
    "DashboardSpanProcessor",
    "DashboardState",
    "DashboardWebSocketServer",
    "EventType",
    "QualityThresholds",
    "Severity",
    "agent",
    "agent_span",
    "get_dashboard",
    "record_opportunity",
    "record_quality_score",
    "register_agent",
    "reset_dashboard",
    "synthesis",
    "synthesis_span",
    "tool",
    "tool_span",
]


def __getattr__(name: str) -> Any:
    # The server pulls in aiohttp; processes that only instrument and process spans never pay for it.
    if name == "DashboardWebSocketServer":
        from otel_dashboard.server import DashboardWebSocketServer

        return DashboardWebSocketServer
    raise AttributeError(f"module 'otel_dashboard' has no attribute {name!r}")
