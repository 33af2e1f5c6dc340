"""The dashboard's aiohttp server: the page, a live WebSocket stream, health, stats, history and intake
(and the OTLP/gRPC receiver beside it).

Usage::

    from otel_dashboard.server.app import DashboardWebSocketServer

    async with DashboardWebSocketServer(port=8000) as server:
        print("dashboard on", server.dashboard_url)
        await run_my_agents()

The server subscribes to a :class:`~otel_dashboard.state.dashboard.DashboardState` (the process's one from
:func:`~otel_dashboard.state.dashboard.get_dashboard` unless ``state=`` is given) and pushes every accepted
event to every connected WebSocket client. See ``docs/server.md`` for the endpoints, the WebSocket
protocol and the slow-client policy.

This module puts the application together; each part lives in its own module:

* :mod:`otel_dashboard.server.options` -- the options, their defaults and validation;
* :mod:`otel_dashboard.server.broadcast` -- the broadcaster: clients, the shared log and their cursors, the
  flush pass, slow-client policy, thread hand-off, replay, heartbeats;
* :mod:`otel_dashboard.server.broker` -- several replicas sharing one Redis (``broker=``);
* :mod:`otel_dashboard.server.websocket` -- the ``/ws`` handler and the client messages;
* :mod:`otel_dashboard.server.http_api` -- ``/health``, ``/stats``, ``GET /api/events``,
  ``GET /api/traces/{trace_id}`` and the JSON error handling;
* :mod:`otel_dashboard.server.receiver` -- ``POST /api/events``;
* :mod:`otel_dashboard.server.otlp_http` -- the OTLP/HTTP receiver (``POST /v1/traces``, ``/v1/metrics``,
  ``/v1/logs``), and :mod:`otel_dashboard.server.grpc_receiver` its OTLP/gRPC twin (port 4317), both
  keeping what they decode through :mod:`otel_dashboard.server.otlp_ingest`;
* :mod:`otel_dashboard.server.health` -- health and statistics;
* :mod:`otel_dashboard.server.pages` -- the page and its static assets;
* :mod:`otel_dashboard.server.security` -- token auth, Origin/Host/CORS checks, limits, security headers
  (installed on every app, see ``docs/security.md``).

Here live :func:`create_app`, the timers (``metrics_updated``, ``system_health_updated``) and
:class:`DashboardWebSocketServer`.

About 500 lines for a reason: the factory, the server's life cycle (HTTP and OTLP/gRPC) and its two
timers are one start-up and shut-down order, read best in one file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from otel_dashboard.server import (
    graph_api,
    http_api,
    otlp_http,
    otlp_ingest,
    pages,
    receiver,
    runs_api,
    security,
    span_api,
    traces_api,
)
from otel_dashboard.server.alert_payload import base_url_of
from otel_dashboard.server.alerts import ALERTS_KEY, AlertSender
from otel_dashboard.server.broadcast import BROADCASTER_KEY, Broadcaster
from otel_dashboard.server.broker import BROKER_KEY, RedisBroker
from otel_dashboard.server.health import HEALTH_KEY, ServerHealth
from otel_dashboard.server.options import OPTIONS_KEY, SERVER_VERSION, ServerOptions, check_int, make_options
from otel_dashboard.server.prometheus import add_metrics_route
from otel_dashboard.server.security import SECURITY_KEY, SecurityConfig
from otel_dashboard.server.security.config import is_loopback_host
from otel_dashboard.server.security.connections import TrackedAppRunner
from otel_dashboard.server.security.redact import install_log_redaction
from otel_dashboard.server.websocket import websocket_handler
from otel_dashboard.state.dashboard import DashboardState, get_dashboard

if TYPE_CHECKING:
    from otel_dashboard.server.grpc_receiver import GrpcReceiver

__all__ = ["HUB_KEY", "DashboardWebSocketServer", "create_app"]

logger = logging.getLogger(__name__)

HUB_KEY = BROADCASTER_KEY
"""The application key of the server's :class:`~otel_dashboard.server.broadcast.Broadcaster`."""


def create_app(
    state: DashboardState | None = None,
    *,
    dashboard_html_path: str | os.PathLike[str] | None = None,
    history_size: int = 100,
    name: str | None = None,
    **options: Any,
) -> web.Application:
    """Build the dashboard's :class:`aiohttp.web.Application` (for tests and custom runners).

    Takes the same options as :class:`DashboardWebSocketServer` (except host and port). Running
    the app (``AppRunner`` or ``aiohttp_client``) subscribes it to ``state``; cleaning it up
    closes every socket and unsubscribes. The security layer is installed with ``security=``
    (a :class:`~otel_dashboard.server.security.SecurityConfig`), else with the defaults for a loopback bind.

    Raises:
        FileNotFoundError: the dashboard page (or a given ``static_dir``) does not exist.
        ValueError: an invalid option, named in the message.
    """
    return _build_app(state, make_options(dashboard_html_path, history_size, name, options))


def _build_app(state: DashboardState | None, options: ServerOptions) -> web.Application:
    web_dir = pages.default_web_dir()
    html = options.dashboard_html_path or web_dir / "index.html"
    if not html.is_file():
        raise FileNotFoundError(f"dashboard page not found: {html} (pass dashboard_html_path=)")
    static_dir = options.static_dir
    if static_dir is not None and not static_dir.is_dir():
        raise FileNotFoundError(f"static_dir is not a directory: {static_dir}")
    if static_dir is None and web_dir.is_dir():
        static_dir = web_dir

    state = state if state is not None else get_dashboard()
    broadcaster = Broadcaster(state, options)
    server_health = ServerHealth(broadcaster, options)
    # The error middleware first (outermost): every answer, the security layer's included, is JSON.
    # The body limit has one source: options.max_body_bytes == options.security.max_body_bytes.
    app = web.Application(middlewares=[http_api.error_middleware], client_max_size=options.max_body_bytes)
    security.install(app, options.security)
    add_metrics_route(app)  # behind the security layer like every data route
    app[OPTIONS_KEY] = options
    app[BROADCASTER_KEY] = broadcaster
    app[HEALTH_KEY] = server_health
    received = app[otlp_ingest.RECEIVED_MAPPER_KEY] = otlp_ingest.ReceivedSpanMapper(state, options.prices)
    # An exception log whose failure a received span below it already reported adds no error.
    state.log_failure_check = received.reported
    broker = RedisBroker(options.broker) if options.broker is not None else None
    if broker is not None:
        app[BROKER_KEY] = broker
        server_health.broker = broker
        broadcaster.replica = broker.replica
    alerts = None
    if options.alert_webhooks:
        alerts = app[ALERTS_KEY] = AlertSender(state, options.alert_webhooks,
                                               timeout_seconds=options.alert_timeout_seconds,
                                               user_agent=f"otel-dashboard/{SERVER_VERSION}")
        server_health.alerts = alerts
    app[pages.HTML_KEY] = html.resolve()
    if static_dir is not None:
        app[pages.STATIC_KEY] = static_dir.resolve()

    async def server_context(app: web.Application) -> AsyncIterator[None]:
        if options.stall_threshold_seconds is not None:
            state.stall_threshold_seconds = options.stall_threshold_seconds
        broadcaster.start(asyncio.get_running_loop())
        server_health.start()
        if broker is not None:
            await broker.start(state, on_provisional=broadcaster.send_provisional)
        if alerts is not None:
            if broker is not None:
                # Every replica accepts every event: the leader (as for metrics_updated) posts the alert.
                lease_millis = int((options.metrics_interval_seconds or 1.0) * 3000)
                alerts.is_leader = functools.partial(broker.is_leader, lease_millis)
            alerts.start()
        timers = []
        if options.metrics_interval_seconds is not None:
            timers.append(asyncio.ensure_future(
                _metrics_loop(state, options.metrics_interval_seconds, broker)
            ))
        if options.health_interval_seconds is not None:
            timers.append(asyncio.ensure_future(
                _health_loop(server_health, options.health_interval_seconds)
            ))
        yield
        for timer in timers:
            timer.cancel()
        if timers:
            await asyncio.wait(timers)
        if alerts is not None:
            await alerts.stop()
        if broker is not None:
            await broker.stop()
        await broadcaster.cleanup()

    async def on_shutdown(app: web.Application) -> None:
        await broadcaster.shutdown()

    app.cleanup_ctx.append(server_context)
    app.on_shutdown.append(on_shutdown)
    app.router.add_get("/", pages.index)
    app.router.add_get("/dashboard", pages.dashboard_page)
    app.router.add_get("/dashboard/", pages.index)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/health", http_api.health)
    app.router.add_get("/stats", http_api.stats)
    app.router.add_get("/api/events", http_api.api_events)
    app.router.add_post("/api/events", receiver.ingest_events)
    app.router.add_post("/v1/traces", otlp_http.otlp_traces)
    app.router.add_post("/v1/metrics", otlp_http.otlp_metrics)
    app.router.add_post("/v1/logs", otlp_http.otlp_logs)
    app.router.add_get("/api/traces", traces_api.api_traces)  # the list; a trace's spans below
    app.router.add_get("/api/traces/{trace_id}", http_api.api_trace)
    app.router.add_get("/api/traces/{trace_id}/spans/{span_id}", span_api.api_span)
    app.router.add_get("/api/graph", graph_api.api_graph)
    app.router.add_get("/api/conversations/{conversation_id}", traces_api.api_conversation)
    app.router.add_get("/api/runs", http_api.api_runs)
    app.router.add_get("/api/guardrails", runs_api.api_guardrails)
    app.router.add_post("/api/runs/{run_id}/stop", runs_api.stop_run)  # flags a run (token required)
    app.router.add_get("/api/agents", http_api.api_agents)
    if static_dir is not None:
        app.router.add_get("/static/{path:.*}", pages.static_file)
    return app


# --------------------------------------------------------------------------- timers
async def _metrics_loop(state: DashboardState, interval: float, broker: RedisBroker | None) -> None:
    # In a cluster every replica derives the same metrics; only the leader publishes them.
    lease_millis = int(interval * 3000)
    while True:
        await asyncio.sleep(interval)
        try:
            if broker is None or await broker.is_leader(lease_millis):
                state.emit_metrics_if_changed()
        except Exception:
            logger.exception("publishing metrics_updated failed")


async def _health_loop(server_health: ServerHealth, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            server_health.publish_health()
        except Exception:
            logger.exception("publishing system_health_updated failed")


# --------------------------------------------------------------------------- the server
class DashboardWebSocketServer:
    """The dashboard server: page, WebSocket stream, health, stats and history over aiohttp.

    Use it as an async context manager, or call :meth:`start` / :meth:`stop` (or
    :meth:`run_forever`) from a running event loop.

    Args:
        host: interface to listen on (loopback by default; ``"0.0.0.0"`` exposes it).
        port: TCP port; 0 picks a free one (read it back from :attr:`port`).
        grpc_port: the OTLP/gRPC port (on the same host): None (the default here) serves no gRPC,
            0 picks a free port (read it back from :attr:`grpc_port`). ``otel-dashboard serve``
            and ``demo`` pass 4317 (``--grpc-port``). Same token, TLS certificate, size and rate
            limits as OTLP/HTTP (see ``docs/otlp.md``).
        dashboard_html_path: the page served at ``/dashboard``; the package's ``web/index.html``
            by default.
        state: the :class:`DashboardState` to serve; :func:`get_dashboard` when None.
        history_size: newest events sent in each client's snapshot (0-100000). How much history
            ``resume`` and ``/api/events`` can reach is the state's own store bound
            (``DashboardState(max_history=...)``).
        name: a label for this dashboard, shown on the page and in ``/health``.
        static_dir: directory served under ``/static/``; the package's ``web/`` by default.
        client_queue_size: how many events a client may fall behind the newest one before the
            slow-client policy applies (also the bound of the shared event log).
        send_timeout_seconds: a client whose socket stays full (or a send that stays blocked) this
            long is closed (1013); also the time a close handshake gets before the connection is
            aborted.
        heartbeat_seconds: WebSocket ping interval; a peer that does not answer within half of it
            is disconnected. None disables heartbeats.
        max_message_bytes: largest client message accepted (bigger ones get an error message);
            ``security.max_ws_message_bytes`` when ``security`` is given.
        max_body_bytes: largest request body (413 beyond); ``security.max_body_bytes`` when
            ``security`` is given (an option that disagrees with it is a ValueError).
        security: a :class:`~otel_dashboard.server.security.SecurityConfig`: token, allowed origins and
            hosts, TLS, limits (see ``docs/security.md``); its ``bind_host`` is set to ``host``. By
            default: no token, the Host check on a loopback ``host``, the default limits. A
            non-loopback ``host`` without a token is logged as a warning
            (``SecurityConfig.from_options`` generates a token, as ``serve`` does).
        health_interval_seconds: period of ``system_health_updated``; None disables it.
        metrics_interval_seconds: period of the ``metrics_updated`` check; None disables it.
        overflow_window_seconds: a second queue overflow within this window closes the client.
        stall_threshold_seconds: if given, sets ``state.stall_threshold_seconds`` at start.
        compress: negotiate permessage-deflate (saves bandwidth, costs CPU per client).
        broker: share events with other replicas through Redis: a ``redis://`` URL or a
            :class:`~otel_dashboard.server.broker.BrokerConfig` (see ``docs/deployment.md``). None (the
            default): this server alone.
        prices: the :class:`~otel_dashboard.model.prices.PriceBook` that prices the model calls of
            the spans this server maps (``load_price_file(path)`` for ``serve --prices FILE``). None
            (the default): genai-prices' bundled prices (``default_price_book()``).
        alert_webhooks: URLs (http or https, at most 20) each ``BudgetExceeded`` and ``LoopSuspected``
            is POSTed to as JSON, with retries, from a bounded queue (``docs/guardrails.md``, "Alerts
            out"; ``serve --alert-webhook``). Empty (the default): no alerts out.
        alert_timeout_seconds: the limit of one attempt to post an alert (default 5).

    Raises:
        ValueError: an invalid option, named in the message.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        dashboard_html_path: str | os.PathLike[str] | None = None,
        *,
        state: DashboardState | None = None,
        history_size: int = 100,
        name: str | None = None,
        grpc_port: int | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty string, got {host!r}")
        self.host = host
        self._requested_port = check_int("port", port, 0, 65535)
        self._requested_grpc_port = None if grpc_port is None else check_int("grpc_port", grpc_port, 0, 65535)
        self._grpc: GrpcReceiver | None = None
        if state is not None and not isinstance(state, DashboardState):
            raise ValueError(f"state must be a DashboardState or None, got {type(state).__name__}")
        self._options = make_options(dashboard_html_path, history_size, name, options)
        if self._options.security.bind_host != host:
            # The configuration must know where the server listens: the Host check is for loopback binds.
            self._options.security = dataclasses.replace(self._options.security, bind_host=host)
        self._state = state
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None
        self._port: int | None = None
        self._stopped: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None

    # ------------------------------------------------------------ properties
    @property
    def state(self) -> DashboardState:
        """The state this server serves."""
        return self._state if self._state is not None else get_dashboard()

    @property
    def name(self) -> str | None:
        """The dashboard's label, or None."""
        return self._options.name

    @property
    def port(self) -> int:
        """The bound port once started (the chosen one when started with port 0)."""
        return self._port if self._port is not None else self._requested_port

    @property
    def grpc_port(self) -> int | None:
        """The OTLP/gRPC port: the bound one once started (the chosen one when asked for 0), None
        when gRPC is off."""
        if self._grpc is not None and self._grpc.port is not None:
            return self._grpc.port
        return self._requested_grpc_port

    @property
    def security(self) -> SecurityConfig:
        """The security configuration (token, origins, TLS, limits)."""
        return self._options.security

    @property
    def url(self) -> str:
        """``http://host:port`` (``https://`` with TLS) of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self._options.security.tls_enabled else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def dashboard_url(self) -> str:
        """The URL of the dashboard page."""
        return self.url + "/dashboard"

    @property
    def started(self) -> bool:
        """Whether the server is listening."""
        return self._runner is not None

    @property
    def app(self) -> web.Application | None:
        """The running application (None when stopped)."""
        return self._app

    @property
    def connected_clients(self) -> int:
        """WebSocket clients connected right now."""
        return self._app[HUB_KEY].client_count if self._app is not None else 0

    # ------------------------------------------------------------ lifecycle
    def create_app(self) -> web.Application:
        """A new application with this server's state and options (``start`` uses it)."""
        return _build_app(self._state, self._options)

    async def start(self) -> None:
        """Listen on ``host:port``; a no-op when already started.

        Raises:
            FileNotFoundError: the dashboard page does not exist.
            TLSConfigError: a certificate or key file that cannot be used (the message names it).
            GrpcBindError: the OTLP/gRPC port cannot be bound (an OSError; the message says why and
                what to pass); nothing is left listening.
            OSError: the port cannot be bound.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._runner is not None:
                return
            config = self._options.security
            ssl_context = config.ssl_context()
            if ssl_context is not None:
                # Browsers and HTTP clients get http/1.1 (the server's preference); a gRPC client, which
                # offers h2 only, gets through TLS to the answer naming the gRPC port
                # (security/grpc_on_http.py) instead of a TLS error about ALPN.
                ssl_context.set_alpn_protocols(["http/1.1", "h2"])
            # Before anything can log a request: no token in any line (headers, malformed requests).
            install_log_redaction([config.token] if config.token else [])
            app = self.create_app()
            # auto_decompress off: the OTLP receiver inflates gzip bodies itself, bounded (gzip bombs).
            # The tracked runner times out half-sent requests and caps open HTTP connections.
            runner = TrackedAppRunner(app, app[SECURITY_KEY].http_connections, handle_signals=False,
                                      shutdown_timeout=5.0, auto_decompress=False,
                                      # aiohttp's own idle timer only as a backstop: the tracker
                                      # closes idle connections first, and counts them.
                                      keepalive_timeout=2 * config.keepalive_timeout_seconds,
                                      access_log_class=security.RedactingAccessLogger)
            await runner.setup()
            try:
                site = web.TCPSite(runner, self.host, self._requested_port, ssl_context=ssl_context)
                await site.start()
                if self._requested_grpc_port is not None:
                    # Imported here: grpc costs ~9 MB of memory, paid only by a server that serves it.
                    from otel_dashboard.server.grpc_receiver import GrpcReceiver

                    # After the HTTP site: the receiver keeps requests through the running app.
                    grpc_receiver = GrpcReceiver(
                        app, host=self.host, port=self._requested_grpc_port, security=config,
                        max_message_bytes=self._options.max_body_bytes)
                    await grpc_receiver.start()
                    self._grpc = grpc_receiver
                    # A gRPC client sent to the HTTP port is told this one.
                    app[SECURITY_KEY].http_connections.grpc_port = grpc_receiver.port
            except BaseException:
                await runner.cleanup()
                raise
            addresses = runner.addresses
            self._port = int(addresses[0][1]) if addresses else self._requested_port
            if ALERTS_KEY in app:  # the alerts link to the trace page
                app[ALERTS_KEY].base_url = base_url_of(self.host, self._port, tls=config.tls_enabled)
            self._runner = runner
            self._app = app
            self._stopped = asyncio.Event()
            logger.info("otel-dashboard serving on %s", self.dashboard_url)
            if config.token is None and not is_loopback_host(self.host):
                logger.warning("otel-dashboard listens on %s without a token: anyone who can reach it can "
                               "read the dashboard and post events (see docs/security.md)", self.host)

    async def stop(self) -> None:
        """Close every client (1001), stop the timers, unsubscribe and release the port; idempotent."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            runner = self._runner
            if runner is None:
                return
            self._runner = None
            grpc_receiver, self._grpc = self._grpc, None
            try:
                try:
                    if grpc_receiver is not None:
                        # First: RPCs in flight finish (grace) while the app they keep into still runs.
                        await grpc_receiver.stop()
                finally:
                    await runner.cleanup()
            finally:
                self._app = None
                if self._stopped is not None:
                    self._stopped.set()
                logger.info("otel-dashboard on port %s stopped", self._port)

    async def run_forever(
        self, *, on_started: Callable[[DashboardWebSocketServer], object] | None = None
    ) -> None:
        """Start if needed, serve until SIGINT/SIGTERM (or :meth:`stop`), then stop gracefully.

        Args:
            on_started: called once the server listens, with the signal handlers already in place
                (print the URL here: a Ctrl+C after it always means a graceful stop).
        """
        loop = asyncio.get_running_loop()
        signalled = asyncio.Event()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, signalled.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / Windows
                pass
        try:
            await self.start()
        except BaseException:
            for sig in installed:
                loop.remove_signal_handler(sig)
            raise
        if on_started is not None:
            on_started(self)
        stopped = self._stopped
        assert stopped is not None
        waiters = [asyncio.ensure_future(signalled.wait()), asyncio.ensure_future(stopped.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.stop()

    async def __aenter__(self) -> DashboardWebSocketServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        status = "started" if self.started else "stopped"
        return f"<DashboardWebSocketServer {self.url} {status}>"
