"""The agent graph: ``GET /api/graph`` (``docs/api.md``). Stub: built in issue 16."""

from __future__ import annotations

from aiohttp import web

from otel_dashboard.server.http_api import json_response

__all__ = ["api_graph"]


async def api_graph(request: web.Request) -> web.Response:
    """``GET /api/graph``: not built yet (an empty graph)."""
    return json_response({"scope": "window", "nodes": [], "edges": [], "truncated": False})
