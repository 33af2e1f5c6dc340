"""The fence around aiohttp's internals: how the broadcaster's bytes reach a client's socket.

This is the only module of the server that reaches past aiohttp's public API. Two ways out:

**Direct** (the default). The flush pass writes each whole RFC 6455 frame (:mod:`.frames`) to the
connection's transport itself, synchronously: no task per client and no task switch per frame. That
relies on three things, all checked here:

1. ``request.transport`` is the transport aiohttp's own WebSocket writer writes to (checked per
   connection, :func:`is_direct_connection`, through the response's private ``_writer``);
2. aiohttp writes each uncompressed frame of its own (pings, pongs, the close frame) synchronously
   and whole, so frames never interleave (true of every aiohttp from 3.9 to 3.14, read from its
   source; not testable cheaply, which is why 1 is checked and the rest is fenced here);
3. while a transport is full, the protocol's private ``_drain_helper()`` (and, from aiohttp 3.11,
   ``writing_paused``) says when it has drained (:func:`wait_drained`; without ``writing_paused``
   the wait polls).

**Public** (the fallback). A task per client awaits aiohttp's public ``ws.send_frame`` (aiohttp 3.11
and later) or ``ws.send_str``, which own flow control, and heartbeat pings go through ``ws.ping()``
(:func:`send_text`, :func:`send_ping`). A client that negotiated permessage-deflate always takes
this path (aiohttp owns its compressor). Every client takes it when :func:`direct_write_problem`,
the feature test run once when the broadcaster starts, finds that this aiohttp's protocol lacks what
the direct path uses, or when a connection does not look as expected. The same log, cursors, caps and
slow-client policy apply; what it costs is a task per client and a task switch per frame.
"""

from __future__ import annotations

import asyncio
import inspect
from contextlib import suppress

from aiohttp import WSMsgType, web
from aiohttp.base_protocol import BaseProtocol

from otel_dashboard.server.broadcast.frames import PING_FRAME

__all__ = [
    "HIGH_WATER_BYTES",
    "direct_write_problem",
    "is_direct_connection",
    "is_full",
    "send_ping",
    "send_text",
    "wait_drained",
    "write_frame",
    "write_ping",
]

HIGH_WATER_BYTES = 64 * 1024
"""A direct client whose transport buffers more than this is not written to until it drains.

asyncio's default high-water mark: above it the transport has paused the protocol, and aiohttp's
drain waiter tells us when it is below the low-water mark again."""

# The poll interval for a transport over our mark whose protocol does not say it is paused (custom
# limits, or an aiohttp older than 3.11 without writing_paused).
_DRAIN_POLL_SECONDS = 0.05

# aiohttp 3.11 added the public send_frame (bytes in, no str round trip); older ones have send_str.
_HAS_SEND_FRAME = callable(getattr(web.WebSocketResponse, "send_frame", None))


def direct_write_problem() -> str | None:
    """The feature test: why this aiohttp's protocol cannot serve direct writes, or None if it can.

    Run once when the broadcaster starts; the answer holds for the process (one aiohttp).
    """
    helper = getattr(BaseProtocol, "_drain_helper", None)
    if helper is None or not inspect.iscoroutinefunction(helper):
        return f"{BaseProtocol.__module__}.{BaseProtocol.__qualname__} has no coroutine _drain_helper"
    return None


def is_direct_connection(ws: web.WebSocketResponse, transport: asyncio.Transport | None) -> bool:
    """Whether this prepared connection's frames may be written to ``transport`` directly.

    Not with permessage-deflate (aiohttp's compressor must see every frame), and only when aiohttp's
    own writer writes to that same transport and its protocol can wait for a drain.
    """
    if ws.compress or transport is None:
        return False
    protocol = transport.get_protocol()
    writer = getattr(ws, "_writer", None)
    return getattr(writer, "transport", None) is transport and inspect.iscoroutinefunction(
        getattr(protocol, "_drain_helper", None)
    )


# --------------------------------------------------------------------------- direct
def is_full(transport: asyncio.Transport) -> bool:
    """Whether ``transport`` holds more than :data:`HIGH_WATER_BYTES` not yet sent."""
    return transport.get_write_buffer_size() > HIGH_WATER_BYTES


def write_frame(transport: asyncio.Transport, frame: bytes) -> bool:
    """Write one whole frame (header and payload in one ``bytes``: frames never interleave).

    Returns:
        True when the transport is now over the mark: stop writing to it until :func:`wait_drained`.
    """
    transport.write(frame)
    return transport.get_write_buffer_size() > HIGH_WATER_BYTES


def write_ping(transport: asyncio.Transport) -> None:
    """Write an empty PING frame, whole, as aiohttp writes its own (control frames are never compressed)."""
    transport.write(PING_FRAME)


async def wait_drained(transport: asyncio.Transport | None) -> None:
    """Wait until a full transport is no longer over the mark, or is closing.

    Raises:
        ConnectionError: the connection was lost meanwhile.
    """
    if transport is None:
        return
    protocol = transport.get_protocol()
    # A loop, not one wait: the caller's "full since" time (what the send watchdog reads) must not
    # restart while the transport stays full.
    while transport.get_write_buffer_size() > HIGH_WATER_BYTES and not transport.is_closing():
        if getattr(protocol, "writing_paused", False):
            # What aiohttp's own writer awaits. Never cancelled but at cleanup: the future is shared
            # with aiohttp's drain in ws.close().
            await protocol._drain_helper()  # type: ignore[attr-defined]
        else:  # asyncio did not pause the protocol (custom limits), or it cannot say (aiohttp < 3.11)
            await asyncio.sleep(_DRAIN_POLL_SECONDS)


# --------------------------------------------------------------------------- public (fallback)
async def send_text(ws: web.WebSocketResponse, payload: bytes) -> None:
    """Send ``payload`` (UTF-8 JSON) as one TEXT message through aiohttp, which waits while the peer
    is not reading.

    Raises:
        ConnectionError: the peer went away.
    """
    if _HAS_SEND_FRAME:
        await ws.send_frame(payload, WSMsgType.TEXT)
    else:
        await ws.send_str(payload.decode())


async def send_ping(ws: web.WebSocketResponse) -> None:
    """Send an empty PING through aiohttp; a connection that is going away is the heartbeat's business."""
    with suppress(ConnectionError, RuntimeError):  # RuntimeError: aiohttp's "closing" on old versions
        await ws.ping()
