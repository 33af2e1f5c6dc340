"""The spans the server has seen, grouped by trace, for the drill-down view (``GET /api/traces/{id}``).

A span is kept as a small JSON-ready *span record* (see :func:`span_record_from_span`), not as the
span itself: the selected attributes only, each value capped. Records come from three places:

* spans mapped in process (the processor: a running record at start, the finished one at end);
* spans received over OTLP (always finished);
* run events that arrive through ``/api/events`` without their spans
  (:func:`span_records_from_events`: agent and synthesis runs only).

:class:`TraceStore` is bounded twice: at most ``max_traces`` traces, the least recently updated
evicted first, and at most ``max_spans_per_trace`` spans per trace (more are dropped, counted and the
trace is marked ``truncated``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from instrumentation import semconv as sc
from otel_dashboard.model.events import DashboardEvent, EventType, format_timestamp
from otel_dashboard.model.ingest import timestamp_to_unix_nano
from otel_dashboard.model.sdk_span import attributes as span_attributes

__all__ = [
    "KIND_AGENT",
    "KIND_OTHER",
    "KIND_REGISTRATION",
    "KIND_SYNTHESIS",
    "KIND_TOOL",
    "TraceStore",
    "span_record_from_span",
    "span_records_from_events",
]

KIND_AGENT = "agent"
KIND_TOOL = "tool"
KIND_SYNTHESIS = "synthesis"
KIND_REGISTRATION = "registration"
KIND_OTHER = "other"

_DEFAULT_MAX_TRACES = 1000
_DEFAULT_MAX_SPANS_PER_TRACE = 1000
_MAX_VALUE_CHARS = 256
_MAX_SEQUENCE_ITEMS = 16

# The attributes a record keeps; everything else stays out of the store.
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
)
_KEPT_ATTRIBUTE_SET = frozenset(_KEPT_ATTRIBUTES)
_RUN_EVENT_KINDS = {
    EventType.AGENT_EXECUTION_STARTED: (KIND_AGENT, False),
    EventType.AGENT_EXECUTION_COMPLETED: (KIND_AGENT, True),
    EventType.SYNTHESIS_STARTED: (KIND_SYNTHESIS, False),
    EventType.SYNTHESIS_COMPLETED: (KIND_SYNTHESIS, True),
}
_STATUS_NAMES = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}
_HEX = frozenset("0123456789abcdef")


# ---------------------------------------------------------------------------------- the store
class _Trace:
    __slots__ = ("dropped_spans", "spans")

    def __init__(self) -> None:
        # span id (int) -> a record dict, or the live SDK span itself (see TraceStore.add_live_span)
        self.spans: dict[int, dict[str, Any] | ReadableSpan] = {}
        self.dropped_spans = 0


class TraceStore:
    """Span records grouped by trace id; thread-safe and bounded.

    Args:
        max_traces: traces kept at most; adding a span to a new trace beyond it evicts the trace
            updated least recently.
        max_spans_per_trace: spans kept per trace; further new spans of a full trace are dropped and
            counted (updates of kept spans still apply).

    Raises:
        ValueError: a bound that is not a positive integer.
    """

    def __init__(
        self,
        *,
        max_traces: int = _DEFAULT_MAX_TRACES,
        max_spans_per_trace: int = _DEFAULT_MAX_SPANS_PER_TRACE,
    ) -> None:
        for name, value in (("max_traces", max_traces), ("max_spans_per_trace", max_spans_per_trace)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self._max_traces = max_traces
        self._max_spans = max_spans_per_trace
        self._lock = threading.Lock()
        # Keyed by the integer ids: the in-process hot path then formats no hex at all.
        self._traces: OrderedDict[int, _Trace] = OrderedDict()
        self._evicted_traces = 0
        self._dropped_spans = 0

    def add_span(self, record: Mapping[str, Any]) -> bool:
        """Adds or updates one span record (see :func:`span_record_from_span` for its keys).

        A record for a span already kept is merged into it: its non-null fields win, so a finished
        record completes a running one. A running record never reopens a finished span (a start that
        arrives after its end is ignored).

        Returns:
            False when the record was not kept (its trace is full, or it was a late start).

        Raises:
            ValueError: ``trace_id`` or ``span_id`` missing or not a hex string of the right length.
        """
        trace_id = int(_checked_id(record.get("trace_id"), 32, "trace_id"), 16)
        span_id = int(_checked_id(record.get("span_id"), 16, "span_id"), 16)
        finished = record.get("end_time") is not None
        with self._lock:
            trace = self._trace_for(trace_id)
            existing = trace.spans.get(span_id)
            if existing is None:
                if len(trace.spans) >= self._max_spans:
                    trace.dropped_spans += 1
                    self._dropped_spans += 1
                    return False
                stored = dict(record)
                stored["trace_id"], stored["span_id"] = format(trace_id, "032x"), format(span_id, "016x")
                stored["attributes"] = dict(record.get("attributes") or {})
                trace.spans[span_id] = stored
                return True
            if not isinstance(existing, dict):
                return False  # the live span is the truth about itself
            if existing.get("end_time") is not None and not finished:
                return False
            for key, value in record.items():
                if key in ("trace_id", "span_id") or value is None:
                    continue
                if key == "attributes":
                    if isinstance(value, Mapping):
                        existing["attributes"] = {**existing["attributes"], **value}
                else:
                    existing[key] = value
            return True

    def add_live_span(self, span: ReadableSpan) -> bool:
        """Keeps a reference to an in-process SDK span; its record is built when the trace is read.

        This is the span processor's path: it costs a dict update per span instead of building a
        record at every start and end, and a span read while running shows as running, once ended as
        ended. Calling it again for a kept span only marks its trace as recently updated.

        Returns:
            False when the span was not kept (no valid ids, or its trace is full).
        """
        return self.add_live_spans((span,)) == 1

    def add_live_spans(self, spans: Iterable[ReadableSpan]) -> int:
        """:meth:`add_live_span` for each span, under one acquisition of the lock.

        Returns:
            How many of them are kept.
        """
        kept = 0
        traces = self._traces
        with self._lock:
            for span in spans:
                try:
                    context = span.context
                    trace_id, span_id = context.trace_id, context.span_id
                except AttributeError:
                    continue
                if not trace_id or not span_id:
                    continue
                trace = traces.get(trace_id)
                if trace is None:
                    trace = self._trace_for(trace_id)
                else:
                    traces.move_to_end(trace_id)
                trace_spans = trace.spans
                if span_id in trace_spans:
                    kept += 1
                    continue
                if len(trace_spans) >= self._max_spans:
                    trace.dropped_spans += 1
                    self._dropped_spans += 1
                    continue
                trace_spans[span_id] = span
                kept += 1
        return kept

    def _trace_for(self, trace_id: int) -> _Trace:
        # Called with the lock held: the trace, created (evicting the stalest) or marked as fresh.
        trace = self._traces.get(trace_id)
        if trace is None:
            trace = self._traces[trace_id] = _Trace()
            while len(self._traces) > self._max_traces:
                self._traces.popitem(last=False)
                self._evicted_traces += 1
        else:
            self._traces.move_to_end(trace_id)
        return trace

    def add_spans(self, records: Iterable[Mapping[str, Any]]) -> None:
        """:meth:`add_span` for each record."""
        for record in records:
            self.add_span(record)

    def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace for the drill-down view, or ``None`` when it is not (or no longer) kept.

        Returns:
            ``{"trace_id", "spans", "span_count", "root_span_ids", "running", "truncated",
            "dropped_spans"}``. ``spans`` are copies sorted by start time; ``root_span_ids`` are the
            spans without a parent or whose parent is not in the trace (so every span hangs somewhere
            in the tree); ``running`` is true while any span has not ended; ``truncated`` when spans
            were dropped for the per-trace cap.
        """
        if not isinstance(trace_id, str) or len(trace_id) != 32:
            return None
        key = trace_id.lower()
        if not _HEX.issuperset(key):
            return None
        with self._lock:
            trace = self._traces.get(int(key, 16))
            if trace is None:
                return None
            kept = list(trace.spans.values())
            dropped = trace.dropped_spans
        # Records of live spans are built here, outside the lock, on the (rare) read.
        spans = []
        for item in kept:
            if isinstance(item, dict):
                spans.append({**item, "attributes": dict(item["attributes"])})
            else:
                with contextlib.suppress(ValueError):
                    spans.append(span_record_from_span(item, ended=item.end_time is not None))
        spans.sort(key=lambda r: (r.get("start_time_unix_nano") or 0, r["span_id"]))
        ids = {record["span_id"] for record in spans}
        return {
            "trace_id": key,
            "spans": spans,
            "span_count": len(spans),
            "root_span_ids": [r["span_id"] for r in spans if r.get("parent_span_id") not in ids],
            "running": any(r.get("end_time") is None for r in spans),
            "truncated": dropped > 0,
            "dropped_spans": dropped,
        }

    def __len__(self) -> int:
        with self._lock:
            return len(self._traces)

    def stats(self) -> dict[str, int]:
        """Counters for ``/health`` and ``/metrics``: traces and spans kept, traces evicted, spans
        dropped for the per-trace cap."""
        with self._lock:
            return {
                "traces": len(self._traces),
                "spans": sum(len(trace.spans) for trace in self._traces.values()),
                "evicted_traces": self._evicted_traces,
                "dropped_spans": self._dropped_spans,
            }


def _checked_id(value: Any, digits: int, name: str) -> str:
    if isinstance(value, str) and len(value) == digits:
        lowered = value.lower()
        if _HEX.issuperset(lowered):
            return lowered
    raise ValueError(f"{name} must be {digits} hex digits, got {value!r}")


# ---------------------------------------------------------------------------------- records from spans
def span_record_from_span(span: ReadableSpan, *, ended: bool) -> dict[str, Any]:
    """The record of a started (``ended=False``) or ended span.

    Keys: ``trace_id``, ``span_id``, ``parent_span_id`` (hex or None), ``name``, ``kind`` (``"agent"``,
    ``"tool"``, ``"synthesis"``, ``"registration"`` or ``"other"``), ``start_time`` / ``end_time``
    (ISO-8601 UTC; ``end_time`` None while running), ``start_time_unix_nano`` /
    ``end_time_unix_nano``, ``duration_ms``, ``status`` (``"unset"``, ``"ok"``, ``"error"``),
    ``status_message``, ``service_name``, ``agent_name``, ``tool_name`` and ``attributes`` (a few
    selected attributes, values capped at 256 characters).

    Raises:
        ValueError: the span has no valid context (no trace or span id).
    """
    context = span.context
    trace_id = getattr(context, "trace_id", 0)
    span_id = getattr(context, "span_id", 0)
    if not isinstance(trace_id, int) or not isinstance(span_id, int) or not trace_id or not span_id:
        raise ValueError("the span has no valid context")
    parent = span.parent
    parent_id = getattr(parent, "span_id", 0) if parent is not None else 0
    attrs = span_attributes(span)
    name = span.name or ""
    kind = _kind(attrs)
    start_ns = span.start_time if isinstance(span.start_time, int) and span.start_time > 0 else None
    end_ns = None
    if ended:
        end_ns = span.end_time if isinstance(span.end_time, int) and span.end_time > 0 else time.time_ns()
    status = span.status
    code = getattr(status, "status_code", StatusCode.UNSET)
    return {
        "trace_id": format(trace_id, "032x"),
        "span_id": format(span_id, "016x"),
        "parent_span_id": format(parent_id, "016x") if isinstance(parent_id, int) and parent_id else None,
        "name": _cap(name),
        "kind": kind,
        "start_time": format_timestamp(start_ns) if start_ns else None,
        "end_time": format_timestamp(end_ns) if end_ns else None,
        "start_time_unix_nano": start_ns,
        "end_time_unix_nano": end_ns,
        "duration_ms": round(max(end_ns - start_ns, 0) / 1e6, 3) if start_ns and end_ns else None,
        "status": _STATUS_NAMES.get(code, "unset") if ended else "unset",
        "status_message": _cap(getattr(status, "description", None)) if ended else None,
        "service_name": _service_name(span),
        "agent_name": _agent_name(attrs, name, kind),
        "tool_name": _tool_name(attrs, name, kind),
        "attributes": _kept_attributes(attrs),
    }


def _kept_attributes(attrs: Mapping[str, Any]) -> dict[str, Any]:
    # Walk whichever is shorter: a span usually has fewer attributes than the kept list is long.
    if len(attrs) < len(_KEPT_ATTRIBUTES):
        return {key: _capped(value) for key, value in attrs.items() if key in _KEPT_ATTRIBUTE_SET}
    return {key: _capped(attrs[key]) for key in _KEPT_ATTRIBUTES if key in attrs}


def _kind(attrs: Mapping[str, Any]) -> str:
    operation = attrs.get(sc.GEN_AI_OPERATION_NAME)
    openinference = _lower(attrs.get(sc.OPENINFERENCE_SPAN_KIND))
    traceloop = _lower(attrs.get(sc.TRACELOOP_SPAN_KIND))
    own = attrs.get(sc.SPAN_KIND)
    if (
        operation == sc.OPERATION_INVOKE_AGENT
        or openinference == "agent"
        or traceloop == "agent"
        or own == sc.SPAN_KIND_AGENT
    ):
        return KIND_AGENT
    if operation == sc.OPERATION_EXECUTE_TOOL or openinference == "tool" or traceloop == "tool" or (
        own == sc.SPAN_KIND_TOOL
    ):
        return KIND_TOOL
    if own == sc.SPAN_KIND_SYNTHESIS:
        return KIND_SYNTHESIS
    if operation == sc.OPERATION_CREATE_AGENT or own == sc.SPAN_KIND_REGISTRATION:
        return KIND_REGISTRATION
    return KIND_OTHER


def _agent_name(attrs: Mapping[str, Any], span_name: str, kind: str) -> str | None:
    for key in (sc.GEN_AI_AGENT_NAME, sc.OPENINFERENCE_AGENT_NAME):
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return _cap(value)
    if kind != KIND_AGENT:
        return None
    entity = attrs.get(sc.TRACELOOP_ENTITY_NAME)
    if isinstance(entity, str) and entity:
        return _cap(entity)
    prefix = sc.OPERATION_INVOKE_AGENT + " "
    return _cap(span_name[len(prefix):].strip() if span_name.startswith(prefix) else span_name) or None


def _tool_name(attrs: Mapping[str, Any], span_name: str, kind: str) -> str | None:
    value = attrs.get(sc.GEN_AI_TOOL_NAME)
    if isinstance(value, str) and value:
        return _cap(value)
    if kind != KIND_TOOL:
        return None
    prefix = sc.OPERATION_EXECUTE_TOOL + " "
    return _cap(span_name[len(prefix):].strip() if span_name.startswith(prefix) else span_name) or None


_service_cache: tuple[Any, str | None] = (None, None)


def _service_name(span: ReadableSpan) -> str | None:
    global _service_cache
    resource = getattr(span, "resource", None)
    cached = _service_cache
    # A process has one resource: every span shares the object (a tuple swap: thread-safe).
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


def _capped(value: Any) -> Any:
    """An attribute value, JSON-ready and small: long strings cut, long sequences shortened."""
    if isinstance(value, str):
        return _cap(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_capped(item) for item in value[:_MAX_SEQUENCE_ITEMS]]
    return _cap(value)


# ---------------------------------------------------------------------------------- records from events
def span_records_from_events(events: Iterable[DashboardEvent]) -> list[dict[str, Any]]:
    """Span records for the run events of ingested events that came without their spans.

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
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not duration >= 0:
        duration = None
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
    }


def _is_hex(value: Any, digits: int) -> bool:
    return (
        isinstance(value, str) and len(value) == digits and _HEX.issuperset(value.lower())
        and value.strip("0") != ""
    )
