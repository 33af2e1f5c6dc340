"""Telemetry intake: ``POST /api/events`` (event ingest) and ``POST /v1/traces`` (OTLP/HTTP receiver).

``POST /api/events``
    Remote processors and programs in other languages push dashboard events here: one event object,
    or a batch ``{"events": [...]}`` validated by :func:`~otel_dashboard.model.ingest.parse_ingest_payload`,
    all or nothing. A batch may also carry ``"spans": [...]``, span records (the shape of
    :func:`~otel_dashboard.state.traces.span_record_from_span`) for the trace view; a record needs a
    ``trace_id`` (32 hex digits), a ``span_id`` (16 hex digits) and a ``name`` (a string), its other
    fields are kept when they have the right type and dropped otherwise (``detail_attributes`` within
    the bounds of :mod:`otel_dashboard.model.span_attributes`, the rest counted in
    ``dropped_attributes``). The accepted events are
    published in order, then the span records (and records derived from run events that came without
    their span) go to the state's trace store, then the batch's ``"runs"`` (the live state of open
    agent runs, checked by :mod:`otel_dashboard.model.run_records`) to ``state.update_runs``.
    Answers: 200 ``{"accepted", "first_seq", "last_seq"}`` (plus ``"stop_runs": [{"run_id", "reason",
    "kind"}]`` when runs the request speaks of, by the ``run_id``, ``parent_run_id`` or
    ``root_run_id`` of its events and runs, are flagged to stop: how a remote processor learns of
    a budget crossed or "Stop run" on the page, ``docs/guardrails.md``), 400 naming the field (and
    ``index``, the event's place in the batch), 413 over ``max_body_bytes`` or for an event whose data
    is over the state's ``max_event_bytes`` once its strings are cut (named as a 400 is), 415 for a
    content type other than ``application/json`` or a content coding other than ``identity``, 429 with
    ``Retry-After`` over the per-address ingest rate (nothing accepted); 200 only once the events are
    committed to the store: 503 with ``Retry-After`` when a durable store does not confirm them within
    :data:`DURABLE_TIMEOUT_SECONDS` (the sender retries; delivery is at least once). On a cluster
    replica (``broker=``) 200 comes once Redis has numbered the events, or with ``"buffered": true`` and
    null seqs once they wait in the replica's buffer while Redis is unreachable; 503 when that buffer is
    full.

The OTLP receivers are :mod:`otel_dashboard.server.otlp_http` (``POST /v1/traces``, ``/v1/metrics``,
``/v1/logs``) and :mod:`otel_dashboard.server.grpc_receiver`; both keep what they decode through
:mod:`otel_dashboard.server.otlp_ingest`.
"""

from __future__ import annotations

import logging
from typing import Any, TypeGuard

import orjson
from aiohttp import web

from otel_dashboard.model.events import DashboardEvent
from otel_dashboard.model.ingest import IngestError, parse_ingest_payload
from otel_dashboard.model.run_records import runs_of_body
from otel_dashboard.model.span_attributes import detail_attributes
from otel_dashboard.model.span_events import json_events
from otel_dashboard.model.span_records import (
    KIND_AGENT,
    KIND_OTHER,
    KIND_REGISTRATION,
    KIND_SYNTHESIS,
    KIND_TOOL,
    span_records_from_events,
)
from otel_dashboard.model.vocab import KIND_CHAIN, KIND_MODEL, KIND_RETRIEVAL
from otel_dashboard.server.broadcast import BROADCASTER_KEY
from otel_dashboard.server.broker import BROKER_KEY, BrokerBufferFull, RedisBroker
from otel_dashboard.server.health import HEALTH_KEY, ServerHealth
from otel_dashboard.server.http_api import json_error, json_response
from otel_dashboard.server.options import OPTIONS_KEY
from otel_dashboard.server.otlp_http import media_type, read_body, timed
from otel_dashboard.server.otlp_ingest import DURABLE_RETRY_AFTER, DURABLE_TIMEOUT_SECONDS, durable
from otel_dashboard.server.security import charge_failed_ingest, check_ingest
from otel_dashboard.state.dashboard import DashboardState

__all__ = [
    "DURABLE_TIMEOUT_SECONDS",
    "ingest_events",
    "parse_span_records",
]

logger = logging.getLogger(__name__)

_MAX_SPANS_PER_REQUEST = 10_000
_MAX_TEXT_CHARS = 256
_MAX_ATTRIBUTES = 32
_HEX = frozenset("0123456789abcdefABCDEF")
_KINDS = frozenset({KIND_AGENT, KIND_TOOL, KIND_SYNTHESIS, KIND_REGISTRATION, KIND_OTHER, KIND_MODEL,
                    KIND_RETRIEVAL, KIND_CHAIN})
_STATUSES = frozenset({"unset", "ok", "error"})
_TEXT_FIELDS = ("start_time", "end_time", "status_message", "service_name", "agent_name", "tool_name")
_INT_FIELDS = ("start_time_unix_nano", "end_time_unix_nano")
_IDENTITY_CODINGS = frozenset({"", "identity"})



# --------------------------------------------------------------------------- POST /api/events
@timed
async def ingest_events(request: web.Request) -> web.Response:
    """``POST /api/events``: one event or a batch, all or nothing."""
    state = request.app[BROADCASTER_KEY].state
    server_health = request.app[HEALTH_KEY]
    limit = request.app[OPTIONS_KEY].max_body_bytes
    kind = media_type(request.headers.get("Content-Type"))
    if kind != "application/json":
        server_health.count("ingest_refused_requests")
        return json_error(415, f"unsupported content type {(kind or 'none')[:100]!r}: "
                               "use application/json")
    coding = _content_coding(request)
    if coding not in _IDENTITY_CODINGS:
        server_health.count("ingest_refused_requests")
        charge_failed_ingest(request, 0)
        return json_error(415, f"unsupported Content-Encoding {coding[:50]!r}: send the body uncompressed",
                          parameter="Content-Encoding")
    body = await read_body(request, limit)
    if body is None:
        server_health.count("ingest_refused_requests")
        return json_error(413, f"request body is larger than {limit} bytes")
    try:
        # The whole request (events, span records, runs) is checked before any of it is published:
        # one bad item refuses all of it, so a client that retries duplicates nothing.
        events = parse_ingest_payload(body, limits=state.limits)  # long strings cut, huge events 413
        spans = _spans_of(body)
        runs = runs_of_body(body)  # the live progress of open runs (model/run_records.py)
    except IngestError as exc:
        server_health.count("ingest_refused_requests")
        charge_failed_ingest(request, len(body))  # parsing it cost CPU: garbage floods meet the 429 too
        return json_response(exc.to_dict(), status=exc.status)
    if (refused := check_ingest(request, len(events) + len(runs))) is not None:
        server_health.count("ingest_refused_requests")
        return refused
    if runs:
        server_health.count("ingested_runs", len(runs))
    broker = request.app.get(BROKER_KEY)
    if broker is not None:
        state.update_runs(runs)  # progress is not shared through Redis: this replica's clients only
        return await _ingest_through_broker(broker, state, events, spans, runs, server_health)
    for event in events:
        state.publish(event)
    _record_ingested_spans(state, events, spans)
    if runs:  # after the events: a completion in the same request closes its run first
        state.update_runs(runs)
    server_health.count("ingest_requests")
    server_health.count("ingested_events", len(events))
    if events and not await durable(state, events[-1].seq):
        server_health.count("ingest_not_durable_requests")
        return json_error(503, "the events were published but the store did not confirm them in time; "
                               "send them again", headers={"Retry-After": DURABLE_RETRY_AFTER})
    return json_response(_with_stop_runs(state, events, runs, {
        "accepted": len(events),
        "first_seq": events[0].seq if events else None,
        "last_seq": events[-1].seq if events else None,
    }))


_RUN_ID_KEYS = ("run_id", "parent_run_id", "root_run_id")


def _with_stop_runs(
    state: DashboardState, events: list[DashboardEvent], runs: list[dict[str, Any]], answer: dict[str, Any]
) -> dict[str, Any]:
    """The answer with ``"stop_runs"``: the flagged runs among those the request speaks of."""
    if not state.has_run_flags():  # the common case: nothing to look up
        return answer
    ids: list[Any] = []
    for event in events:
        data = event.data
        ids.extend(data.get(key) for key in _RUN_ID_KEYS)
    for run in runs:
        ids.extend(run.get(key) for key in _RUN_ID_KEYS)
    stop_runs = state.stop_runs_among(ids)
    if stop_runs:
        answer["stop_runs"] = stop_runs
    return answer


async def _ingest_through_broker(
    broker: RedisBroker, state: DashboardState, events: list[DashboardEvent],
    spans: list[dict[str, Any]], runs: list[dict[str, Any]], server_health: ServerHealth,
) -> web.Response:
    """A cluster replica's ingest: 200 once Redis has numbered the events, or once they wait in the
    replica's buffer because Redis is unreachable (``"buffered": true``, no seqs yet)."""
    try:
        seqs = await broker.append(events)
    except BrokerBufferFull as exc:
        server_health.count("ingest_refused_requests")
        return json_error(503, f"{exc}; send them again", headers={"Retry-After": DURABLE_RETRY_AFTER})
    _record_ingested_spans(state, events, spans)
    server_health.count("ingest_requests")
    server_health.count("ingested_events", len(events))
    return json_response(_with_stop_runs(state, events, runs, {
        "accepted": len(events),
        "first_seq": seqs[0] if seqs else None,
        "last_seq": seqs[-1] if seqs else None,
        "buffered": seqs is None,
    }))


def _spans_of(body: bytes) -> list[dict[str, Any]]:
    if b'"spans"' not in body:
        return []
    document = orjson.loads(body)  # valid: parse_ingest_payload accepted it
    if "events" not in document or "event_type" in document:
        return []  # a single event: no spans
    return parse_span_records(document.get("spans"))


def _record_ingested_spans(
    state: DashboardState, events: list[DashboardEvent], spans: list[dict[str, Any]]
) -> None:
    shipped = {(record["trace_id"], record["span_id"]) for record in spans}
    # Run events whose span did not come along still get a record; a shipped span record wins.
    derived = [
        record for record in span_records_from_events(events)
        if (record["trace_id"], record["span_id"]) not in shipped
    ]
    if derived or spans:
        state.record_spans([*derived, *spans])


def parse_span_records(value: Any) -> list[dict[str, Any]]:
    """The span records of a batch's ``"spans"`` value, cleaned; ``None`` gives none.

    Raises:
        IngestError: not an array, too many records, or a record without a valid ``trace_id``,
            ``span_id`` or ``name`` (the field is named, e.g. ``spans[2].span_id``).
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise IngestError("spans", "must be an array of span records")
    if len(value) > _MAX_SPANS_PER_REQUEST:
        raise IngestError("spans", f"at most {_MAX_SPANS_PER_REQUEST} span records per request, "
                                   f"got {len(value)}")
    return [_span_record(item, f"spans[{index}]") for index, item in enumerate(value)]


def _span_record(item: Any, field: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise IngestError(field, "must be a span record object")
    trace_id = _required_id(item.get("trace_id"), 32, f"{field}.trace_id")
    span_id = _required_id(item.get("span_id"), 16, f"{field}.span_id")
    name = item.get("name")
    if not isinstance(name, str):
        raise IngestError(f"{field}.name", "must be a string")
    parent = item.get("parent_span_id")
    kind = item.get("kind")
    status = item.get("status")
    duration = item.get("duration_ms")
    record: dict[str, Any] = {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent.lower() if _is_id(parent, 16) else None,
        "name": _text(name),
        "kind": kind if kind in _KINDS else KIND_OTHER,
        "status": status if status in _STATUSES else "unset",
        "duration_ms": duration if _is_number(duration) and duration >= 0 else None,
        "attributes": _attributes(item.get("attributes")),
    }
    record["events"], record["dropped_events"] = json_events(item.get("events"), item.get("dropped_events"))
    detail = item.get("detail_attributes")
    keys, values, dropped = detail_attributes(detail if isinstance(detail, dict) else {})
    record["detail_attributes"] = dict(zip(keys, values, strict=True))
    sent = item.get("dropped_attributes")
    record["dropped_attributes"] = dropped + (
        sent if isinstance(sent, int) and not isinstance(sent, bool) and 0 < sent < 2**31 else 0)
    for key in _TEXT_FIELDS:
        value = item.get(key)
        record[key] = _text(value) if isinstance(value, str) else None
    for key in _INT_FIELDS:
        value = item.get(key)
        record[key] = value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
    return record


def _required_id(value: Any, digits: int, field: str) -> str:
    if not _is_id(value, digits):
        shown = repr(value[:64]) if isinstance(value, str) else type(value).__name__
        raise IngestError(field, f"must be {digits} hex digits, not all zero, got {shown}")
    return value.lower()


def _is_id(value: Any, digits: int) -> TypeGuard[str]:
    return (
        isinstance(value, str) and len(value) == digits and _HEX.issuperset(value)
        and value.strip("0") != ""
    )


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _text(value: str) -> str:
    return value if len(value) <= _MAX_TEXT_CHARS else value[: _MAX_TEXT_CHARS - 1] + "\u2026"


def _attributes(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    out: dict[str, Any] = {}
    for key, item in value.items():
        if len(out) >= _MAX_ATTRIBUTES:
            break
        if item is None or isinstance(item, (bool, int, float)):
            out[_text(key)] = item
        elif isinstance(item, str):
            out[_text(key)] = _text(item)
        elif isinstance(item, list):
            out[_text(key)] = [
                _text(v) if isinstance(v, str) else v
                for v in item[:16] if v is None or isinstance(v, (str, bool, int, float))
            ]
    return out


# --------------------------------------------------------------------------- helpers
def _content_coding(request: web.Request) -> str:
    if getattr(request.content, "total_compressed_bytes", None) is not None:
        return ""  # aiohttp already inflated the body
    return ",".join(
        part.strip().lower() for part in request.headers.get("Content-Encoding", "").split(",")
        if part.strip().lower() not in _IDENTITY_CODINGS
    )
