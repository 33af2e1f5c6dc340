"""The OTLP receivers' codec: request bodies in, SDK spans (and metric usage, log events) out,
responses back. The three signals are described in :mod:`~otel_dashboard.model.otlp.signals`; the
metrics and logs readers are :mod:`~otel_dashboard.model.otlp.metrics` and
:mod:`~otel_dashboard.model.otlp.logs`.

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

The names below load on first use (PEP 562): a server that has not received OTLP yet has not loaded
the protobuf message classes, their JSON mapping nor the OpenTelemetry SDK the span conversion needs
(about 3.5 MB of its idle footprint, docs/benchmarks.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_dashboard.model.otlp.body import (
        ENCODING_JSON,
        ENCODING_PROTOBUF,
        content_codings,
        decode_body,
        parse_protobuf,
    )
    from otel_dashboard.model.otlp.errors import (
        OtlpDecodeError,
        OtlpError,
        PayloadTooLarge,
        UnsupportedMediaType,
    )
    from otel_dashboard.model.otlp.events import events_from_otlp_spans
    from otel_dashboard.model.otlp.response import encode_error, encode_response, export_response
    from otel_dashboard.model.otlp.signals import (
        SIGNAL_LOGS,
        SIGNAL_METRICS,
        SIGNAL_TRACES,
        SIGNALS,
        Signal,
        signal_of,
    )
    from otel_dashboard.model.otlp.spans import spans_from_request

_MODULE_OF = {
    "ENCODING_JSON": "body",
    "ENCODING_PROTOBUF": "body",
    "content_codings": "body",
    "decode_body": "body",
    "parse_protobuf": "body",
    "OtlpDecodeError": "errors",
    "OtlpError": "errors",
    "PayloadTooLarge": "errors",
    "UnsupportedMediaType": "errors",
    "events_from_otlp_spans": "events",
    "encode_error": "response",
    "encode_response": "response",
    "export_response": "response",
    "SIGNAL_LOGS": "signals",
    "SIGNAL_METRICS": "signals",
    "SIGNAL_TRACES": "signals",
    "SIGNALS": "signals",
    "Signal": "signals",
    "signal_of": "signals",
    "spans_from_request": "spans",
}

__all__ = [
    "ENCODING_JSON",
    "ENCODING_PROTOBUF",
    "SIGNALS",
    "SIGNAL_LOGS",
    "SIGNAL_METRICS",
    "SIGNAL_TRACES",
    "OtlpDecodeError",
    "OtlpError",
    "PayloadTooLarge",
    "Signal",
    "UnsupportedMediaType",
    "content_codings",
    "decode_body",
    "encode_error",
    "encode_response",
    "events_from_otlp_spans",
    "export_response",
    "parse_protobuf",
    "signal_of",
    "spans_from_request",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_dashboard.model.otlp' has no attribute {name!r}")
    return getattr(importlib.import_module(f"otel_dashboard.model.otlp.{module}"), name)
