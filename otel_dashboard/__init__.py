"""otel-dashboard: a live observability dashboard for AI-agent systems, OpenTelemetry native.

The decorators of :mod:`instrumentation` are re-exported here, so an application can write
``from otel_dashboard import agent``. Every public name loads on first use (PEP 562): importing the
package, or one of its state or store modules, loads neither the OpenTelemetry SDK nor aiohttp.

The packages, from the bottom up (docs/architecture.md has the picture and the import rules):

* :mod:`otel_dashboard.model`: events, the span-to-event mapping, OTLP and ingest decoding.
* :mod:`otel_dashboard.state` and :mod:`otel_dashboard.store`: the event bus, the derived state,
  the trace view; the history (memory or SQLite).
* :mod:`otel_dashboard.pipeline`: the span processor, the exporter, the remote sender.
* :mod:`otel_dashboard.server`: the aiohttp server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from otel_dashboard.model.events import DashboardEvent, EventType, QualityThresholds, Severity
    from otel_dashboard.pipeline.processor import DashboardSpanProcessor
    from otel_dashboard.server.app import DashboardWebSocketServer
    from otel_dashboard.state.dashboard import DashboardState, get_dashboard, reset_dashboard

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "agent": "instrumentation",
    "agent_span": "instrumentation",
    "record_opportunity": "instrumentation",
    "record_quality_score": "instrumentation",
    "register_agent": "instrumentation",
    "synthesis": "instrumentation",
    "synthesis_span": "instrumentation",
    "tool": "instrumentation",
    "tool_span": "instrumentation",
    "DashboardEvent": "otel_dashboard.model.events",
    "EventType": "otel_dashboard.model.events",
    "QualityThresholds": "otel_dashboard.model.events",
    "Severity": "otel_dashboard.model.events",
    "DashboardSpanProcessor": "otel_dashboard.pipeline.processor",
    "DashboardState": "otel_dashboard.state.dashboard",
    "get_dashboard": "otel_dashboard.state.dashboard",
    "reset_dashboard": "otel_dashboard.state.dashboard",
    "DashboardWebSocketServer": "otel_dashboard.server.app",
}

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
    # Lazy, so that a process pays only for what it uses: instrumenting needs neither aiohttp nor the
    # server, and the state and store load neither the SDK nor aiohttp.
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_dashboard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
