"""The :class:`Broadcaster`: what the rest of the server sees of the fan-out to WebSocket clients.

It owns the clients, the log and the counters, starts and stops the background tasks, and puts the
parts together (the package docstring has the map). Everything except the state's subscribers
(:meth:`~.handoff.HandOff.submit`, :meth:`~.progress.RunProgress.submit`) runs on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from aiohttp import WSCloseCode, web

from otel_dashboard.model.events import DashboardEvent, format_timestamp, json_dumps
from otel_dashboard.model.filters import event_matches
from otel_dashboard.server.broadcast.clients import Client, ClientRegistry
from otel_dashboard.server.broadcast.control import CONTROL, clear_controls
from otel_dashboard.server.broadcast.counters import Counters
from otel_dashboard.server.broadcast.flush import Flusher
from otel_dashboard.server.broadcast.frames import EVENTS_SUFFIX, PROVISIONAL_PREFIX, text_frame
from otel_dashboard.server.broadcast.handoff import HandOff
from otel_dashboard.server.broadcast.heartbeat import heartbeat
from otel_dashboard.server.broadcast.log import EventLog
from otel_dashboard.server.broadcast.progress import RunProgress
from otel_dashboard.server.broadcast.replay import start_replay
from otel_dashboard.server.broadcast.slow import CLOSE_REASONS, SlowClients
from otel_dashboard.server.broadcast.task_writer import TaskWriters
from otel_dashboard.server.broadcast.transport import direct_write_problem, is_direct_connection, write_frame
from otel_dashboard.server.options import SERVER_VERSION, ServerOptions
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.store.base import EventQuery

__all__ = ["BROADCASTER_KEY", "Broadcaster"]

logger = logging.getLogger(__name__)

# At shutdown each client gets at most this long (or send_timeout_seconds) to take the close frame.
_SHUTDOWN_CLOSE_SECONDS = 2.0
# The longest "message" of an error reply, in characters.
_MAX_ERROR_CHARS = 300


class Broadcaster:
    """Fans state events out to the connected clients; owns the clients, the log and the drop counters.

    Args:
        state: the state whose events are broadcast (subscribed in :meth:`start`).
        options: the server's options (queue size, send timeout, overflow window, snapshot size).
    """

    def __init__(self, state: DashboardState, options: ServerOptions) -> None:
        self.state = state
        self.replica: str | None = None  # this server's name in a cluster (a broker's replica)
        self.options = options
        self.closing = False
        # Whether clients are written to directly (transport.py); decided by start()'s feature test.
        self.direct_writes = True
        self._clients = ClientRegistry()
        self._subscribed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.counters = Counters()
        self.drops = self.counters.drops
        self._log = EventLog()
        self._slow = SlowClients(self._log, self._clients, self.counters, options, self._spawn)
        self._flusher = Flusher(self._log, self._clients, self._slow, state, options, self._spawn)
        self._writers = TaskWriters(state, self._log, self._flusher, self._slow)
        self._handoff = HandOff(self._flusher.append, self._flusher.append_lost, self.counters)
        # run_progress: a path of its own beside the events (progress.py); no work per event.
        self._progress = RunProgress(state, self._clients, self._log, self._flusher)

    # ------------------------------------------------------------ lifecycle
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Subscribe to the state and start the send watchdog and the heartbeat (on the loop's thread)."""
        self._loop = loop
        problem = direct_write_problem()
        self.direct_writes = problem is None
        if problem is not None:
            logger.warning("dashboard clients are written to through aiohttp's send path: %s", problem)
        self.counters.restart_clock()
        self._handoff.start(loop)
        self._flusher.start(loop)
        self._progress.start(loop)
        self.state.subscribe(self._handoff.submit)
        self.state.subscribe_runs(self._progress.submit)
        self._subscribed = True
        self._spawn(self._slow.watchdog(self._clients, self.options.send_timeout_seconds))
        if self.options.heartbeat_seconds is not None:
            self._spawn(heartbeat(self._clients, self.options.heartbeat_seconds,
                                  direct=self.direct_writes, spawn=self._spawn))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def unsubscribe(self) -> None:
        """Stop receiving the state's events (idempotent)."""
        if self._subscribed:
            self.state.unsubscribe(self._handoff.submit)
            self.state.unsubscribe_runs(self._progress.submit)
            self._subscribed = False

    async def shutdown(self) -> None:
        """Close every client with 1001 GOING_AWAY (the app's on_shutdown)."""
        self.closing = True
        self.unsubscribe()
        clients = self._clients.all
        if clients:
            timeout = min(_SHUTDOWN_CLOSE_SECONDS, self.options.send_timeout_seconds)
            await asyncio.gather(
                *(self._slow.close(c, WSCloseCode.GOING_AWAY, "server shutdown", timeout) for c in clients),
                return_exceptions=True,
            )

    async def cleanup(self) -> None:
        """Cancel and await the watchdog, writers, drain waits and close tasks (the app's cleanup)."""
        self.closing = True
        self.unsubscribe()
        tasks = [*self._tasks, *self._writers.tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._handoff.clear()
        self._flusher.clear()
        self._progress.clear()
        self._log.trim(self._log.end)

    # ------------------------------------------------------------ clients
    async def register(self, ws: web.WebSocketResponse, request: web.Request) -> Client:
        """Snapshot + register + send the snapshot: nothing lost or doubled.

        The snapshot's seq and derived state are taken at once, together with the client's place
        in the log; its recent events are then read off the loop (the store's async read). Until
        the snapshot is sent the client is registered but held (as if a send were in progress), so
        the log keeps what arrives meanwhile and no frame can overtake the snapshot.
        """
        loop = self._loop
        assert loop is not None, "register() before start()"
        client = self._clients.new(ws, request)
        client.cursor = self._log.end
        client.last_seen = client.send_started = loop.time()
        self._clients.add(client)
        try:
            # No await before this call: its seq is captured here, with the cursor above.
            snapshot = await self.state.snapshot_async(recent_limit=self.options.history_size)
        finally:
            client.send_started = None
        client.min_seq = snapshot["seq"]
        data = json_dumps({
            "type": "snapshot",
            **snapshot,
            "server": {
                "name": self.options.name,
                "version": SERVER_VERSION,
                "stall_threshold_seconds": self.state.stall_threshold_seconds,
                **({"replica": self.replica} if self.replica is not None else {}),
            },
        })
        transport = client.transport
        if not (self.direct_writes and is_direct_connection(ws, transport)):
            # permessage-deflate (aiohttp owns the compressor) or aiohttp's send path: a writer task.
            self._writers.start(client, data)
        elif transport is not None and not transport.is_closing():
            full = write_frame(transport, text_frame(data))  # first: the hold kept everything else back
            if full:
                self._flusher.blocked(client)
            else:
                self._flusher.schedule(client)  # what arrived while the snapshot was read
        logger.debug("dashboard client %s connected from %s", client.id, client.remote)
        return client

    def unregister(self, client: Client) -> None:
        """Forget ``client`` (its handler ends); a writer task of its own is cancelled."""
        client.closing = True
        self._clients.remove(client)
        self._flusher.forget(client)
        self._progress.forget(client)
        clear_controls(client)
        client.replay = None
        if client.writer_task is not None:
            client.writer_task.cancel()
        logger.debug("dashboard client %s disconnected", client.id)

    async def close_client(self, client: Client, code: int, reason: str) -> None:
        """Close ``client``'s socket with ``code``, bounded by ``send_timeout_seconds``.

        Its writer task (if any) is stopped first, and the connection is aborted if the close frame
        cannot go out in time.
        """
        await self._slow.close(client, code, reason)

    async def wait_closed(self, client: Client) -> None:
        """Wait for a close of ``client`` that the server started (bounded by the close itself).

        For its handler, whose read loop ends as soon as the close starts: were it to return then,
        aiohttp would close the connection with the peer's messages unread, the kernel would answer
        with a reset, and the peer would lose the close frame (and its code). While the close runs,
        aiohttp reads and discards the peer's messages until its close frame.
        """
        task = client.close_task
        if task is not None and not task.done():
            await asyncio.wait({task})

    @property
    def clients(self) -> tuple[Client, ...]:
        """The connected clients (a tuple: safe to iterate while clients come and go)."""
        return self._clients.all

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def client_infos(self) -> list[dict[str, Any]]:
        """One row per connected client (for ``/stats``); ``queue_depth`` is its lag in events."""
        lag = self._log.lag
        return [c.info(lag(c)) for c in self._clients.all]

    def queue_depths(self) -> list[int]:
        """Each client's lag behind the log end, in entries (for the ``/metrics`` histogram)."""
        lag = self._log.lag
        return [lag(c) for c in self._clients.all]

    # ------------------------------------------------------------ messages to one client
    def send_control(self, client: Client, message: dict[str, Any]) -> None:
        """Send a control message to ``client``, in order with its events."""
        self._flusher.send_control(client, CONTROL, json_dumps(message))

    def send_error(self, client: Client, message: str) -> None:
        """Send ``{"type": "error", "message": ...}`` to ``client``.

        The message is cut to :data:`_MAX_ERROR_CHARS`: callers quote client input with
        ``short_repr``, and this keeps a reply to a hostile message small whatever the caller did.
        """
        if len(message) > _MAX_ERROR_CHARS:
            message = message[: _MAX_ERROR_CHARS - 3] + "..."
        self.send_control(client, {"type": "error", "message": message})

    def set_filter(self, client: Client, lists: dict[str, list[str]]) -> None:
        """Apply a validated subscribe filter (empty lists mean "all") and confirm it."""
        if any(lists.values()):
            client.filter = EventQuery(
                event_types=lists["event_types"] or None,
                severities=lists["severities"] or None,
                agents=lists["agents"] or None,
            )
            client.filter_key = (tuple(lists["event_types"]), tuple(lists["severities"]),
                                 tuple(lists["agents"]))
            client.filter_lists = lists
        else:
            client.filter = client.filter_key = client.filter_lists = None
        self.send_control(client, {"type": "subscribed", **lists})

    def pong(self, client: Client) -> None:
        """Answer a ``ping``."""
        self.send_control(client, {
            "type": "pong", "seq": self.state.last_seq, "timestamp": format_timestamp(),
        })

    def resume(self, client: Client, after: int, until: int | None = None) -> None:
        """Replay the stored events after ``after`` (up to ``until``) to ``client``, then continue live."""
        if client.closing:
            return
        start_replay(self.state, client, after, until=until, max_scanned_rows=self.options.max_scanned_rows)
        if client.writer_task is not None:
            client.wake()
        else:
            self._flusher.schedule(client)

    def send_provisional(self, events: list[DashboardEvent]) -> None:
        """Show events that have no ``seq`` yet (a cluster broker that cannot reach Redis) to the
        clients whose filter they pass: ``{"type": "events", "provisional": true, "events": [...]}``.
        The same events arrive again, numbered, once Redis is back (the page matches them by id)."""
        encoded = [(event, event.to_json_bytes()) for event in events]
        for client in self._clients.all:
            if client.closing:
                continue
            parts = [payload for event, payload in encoded if event_matches(client.filter, event)]
            if parts:
                self._flusher.send_control(
                    client, CONTROL, PROVISIONAL_PREFIX + b",".join(parts) + EVENTS_SUFFIX)

    # ------------------------------------------------------------ counters
    def events_per_second(self) -> float:
        """Events received, averaged over a sliding 10-second window."""
        return self.counters.events_per_second()

    def drops_by_reason(self) -> dict[str, int]:
        """Dropped events per reason, upstream (the state's count) included, and their total."""
        return self.counters.drops_by_reason(self.state.get_counters()["dropped_events"])

    def last_drop_time(self, total: int) -> float | None:
        """When (monotonic) the drop total last changed; ``total`` is the current one."""
        return self.counters.last_drop_time(total)

    def uptime_seconds(self) -> float:
        return self.counters.uptime_seconds()

    def slow_client_stats(self) -> dict[str, Any]:
        """``/stats`` → ``slow_clients``: clients closed (1013) per reason, and the bytes queued now.

        ``queued_bytes`` is every client's control messages plus their transports' unsent bytes as
        of the last watchdog tick (at most a second old).
        """
        closed = self.counters.closed_clients
        queued = self._clients.queued
        return {
            "closed": {reason: closed[reason] for reason in CLOSE_REASONS},
            "queued_bytes": queued.total,
            "max_client_queue_bytes": self.options.max_client_queue_bytes,
            "max_total_queue_bytes": self.options.max_total_queue_bytes,
        }

    def run_progress_stats(self) -> dict[str, int]:
        """``run_progress`` counters: messages sent, deferrals of lagging clients, ids dropped."""
        return self._progress.stats()


BROADCASTER_KEY = web.AppKey("otel_dashboard_hub", Broadcaster)
