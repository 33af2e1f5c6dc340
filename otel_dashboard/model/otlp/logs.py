"""OTLP log records to span events (GenAI events join their span's transcript) and failures.

:func:`read_logs` reads one ``ExportLogsServiceRequest``. Each log record is one of:

* **a GenAI event** tied to a span: its event name (the record's ``event_name`` field, else its
  ``event.name`` attribute) is one of :data:`SPAN_EVENT_NAMES` (the message events the transcript
  reads, :data:`~otel_dashboard.model.transcript.CONTENT_EVENTS`, and ``gen_ai.evaluation.result``)
  and it carries a trace id and a span id. It becomes a span event of that span,
  ``{"name", "time", "time_unix_nano", "attributes"}``, whose attributes are the fields of the
  record's body (a map: ``content``, ``role``, ``message``, ``tool_calls``, ``finish_reason``,
  ``index``, ``id``) followed by the record's attributes: the shape the instrumentations' span events
  had, so :func:`~otel_dashboard.model.transcript.transcript_of` reads it unchanged. A body that is
  not a map is kept as the attribute ``body``. Values: strings, numbers and booleans as they are,
  arrays of one scalar type as lists, anything structured (maps, mixed arrays, the structured
  ``gen_ai.input.messages`` of ``gen_ai.client.inference.operation.details``) as JSON text, bytes as
  base64. Each event is bounded like a span's own events
  (:func:`~otel_dashboard.model.span_events.json_events`: 32 attributes, the message attributes at
  32 Ki characters, others at 256), the message attributes listed first so they are the ones kept.
* **an exception log**: it has an ``exception.type`` or ``exception.message`` attribute (Python's
  ``logging`` handler on ``logger.exception``, the GenAI ``gen_ai.client.operation.exception``
  event), whatever its severity. It becomes a :class:`LogFailure` (for ``error_occurred``, see
  :meth:`~otel_dashboard.state.dashboard.DashboardState.record_log_events`) and, when it carries a
  span, also an ``exception`` span event of that span (shown with the span's exceptions).
* anything else (plain logs, GenAI events without a span, other events): counted only.

A record is **rejected** (``partial_success.rejected_log_records``) when its trace id is neither
empty nor 16 bytes, its span id neither empty nor 8 bytes, or it has a span id without a trace id.
All-zero ids mean "no id" (the OTLP data model). The rest of the request is accepted.

Nothing here raises on the request's content.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from otel_dashboard.model.otlp.any_value import plain_value
from otel_dashboard.model.span_events import json_events
from otel_dashboard.model.transcript import CONTENT_EVENTS

__all__ = ["EXCEPTION_EVENT", "SPAN_EVENT_NAMES", "LogEvent", "LogFailure", "LogsRead", "read_logs"]

SPAN_EVENT_NAMES = CONTENT_EVENTS | {"gen_ai.evaluation.result"}
"""The log event names that become span events of the record's span."""
EXCEPTION_EVENT = "exception"
"""The span event name an exception log tied to a span becomes (as the SDK's ``record_exception``)."""

_EVENT_NAME_ATTRIBUTE = "event.name"  # where older SDKs put the event name
_EXCEPTION_TYPE = "exception.type"
_EXCEPTION_MESSAGE = "exception.message"
_SERVICE_NAME = "service.name"
_TRACE_ID_BYTES = 16
_SPAN_ID_BYTES = 8
_MAX_ERROR_MESSAGE_CHARS = 500
_MAX_REASONS_IN_MESSAGE = 5
_MAX_FAILURE_TEXT_CHARS = 4 * 1024
# Listed first in an event's attributes, so that the 32-attribute cap never drops what the
# transcript reads (the details event carries some 25 other attributes).
_MESSAGE_KEYS = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
                 "gen_ai.tool.definitions", "content", "message", "role", "tool_calls", "finish_reason",
                 "index", "id")


class LogEvent(NamedTuple):
    """A span event made from a log record, for the span ``(trace_id, span_id)`` (integer ids)."""

    trace_id: int
    span_id: int
    event: dict[str, Any]


@dataclass(frozen=True)
class LogFailure:
    """An exception log: what ``error_occurred`` says of it.

    Attributes:
        trace_id: the record's trace id (0 without one).
        span_id: the record's span id (0 without one).
        error_type: ``exception.type`` (None without one).
        message: ``exception.message`` (None without one).
        service_name: the resource's ``service.name`` (None without one).
        time_unix_nano: the record's time (else its observed time; 0 without either).
    """

    trace_id: int
    span_id: int
    error_type: str | None
    message: str | None
    service_name: str | None
    time_unix_nano: int


@dataclass
class LogsRead:
    """What one ``ExportLogsServiceRequest`` carried.

    Attributes:
        span_events: the log events tied to a span, to attach to it (see the module docstring).
        failures: exception log records, for the one-failure-one-error rule.
        log_records: every log record in the request, for the counters (and the ingest rate).
        genai_events: the records named as a GenAI event of :data:`SPAN_EVENT_NAMES`, with or
            without a span.
        rejected: log records rejected one by one (partial success).
        message: why they were rejected ("" when none was).
    """

    span_events: list[LogEvent] = field(default_factory=list)
    failures: list[LogFailure] = field(default_factory=list)
    log_records: int = 0
    genai_events: int = 0
    rejected: int = 0
    message: str = ""


class _Rejected(Exception):
    pass


def read_logs(request: ExportLogsServiceRequest) -> LogsRead:
    """The span events and failures of one ``ExportLogsServiceRequest`` (see the module docstring);
    never raises on its content."""
    read = LogsRead()
    reasons: list[str] = []
    for resource_logs in request.resource_logs:
        service = _service_name(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                read.log_records += 1
                try:
                    _read_record(record, service, read)
                except _Rejected as exc:
                    read.rejected += 1
                    if len(reasons) < _MAX_REASONS_IN_MESSAGE:
                        reasons.append(str(exc))
    if read.rejected:
        message = f"{read.rejected} log record(s) rejected: " + "; ".join(reasons)
        if read.rejected > len(reasons):
            message += "; ..."
        read.message = message[:_MAX_ERROR_MESSAGE_CHARS]
    return read


def _read_record(record: LogRecord, service: str | None, read: LogsRead) -> None:
    trace_id = _id_int(record.trace_id, _TRACE_ID_BYTES)
    if trace_id is None:
        raise _Rejected("traceId must be empty or 16 bytes (32 hex digits)")
    span_id = _id_int(record.span_id, _SPAN_ID_BYTES)
    if span_id is None:
        raise _Rejected("spanId must be empty or 8 bytes (16 hex digits)")
    if span_id and not trace_id:
        raise _Rejected("spanId without a traceId")
    attrs = _attributes(record.attributes)
    name = record.event_name or attrs.get(_EVENT_NAME_ATTRIBUTE)
    when = record.time_unix_nano or record.observed_time_unix_nano
    has_span = bool(trace_id and span_id)
    if name in SPAN_EVENT_NAMES:
        read.genai_events += 1
        if has_span:
            fields = _body_fields(record.body)
            fields.update((key, value) for key, value in attrs.items() if key not in fields)
            read.span_events.append(LogEvent(trace_id, span_id, _event(name, when, fields)))
            return
    error_type, message = _text(attrs.get(_EXCEPTION_TYPE)), _text(attrs.get(_EXCEPTION_MESSAGE))
    if error_type is None and message is None:
        return  # counted only
    read.failures.append(LogFailure(trace_id, span_id, error_type, message, service, when))
    if has_span:
        read.span_events.append(LogEvent(trace_id, span_id, _event(EXCEPTION_EVENT, when, attrs)))


def _event(name: Any, when: int, attrs: dict[str, Any]) -> dict[str, Any]:
    """The span event, bounded as a span's own events are, its message attributes first."""
    ordered = {key: attrs[key] for key in _MESSAGE_KEYS if key in attrs}
    ordered.update(attrs)
    events, _ = json_events([{"name": name, "time_unix_nano": when, "attributes": ordered}])
    return events[0]


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else str(value)
    return text[:_MAX_FAILURE_TEXT_CHARS]


def _service_name(key_values: Iterable[KeyValue]) -> str | None:
    for kv in key_values:
        if kv.key == _SERVICE_NAME and kv.value.WhichOneof("value") == "string_value":
            return kv.value.string_value or None
    return None


def _id_int(raw: bytes, size: int) -> int | None:
    """The id as an integer: 0 when empty or all zero, None when it has the wrong length."""
    if not raw:
        return 0
    if len(raw) != size:
        return None
    return int.from_bytes(raw, "big")


def _body_fields(body: AnyValue) -> dict[str, Any]:
    which = body.WhichOneof("value")
    if which is None:
        return {}
    if which == "kvlist_value":
        return _attributes(body.kvlist_value.values)
    value = _value(body)
    return {} if value is None else {"body": value}


def _attributes(key_values: Iterable[KeyValue]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in key_values:
        if kv.key and kv.key not in out:
            value = _value(kv.value)
            if value is not None:
                out[kv.key] = value
    return out


def _value(value: AnyValue) -> Any:
    """An AnyValue as an event attribute value: scalars as they are, an array of one scalar type as
    a list, anything structured as JSON text (the transcript decodes it), bytes as base64."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        items = [plain_value(item, 1) for item in value.array_value.values]
        kinds = {type(item) for item in items}
        if len(kinds) <= 1 and kinds <= {str, bool, int, float}:
            return items
        return orjson.dumps(items).decode()
    if which == "kvlist_value":
        return orjson.dumps(plain_value(value, 0)).decode()
    return plain_value(value, 0)
