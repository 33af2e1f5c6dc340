"""The aiohttp side of security: the middleware (the checks, in order), ``/api/auth``,
:func:`install` and the ingest rate check that handlers call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web

from otel_dashboard.server.security.config import (
    SecurityConfig,
)
from otel_dashboard.server.security.guard import (
    AUTH_PATH,
    INGEST_ROUTES,
    LOGIN_ROUTES,
    OWN_BODY_LIMIT_ROUTES,
    SAFE_METHODS,
    SECURITY_KEY,
    TOKEN_PARAMETER,
    WS_RETRY_AFTER_SECONDS,
    Security,
    client_address,
    is_public,
    is_websocket_upgrade,
    json_answer,
    route_key,
)
from otel_dashboard.server.security.ratelimit import failed_decode_events
from otel_dashboard.server.security.ws_limits import RELEASES_WS_CONNECTION

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def security_middleware(security: Security | SecurityConfig) -> Any:
    """The aiohttp middleware (see the module docstring for what it checks, in order).

    Prefer :func:`install`, which also adds the header signal and ``/api/auth``.

    It is a plain function returning what aiohttp awaits: the checks are synchronous, and an
    admitted request's handler is returned as it is rather than awaited in a frame of ours. Only a
    WebSocket connection is wrapped, to give its connection slot back when it ends, unless its
    handler is marked with :func:`releases_ws_connection` and does that itself.
    """
    sec = security if isinstance(security, Security) else Security(security)
    config = sec.config

    def admit(request: web.Request) -> web.Request | web.StreamResponse:
        """The refusal for ``request``, or the request to hand on (without a ``token`` parameter)."""
        headers = request.headers
        host_header = headers.get(hdrs.HOST)
        if not sec.host_allowed(host_header):
            sec.note("forbidden_host", request)
            return json_answer(403, {"error": "forbidden host",
                               "detail": "this server listens on loopback and answers only to localhost"})
        origin = headers.get(hdrs.ORIGIN)
        method = request.method
        if method == "OPTIONS" and origin is not None and hdrs.ACCESS_CONTROL_REQUEST_METHOD in headers:
            return sec.preflight(request, origin)
        websocket = is_websocket_upgrade(request)
        if origin is not None and (websocket or method not in SAFE_METHODS) \
                and not sec.origin_allowed(origin, host_header):
            sec.note("forbidden_origin", request)
            return json_answer(403, {"error": "forbidden origin",
                               "detail": "this origin is neither this server nor in --allowed-origin"})

        route = route_key(request)
        query = request.rel_url.query
        if TOKEN_PARAMETER in query and config.token is not None and method in ("GET", "HEAD") \
                and route in LOGIN_ROUTES:
            return sec.login_redirect(request)
        if not is_public(route) and not sec.authenticated(request):
            return sec.unauthorized(request)
        if TOKEN_PARAMETER in query:  # the handlers never see the token (nor log it)
            try:
                rest = [(k, v) for k, v in query.items() if k != TOKEN_PARAMETER]
                request = request.clone(rel_url=request.rel_url.with_query(rest))
            except (ValueError, TypeError, UnicodeError):
                return json_answer(400, {"error": "malformed query string"})

        length = request.content_length
        if length is not None and length > config.max_body_bytes and route not in OWN_BODY_LIMIT_ROUTES:
            sec.note("body_too_large", request)
            return json_answer(413, {"error": f"request body is larger than {config.max_body_bytes} bytes"},
                         headers={hdrs.CONNECTION: "close"})
        if method == "POST" and route in INGEST_ROUTES:
            wait = sec.ingest.retry_after(client_address(request))
            if wait > 0:
                return sec.too_many(request, "ingest_rate_exceeded", wait,
                                    f"at most {config.ingest_events_per_second:g} events/s per address")
        return request

    @web.middleware
    def middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        admitted = admit(request)
        if isinstance(admitted, web.StreamResponse):
            return _answer(admitted)
        if not is_websocket_upgrade(admitted):
            return handler(admitted)
        address = client_address(admitted)
        if not sec.connections.acquire(address):
            return _answer(sec.too_many(
                admitted, "too_many_connections", WS_RETRY_AFTER_SECONDS,
                f"at most {config.max_connections_per_ip} WebSocket connections per address",
            ))
        if getattr(admitted.match_info.handler, RELEASES_WS_CONNECTION, False) \
                and admitted.config_dict.get(SECURITY_KEY) is sec:
            return handler(admitted)  # it calls release_ws_connection() when it ends
        return _holding_connection(sec, address, handler, admitted)

    return middleware


async def _answer(response: web.StreamResponse) -> web.StreamResponse:
    return response


async def _holding_connection(
    sec: Security, address: str, handler: Handler, request: web.Request
) -> web.StreamResponse:
    try:
        return await handler(request)
    finally:
        sec.connections.release(address)


async def auth_endpoint(request: web.Request) -> web.Response:
    """``GET /api/auth``: whether a token is required and whether this request has it.

    ``POST /api/auth`` with ``Authorization: Bearer T``: sets the login cookie when ``T`` is right
    (200), else 401. The page uses it for its login prompt, without a token in any URL.
    """
    sec = request.config_dict.get(SECURITY_KEY)
    required = sec is not None and sec.config.token is not None
    authed = sec is None or sec.authenticated(request)
    if request.method == "POST":
        if not authed:
            assert sec is not None
            return sec.unauthorized(request)
        response = json_answer(200, {"auth_required": required, "authenticated": True})
        if sec is not None:
            sec.set_login_cookie(request, response)
        return response
    return json_answer(200, {"auth_required": required, "authenticated": authed})


def install(app: web.Application, config: SecurityConfig, *, auth_route: bool = True) -> Security:
    """Protect ``app``: the middleware, the security-header signal, and ``GET/POST /api/auth``.

    Call it in the app factory, before the app starts. The request body limit is aiohttp's own:
    build the app with ``web.Application(client_max_size=config.max_body_bytes)``.

    Returns:
        The :class:`Security` now stored under ``app[SECURITY_KEY]`` (limiters and counters).
    """
    security = Security(config)
    app[SECURITY_KEY] = security
    # First of all: a request's handler counts as started before any other middleware runs.
    app.middlewares.insert(0, security.http_connections.middleware)
    app.middlewares.append(security_middleware(security))
    app.on_response_prepare.append(security.on_response_prepare)
    if auth_route:
        app.router.add_route("GET", AUTH_PATH, auth_endpoint)
        app.router.add_route("POST", AUTH_PATH, auth_endpoint)
    return security


def check_ingest(request: web.Request, n_events: int) -> web.Response | None:
    """Charge ``n_events`` to the client's events-per-second bucket; a 429 to return when over.

    Call it in an ingest handler after parsing and before accepting anything. Returns None (go on)
    when admitted or when security is not installed.
    """
    sec = request.config_dict.get(SECURITY_KEY)
    if sec is None:
        return None
    wait = sec.ingest.take(client_address(request), n_events)
    if wait <= 0:
        return None
    return sec.too_many(request, "ingest_rate_exceeded", wait,
                        f"at most {sec.config.ingest_events_per_second:g} events/s per address")




def charge_failed_ingest(request: web.Request, examined_bytes: int) -> None:
    """Charge an ingest request whose body was refused undecoded (415, 400, 413 once inflated).

    It is charged to the client's events-per-second bucket as one event per
    :data:`~otel_dashboard.server.security.ratelimit.FAILED_DECODE_BYTES_PER_EVENT` bytes it made the
    server inflate or parse, and at least ``failed_decode_cost_events``: decoding garbage costs CPU
    as decoding spans does, so a flood of it meets the 429 (at the next request) like a flood of
    spans. A no-op when security is not installed.
    """
    sec = request.config_dict.get(SECURITY_KEY)
    if sec is None:
        return
    sec.counters["ingest_failed_decodes"] += 1
    sec.ingest.charge(client_address(request),
                      failed_decode_events(examined_bytes, sec.config.failed_decode_cost_events))
