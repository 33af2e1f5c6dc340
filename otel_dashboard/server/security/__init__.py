"""Secure by default: token auth, Origin/Host/CORS checks, limits and security headers for the server.

One configuration object and one call wire everything into an :class:`aiohttp.web.Application`::

    config = SecurityConfig.from_options(token=args.token, bind_host=args.host,
                                         allowed_origins=args.allowed_origin,
                                         certfile=args.certfile, keyfile=args.keyfile)
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[error_middleware])
    security.install(app, config)            # middleware, header signal, GET/POST /api/auth
    site = web.TCPSite(runner, host, port, ssl_context=config.ssl_context())

What the middleware does to each request, in this order (see ``docs/security.md``):

1. **Host check** on loopback binds: a ``Host`` other than ``localhost``, ``127.x.x.x`` or ``[::1]`` (or
   a name in ``allowed_hosts``) gets 403 ``{"error": "forbidden host"}``: this blocks DNS rebinding.
2. **CORS preflight** (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``): 204 with CORS
   headers for an origin in ``allowed_origins``, otherwise 403 without any.
3. **Origin check** on WebSocket upgrades and on unsafe methods (POST, PUT, PATCH, DELETE): an
   ``Origin`` that is neither the served host nor in ``allowed_origins`` gets 403
   ``{"error": "forbidden origin"}``. No ``Origin`` at all (a script, another service) passes.
4. **Login**: ``GET /dashboard?token=T`` (also ``/`` and ``/dashboard/``) sets the
   ``otel_dashboard_token`` cookie (HttpOnly, SameSite=Strict, Secure under TLS) when ``T`` is right,
   and redirects (303) to ``/dashboard`` without the token in either case. A ``token`` query
   parameter is removed from every request before the handler sees it.
5. **Token** (when one is set): every route except ``/``, ``/health``, ``/dashboard``, ``/dashboard/``,
   ``/static/...`` and ``/api/auth`` needs ``Authorization: Bearer T``, the cookie, or ``?token=T``,
   compared in constant time; otherwise 401 JSON with ``WWW-Authenticate: Bearer``.
6. **Limits**: a ``Content-Length`` over ``max_body_bytes`` gets 413 (except on ``/v1/traces``,
   ``/v1/metrics`` and ``/v1/logs``, whose handler answers it in the OTLP format); an ingest POST from an
   address whose events-per-second bucket is empty gets 429 with ``Retry-After``; a WebSocket upgrade beyond
   ``max_connections_per_ip`` open connections from one address gets 429 with ``Retry-After``.

Every response then gets security headers (CSP, nosniff, no-referrer, DENY framing, HSTS under TLS)
and, for origins in ``allowed_origins``, CORS headers.

Handlers cooperate in three places: the ingest handlers call :func:`check_ingest` with the number of
events they parsed, the WebSocket handler checks each message with :func:`ws_rate_guard`, and a
WebSocket handler marked with :func:`releases_ws_connection` gives its connection slot back itself
with :func:`release_ws_connection` (so that no middleware frame waits for each connection).
Everything runs on the event loop; nothing here is thread-safe, and nothing needs to be.
"""


from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_dashboard.server.security.access_log import RedactingAccessLogger
    from otel_dashboard.server.security.config import COOKIE_NAME, TOKEN_ENV, SecurityConfig, TLSConfigError
    from otel_dashboard.server.security.guard import (
        AUTH_PATH,
        INGEST_ROUTES,
        PAGE_CSP,
        PUBLIC_ROUTES,
        SECURITY_KEY,
        WS_CLOSE_POLICY_VIOLATION,
        Security,
    )
    from otel_dashboard.server.security.middleware import (
        auth_endpoint,
        charge_failed_ingest,
        check_ingest,
        install,
        security_middleware,
    )
    from otel_dashboard.server.security.ws_limits import (
        WsRateGuard,
        release_ws_connection,
        releases_ws_connection,
        ws_rate_guard,
    )

_PUBLIC = {
    "AUTH_PATH": "guard",
    "COOKIE_NAME": "config",
    "INGEST_ROUTES": "guard",
    "PAGE_CSP": "guard",
    "PUBLIC_ROUTES": "guard",
    "RedactingAccessLogger": "access_log",
    "SECURITY_KEY": "guard",
    "Security": "guard",
    "SecurityConfig": "config",
    "TLSConfigError": "config",
    "TOKEN_ENV": "config",
    "WS_CLOSE_POLICY_VIOLATION": "guard",
    "WsRateGuard": "ws_limits",
    "auth_endpoint": "middleware",
    "charge_failed_ingest": "middleware",
    "check_ingest": "middleware",
    "install": "middleware",
    "release_ws_connection": "ws_limits",
    "releases_ws_connection": "ws_limits",
    "security_middleware": "middleware",
    "ws_rate_guard": "ws_limits",
}

__all__ = [
    "AUTH_PATH",
    "COOKIE_NAME",
    "INGEST_ROUTES",
    "PAGE_CSP",
    "PUBLIC_ROUTES",
    "SECURITY_KEY",
    "TOKEN_ENV",
    "WS_CLOSE_POLICY_VIOLATION",
    "RedactingAccessLogger",
    "Security",
    "SecurityConfig",
    "TLSConfigError",
    "WsRateGuard",
    "auth_endpoint",
    "charge_failed_ingest",
    "check_ingest",
    "install",
    "release_ws_connection",
    "releases_ws_connection",
    "security_middleware",
    "ws_rate_guard",
]


def __getattr__(name: str) -> Any:
    # Lazy: the configuration (``security.config``) is read by the CLI before aiohttp is needed.
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_dashboard.server.security' has no attribute {name!r}")
    return getattr(importlib.import_module(f"otel_dashboard.server.security.{module}"), name)
