"""The task writer: a client served by a task of its own that sends through aiohttp's public API.

Two kinds of client get one (see :mod:`.transport`): a client that negotiated permessage-deflate
(aiohttp owns its compressor, so every frame must go through it), and every client when the feature
test found that this aiohttp cannot serve direct writes. The task reads the same log as the flush
pass (:meth:`~.flush.Flusher.next_message`), so ordering, caps, filters and the slow-client policy
are the same; the pass only wakes it.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSCloseCode

from otel_dashboard.server.broadcast.clients import Client
from otel_dashboard.server.broadcast.flush import Flusher
from otel_dashboard.server.broadcast.log import EventLog
from otel_dashboard.server.broadcast.replay import fetch_page, needs_page, replay_page
from otel_dashboard.server.broadcast.slow import SlowClients
from otel_dashboard.server.broadcast.transport import send_text
from otel_dashboard.state.dashboard import DashboardState

__all__ = ["TaskWriters"]

logger = logging.getLogger(__name__)


class TaskWriters:
    """Starts and runs the writer tasks of one broadcaster.

    Args:
        state: the state (replay pages are read from its store).
        log: the shared log.
        flusher: what composes the next message of a client.
        slow: the slow-client policy (a failing writer closes its client).
    """

    def __init__(self, state: DashboardState, log: EventLog, flusher: Flusher, slow: SlowClients) -> None:
        self._state = state
        self._log = log
        self._flusher = flusher
        self._slow = slow
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, client: Client, snapshot: bytes) -> None:
        """Give ``client`` a writer task that sends ``snapshot`` first."""
        task = asyncio.ensure_future(self._run(client, snapshot))
        client.writer_task = task
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send(self, client: Client, data: bytes) -> None:
        # No wait_for per frame: a send returns without suspending unless the transport is paused
        # (peer not reading); the slow-client watchdog closes clients stuck in a send too long.
        client.send_started = asyncio.get_running_loop().time()
        try:
            await send_text(client.ws, data)
        finally:
            client.send_started = None

    async def _run(self, client: Client, snapshot: bytes) -> None:
        """The snapshot, then replay pages, control messages and frames, until the client closes."""
        loop = asyncio.get_running_loop()
        try:
            await self._send(client, snapshot)
            while not client.closing:
                replay = client.replay
                if replay is not None:
                    if needs_page(replay):
                        await fetch_page(self._state, replay)
                    data = replay_page(self._state, client, replay)
                else:
                    data = self._flusher.next_message(client, self._log.end, wire=False)
                    if data is None:
                        waiter = loop.create_future()
                        client.waiter = waiter
                        try:
                            await waiter
                        finally:
                            client.waiter = None
                        continue
                if data is not None:
                    await self._send(client, data)
        except ConnectionError:
            # The peer went away (ClientConnectionResetError & co.); the handler cleans up.
            client.closing = True
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("dashboard client %s: writer failed", client.id)
            self._slow.kick(client, WSCloseCode.INTERNAL_ERROR, "internal error")
