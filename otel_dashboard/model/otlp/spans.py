"""Decoded OTLP requests to SDK spans (:class:`~opentelemetry.sdk.trace.ReadableSpan`), the same
objects the mapping reads in process; invalid spans are rejected one by one and counted."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from otel_dashboard.model.otlp.any_value import plain_value

__all__ = ["spans_from_request"]

logger = logging.getLogger(__name__)

# OTLP enum values (opentelemetry/proto/trace/v1/trace.proto).
_SPAN_KINDS = {
    0: SpanKind.INTERNAL,  # SPAN_KIND_UNSPECIFIED
    1: SpanKind.INTERNAL,
    2: SpanKind.SERVER,
    3: SpanKind.CLIENT,
    4: SpanKind.PRODUCER,
    5: SpanKind.CONSUMER,
}
_STATUS_UNSET = Status(StatusCode.UNSET)
_STATUS_OK = Status(StatusCode.OK)
_STATUS_CODE_OK = 1
_STATUS_CODE_ERROR = 2

_TRACE_ID_BYTES = 16
_SPAN_ID_BYTES = 8

_MAX_ERROR_MESSAGE_CHARS = 500
_MAX_REASONS_IN_MESSAGE = 5
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def spans_from_request(
    request: ExportTraceServiceRequest,
) -> tuple[list[ReadableSpan], int, str | None]:
    """Converts every span of an OTLP request into an SDK :class:`ReadableSpan`.

    The spans are the same kind of object the SDK hands to span processors, so
    :mod:`otel_dashboard.model.mapping` treats them exactly like in-process spans. Attribute values become
    SDK attribute values: strings, booleans, integers and doubles as they are, homogeneous arrays as
    tuples, key-value lists and mixed arrays as JSON text, bytes as base64 text.

    Args:
        request: a decoded request (see :func:`decode_body`).

    Returns:
        The accepted spans, the number of rejected spans (see the module docstring for the rules) and,
        when spans were rejected, a message saying why (for ``partial_success.error_message``).
    """
    spans: list[ReadableSpan] = []
    rejected = 0
    reasons: list[str] = []
    for resource_spans in request.resource_spans:
        resource = Resource(_attributes(resource_spans.resource.attributes), resource_spans.schema_url)
        for scope_spans in resource_spans.scope_spans:
            scope_msg = scope_spans.scope
            scope = InstrumentationScope(
                scope_msg.name,
                scope_msg.version or None,
                scope_spans.schema_url or None,
                _attributes(scope_msg.attributes) or None,
            )
            for otlp_span in scope_spans.spans:
                try:
                    span = _to_readable_span(otlp_span, resource, scope)
                except _RejectedSpan as exc:
                    rejected += 1
                    if len(reasons) < _MAX_REASONS_IN_MESSAGE:
                        reasons.append(str(exc))
                    continue
                spans.append(span)
    if not rejected:
        return spans, 0, None
    message = f"{rejected} span(s) rejected: " + "; ".join(reasons)
    if rejected > len(reasons):
        message += "; ..."
    return spans, rejected, message[:_MAX_ERROR_MESSAGE_CHARS]


class _RejectedSpan(Exception):
    pass


def _to_readable_span(
    otlp_span: trace_pb2.Span, resource: Resource, scope: InstrumentationScope
) -> ReadableSpan:
    name = otlp_span.name
    label = f"span {name[:60]!r}" if name else "span"
    trace_id = _id_int(otlp_span.trace_id, _TRACE_ID_BYTES)
    if not trace_id:
        raise _RejectedSpan(f"{label}: traceId must be 16 bytes (32 hex digits) and not all zero")
    span_id = _id_int(otlp_span.span_id, _SPAN_ID_BYTES)
    if not span_id:
        raise _RejectedSpan(f"{label}: spanId must be 8 bytes (16 hex digits) and not all zero")
    parent: SpanContext | None = None
    if otlp_span.parent_span_id:
        parent_id = _id_int(otlp_span.parent_span_id, _SPAN_ID_BYTES)
        if parent_id is None:
            raise _RejectedSpan(f"{label}: parentSpanId must be empty or 8 bytes (16 hex digits)")
        if parent_id:
            parent = SpanContext(trace_id, parent_id, is_remote=True, trace_flags=_SAMPLED)
    if not name:
        raise _RejectedSpan("span without a name")
    start, end = otlp_span.start_time_unix_nano, otlp_span.end_time_unix_nano
    if not start:
        raise _RejectedSpan(f"{label}: startTimeUnixNano missing")
    if end < start:
        raise _RejectedSpan(f"{label}: endTimeUnixNano before startTimeUnixNano")

    events = [
        Event(ev.name, _attributes(ev.attributes), ev.time_unix_nano or start)
        for ev in otlp_span.events
    ]
    links = []
    for link in otlp_span.links:
        link_trace = _id_int(link.trace_id, _TRACE_ID_BYTES)
        link_span = _id_int(link.span_id, _SPAN_ID_BYTES)
        if link_trace and link_span:
            links.append(Link(
                SpanContext(link_trace, link_span, is_remote=True, trace_flags=_SAMPLED),
                _attributes(link.attributes),
            ))
    code = otlp_span.status.code
    if code == _STATUS_CODE_ERROR:
        status = Status(StatusCode.ERROR, otlp_span.status.message or None)
    elif code == _STATUS_CODE_OK:
        status = _STATUS_OK
    else:  # UNSET, or a value this receiver does not know
        status = _STATUS_UNSET
    return ReadableSpan(
        name=name,
        context=SpanContext(trace_id, span_id, is_remote=True, trace_flags=_SAMPLED),
        parent=parent,
        resource=resource,
        attributes=_attributes(otlp_span.attributes),
        events=events,
        links=links,
        kind=_SPAN_KINDS.get(otlp_span.kind, SpanKind.INTERNAL),
        status=status,
        start_time=start,
        end_time=end,
        instrumentation_scope=scope,
    )


def _id_int(raw: bytes, size: int) -> int | None:
    """The id as an integer; ``None`` when it has the wrong length, ``0`` when it is all zero."""
    if len(raw) != size:
        return None
    return int.from_bytes(raw, "big")


def _attributes(key_values: Iterable[KeyValue]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in key_values:
        if not kv.key:
            continue
        value = _attribute_value(kv.value)
        if value is not None:
            out[kv.key] = value
    return out


def _attribute_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as an SDK attribute value (``None`` for an empty value)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        items = [plain_value(v, 1) for v in value.array_value.values]
        item_types = {type(item) for item in items}
        if not items:
            return ()
        if len(item_types) == 1 and item_types <= {str, bool, int, float}:
            return tuple(items)
        return _json_text(items)
    if which == "kvlist_value":
        return _json_text(plain_value(value, 0))
    return plain_value(value, 0)


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


