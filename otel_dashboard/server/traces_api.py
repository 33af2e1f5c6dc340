"""The traces list and conversations of the JSON read API: ``GET /api/traces`` (recent traces from
the history, one row per root run) and ``GET /api/conversations/{conversation_id}`` (the runs that
share a conversation id). ``docs/server.md`` documents both.

Both read the history through :meth:`EventStore.search <otel_dashboard.store.base.EventStore.search>`,
the bounded search behind ``GET /api/events``, with the same bounds (``max_scanned_rows``,
``max_response_bytes``), the same paging (``before_seq`` / ``next_before_seq``) and the same 503
when the store cannot be read. The query-parameter helpers and the JSON plumbing are
:mod:`.http_api`'s, shared with the other handlers.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from otel_dashboard.model.events import DashboardEvent, EventType
from otel_dashboard.server.broadcast import BROADCASTER_KEY
from otel_dashboard.server.http_api import (
    _API_RUNS_LIMIT,
    _HEX_DIGITS,
    BadParameter,
    _bounded_values,
    _check_params,
    _int_param,
    _multi,
    json_error,
    json_response,
    older_page_cursor,
    read_history,
    short_repr,
)
from otel_dashboard.store.base import EventQuery

__all__ = ["api_conversation", "api_traces", "parse_traces_query"]


_API_TRACES_PARAMS = frozenset({"service", "agent", "status", "conversation_id", "trace_id", "limit",
                                "before_seq"})
_API_TRACES_LIMIT = 500
_API_TRACES_DEFAULT_LIMIT = 50
_API_CONVERSATION_PARAMS = frozenset({"limit", "before_seq"})
_API_CONVERSATION_LIMIT = 1000
_API_CONVERSATION_DEFAULT_LIMIT = 200
_MAX_CONVERSATION_ID_CHARS = 256  # as the vocabulary layer cuts it (model/vocab/reader.py)
_STATUSES = {"ok": True, "error": False}
_COMPLETED = (EventType.AGENT_EXECUTION_COMPLETED,)


def _trace_id_param(value: str) -> str:
    if len(value) != 32 or not _HEX_DIGITS.issuperset(value) or not value.strip("0"):
        raise BadParameter("trace_id", "trace_id must be 32 hex digits, not all zero")
    return value.lower()


def parse_traces_query(query: Any) -> tuple[EventQuery, int]:
    """The :class:`EventQuery` and the limit of ``GET /api/traces`` query parameters.

    The query asks for root runs' ``agent_execution_completed`` events (one per trace); ``status``
    (``ok`` or ``error``) becomes its ``success``, ``before_seq`` its ``until_seq``
    (``before_seq - 1``). ``service``, ``agent``, ``conversation_id`` and ``trace_id`` are
    repeatable or comma-separated, at most ``MAX_FILTER_VALUES`` each.

    Raises:
        BadParameter: an unknown parameter or a bad value, named.
    """
    _check_params(query, _API_TRACES_PARAMS)
    before_seq = _int_param(query, "before_seq", 1, None, None)
    limit = _int_param(query, "limit", 1, _API_TRACES_LIMIT, _API_TRACES_DEFAULT_LIMIT) or 1
    statuses = _multi(query, "status")
    bad = [s for s in statuses if s not in _STATUSES]
    if bad:
        raise BadParameter("status", f"status must be ok or error, not {short_repr(bad[0], 40)}")
    success = _STATUSES[statuses[0]] if len(set(statuses)) == 1 else None  # both: any
    trace_ids = [_trace_id_param(t) for t in _bounded_values(query, "trace_id")]
    return EventQuery(
        until_seq=None if before_seq is None else before_seq - 1,
        event_types=_COMPLETED,
        root_only=True,
        agents=_bounded_values(query, "agent") or None,
        services=_bounded_values(query, "service") or None,
        conversation_ids=_bounded_values(query, "conversation_id") or None,
        trace_ids=trace_ids or None,
        success=success,
    ), limit


async def api_traces(request: web.Request) -> web.Response:
    """``GET /api/traces``: recent traces from the history, one row per root run, newest first.

    A row is a root run's ``agent_execution_completed`` (no ``parent_run_id``) read back from the
    event store (``docs/api.md``, "GET /api/traces"). The read is the history API's bounded search:
    at most ``max_scanned_rows`` stored events walked and ``max_response_bytes`` of events read per
    request; ``has_more``, ``stopped_by`` and ``next_before_seq`` say where to continue. Bad
    parameters get 400 naming them; a store that cannot be read is a 503.
    """
    try:
        query, limit = parse_traces_query(request.query)
    except BadParameter as exc:
        return json_error(400, str(exc), parameter=exc.parameter)
    page = await read_history(request, query, limit, "GET /api/traces")
    if isinstance(page, web.Response):
        return page
    rows = [_trace_row(e) for e in reversed(page.events)]
    return json_response({"traces": rows, **older_page_cursor(page)})


def _tokens_of(data: dict[str, Any]) -> dict[str, int]:
    tokens = data.get("tokens")
    tokens = tokens if isinstance(tokens, dict) else {}
    out = {}
    for key, flat in (("input", "input_tokens"), ("output", "output_tokens")):
        value = tokens.get(key, data.get(flat))
        out[key] = value if isinstance(value, int) and not isinstance(value, bool) else 0
    return out


def _trace_row(event: DashboardEvent) -> dict[str, Any]:
    """One row of ``/api/traces``: a root run's completion (its run row, named as a trace)."""
    row = _completed_run_row(event)
    run_id, agent = row.pop("run_id"), row["agent"]
    row.pop("parent_run_id")  # a root run has none
    return {"trace_id": row.pop("trace_id"), "root_run_id": run_id, "root": agent,
            "agent_id": event.data.get("agent_id"), **row, "ended_at": event.timestamp,
            "conversation_id": event.data.get("conversation_id")}


async def api_conversation(request: web.Request) -> web.Response:
    """``GET /api/conversations/{conversation_id}``: the runs that share a conversation id, in
    start order (``docs/api.md``).

    A page holds the ``limit`` (1-1000, default 200) most recently completed runs of the
    conversation in the history (every run, nested ones included), older than ``before_seq`` when
    given, and, on the first page (no ``before_seq``), the conversation's runs open now (from the
    state's open runs, ``status`` ``"running"``); all sorted by ``started_at``. ``next_before_seq``
    continues with older completed runs; the history read has the bounds of ``/api/events``
    (``has_more``, ``stopped_by``; 503 when the store cannot be read).
    """
    conversation_id = request.match_info["conversation_id"]
    try:
        if len(conversation_id) > _MAX_CONVERSATION_ID_CHARS:
            raise BadParameter("conversation_id",
                               f"conversation_id is at most {_MAX_CONVERSATION_ID_CHARS} characters")
        _check_params(request.query, _API_CONVERSATION_PARAMS)
        before_seq = _int_param(request.query, "before_seq", 1, None, None)
        limit = _int_param(request.query, "limit", 1, _API_CONVERSATION_LIMIT,
                           _API_CONVERSATION_DEFAULT_LIMIT) or 1
    except BadParameter as exc:
        return json_error(400, str(exc), parameter=exc.parameter)
    state = request.app[BROADCASTER_KEY].state
    query = EventQuery(event_types=_COMPLETED, conversation_ids=(conversation_id,),
                       until_seq=None if before_seq is None else before_seq - 1)
    page = await read_history(request, query, limit, "GET /api/conversations")
    if isinstance(page, web.Response):
        return page
    runs = [_completed_run_row(e) for e in page.events]
    if before_seq is None:
        done = {r["run_id"] for r in runs}
        runs += [_open_run_row(r) for r in state.get_open_runs(_API_RUNS_LIMIT)
                 if r.get("conversation_id") == conversation_id and r.get("run_id") not in done]
    runs.sort(key=lambda r: (r["started_at"] or "", r["seq"] or 0))
    return json_response({
        "conversation_id": conversation_id,
        "runs": runs,
        **older_page_cursor(page),
    })


def _completed_run_row(event: DashboardEvent) -> dict[str, Any]:
    data = event.data
    failed = data.get("success") is False
    return {
        "trace_id": event.trace_id,
        "run_id": data.get("run_id"),
        "parent_run_id": data.get("parent_run_id"),
        "agent": data.get("agent_name"),
        "service": data.get("service_name"),
        "status": "error" if failed else "ok",
        "error_type": data.get("error_type") if failed else None,
        "started_at": data.get("started_at"),
        "duration_ms": data.get("duration_ms"),
        "tokens": _tokens_of(data),
        "cost_usd": data.get("cost_usd"),
        "cost_status": data.get("cost_status"),
        "seq": event.seq,
    }


def _open_run_row(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "trace_id": run.get("trace_id"),
        "run_id": run.get("run_id"),
        "parent_run_id": run.get("parent_run_id"),
        "agent": run.get("agent_name"),
        "service": run.get("service_name"),
        "status": "running",
        "error_type": None,
        "started_at": run.get("started_at"),
        "duration_ms": None,
        "tokens": _tokens_of(run),
        "cost_usd": run.get("cost_usd"),
        "cost_status": run.get("cost_status"),
        "seq": None,
    }
