"""``/v1/logs`` and the gRPC LogsService, once decoded: GenAI log events onto their spans, exception
logs into errors.

(Skeleton: helper H3 fills this module.)
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from otel_dashboard.server.otlp_ingest import ExportResult

__all__ = ["accept_logs"]


async def accept_logs(app: web.Application, request: Any, *, address: str) -> ExportResult:
    """Keep one decoded ``ExportLogsServiceRequest`` (see :mod:`otel_dashboard.server.otlp_ingest`).

    Raises:
        ExportRefused: refused as a whole (429, 503); nothing of it was kept.
    """
    raise NotImplementedError
