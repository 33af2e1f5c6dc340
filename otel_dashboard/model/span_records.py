"""Span records: what the trace view (``GET /api/traces/{id}``) keeps of a span, in two forms.

* The **JSON record** (a ``dict``, see :func:`span_record_from_span` for its keys) is the wire form:
  remote processors and exporters ship it in ``POST /api/events`` batches, the OTLP receiver makes it
  from received spans, :func:`span_records_from_events` derives it from run events that came without
  their spans, and ``GET /api/traces/{id}`` answers with it.
* The **compact record** (:data:`SpanRecord`, a plain tuple, built by :func:`compact_span_record`) is
  what the in-process span processor keeps for every span it sees. It holds only strings, numbers,
  ``None`` and tuples of them, so the garbage collector untracks it at its first pass and never walks
  it again: keeping the last 1,000 traces' SDK spans alive instead made every collection of the older
  generations walk their dozens of objects per span (see docs/benchmarks.md). Its derived fields
  (kind, agent and tool names, the ISO times) are computed only when a trace is read, by
  :func:`expand_span_record`.

A record keeps a few selected attributes (``attributes``: what the trace page shows and reads kinds
and names from), each value capped (256 characters, 16 items) in the JSON form; a compact record of
an SDK span holds them as the SDK does (bounded by its attribute limits), and they are capped when
it is expanded. It also keeps every other attribute of the span (``detail_attributes``: the content
attributes, a transcript or a tool's input/output, and the raw ones) within the bounds of
:mod:`otel_dashboard.model.span_attributes` (32 Ki characters per content value, 1 Ki per other
value, 128 attributes and 128 Ki characters per span; ``dropped_attributes`` counts the rest), for
the span details; the trace page's records leave them out.

SDK spans are read through :mod:`otel_dashboard.model.sdk_span`; nothing here imports the SDK, so the
state layer can import this module.

A little over ~400 lines for a reason: the compact record, its JSON form and the records rebuilt from
run events must agree field by field; one file keeps them side by side.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

from opentelemetry.trace import StatusCode

from instrumentation import semconv as sc
from otel_dashboard.model import sdk_span
from otel_dashboard.model.events import DashboardEvent, EventType, format_timestamp
from otel_dashboard.model.ingest import timestamp_to_unix_nano
from otel_dashboard.model.record_size import (
    COMPACT_BYTES,
    FIELD_BYTES,
    compact_bytes,
    detail_bytes,
    events_bytes,
    value_bytes,
)
from otel_dashboard.model.span_attributes import detail_attributes
from otel_dashboard.model.span_events import compact_events, expand_events
from otel_dashboard.model.vocab import RECORD_KEYS, view_of

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "END_NS",
    "KIND_AGENT",
    "KIND_OTHER",
    "KIND_REGISTRATION",
    "KIND_SYNTHESIS",
    "KIND_TOOL",
    "SIZE",
    "SPAN_ID",
    "TRACE_ID",
    "SpanRecord",
    "compact_span_record",
    "expand_span_record",
    "record_head",
    "span_record_from_span",
    "span_records_from_events",
]

# The record kinds are the vocabulary layer's (agent, model, tool, retrieval, chain, synthesis,
# registration, other); these are the ones this module names itself.
KIND_AGENT = "agent"
KIND_TOOL = "tool"
KIND_SYNTHESIS = "synthesis"
KIND_REGISTRATION = "registration"
KIND_OTHER = "other"

SpanRecord = tuple[Any, ...]
"""A compact span record: ``(trace_id, span_id, parent_span_id, name, start_ns, end_ns, status,
status_message, service_name, key_1, ..., key_n, value_1, ..., value_n[, detail], size)``. Ids are integers
(``parent_span_id`` 0 without a parent); ``end_ns`` is ``None`` while the span runs; ``status`` is
``"unset"``, ``"ok"`` or ``"error"``; the selected attributes follow, their keys then their values
(sequences as tuples). A span that has span events (finished) or other attributes then has
``detail``: ``(dropped_attributes, n, dropped_events, event_1, ..., event_n, dkey_1, ..., dkey_m,
dvalue_1, ..., dvalue_m)``, its events' compact form inlined
(:func:`~otel_dashboard.model.span_events.compact_events`: the dropped count, then ``n`` event
tuples; inlined, not nested, because the collector untracks nested tuples one level per pass) and
its other attributes, bounded (:mod:`otel_dashboard.model.span_attributes`); plain tuples all, and it makes
the fields between the nine fixed ones and ``size`` odd in number: a span with neither (the common
case of this project's own spans) pays nothing for them. ``size`` is the record's estimated memory
(:mod:`otel_dashboard.model.record_size`), computed once here so the trace store's budget never
recomputes it. One flat, plain tuple on purpose: the collector untracks exact tuples of
atomic values (not subclasses, and not a tuple holding a dict), one object per span is one
allocation, and keys then values are copied from a dict without a pair per attribute."""

TRACE_ID = 0
"""Position of the trace id in a :data:`SpanRecord`."""
SPAN_ID = 1
"""Position of the span id in a :data:`SpanRecord`."""
END_NS = 5
"""Position of the end time in a :data:`SpanRecord` (``None`` while the span runs)."""
SIZE = -1
"""Position of the estimated memory (bytes) in a :data:`SpanRecord`: the last."""
_ATTRIBUTES = 9  # where a SpanRecord's attribute keys begin

_MAX_VALUE_CHARS = 256
_MAX_DURATION_MS = 1e12  # about 31 years: a larger duration_ms of an ingested event is not believed
_MAX_SEQUENCE_ITEMS = 16
# A compact record cuts a longer span name here: long enough that the record's name (capped at 256
# characters) and the agent or tool name derived from it after a prefix are the ones of the full name.
_MAX_NAME_CHARS = _MAX_VALUE_CHARS + len(sc.OPERATION_EXECUTE_TOOL) + 2

# The attributes a JSON record keeps; everything else stays out of the store.
_KEPT_ATTRIBUTES = (
    sc.GEN_AI_OPERATION_NAME,
    sc.GEN_AI_AGENT_NAME,
    sc.GEN_AI_AGENT_ID,
    sc.GEN_AI_AGENT_DESCRIPTION,
    sc.GEN_AI_TOOL_NAME,
    sc.GEN_AI_REQUEST_MODEL,
    "gen_ai.response.model",
    "gen_ai.system",
    "gen_ai.provider.name",
    sc.GEN_AI_USAGE_INPUT_TOKENS,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS,
    sc.OPENINFERENCE_SPAN_KIND,
    sc.TRACELOOP_SPAN_KIND,
    sc.SPAN_KIND,
    sc.TASK_DESCRIPTION,
    sc.DATA_SOURCE,
    sc.QUALITY_SCORE,
    sc.SYNTHESIS_PHASE,
    sc.SYNTHESIS_PATTERNS_FOUND,
    "error.type",
    *RECORD_KEYS,
)
_KEPT_ATTRIBUTE_SET = frozenset(_KEPT_ATTRIBUTES)
# A compact record also keeps the two attributes the agent name may come from.
_COMPACT_ATTRIBUTE_SET = _KEPT_ATTRIBUTE_SET | {sc.OPENINFERENCE_AGENT_NAME, sc.TRACELOOP_ENTITY_NAME}
_RUN_EVENT_KINDS = {
    EventType.AGENT_EXECUTION_STARTED: (KIND_AGENT, False),
    EventType.AGENT_EXECUTION_COMPLETED: (KIND_AGENT, True),
    EventType.SYNTHESIS_STARTED: (KIND_SYNTHESIS, False),
    EventType.SYNTHESIS_COMPLETED: (KIND_SYNTHESIS, True),
}
_STATUS_ERROR, _STATUS_OK = StatusCode.ERROR, StatusCode.OK
# compact_bytes' constant parts for a record without events: the fixed fields and the size, and an
# attribute's key and value.
_FIXED_BYTES = COMPACT_BYTES + FIELD_BYTES * (_ATTRIBUTES + 1)
_PAIR_BYTES = 2 * FIELD_BYTES
_TRACE_HEX, _SPAN_HEX = "%032x", "%016x"  # %-formatting: twice as fast as format() with a spec
_HEX = frozenset("0123456789abcdef")


# ---------------------------------------------------------------------------------- from SDK spans
def compact_span_record(span: ReadableSpan, *, ended: bool) -> SpanRecord:
    """The compact record of a started (``ended=False``) or ended span.

    Reads a live span (``ended=False``) safely while its thread goes on setting attributes: from one
    snapshot of them. An ended span without a usable end time ends now. The kept attributes of an SDK
    span are stored as the SDK holds them (it accepts only strings, numbers, booleans and tuples of
    them) and capped when the record is expanded; those of any other span are made so here.

    Raises:
        ValueError: the span has no valid context (no trace or span id).
    """
    (trace_id, span_id, parent_id, name, start_ns, end_ns, status, message, service, attrs, from_sdk,
     raw_events) = _read(span, ended)
    keep = _COMPACT_ATTRIBUTE_SET
    if from_sdk and not raw_events and keep.issuperset(attrs):
        # The common case (our decorators' spans): every attribute is one a record keeps, and the
        # SDK's values can be stored as they are: keys and values are copied without a Python loop,
        # and the estimate is compact_bytes' inlined (this runs for every span; a plain loop over a
        # few values costs less than its C-level passes, which pay for their iterator objects).
        values = attrs.values()
        size = _FIXED_BYTES + _PAIR_BYTES * len(attrs) + len(name)
        for value in values:
            kind = type(value)
            if kind is str:
                size += len(value)
            elif kind is tuple:
                size += value_bytes(value)
        if message:
            size += len(message)
        return (trace_id, span_id, parent_id, name, start_ns, end_ns, status, message, service,
                *attrs, *values, size)
    detail_keys: list[str] = []
    detail_values: list[Any] = []
    dropped = 0
    if keep.issuperset(attrs):  # events only (the span logs steps): no other attribute to bound
        kept = list(attrs)
    else:
        kept = [key for key in attrs if key in keep]
        detail_keys, detail_values, dropped = detail_attributes(attrs, keep, tuple)
    capped = [_capped(attrs[key], tuple) for key in kept]
    dropped += _sdk_dropped(attrs)
    if raw_events or detail_keys or dropped:
        events = compact_events(raw_events) if raw_events else (0,)
        size = compact_bytes(_ATTRIBUTES + 2 + 2 * len(kept), name, message, capped)
        if raw_events:
            size += events_bytes(events[1:])
        if detail_keys:
            size += detail_bytes(detail_keys, detail_values)
        return (trace_id, span_id, parent_id, name, start_ns, end_ns, status, message, service,
                *kept, *capped, (dropped, len(events) - 1, *events, *detail_keys, *detail_values), size)
    return (trace_id, span_id, parent_id, name, start_ns, end_ns, status, message, service,
            *kept, *capped, compact_bytes(_ATTRIBUTES + 1 + 2 * len(kept), name, message, capped))


def span_record_from_span(span: ReadableSpan, *, ended: bool) -> dict[str, Any]:
    """The JSON record of a started (``ended=False``) or ended span.

    Keys: ``trace_id``, ``span_id``, ``parent_span_id`` (hex or None), ``name``, ``kind`` (``"agent"``,
    ``"tool"``, ``"synthesis"``, ``"registration"`` or ``"other"``), ``start_time`` / ``end_time``
    (ISO-8601 UTC; ``end_time`` None while running), ``start_time_unix_nano`` /
    ``end_time_unix_nano``, ``duration_ms``, ``status`` (``"unset"``, ``"ok"``, ``"error"``),
    ``status_message``, ``service_name``, ``agent_name``, ``tool_name``, ``attributes`` (a few
    selected attributes, values capped at 256 characters), ``detail_attributes`` (its other
    attributes, bounded: :mod:`otel_dashboard.model.span_attributes`), ``dropped_attributes``,
    ``events`` (the span's first 32 span events, see :mod:`otel_dashboard.model.span_events`; none
    while it runs) and ``dropped_events``. The same as expanding the span's
    :func:`compact_span_record`, without the compact record in between.

    Raises:
        ValueError: the span has no valid context (no trace or span id).
    """
    fields = _read(span, ended)
    raw_events = fields[-1]
    events = compact_events(raw_events) if raw_events else ()
    attrs = fields[_ATTRIBUTES]
    keys, values, dropped = detail_attributes(attrs, _KEPT_ATTRIBUTE_SET, list)
    return _json_record(fields[:_ATTRIBUTES], attrs, events, dict(zip(keys, values, strict=True)),
                        dropped + _sdk_dropped(attrs))


def expand_span_record(record: SpanRecord) -> dict[str, Any]:
    """The JSON record (a new dict, see :func:`span_record_from_span`) of a compact record."""
    size_at = len(record) - 1
    end = size_at - ((size_at - _ATTRIBUTES) & 1)  # an odd number of fields ends with the detail
    split = _ATTRIBUTES + (end - _ATTRIBUTES) // 2
    attrs = dict(zip(record[_ATTRIBUTES:split], record[split:end], strict=True))
    # The two attributes a compact record keeps for the agent name only are other attributes here.
    detail = {key: _capped(value) for key, value in attrs.items() if key not in _KEPT_ATTRIBUTE_SET}
    if end == size_at:
        return _json_record(record[:_ATTRIBUTES], attrs, (), detail, 0)
    extra = record[end]
    dropped, count = extra[0], extra[1]
    events = extra[2:3 + count]
    rest = extra[3 + count:]
    half = len(rest) // 2
    for key, value in zip(rest[:half], rest[half:], strict=True):
        detail[key] = list(value) if type(value) is tuple else value
    return _json_record(record[:_ATTRIBUTES], attrs, events, detail, dropped)


def record_head(record: SpanRecord | Mapping[str, Any]) -> tuple[Any, ...]:
    """``(span_id, parent_span_id, name, start_ns, end_ns, status, service_name, attributes)`` of a
    compact or JSON record, read without expanding it: ids as integers (parent 0 for none), the
    selected attributes as a mapping (a compact record's as the SDK holds them, uncapped)."""
    if isinstance(record, tuple):
        size_at = len(record) - 1
        end = size_at - ((size_at - _ATTRIBUTES) & 1)
        split = _ATTRIBUTES + (end - _ATTRIBUTES) // 2
        attrs = dict(zip(record[_ATTRIBUTES:split], record[split:end], strict=True))
        return (record[1], record[2], record[3], record[4], record[5], record[6], record[8], attrs)
    parent = record.get("parent_span_id")
    return (int(record["span_id"], 16), int(parent, 16) if isinstance(parent, str) else 0, record.get("name"),
            record.get("start_time_unix_nano"), record.get("end_time_unix_nano"), record.get("status"),
            record.get("service_name"), record.get("attributes") or {})


def _sdk_dropped(attrs: Any) -> int:
    # The attributes the SDK itself dropped for its limits (BoundedAttributes.dropped).
    dropped = getattr(attrs, "dropped", 0)
    return dropped if type(dropped) is int and dropped > 0 else 0


def _read(span: ReadableSpan, ended: bool) -> tuple[Any, ...]:
    """``(trace_id, span_id, parent_span_id, name, start_ns, end_ns, status, status_message,
    service_name, attributes, from_sdk, events)`` of a span, as a record holds them (see
    :data:`SpanRecord`); ``attributes`` is the span's own mapping (a copy while it runs), ``from_sdk``
    whether it is the SDK's (its values already cleaned by the SDK), ``events`` its span events
    (empty while it runs: a running record has none).

    Raises:
        ValueError: the span has no valid context (no trace or span id).
    """
    attrs: Mapping[str, Any]
    events: Sequence[Any] | deque[Any]
    fields = sdk_span.internal_fields(span)
    if fields is not None:
        trace_id, span_id, parent_id, name, start_ns, end_ns, status, resource, attrs, events = fields
    else:
        context, parent = span.context, span.parent
        trace_id = getattr(context, "trace_id", 0)
        span_id = getattr(context, "span_id", 0)
        parent_id = getattr(parent, "span_id", 0) if parent is not None else 0
        name, start_ns, end_ns, status = span.name, span.start_time, span.end_time, span.status
        resource = getattr(span, "resource", None)
        attrs = sdk_span.attributes(span)
        events = sdk_span.events(span) if ended else ()
    if type(trace_id) is not int or type(span_id) is not int or trace_id <= 0 or span_id <= 0:
        raise ValueError("the span has no valid context")
    if type(parent_id) is not int or parent_id < 0:
        parent_id = 0
    if type(name) is not str or len(name) > _MAX_NAME_CHARS:
        name = (name if isinstance(name, str) else "" if name is None else str(name))[:_MAX_NAME_CHARS]
    if type(start_ns) is not int or start_ns <= 0:
        start_ns = None
    if ended:
        if type(end_ns) is not int or end_ns <= 0:
            end_ns = time.time_ns()
        code = getattr(status, "status_code", None)
        # Identity, not a dict lookup: an enum member's hash is a Python-level call.
        status_name = "error" if code is _STATUS_ERROR else "ok" if code is _STATUS_OK else "unset"
        message = getattr(status, "description", None)
        if message is not None:
            message = _cap(message)
    else:
        end_ns, status_name, message, events = None, "unset", None, ()
        # One C-level copy: iterating the live dict while its thread adds an attribute would fail.
        attrs = attrs.copy() if type(attrs) is dict else dict(attrs)
    cached_resource, service = _service_cache
    if resource is not cached_resource or resource is None:
        service = _service_name(resource)
    return (trace_id, span_id, parent_id, name, start_ns, end_ns, status_name, message, service, attrs,
            fields is not None, events)


def _json_record(head: tuple[Any, ...], attrs: Mapping[str, Any], events: tuple[Any, ...],
                 detail: dict[str, Any], dropped_attributes: int) -> dict[str, Any]:
    # head: (trace_id, span_id, parent_id, name, start_ns, end_ns, status, message, service), as in
    # SpanRecord and _read; events: their compact form, or () for none; detail: the other
    # attributes, bounded (JSON-ready).
    json_events, dropped_events = expand_events(events) if events else ([], 0)
    trace_id, span_id, parent_id, name, start_ns, end_ns, status, message, service = head
    view = view_of(name, attrs)
    kind = view.kind
    return {
        "trace_id": _TRACE_HEX % trace_id,
        "span_id": _SPAN_HEX % span_id,
        "parent_span_id": _SPAN_HEX % parent_id if parent_id else None,
        "name": _cap(name),
        "kind": kind,
        "start_time": format_timestamp(start_ns) if start_ns else None,
        "end_time": format_timestamp(end_ns) if end_ns else None,
        "start_time_unix_nano": start_ns,
        "end_time_unix_nano": end_ns,
        "duration_ms": round(max(end_ns - start_ns, 0) / 1e6, 3) if start_ns and end_ns else None,
        "status": status,
        "status_message": message,
        "service_name": service,
        "agent_name": _cap(view.agent_name),
        "tool_name": _cap(view.tool_name),
        "attributes": {key: _capped(value) for key, value in attrs.items() if key in _KEPT_ATTRIBUTE_SET},
        "detail_attributes": detail,
        "dropped_attributes": dropped_attributes,
        "events": json_events,
        "dropped_events": dropped_events,
    }


# (resource, service name) of the last span seen: a process's spans share one Resource object, and
# a tuple swap is thread-safe.
_service_cache: tuple[Any, str | None] = (None, None)


def _service_name(resource: Any) -> str | None:
    global _service_cache
    cached = _service_cache
    if resource is not None and cached[0] is resource:
        return cached[1]
    attrs = getattr(resource, "attributes", None)
    value = attrs.get(sc.SERVICE_NAME) if attrs else None
    name = _cap(value) if isinstance(value, str) else None
    if resource is not None:
        _service_cache = (resource, name)
    return name


def _lower(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) else None


def _cap(value: Any) -> str | None:
    if type(value) is str and len(value) <= _MAX_VALUE_CHARS:
        return value  # the common case, first
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "\u2026"


def _capped(value: Any, sequence: Callable[[list[Any]], Any] = list) -> Any:
    """An attribute value, small: long strings cut, long sequences shortened (made ``sequence``:
    lists for JSON, tuples for a compact record), anything else that is not a plain scalar as text."""
    if isinstance(value, str):
        return _cap(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return sequence([_capped(item, sequence) for item in value[:_MAX_SEQUENCE_ITEMS]])
    return _cap(value)


# ---------------------------------------------------------------------------------- from events
def span_records_from_events(events: Iterable[DashboardEvent]) -> list[dict[str, Any]]:
    """JSON records for the run events of ingested events that came without their spans.

    ``agent_execution_started`` / ``synthesis_started`` give a running record, ``..._completed`` a
    finished one (start from ``data.started_at``, else end minus ``data.duration_ms``; status ``ok`` or
    ``error`` from ``data.success``). Events of other types, or without valid ``trace_id`` and
    ``span_id``, give nothing.
    """
    records = []
    for event in events:
        spec = _RUN_EVENT_KINDS.get(event.event_type)
        if spec is None or not _is_hex(event.trace_id, 32) or not _is_hex(event.span_id, 16):
            continue
        kind, completed = spec
        records.append(_record_from_event(event, kind, completed))
    return records


def _record_from_event(event: DashboardEvent, kind: str, completed: bool) -> dict[str, Any]:
    data = event.data if isinstance(event.data, dict) else {}
    event_ns = timestamp_to_unix_nano(event.timestamp)
    duration = data.get("duration_ms")
    if (isinstance(duration, bool) or not isinstance(duration, (int, float))
            or not 0 <= duration <= _MAX_DURATION_MS):
        duration = None  # also an infinite or absurd one: a sender's value must not fail the request
    if completed:
        end_ns = event_ns
        start_ns = timestamp_to_unix_nano(data.get("started_at"))
        if start_ns is None and end_ns is not None and duration is not None:
            start_ns = end_ns - int(duration * 1_000_000)
    else:
        end_ns = None
        start_ns = timestamp_to_unix_nano(data.get("started_at")) or event_ns
    if completed and duration is None and start_ns is not None and end_ns is not None:
        duration = round(max(end_ns - start_ns, 0) / 1e6, 3)

    if kind == KIND_AGENT:
        agent_name = _cap(data.get("agent_name")) or None
        name = f"{sc.OPERATION_INVOKE_AGENT} {agent_name}" if agent_name else sc.OPERATION_INVOKE_AGENT
    else:
        agent_name = _cap(data.get("agent_name")) or None
        phase = _cap(data.get("phase"))
        name = f"{sc.SPAN_KIND_SYNTHESIS} {phase}" if phase else sc.SPAN_KIND_SYNTHESIS
    success = data.get("success")
    if completed and success is False:
        status = "error"
    elif completed and success is True:
        status = "ok"
    else:
        status = "unset"
    parent = data.get("parent_span_id")
    return {
        "trace_id": event.trace_id.lower(),  # type: ignore[union-attr]
        "span_id": event.span_id.lower(),  # type: ignore[union-attr]
        "parent_span_id": parent.lower() if _is_hex(parent, 16) else None,
        "name": _cap(name),
        "kind": kind,
        "start_time": format_timestamp(start_ns) if start_ns else None,
        "end_time": (format_timestamp(end_ns) if end_ns else event.timestamp) if completed else None,
        "start_time_unix_nano": start_ns,
        "end_time_unix_nano": end_ns,
        "duration_ms": duration,
        "status": status,
        "status_message": _cap(data.get("error_message")) if status == "error" else None,
        "service_name": _cap(data.get("service_name")),
        "agent_name": agent_name,
        "tool_name": None,
        "attributes": {},
        "detail_attributes": {},
        "dropped_attributes": 0,
        "events": [],
        "dropped_events": 0,
    }


def _is_hex(value: Any, digits: int) -> TypeGuard[str]:
    return (
        isinstance(value, str) and len(value) == digits and _HEX.issuperset(value.lower())
        and value.strip("0") != ""
    )
