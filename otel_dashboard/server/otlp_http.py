"""The OTLP/HTTP receiver: ``POST /v1/traces``, ``POST /v1/metrics`` and ``POST /v1/logs``.

Each body is protobuf or JSON, with one layer of gzip or deflate allowed (more is a 415 decided from
the header; :mod:`otel_dashboard.model.otlp`). It is decoded in a worker thread, so a large request
never stalls the event loop, then kept by the ingest path both transports share
(:func:`~otel_dashboard.server.otlp_ingest.accept_export`). Answers follow the OTLP/HTTP
specification: 200 with the signal's ``Export*ServiceResponse`` in the request's encoding
(``partial_success`` for rejected items), 400 / 413 / 415 / 429 / 503 with a ``google.rpc.Status`` in
the request's encoding (JSON when the content type is not recognised). A body refused undecoded
(400, 413 once inflated, 415) is charged to the sender's ingest rate by the bytes it made the server
inflate or parse (:func:`~otel_dashboard.server.security.charge_failed_ingest`).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from otel_dashboard.model.otlp import (
    ENCODING_JSON,
    ENCODING_PROTOBUF,
    SIGNAL_LOGS,
    SIGNAL_METRICS,
    SIGNAL_TRACES,
    OtlpError,
    content_codings,
    decode_body,
    encode_error,
    encode_response,
)
from otel_dashboard.server.health import HEALTH_KEY
from otel_dashboard.server.options import OPTIONS_KEY
from otel_dashboard.server.otlp_ingest import ExportRefused, accept_export
from otel_dashboard.server.prometheus import observe_ingest_seconds
from otel_dashboard.server.security import charge_failed_ingest
from otel_dashboard.server.security.guard import client_address

__all__ = ["otlp_logs", "otlp_metrics", "otlp_traces", "read_body", "timed"]

_OTLP_ENCODINGS = {
    "application/x-protobuf": ENCODING_PROTOBUF,
    "application/protobuf": ENCODING_PROTOBUF,
    "application/json": ENCODING_JSON,
}

Handler = Callable[[web.Request], Awaitable[web.Response]]


def timed(handler: Handler) -> Handler:
    """The handler, with its handling time reported to ``/metrics`` (ingest latency)."""

    @functools.wraps(handler)
    async def timed_handler(request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            observe_ingest_seconds(request.app, time.perf_counter() - started)

    return timed_handler


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit`` bytes."""
    length = request.content_length
    if length is not None and length > limit:
        return None
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return None


def media_type(content_type: str | None) -> str | None:
    """The media type of a ``Content-Type`` value, lower-case, without parameters."""
    value = (content_type or "").split(";", 1)[0].strip().lower()
    return value or None


@timed
async def otlp_traces(request: web.Request) -> web.Response:
    """``POST /v1/traces``: OTLP/HTTP traces."""
    return await _export(request, SIGNAL_TRACES)


@timed
async def otlp_metrics(request: web.Request) -> web.Response:
    """``POST /v1/metrics``: OTLP/HTTP metrics (GenAI and MCP metrics feed the agents table)."""
    return await _export(request, SIGNAL_METRICS)


@timed
async def otlp_logs(request: web.Request) -> web.Response:
    """``POST /v1/logs``: OTLP/HTTP logs (GenAI events join their span's transcript)."""
    return await _export(request, SIGNAL_LOGS)


async def _export(request: web.Request, signal: str) -> web.Response:
    server_health = request.app[HEALTH_KEY]
    limit = request.app[OPTIONS_KEY].max_body_bytes
    content_type = request.headers.get("Content-Type")
    server_health.count("otlp_requests")
    # aiohttp inflates the body itself when the app runs under a runner with auto_decompress on.
    already_decoded = getattr(request.content, "total_compressed_bytes", None) is not None
    content_encoding = None if already_decoded else request.headers.get("Content-Encoding")
    encoding = _OTLP_ENCODINGS.get(media_type(content_type) or "")
    try:
        # The layers are counted from the header, before the body is even read: one at most.
        content_codings(content_encoding, encoding=encoding)
    except OtlpError as exc:
        return _refused_undecoded(request, exc)
    body = await read_body(request, limit)
    if body is None:
        server_health.count("otlp_refused_requests")
        return _otlp_error(encoding, f"request body is larger than {limit} bytes", 413)
    try:
        message, decoded_as = await asyncio.to_thread(_decode, body, content_type, content_encoding, limit,
                                                      signal)
    except OtlpError as exc:
        return _refused_undecoded(request, exc)
    try:
        result = await accept_export(request.app, signal, message, address=client_address(request))
    except ExportRefused as exc:
        headers = {"Retry-After": exc.retry_after} if exc.retry_after else None
        return _otlp_error(decoded_as, str(exc), exc.http_status, headers)
    payload, response_type = encode_response(decoded_as, result.rejected, result.message, signal=signal)
    return web.Response(status=200, body=payload, content_type=response_type)


def _decode(
    body: bytes, content_type: str | None, content_encoding: str | None, limit: int, signal: str
) -> tuple[Any, str]:
    """Worker thread: decode one OTLP/HTTP body (nothing kept yet)."""
    return decode_body(body, content_type=content_type, content_encoding=content_encoding,
                       max_decoded_bytes=limit, signal=signal)


def _refused_undecoded(request: web.Request, exc: OtlpError) -> web.Response:
    """The answer to a body refused undecoded (400, 413 once inflated, 415), charged to the sender.

    A refused body cost what was inflated and parsed of it: it is charged like the events it might
    have held, so a flood of garbage meets the 429 as a flood of spans does.
    """
    request.app[HEALTH_KEY].count("otlp_refused_requests")
    charge_failed_ingest(request, exc.examined_bytes)
    return _otlp_error(exc.encoding, str(exc), exc.http_status)


def _otlp_error(
    encoding: str | None, message: str, status: int, headers: dict[str, str] | None = None
) -> web.Response:
    payload, content_type = encode_error(encoding, message, status)
    return web.Response(status=status, body=payload, content_type=content_type, headers=headers)
