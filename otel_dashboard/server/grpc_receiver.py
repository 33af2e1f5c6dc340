"""The OTLP/gRPC receiver: ``TraceService``, ``MetricsService`` and ``LogsService`` ``Export`` on port 4317.

A ``grpc.aio`` server on the dashboard server's own event loop, started and stopped with the HTTP
server (:class:`~otel_dashboard.server.app.DashboardWebSocketServer`), on the same host. Each RPC goes
the way an OTLP/HTTP request does:

1. **token** -- when the server has one, the ``authorization`` metadata must be ``Bearer <token>``
   (scheme case-insensitive), compared in constant time; otherwise ``UNAUTHENTICATED`` (counted,
   ``grpc_unauthenticated``; the token is never logged);
2. **size** -- grpc core refuses a message larger than ``max_body_bytes`` with
   ``RESOURCE_EXHAUSTED`` before any handler runs; a ``grpc-encoding: gzip`` message is measured
   once inflated;
3. **decode** -- the raw bytes are parsed in a worker thread (a large message never stalls the
   loop); bytes that are no export request are ``INVALID_ARGUMENT``, charged to the sender's ingest
   rate by their size like an undecodable HTTP body;
4. **keep** -- :func:`~otel_dashboard.server.otlp_ingest.accept_export`, the path both transports
   share (rate limit by peer address, broker room, durability wait); its refusals become
   ``UNAVAILABLE`` (retried by every OTLP exporter) with a ``google.rpc.RetryInfo`` trailer saying
   when, or ``INVALID_ARGUMENT``;
5. **answer** -- the signal's ``Export*ServiceResponse`` with its ``partial_success``.

Anything unexpected in a handler is ``INTERNAL``, logged once a minute with its traceback. TLS uses
the HTTP server's certificate and key. Counters (``/stats`` under ``receiver``): ``grpc_requests``,
``grpc_refused_requests`` (every RPC answered with an error status) and ``grpc_unauthenticated``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn
from urllib.parse import unquote

import grpc
import grpc.aio
from aiohttp import web

from otel_dashboard.model.otlp import SIGNALS, OtlpError, Signal, export_response, parse_protobuf
from otel_dashboard.server.health import HEALTH_KEY
from otel_dashboard.server.options import DEFAULT_GRPC_PORT
from otel_dashboard.server.otlp_ingest import (
    ExportRefused,
    accept_export,
    charge_failed_decode,
    retry_after_seconds,
)
from otel_dashboard.server.prometheus import observe_ingest_seconds
from otel_dashboard.server.security import SECURITY_KEY
from otel_dashboard.server.security.config import SecurityConfig

__all__ = [
    "DEFAULT_GRPC_PORT",
    "MAX_CONCURRENT_RPCS",
    "GrpcBindError",
    "GrpcReceiver",
    "peer_address",
]

logger = logging.getLogger(__name__)

MAX_CONCURRENT_RPCS = 256
"""RPCs handled at once; grpc core answers ``RESOURCE_EXHAUSTED`` to more (exporters retry it)."""
MAX_CONCURRENT_STREAMS = 100
"""Concurrent RPCs one HTTP/2 connection may carry (its ``SETTINGS_MAX_CONCURRENT_STREAMS``)."""
STOP_GRACE_SECONDS = 5.0
"""How long :meth:`GrpcReceiver.stop` lets RPCs in flight finish before cancelling them."""

_LOG_EVERY_SECONDS = 60.0


class GrpcBindError(OSError):
    """The OTLP/gRPC port cannot be bound; the message names the address and what to do."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(errno.EADDRINUSE if reason == "address in use" else errno.EINVAL,
                         f"cannot listen for OTLP/gRPC on {host}:{port}: {reason}; pass --grpc-port N, "
                         "or 0 to turn it off")
        self.host = host
        self.port = port
        self.reason = reason

    def __str__(self) -> str:
        return str(self.strerror)


def peer_address(peer: str) -> str:
    """The client address of a gRPC peer string, as the HTTP side names it (so both transports share
    one ingest bucket): ``ipv4:127.0.0.1:5000`` -> ``127.0.0.1``, ``ipv6:[::1]:5000`` (or its
    percent-encoded form) -> ``::1``; anything else as it is."""
    kind, _, rest = unquote(peer).partition(":")
    if kind not in ("ipv4", "ipv6") or not rest:
        return peer
    # grpc always puts the port last: whatever is before the last colon is the address (so that an
    # address never carries the port, which would make a bucket per connection).
    return rest.rsplit(":", 1)[0].strip("[]")


def _retry_info(seconds: float) -> bytes:
    """A serialized ``google.rpc.RetryInfo{retry_delay: Duration{seconds}}``, what the OTLP exporters
    read from the ``google.rpc.retryinfo-bin`` trailer (two tiny messages, encoded here rather than
    pulling in googleapis-common-protos at run time)."""
    whole = max(1, int(seconds))
    duration = b"\x08" + _varint(whole)
    return b"\x0a" + _varint(len(duration)) + duration


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if not value:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def _grpc_host(host: str) -> str:
    """``host`` as grpc's address syntax wants it (an IPv6 literal in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _bind_failure_reason(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be bound, or None when it can: a plain socket's answer (grpc only
    says that it failed, in a line of its own on stderr). Like grpc, one bindable address of the
    host's is enough."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"cannot resolve the host ({exc.strerror or exc})"
    reasons = []
    for family, kind, proto, _, address in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                # As grpc binds: a port left in TIME_WAIT by a server just stopped is free.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
            return None
        except OSError as exc:
            in_use = exc.errno == errno.EADDRINUSE
            reasons.append("address in use" if in_use else str(exc.strerror or exc).lower())
    return reasons[0] if reasons else "the host has no address"


class GrpcReceiver:
    """The OTLP/gRPC server of one running dashboard application.

    Args:
        app: the running dashboard application (state, security, counters).
        host: the interface to listen on (the HTTP server's).
        port: the TCP port; 0 picks a free one (read it back from :attr:`port` once started).
        security: the server's security configuration (token, TLS files, handshake timeout).
        max_message_bytes: the largest message accepted, once inflated (the HTTP body limit).
        max_concurrent_rpcs: RPCs handled at once.
    """

    def __init__(
        self,
        app: web.Application,
        *,
        host: str,
        port: int,
        security: SecurityConfig,
        max_message_bytes: int,
        max_concurrent_rpcs: int = MAX_CONCURRENT_RPCS,
    ) -> None:
        self._app = app
        self._host = host
        self._requested_port = port
        self._security = security
        self._max_message_bytes = max_message_bytes
        self._max_concurrent_rpcs = max_concurrent_rpcs
        self._server: grpc.aio.Server | None = None
        self._port: int | None = None
        self._last_logged: dict[str, float] = {}

    @property
    def port(self) -> int | None:
        """The bound port once started, else None."""
        return self._port

    async def start(self) -> int:
        """Listen on ``host:port`` and serve the three ``Export`` methods.

        Returns:
            The bound port.

        Raises:
            GrpcBindError: the port cannot be bound (the message says why and what to pass).
        """
        config = self._security
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", self._max_message_bytes),
            ("grpc.max_send_message_length", 64 * 1024),  # answers are a few bytes
            # Two dashboards on one machine must not silently share port 4317 (grpc's default is on).
            ("grpc.so_reuseport", 0),
            ("grpc.max_concurrent_streams", MAX_CONCURRENT_STREAMS),
            # The HTTP side's deadlines: a connection that never finishes its handshake, or idles.
            ("grpc.server_handshake_timeout_ms", int(config.header_timeout_seconds * 1000)),
            ("grpc.max_connection_idle_ms", int(config.keepalive_timeout_seconds * 1000)),
        ]
        if self._requested_port:
            # Asked first, so that a busy port is our one line, not grpc core's log line and then ours.
            reason = _bind_failure_reason(self._host, self._requested_port)
            if reason is not None:
                raise GrpcBindError(self._host, self._requested_port, reason)
        server = grpc.aio.server(options=options, maximum_concurrent_rpcs=self._max_concurrent_rpcs)
        server.add_generic_rpc_handlers([self._handlers()])
        address = f"{_grpc_host(self._host)}:{self._requested_port}"
        try:
            if config.tls_enabled:
                port = server.add_secure_port(address, self._credentials())
            else:
                port = server.add_insecure_port(address)
        except RuntimeError:  # grpc >= 1.50: "Failed to bind to address ..."
            port = 0
        if not port:
            await server.stop(None)
            reason = _bind_failure_reason(self._host, self._requested_port)
            raise GrpcBindError(self._host, self._requested_port, reason or "grpc could not bind it")
        await server.start()
        self._server = server
        self._port = port
        logger.info("otel-dashboard OTLP/gRPC on %s:%s%s", self._host, port,
                    " (TLS)" if config.tls_enabled else "")
        return port

    async def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Stop listening; RPCs in flight get ``grace_seconds`` to finish. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace_seconds)

    def _credentials(self) -> grpc.ServerCredentials:
        certfile = self._security.tls_certfile
        assert certfile is not None
        with open(certfile, "rb") as handle:
            chain = handle.read()
        key = chain  # a PEM file may hold the key beside the certificate, as the HTTP side allows
        if self._security.tls_keyfile is not None:
            with open(self._security.tls_keyfile, "rb") as handle:
                key = handle.read()
        return grpc.ssl_server_credentials([(key, chain)])

    # ------------------------------------------------------------------ the handlers
    def _handlers(self) -> grpc.GenericRpcHandler:
        handlers: dict[str, grpc.RpcMethodHandler] = {}
        for signal in SIGNALS.values():
            handlers[signal.grpc_method] = grpc.unary_unary_rpc_method_handler(
                self._export_handler(signal),
                request_deserializer=None,  # raw bytes: parsed in a worker thread, not on the loop
                response_serializer=None,
            )
        return _MethodTable(handlers)

    def _export_handler(self, signal: Signal) -> Callable[[bytes, grpc.aio.ServicerContext[Any, Any]],
                                                          Awaitable[bytes]]:
        async def export(data: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            started = time.perf_counter()
            try:
                return await self._export(signal, data, context)
            finally:
                observe_ingest_seconds(self._app, time.perf_counter() - started)

        return export

    async def _export(
        self, signal: Signal, data: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        app = self._app
        server_health = app[HEALTH_KEY]
        server_health.count("grpc_requests")
        address = peer_address(context.peer())
        if not self._authenticated(context):
            server_health.count("grpc_unauthenticated")
            await self._refuse(context, grpc.StatusCode.UNAUTHENTICATED,
                               "a token is required: send the metadata 'authorization: Bearer <token>'"
                               if not _authorization(context) else "the token is wrong")
        try:
            request = await asyncio.to_thread(parse_protobuf, bytes(data), signal)
        except OtlpError as exc:
            server_health.count("otlp_refused_requests")
            charge_failed_decode(app, address, len(data))
            await self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT,
                               f"{exc}: not an OTLP {signal.singular} export request")
        try:
            result = await accept_export(app, signal.name, request, address=address)
        except ExportRefused as exc:
            trailer: tuple[tuple[str, str | bytes], ...] = ()
            if exc.retry_after is not None:
                trailer = (("google.rpc.retryinfo-bin", _retry_info(retry_after_seconds(exc.retry_after))),)
            await self._refuse(context, grpc.StatusCode[exc.grpc_code], str(exc), trailer)
        except Exception:
            # A signal's intake failing (a bug) must not kill the RPC silently, nor flood the log.
            self._log_once("internal", f"OTLP/gRPC {signal.name} export failed", exc_info=True)
            await self._refuse(context, grpc.StatusCode.INTERNAL,
                               f"the dashboard could not keep this {signal.singular} export (see its log)")
        response = export_response(signal.name, result.rejected, result.message)
        return response.SerializeToString()

    async def _refuse(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        code: grpc.StatusCode,
        message: str,
        trailer: tuple[tuple[str, str | bytes], ...] = (),
    ) -> NoReturn:
        """Answer the RPC with ``code`` (this raises: the handler ends here)."""
        self._app[HEALTH_KEY].count("grpc_refused_requests")
        await context.abort(code, message, trailing_metadata=trailer)

    def _authenticated(self, context: grpc.aio.ServicerContext[Any, Any]) -> bool:
        sec = self._app.get(SECURITY_KEY)
        if sec is None or not self._security.auth_required:
            return True
        scheme, _, credentials = (_authorization(context) or "").strip().partition(" ")
        candidate = credentials.strip() if scheme.lower() == "bearer" else None
        matches: bool = sec.token_matches(candidate or None)
        if not matches:
            sec.note("unauthorized")  # counted and logged once a minute with the HTTP refusals
        return matches

    def _log_once(self, kind: str, message: str, *, exc_info: bool = False) -> None:
        now = time.monotonic()
        if now - self._last_logged.get(kind, -_LOG_EVERY_SECONDS) >= _LOG_EVERY_SECONDS:
            self._last_logged[kind] = now
            logger.error("%s; more in the next %.0f s are only counted", message, _LOG_EVERY_SECONDS,
                         exc_info=exc_info)


def _authorization(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":  # grpc lower-cases metadata keys
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


class _MethodTable(grpc.GenericRpcHandler):
    """The three ``Export`` methods by their full name (``/package.Service/Export``)."""

    def __init__(self, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self._handlers = handlers

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return self._handlers.get(handler_call_details.method)
