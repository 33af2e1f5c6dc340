"""The flush pass: one walk over the clients that are behind, per loop turn, never on a timer.

When something is appended to the log, ONE pass is scheduled with ``loop.call_soon``. It visits the
clients (all of them when the log grew, else only those flagged since: a control message, a drained
transport, a replay page) and gives each one frame made of everything between its cursor and the
log end, up to the frame caps. Batching is therefore adaptive: an idle server sends one event per
frame, a busy one whatever arrived while the previous pass ran. Frames are cached per pass by
(start, stop, filter), so the clients at the same cursor share one ``bytes`` object.

A direct client is written to by the pass itself (:mod:`.transport`); a client whose transport holds
more than the high-water mark is skipped (its cursor lags) until the transport drains. A client with
a task writer (:mod:`.task_writer`) is only woken: its task reads the same log with
:meth:`Flusher.next_message`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import WSCloseCode

from otel_dashboard.model.events import DashboardEvent
from otel_dashboard.server.broadcast.clients import Client, ClientRegistry
from otel_dashboard.server.broadcast.control import add_control, gap_message, pop_control
from otel_dashboard.server.broadcast.frames import text_frame
from otel_dashboard.server.broadcast.log import EventLog, Lost
from otel_dashboard.server.broadcast.replay import Replay, fetch_page, needs_page, replay_page
from otel_dashboard.server.broadcast.slow import SlowClients
from otel_dashboard.server.broadcast.transport import is_full, wait_drained, write_frame
from otel_dashboard.server.options import ServerOptions
from otel_dashboard.state.dashboard import DashboardState

__all__ = ["Flusher"]

logger = logging.getLogger(__name__)


class Flusher:
    """Schedules and runs the flush passes, and paces the direct clients whose transport is full.

    Args:
        log: the shared log.
        clients: the connected clients.
        slow: the slow-client policy (overflows and closes).
        state: the state (replay pages are read from its store).
        options: ``client_queue_size``, the lag beyond which a client overflows.
        spawn: runs a coroutine as a task the broadcaster cancels at cleanup.
    """

    def __init__(
        self,
        log: EventLog,
        clients: ClientRegistry,
        slow: SlowClients,
        state: DashboardState,
        options: ServerOptions,
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
    ) -> None:
        self._log = log
        self._clients = clients
        self._slow = slow
        self._state = state
        self._options = options
        self._spawn = spawn
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._flushed_end = 0  # the log end at the last full pass; -1 asks for a full pass
        self._dirty: set[Client] = set()  # clients the next pass visits even if the log did not grow

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def clear(self) -> None:
        """Forget every client and frame (the server is being torn down)."""
        self._dirty.clear()
        self._log.forget_frames()

    def forget(self, client: Client) -> None:
        """``client`` is gone: the next pass need not visit it."""
        self._dirty.discard(client)

    # ------------------------------------------------------------ into the log (loop thread)
    def append(self, event: DashboardEvent) -> None:
        """Fan one event out: serialize it once, append it to the log, make sure a pass follows."""
        seq = event.seq
        # Nobody would read it (a client joining later starts at the log end), and an event
        # without a seq is never sent (seq <= min_seq for every client).
        if not seq or not self._clients:
            return
        self._log.append(event, seq)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)  # type: ignore[union-attr]

    def append_lost(self, lost: Lost) -> None:
        """Mark a run of events lost in the hand-off (each client is told with a gap)."""
        if not self._clients:
            return
        self._log.append_lost(lost)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)  # type: ignore[union-attr]

    def schedule(self, client: Client, *, full: bool = False) -> None:
        """Have the next pass visit ``client`` (a control message, a drained transport, a replay).

        Args:
            client: the client.
            full: visit every client too (this one may have been the slowest, holding the log).
        """
        if full:
            self._flushed_end = -1
        self._dirty.add(client)
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def send_control(self, client: Client, kind: int, data: bytes) -> None:
        """Send a control message to ``client`` in order with its events (at once if nothing waits).

        One that has to wait is counted against the byte caps (:meth:`.SlowClients.check_queue`):
        a client over them is closed (1013) and the message is not sent.
        """
        if client.closing:
            return
        end = self._log.end
        if client.writer_task is not None:
            add_control(client, end, kind, data)
            self._slow.check_queue(client)  # the writer may be blocked in a send: bytes wait here
            client.wake()
            return
        transport = client.transport
        if (client.cursor >= end and client.controls is None and client.replay is None
                and client.send_started is None and transport is not None
                and not transport.is_closing() and not client.ws.closed
                and not is_full(transport)):
            # Nothing is waiting for it: no need to wait for a pass.
            if write_frame(transport, text_frame(data)):
                self.blocked(client)
            return
        add_control(client, end, kind, data)
        self._slow.check_queue(client)
        if not client.closing:
            self.schedule(client)

    # ------------------------------------------------------------ the pass (loop thread)
    def _flush(self) -> None:
        """Give every client that is behind what it is missing (see the module docstring)."""
        self._scheduled = False
        log = self._log
        log.forget_frames()
        end = log.end
        full = end != self._flushed_end
        if full:
            self._flushed_end = end
            clients: tuple[Client, ...] | list[Client] = self._clients.all
        else:
            clients = list(self._dirty)
        self._dirty.clear()
        limit = self._options.client_queue_size
        lowest = end
        again = False
        for client in clients:
            if client.closing:
                continue
            if client.cursor >= end and client.controls is None and client.replay is None:
                continue  # up to date (the common case for a dirty-only pass)
            try:
                log.skip_seen(client, end)
                while end - client.cursor > limit and not client.closing:
                    self._slow.overflow(client, end)
                if client.closing:
                    continue
                if client.writer_task is not None:
                    if client.cursor < end:
                        client.wake()
                elif self._serve(client, end):
                    self._dirty.add(client)
                    again = True
            except Exception:
                logger.exception("dashboard client %s: sending failed", client.id)
                self._slow.kick(client, WSCloseCode.INTERNAL_ERROR, "internal error")
                continue
            if client.cursor < lowest:
                lowest = client.cursor
        if full:
            log.trim(lowest)
        log.forget_frames()  # the frames' bytes now live in the transports (or are gone)
        # Another pass: a client has more to do (a replay page), or asked for a full pass (-1).
        if (again or self._flushed_end < 0) and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)  # type: ignore[union-attr]

    def _serve(self, client: Client, end: int) -> bool:
        """Write ``client``'s missing frames to its transport; True if it needs another pass."""
        if client.send_started is not None:  # full: the drain wait puts it back in a pass
            return False
        transport = client.transport
        if transport is None or transport.is_closing() or client.ws.closed:
            # Gone or closing (the close frame may be out): the handler unregisters it.
            client.closing = True
            return False
        if is_full(transport):
            self.blocked(client)
            return False
        replay = client.replay
        if replay is not None:
            if needs_page(replay):
                # The store is read off the loop; the fetch puts the client back in a pass.
                if not replay.fetching:
                    replay.fetching = True
                    self._spawn(self._fetch(client, replay))
                return False
            # One page per pass: a long replay must not hold the loop (or the other clients).
            data = replay_page(self._state, client, replay)
            if data is not None and write_frame(transport, text_frame(data)):
                self.blocked(client)
                return False
            if client.replay is not None:
                return True
            self._flushed_end = -1  # the replay is over: the next pass trims behind this client too
        while True:
            data = self.next_message(client, end, wire=True)
            if data is None:
                return False
            if write_frame(transport, data):
                self.blocked(client)
                return False
            if client.cursor >= end and client.controls is None:
                return False

    async def _fetch(self, client: Client, replay: Replay) -> None:
        try:
            await fetch_page(self._state, replay)
        except Exception:
            logger.exception("dashboard client %s: reading the history for its resume failed", client.id)
            self._slow.kick(client, WSCloseCode.INTERNAL_ERROR, "internal error")
            return
        finally:
            replay.fetching = False
        if not client.closing:
            self.schedule(client)

    def next_message(self, client: Client, end: int, *, wire: bool) -> bytes | None:
        """The next control message or events frame for ``client`` (advancing its cursor).

        Args:
            client: the client.
            end: the log end to read up to.
            wire: True for a whole WebSocket frame (header + payload), False for the payload.

        Returns:
            The bytes to send, or None when the client is up to date.
        """
        log = self._log
        while True:
            cursor = client.cursor
            controls = client.controls
            stop = end
            if controls:
                position = controls[0][0]
                if position <= cursor:
                    data = pop_control(client)
                    return text_frame(data) if wire else data
                stop = position
            if cursor >= stop:
                return None
            index = cursor - log.base
            if log.seqs[index] <= client.min_seq:
                log.skip_seen(client, stop)
                continue
            if log.payloads[index] is None:  # a hand-off loss, told to each client its own way
                client.cursor = cursor + 1
                lost: Lost = log.items[index]  # type: ignore[assignment]
                data = gap_message(max(lost.first, client.min_seq + 1), lost.last, "handoff_overflow")
                return text_frame(data) if wire else data
            frame = log.frame(cursor, stop, client)
            client.cursor = frame.end
            if frame.count:
                client.sent_events += frame.count
                return frame.wire_bytes() if wire else frame.payload

    # ------------------------------------------------------------ backpressure (direct clients)
    def blocked(self, client: Client) -> None:
        """``client``'s transport is full: stop writing to it until it drains."""
        if client.send_started is None:
            client.send_started = self._loop.time()  # type: ignore[union-attr]
        if client.drain_task is None:
            client.drain_task = self._spawn(self._wait_drained(client))

    async def _wait_drained(self, client: Client) -> None:
        try:
            await wait_drained(client.transport)
        except ConnectionError:
            client.closing = True  # the peer went away; the handler unregisters it
            return
        finally:
            client.drain_task = None
        client.send_started = None
        if not client.closing:
            # A full pass, not only this client: it may have been the slowest, holding the log.
            self.schedule(client, full=True)
