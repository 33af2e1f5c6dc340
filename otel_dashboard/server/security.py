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
6. **Limits**: a ``Content-Length`` over ``max_body_bytes`` gets 413 (except on ``/v1/traces``, whose
   handler answers it in the OTLP format); an ingest POST from an address
   whose events-per-second bucket is empty gets 429 with ``Retry-After``; a WebSocket upgrade beyond
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

import hashlib
import hmac
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import hdrs, web
from aiohttp.web_log import AccessLogger

from otel_dashboard.server.ratelimit import (
    ConnectionLimiter,
    IngestRateLimiter,
    TokenBucket,
    retry_after_header,
)
from otel_dashboard.server.security_config import (
    COOKIE_NAME,
    TOKEN_ENV,
    SecurityConfig,
    TLSConfigError,
    is_loopback_host,
    origin_string,
    parse_host_header,
    parse_origin,
)

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
    "check_ingest",
    "install",
    "release_ws_connection",
    "releases_ws_connection",
    "security_middleware",
    "ws_rate_guard",
]

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Close code for a WebSocket client that broke a limit (RFC 6455 "policy violation").
WS_CLOSE_POLICY_VIOLATION = 1008
#: Path of the small endpoint the page uses to learn whether it must ask for the token.
AUTH_PATH = "/api/auth"
#: Routes (as registered, ``resource.canonical``) served without a token: they hold no data.
PUBLIC_ROUTES = frozenset({"/", "/health", "/dashboard", "/dashboard/", AUTH_PATH})
_PUBLIC_PREFIX = "/static"
#: Routes where ``?token=`` logs the browser in (cookie + redirect to ``/dashboard``).
_LOGIN_ROUTES = frozenset({"/", "/dashboard", "/dashboard/"})
#: Ingest routes (POST): checked against the per-address events-per-second bucket.
INGEST_ROUTES = frozenset({"/api/events", "/v1/traces"})
#: Routes whose handler answers an oversized body itself: the OTLP receiver's 413 is a google.rpc.Status
#: in the request's encoding, as OTLP/HTTP asks. The handler checks ``Content-Length`` before reading.
_OWN_BODY_LIMIT_ROUTES = frozenset({"/v1/traces"})
_TOKEN_PARAMETER = "token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_CORS_METHODS = "GET, POST"
_CORS_HEADERS = "Authorization, Content-Type, Content-Encoding"
_CORS_MAX_AGE = "600"
_COOKIE_MAX_AGE = 7 * 24 * 3600
_WS_RETRY_AFTER_SECONDS = 5.0
_HSTS = "max-age=31536000"
_LOG_EVERY_SECONDS = 60.0

#: The page's Content-Security-Policy: same-origin files only, no inline script or style.
PAGE_CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: Every other answer (JSON, scripts, styles) is never a document: it may load nothing.
_OTHER_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(
        status=status, body=json.dumps(body).encode(), content_type="application/json", headers=headers
    )
    response.headers[hdrs.CACHE_CONTROL] = "no-store"
    return response


def _client_address(request: web.Request) -> str:
    return request.remote or ""


def _route_key(request: web.Request) -> str | None:
    """The matched route as registered (``/static/{path}``), or None when nothing matched (404/405).

    Decisions use the route aiohttp will actually dispatch to, never a re-parse of the path, so no
    spelling of a URL (``/static/%2e%2e/api/events``, ``//``) can reach a handler by a public name.
    """
    match_info = request.match_info
    resource = match_info.route.resource if match_info is not None else None
    return None if resource is None else resource.canonical


def _is_public(route: str | None) -> bool:
    if route is None:
        return False
    return route in PUBLIC_ROUTES or route == _PUBLIC_PREFIX or route.startswith(_PUBLIC_PREFIX + "/")


def _is_websocket_upgrade(request: web.Request) -> bool:
    return "websocket" in request.headers.get(hdrs.UPGRADE, "").lower()


def _same_host(origin: tuple[str, str, int], host_header: str | None) -> bool:
    """Whether ``Origin`` names the host the request was sent to (its ``Host`` header)."""
    if host_header is None:
        return False
    parsed = parse_host_header(host_header)
    if parsed is None:
        return False
    scheme, origin_host, origin_port = origin
    host, port = parsed
    if host != origin_host:
        return False
    if port is None:
        return origin_port == (443 if scheme == "https" else 80)
    return port == origin_port


def _digest(value: str) -> bytes | None:
    try:
        return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()
    except UnicodeEncodeError:
        return None


class Security:
    """The running protection of one application: its config, limiters and rejection counters.

    Built by :func:`install` and kept under ``app[SECURITY_KEY]``.
    """

    def __init__(self, config: SecurityConfig) -> None:
        self.config = config
        self.connections = ConnectionLimiter(config.max_connections_per_ip)
        self.ingest = IngestRateLimiter(config.ingest_events_per_second, config.ingest_burst_events)
        self.counters: Counter[str] = Counter()
        self._token = _digest(config.token) if config.token is not None else None
        self._allowed_origins = frozenset(config.allowed_origins)
        hosts = set(config.allowed_hosts)
        hosts.update(parsed[1] for parsed in map(parse_origin, config.allowed_origins) if parsed)
        self._allowed_hosts = frozenset(hosts)
        self._last_logged: dict[str, float] = {}

    # ------------------------------------------------------------------ checks
    def token_matches(self, candidate: str | None) -> bool:
        """Constant-time comparison of ``candidate`` with the token (True when no token is set)."""
        if self._token is None:
            return True
        if candidate is None:
            return False
        digest = _digest(candidate)
        # Digests have one length, so not even the token's length shows in the timing.
        return digest is not None and hmac.compare_digest(digest, self._token)

    def _presented_tokens(self, request: web.Request) -> list[str]:
        found: list[str] = []
        scheme, _, credentials = request.headers.get(hdrs.AUTHORIZATION, "").strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            found.append(credentials.strip())
        try:
            cookie = request.cookies.get(COOKIE_NAME)
        except Exception:  # a malformed Cookie header is no credential
            cookie = None
        if cookie:
            found.append(cookie)
        found.extend(request.rel_url.query.getall(_TOKEN_PARAMETER, ()))
        return found

    def authenticated(self, request: web.Request) -> bool:
        """Whether the request carries the token (header, cookie or query); True when none is set."""
        if self._token is None:
            return True
        # Check every candidate, so the time taken does not say which source was tried.
        results = [self.token_matches(candidate) for candidate in self._presented_tokens(request)]
        return any(results)

    def host_allowed(self, host_header: str | None) -> bool:
        """The DNS-rebinding check: on a loopback bind only loopback names (and ``allowed_hosts``)."""
        if not self.config.loopback or host_header is None:
            return True
        parsed = parse_host_header(host_header)
        if parsed is None:
            return False
        host = parsed[0]
        return host in self._allowed_hosts or is_loopback_host(host)

    def origin_allowed(self, origin: str, host_header: str | None) -> bool:
        """Whether a browser at ``origin`` may open the WebSocket or send a POST here."""
        parsed = parse_origin(origin)
        if parsed is None:
            return False
        return self.cors_allowed(origin) or _same_host(parsed, host_header)

    def cors_allowed(self, origin: str | None) -> bool:
        """Whether ``origin`` is in ``allowed_origins`` (and so gets CORS headers)."""
        if origin is None or not self._allowed_origins:
            return False
        parsed = parse_origin(origin)
        return parsed is not None and origin_string(parsed) in self._allowed_origins

    # ------------------------------------------------------------------ answers
    def note(self, reason: str, request: web.Request | None = None) -> None:
        """Count a rejection, and log the first of each kind per minute."""
        self.counters[reason] += 1
        now = time.monotonic()
        if now - self._last_logged.get(reason, -_LOG_EVERY_SECONDS) >= _LOG_EVERY_SECONDS:
            self._last_logged[reason] = now
            where = f" from {request.remote} ({request.method} {request.path[:100]})" if request else ""
            logger.info("refused: %s%s; more in the next %.0f s are only counted (%s so far)",
                        reason, where, _LOG_EVERY_SECONDS, self.counters[reason])

    def stats(self) -> dict[str, int]:
        """Rejections by reason, and the open WebSocket connections (for ``/stats`` and ``/metrics``)."""
        return {**self.counters, "open_websocket_connections": self.connections.total}

    def unauthorized(self, request: web.Request) -> web.Response:
        wrong = bool(self._presented_tokens(request))
        self.note("unauthorized", request)
        detail = ("the token is wrong" if wrong
                  else "a token is required: send 'Authorization: Bearer <token>' or log in at /dashboard")
        challenge = 'Bearer realm="otel-dashboard"' + (', error="invalid_token"' if wrong else "")
        return _json(401, {"error": "unauthorized", "detail": detail},
                     headers={hdrs.WWW_AUTHENTICATE: challenge})

    def too_many(self, request: web.Request, reason: str, seconds: float, detail: str) -> web.Response:
        self.note(reason, request)
        return _json(429, {"error": "rate limit exceeded", "detail": detail,
                           "retry_after_seconds": round(seconds, 3)},
                     headers={hdrs.RETRY_AFTER: retry_after_header(seconds)})

    def preflight(self, request: web.Request, origin: str) -> web.Response:
        requested = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_METHOD, "").strip().upper()
        if not self.cors_allowed(origin):
            self.note("cors_preflight_refused", request)
            return _json(403, {"error": "cross-origin request not allowed",
                               "detail": "this origin is not in --allowed-origin"})
        if requested not in ("GET", "HEAD", "POST"):
            self.note("cors_preflight_refused", request)
            return _json(403, {"error": "cross-origin request not allowed",
                               "detail": f"allowed methods: {_CORS_METHODS}"})
        response = web.Response(status=204)
        response.headers.update({
            hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: _CORS_METHODS,
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: _CORS_HEADERS,
            hdrs.ACCESS_CONTROL_MAX_AGE: _CORS_MAX_AGE,
        })
        return response

    def set_login_cookie(self, request: web.Request, response: web.StreamResponse) -> None:
        """Give the browser the HttpOnly, SameSite=Strict cookie that carries the token."""
        if self.config.token is None:
            return
        response.set_cookie(
            COOKIE_NAME, self.config.token, httponly=True, samesite="Strict", path="/",
            secure=self.config.tls_enabled or request.secure, max_age=_COOKIE_MAX_AGE,
        )

    def login_redirect(self, request: web.Request) -> web.Response:
        """``/dashboard?token=T``: the cookie when ``T`` is right, and ``/dashboard`` without the token."""
        response = web.Response(status=303, headers={hdrs.LOCATION: "/dashboard",
                                                     hdrs.CACHE_CONTROL: "no-store"})
        candidates = request.rel_url.query.getall(_TOKEN_PARAMETER, ())
        if any([self.token_matches(candidate) for candidate in candidates]):
            self.set_login_cookie(request, response)
        else:
            self.note("unauthorized", request)
        return response

    # ------------------------------------------------------------------ headers
    async def on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """Security headers on every answer, and CORS headers for allowed origins."""
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        # Not on a 304: its headers replace the cached ones, and a 304 has no content type to tell a
        # page from anything else; the cached response keeps the policy it came with.
        if response.status != 304:
            is_page = headers.get(hdrs.CONTENT_TYPE, "").split(";", 1)[0].strip().lower() == "text/html"
            headers.setdefault("Content-Security-Policy", PAGE_CSP if is_page else _OTHER_CSP)
            if is_page:
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if self.config.tls_enabled and request.secure:
            parsed = parse_host_header(request.headers.get(hdrs.HOST, ""))
            # Never on loopback names: HSTS covers every port of a host, and would force https on
            # every other development server on localhost.
            if parsed is not None and not is_loopback_host(parsed[0]):
                headers.setdefault("Strict-Transport-Security", _HSTS)
        if self._allowed_origins:
            vary = headers.get(hdrs.VARY)
            if vary is None:
                headers[hdrs.VARY] = "Origin"
            elif "origin" not in vary.lower():
                headers[hdrs.VARY] = vary + ", Origin"
            origin = request.headers.get(hdrs.ORIGIN)
            refused_preflight = request.method == "OPTIONS" and response.status >= 400 \
                and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
            if not refused_preflight and self.cors_allowed(origin):
                assert origin is not None
                headers.setdefault(hdrs.ACCESS_CONTROL_ALLOW_ORIGIN, origin)
                headers.setdefault(hdrs.ACCESS_CONTROL_EXPOSE_HEADERS, "Retry-After")

    def ws_rate_guard(self) -> WsRateGuard:
        """A fresh message-rate guard for one WebSocket connection."""
        return WsRateGuard(self)


class WsRateGuard:
    """Per-connection WebSocket message rate (``ws_messages_per_second``, burst ``ws_message_burst``).

    Usage in the handler::

        guard = ws_rate_guard(request)
        async for msg in ws:
            if not guard.allow():
                await guard.close(ws)        # 1008 "message rate exceeded"
                break
    """

    __slots__ = ("_bucket", "_security")

    def __init__(self, security: Security | None) -> None:
        self._security = security
        # Made at the first message: a bucket starts full and never holds more than full, so one
        # made now would be in the same state then. Most dashboard connections never send one, and
        # they are held by the thousand.
        self._bucket: TokenBucket | None = None

    def allow(self) -> bool:
        """Count one message; False when the connection is over its rate."""
        security = self._security
        if security is None:
            return True
        bucket = self._bucket
        if bucket is None:
            bucket = self._bucket = TokenBucket(
                security.config.ws_messages_per_second, security.config.ws_message_burst
            )
        return bucket.take()

    def note_exceeded(self) -> None:
        """Count (and log, rate-limited) a connection closed for its message rate.

        For a handler that closes the socket its own way; :meth:`close` does both.
        """
        if self._security is not None:
            self._security.note("ws_message_rate_exceeded")

    async def close(self, ws: web.WebSocketResponse) -> None:
        """Close ``ws`` with 1008 "message rate exceeded" (and count it)."""
        self.note_exceeded()
        await ws.close(code=WS_CLOSE_POLICY_VIOLATION, message=b"message rate exceeded")


SECURITY_KEY = web.AppKey("otel_dashboard_security", Security)


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
            return _json(403, {"error": "forbidden host",
                               "detail": "this server listens on loopback and answers only to localhost"})
        origin = headers.get(hdrs.ORIGIN)
        method = request.method
        if method == "OPTIONS" and origin is not None and hdrs.ACCESS_CONTROL_REQUEST_METHOD in headers:
            return sec.preflight(request, origin)
        websocket = _is_websocket_upgrade(request)
        if origin is not None and (websocket or method not in _SAFE_METHODS) \
                and not sec.origin_allowed(origin, host_header):
            sec.note("forbidden_origin", request)
            return _json(403, {"error": "forbidden origin",
                               "detail": "this origin is neither this server nor in --allowed-origin"})

        route = _route_key(request)
        query = request.rel_url.query
        if _TOKEN_PARAMETER in query and config.token is not None and method in ("GET", "HEAD") \
                and route in _LOGIN_ROUTES:
            return sec.login_redirect(request)
        if not _is_public(route) and not sec.authenticated(request):
            return sec.unauthorized(request)
        if _TOKEN_PARAMETER in query:  # the handlers never see the token (nor log it)
            try:
                rest = [(k, v) for k, v in query.items() if k != _TOKEN_PARAMETER]
                request = request.clone(rel_url=request.rel_url.with_query(rest))
            except (ValueError, TypeError, UnicodeError):
                return _json(400, {"error": "malformed query string"})

        length = request.content_length
        if length is not None and length > config.max_body_bytes and route not in _OWN_BODY_LIMIT_ROUTES:
            sec.note("body_too_large", request)
            return _json(413, {"error": f"request body is larger than {config.max_body_bytes} bytes"},
                         headers={hdrs.CONNECTION: "close"})
        if method == "POST" and route in INGEST_ROUTES:
            wait = sec.ingest.retry_after(_client_address(request))
            if wait > 0:
                return sec.too_many(request, "ingest_rate_exceeded", wait,
                                    f"at most {config.ingest_events_per_second:g} events/s per address")
        return request

    @web.middleware
    def middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        admitted = admit(request)
        if isinstance(admitted, web.StreamResponse):
            return _answer(admitted)
        if not _is_websocket_upgrade(admitted):
            return handler(admitted)
        address = _client_address(admitted)
        if not sec.connections.acquire(address):
            return _answer(sec.too_many(
                admitted, "too_many_connections", _WS_RETRY_AFTER_SECONDS,
                f"at most {config.max_connections_per_ip} WebSocket connections per address",
            ))
        if getattr(admitted.match_info.handler, _RELEASES_WS_CONNECTION, False) \
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


_RELEASES_WS_CONNECTION = "_otel_dashboard_releases_ws_connection"

_H = TypeVar("_H", bound=Callable[..., Any])


def releases_ws_connection(handler: _H) -> _H:
    """Mark a WebSocket handler that calls :func:`release_ws_connection` when its connection ends.

    The middleware then hands it to aiohttp as it is, instead of awaiting it in a frame that waits
    to give the connection slot back: for connections held by the thousand for hours, that frame
    (~300 bytes each) is memory and nothing else.
    """
    setattr(handler, _RELEASES_WS_CONNECTION, True)
    return handler


def release_ws_connection(request: web.Request) -> None:
    """Give back the connection slot the middleware took for ``request`` (a WebSocket upgrade).

    For a handler marked with :func:`releases_ws_connection`: call it exactly once, in a ``finally``
    around the whole handler. It does nothing when no slot was taken (no security installed, or not
    an upgrade request).
    """
    sec = request.config_dict.get(SECURITY_KEY)
    if sec is not None and _is_websocket_upgrade(request):
        sec.connections.release(_client_address(request))


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
        response = _json(200, {"auth_required": required, "authenticated": True})
        if sec is not None:
            sec.set_login_cookie(request, response)
        return response
    return _json(200, {"auth_required": required, "authenticated": authed})


def install(app: web.Application, config: SecurityConfig, *, auth_route: bool = True) -> Security:
    """Protect ``app``: the middleware, the security-header signal, and ``GET/POST /api/auth``.

    Call it in the app factory, before the app starts. The request body limit is aiohttp's own:
    build the app with ``web.Application(client_max_size=config.max_body_bytes)``.

    Returns:
        The :class:`Security` now stored under ``app[SECURITY_KEY]`` (limiters and counters).
    """
    security = Security(config)
    app[SECURITY_KEY] = security
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
    wait = sec.ingest.take(_client_address(request), n_events)
    if wait <= 0:
        return None
    return sec.too_many(request, "ingest_rate_exceeded", wait,
                        f"at most {sec.config.ingest_events_per_second:g} events/s per address")


def ws_rate_guard(request: web.Request) -> WsRateGuard:
    """The message-rate guard for the WebSocket opened by ``request`` (no limit without security)."""
    return WsRateGuard(request.config_dict.get(SECURITY_KEY))


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access logger, with the value of any ``token`` query parameter shown as ``***``.

    Pass it to the runner: ``web.AppRunner(app, access_log_class=RedactingAccessLogger)``.
    """

    def log(self, request: Any, response: web.StreamResponse, time: float) -> None:
        url = request.rel_url
        if _TOKEN_PARAMETER in url.query:
            try:
                shown = [(k, "***" if k == _TOKEN_PARAMETER else v) for k, v in url.query.items()]
                request = request.clone(rel_url=url.with_query(shown))
            except Exception:
                request = request.clone(rel_url=url.with_query(None))
        super().log(request, response, time)
