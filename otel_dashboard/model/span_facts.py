"""What the mapping reads off a span besides its attributes: ids, service name, times, status; and
:class:`SpanInfo`, the facts every event of one span repeats, made once per span."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from instrumentation import semconv as sc
from otel_dashboard.model import sdk_span
from otel_dashboard.model.events import DashboardEvent, EventType, Severity, format_timestamp, new_event_id
from otel_dashboard.model.values import as_text

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "SpanInfo",
    "duration_ms_of",
    "event_attributes",
    "event_time",
    "iso",
    "service_name_of",
    "span_info",
    "status_description",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_TRACE_HEX, _SPAN_HEX = "%032x", "%016x"


class SpanInfo:
    """The per-span facts every event of the span repeats: ids and service name (and its start time
    formatted, once asked for)."""

    __slots__ = ("_started_at", "parent_span_id", "service_name", "span_id", "trace_id")

    def __init__(self, span: ReadableSpan) -> None:
        trace_id, span_id, parent_id = sdk_span.span_ids(span)
        # Missing or invalid ids give None; %-formatting: twice as fast as format() with a spec.
        self.trace_id = _TRACE_HEX % trace_id if type(trace_id) is int and trace_id > 0 else None
        self.span_id = _SPAN_HEX % span_id if type(span_id) is int and span_id > 0 else None
        self.parent_span_id = _SPAN_HEX % parent_id if type(parent_id) is int and parent_id > 0 else None
        self.service_name = service_name_of(span)
        self._started_at: str | bool | None = False  # False: not formatted yet

    def started_at(self, span: ReadableSpan) -> str | None:
        """The span's start time as an ISO timestamp (``None`` without one); formatted once."""
        started_at = self._started_at
        if started_at is False:
            started_at = self._started_at = iso(span.start_time)
        return started_at  # type: ignore[return-value]

    def event(
        self,
        event_type: EventType,
        data: dict[str, Any],
        severity: Severity,
        time_ns: int | None,
        timestamp: str | None = None,
    ) -> DashboardEvent:
        """The span's event stamped ``time_ns`` (now if unusable); ``timestamp`` when given is that
        time formatted already."""
        if timestamp is None:
            timestamp = format_timestamp(time_ns if isinstance(time_ns, int) and time_ns > 0 else None)
        # What DashboardEvent.create does, without its keyword handling: this runs for every event.
        return DashboardEvent(
            new_event_id(),
            event_type,
            timestamp,
            data,
            severity,
            self.trace_id,
            self.span_id,
        )


# (context, facts) of the last span whose facts were read. An agent span's start and end are mapped
# one after the other, with at most its children's spans between them, which make no facts of their
# own in the common case: its end then reuses what its start formatted. Keyed by the span's context
# object (the SDK makes one per span, shared by its start and end); a tuple swap is thread-safe.
_info_cache: tuple[Any, SpanInfo | None] = (None, None)


def span_info(span: ReadableSpan) -> SpanInfo:
    """The span's :class:`SpanInfo`, from the cache when it is the last span's."""
    global _info_cache
    context = span.context
    cached_context, info = _info_cache
    if context is cached_context and info is not None:
        return info
    info = SpanInfo(span)
    if info.span_id is not None and context is not None:
        # Only spans with their own valid context: a foreign span without one may share the
        # invalid context object with spans of other resources.
        _info_cache = (context, info)
    return info


def event_attributes(span_event: Any) -> Mapping[str, Any]:
    attrs = getattr(span_event, "attributes", None)
    return attrs if attrs is not None else _EMPTY


def event_time(span_event: Any) -> int:
    ts = getattr(span_event, "timestamp", None)
    return ts if isinstance(ts, int) else 0


# (resource, service name) of the last span seen: a process's spans share one Resource object.
_service_cache: tuple[Any, str | None] = (None, None)


def service_name_of(span: ReadableSpan) -> str | None:
    # Passed through as is, the SDK default "unknown_service:..." included.
    global _service_cache
    resource = getattr(span, "resource", None)
    cached_resource, cached_name = _service_cache
    if resource is cached_resource and resource is not None:
        return cached_name
    attrs = getattr(resource, "attributes", None)
    name = as_text(attrs.get(sc.SERVICE_NAME)) if attrs else None
    _service_cache = (resource, name)
    return name


def iso(epoch_ns: Any) -> str | None:
    """``format_timestamp(epoch_ns)`` for a positive integer, else ``None``."""
    if isinstance(epoch_ns, int) and epoch_ns > 0:
        return format_timestamp(epoch_ns)
    return None


# Below this many nanoseconds (11 days), ns / 1e6 as a float is close enough to the exact quotient
# that rounding it to 3 decimals equals rounding the integer microseconds (see duration_ms).
_EXACT_DURATION_NS = 10**15


def duration_ms_of(span: ReadableSpan) -> float | None:
    """``round((end - start) / 1e6, 3)`` (at least 0), or ``None`` without both times."""
    start, end = span.start_time, span.end_time
    if not isinstance(start, int) or not isinstance(end, int):
        return None
    ns = max(end - start, 0)
    # round(x, 3) goes through decimal digits and costs several times the integer arithmetic, which
    # gives the same float except for an exact half microsecond (round's tie follows the float).
    if ns % 1000 == 500 or ns >= _EXACT_DURATION_NS:
        return round(ns / 1_000_000, 3)
    return (ns + 500) // 1000 / 1000


def status_description(status: Any) -> str | None:
    return as_text(getattr(status, "description", None))
