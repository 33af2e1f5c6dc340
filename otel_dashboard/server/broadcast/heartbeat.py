"""The heartbeat: one sweep pings every client that has been silent, and drops one that does not answer.

aiohttp's own heartbeat does the same with a timer (and a context copy) per connection; one sweep for
all of them costs no memory per client. The ``/ws`` handler turns aiohttp's heartbeat off and tells
the client of every message it receives (:meth:`~.clients.Client.seen`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from otel_dashboard.server.broadcast.clients import ClientRegistry
from otel_dashboard.server.broadcast.transport import send_ping, write_ping

__all__ = ["heartbeat"]

logger = logging.getLogger(__name__)


async def heartbeat(
    clients: ClientRegistry,
    period: float,
    *,
    direct: bool,
    spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
) -> None:
    """Ping every client silent for ``period``; drop one that does not answer in ``period / 2``.

    A dead peer's connection is aborted, so its handler's read ends and it is unregistered; the
    client sees 1006.

    Args:
        clients: the connected clients.
        period: ``heartbeat_seconds``.
        direct: write the pings straight to the transports (else through aiohttp, see transport.py).
        spawn: runs a coroutine as a task the broadcaster cancels at cleanup (the fallback's pings).
    """
    tick = min(1.0, period / 4)
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(tick)
        now = loop.time()
        for client in clients.all:
            if client.closing:
                continue
            transport = client.transport
            if transport is None or transport.is_closing() or client.ws.closed:
                continue
            ping_sent = client.ping_sent
            if ping_sent is None:
                if now - client.last_seen >= period:
                    if direct:
                        write_ping(transport)
                    else:
                        spawn(send_ping(client.ws))
                    client.ping_sent = now
            elif now - ping_sent >= period / 2:
                logger.debug("dashboard client %s did not answer a ping in %g s", client.id, period / 2)
                client.closing = True
                transport.abort()
