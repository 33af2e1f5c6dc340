"""What a WebSocket connection may do: its message rate (:class:`WsRateGuard`), and the handler
that gives its connection slot back itself (:func:`releases_ws_connection`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from otel_dashboard.server.security.guard import (
    SECURITY_KEY,
    WS_CLOSE_POLICY_VIOLATION,
    Security,
    client_address,
    is_websocket_upgrade,
)
from otel_dashboard.server.security.ratelimit import (
    TokenBucket,
)


class WsRateGuard:
    """Per-connection WebSocket message rate (``ws_messages_per_second``, burst ``ws_message_burst``).

    Every frame the handler reads counts: text and binary messages, and PING and PONG control frames
    (the handler turns aiohttp's autoping off so that they reach it; each PING costs the server a
    PONG, so a PING flood is a message flood).

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
        """Count one message (or PING/PONG frame); False when the connection is over its rate."""
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


RELEASES_WS_CONNECTION = "_otel_dashboard_releases_ws_connection"

_H = TypeVar("_H", bound=Callable[..., Any])


def releases_ws_connection(handler: _H) -> _H:
    """Mark a WebSocket handler that calls :func:`release_ws_connection` when its connection ends.

    The middleware then hands it to aiohttp as it is, instead of awaiting it in a frame that waits
    to give the connection slot back: for connections held by the thousand for hours, that frame
    (~300 bytes each) is memory and nothing else.
    """
    setattr(handler, RELEASES_WS_CONNECTION, True)
    return handler


def release_ws_connection(request: web.Request) -> None:
    """Give back the connection slot the middleware took for ``request`` (a WebSocket upgrade).

    For a handler marked with :func:`releases_ws_connection`: call it exactly once, in a ``finally``
    around the whole handler. It does nothing when no slot was taken (no security installed, or not
    an upgrade request).
    """
    sec = request.config_dict.get(SECURITY_KEY)
    if sec is not None and is_websocket_upgrade(request):
        sec.connections.release(client_address(request))


def ws_rate_guard(request: web.Request) -> WsRateGuard:
    """The message-rate guard for the WebSocket opened by ``request`` (no limit without security)."""
    return WsRateGuard(request.config_dict.get(SECURITY_KEY))


