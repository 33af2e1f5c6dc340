"""The ``/ws`` endpoint: the WebSocket handler and the messages clients send.

The handler upgrades the request, registers the client with the
:class:`~otel_dashboard.server.broadcast.Broadcaster` (which sends the snapshot and then the live stream),
reads the client's messages until it goes away, and unregisters it. :func:`handle_client_message`
validates one text message (``subscribe``, ``resume``, ``ping``) and acts on it through the
broadcaster; anything malformed gets ``{"type": "error", "message": ...}`` and the connection stays
up. See ``docs/server.md`` for the protocol.

The security layer (:mod:`otel_dashboard.server.security`) has checked the token, the Origin and the number
of connections from the client's address before the upgrade; here each message is counted against
the connection's rate (``SecurityConfig.ws_messages_per_second``), WebSocket PING and PONG frames
included (aiohttp's autoping is off, so they come here): a client over it is closed with 1008
"message rate exceeded". The message size limit is ``SecurityConfig.max_ws_message_bytes``. The
replies wait in the client's queue, which the broadcaster bounds in bytes
(``max_client_queue_bytes``, ``max_total_queue_bytes``): a client that sends and never reads is
closed with 1013 (:mod:`otel_dashboard.server.broadcast.slow`).
The handler gives the connection's slot back itself when it ends, and answers its own failures, so
that neither middleware keeps a frame waiting for each of thousands of connections.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from otel_dashboard.model.filters import FilterError, parse_filter_lists
from otel_dashboard.server.broadcast import BROADCASTER_KEY, Broadcaster, Client
from otel_dashboard.server.broadcast.transport import is_full
from otel_dashboard.server.http_api import answers_own_errors, error_answer, json_error, short_repr
from otel_dashboard.server.security import (
    SECURITY_KEY,
    WS_CLOSE_POLICY_VIOLATION,
    release_ws_connection,
    releases_ws_connection,
    ws_rate_guard,
)

__all__ = ["handle_client_message", "websocket_handler"]

logger = logging.getLogger(__name__)

# aiohttp closes the connection (1009) for frames above its own limit; ours answers with an error.
_AIOHTTP_MIN_MSG_SIZE = 1024 * 1024


@answers_own_errors
@releases_ws_connection
async def websocket_handler(request: web.Request) -> web.StreamResponse:
    """``GET /ws``: the live event stream.

    It answers its own failures and gives its connection slot back itself, so that the error and
    security middlewares hand it to aiohttp instead of each holding a frame for the life of each
    connection (memory per client, by the thousand); the answers are the error middleware's.
    """
    try:
        broadcaster = request.app[BROADCASTER_KEY]
        options = broadcaster.options
        if broadcaster.closing:
            return json_error(503, "server shutting down")
        security = request.app.get(SECURITY_KEY)
        max_message_bytes = (security.config.max_ws_message_bytes if security is not None
                             else options.max_message_bytes)
        ws = web.WebSocketResponse(
            # The broadcaster's one heartbeat sweep pings every client (aiohttp's keeps a timer per
            # connection); pings and pongs come to this handler, any message being a sign of life.
            heartbeat=None,
            autoping=False,
            max_msg_size=max(_AIOHTTP_MIN_MSG_SIZE, 2 * max_message_bytes),
            compress=options.compress,
        )
        if not ws.can_prepare(request).ok:
            return json_error(400, "expected a WebSocket upgrade request")
        try:
            await ws.prepare(request)
        except ConnectionError:
            return ws
        # The handshake's headers are on the wire; the response would otherwise keep them (with the
        # security headers, ~1.4 KB) for as long as the connection lives.
        ws.headers.clear()
        if broadcaster.closing:
            with suppress(Exception):
                await asyncio.wait_for(
                    ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown"),
                    options.send_timeout_seconds,
                )
            return ws
        client = await broadcaster.register(ws, request)
        guard = ws_rate_guard(request)
        loop = asyncio.get_running_loop()
        try:
            async for msg in ws:
                client.seen(loop.time())
                # Every frame aiohttp hands us counts, PING and PONG included: with autoping off
                # they come here, and a PING flood would otherwise cost a pong each for free.
                if not guard.allow():
                    guard.note_exceeded()
                    # The broadcaster's close: it stops the client's writer first, and aborts the
                    # connection if the close frame cannot go out within the send timeout.
                    await broadcaster.close_client(client, WS_CLOSE_POLICY_VIOLATION, "message rate exceeded")
                    break
                if msg.type is WSMsgType.PING:
                    await _answer_ping(client, msg.data)
                    continue
                if msg.type is WSMsgType.PONG:
                    continue
                if client.closing:
                    continue
                if msg.type is WSMsgType.TEXT:
                    try:
                        handle_client_message(broadcaster, client, msg.data)
                    except Exception:
                        logger.exception("dashboard client %s: handling a message failed", client.id)
                        broadcaster.send_error(client, "internal error")
                elif msg.type is WSMsgType.BINARY:
                    broadcaster.send_error(client, "binary messages are not supported; send JSON text")
                elif msg.type is WSMsgType.ERROR:
                    logger.debug("dashboard client %s: %s", client.id, ws.exception())
                    break
            await broadcaster.wait_closed(client)  # a slow-client close: let its handshake finish
        except ConnectionError:
            pass
        finally:
            broadcaster.unregister(client)
        return ws
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception as exc:
        answer = error_answer(request, exc)
        if answer is None:
            raise
        return answer
    finally:
        release_ws_connection(request)


async def _answer_ping(client: Client, data: bytes) -> None:
    """Answer a WebSocket PING with its PONG, as aiohttp's autoping would.

    Not to a client that is closing, nor while its transport holds more than the high-water mark:
    a peer that does not read gets no pongs queued for it, and the handler does not wait on a drain
    (it keeps reading, and counting, the peer's frames).
    """
    transport = client.transport
    if client.closing or transport is None or transport.is_closing() or is_full(transport):
        return
    await client.ws.pong(data)


def handle_client_message(broadcaster: Broadcaster, client: Client, data: str) -> None:
    """Validate one text message from ``client`` and act on it (answers go to its queue)."""
    limit = broadcaster.options.max_message_bytes
    size = len(data)
    if size > limit or (not data.isascii() and len(data.encode("utf-8", "replace")) > limit):
        broadcaster.send_error(client, f"message too large: the limit is {limit} bytes")
        return
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        broadcaster.send_error(client, "malformed JSON")
        return
    if not isinstance(message, dict):
        broadcaster.send_error(client, "a message must be a JSON object")
        return
    mtype = message.get("type")
    if not isinstance(mtype, str):
        broadcaster.send_error(client, "a message needs a string field 'type'")
        return
    if mtype == "ping":
        broadcaster.pong(client)
    elif mtype == "subscribe":
        _handle_subscribe(broadcaster, client, message)
    elif mtype == "resume":
        _handle_resume(broadcaster, client, message)
    else:
        broadcaster.send_error(
            client, f"unknown message type {short_repr(mtype)}; expected subscribe, resume or ping"
        )


def _handle_subscribe(broadcaster: Broadcaster, client: Client, message: dict[str, Any]) -> None:
    try:
        lists = parse_filter_lists(message)
    except FilterError as exc:
        broadcaster.send_error(client, f"subscribe: {exc}")
        return
    broadcaster.set_filter(client, lists)


def _handle_resume(broadcaster: Broadcaster, client: Client, message: dict[str, Any]) -> None:
    after = message.get("after_seq")
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        broadcaster.send_error(client, "resume: after_seq must be an integer >= 0")
        return
    # until_seq: where an incomplete replay ended ("resumed" with "complete": false says it).
    until = message.get("until_seq")
    if until is not None and (not isinstance(until, int) or isinstance(until, bool) or until < 0):
        broadcaster.send_error(client, "resume: until_seq must be an integer >= 0 or absent")
        return
    broadcaster.resume(client, after, until)
