"""One span's details for the trace page: ``GET /api/traces/{trace_id}/spans/{span_id}``
(``docs/api.md``, "A span's details")."""

from __future__ import annotations

import asyncio

from aiohttp import web

from otel_dashboard.model.span_detail import span_detail
from otel_dashboard.server.broadcast import BROADCASTER_KEY
from otel_dashboard.server.http_api import json_error, json_response, trace_prices

__all__ = ["api_span"]

_HEX = frozenset("0123456789abcdefABCDEF")


def _bad_id(value: str, digits: int) -> bool:
    return len(value) != digits or not _HEX.issuperset(value) or not value.strip("0")


async def api_span(request: web.Request) -> web.Response:
    """``GET /api/traces/{trace_id}/spans/{span_id}``: one kept span's details.

    200 ``{"trace_id", "span", "model_call", "transcript", "tool_io", "exceptions", "attributes",
    "dropped_attributes", "events", "dropped_events"}``
    (:func:`~otel_dashboard.model.span_detail.span_detail`); 400 naming ``trace_id`` or ``span_id``
    when one is not 32 (16) hex digits or is all zero; 404 when the trace or the span is not kept
    (``parameter`` names which). No query parameters.
    """
    trace_id, span_id = request.match_info["trace_id"], request.match_info["span_id"]
    if _bad_id(trace_id, 32):
        return json_error(400, "trace_id must be 32 hex digits, not all zero", parameter="trace_id")
    if _bad_id(span_id, 16):
        return json_error(400, "span_id must be 16 hex digits, not all zero", parameter="span_id")
    traces = request.app[BROADCASTER_KEY].state.traces
    prices = trace_prices(request.app)

    def read() -> tuple[bool, dict[str, object] | None]:
        # Off the loop: a transcript is parsed from up to 128 Ki characters of JSON.
        kept, record = traces.get_span(trace_id, span_id)
        return kept, (span_detail(record, prices) if record is not None else None)

    kept, detail = await asyncio.to_thread(read)
    if not kept:
        return json_error(404, "trace not found (not kept, or no longer)", parameter="trace_id")
    if detail is None:
        return json_error(404, "span not found in this trace (not kept, or no longer)", parameter="span_id")
    return json_response({"trace_id": trace_id.lower(), **detail})
