"""Deadlines and caps for the server's HTTP connections: a header-read timeout, a keep-alive idle
timeout, and a cap on open HTTP connections per client address and in all.

aiohttp reads a request's header without a deadline of its own: a client that sends
``GET / HTTP/1.1\\r\\nHost: x\\r\\n`` and then nothing holds a connection (a file descriptor, a
parser, a task) for as long as it likes; 1,500 of them all stayed open. The oldest aiohttp we
support (3.10) does not even start its keep-alive timer before the first request. So the server
watches its connections itself:

* **header timeout** -- a connection that has not sent a whole request header
  ``header_timeout_seconds`` after it opened, or after the first byte of its next request, is
  closed (and counted, ``http_header_timeouts``);
* **idle timeout** -- a connection idle between requests ``keepalive_timeout_seconds`` is closed
  (``http_idle_timeouts``);
* **gRPC clients** -- a connection that opens with the HTTP/2 preface is a gRPC client sent to the
  wrong port: it gets an ``UNIMPLEMENTED`` answer naming the OTLP/gRPC port
  (:mod:`~otel_dashboard.server.security.grpc_on_http`), never reaches aiohttp (which logged an
  ERROR traceback for each), and is counted (``grpc_on_http_port``) and logged once a minute at WARNING;
* **caps** -- beyond ``max_http_connections_per_ip`` open connections from one address, or
  ``max_http_connections`` in all, the oldest connection that is not busy (waiting for a header or
  idle between requests) is closed to make room (``http_connections_evicted``); when every one is
  busy, the new connection gets ``503`` with ``Retry-After`` and is closed (``http_connections_refused``).
  Evicting rather than refusing keeps the server reachable: a flood of half-sent requests pushes out
  its own oldest connections, not the next real client.

A connection is *busy* while a handler serves one of its requests. A WebSocket is busy for its
whole life and is not counted here at all: it has its own cap (``max_connections_per_ip``,
:mod:`~otel_dashboard.server.security.ws_limits`), and a long-lived WebSocket is not an idle one.

How it sees connections: :class:`TrackedAppRunner` hands the sites a protocol factory that wraps
each aiohttp ``RequestHandler`` in a thin protocol noting when bytes arrive (any other attribute read
through ``transport.get_protocol()`` is the handler's own), and
:meth:`HttpConnectionTracker.middleware` notes when a request's handler starts and ends (a done
callback on the request's task, so no frame is held per WebSocket). One sweep task closes what is
overdue. This module is the one place that knows how aiohttp's runner builds its sites: it
overrides the runner's public ``server`` property, which the sites pass to ``loop.create_server``
as the protocol factory, the same from aiohttp 3.10 to 3.14.

Everything runs on the event loop; nothing here is thread-safe, and nothing needs to be.

About 460 lines for a reason: the tracker, the protocol wrapper and the runner are one
mechanism, and the fence around aiohttp's runner is kept in one file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import hdrs, web

from otel_dashboard.server.security.grpc_on_http import (
    HTTP2_PREFACE,
    GrpcOnHttpAnswer,
    grpc_hint,
    preface_state,
)

__all__ = ["HttpConnectionTracker", "TrackedAppRunner"]

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_LOG_EVERY_SECONDS = 60.0
_MAX_SWEEP_SECONDS = 1.0
_MIN_SWEEP_SECONDS = 0.05
_REFUSED_RETRY_AFTER = "1"


class _Connection:
    """What the tracker knows of one open connection."""

    __slots__ = ("address", "busy", "closed", "idle_since", "opened", "pending_since", "protocol",
                 "transport", "websocket")

    def __init__(self, address: str, transport: asyncio.Transport, now: float) -> None:
        self.address = address
        self.transport = transport
        self.protocol: Any = None  # aiohttp's RequestHandler once admitted
        self.opened = now
        self.pending_since: float | None = now  # waiting for a whole request header since then
        self.idle_since: float | None = None  # idle between requests since then
        self.busy = 0  # requests being handled
        self.websocket = False
        self.closed = False


class HttpConnectionTracker:
    """Times out half-sent requests and idle connections, and caps open HTTP connections.

    Args:
        header_timeout_seconds: time a connection gets to send a whole request header.
        keepalive_timeout_seconds: time a connection may stay idle between requests.
        max_per_address: open HTTP connections (WebSockets not counted) per client address.
        max_total: open HTTP connections (WebSockets not counted) in all.
        clock: a monotonic clock in seconds.

    Raises:
        ValueError: a value out of range, named.
    """

    def __init__(
        self,
        *,
        header_timeout_seconds: float,
        keepalive_timeout_seconds: float,
        max_per_address: int,
        max_total: int,
        clock: Clock = time.monotonic,
    ) -> None:
        for name, value in (("header_timeout_seconds", header_timeout_seconds),
                            ("keepalive_timeout_seconds", keepalive_timeout_seconds)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        for name, count in (("max_per_address", max_per_address), ("max_total", max_total)):
            if count < 1:
                raise ValueError(f"{name} must be >= 1, got {count!r}")
        self.header_timeout_seconds = float(header_timeout_seconds)
        self.keepalive_timeout_seconds = float(keepalive_timeout_seconds)
        self.max_per_address = max_per_address
        self.max_total = max_total
        self.counters: Counter[str] = Counter()
        self._clock = clock
        self._open: dict[_Connection, None] = {}  # oldest first
        self._by_protocol: dict[Any, _Connection] = {}
        self._counted: Counter[str] = Counter()  # HTTP (not WebSocket) connections per address
        self._counted_total = 0
        self._sweeper: asyncio.Task[None] | None = None
        self._last_logged: dict[str, float] = {}
        self.grpc_port: int | None = None
        """The server's OTLP/gRPC port (None: off), named to gRPC clients that come here instead."""

    # ------------------------------------------------------------------ numbers
    @property
    def open_connections(self) -> int:
        """HTTP connections open now (WebSockets not counted)."""
        return self._counted_total

    def stats(self) -> dict[str, int]:
        """The counters and the open HTTP connections (for ``/stats`` under ``security``)."""
        return {**self.counters, "open_http_connections": self._counted_total}

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Start the sweep task on the running loop; idempotent."""
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def stop(self) -> None:
        """Stop the sweep task; idempotent."""
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

    async def _sweep_forever(self) -> None:
        interval = min(_MAX_SWEEP_SECONDS, max(_MIN_SWEEP_SECONDS, self.header_timeout_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                self.sweep()
            except Exception:  # never let one bad record stop the deadlines
                logger.exception("sweeping HTTP connections failed")

    def sweep(self) -> None:
        """Close every connection past its header or idle deadline."""
        now = self._clock()
        header_deadline = now - self.header_timeout_seconds
        idle_deadline = now - self.keepalive_timeout_seconds
        for conn in list(self._open):
            if conn.busy or conn.websocket or conn.closed:
                continue
            if conn.pending_since is not None and conn.pending_since <= header_deadline:
                self._close(conn, "http_header_timeouts")
            elif conn.idle_since is not None and conn.idle_since <= idle_deadline:
                self._close(conn, "http_idle_timeouts")

    # ------------------------------------------------------------------ events
    def opened(self, transport: asyncio.Transport) -> _Connection | None:
        """A new connection: its record, or None when refused (answered 503 and closed)."""
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, (tuple, list)) and peer else ""
        if self._counted[address] >= self.max_per_address and not self._evict(address):
            self._refuse(transport, address, f"at most {self.max_per_address} open HTTP connections "
                                             "per address")
            return None
        if self._counted_total >= self.max_total and not self._evict(None):
            self._refuse(transport, address, f"at most {self.max_total} open HTTP connections")
            return None
        conn = _Connection(address, transport, self._clock())
        self._open[conn] = None
        self._counted[address] += 1
        self._counted_total += 1
        return conn

    def admitted(self, conn: _Connection, protocol: Any) -> None:
        """``protocol`` (aiohttp's handler) serves ``conn``: the middleware finds it by it."""
        conn.protocol = protocol
        self._by_protocol[protocol] = conn

    def received(self, conn: _Connection) -> None:
        """Bytes arrived: between requests, they start the next header's deadline."""
        if not conn.busy and conn.pending_since is None:
            conn.pending_since = self._clock()
            conn.idle_since = None

    def grpc_client(self, conn: _Connection) -> GrpcOnHttpAnswer:
        """``conn`` opened with the HTTP/2 preface: the answer that speaks to it from now on."""
        self.counters["grpc_on_http_port"] += 1
        now = time.monotonic()
        if now - self._last_logged.get("grpc_on_http_port", -_LOG_EVERY_SECONDS) >= _LOG_EVERY_SECONDS:
            self._last_logged["grpc_on_http_port"] = now
            where = (f"port {self.grpc_port}" if self.grpc_port is not None
                     else "the OTLP/gRPC port (off here: --grpc-port N turns it on)")
            logger.warning("a gRPC client (from %s) connected to the OTLP/HTTP port: answered "
                           "UNIMPLEMENTED, send OTLP/gRPC to %s; more in the next %.0f s are only counted "
                           "(%s so far)", conn.address or "?", where, _LOG_EVERY_SECONDS,
                           self.counters["grpc_on_http_port"])
        return GrpcOnHttpAnswer(conn.transport, grpc_hint(self.grpc_port))

    def lost(self, conn: _Connection) -> None:
        """The connection is gone; idempotent."""
        self._forget(conn)
        if conn.protocol is not None:
            self._by_protocol.pop(conn.protocol, None)

    def _request_started(self, conn: _Connection, websocket: bool) -> None:
        conn.busy += 1
        conn.pending_since = conn.idle_since = None
        if websocket and not conn.websocket and not conn.closed:
            conn.websocket = True  # the WebSocket limiter counts it from now on
            self._uncount(conn)

    def _request_finished(self, conn: _Connection) -> None:
        conn.busy = max(0, conn.busy - 1)
        if conn.websocket and not conn.closed:
            conn.websocket = False  # a refused upgrade leaves a plain HTTP connection
            self._counted[conn.address] += 1
            self._counted_total += 1
        if not conn.busy:
            conn.idle_since = self._clock()

    # ------------------------------------------------------------------ middleware
    @property
    def middleware(self) -> Any:
        """The aiohttp middleware that tells the tracker when a request's handler starts and ends.

        A plain function returning the handler's awaitable: the end is a done callback on the
        request's task (aiohttp runs each request in a task of its own), so nothing waits in a frame
        of ours for a WebSocket's hours. Requests on connections it does not track (a test client,
        another runner) pass untouched.
        """
        by_protocol = self._by_protocol

        @web.middleware
        def track_connection(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
            conn = by_protocol.get(request.protocol)
            task = asyncio.current_task()
            if conn is not None and task is not None:
                upgrade = request.headers.get(hdrs.UPGRADE, "").lower()
                self._request_started(conn, "websocket" in upgrade)
                task.add_done_callback(lambda _task: self._request_finished(conn))
            return handler(request)

        return track_connection

    # ------------------------------------------------------------------ closing
    def _evict(self, address: str | None) -> bool:
        """Close the oldest connection that is not busy (of ``address``, or any); whether there was one."""
        for conn in self._open:
            if conn.busy or conn.websocket or conn.closed:
                continue
            if address is None or conn.address == address:
                self._close(conn, "http_connections_evicted")
                return True
        return False

    def _refuse(self, transport: asyncio.Transport, address: str, detail: str) -> None:
        body = json.dumps({"error": "too many open connections", "detail": detail,
                           "retry_after_seconds": int(_REFUSED_RETRY_AFTER)}).encode()
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: {_REFUSED_RETRY_AFTER}\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
        ).encode("ascii")
        try:
            transport.write(head + body)
        finally:
            transport.close()
        self._note("http_connections_refused", address)

    def _close(self, conn: _Connection, reason: str) -> None:
        self._forget(conn)
        self._note(reason, conn.address)
        force_close = getattr(conn.protocol, "force_close", None)
        if force_close is not None:
            force_close()  # aiohttp's own way: cancels its waiter and closes the transport
        else:
            conn.transport.close()

    def _forget(self, conn: _Connection) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._open.pop(conn, None)
        if not conn.websocket:
            self._uncount(conn)

    def _uncount(self, conn: _Connection) -> None:
        left = self._counted[conn.address] - 1
        if left > 0:
            self._counted[conn.address] = left
        else:
            del self._counted[conn.address]
        self._counted_total -= 1

    def _note(self, reason: str, address: str) -> None:
        """Count, and log the first of each kind per minute (an idle timeout, which every browser
        meets, only at DEBUG)."""
        self.counters[reason] += 1
        if reason == "http_idle_timeouts" and not logger.isEnabledFor(logging.DEBUG):
            return
        now = time.monotonic()
        if now - self._last_logged.get(reason, -_LOG_EVERY_SECONDS) >= _LOG_EVERY_SECONDS:
            self._last_logged[reason] = now
            level = logging.DEBUG if reason == "http_idle_timeouts" else logging.INFO
            logger.log(level, "closed an HTTP connection: %s (from %s); more in the next %.0f s are "
                       "only counted (%s so far)", reason, address or "?", _LOG_EVERY_SECONDS,
                       self.counters[reason])


class _TrackedProtocol(asyncio.Protocol):
    """aiohttp's ``RequestHandler`` behind a thin protocol that reports to the tracker."""

    __slots__ = ("_conn", "_first_bytes", "_grpc", "_inner", "_server", "_tracker")

    def __init__(self, server: web.Server, tracker: HttpConnectionTracker) -> None:
        self._server = server
        self._tracker = tracker
        self._conn: _Connection | None = None
        self._inner: Any = None
        # The connection's first bytes while they may still be the HTTP/2 preface (None: decided).
        self._first_bytes: bytes | None = b""
        self._grpc: GrpcOnHttpAnswer | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        real = cast(asyncio.Transport, transport)
        conn = self._tracker.opened(real)
        if conn is None:
            return  # refused: no handler is ever made for it
        self._conn = conn
        self._inner = self._server()
        self._tracker.admitted(conn, self._inner)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        assert self._conn is not None
        self._tracker.received(self._conn)
        if self._grpc is not None:
            self._grpc.feed(data)
            return
        if self._first_bytes is not None:
            data = self._first_bytes + data
            is_preface = preface_state(data)
            if is_preface is None:  # a prefix of the preface so far: wait for the rest
                self._first_bytes = data
                return
            self._first_bytes = None
            if is_preface:
                self._grpc = self._tracker.grpc_client(self._conn)
                self._grpc.feed(data[len(HTTP2_PREFACE):])
                return
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is None:
            return None
        return cast("bool | None", self._inner.eof_received())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._tracker.lost(self._conn)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def __getattr__(self, name: str) -> Any:
        # ``transport.get_protocol()`` is this wrapper: whoever reads aiohttp's protocol through the
        # transport (the broadcaster's direct writes wait on its drain helper) gets the real one's.
        inner = object.__getattribute__(self, "_inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)


class _ProtocolFactory:
    """What the sites pass to ``loop.create_server``: a tracked protocol per connection. Any other
    attribute is the wrapped :class:`aiohttp.web.Server`'s."""

    def __init__(self, server: web.Server, tracker: HttpConnectionTracker) -> None:
        self.server = server
        self._tracker = tracker

    def __call__(self) -> _TrackedProtocol:
        return _TrackedProtocol(self.server, self._tracker)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.server, name)


class TrackedAppRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose sites' connections ``tracker`` watches.

    Use it as the runner (``TrackedAppRunner(app, tracker, **runner_kwargs)``); sites built on it
    (``web.TCPSite(runner, ...)``) accept connections through the tracker. It starts the tracker's
    sweep in :meth:`setup` and stops it in :meth:`cleanup`.
    """

    def __init__(self, app: web.Application, tracker: HttpConnectionTracker, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.tracker = tracker
        self._factory: _ProtocolFactory | None = None

    @property
    def server(self) -> web.Server | None:
        server = super().server
        if server is None:
            return None
        if self._factory is None or self._factory.server is not server:
            self._factory = _ProtocolFactory(server, self.tracker)
        # The sites only call it (loop.create_server) and check it is not None; anything else is
        # the real server's, through __getattr__.
        return cast(web.Server, self._factory)

    async def setup(self) -> None:
        await super().setup()
        self.tracker.start()

    async def cleanup(self) -> None:
        try:
            await super().cleanup()
        finally:
            await self.tracker.stop()
