"""The security checks themselves (:class:`Security`): token, login cookie, Origin and Host, CORS,
headers, limiters and counters; and the small request helpers the middleware and handlers share."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections import Counter
from typing import Any

from aiohttp import hdrs, web

from otel_dashboard.server.security.config import (
    COOKIE_NAME,
    SecurityConfig,
    is_loopback_host,
    origin_string,
    parse_host_header,
    parse_origin,
)
from otel_dashboard.server.security.connections import HttpConnectionTracker
from otel_dashboard.server.security.ratelimit import (
    ConnectionLimiter,
    IngestRateLimiter,
    retry_after_header,
)

logger = logging.getLogger(__name__)


#: Close code for a WebSocket client that broke a limit (RFC 6455 "policy violation").
WS_CLOSE_POLICY_VIOLATION = 1008
#: Path of the small endpoint the page uses to learn whether it must ask for the token.
AUTH_PATH = "/api/auth"
#: Routes (as registered, ``resource.canonical``) served without a token: they hold no data.
PUBLIC_ROUTES = frozenset({"/", "/health", "/dashboard", "/dashboard/", AUTH_PATH})
PUBLIC_PREFIX = "/static"
#: Routes where ``?token=`` logs the browser in (cookie + redirect to ``/dashboard``).
LOGIN_ROUTES = frozenset({"/", "/dashboard", "/dashboard/"})
#: Ingest routes (POST): checked against the per-address events-per-second bucket.
INGEST_ROUTES = frozenset({"/api/events", "/v1/traces", "/v1/metrics", "/v1/logs"})
#: Routes whose handler answers an oversized body itself: the OTLP receiver's 413 is a google.rpc.Status
#: in the request's encoding, as OTLP/HTTP asks. The handler checks ``Content-Length`` before reading.
OWN_BODY_LIMIT_ROUTES = frozenset({"/v1/traces", "/v1/metrics", "/v1/logs"})
TOKEN_PARAMETER = "token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_CORS_METHODS = "GET, POST"
_CORS_HEADERS = "Authorization, Content-Type, Content-Encoding"
_CORS_MAX_AGE = "600"
_COOKIE_MAX_AGE = 7 * 24 * 3600
WS_RETRY_AFTER_SECONDS = 5.0
_HSTS = "max-age=31536000"
_LOG_EVERY_SECONDS = 60.0

#: The page's Content-Security-Policy: same-origin files only, no inline script or style.
PAGE_CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: Every other answer (JSON, scripts, styles) is never a document: it may load nothing.
_OTHER_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def json_answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(
        status=status, body=json.dumps(body).encode(), content_type="application/json", headers=headers
    )
    response.headers[hdrs.CACHE_CONTROL] = "no-store"
    return response


def client_address(request: web.Request) -> str:
    return request.remote or ""


def route_key(request: web.Request) -> str | None:
    """The matched route as registered (``/static/{path}``), or None when nothing matched (404/405).

    Decisions use the route aiohttp will actually dispatch to, never a re-parse of the path, so no
    spelling of a URL (``/static/%2e%2e/api/events``, ``//``) can reach a handler by a public name.
    """
    match_info = request.match_info
    resource = match_info.route.resource if match_info is not None else None
    return None if resource is None else resource.canonical


def is_public(route: str | None) -> bool:
    if route is None:
        return False
    return route in PUBLIC_ROUTES or route == PUBLIC_PREFIX or route.startswith(PUBLIC_PREFIX + "/")


def is_websocket_upgrade(request: web.Request) -> bool:
    return "websocket" in request.headers.get(hdrs.UPGRADE, "").lower()


def same_host(origin: tuple[str, str, int], host_header: str | None) -> bool:
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
        self.http_connections = HttpConnectionTracker(
            header_timeout_seconds=config.header_timeout_seconds,
            keepalive_timeout_seconds=config.keepalive_timeout_seconds,
            max_per_address=config.max_http_connections_per_ip,
            max_total=config.max_http_connections,
        )
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
        found.extend(request.rel_url.query.getall(TOKEN_PARAMETER, ()))
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
        return self.cors_allowed(origin) or same_host(parsed, host_header)

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
        """Rejections by reason, the open WebSocket and HTTP connections and the HTTP connections
        closed for their deadlines or the caps (for ``/stats`` and ``/metrics``)."""
        return {**self.counters, **self.http_connections.stats(),
                "open_websocket_connections": self.connections.total}

    def unauthorized(self, request: web.Request) -> web.Response:
        wrong = bool(self._presented_tokens(request))
        self.note("unauthorized", request)
        detail = ("the token is wrong" if wrong
                  else "a token is required: send 'Authorization: Bearer <token>' or log in at /dashboard")
        challenge = 'Bearer realm="otel-dashboard"' + (', error="invalid_token"' if wrong else "")
        return json_answer(401, {"error": "unauthorized", "detail": detail},
                     headers={hdrs.WWW_AUTHENTICATE: challenge})

    def too_many(self, request: web.Request, reason: str, seconds: float, detail: str) -> web.Response:
        self.note(reason, request)
        return json_answer(429, {"error": "rate limit exceeded", "detail": detail,
                           "retry_after_seconds": round(seconds, 3)},
                     headers={hdrs.RETRY_AFTER: retry_after_header(seconds)})

    def preflight(self, request: web.Request, origin: str) -> web.Response:
        requested = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_METHOD, "").strip().upper()
        if not self.cors_allowed(origin):
            self.note("cors_preflight_refused", request)
            return json_answer(403, {"error": "cross-origin request not allowed",
                               "detail": "this origin is not in --allowed-origin"})
        if requested not in ("GET", "HEAD", "POST"):
            self.note("cors_preflight_refused", request)
            return json_answer(403, {"error": "cross-origin request not allowed",
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
        candidates = request.rel_url.query.getall(TOKEN_PARAMETER, ())
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
        # Data is never cached (a shared machine's browser cache, a proxy): every answer but the page
        # and its assets, which set their own (no-cache: revalidated, never stale).
        headers.setdefault(hdrs.CACHE_CONTROL, "no-store")
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



SECURITY_KEY = web.AppKey("otel_dashboard_security", Security)
