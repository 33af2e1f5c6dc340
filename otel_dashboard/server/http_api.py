"""The JSON read API: ``/health``, ``/stats``, ``GET /api/events``, ``GET /api/runs``,
``GET /api/agents``, ``GET /api/traces/{trace_id}``, and the shared JSON plumbing.

Every answer, errors included, is ``application/json``. Errors are ``{"error": "..."}``, plus
``"parameter"`` naming a bad query parameter. :func:`error_middleware` turns aiohttp's own errors
(404, 405, 413, ...) and unexpected failures (500) into such bodies, so no answer ever carries a
path or a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from otel_dashboard.model.events import EventType, Severity, format_timestamp, json_dumps
from otel_dashboard.model.filters import MAX_FILTER_VALUES
from otel_dashboard.model.prices import PriceBook, default_price_book
from otel_dashboard.server.broadcast import BROADCASTER_KEY
from otel_dashboard.server.health import HEALTH_KEY
from otel_dashboard.server.options import OPTIONS_KEY, SERVER_VERSION, SERVICE
from otel_dashboard.server.security import SECURITY_KEY
from otel_dashboard.store.base import (
    STOPPED_BY_BYTES,
    STOPPED_BY_LIMIT,
    STOPPED_BY_SCAN,
    EventQuery,
    SearchPage,
    StoreError,
)

__all__ = [
    "BadParameter",
    "answers_own_errors",
    "api_agents",
    "api_events",
    "api_runs",
    "api_trace",
    "dumps",
    "error_answer",
    "error_middleware",
    "health",
    "json_error",
    "json_response",
    "parse_events_query",
    "short_repr",
    "stats",
    "trace_prices",
]

logger = logging.getLogger(__name__)

_EVENT_TYPE_VALUES = frozenset(t.value for t in EventType)
_SEVERITY_VALUES = frozenset(s.value for s in Severity)
_API_EVENTS_PARAMS = frozenset({"after_seq", "before_seq", "event_type", "severity", "agent", "service",
                                "run_id", "limit"})
_API_RUNS_PARAMS = frozenset({"agent", "service", "limit"})
_API_AGENTS_PARAMS = _API_RUNS_PARAMS
_API_TRACE_PARAMS = frozenset({"offset", "limit"})
_API_TRACE_LIMIT = 5000  # spans per page at most
_API_TRACE_DEFAULT_LIMIT = 2000
_API_AGENTS_LIMIT = 1000  # the most agents the state tracks
_API_AGENTS_DEFAULT_LIMIT = 200
_API_RUNS_LIMIT = 1000  # the state's default open-run table: all of them
_API_RUNS_DEFAULT_LIMIT = 200  # as many as a snapshot carries
_API_EVENTS_LIMIT = 1000
_API_EVENTS_DEFAULT_LIMIT = 100
# Room kept in max_response_bytes for the answer's envelope (last_seq, cursors, ...) around its events.
_ENVELOPE_BYTES = 512
# The answer's "stopped_by", from the store's SearchPage.stopped_by.
_STOPPED_BY = {STOPPED_BY_LIMIT: "limit", STOPPED_BY_BYTES: "max_response_bytes",
               STOPPED_BY_SCAN: "max_scanned_rows"}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


# --------------------------------------------------------------------------- JSON helpers
dumps = json_dumps


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer."""
    return web.Response(
        body=dumps(obj), status=status, content_type="application/json", headers=headers
    )


def json_error(
    status: int, message: str, parameter: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    """``{"error": message}`` (plus ``"parameter"``) with ``status``."""
    body: dict[str, Any] = {"error": message}
    if parameter is not None:
        body["parameter"] = parameter
    return json_response(body, status=status, headers=headers)


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (for error messages quoting client input)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class BadParameter(ValueError):
    """A bad query parameter; the answer is a 400 naming it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


# --------------------------------------------------------------------------- middleware
_ANSWERS_OWN_ERRORS = "_otel_dashboard_answers_own_errors"

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def answers_own_errors(handler: _Handler) -> _Handler:
    """Mark a handler that turns its own failures into answers, with :func:`error_answer`.

    :func:`error_middleware` then leaves it to aiohttp to await, instead of awaiting it in a frame
    of its own: for the WebSocket stream, a connection held for hours, that frame is ~400 bytes per
    client and does nothing.
    """
    setattr(handler, _ANSWERS_OWN_ERRORS, True)
    return handler


@web.middleware
def error_middleware(request: web.Request, handler: Any) -> Awaitable[web.StreamResponse]:
    """aiohttp's HTTP errors and unexpected failures as JSON error bodies (see :func:`error_answer`).

    A plain function returning what aiohttp awaits: a handler marked with
    :func:`answers_own_errors` is returned as it is (its errors are its own), any other one wrapped.
    """
    if getattr(request.match_info.handler, _ANSWERS_OWN_ERRORS, False):
        return handler(request)
    return _json_errors(request, handler)


async def _json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception as exc:
        answer = error_answer(request, exc)
        if answer is None:
            raise
        return answer


def error_answer(request: web.Request, exc: Exception) -> web.Response | None:
    """The JSON answer for ``exc`` escaping a handler; None for an HTTP exception below 400 (re-raise it).

    An exception other than aiohttp's HTTP ones is logged with its traceback and answered 500.
    """
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            return None
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        if exc.status == 413:
            return json_error(413, f"request body is larger than {request.client_max_size} bytes")
        return json_error(exc.status, (exc.reason or "error").lower(), headers=headers)
    logger.error("unhandled error serving %s %s", request.method, request.path, exc_info=exc)
    return json_error(500, "internal server error")


# --------------------------------------------------------------------------- handlers
async def health(request: web.Request) -> web.Response:
    """``GET /health``: ``status`` is ``"healthy"`` or ``"degraded"`` (the server's own health, with
    ``reasons`` saying why; HTTP 200 either way), ``stalled_agents`` the agents' (see docs/api.md)."""
    server_health = request.app[HEALTH_KEY]
    numbers = server_health.health()
    body = {
        "status": numbers["status"],
        "reasons": numbers["reasons"],
        "service": SERVICE,
        "name": server_health.options.name,
        "version": SERVER_VERSION,
        "timestamp": format_timestamp(),
        "connected_clients": numbers["connected_clients"],
        "uptime_seconds": numbers["uptime_seconds"],
        "events_per_second": numbers["events_per_second"],
        "dropped_events": numbers["dropped_events"],
        "last_seq": server_health.state.last_seq,
        "active_agents": numbers["active_agents"],
        "stalled_agents": numbers["stalled_agents"],
    }
    if "broker" in numbers:
        body["broker"] = numbers["broker"]
    if "alerts" in numbers:  # with alert webhooks: one entry per webhook (server/alerts.py)
        body["alerts"] = numbers["alerts"]
    return json_response(body)


async def stats(request: web.Request) -> web.Response:
    """``GET /stats``: the server's numbers, with the security layer's refusals under ``security``."""
    body = await request.app[HEALTH_KEY].stats_async()
    security = request.app.get(SECURITY_KEY)
    if security is not None:
        body["security"] = security.stats()
    return json_response(body)


async def api_events(request: web.Request) -> web.Response:
    """``GET /api/events``: the history query, one bounded page of it (``docs/api.md``).

    Every filter runs in the store (in SQL for the database, on its indexes), off the event loop.
    One request walks at most ``max_scanned_rows`` stored events and answers at most
    ``max_response_bytes``; when a bound (or ``limit``) stops it, the answer says so
    (``has_more``, ``stopped_by``) and gives the cursor to continue from. A store that cannot be
    read is a 503, never an empty page.
    """
    state = request.app[BROADCASTER_KEY].state
    try:
        query, limit = parse_events_query(request.query)
    except BadParameter as exc:
        return json_error(400, str(exc), parameter=exc.parameter)
    last_seq = state.last_seq
    # The envelope's last_seq is this one: the clamp is made here (read_history's is then a no-op).
    query.until_seq = last_seq if query.until_seq is None else min(query.until_seq, last_seq)
    page = await read_history(request, query, limit, "GET /api/events")
    if isinstance(page, web.Response):
        return page
    return web.Response(body=_events_body(page, query, last_seq), content_type="application/json")


async def read_history(
    request: web.Request, query: EventQuery, limit: int, route: str
) -> SearchPage | web.Response:
    """One bounded page of the history for a read API handler, or the 503 answer to send instead.

    Events accepted while the read waits for the store are left out: ``query.until_seq`` is
    clamped to the state's ``last_seq`` at the call. The read walks at most ``max_scanned_rows``
    stored events and reads at most ``max_response_bytes`` (less the envelope), off the event loop.
    A store that cannot be read is logged (``route`` names the handler) and answered 503.
    """
    broadcaster = request.app[BROADCASTER_KEY]
    state, options = broadcaster.state, broadcaster.options
    last_seq = state.last_seq
    query.until_seq = last_seq if query.until_seq is None else min(query.until_seq, last_seq)
    try:
        return await state.store.search_async(
            query, limit, max_scanned_rows=options.max_scanned_rows,
            max_bytes=max(1, options.max_response_bytes - _ENVELOPE_BYTES))
    except StoreError as exc:
        logger.warning("%s: %s", route, exc)
        return json_error(503, "the event history cannot be read now; try again (the server log says why)")


def older_page_cursor(page: SearchPage) -> dict[str, Any]:
    """Where a newest-first history answer goes on: ``has_more``, ``next_before_seq`` (None when
    complete) and ``stopped_by`` (what ended the page: ``limit``, a response or scan bound)."""
    return {
        "has_more": not page.complete,
        "next_before_seq": None if page.complete else page.resume_seq + 1,
        "stopped_by": _STOPPED_BY.get(page.stopped_by or ""),
    }


async def api_runs(request: web.Request) -> web.Response:
    """``GET /api/runs``: the open runs' live state (what a snapshot's ``runs`` holds), filtered.

    ``limit`` (1-1000, default 200) keeps the most recently updated; they come oldest-updated first.
    ``agent`` matches ``agent_name`` or ``agent_id``, ``service`` matches ``service_name``; both are
    repeatable or comma-separated, as in ``/api/events``. Bad parameters get 400 naming them.
    """
    query = request.query
    try:
        _check_params(query, _API_RUNS_PARAMS)
        limit = _int_param(query, "limit", 1, _API_RUNS_LIMIT, _API_RUNS_DEFAULT_LIMIT) or 1
        agents = frozenset(_bounded_values(query, "agent"))
        services = frozenset(_bounded_values(query, "service"))
    except BadParameter as exc:
        return json_error(400, str(exc), parameter=exc.parameter)
    state = request.app[BROADCASTER_KEY].state
    # Filters apply before the limit: read the whole (bounded) table when there is one.
    runs = state.get_open_runs(_API_RUNS_LIMIT if agents or services else limit)
    if agents:
        runs = [r for r in runs if _named(r.get("agent_name"), agents) or _named(r.get("agent_id"), agents)]
    if services:
        runs = [r for r in runs if _named(r.get("service_name"), services)]
    return json_response({"runs": runs[-limit:]})


async def api_agents(request: web.Request) -> web.Response:
    """``GET /api/agents``: per-agent usage over the rolling window (``docs/api.md``).

    One entry per (agent name, service): runs, failures, success rate, p50/p95 duration, tokens,
    cost, last error and activity per bucket over the window, and the runs open now; ``totals`` over
    the whole window (the metrics' ``window_*`` fields). ``limit`` (1-1000, default 200) keeps the
    most recently active; ``agent`` (name or id) and ``service`` filter, repeatable or
    comma-separated as in ``/api/events``. Bad parameters get 400 naming them.
    """
    query = request.query
    try:
        _check_params(query, _API_AGENTS_PARAMS)
        limit = _int_param(query, "limit", 1, _API_AGENTS_LIMIT, _API_AGENTS_DEFAULT_LIMIT) or 1
        agents = _bounded_values(query, "agent")
        services = _bounded_values(query, "service")
    except BadParameter as exc:
        return json_error(400, str(exc), parameter=exc.parameter)
    state = request.app[BROADCASTER_KEY].state
    return json_response(state.get_agent_stats(limit=limit, agents=agents, services=services))


def _named(value: Any, names: frozenset[str]) -> bool:
    return isinstance(value, str) and value in names


async def api_trace(request: web.Request) -> web.Response:
    """``GET /api/traces/{trace_id}``: one page of the spans of one trace, for the drill-down view.

    ``limit`` (1-5000, default 2000) spans from ``offset`` (>= 0, default 0), in the order of
    :meth:`~otel_dashboard.state.traces.TraceStore.get_trace` (start time, then span id); the answer's
    ``next_offset`` is the next page's offset, ``null`` at the end, and ``summary`` sums up the whole
    trace. Model calls are priced by the server's price book (:func:`trace_prices`). Bad parameters
    get 400 naming them; an unknown trace 404.
    """
    trace_id = request.match_info["trace_id"]
    if len(trace_id) != 32 or not _HEX_DIGITS.issuperset(trace_id) or not trace_id.strip("0"):
        return json_error(400, "trace_id must be 32 hex digits, not all zero", parameter="trace_id")
    query = request.query
    try:
        _check_params(query, _API_TRACE_PARAMS)
        limit = _int_param(query, "limit", 1, _API_TRACE_LIMIT, _API_TRACE_DEFAULT_LIMIT) or 1
        offset = _int_param(query, "offset", 0, None, 0) or 0
    except BadParameter as exc:
        return json_error(400, str(exc), parameter=exc.parameter)
    traces = request.app[BROADCASTER_KEY].state.traces
    # Off the loop: a 10,000-span trace is sorted and a page of it expanded (tens of milliseconds).
    trace = await asyncio.to_thread(traces.get_trace, trace_id, offset=offset, limit=limit,
                                    prices=trace_prices(request.app))
    if trace is None:
        return json_response({"error": "trace not found", "trace_id": trace_id.lower()}, status=404)
    return json_response(trace)


def trace_prices(app: web.Application) -> PriceBook:
    """The price book the trace views price model calls with: the server's (``serve --prices``),
    else the process's shared default."""
    options = app.get(OPTIONS_KEY)
    book = getattr(options, "prices", None)
    return book if isinstance(book, PriceBook) else default_price_book()


def _events_body(page: SearchPage, query: EventQuery, last_seq: int) -> bytes:
    """The answer of ``/api/events``: the events (their JSON was made, and cached, off the loop by
    the store's byte count), then the envelope."""
    tail: dict[str, Any] = {
        "last_seq": last_seq,
        "first_seq": page.oldest_seq,
        "has_more": not page.complete,
        "stopped_by": _STOPPED_BY.get(page.stopped_by or ""),
    }
    if query.after_seq is not None:
        tail["next_after_seq"] = page.resume_seq
    else:
        tail["next_before_seq"] = None if page.complete else page.resume_seq + 1
    return (b'{"events":[' + b",".join(e.to_json_bytes() for e in page.events) + b"],"
            + dumps(tail)[1:])


# --------------------------------------------------------------------------- parameters
def _multi(query: Any, name: str) -> list[str]:
    values: list[str] = []
    for raw in query.getall(name, ()):
        values.extend(v.strip() for v in raw.split(",") if v.strip())
    return values


def _int_param(query: Any, name: str, low: int, high: int | None, default: int | None) -> int | None:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(name, f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise BadParameter(name, f"{name} must be {bound}")
    return value


def _check_params(query: Any, known: frozenset[str]) -> None:
    for key in query:
        if key not in known:
            raise BadParameter(key, f"unknown parameter {short_repr(key, 40)}; expected one of "
                                    + ", ".join(sorted(known)))


def _bounded_values(query: Any, name: str) -> list[str]:
    values = _multi(query, name)
    if len(values) > MAX_FILTER_VALUES:
        raise BadParameter(name, f"at most {MAX_FILTER_VALUES} {name}s")
    return values


def parse_events_query(query: Any) -> tuple[EventQuery, int]:
    """The :class:`EventQuery` and the limit of ``/api/events`` query parameters.

    ``before_seq`` becomes the query's ``until_seq`` (``before_seq - 1``).

    Raises:
        BadParameter: an unknown parameter or a bad value, named.
    """
    _check_params(query, _API_EVENTS_PARAMS)
    after_seq = _int_param(query, "after_seq", 0, None, None)
    before_seq = _int_param(query, "before_seq", 1, None, None)
    limit = _int_param(query, "limit", 1, _API_EVENTS_LIMIT, _API_EVENTS_DEFAULT_LIMIT)
    event_types = _multi(query, "event_type")
    bad = [t for t in event_types if t not in _EVENT_TYPE_VALUES]
    if bad:
        raise BadParameter("event_type", f"unknown event_type {short_repr(bad[0], 40)}")
    severities = _multi(query, "severity")
    bad = [s for s in severities if s not in _SEVERITY_VALUES]
    if bad:
        raise BadParameter("severity", f"unknown severity {short_repr(bad[0], 40)}")
    q = EventQuery(
        after_seq=after_seq,
        until_seq=None if before_seq is None else before_seq - 1,
        event_types=event_types or None,
        severities=severities or None,
        agents=_bounded_values(query, "agent") or None,
        services=_bounded_values(query, "service") or None,
        run_ids=_bounded_values(query, "run_id") or None,
    )
    return q, limit or _API_EVENTS_DEFAULT_LIMIT
