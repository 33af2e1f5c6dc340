"""One span's details for the trace page: ``GET /api/traces/{trace_id}/spans/{span_id}``
(``docs/api.md``). Stub: built in issue 16."""

from __future__ import annotations

from aiohttp import web

from otel_dashboard.server.http_api import json_error

__all__ = ["api_span"]


async def api_span(request: web.Request) -> web.Response:
    """``GET /api/traces/{trace_id}/spans/{span_id}``: not built yet."""
    return json_error(404, f"span details are not served yet ({request.match_info['span_id']})")
