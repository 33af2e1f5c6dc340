"""The client model: one connected WebSocket as the broadcaster sees it, and the set of them.

A :class:`Client` is a cursor into the broadcaster's log plus what it needs to be written to. Fields
that most clients never use (filter, pending control messages, replay, tasks) stay None, so an idle
client costs this object and nothing more: thousands of them are the normal case.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from otel_dashboard.server.broadcast.control import QueuedBytes

if TYPE_CHECKING:
    from otel_dashboard.server.broadcast.replay import Replay
    from otel_dashboard.store.base import EventQuery

__all__ = ["Client", "ClientRegistry"]

_NO_FILTER_LISTS: dict[str, list[str]] = {"event_types": [], "severities": [], "agents": []}


class Client:
    """One connected WebSocket: its cursor into the broadcaster's log, filter and counters.

    Args:
        client_id: the id shown in ``/stats`` and the logs.
        ws: the prepared WebSocket.
        request: the upgrade request (its transport is the connection's).
        queued: the broadcaster's count of control bytes queued for all its clients (a count of
            this client's own when None).
    """

    __slots__ = (
        "close_task",
        "closing",
        "connected_at",
        "control_bytes",
        "controls",
        "cursor",
        "drain_task",
        "dropped_events",
        "filter",
        "filter_key",
        "filter_lists",
        "id",
        "last_overflow",
        "last_seen",
        "min_seq",
        "ping_sent",
        "queued",
        "replay",
        "request",
        "send_started",
        "sent_events",
        "transport",
        "waiter",
        "writer_task",
        "ws",
    )

    def __init__(self, client_id: int, ws: web.WebSocketResponse, request: web.Request,
                 queued: QueuedBytes | None = None) -> None:
        self.id = client_id
        self.ws = ws
        self.request = request
        self.transport: asyncio.Transport | None = request.transport
        self.cursor = 0  # the log position of the next entry this client has not been sent
        self.min_seq = 0  # events with seq <= min_seq are never sent (snapshot / resume)
        # Control messages (kind, bytes) not sent yet, each after the log entries before its
        # position: deque[(position, kind, bytes)], None when empty (see control.py).
        self.controls: deque[tuple[int, int, bytes]] | None = None
        self.control_bytes = 0  # the bytes of those messages (control.py keeps it exact)
        self.queued = queued if queued is not None else QueuedBytes()
        self.filter: EventQuery | None = None
        self.filter_key: tuple[tuple[str, ...], ...] | None = None  # frame-cache key of the filter
        self.filter_lists: dict[str, list[str]] | None = None  # None: everything
        self.replay: Replay | None = None
        # Loop time since when the client's transport is full (direct) or its send is blocked
        # (task writer); the watchdog closes it past send_timeout_seconds.
        self.send_started: float | None = None
        self.drain_task: asyncio.Task[None] | None = None  # direct: waiting for a full transport
        # A task writer (permessage-deflate, or aiohttp's public send path): sends via aiohttp.
        self.writer_task: asyncio.Task[None] | None = None
        self.waiter: asyncio.Future[None] | None = None  # task writer only: the idle writer's wake-up
        self.closing = False
        self.close_task: asyncio.Task[None] | None = None  # a close the server started (slow.py)
        self.last_overflow: float | None = None
        # The heartbeat (heartbeat.py): loop time of the last message from the peer, and of the
        # ping it has not answered yet.
        self.last_seen = 0.0
        self.ping_sent: float | None = None
        self.sent_events = 0
        self.dropped_events = 0
        self.connected_at = time.monotonic()

    @property
    def remote(self) -> str | None:
        """The peer's address (read from the request when asked, not kept per client)."""
        return self.request.remote

    def seen(self, now: float) -> None:
        """The peer sent something (a message, a ping, a pong): it is alive."""
        self.last_seen = now
        self.ping_sent = None

    def wake(self) -> None:
        """Wake a task writer that is idle (it has something to send)."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def queued_bytes(self) -> int:
        """Bytes queued for this client alone: its control messages and its transport's unsent bytes.

        The events it lags behind are not counted: they sit once in the shared log, whoever waits
        for them, and ``client_queue_size`` bounds that lag.
        """
        transport = self.transport
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        return self.control_bytes + buffered

    def info(self, queue_depth: int) -> dict[str, Any]:
        """The client's row in ``/stats``; ``queue_depth`` is its lag in log entries."""
        lists = self.filter_lists or _NO_FILTER_LISTS
        return {
            "id": self.id,
            "remote": self.remote,
            "queue_depth": queue_depth,
            "queued_bytes": self.queued_bytes(),
            "sent_events": self.sent_events,
            "dropped_events": self.dropped_events,
            "filters": {k: list(v) for k, v in lists.items()},
            "connected_seconds": round(time.monotonic() - self.connected_at, 3),
        }


class ClientRegistry:
    """The connected clients, by id, with a tuple of them that is safe to iterate while they change."""

    def __init__(self) -> None:
        self._clients: dict[int, Client] = {}
        self._snapshot: tuple[Client, ...] | None = ()  # None: rebuild (see all)
        self._next_id = 1
        self.queued = QueuedBytes()  # the control bytes of all of them (control.py)

    def new(self, ws: web.WebSocketResponse, request: web.Request) -> Client:
        """A client for ``ws`` with the next id (not added yet)."""
        client = Client(self._next_id, ws, request, self.queued)
        self._next_id += 1
        return client

    def add(self, client: Client) -> None:
        self._clients[client.id] = client
        self._snapshot = None

    def remove(self, client: Client) -> None:
        if self._clients.pop(client.id, None) is not None:
            self._snapshot = None

    @property
    def all(self) -> tuple[Client, ...]:
        """The clients, as a tuple that stays valid while clients come and go.

        Rebuilt on first use after a change, not per connect: 10,000 clients connecting would
        otherwise build 10,000 tuples of up to 10,000 entries.
        """
        clients = self._snapshot
        if clients is None:
            clients = self._snapshot = tuple(self._clients.values())
        return clients

    def __len__(self) -> int:
        return len(self._clients)

    def __bool__(self) -> bool:
        return bool(self._clients)

    def __iter__(self) -> Iterator[Client]:
        return iter(self.all)
