"""The OTLP/HTTP trace receiver's codec: request bodies in, SDK spans out, responses back.

``POST /v1/traces`` is wired as::

    try:
        request, encoding = decode_body(body, content_type=..., content_encoding=...,
                                        max_decoded_bytes=limit)
    except OtlpError as exc:
        payload, ctype = encode_error(exc.encoding, str(exc), exc.http_status)
        return web.Response(status=exc.http_status, body=payload, content_type=ctype)
    spans, rejected, message = spans_from_request(request)
    for event in events_from_otlp_spans(spans):
        state.publish(event)
    payload, ctype = encode_response(encoding, rejected, message or "")
    return web.Response(status=200, body=payload, content_type=ctype)

Every error class carries the HTTP status the OTLP/HTTP specification asks for
(:attr:`OtlpError.http_status`): an undecodable body is 400 (:class:`OtlpDecodeError`), a body
larger than the limit once decompressed is 413 (:class:`PayloadTooLarge`), a content type or a
content coding the receiver does not speak is 415 (:class:`UnsupportedMediaType`, also for an
unknown ``Content-Encoding``: RFC 9110 section 15.5.16 names 415 for an unacceptable content coding).

Encodings
    * ``application/x-protobuf`` (and ``application/protobuf``): decoded by the ``opentelemetry-proto``
      message classes.
    * ``application/json``: the OTLP/JSON mapping. It is the protobuf JSON mapping with one exception:
      ``traceId``, ``spanId`` and ``parentSpanId`` (of spans and of links) are HEX strings, not base64.
      Field names may be camelCase or the proto's snake_case, int64 values strings or numbers, enums
      integers or names; unknown fields are ignored. Ids are converted from hex before
      ``google.protobuf.json_format.ParseDict`` sees the document.
    * Parameters of the content type (``; charset=utf-8``) and its case are ignored.
    * ``Content-Encoding``: ``gzip`` (``x-gzip``) and ``identity``, also as a comma-separated list
      applied in order. Decompression is incremental and bounded: a gzip bomb is stopped as soon as
      the output passes the limit, without inflating the rest.

Which spans are rejected (counted in ``partial_success.rejected_spans``, the rest is accepted)
    * a trace id that is not 16 bytes (32 hex digits in JSON) or is all zero;
    * a span id that is not 8 bytes or is all zero;
    * a parent span id that is neither empty nor 8 bytes (an all-zero one means "no parent");
    * an empty name;
    * a missing (zero) start time, or an end time before the start time.

    Links with invalid ids are dropped from their span, which is kept. A body that cannot be parsed
    at all (bad protobuf, bad JSON, a JSON document not shaped like the OTLP message) is a 400 for the
    whole request.
"""

from __future__ import annotations

import base64
import logging
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from otel_dashboard.model.events import DashboardEvent, QualityThresholds

__all__ = [
    "ENCODING_JSON",
    "ENCODING_PROTOBUF",
    "OtlpDecodeError",
    "OtlpError",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "decode_body",
    "encode_error",
    "encode_response",
    "events_from_otlp_spans",
    "spans_from_request",
]

logger = logging.getLogger(__name__)

ENCODING_PROTOBUF = "protobuf"
ENCODING_JSON = "json"

_CONTENT_TYPES = {
    "application/x-protobuf": ENCODING_PROTOBUF,
    "application/protobuf": ENCODING_PROTOBUF,
    "application/json": ENCODING_JSON,
}
_RESPONSE_CONTENT_TYPES = {
    ENCODING_PROTOBUF: "application/x-protobuf",
    ENCODING_JSON: "application/json",
}
_GZIP_CODINGS = frozenset({"gzip", "x-gzip"})
_IDENTITY_CODINGS = frozenset({"identity", ""})
_INFLATE_CHUNK = 64 * 1024

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
# An id that is not valid hex in a JSON body becomes this one byte: no id has that length, so the
# span is rejected later with the other id checks (the rest of the request still goes through).
_INVALID_ID_BASE64 = base64.b64encode(b"\xff").decode()
_ID_KEYS = (("traceId", "trace_id"), ("spanId", "span_id"), ("parentSpanId", "parent_span_id"))
_LINK_ID_KEYS = (("traceId", "trace_id"), ("spanId", "span_id"))

_MAX_ANY_VALUE_DEPTH = 32
_MAX_ERROR_MESSAGE_CHARS = 500
_MAX_REASONS_IN_MESSAGE = 5
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)

# google.rpc.Code values used in error bodies.
_RPC_INVALID_ARGUMENT = 3
_RPC_RESOURCE_EXHAUSTED = 8
_RPC_UNAVAILABLE = 14
# google.rpc.Code for each HTTP status we answer with (the mapping of google/rpc/code.proto).
_RPC_CODE_BY_HTTP_STATUS = {413: _RPC_RESOURCE_EXHAUSTED, 429: _RPC_RESOURCE_EXHAUSTED, 503: _RPC_UNAVAILABLE}


# ---------------------------------------------------------------------------------- errors
class OtlpError(ValueError):
    """A request the receiver refuses as a whole. Its message is safe to return to the client.

    Attributes:
        http_status: the HTTP status to answer with.
        encoding: the request's encoding (``"protobuf"`` / ``"json"``) when it was recognised, so the
            error body can use it; ``None`` otherwise.
    """

    http_status = 400

    def __init__(self, message: str, *, encoding: str | None = None) -> None:
        super().__init__(message)
        self.encoding = encoding


class OtlpDecodeError(OtlpError):
    """The body is not a valid OTLP request in its encoding (HTTP 400)."""

    http_status = 400


class PayloadTooLarge(OtlpError):
    """The body, once decompressed, is larger than the limit (HTTP 413)."""

    http_status = 413


class UnsupportedMediaType(OtlpError):
    """A content type or content coding the receiver does not speak (HTTP 415)."""

    http_status = 415


# ---------------------------------------------------------------------------------- decoding
def decode_body(
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None,
    max_decoded_bytes: int,
) -> tuple[ExportTraceServiceRequest, str]:
    """Decodes one ``POST /v1/traces`` body.

    Args:
        body: the request body as received (possibly compressed).
        content_type: the ``Content-Type`` header (parameters allowed).
        content_encoding: the ``Content-Encoding`` header, ``None`` when absent.
        max_decoded_bytes: the largest body accepted, after decompression.

    Returns:
        The request message and its encoding, ``"protobuf"`` or ``"json"``.

    Raises:
        UnsupportedMediaType: another content type, or a content coding other than gzip / identity.
        PayloadTooLarge: more than ``max_decoded_bytes`` bytes, compressed or decompressed.
        OtlpDecodeError: a body that cannot be decompressed or parsed.
    """
    encoding = _encoding_of(content_type)
    codings = _content_codings(content_encoding, encoding)
    data = bytes(body)
    if len(data) > max_decoded_bytes:
        raise PayloadTooLarge(
            f"request body is larger than {max_decoded_bytes} bytes", encoding=encoding
        )
    for _ in codings:  # every layer is gzip, so the order of undoing them does not matter
        data = _gunzip(data, max_decoded_bytes, encoding)
    if encoding == ENCODING_PROTOBUF:
        return _parse_protobuf(data), encoding
    return _parse_json(data), encoding


def _encoding_of(content_type: str | None) -> str:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    encoding = _CONTENT_TYPES.get(media_type)
    if encoding is None:
        shown = media_type[:100] or "none"
        raise UnsupportedMediaType(
            f"unsupported content type {shown!r}: use application/x-protobuf or application/json"
        )
    return encoding


def _content_codings(content_encoding: str | None, encoding: str) -> list[str]:
    """The gzip layers to undo, in the order they were applied; identity layers are dropped."""
    codings = []
    for raw in (content_encoding or "").split(","):
        coding = raw.strip().lower()
        if coding in _IDENTITY_CODINGS:
            continue
        if coding not in _GZIP_CODINGS:
            raise UnsupportedMediaType(
                f"unsupported content encoding {coding[:50]!r}: use gzip or identity", encoding=encoding
            )
        codings.append(coding)
    return codings


def _gunzip(data: bytes, limit: int, encoding: str) -> bytes:
    """Inflates gzip ``data`` (one or more members), never producing more than ``limit`` + 1 bytes."""
    out = bytearray()
    pending = data
    try:
        while True:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            while not inflater.eof:
                room = limit - len(out) + 1  # one byte more than allowed proves "too large"
                chunk = inflater.decompress(pending, min(room, _INFLATE_CHUNK))
                out += chunk
                if len(out) > limit:
                    raise PayloadTooLarge(
                        f"request body is larger than {limit} bytes once decompressed", encoding=encoding
                    )
                pending = inflater.unconsumed_tail
                if not chunk and not pending:
                    break  # input exhausted, no more output
            if not inflater.eof:
                raise OtlpDecodeError("truncated gzip body", encoding=encoding)
            pending = inflater.unused_data
            if not pending:
                return bytes(out)
            # Another gzip member follows (concatenated members are valid gzip).
    except zlib.error:
        raise OtlpDecodeError("invalid gzip body", encoding=encoding) from None


def _parse_protobuf(data: bytes) -> ExportTraceServiceRequest:
    try:
        return ExportTraceServiceRequest.FromString(data)
    except Exception:  # DecodeError, or anything the parser raises on hostile input
        raise OtlpDecodeError("invalid protobuf body", encoding=ENCODING_PROTOBUF) from None


def _parse_json(data: bytes) -> ExportTraceServiceRequest:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise OtlpDecodeError(f"invalid JSON body: {exc}"[:_MAX_ERROR_MESSAGE_CHARS],
                              encoding=ENCODING_JSON) from None
    if not isinstance(document, dict):
        raise OtlpDecodeError("JSON body must be an object", encoding=ENCODING_JSON)
    _hex_ids_to_base64(document)
    message = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise OtlpDecodeError(
            f"JSON body is not an OTLP trace request: {exc}"[:_MAX_ERROR_MESSAGE_CHARS],
            encoding=ENCODING_JSON,
        ) from None
    except Exception:  # RecursionError, TypeError, ... on hostile documents
        raise OtlpDecodeError("JSON body is not an OTLP trace request", encoding=ENCODING_JSON) from None
    return message


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """Rewrites the hex ids of an OTLP/JSON document in place into the base64 ParseDict expects.

    Shapes it does not recognise are left alone for ParseDict to judge.
    """
    for resource_spans in _list_field(document, "resourceSpans", "resource_spans"):
        for scope_spans in _list_field(resource_spans, "scopeSpans", "scope_spans"):
            for span in _list_field(scope_spans, "spans", "spans"):
                _convert_ids(span, _ID_KEYS)
                for link in _list_field(span, "links", "links"):
                    _convert_ids(link, _LINK_ID_KEYS)


def _list_field(obj: Any, camel: str, snake: str) -> Iterable[dict[str, Any]]:
    if not isinstance(obj, dict):
        return ()
    value = obj.get(camel)
    if value is None:
        value = obj.get(snake)
    if not isinstance(value, list):
        return ()
    return [item for item in value if isinstance(item, dict)]


def _convert_ids(obj: dict[str, Any], keys: Sequence[tuple[str, str]]) -> None:
    for camel, snake in keys:
        for key in (camel, snake):
            if key in obj and obj[key] is not None:
                obj[key] = _hex_to_base64(obj[key])


def _hex_to_base64(value: Any) -> str:
    if not isinstance(value, str):
        return _INVALID_ID_BASE64
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return _INVALID_ID_BASE64
    if len(value) != 2 * len(raw):  # fromhex skips whitespace; an id has none
        return _INVALID_ID_BASE64
    return base64.b64encode(raw).decode()


# ---------------------------------------------------------------------------------- to SDK spans
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
        items = [_plain(v, 1) for v in value.array_value.values]
        item_types = {type(item) for item in items}
        if not items:
            return ()
        if len(item_types) == 1 and item_types <= {str, bool, int, float}:
            return tuple(items)
        return _json_text(items)
    if which == "kvlist_value":
        return _json_text(_plain(value, 0))
    return _plain(value, 0)


def _plain(value: AnyValue, depth: int) -> Any:
    """An AnyValue as plain JSON-ready data (bytes as base64)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which in ("string_value", "bool_value", "int_value", "double_value"):
        return getattr(value, which)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if depth >= _MAX_ANY_VALUE_DEPTH:
        return "..."
    if which == "array_value":
        return [_plain(v, depth + 1) for v in value.array_value.values]
    return {kv.key: _plain(kv.value, depth + 1) for kv in value.kvlist_value.values}


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# ---------------------------------------------------------------------------------- responses
def encode_response(encoding: str, rejected: int = 0, error_message: str = "") -> tuple[bytes, str]:
    """The body of a 200 answer: an ``ExportTraceServiceResponse`` in the request's encoding.

    ``partial_success`` is set only when ``rejected > 0``, as the specification asks.

    Args:
        encoding: ``"protobuf"`` or ``"json"``.
        rejected: how many spans were rejected.
        error_message: why (for ``partial_success.error_message``).

    Returns:
        The body and its content type.

    Raises:
        ValueError: an unknown ``encoding``.
    """
    content_type = _response_content_type(encoding)
    response = ExportTraceServiceResponse()
    if rejected > 0:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = error_message
    if encoding == ENCODING_PROTOBUF:
        return response.SerializeToString(), content_type
    return orjson.dumps(json_format.MessageToDict(response)), content_type


def encode_error(encoding: str | None, message: str, http_status: int = 400) -> tuple[bytes, str]:
    """The body of an error answer: a ``google.rpc.Status`` in the request's encoding.

    OTLP/HTTP asks for a ``Status`` message encoded like the request; when the request's encoding is
    unknown (a 415 for its content type) the body is JSON. The JSON form is
    ``{"code": <google.rpc.Code>, "message": "..."}``.

    Args:
        encoding: ``"protobuf"``, ``"json"`` or ``None`` (JSON).
        message: the error message (e.g. ``str(exc)`` of an :class:`OtlpError`).
        http_status: the HTTP status of the answer; it picks the ``google.rpc.Code``.

    Returns:
        The body and its content type.
    """
    code = _RPC_CODE_BY_HTTP_STATUS.get(http_status, _RPC_INVALID_ARGUMENT)
    if encoding == ENCODING_PROTOBUF:
        return _rpc_status_protobuf(code, message), _RESPONSE_CONTENT_TYPES[ENCODING_PROTOBUF]
    return orjson.dumps({"code": code, "message": message}), _RESPONSE_CONTENT_TYPES[ENCODING_JSON]


def _rpc_status_protobuf(code: int, message: str) -> bytes:
    # google.rpc.Status {int32 code = 1; string message = 2;}: two fields, encoded here rather than
    # pulling in googleapis-common-protos for them.
    text = message.encode("utf-8", "replace")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _response_content_type(encoding: str) -> str:
    try:
        return _RESPONSE_CONTENT_TYPES[encoding]
    except KeyError:
        raise ValueError(f"encoding must be 'protobuf' or 'json', got {encoding!r}") from None


# ---------------------------------------------------------------------------------- to events
def events_from_otlp_spans(
    spans: Iterable[ReadableSpan], *, thresholds: QualityThresholds | None = None
) -> list[DashboardEvent]:
    """The dashboard events of received spans, through the same mapping as in-process spans.

    A received span has ended, so each gives its start events (those of
    :func:`~otel_dashboard.model.mapping.map_span_start`, stamped with the span's start time) and its end
    events (:func:`~otel_dashboard.model.mapping.map_span_end`): an agent span yields
    ``agent_execution_started`` and later ``agent_execution_completed``.

    The result is in time order across spans: the start events of every span sit at its start time,
    its end events at its end time (in the mapping's order), and these groups are sorted stably. An
    exporter sends a parent after its children (it ends last), yet the page sees the parent agent
    start before its children's events. A span the mapping fails on is skipped and logged.
    """
    from otel_dashboard.model.mapping import map_span_end, map_span_start  # lazy: a sibling module

    groups: list[tuple[int, list[DashboardEvent]]] = []
    failures = 0
    for span in spans:
        try:
            started = map_span_start(span, thresholds=thresholds)
            ended = map_span_end(span, thresholds=thresholds)
        except Exception:
            failures += 1
            if failures == 1:
                logger.exception("Mapping a received span failed; skipping it")
            continue
        if started:
            groups.append((span.start_time or 0, started))
        if ended:
            groups.append((span.end_time or 0, ended))
    if failures > 1:
        logger.warning("Mapping failed for %d received spans; they were skipped", failures)
    groups.sort(key=lambda group: group[0])
    return [event for _, events in groups for event in events]
