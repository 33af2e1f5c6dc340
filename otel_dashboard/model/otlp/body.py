"""OTLP/HTTP request bodies to protobuf messages: content types, content codings, bounded inflation,
and the OTLP/JSON mapping (hex ids), for the three signals (traces, metrics, logs).

At most one content-coding layer is undone (``gzip``, ``x-gzip`` or ``deflate``; ``identity`` is no
layer): every layer costs a full inflation, so ``Content-Encoding: gzip, gzip, ...`` repeated made a
26 KB request cost seconds of CPU. More than one layer is a 415 naming ``Content-Encoding``, before
anything is inflated. The one layer is inflated in chunks and stopped one byte past the limit.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from otel_dashboard.model.otlp.errors import OtlpDecodeError, OtlpError, PayloadTooLarge, UnsupportedMediaType
from otel_dashboard.model.otlp.signals import SIGNAL_LOGS, SIGNAL_TRACES, Signal, signal_of

if TYPE_CHECKING:
    from google.protobuf.message import Message

__all__ = [
    "ENCODING_JSON",
    "ENCODING_PROTOBUF",
    "MAX_CONTENT_CODINGS",
    "content_codings",
    "decode_body",
    "parse_protobuf",
]

ENCODING_PROTOBUF = "protobuf"
ENCODING_JSON = "json"

_CONTENT_TYPES = {
    "application/x-protobuf": ENCODING_PROTOBUF,
    "application/protobuf": ENCODING_PROTOBUF,
    "application/json": ENCODING_JSON,
}
_GZIP_CODINGS = frozenset({"gzip", "x-gzip"})
_DEFLATE_CODINGS = frozenset({"deflate"})
_IDENTITY_CODINGS = frozenset({"identity", ""})
MAX_CONTENT_CODINGS = 1
"""Content-coding layers undone per request; more is a 415 (each layer is a full inflation)."""
_INFLATE_CHUNK = 64 * 1024


# An id that is not valid hex in a JSON body becomes this one byte: no id has that length, so the
# span is rejected later with the other id checks (the rest of the request still goes through).
_INVALID_ID_BASE64 = base64.b64encode(b"\xff").decode()
_ID_KEYS = (("traceId", "trace_id"), ("spanId", "span_id"), ("parentSpanId", "parent_span_id"))
_LINK_ID_KEYS = (("traceId", "trace_id"), ("spanId", "span_id"))

_MAX_ERROR_MESSAGE_CHARS = 500


def decode_body(
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None,
    max_decoded_bytes: int,
    signal: str = SIGNAL_TRACES,
) -> tuple[Any, str]:
    """Decodes one ``POST /v1/traces`` (``/v1/metrics``, ``/v1/logs``) body.

    Args:
        body: the request body as received (possibly compressed).
        content_type: the ``Content-Type`` header (parameters allowed).
        content_encoding: the ``Content-Encoding`` header, ``None`` when absent.
        max_decoded_bytes: the largest body accepted, after decompression.
        signal: ``"traces"``, ``"metrics"`` or ``"logs"``: which ``Export*ServiceRequest`` it holds.

    Returns:
        The request message (``ExportTraceServiceRequest``, ``ExportMetricsServiceRequest`` or
        ``ExportLogsServiceRequest``) and its encoding, ``"protobuf"`` or ``"json"``.

    Raises:
        UnsupportedMediaType: another content type, a content coding other than gzip / deflate /
            identity, or more than :data:`MAX_CONTENT_CODINGS` coding layers.
        ValueError: an unknown ``signal``.
        PayloadTooLarge: more than ``max_decoded_bytes`` bytes, compressed or decompressed.
        OtlpDecodeError: a body that cannot be decompressed or parsed.
    """
    kind = signal_of(signal)
    encoding = _encoding_of(content_type)
    codings = content_codings(content_encoding, encoding=encoding)
    data = bytes(body)
    if len(data) > max_decoded_bytes:
        raise PayloadTooLarge(
            f"request body is larger than {max_decoded_bytes} bytes", encoding=encoding
        )
    try:
        for coding in codings:  # at most MAX_CONTENT_CODINGS
            data = _inflate(data, max_decoded_bytes, encoding, gzip=coding in _GZIP_CODINGS)
        if encoding == ENCODING_PROTOBUF:
            return parse_protobuf(data, kind), encoding
        return _parse_json(data, kind), encoding
    except OtlpError as exc:
        exc.examined_bytes = max(exc.examined_bytes, len(data))
        raise


def _encoding_of(content_type: str | None) -> str:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    encoding = _CONTENT_TYPES.get(media_type)
    if encoding is None:
        shown = media_type[:100] or "none"
        raise UnsupportedMediaType(
            f"unsupported content type {shown!r}: use application/x-protobuf or application/json"
        )
    return encoding


def content_codings(content_encoding: str | None, *, encoding: str | None = None) -> list[str]:
    """The content-coding layers of a ``Content-Encoding`` header value, lower-case; identity dropped.

    Args:
        content_encoding: the header value (comma-separated codings), ``None`` when absent.
        encoding: the request's encoding, carried by the error for its body.

    Returns:
        At most :data:`MAX_CONTENT_CODINGS` codings, each ``gzip``, ``x-gzip`` or ``deflate``.

    Raises:
        UnsupportedMediaType: an unknown coding, or more than one layer (the message names
            ``Content-Encoding``); nothing has been inflated yet.
    """
    codings = []
    for raw in (content_encoding or "").split(","):
        coding = raw.strip().lower()
        if coding in _IDENTITY_CODINGS:
            continue
        if coding not in _GZIP_CODINGS and coding not in _DEFLATE_CODINGS:
            raise UnsupportedMediaType(
                f"unsupported Content-Encoding {coding[:50]!r}: use gzip, deflate or identity",
                encoding=encoding,
            )
        codings.append(coding)
        if len(codings) > MAX_CONTENT_CODINGS:
            raise UnsupportedMediaType(
                f"Content-Encoding has more than {MAX_CONTENT_CODINGS} coding layer: compress the body "
                "once (gzip or deflate)", encoding=encoding,
            )
    return codings


def _inflate(data: bytes, limit: int, encoding: str, *, gzip: bool) -> bytes:
    """Inflates gzip (one or more members) or deflate (zlib) ``data``, never producing more than
    ``limit`` + 1 bytes."""
    out = bytearray()
    pending = data
    name = "gzip" if gzip else "deflate"
    # gzip: a gzip header; deflate: a zlib stream (RFC 9110's "deflate"), or a raw one as some clients send.
    wbits = 16 + zlib.MAX_WBITS if gzip else (zlib.MAX_WBITS if data[:1] == b"\x78" else -zlib.MAX_WBITS)
    try:
        while True:
            inflater = zlib.decompressobj(wbits)
            while not inflater.eof:
                room = limit - len(out) + 1  # one byte more than allowed proves "too large"
                chunk = inflater.decompress(pending, min(room, _INFLATE_CHUNK))
                out += chunk
                if len(out) > limit:
                    raise PayloadTooLarge(f"request body is larger than {limit} bytes once decompressed",
                                          encoding=encoding, examined_bytes=len(out))
                pending = inflater.unconsumed_tail
                if not chunk and not pending:
                    break  # input exhausted, no more output
            if not inflater.eof:
                raise OtlpDecodeError(f"truncated {name} body", encoding=encoding, examined_bytes=len(out))
            pending = inflater.unused_data
            if not pending:
                return bytes(out)
            if not gzip:
                raise OtlpDecodeError("invalid deflate body: data after its end", encoding=encoding)
            # Another gzip member follows (concatenated members are valid gzip).
    except zlib.error:
        raise OtlpDecodeError(f"invalid {name} body", encoding=encoding, examined_bytes=len(out)) from None


def parse_protobuf(data: bytes, signal: Signal) -> Message:
    """The signal's export request parsed from protobuf ``data`` (an HTTP body, a gRPC message).

    Raises:
        OtlpDecodeError: not a valid message of that type.
    """
    try:
        return signal.request_type.FromString(data)
    except Exception:  # DecodeError, or anything the parser raises on hostile input
        raise OtlpDecodeError("invalid protobuf body", encoding=ENCODING_PROTOBUF) from None


def _parse_json(data: bytes, signal: Signal) -> Message:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise OtlpDecodeError(f"invalid JSON body: {exc}"[:_MAX_ERROR_MESSAGE_CHARS],
                              encoding=ENCODING_JSON) from None
    if not isinstance(document, dict):
        raise OtlpDecodeError("JSON body must be an object", encoding=ENCODING_JSON)
    from google.protobuf import json_format  # first JSON body: not loaded by an idle server

    _hex_ids_to_base64(document, signal.name)
    message = signal.request_type()
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise OtlpDecodeError(
            f"JSON body is not an OTLP {signal.singular} request: {exc}"[:_MAX_ERROR_MESSAGE_CHARS],
            encoding=ENCODING_JSON,
        ) from None
    except Exception:  # RecursionError, TypeError, ... on hostile documents
        raise OtlpDecodeError(f"JSON body is not an OTLP {signal.singular} request",
                              encoding=ENCODING_JSON) from None
    return message


# Where a metric's data points are, by the metric's data field (metrics.proto).
_METRIC_DATA_FIELDS = (("gauge", "gauge"), ("sum", "sum"), ("histogram", "histogram"),
                       ("exponentialHistogram", "exponential_histogram"), ("summary", "summary"))


def _hex_ids_to_base64(document: dict[str, Any], signal: str) -> None:
    """Rewrites the hex ids of an OTLP/JSON document in place into the base64 ParseDict expects:
    spans and their links, log records, and the exemplars of metric data points.

    Shapes it does not recognise are left alone for ParseDict to judge.
    """
    if signal == SIGNAL_TRACES:
        for resource_spans in _list_field(document, "resourceSpans", "resource_spans"):
            for scope_spans in _list_field(resource_spans, "scopeSpans", "scope_spans"):
                for span in _list_field(scope_spans, "spans", "spans"):
                    _convert_ids(span, _ID_KEYS)
                    for link in _list_field(span, "links", "links"):
                        _convert_ids(link, _LINK_ID_KEYS)
    elif signal == SIGNAL_LOGS:
        for resource_logs in _list_field(document, "resourceLogs", "resource_logs"):
            for scope_logs in _list_field(resource_logs, "scopeLogs", "scope_logs"):
                for record in _list_field(scope_logs, "logRecords", "log_records"):
                    _convert_ids(record, _LINK_ID_KEYS)
    else:
        for resource_metrics in _list_field(document, "resourceMetrics", "resource_metrics"):
            for scope_metrics in _list_field(resource_metrics, "scopeMetrics", "scope_metrics"):
                for metric in _list_field(scope_metrics, "metrics", "metrics"):
                    for camel, snake in _METRIC_DATA_FIELDS:
                        data = metric.get(camel, metric.get(snake))
                        for point in _list_field(data, "dataPoints", "data_points"):
                            for exemplar in _list_field(point, "exemplars", "exemplars"):
                                _convert_ids(exemplar, _LINK_ID_KEYS)


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


