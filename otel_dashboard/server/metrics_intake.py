"""``/v1/metrics`` and the gRPC MetricsService, once decoded: GenAI and MCP usage into the state.

(Skeleton: helper H2 fills this module.)
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from otel_dashboard.server.otlp_ingest import ExportResult

__all__ = ["accept_metrics"]


async def accept_metrics(app: web.Application, request: Any, *, address: str) -> ExportResult:
    """Keep one decoded ``ExportMetricsServiceRequest`` (see :mod:`otel_dashboard.server.otlp_ingest`).

    Raises:
        ExportRefused: refused as a whole (429); nothing of it was kept.
    """
    raise NotImplementedError
