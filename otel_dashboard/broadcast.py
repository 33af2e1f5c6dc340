"""The broadcaster: fans the state's events out to the connected WebSocket clients.

:class:`Broadcaster` owns the clients. Each has a bounded outgoing queue and one writer task that
turns whatever is queued into a single ``events`` frame. The broadcaster applies the slow-client
policy (overflow -> gap, second overflow or a stalled send -> close 1013), replays history for
``resume`` and counts every drop by reason. See ``docs/server.md``.

Threading model: the state calls :meth:`Broadcaster._on_event` in the publishing thread. On the event
loop's own thread an event is fanned out at once; from any other thread it is appended to a hand-off
deque and ONE drain is scheduled with ``loop.call_soon_threadsafe`` (only when none is pending).
Fan-out never blocks: each event is serialized once and its bytes are appended to every interested
client's bounded queue.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, deque
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from otel_dashboard.events import DashboardEvent, format_timestamp, json_dumps
from otel_dashboard.options import SERVER_VERSION, ServerOptions
from otel_dashboard.state import DashboardState
from otel_dashboard.store import EventQuery

__all__ = ["BROADCASTER_KEY", "MAX_FILTER_VALUES", "Broadcaster", "Client", "event_matches"]

logger = logging.getLogger(__name__)

# Frame caps: one "events" frame carries at most this many events or (roughly) this many bytes.
_MAX_FRAME_EVENTS = 1000
_MAX_FRAME_BYTES = 1024 * 1024
# Events waiting in the thread -> loop hand-off; beyond this they are dropped (and clients told).
_HANDOFF_LIMIT = 100_000
# At most this many events are fanned out per drain callback before the loop gets a turn.
_DRAIN_BATCH = 2000
# Closing a slow client: after ws.close() returns, wait this long at most for its buffer to empty.
_CLOSE_POLL_SECONDS = 0.05
# At shutdown each client gets at most this long (or send_timeout_seconds) to take the close frame.
_SHUTDOWN_CLOSE_SECONDS = 2.0
_RATE_WINDOW_SECONDS = 10

_EVENTS_PREFIX = b'{"type":"events","events":['
_EVENTS_SUFFIX = b"]}"
_REPLAY_SUFFIX = b'],"replay":true}'
_PROVISIONAL_PREFIX = b'{"type":"events","provisional":true,"events":['

# Queue item kinds, stored in the seq slot (event seqs start at 1).
_CONTROL = 0
_GAP = -1

MAX_FILTER_VALUES = 1000
"""Filters (subscribe lists, ``/api/events`` agents): at most this many values per list."""

_CODE_TRY_AGAIN_LATER = 1013  # WSCloseCode.TRY_AGAIN_LATER, spelled out for old aiohttp versions


_dumps = json_dumps


def event_matches(query: EventQuery | None, event: DashboardEvent) -> bool:
    """Whether ``event`` passes ``query`` (None passes everything); never raises TypeError."""
    if query is None:
        return True
    try:
        return query.matches(event)
    except TypeError:  # an unhashable agent name in the event's data never matches a filter
        return False


# --------------------------------------------------------------------------- clients
class _Replay:
    __slots__ = ("after", "count", "cursor", "until")

    def __init__(self, after: int, until: int) -> None:
        self.after = after
        self.cursor = after
        self.until = until
        self.count = 0


class Client:
    """One connected WebSocket: its bounded outgoing queue, filter and counters."""

    __slots__ = (
        "closing",
        "connected_at",
        "dropped_events",
        "filter",
        "filter_lists",
        "id",
        "last_overflow",
        "last_sent",
        "min_seq",
        "queue",
        "remote",
        "replay",
        "send_started",
        "sent_events",
        "transport",
        "waiter",
        "writer_task",
        "ws",
    )

    def __init__(self, client_id: int, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.id = client_id
        self.ws = ws
        self.transport = request.transport
        self.remote = request.remote
        # (seq, bytes): seq >= 1 an event, _CONTROL a control message, _GAP a gap message.
        self.queue: deque[tuple[int, bytes]] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.writer_task: asyncio.Task[None] | None = None
        self.min_seq = 0  # events with seq <= min_seq are never queued (snapshot / resume)
        self.last_sent = 0  # highest event seq handed to the socket (live dedupe)
        self.filter: EventQuery | None = None
        self.filter_lists: dict[str, list[str]] = {"event_types": [], "severities": [], "agents": []}
        self.replay: _Replay | None = None
        self.send_started: float | None = None  # loop time when the current send began
        self.closing = False
        self.last_overflow: float | None = None
        self.sent_events = 0
        self.dropped_events = 0
        self.connected_at = time.monotonic()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def queued_events(self) -> int:
        return sum(1 for seq, _ in self.queue if seq > 0)

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "remote": self.remote,
            "queue_depth": len(self.queue),
            "sent_events": self.sent_events,
            "dropped_events": self.dropped_events,
            "filters": {k: list(v) for k, v in self.filter_lists.items()},
            "connected_seconds": round(time.monotonic() - self.connected_at, 3),
        }


class _Lost:
    """A run of events dropped in the thread hand-off (kept in the hand-off deque in their place)."""

    __slots__ = ("first", "last")

    def __init__(self, seq: int) -> None:
        self.first = seq
        self.last = seq


# --------------------------------------------------------------------------- the broadcaster
class Broadcaster:
    """Fans state events out to the connected clients; owns the clients and the drop counters.

    Args:
        state: the state whose events are broadcast (subscribed in :meth:`start`).
        options: the server's options (queue size, send timeout, overflow window, snapshot size).
    """

    def __init__(self, state: DashboardState, options: ServerOptions) -> None:
        self.state = state
        self.options = options
        self._clients: dict[int, Client] = {}
        self._client_list: tuple[Client, ...] = ()
        self._next_client_id = 1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._pending: deque[DashboardEvent | _Lost] = deque()
        self._drain_scheduled = False
        self._subscribed = False
        self.closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writer_tasks: set[asyncio.Task[None]] = set()
        self.drops: Counter[str] = Counter()
        self._rate: deque[list[int]] = deque(maxlen=_RATE_WINDOW_SECONDS + 2)
        self.started_monotonic = time.monotonic()
        self._seen_drop_total = 0
        self._last_drop_change: float | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Subscribe to the state and start the send watchdog (on the loop's thread)."""
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self.started_monotonic = time.monotonic()
        self.state.subscribe(self._on_event)
        self._subscribed = True
        self._spawn(self._send_watchdog(self.options.send_timeout_seconds))

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def unsubscribe(self) -> None:
        if self._subscribed:
            self.state.unsubscribe(self._on_event)
            self._subscribed = False

    async def shutdown(self) -> None:
        """Close every client with 1001 GOING_AWAY (the app's on_shutdown)."""
        self.closing = True
        self.unsubscribe()
        clients = list(self._client_list)
        if clients:
            timeout = min(_SHUTDOWN_CLOSE_SECONDS, self.options.send_timeout_seconds)
            await asyncio.gather(
                *(self._close_client(c, WSCloseCode.GOING_AWAY, "server shutdown", timeout)
                  for c in clients),
                return_exceptions=True,
            )

    async def cleanup(self) -> None:
        """Cancel and await the watchdog, writers and close tasks (the app's cleanup)."""
        self.closing = True
        self.unsubscribe()
        tasks = [*self._tasks, *self._writer_tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._pending.clear()

    # ------------------------------------------------------------ intake (any thread)
    def _on_event(self, event: DashboardEvent) -> None:
        # Called by DashboardState under its lock, so calls never overlap and come in seq order.
        pending = self._pending
        if threading.get_ident() == self._loop_thread:
            if pending:  # keep seq order behind events still waiting in the hand-off
                pending.append(event)
                if not self._drain_scheduled:
                    self._drain_scheduled = True
                    self._loop.call_soon(self._drain)  # type: ignore[union-attr]
            else:
                self._count_rate(1)
                self._fan_out(event)
            return
        if len(pending) >= _HANDOFF_LIMIT:
            self.drops["handoff_overflow"] += 1
            last = pending[-1]
            if isinstance(last, _Lost):
                last.last = event.seq or last.last
            else:
                pending.append(_Lost(event.seq or 0))
        else:
            pending.append(event)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._drain)  # type: ignore[union-attr]
            except RuntimeError:  # the loop is closed: we are being torn down
                pending.clear()

    def _drain(self) -> None:
        self._drain_scheduled = False  # before popping: a later append schedules its own drain
        pending = self._pending
        n = min(len(pending), _DRAIN_BATCH)
        if n == 0 or self._loop is None:
            return
        self._count_rate(n)
        popleft = pending.popleft
        fan_out = self._fan_out
        for _ in range(n):
            item = popleft()
            if isinstance(item, _Lost):
                self._broadcast_lost(item)
            else:
                fan_out(item)
        if pending and not self._drain_scheduled:
            self._drain_scheduled = True
            self._loop.call_soon(self._drain)

    def _count_rate(self, n: int) -> None:
        now = int(time.monotonic())
        rate = self._rate
        if rate and rate[-1][0] == now:
            rate[-1][1] += n
        else:
            rate.append([now, n])

    # ------------------------------------------------------------ fan-out (loop thread)
    def _fan_out(self, event: DashboardEvent) -> None:
        seq = event.seq or 0
        payload: bytes | None = None
        limit = self.options.client_queue_size
        for client in self._client_list:
            if seq <= client.min_seq or client.closing:
                continue
            if client.filter is not None and not event_matches(client.filter, event):
                continue
            if payload is None:
                payload = event.to_json_bytes()
            queue = client.queue
            if len(queue) >= limit:
                self._overflow(client)
                if client.closing:
                    continue
            queue.append((seq, payload))
            waiter = client.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def _broadcast_lost(self, lost: _Lost) -> None:
        for client in self._client_list:
            if client.closing or lost.last <= client.min_seq:
                continue
            first = max(lost.first, client.min_seq + 1)
            self._enqueue(client, _GAP, {"type": "gap", "from": first, "to": lost.last,
                                         "reason": "handoff_overflow"})

    def _enqueue(self, client: Client, kind: int, message: dict[str, Any]) -> None:
        """Queue a control message (in order with the events)."""
        self._enqueue_bytes(client, kind, _dumps(message))

    def _enqueue_bytes(self, client: Client, kind: int, payload: bytes) -> None:
        if client.closing:
            return
        if len(client.queue) >= self.options.client_queue_size:
            self._overflow(client)
            if client.closing:
                return
        client.queue.append((kind, payload))
        client.wake()

    def _overflow(self, client: Client) -> None:
        """The client's queue is full: clear it and say which seqs it lost, or close it."""
        now = time.monotonic()
        queue = client.queue
        window = self.options.overflow_window_seconds
        if client.last_overflow is not None and now - client.last_overflow < window:
            self._kick(client, _CODE_TRY_AGAIN_LATER,
                       f"client too slow: queue overflowed twice within {window:g} s")
            return
        client.last_overflow = now
        seqs = [seq for seq, _ in queue if seq > 0]
        queue.clear()
        if seqs:
            self.drops["queue_overflow"] += len(seqs)
            client.dropped_events += len(seqs)
            queue.append((_GAP, _dumps({"type": "gap", "from": seqs[0], "to": seqs[-1],
                                        "reason": "queue_overflow"})))
            self._note_drop()
        logger.warning(
            "dashboard client %s (%s) is not keeping up: dropped %d queued events",
            client.id, client.remote, len(seqs),
        )

    def _kick(self, client: Client, code: int, reason: str) -> None:
        """Close a client from synchronous code (the close itself runs in a task)."""
        if client.closing:
            return
        queued = client.queued_events()
        if queued:
            self.drops["slow_client_closed"] += queued
            client.dropped_events += queued
            self._note_drop()
        client.closing = True
        client.queue.clear()
        logger.warning("closing dashboard client %s (%s): %s", client.id, client.remote, reason)
        self._spawn(self._close_client(client, code, reason))

    def _note_drop(self) -> None:
        self._last_drop_change = time.monotonic()

    # ------------------------------------------------------------ control messages (loop thread)
    def send_control(self, client: Client, message: dict[str, Any]) -> None:
        """Queue a control message for ``client``, in order with its events."""
        self._enqueue(client, _CONTROL, message)

    def send_error(self, client: Client, message: str) -> None:
        """Queue ``{"type": "error", "message": ...}`` for ``client``."""
        self._enqueue(client, _CONTROL, {"type": "error", "message": message})

    def set_filter(self, client: Client, lists: dict[str, list[str]]) -> None:
        """Apply a validated subscribe filter (empty lists mean "all") and confirm it."""
        if any(lists.values()):
            client.filter = EventQuery(
                event_types=lists["event_types"] or None,
                severities=lists["severities"] or None,
                agents=lists["agents"] or None,
            )
        else:
            client.filter = None
        client.filter_lists = lists
        self._enqueue(client, _CONTROL, {"type": "subscribed", **lists})

    def pong(self, client: Client) -> None:
        """Answer a ``ping``."""
        self._enqueue(client, _CONTROL, {
            "type": "pong", "seq": self.state.last_seq, "timestamp": format_timestamp(),
        })

    def resume(self, client: Client, after: int) -> None:
        """Replay the stored events after ``after`` to ``client``, then continue live."""
        # Replay up to the newest STORED event; anything newer arrives live. Events <= until still
        # waiting in the hand-off are skipped for this client via min_seq.
        newest = self.state.get_recent_events(1)
        until = (newest[0].seq or 0) if newest else self.state.last_seq
        client.min_seq = max(client.min_seq, until)
        # Queued events (all <= until) and stale gap notices are covered by the replay.
        queue = client.queue  # mutated in place: the writer holds a reference to it
        if queue:
            kept = [item for item in queue if item[0] == _CONTROL]
            queue.clear()
            queue.extend(kept)
        client.replay = _Replay(after, until)  # after >= until: nothing to replay, just "resumed"
        client.wake()

    # ------------------------------------------------------------ clients
    def register(self, ws: web.WebSocketResponse, request: web.Request) -> Client:
        """Snapshot + register + queue the snapshot, in one synchronous block (nothing lost or doubled)."""
        client = Client(self._next_client_id, ws, request)
        self._next_client_id += 1
        snapshot = self.state.snapshot(recent_limit=self.options.history_size)
        client.min_seq = client.last_sent = snapshot["seq"]
        self._clients[client.id] = client
        self._client_list = tuple(self._clients.values())
        snapshot = {
            "type": "snapshot",
            **snapshot,
            "server": {
                "name": self.options.name,
                "version": SERVER_VERSION,
                "stall_threshold_seconds": self.state.stall_threshold_seconds,
            },
        }
        client.queue.append((_CONTROL, _dumps(snapshot)))
        task = asyncio.ensure_future(self._run_writer(client))
        client.writer_task = task
        self._writer_tasks.add(task)
        task.add_done_callback(self._writer_tasks.discard)
        logger.debug("dashboard client %s connected from %s", client.id, client.remote)
        return client

    def unregister(self, client: Client) -> None:
        client.closing = True
        if self._clients.pop(client.id, None) is not None:
            self._client_list = tuple(self._clients.values())
        client.queue.clear()
        client.replay = None
        if client.writer_task is not None:
            client.writer_task.cancel()
        logger.debug("dashboard client %s disconnected", client.id)

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def client_infos(self) -> list[dict[str, Any]]:
        """One row per connected client (for ``/stats``)."""
        return [c.info() for c in self._client_list]

    async def _close_client(
        self, client: Client, code: int, reason: str, timeout: float | None = None
    ) -> None:
        """Close a client's socket; abort its transport if the close cannot complete in time."""
        client.closing = True
        loop = asyncio.get_running_loop()
        if timeout is None:
            timeout = self.options.send_timeout_seconds
        deadline = loop.time() + timeout
        writer = client.writer_task
        if writer is not None and writer is not asyncio.current_task() and client.send_started is None:
            # An idle writer is cancelled. One blocked in a send is left alone: cancelling it would
            # cancel aiohttp's shared drain future and with it our close frame; the close frame
            # queues behind its frame and both go out when (if) the peer reads.
            writer.cancel()
            await asyncio.wait({writer})
        # ws.close() runs in its own task: aiohttp may cancel its inner waits when the connection
        # goes away, and that must not look like (or become) a cancellation of this task.
        closer = asyncio.ensure_future(client.ws.close(code=code, message=reason.encode()[:120]))
        try:
            await asyncio.wait({closer}, timeout=timeout)
        finally:
            if not closer.done():
                closer.cancel()
        clean = closer.done() and not closer.cancelled() and closer.exception() is None
        transport = client.transport
        if transport is None:
            return
        # A slow but live peer gets until the deadline to take the close frame; poll, bounded.
        polls = int(max(0.0, deadline - loop.time()) / _CLOSE_POLL_SECONDS) if clean else 0
        for _ in range(polls):
            if transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(_CLOSE_POLL_SECONDS)
        if not clean or transport.get_write_buffer_size() > 0:
            logger.info("aborting the connection of dashboard client %s", client.id)
            transport.abort()
        if writer is not None and not writer.done():
            writer.cancel()

    # ------------------------------------------------------------ writer (one task per client)
    async def _send(self, client: Client, data: bytes) -> None:
        # No wait_for per frame: send_frame returns without suspending unless the transport is
        # paused (peer not reading); the watchdog below closes clients stuck in a send too long.
        client.send_started = self._loop.time()  # type: ignore[union-attr]
        try:
            await client.ws.send_frame(data, WSMsgType.TEXT)
        finally:
            client.send_started = None

    async def _send_watchdog(self, timeout: float) -> None:
        interval = min(1.0, timeout / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for client in self._client_list:
                started = client.send_started
                if started is not None and now - started > timeout and not client.closing:
                    self._kick(
                        client, _CODE_TRY_AGAIN_LATER,
                        f"client too slow: a send took longer than {timeout:g} s",
                    )

    async def _run_writer(self, client: Client) -> None:
        loop = asyncio.get_running_loop()
        queue = client.queue
        try:
            while not client.closing:
                if client.replay is not None:
                    await self._replay_step(client, client.replay)
                    continue
                if not queue:
                    waiter = loop.create_future()
                    client.waiter = waiter
                    try:
                        await waiter
                    finally:
                        client.waiter = None
                    continue
                kind, payload = queue[0]
                if kind <= 0:
                    queue.popleft()
                    await self._send(client, payload)
                    continue
                parts: list[bytes] = []
                size = 0
                last_sent = client.last_sent
                while queue and len(parts) < _MAX_FRAME_EVENTS and size < _MAX_FRAME_BYTES:
                    seq, payload = queue[0]
                    if seq <= 0:
                        break
                    queue.popleft()
                    if seq <= last_sent:
                        continue
                    parts.append(payload)
                    size += len(payload) + 1
                    last_sent = seq
                client.last_sent = last_sent
                if parts:
                    client.sent_events += len(parts)
                    await self._send(client, _EVENTS_PREFIX + b",".join(parts) + _EVENTS_SUFFIX)
        except ConnectionError:
            # The peer went away (ClientConnectionResetError & co.); the handler cleans up.
            client.closing = True
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("dashboard client %s: writer failed", client.id)
            self._kick(client, WSCloseCode.INTERNAL_ERROR, "internal error")

    async def _replay_step(self, client: Client, replay: _Replay) -> None:
        """Send one page of a resume: a gap if history lost events, or one replay frame."""
        if replay.cursor >= replay.until:
            if client.replay is replay:
                client.replay = None
            client.last_sent = max(client.last_sent, replay.until)
            await self._send(client, _dumps({
                "type": "resumed", "after_seq": replay.after, "seq": replay.until,
                "replayed": replay.count,
            }))
            return
        page = self.state.get_events_after(replay.cursor, _MAX_FRAME_EVENTS)
        if not page or (page[0].seq or 0) > replay.cursor + 1:
            to = replay.until if not page else min((page[0].seq or 0) - 1, replay.until)
            first = replay.cursor + 1
            # Inside a hole left by an unclean restart the events, if any existed, died with the
            # old server; anywhere else retention trimmed them.
            in_hole = any(a <= first and to <= b for a, b in self.state.store.restart_holes())
            gap = {"type": "gap", "from": first, "to": to, "reason": "restart" if in_hole else "history"}
            replay.cursor = to
            await self._send(client, _dumps(gap))
            return
        parts: list[bytes] = []
        size = 0
        for event in page:
            seq = event.seq or 0
            if seq > replay.until:
                replay.cursor = replay.until
                break
            replay.cursor = seq
            if event_matches(client.filter, event):
                payload = event.to_json_bytes()
                parts.append(payload)
                size += len(payload) + 1
                if size >= _MAX_FRAME_BYTES:
                    break
        if parts:
            replay.count += len(parts)
            client.sent_events += len(parts)
            await self._send(client, _EVENTS_PREFIX + b",".join(parts) + _REPLAY_SUFFIX)

    def send_provisional(self, events: list[DashboardEvent]) -> None:
        """Show events that have no ``seq`` yet (a cluster broker that cannot reach Redis) to the
        clients whose filter they pass: ``{"type": "events", "provisional": true, "events": [...]}``.
        The same events arrive again, numbered, once Redis is back (the page matches them by id)."""
        encoded = [(event, event.to_json_bytes()) for event in events]
        for client in self._client_list:
            if client.closing:
                continue
            parts = [payload for event, payload in encoded if event_matches(client.filter, event)]
            if parts:
                self._enqueue_bytes(client, _CONTROL, _PROVISIONAL_PREFIX + b",".join(parts) + _EVENTS_SUFFIX)

    # ------------------------------------------------------------ counters
    def events_per_second(self) -> float:
        """Events received, averaged over a sliding 10-second window."""
        now = int(time.monotonic())
        window_start = now - _RATE_WINDOW_SECONDS + 1
        total = sum(count for sec, count in self._rate if sec >= window_start)
        elapsed = min(float(_RATE_WINDOW_SECONDS), max(1.0, time.monotonic() - self.started_monotonic))
        return round(total / elapsed, 2)

    def drops_by_reason(self) -> dict[str, int]:
        """Dropped events per reason, upstream (the state's count) included, and their total."""
        counters = self.state.get_counters()
        out = {
            "upstream": counters["dropped_events"],
            "queue_overflow": self.drops["queue_overflow"],
            "slow_client_closed": self.drops["slow_client_closed"],
            "handoff_overflow": self.drops["handoff_overflow"],
        }
        out["total"] = sum(out.values())
        return out

    def last_drop_time(self, total: int) -> float | None:
        """When (monotonic) the drop total last changed; ``total`` is the current one."""
        if total != self._seen_drop_total:
            self._seen_drop_total = total
            self._last_drop_change = time.monotonic()
        return self._last_drop_change

    def uptime_seconds(self) -> float:
        return round(time.monotonic() - self.started_monotonic, 3)


BROADCASTER_KEY = web.AppKey("otel_dashboard_hub", Broadcaster)
