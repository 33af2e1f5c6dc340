"""The agent graph: ``GET /api/graph`` (``docs/api.md``, "The agent graph").

Two scopes: ``scope=window`` (the default), the graph the state keeps over its usage window
(:meth:`DashboardState.get_agent_graph <otel_dashboard.state.dashboard.DashboardState.get_agent_graph>`,
:mod:`otel_dashboard.state.agent_graph`), and ``scope=trace&trace_id=<32 hex>``, the graph of one kept
trace, made from its spans (:func:`~otel_dashboard.state.trace_graph.trace_graph`). A ``trace_id``
without ``scope`` means the trace scope.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from otel_dashboard.model.events import format_timestamp
from otel_dashboard.server.broadcast import BROADCASTER_KEY
from otel_dashboard.server.http_api import (
    _HEX_DIGITS,
    BadParameter,
    _check_params,
    json_error,
    json_response,
    short_repr,
)
from otel_dashboard.state.trace_graph import trace_graph
from otel_dashboard.state.traces import TraceStore

__all__ = ["api_graph", "parse_graph_query"]

_PARAMS = frozenset({"scope", "trace_id"})
_SCOPES = ("window", "trace")


def _one(query: Any, name: str) -> str | None:
    values = query.getall(name, ())
    if len(values) > 1:
        raise BadParameter(name, f"{name} is given {len(values)} times; give it once")
    return values[0].strip() if values else None


def parse_graph_query(query: Any) -> tuple[str, str | None]:
    """``(scope, trace_id)`` of ``GET /api/graph`` query parameters (the trace id lower-cased, None
    for the window scope).

    Raises:
        BadParameter: an unknown parameter, a repeated one, a scope other than ``window`` or
            ``trace``, a trace scope without a ``trace_id``, a ``trace_id`` with the window scope, or
            one that is not 32 hex digits (not all zero); the parameter is named.
    """
    _check_params(query, _PARAMS)
    scope = _one(query, "scope")
    trace_id = _one(query, "trace_id")
    if scope is None:
        scope = "window" if trace_id is None else "trace"
    if scope not in _SCOPES:
        raise BadParameter("scope", f"scope must be window or trace, not {short_repr(scope, 40)}")
    if scope == "window":
        if trace_id is not None:
            raise BadParameter("trace_id", "trace_id is only for scope=trace")
        return scope, None
    if trace_id is None:
        raise BadParameter("trace_id", "scope=trace needs a trace_id (32 hex digits)")
    if len(trace_id) != 32 or not _HEX_DIGITS.issuperset(trace_id) or not trace_id.strip("0"):
        raise BadParameter("trace_id", "trace_id must be 32 hex digits, not all zero")
    return scope, trace_id.lower()


def _trace_scope(traces: TraceStore, trace_id: str) -> dict[str, Any] | None:
    """The trace scope's answer, or None when the trace is not kept (run off the event loop: a
    10,000-span trace is read whole)."""
    trace = traces.get_trace(trace_id)
    if trace is None:
        return None
    graph = trace_graph(trace["spans"])
    graph["truncated"] = graph["truncated"] or bool(trace["truncated"])
    return {"scope": "trace", "trace_id": trace_id, "generated_at": format_timestamp(), **graph}


async def api_graph(request: web.Request) -> web.Response:
    """``GET /api/graph``: the agent graph of the usage window, or of one kept trace.

    Bad parameters get 400 ``{"error", "parameter"}``; a trace not kept (never seen, or evicted) a
    404 ``{"error", "trace_id"}``.
    """
    try:
        _, trace_id = parse_graph_query(request.query)  # the trace scope is the one with a trace id
    except BadParameter as exc:
        return json_error(400, str(exc), parameter=exc.parameter)
    state = request.app[BROADCASTER_KEY].state
    if trace_id is None:
        return json_response(state.get_agent_graph())
    body = await asyncio.to_thread(_trace_scope, state.traces, trace_id)
    if body is None:
        return json_response({"error": "trace not found", "trace_id": trace_id}, status=404)
    return json_response(body)
