"""The broadcaster: fans the state's events out to the connected WebSocket clients.

:class:`Broadcaster` owns the clients, one shared event log and the drop counters. See
``docs/server.md``.

**The log.** Each event is serialized once (``event.to_json_bytes()``) and appended to one shared,
append-only log with a base offset; entries are numbered by absolute position. A client is a cursor
into it: the position of the next entry it has not been sent. Appending an event is O(1) whatever
the number of clients; the log is trimmed behind the slowest client, and no client may lag more
than ``client_queue_size`` entries (the slow-client policy below), so that bounds it.

**The flush pass.** When something new is appended, ONE flush is scheduled with ``loop.call_soon``.
It walks the clients (all of them when the log grew, else only those flagged since: a control
message, a resumed transport, a replay page) and gives each one frame made of everything between its
cursor and the log end, capped by ``_MAX_FRAME_EVENTS`` / ``_MAX_FRAME_BYTES``. Batching is
therefore adaptive: an idle server sends one event per frame, a busy one sends whatever arrived
while the previous pass ran, and nothing ever waits on a timer. Frames are cached per pass by
(start, stop, filter), so clients at the same cursor share one ``bytes`` object.

**Writing.** When permessage-deflate was not negotiated (the default: ``compress`` is off) the pass
writes the whole RFC 6455 frame (our own unmasked header + payload, one ``bytes``) straight to the
transport, synchronously: no task per client and no task switch per frame. aiohttp writes whole
frames synchronously too for an uncompressed connection (pings, pongs, the close frame), so frames
never interleave. A client whose transport holds more than ``_HIGH_WATER_BYTES`` is skipped (its
cursor lags) until the transport drains. When deflate WAS negotiated the client gets a writer task
that sends through aiohttp's ``send_frame`` (which owns the compressor), reading the same log.

**Slow clients.** Lag beyond ``client_queue_size`` entries: the oldest ``client_queue_size`` are
dropped and the client is told with a ``gap`` (``queue_overflow``); a second overflow within
``overflow_window_seconds``, or a transport that stays full (or a send that stays blocked) longer
than ``send_timeout_seconds``, closes it with 1013.

**Heartbeat.** One sweep pings every client that has been silent for ``heartbeat_seconds`` and
aborts one that does not answer within half of that (the ``/ws`` handler turns aiohttp's own
per-connection heartbeat off and tells the client of every message it receives).

**Threads.** The state calls :meth:`Broadcaster._on_event` in the publishing thread. On the event
loop's own thread an event is appended at once; from any other thread it goes into a bounded
hand-off deque and ONE drain is scheduled with ``loop.call_soon_threadsafe`` (only when none is
pending). Publishing never blocks on a client.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
import time
from bisect import bisect_right
from collections import Counter, deque
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from otel_dashboard.model.events import DashboardEvent, format_timestamp, json_dumps
from otel_dashboard.model.filters import event_matches
from otel_dashboard.server.options import SERVER_VERSION, ServerOptions
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.store.base import EventQuery

__all__ = ["BROADCASTER_KEY", "Broadcaster", "Client"]

logger = logging.getLogger(__name__)

# Frame caps: one "events" frame carries at most this many events or (roughly) this many bytes.
_MAX_FRAME_EVENTS = 1000
_MAX_FRAME_BYTES = 1024 * 1024
# Events waiting in the thread -> loop hand-off; beyond this they are dropped (and clients told).
_HANDOFF_LIMIT = 100_000
# At most this many events are fanned out per drain callback before the loop gets a turn.
_DRAIN_BATCH = 2000
# A client whose transport buffers more than this is not written to until it drains. asyncio's
# default high-water mark: above it the transport has paused the protocol, and aiohttp's drain
# waiter tells us when it is below the low-water mark again.
_HIGH_WATER_BYTES = 64 * 1024
# Closing a slow client: after ws.close() returns, wait this long at most for its buffer to empty.
# Also the poll interval for a transport over our mark that asyncio did not pause (custom limits).
_CLOSE_POLL_SECONDS = 0.05
# At shutdown each client gets at most this long (or send_timeout_seconds) to take the close frame.
_SHUTDOWN_CLOSE_SECONDS = 2.0
_RATE_WINDOW_SECONDS = 10
# The log is trimmed behind the slowest client once this many entries are dead (or all of them).
_TRIM_CHUNK = 256

_EVENTS_PREFIX = b'{"type":"events","events":['
_EVENTS_SUFFIX = b"]}"
_REPLAY_SUFFIX = b'],"replay":true}'
_PROVISIONAL_PREFIX = b'{"type":"events","provisional":true,"events":['

# Control message kinds (a gap notice is dropped by a resume, which covers it).
_CONTROL = 0
_GAP = -1

# An empty PING frame (FIN + PING, no mask), the heartbeat's.
_PING_FRAME = b"\x89\x00"
# RFC 6455 server frame header (FIN + TEXT, no mask): 2, 4 or 10 bytes by payload length.
_TEXT_FIN = 0x81
_PACK_LEN1 = struct.Struct("!BB").pack
_PACK_LEN2 = struct.Struct("!BBH").pack
_PACK_LEN3 = struct.Struct("!BBQ").pack

_CODE_TRY_AGAIN_LATER = 1013  # WSCloseCode.TRY_AGAIN_LATER, spelled out for old aiohttp versions


_dumps = json_dumps


def _text_frame(payload: bytes) -> bytes:
    """``payload`` as one unmasked, unfragmented RFC 6455 TEXT frame (what a server sends)."""
    length = len(payload)
    if length < 126:
        header = _PACK_LEN1(_TEXT_FIN, length)
    elif length < 65536:
        header = _PACK_LEN2(_TEXT_FIN, 126, length)
    else:
        header = _PACK_LEN3(_TEXT_FIN, 127, length)
    return header + payload


# --------------------------------------------------------------------------- clients
class _Replay:
    __slots__ = ("after", "count", "cursor", "until")

    def __init__(self, after: int, until: int) -> None:
        self.after = after
        self.cursor = after
        self.until = until
        self.count = 0


class _Frame:
    """One "events" frame over a range of the log, shared by every client at that range."""

    __slots__ = ("count", "end", "payload", "wire")

    def __init__(self, end: int, count: int, payload: bytes | None) -> None:
        self.end = end  # the log position after the last entry the frame covers
        self.count = count  # events in the frame (0: nothing in the range passed the filter)
        self.payload = payload
        self.wire: bytes | None = None  # header + payload, built for the first direct client

    def wire_bytes(self) -> bytes:
        wire = self.wire
        if wire is None:
            wire = self.wire = _text_frame(self.payload)  # type: ignore[arg-type]
        return wire


_NO_FILTER_LISTS: dict[str, list[str]] = {"event_types": [], "severities": [], "agents": []}


class Client:
    """One connected WebSocket: its cursor into the broadcaster's log, filter and counters.

    Fields that most clients never use (filter, pending control messages, replay, tasks) stay None,
    so an idle client costs this object and nothing more.
    """

    __slots__ = (
        "closing",
        "connected_at",
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
        "replay",
        "request",
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
        self.request = request
        self.transport = request.transport
        self.cursor = 0  # the log position of the next entry this client has not been sent
        self.min_seq = 0  # events with seq <= min_seq are never sent (snapshot / resume)
        # Control messages (kind, bytes) not sent yet, each after the log entries before its
        # position: deque[(position, kind, bytes)], None when empty.
        self.controls: deque[tuple[int, int, bytes]] | None = None
        self.filter: EventQuery | None = None
        self.filter_key: tuple[tuple[str, ...], ...] | None = None  # frame-cache key of the filter
        self.filter_lists: dict[str, list[str]] | None = None  # None: everything
        self.replay: _Replay | None = None
        # Loop time since when the client's transport is full (direct) or its send is blocked
        # (deflate); the watchdog closes it past send_timeout_seconds.
        self.send_started: float | None = None
        self.drain_task: asyncio.Task[None] | None = None  # direct: waiting for a full transport
        self.writer_task: asyncio.Task[None] | None = None  # deflate only: sends via aiohttp
        self.waiter: asyncio.Future[None] | None = None  # deflate only: the idle writer's wake-up
        self.closing = False
        self.last_overflow: float | None = None
        # The heartbeat (Broadcaster._heartbeat): loop time of the last message from the peer, and
        # of the ping it has not answered yet.
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
        """Wake a deflate client's idle writer task."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def info(self, queue_depth: int) -> dict[str, Any]:
        lists = self.filter_lists or _NO_FILTER_LISTS
        return {
            "id": self.id,
            "remote": self.remote,
            "queue_depth": queue_depth,
            "sent_events": self.sent_events,
            "dropped_events": self.dropped_events,
            "filters": {k: list(v) for k, v in lists.items()},
            "connected_seconds": round(time.monotonic() - self.connected_at, 3),
        }


class _Lost:
    """A run of events dropped in the thread hand-off (kept in the hand-off deque in their place,
    then in the log as a marker entry)."""

    __slots__ = ("first", "last")

    def __init__(self, seq: int) -> None:
        self.first = seq
        self.last = seq


# --------------------------------------------------------------------------- the broadcaster
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
        self._clients: dict[int, Client] = {}
        self._clients_snapshot: tuple[Client, ...] | None = ()  # None: rebuild (see _client_list)
        self._next_client_id = 1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._pending: deque[DashboardEvent | _Lost] = deque()
        self._drain_scheduled = False
        self._subscribed = False
        self.closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writer_tasks: set[asyncio.Task[None]] = set()
        # The log: parallel lists, entry i at absolute position _base + i. A payload of None marks a
        # hand-off loss (its item is the _Lost); seqs ascend (the lost marker carries its last seq).
        self._base = 0
        self._payloads: list[bytes | None] = []
        self._items: list[DashboardEvent | _Lost] = []
        self._seqs: list[int] = []
        self._flush_scheduled = False
        self._flushed_end = 0  # the log end at the last full pass
        self._dirty: set[Client] = set()  # clients the next pass visits even if the log did not grow
        self._frames: dict[tuple[int, int, Any], _Frame] = {}
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
        if self.options.heartbeat_seconds is not None:
            self._spawn(self._heartbeat(self.options.heartbeat_seconds))

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
        """Cancel and await the watchdog, writers, drain waits and close tasks (the app's cleanup)."""
        self.closing = True
        self.unsubscribe()
        tasks = [*self._tasks, *self._writer_tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._pending.clear()
        self._dirty.clear()
        self._frames.clear()
        self._trim(self._base + len(self._payloads))

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
                self._append(event)
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
        append = self._append
        for _ in range(n):
            item = popleft()
            if isinstance(item, _Lost):
                self._append_lost(item)
            else:
                append(item)
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

    # ------------------------------------------------------------ the log (loop thread)
    def _append(self, event: DashboardEvent) -> None:
        """Fan one event out: serialize it once, append it to the log, make sure a pass follows."""
        seq = event.seq
        # Nobody would read it (a client joining later starts at the log end), and an event
        # without a seq is never sent (seq <= min_seq for every client).
        if not seq or not self._clients:
            return
        self._payloads.append(event.to_json_bytes())
        self._items.append(event)
        self._seqs.append(seq)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)  # type: ignore[union-attr]

    def _append_lost(self, lost: _Lost) -> None:
        if not self._clients:
            return
        self._payloads.append(None)
        self._items.append(lost)
        self._seqs.append(lost.last)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)  # type: ignore[union-attr]

    def _schedule_flush(self, client: Client) -> None:
        """Have the next pass visit ``client`` (a control message, a drained transport, a replay)."""
        self._dirty.add(client)
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _trim(self, lowest: int) -> None:
        """Forget the log entries before ``lowest`` (no client will read them)."""
        dead = lowest - self._base
        if dead <= 0 or (dead < _TRIM_CHUNK and dead < len(self._payloads)):
            return
        del self._payloads[:dead]
        del self._items[:dead]
        del self._seqs[:dead]
        self._base = lowest

    def _frame(self, start: int, stop: int, client: Client) -> _Frame:
        """The "events" frame of the log from ``start`` for ``client``'s filter (cached per pass).

        It ends at ``stop``, at a lost marker, or at the frame caps, whichever comes first.
        """
        key = (start, stop, client.filter_key)
        frame = self._frames.get(key)
        if frame is not None:
            return frame
        payloads = self._payloads
        base = self._base
        i = start - base
        hi = stop - base
        size = 0
        query = client.filter
        if query is None:
            j = i
            while j < hi and j - i < _MAX_FRAME_EVENTS and size < _MAX_FRAME_BYTES:
                payload = payloads[j]
                if payload is None:
                    break
                size += len(payload) + 1
                j += 1
            parts = payloads[i:j]
        else:
            items = self._items
            parts = []
            j = i
            while j < hi and len(parts) < _MAX_FRAME_EVENTS and size < _MAX_FRAME_BYTES:
                payload = payloads[j]
                if payload is None:
                    break
                if event_matches(query, items[j]):  # type: ignore[arg-type]
                    parts.append(payload)
                    size += len(payload) + 1
                j += 1
        data = _EVENTS_PREFIX + b",".join(parts) + _EVENTS_SUFFIX if parts else None  # type: ignore[arg-type]
        frame = self._frames[key] = _Frame(base + j, len(parts), data)
        return frame

    def _pending_events(self, client: Client, start: int, stop: int) -> list[int]:
        """The seqs of the events in ``[start, stop)`` that ``client`` would be sent."""
        base = self._base
        i, j = start - base, stop - base
        seqs = self._seqs[i:j]
        payloads = self._payloads[i:j]
        if client.filter is None and None not in payloads:
            return seqs
        query = client.filter
        return [
            seq for seq, payload, item in zip(seqs, payloads, self._items[i:j], strict=True)
            if payload is not None and seq > client.min_seq and event_matches(query, item)  # type: ignore[arg-type]
        ]

    def _lag(self, client: Client) -> int:
        """Log entries (events and loss markers) not yet sent to ``client``."""
        return max(0, self._base + len(self._payloads) - client.cursor)

    def _skip_seen(self, client: Client, stop: int) -> None:
        """Move ``client``'s cursor past the entries it must not get (seq <= min_seq)."""
        cursor = client.cursor
        base = self._base
        if cursor < base:  # cannot happen (the log is trimmed behind the slowest client); be safe
            cursor = client.cursor = base
        if cursor < stop and self._seqs[cursor - base] <= client.min_seq:
            client.cursor = base + bisect_right(self._seqs, client.min_seq, cursor - base, stop - base)

    # ------------------------------------------------------------ the flush pass (loop thread)
    def _flush(self) -> None:
        """Give every client that is behind what it is missing (see the module docstring)."""
        self._flush_scheduled = False
        self._frames.clear()
        end = self._base + len(self._payloads)
        full = end != self._flushed_end
        if full:
            self._flushed_end = end
            clients: tuple[Client, ...] | list[Client] = self._client_list
        else:
            clients = list(self._dirty)
        self._dirty.clear()
        limit = self.options.client_queue_size
        lowest = end
        again = False
        for client in clients:
            if client.closing:
                continue
            if client.cursor >= end and client.controls is None and client.replay is None:
                continue  # up to date (the common case for a dirty-only pass)
            try:
                self._skip_seen(client, end)
                while end - client.cursor > limit and not client.closing:
                    self._overflow(client, end)
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
                self._kick(client, WSCloseCode.INTERNAL_ERROR, "internal error")
                continue
            if client.cursor < lowest:
                lowest = client.cursor
        if full:
            self._trim(lowest)
        self._frames.clear()  # the frames' bytes now live in the transports (or are gone)
        # Another pass: a client has more to do (a replay page), or asked for a full pass (-1).
        if (again or self._flushed_end < 0) and not self._flush_scheduled:
            self._flush_scheduled = True
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
        if transport.get_write_buffer_size() > _HIGH_WATER_BYTES:
            self._blocked(client)
            return False
        replay = client.replay
        if replay is not None:
            # One page per pass: a long replay must not hold the loop (or the other clients).
            data = self._replay_step(client, replay)
            if data is not None:
                transport.write(_text_frame(data))
                if transport.get_write_buffer_size() > _HIGH_WATER_BYTES:
                    self._blocked(client)
                    return False
            if client.replay is not None:
                return True
            self._flushed_end = -1  # the replay is over: the next pass trims behind this client too
        write = transport.write
        while True:
            data = self._next_live(client, end, wire=True)
            if data is None:
                return False
            write(data)
            if transport.get_write_buffer_size() > _HIGH_WATER_BYTES:
                self._blocked(client)
                return False
            if client.cursor >= end and client.controls is None:
                return False

    def _next_live(self, client: Client, end: int, *, wire: bool) -> bytes | None:
        """The next control message or events frame for ``client`` (advancing its cursor).

        Args:
            client: the client.
            end: the log end to read up to.
            wire: True for a whole WebSocket frame (header + payload), False for the payload.

        Returns:
            The bytes to send, or None when the client is up to date.
        """
        while True:
            cursor = client.cursor
            controls = client.controls
            stop = end
            if controls:
                position, _, data = controls[0]
                if position <= cursor:
                    controls.popleft()
                    if not controls:
                        client.controls = None
                    return _text_frame(data) if wire else data
                stop = position
            if cursor >= stop:
                return None
            base = self._base
            index = cursor - base
            if self._seqs[index] <= client.min_seq:
                self._skip_seen(client, stop)
                continue
            if self._payloads[index] is None:  # a hand-off loss, told to each client its own way
                client.cursor = cursor + 1
                lost: _Lost = self._items[index]  # type: ignore[assignment]
                data = _dumps({"type": "gap", "from": max(lost.first, client.min_seq + 1),
                               "to": lost.last, "reason": "handoff_overflow"})
                return _text_frame(data) if wire else data
            frame = self._frame(cursor, stop, client)
            client.cursor = frame.end
            if frame.count:
                client.sent_events += frame.count
                return frame.wire_bytes() if wire else frame.payload

    def _blocked(self, client: Client) -> None:
        """``client``'s transport is full: stop writing to it until it drains."""
        if client.send_started is None:
            client.send_started = self._loop.time()  # type: ignore[union-attr]
        if client.drain_task is None:
            client.drain_task = self._spawn(self._wait_drained(client))

    async def _wait_drained(self, client: Client) -> None:
        transport = client.transport
        try:
            protocol = transport.get_protocol() if transport is not None else None
            if getattr(protocol, "writing_paused", False):
                # What aiohttp's own writer awaits (never cancelled but at cleanup: the future is
                # shared with aiohttp's drain in ws.close()).
                await protocol._drain_helper()  # type: ignore[union-attr]
            else:  # over our mark while asyncio did not pause the protocol (custom limits): poll
                await asyncio.sleep(_CLOSE_POLL_SECONDS)
        except ConnectionError:
            client.closing = True  # the peer went away; the handler unregisters it
            return
        finally:
            client.drain_task = None
        client.send_started = None
        if not client.closing:
            # A full pass, not only this client: it may have been the slowest, holding the log.
            self._flushed_end = -1
            self._schedule_flush(client)

    # ------------------------------------------------------------ slow clients
    def _overflow(self, client: Client, end: int) -> None:
        """``client`` lags more than ``client_queue_size`` entries: drop the oldest, or close it."""
        now = time.monotonic()
        window = self.options.overflow_window_seconds
        if client.last_overflow is not None and now - client.last_overflow < window:
            self._kick(client, _CODE_TRY_AGAIN_LATER,
                       f"client too slow: queue overflowed twice within {window:g} s")
            return
        client.last_overflow = now
        # As a full queue of client_queue_size would have been: the oldest that many are dropped
        # and the newer ones still follow (a lag of two queues is a second overflow at once).
        start = client.cursor
        stop = min(end, start + self.options.client_queue_size)
        seqs = self._pending_events(client, start, stop)
        client.cursor = stop
        if seqs:
            self.drops["queue_overflow"] += len(seqs)
            client.dropped_events += len(seqs)
            gap = _dumps({"type": "gap", "from": seqs[0], "to": seqs[-1], "reason": "queue_overflow"})
            self._add_control(client, stop, _GAP, gap)
            self._note_drop()
        logger.warning(
            "dashboard client %s (%s) is not keeping up: dropped %d queued events",
            client.id, client.remote, len(seqs),
        )

    def _kick(self, client: Client, code: int, reason: str) -> None:
        """Close a client from synchronous code (the close itself runs in a task)."""
        if client.closing:
            return
        end = self._base + len(self._payloads)
        if client.cursor < end:
            self._skip_seen(client, end)
            queued = len(self._pending_events(client, client.cursor, end))
            if queued:
                self.drops["slow_client_closed"] += queued
                client.dropped_events += queued
                self._note_drop()
        client.closing = True
        client.controls = None
        client.replay = None
        self._dirty.discard(client)
        logger.warning("closing dashboard client %s (%s): %s", client.id, client.remote, reason)
        self._spawn(self._close_client(client, code, reason))

    def _note_drop(self) -> None:
        self._last_drop_change = time.monotonic()

    # ------------------------------------------------------------ control messages (loop thread)
    def _add_control(self, client: Client, position: int, kind: int, data: bytes) -> None:
        controls = client.controls
        if controls is None:
            controls = client.controls = deque()
        if not controls or controls[-1][0] <= position:
            controls.append((position, kind, data))
            return
        # An overflow's gap lands behind later messages: keep the deque in position order.
        items = sorted([*controls, (position, kind, data)], key=lambda item: item[0])
        controls.clear()
        controls.extend(items)

    def _enqueue(self, client: Client, kind: int, message: dict[str, Any]) -> None:
        """Send a control message to ``client`` in order with its events."""
        self._enqueue_bytes(client, kind, _dumps(message))

    def _enqueue_bytes(self, client: Client, kind: int, data: bytes) -> None:
        if client.closing:
            return
        end = self._base + len(self._payloads)
        if client.writer_task is not None:
            self._add_control(client, end, kind, data)
            client.wake()
            return
        transport = client.transport
        if (client.cursor >= end and client.controls is None and client.replay is None
                and client.send_started is None and transport is not None
                and not transport.is_closing() and not client.ws.closed
                and transport.get_write_buffer_size() <= _HIGH_WATER_BYTES):
            # Nothing is waiting for it: no need to wait for a pass.
            transport.write(_text_frame(data))
            if transport.get_write_buffer_size() > _HIGH_WATER_BYTES:
                self._blocked(client)
            return
        self._add_control(client, end, kind, data)
        self._schedule_flush(client)

    def send_control(self, client: Client, message: dict[str, Any]) -> None:
        """Send a control message to ``client``, in order with its events."""
        self._enqueue(client, _CONTROL, message)

    def send_error(self, client: Client, message: str) -> None:
        """Send ``{"type": "error", "message": ...}`` to ``client``."""
        self._enqueue(client, _CONTROL, {"type": "error", "message": message})

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
        self._enqueue(client, _CONTROL, {"type": "subscribed", **lists})

    def pong(self, client: Client) -> None:
        """Answer a ``ping``."""
        self._enqueue(client, _CONTROL, {
            "type": "pong", "seq": self.state.last_seq, "timestamp": format_timestamp(),
        })

    def resume(self, client: Client, after: int) -> None:
        """Replay the stored events after ``after`` to ``client``, then continue live."""
        if client.closing:
            return
        # Replay up to the newest STORED event; anything newer arrives live. Events <= until still
        # in the log or waiting in the hand-off are skipped for this client via min_seq.
        newest = self.state.get_recent_events(1)
        until = (newest[0].seq or 0) if newest else self.state.last_seq
        client.min_seq = max(client.min_seq, until)
        # Stale gap notices are covered by the replay; other control messages follow it.
        controls = client.controls
        if controls:
            kept = [item for item in controls if item[1] != _GAP]
            client.controls = deque(kept) if kept else None
        client.replay = _Replay(after, until)  # after >= until: nothing to replay, just "resumed"
        if client.writer_task is not None:
            client.wake()
        else:
            self._schedule_flush(client)

    # ------------------------------------------------------------ clients
    def register(self, ws: web.WebSocketResponse, request: web.Request) -> Client:
        """Snapshot + register + send the snapshot, in one synchronous block (nothing lost or doubled)."""
        client = Client(self._next_client_id, ws, request)
        self._next_client_id += 1
        snapshot = self.state.snapshot(recent_limit=self.options.history_size)
        client.min_seq = snapshot["seq"]
        client.cursor = self._base + len(self._payloads)
        client.last_seen = self._loop.time()  # type: ignore[union-attr]
        self._clients[client.id] = client
        self._clients_snapshot = None
        data = _dumps({
            "type": "snapshot",
            **snapshot,
            "server": {
                "name": self.options.name,
                "version": SERVER_VERSION,
                "stall_threshold_seconds": self.state.stall_threshold_seconds,
                **({"replica": self.replica} if self.replica is not None else {}),
            },
        })
        if ws.compress:
            # permessage-deflate: aiohttp owns the compressor, so frames go through its send_frame.
            task = asyncio.ensure_future(self._run_writer(client, data))
            client.writer_task = task
            self._writer_tasks.add(task)
            task.add_done_callback(self._writer_tasks.discard)
        else:
            transport = client.transport
            if transport is not None and not transport.is_closing():
                transport.write(_text_frame(data))  # first: nothing else can be waiting yet
                if transport.get_write_buffer_size() > _HIGH_WATER_BYTES:
                    self._blocked(client)
        logger.debug("dashboard client %s connected from %s", client.id, client.remote)
        return client

    def unregister(self, client: Client) -> None:
        client.closing = True
        if self._clients.pop(client.id, None) is not None:
            self._clients_snapshot = None
        self._dirty.discard(client)
        client.controls = None
        client.replay = None
        if client.writer_task is not None:
            client.writer_task.cancel()
        logger.debug("dashboard client %s disconnected", client.id)

    @property
    def _client_list(self) -> tuple[Client, ...]:
        """The clients, as a tuple that is safe to iterate while clients come and go.

        Rebuilt on first use after a change, not per connect: 10,000 clients connecting would
        otherwise build 10,000 tuples of up to 10,000 entries.
        """
        clients = self._clients_snapshot
        if clients is None:
            clients = self._clients_snapshot = tuple(self._clients.values())
        return clients

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def client_infos(self) -> list[dict[str, Any]]:
        """One row per connected client (for ``/stats``); ``queue_depth`` is its lag in events."""
        return [c.info(self._lag(c)) for c in self._client_list]

    def queue_depths(self) -> list[int]:
        """Each client's lag behind the log end, in entries (for the ``/metrics`` histogram)."""
        return [self._lag(c) for c in self._client_list]

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

    # ------------------------------------------------------------ deflate writer (one task per such client)
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

    async def _heartbeat(self, period: float) -> None:
        """Ping every client silent for ``period``; drop one that does not answer in ``period / 2``.

        aiohttp's own heartbeat does the same with a timer (and a context copy) per connection; one
        sweep for all of them costs no memory per client. A dead peer's connection is aborted, so
        its handler's read ends and it is unregistered; the client sees 1006, as before.
        """
        tick = min(1.0, period / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for client in self._client_list:
                if client.closing:
                    continue
                transport = client.transport
                if transport is None or transport.is_closing() or client.ws.closed:
                    continue
                ping_sent = client.ping_sent
                if ping_sent is None:
                    if now - client.last_seen >= period:
                        # A whole control frame, as aiohttp writes its own (never compressed).
                        transport.write(_PING_FRAME)
                        client.ping_sent = now
                elif now - ping_sent >= period / 2:
                    logger.debug("dashboard client %s did not answer a ping in %g s", client.id, period / 2)
                    client.closing = True
                    transport.abort()

    async def _run_writer(self, client: Client, snapshot: bytes) -> None:
        """A deflate client's writer: the snapshot, then replay pages, control messages and frames."""
        loop = asyncio.get_running_loop()
        try:
            await self._send(client, snapshot)
            while not client.closing:
                replay = client.replay
                if replay is not None:
                    data = self._replay_step(client, replay)
                else:
                    data = self._next_live(client, self._base + len(self._payloads), wire=False)
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
            self._kick(client, WSCloseCode.INTERNAL_ERROR, "internal error")

    def _replay_step(self, client: Client, replay: _Replay) -> bytes | None:
        """One page of a resume: a gap if history lost events, one replay frame, or "resumed".

        Returns:
            The message to send (the payload), or None when the page held nothing for the filter.
        """
        if replay.cursor >= replay.until:
            if client.replay is replay:
                client.replay = None
            return _dumps({
                "type": "resumed", "after_seq": replay.after, "seq": replay.until,
                "replayed": replay.count,
            })
        page = self.state.get_events_after(replay.cursor, _MAX_FRAME_EVENTS)
        if not page or (page[0].seq or 0) > replay.cursor + 1:
            to = replay.until if not page else min((page[0].seq or 0) - 1, replay.until)
            first = replay.cursor + 1
            # Inside a hole left by an unclean restart the events, if any existed, died with the
            # old server; anywhere else retention trimmed them.
            in_hole = any(a <= first and to <= b for a, b in self.state.store.restart_holes())
            replay.cursor = to
            return _dumps({"type": "gap", "from": first, "to": to,
                           "reason": "restart" if in_hole else "history"})
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
        if not parts:
            return None
        replay.count += len(parts)
        client.sent_events += len(parts)
        return _EVENTS_PREFIX + b",".join(parts) + _REPLAY_SUFFIX

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
