"""OTLP answers: the export response with its partial success (for the three signals, HTTP and
gRPC), and OTLP/HTTP error bodies (``google.rpc.Status``) in the request's encoding."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from otel_dashboard.model.otlp.body import ENCODING_JSON, ENCODING_PROTOBUF
from otel_dashboard.model.otlp.signals import SIGNAL_TRACES, signal_of

if TYPE_CHECKING:
    from google.protobuf.message import Message

__all__ = ["encode_error", "encode_response", "export_response"]

_RESPONSE_CONTENT_TYPES = {
    ENCODING_PROTOBUF: "application/x-protobuf",
    ENCODING_JSON: "application/json",
}

# google.rpc.Code values used in error bodies.
_RPC_INVALID_ARGUMENT = 3
_RPC_RESOURCE_EXHAUSTED = 8
_RPC_UNAVAILABLE = 14
# google.rpc.Code for each HTTP status we answer with (the mapping of google/rpc/code.proto).
_RPC_CODE_BY_HTTP_STATUS = {413: _RPC_RESOURCE_EXHAUSTED, 429: _RPC_RESOURCE_EXHAUSTED, 503: _RPC_UNAVAILABLE}


def export_response(signal: str, rejected: int = 0, error_message: str = "") -> Message:
    """The ``Export*ServiceResponse`` of a signal (``"traces"``, ``"metrics"``, ``"logs"``).

    ``partial_success`` is set only when ``rejected > 0`` or there is a message, as the
    specification asks (``rejected_spans``, ``rejected_data_points`` or ``rejected_log_records``).

    Raises:
        ValueError: an unknown ``signal``.
    """
    kind = signal_of(signal)
    response = kind.response_type()
    if rejected > 0 or error_message:
        setattr(response.partial_success, kind.rejected_field, max(rejected, 0))  # type: ignore[attr-defined]
        response.partial_success.error_message = error_message  # type: ignore[attr-defined]
    return response


def encode_response(
    encoding: str, rejected: int = 0, error_message: str = "", *, signal: str = SIGNAL_TRACES
) -> tuple[bytes, str]:
    """The body of a 200 answer: the signal's export response in the request's encoding.

    Args:
        encoding: ``"protobuf"`` or ``"json"``.
        rejected: how many spans (data points, log records) were rejected.
        error_message: why (for ``partial_success.error_message``).
        signal: ``"traces"`` (the default), ``"metrics"`` or ``"logs"``.

    Returns:
        The body and its content type.

    Raises:
        ValueError: an unknown ``encoding`` or ``signal``.
    """
    content_type = _response_content_type(encoding)
    response = export_response(signal, rejected, error_message)
    if encoding == ENCODING_PROTOBUF:
        return response.SerializeToString(), content_type
    from google.protobuf import json_format  # a JSON request: loaded with the first one

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


