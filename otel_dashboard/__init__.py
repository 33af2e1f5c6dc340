"""otel-dashboard: a live observability dashboard for AI-agent systems, OpenTelemetry native."""

from otel_dashboard.events import DashboardEvent, EventType, QualityThresholds, Severity
from otel_dashboard.state import DashboardState, get_dashboard, reset_dashboard

__all__ = [
    "DashboardEvent",
    "DashboardState",
    "EventType",
    "QualityThresholds",
    "Severity",
    "get_dashboard",
    "reset_dashboard",
]
