"""The dashboard's aiohttp server: the page, a live WebSocket stream, health, stats and history.

Usage::

    from otel_dashboard.server import DashboardWebSocketServer

    async with DashboardWebSocketServer(port=8000) as server:
        print("dashboard on", server.dashboard_url)
        await run_my_agents()

The server subscribes to a :class:`~otel_dashboard.state.DashboardState` (the process's one from
:func:`~otel_dashboard.state.get_dashboard` unless ``state=`` is given) and pushes every accepted
event to every connected WebSocket client. See ``docs/server.md`` for the endpoints, the WebSocket
protocol and the slow-client policy.

Threading model: the state calls our subscriber in the publishing thread. On the event loop's own
thread an event is fanned out at once; from any other thread it is appended to a hand-off deque and
ONE drain is scheduled with ``loop.call_soon_threadsafe`` (only when none is pending). Fan-out never
blocks: each event is serialized once and its bytes are appended to every interested client's
bounded queue; one writer task per client turns whatever is queued into a single ``events`` frame.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

import otel_dashboard
from otel_dashboard.events import DashboardEvent, EventType, Severity, format_timestamp
from otel_dashboard.state import DashboardState, get_dashboard
from otel_dashboard.store import EventQuery

__all__ = ["DashboardWebSocketServer", "create_app"]

logger = logging.getLogger(__name__)

try:
    _VERSION = metadata.version("otel-dashboard")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    _VERSION = "0.1.0"

_SERVICE = "otel-dashboard"

# Frame caps: one "events" frame carries at most this many events or (roughly) this many bytes.
_MAX_FRAME_EVENTS = 1000
_MAX_FRAME_BYTES = 1024 * 1024
# Events waiting in the thread -> loop hand-off; beyond this they are dropped (and clients told).
_HANDOFF_LIMIT = 100_000
# At most this many events are fanned out per drain callback before the loop gets a turn.
_DRAIN_BATCH = 2000
# aiohttp closes the connection (1009) for frames above its own limit; ours answers with an error.
_AIOHTTP_MIN_MSG_SIZE = 1024 * 1024
# Closing a slow client: after ws.close() returns, wait this long at most for its buffer to empty.
_CLOSE_POLL_SECONDS = 0.05
# At shutdown each client gets at most this long (or send_timeout_seconds) to take the close frame.
_SHUTDOWN_CLOSE_SECONDS = 2.0
# Subscribe filters: at most this many values per list.
_MAX_FILTER_VALUES = 1000
# A drop makes /health and system_health_updated "degraded" for at least this long.
_DEGRADED_WINDOW_SECONDS = 10.0
_RATE_WINDOW_SECONDS = 10

_EVENTS_PREFIX = b'{"type":"events","events":['
_EVENTS_SUFFIX = b"]}"
_REPLAY_SUFFIX = b'],"replay":true}'

# Queue item kinds, stored in the seq slot (event seqs start at 1).
_CONTROL = 0
_GAP = -1

_EVENT_TYPE_VALUES = frozenset(t.value for t in EventType)
_SEVERITY_VALUES = frozenset(s.value for s in Severity)
_API_EVENTS_PARAMS = frozenset({"after_seq", "event_type", "severity", "agent", "limit"})

_CODE_TRY_AGAIN_LATER = 1013  # WSCloseCode.TRY_AGAIN_LATER, spelled out for old aiohttp versions


def _default_web_dir() -> Path:
    package_dir = Path(otel_dashboard.__file__).resolve().parent
    wheel_dir = package_dir / "_web"
    if wheel_dir.is_dir():
        return wheel_dir
    return package_dir.parent / "web"


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_json_default)


def _json_default(value: Any) -> Any:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_dumps(obj), status=status, content_type="application/json", headers=headers
    )


def _json_error(
    status: int, message: str, parameter: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if parameter is not None:
        body["parameter"] = parameter
    return _json_response(body, status=status, headers=headers)


class _BadParameter(ValueError):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _event_matches(query: EventQuery | None, event: DashboardEvent) -> bool:
    if query is None:
        return True
    try:
        return query.matches(event)
    except TypeError:  # an unhashable agent name in the event's data never matches a filter
        return False


# --------------------------------------------------------------------------- options
def _check_int(name: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer between {low} and {high}, got {value!r}")
    return value


def _check_seconds(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or value != value
        or not 0 < value <= 86_400
    ):
        extra = " or None" if allow_none else ""
        raise ValueError(f"{name} must be a number of seconds > 0 (at most 86400){extra}, got {value!r}")
    return float(value)


class _Options:
    """The server's validated options (shared by :func:`create_app` and the server)."""

    __slots__ = (
        "client_queue_size",
        "compress",
        "dashboard_html_path",
        "health_interval_seconds",
        "heartbeat_seconds",
        "history_size",
        "max_message_bytes",
        "metrics_interval_seconds",
        "name",
        "overflow_window_seconds",
        "send_timeout_seconds",
        "stall_threshold_seconds",
        "static_dir",
    )

    def __init__(
        self,
        *,
        dashboard_html_path: str | os.PathLike[str] | None,
        static_dir: str | os.PathLike[str] | None,
        history_size: int,
        name: str | None,
        client_queue_size: int,
        send_timeout_seconds: float,
        heartbeat_seconds: float | None,
        max_message_bytes: int,
        health_interval_seconds: float | None,
        metrics_interval_seconds: float | None,
        overflow_window_seconds: float,
        stall_threshold_seconds: float | None,
        compress: bool,
    ) -> None:
        self.history_size = _check_int("history_size", history_size, 0, 100_000)
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise ValueError(f"name must be a string of at most 200 characters or None, got {name!r}")
        self.name = name or None
        self.client_queue_size = _check_int("client_queue_size", client_queue_size, 1, 10_000_000)
        self.send_timeout_seconds = _check_seconds("send_timeout_seconds", send_timeout_seconds)
        self.heartbeat_seconds = _check_seconds("heartbeat_seconds", heartbeat_seconds, allow_none=True)
        self.max_message_bytes = _check_int("max_message_bytes", max_message_bytes, 64, 16 * 1024 * 1024)
        self.health_interval_seconds = _check_seconds(
            "health_interval_seconds", health_interval_seconds, allow_none=True
        )
        self.metrics_interval_seconds = _check_seconds(
            "metrics_interval_seconds", metrics_interval_seconds, allow_none=True
        )
        self.overflow_window_seconds = _check_seconds("overflow_window_seconds", overflow_window_seconds)
        self.stall_threshold_seconds = _check_seconds(
            "stall_threshold_seconds", stall_threshold_seconds, allow_none=True
        )
        if not isinstance(compress, bool):
            raise ValueError(f"compress must be True or False, got {compress!r}")
        self.compress = compress
        for pname, pvalue in (("dashboard_html_path", dashboard_html_path), ("static_dir", static_dir)):
            if pvalue is not None and not isinstance(pvalue, (str, os.PathLike)):
                raise ValueError(f"{pname} must be a path or None, got {pvalue!r}")
        self.dashboard_html_path = Path(dashboard_html_path) if dashboard_html_path is not None else None
        self.static_dir = Path(static_dir) if static_dir is not None else None


# --------------------------------------------------------------------------- clients
class _Replay:
    __slots__ = ("after", "count", "cursor", "until")

    def __init__(self, after: int, until: int) -> None:
        self.after = after
        self.cursor = after
        self.until = until
        self.count = 0


class _Client:
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


# --------------------------------------------------------------------------- the hub
class _Hub:
    """Fans state events out to the connected clients; owns the clients, the timers and the counters."""

    def __init__(self, state: DashboardState, options: _Options) -> None:
        self.state = state
        self.options = options
        self._clients: dict[int, _Client] = {}
        self._client_list: tuple[_Client, ...] = ()
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
        self._cpu_sample = (time.monotonic(), time.process_time())

    # ------------------------------------------------------------ lifecycle
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self.started_monotonic = time.monotonic()
        self._cpu_sample = (time.monotonic(), time.process_time())
        if self.options.stall_threshold_seconds is not None:
            self.state.stall_threshold_seconds = self.options.stall_threshold_seconds
        self.state.subscribe(self._on_event)
        self._subscribed = True
        if self.options.metrics_interval_seconds is not None:
            self._spawn(self._metrics_loop(self.options.metrics_interval_seconds))
        if self.options.health_interval_seconds is not None:
            self._spawn(self._health_loop(self.options.health_interval_seconds))
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
        """Cancel and await the timers, writers and close tasks (the app's cleanup)."""
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
            if client.filter is not None and not _event_matches(client.filter, event):
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

    def _enqueue(self, client: _Client, kind: int, message: dict[str, Any]) -> None:
        """Queue a control message (in order with the events)."""
        if client.closing:
            return
        if len(client.queue) >= self.options.client_queue_size:
            self._overflow(client)
            if client.closing:
                return
        client.queue.append((kind, _dumps(message)))
        client.wake()

    def _overflow(self, client: _Client) -> None:
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

    def _kick(self, client: _Client, code: int, reason: str) -> None:
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

    # ------------------------------------------------------------ clients
    def register(self, ws: web.WebSocketResponse, request: web.Request) -> _Client:
        """Snapshot + register + queue the snapshot, in one synchronous block (nothing lost or doubled)."""
        client = _Client(self._next_client_id, ws, request)
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
                "version": _VERSION,
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

    def unregister(self, client: _Client) -> None:
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

    async def _close_client(
        self, client: _Client, code: int, reason: str, timeout: float | None = None
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
    async def _send(self, client: _Client, data: bytes) -> None:
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

    async def _run_writer(self, client: _Client) -> None:
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

    async def _replay_step(self, client: _Client, replay: _Replay) -> None:
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
            gap = {"type": "gap", "from": replay.cursor + 1, "to": to, "reason": "history"}
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
            if _event_matches(client.filter, event):
                payload = event.to_json_bytes()
                parts.append(payload)
                size += len(payload) + 1
                if size >= _MAX_FRAME_BYTES:
                    break
        if parts:
            replay.count += len(parts)
            client.sent_events += len(parts)
            await self._send(client, _EVENTS_PREFIX + b",".join(parts) + _REPLAY_SUFFIX)

    # ------------------------------------------------------------ client messages
    def handle_text(self, client: _Client, data: str) -> None:
        limit = self.options.max_message_bytes
        size = len(data)
        if size > limit or (not data.isascii() and len(data.encode("utf-8", "replace")) > limit):
            self.send_error(client, f"message too large: the limit is {limit} bytes")
            return
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.send_error(client, "malformed JSON")
            return
        if not isinstance(message, dict):
            self.send_error(client, "a message must be a JSON object")
            return
        mtype = message.get("type")
        if not isinstance(mtype, str):
            self.send_error(client, "a message needs a string field 'type'")
            return
        if mtype == "ping":
            self._enqueue(client, _CONTROL, {
                "type": "pong", "seq": self.state.last_seq, "timestamp": format_timestamp(),
            })
        elif mtype == "subscribe":
            self._handle_subscribe(client, message)
        elif mtype == "resume":
            self._handle_resume(client, message)
        else:
            self.send_error(
                client, f"unknown message type {_short(mtype)}; expected subscribe, resume or ping"
            )

    def send_error(self, client: _Client, message: str) -> None:
        self._enqueue(client, _CONTROL, {"type": "error", "message": message})

    def _handle_subscribe(self, client: _Client, message: dict[str, Any]) -> None:
        lists: dict[str, list[str]] = {}
        for key, allowed in (
            ("event_types", _EVENT_TYPE_VALUES),
            ("severities", _SEVERITY_VALUES),
            ("agents", None),
        ):
            value = message.get(key)
            if value is None:
                lists[key] = []
                continue
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                self.send_error(client, f"subscribe: {key} must be a list of strings")
                return
            if len(value) > _MAX_FILTER_VALUES:
                self.send_error(client, f"subscribe: {key} has more than {_MAX_FILTER_VALUES} values")
                return
            if allowed is not None:
                unknown = sorted(set(value) - allowed)
                if unknown:
                    shown = ", ".join(_short(v, 40) for v in unknown[:10])
                    self.send_error(client, f"subscribe: unknown {key}: {shown}")
                    return
            lists[key] = sorted(set(value))
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

    def _handle_resume(self, client: _Client, message: dict[str, Any]) -> None:
        after = message.get("after_seq")
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            self.send_error(client, "resume: after_seq must be an integer >= 0")
            return
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

    # ------------------------------------------------------------ health and stats
    def events_per_second(self) -> float:
        now = int(time.monotonic())
        window_start = now - _RATE_WINDOW_SECONDS + 1
        total = sum(count for sec, count in self._rate if sec >= window_start)
        elapsed = min(float(_RATE_WINDOW_SECONDS), max(1.0, time.monotonic() - self.started_monotonic))
        return round(total / elapsed, 2)

    def drops_by_reason(self) -> dict[str, int]:
        counters = self.state.get_counters()
        out = {
            "upstream": counters["dropped_events"],
            "queue_overflow": self.drops["queue_overflow"],
            "slow_client_closed": self.drops["slow_client_closed"],
            "handoff_overflow": self.drops["handoff_overflow"],
        }
        out["total"] = sum(out.values())
        return out

    def uptime_seconds(self) -> float:
        return round(time.monotonic() - self.started_monotonic, 3)

    def health(self) -> dict[str, Any]:
        """Status and numbers shared by ``/health`` and ``system_health_updated``."""
        drops = self.drops_by_reason()["total"]
        now = time.monotonic()
        if drops != self._seen_drop_total:
            self._seen_drop_total = drops
            self._last_drop_change = now
        window = max(_DEGRADED_WINDOW_SECONDS, self.options.health_interval_seconds or 0.0)
        recently_dropped = self._last_drop_change is not None and now - self._last_drop_change < window
        agents = self.state.get_active_agents()
        stalled = sum(1 for a in agents if a.get("stalled"))
        return {
            "status": "degraded" if recently_dropped or stalled else "ok",
            "connected_clients": self.client_count,
            "events_per_second": self.events_per_second(),
            "dropped_events": drops,
            "uptime_seconds": self.uptime_seconds(),
            "active_agents": len(agents),
            "stalled_agents": stalled,
        }

    def stats(self) -> dict[str, Any]:
        stats = self.state.get_dashboard_stats()
        stats.update({
            "connected_clients": self.client_count,
            "events_per_second": self.events_per_second(),
            "dropped_events": self.drops_by_reason(),
            "server_uptime_seconds": self.uptime_seconds(),
            "clients": [c.info() for c in self._client_list],
        })
        return stats

    def _cpu_percent(self) -> float:
        wall, cpu = time.monotonic(), time.process_time()
        last_wall, last_cpu = self._cpu_sample
        self._cpu_sample = (wall, cpu)
        if wall - last_wall <= 0:
            return 0.0
        return round(100.0 * (cpu - last_cpu) / (wall - last_wall), 1)

    # ------------------------------------------------------------ timers
    async def _metrics_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.state.emit_metrics_if_changed()
            except Exception:
                logger.exception("publishing metrics_updated failed")

    async def _health_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.publish_health()
            except Exception:
                logger.exception("publishing system_health_updated failed")

    def publish_health(self) -> DashboardEvent:
        data = self.health()
        rss = _memory_rss_bytes()
        data.update({
            "cpu_percent": self._cpu_percent(),
            "memory_rss_bytes": rss,
            "memory_percent": _memory_percent(rss),
        })
        severity = Severity.WARNING if data["status"] != "ok" else Severity.INFO
        return self.state.publish(DashboardEvent.create(EventType.SYSTEM_HEALTH_UPDATED, data, severity))


def _memory_rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # peak, not current: the best we have
    return int(peak) if os.uname().sysname == "Darwin" else int(peak) * 1024


def _memory_percent(rss: int | None) -> float | None:
    if rss is None:
        return None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return round(100.0 * rss / total, 2) if total > 0 else None


# --------------------------------------------------------------------------- the app
HUB_KEY = web.AppKey("otel_dashboard_hub", _Hub)
_HTML_KEY = web.AppKey("otel_dashboard_html", Path)
_STATIC_KEY = web.AppKey("otel_dashboard_static", Path)


@web.middleware
async def _error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _json_error(exc.status, (exc.reason or "error").lower(), headers=headers)
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        logger.exception("unhandled error serving %s %s", request.method, request.path)
        return _json_error(500, "internal server error")


async def _index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/dashboard")


async def _dashboard_page(request: web.Request) -> web.StreamResponse:
    path = request.app[_HTML_KEY]
    if not path.is_file():
        logger.error("the dashboard page %s disappeared", path)
        return _json_error(404, "dashboard page not found")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


async def _static_file(request: web.Request) -> web.StreamResponse:
    # Our own static handler (not add_static) so that a miss is a JSON 404 like every other one.
    root = request.app[_STATIC_KEY]
    relative = request.match_info["path"]
    if not relative or "\x00" in relative:
        return _json_error(404, "not found")
    try:
        path = (root / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        return _json_error(404, "not found")
    if not path.is_relative_to(root) or not path.is_file():
        return _json_error(404, "not found")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


async def _health(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    health = hub.health()
    return _json_response({
        "status": health["status"],
        "service": _SERVICE,
        "name": hub.options.name,
        "version": _VERSION,
        "timestamp": format_timestamp(),
        "connected_clients": health["connected_clients"],
        "uptime_seconds": health["uptime_seconds"],
        "events_per_second": health["events_per_second"],
        "dropped_events": health["dropped_events"],
        "last_seq": hub.state.last_seq,
        "active_agents": health["active_agents"],
        "stalled_agents": health["stalled_agents"],
    })


async def _stats(request: web.Request) -> web.Response:
    return _json_response(request.app[HUB_KEY].stats())


def _multi(query: Any, name: str) -> list[str]:
    values: list[str] = []
    for raw in query.getall(name, ()):
        values.extend(v.strip() for v in raw.split(",") if v.strip())
    return values


def _int_param(query: Any, name: str, low: int, high: int | None, default: int | None) -> int | None:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadParameter(name, f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise _BadParameter(name, f"{name} must be {bound}")
    return value


def _parse_events_query(query: Any) -> tuple[EventQuery, int]:
    for key in query:
        if key not in _API_EVENTS_PARAMS:
            raise _BadParameter(key, f"unknown parameter {_short(key, 40)}; expected one of "
                                     + ", ".join(sorted(_API_EVENTS_PARAMS)))
    after_seq = _int_param(query, "after_seq", 0, None, None)
    limit = _int_param(query, "limit", 1, 1000, 100)
    event_types = _multi(query, "event_type")
    bad = [t for t in event_types if t not in _EVENT_TYPE_VALUES]
    if bad:
        raise _BadParameter("event_type", f"unknown event_type {_short(bad[0], 40)}")
    severities = _multi(query, "severity")
    bad = [s for s in severities if s not in _SEVERITY_VALUES]
    if bad:
        raise _BadParameter("severity", f"unknown severity {_short(bad[0], 40)}")
    agents = _multi(query, "agent")
    if len(agents) > _MAX_FILTER_VALUES:
        raise _BadParameter("agent", f"at most {_MAX_FILTER_VALUES} agents")
    q = EventQuery(
        after_seq=after_seq,
        event_types=event_types or None,
        severities=severities or None,
        agents=agents or None,
    )
    return q, limit or 100


async def _api_events(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    try:
        query, limit = _parse_events_query(request.query)
    except _BadParameter as exc:
        return _json_error(400, str(exc), parameter=exc.parameter)
    state = hub.state
    last_seq = state.last_seq
    try:
        events = state.query_events(query, limit)
    except TypeError:  # unhashable agent values in stored data: fall back to a safe scan
        events = [e for e in state.get_events_after(query.after_seq or 0, 1_000_000)
                  if _event_matches(query, e)][:limit]
    body = (
        b'{"events":[' + b",".join(e.to_json_bytes() for e in events)
        + b'],"last_seq":' + str(last_seq).encode()
        + b',"first_seq":' + _dumps(state.store.first_seq()) + b"}"
    )
    return web.Response(body=body, content_type="application/json")


async def _websocket(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB_KEY]
    options = hub.options
    if hub.closing:
        return _json_error(503, "server shutting down")
    ws = web.WebSocketResponse(
        heartbeat=options.heartbeat_seconds,
        max_msg_size=max(_AIOHTTP_MIN_MSG_SIZE, 2 * options.max_message_bytes),
        compress=options.compress,
    )
    if not ws.can_prepare(request).ok:
        return _json_error(400, "expected a WebSocket upgrade request")
    try:
        await ws.prepare(request)
    except ConnectionError:
        return ws
    if hub.closing:
        with suppress(Exception):
            await asyncio.wait_for(
                ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown"),
                options.send_timeout_seconds,
            )
        return ws
    client = hub.register(ws, request)
    try:
        async for msg in ws:
            if client.closing:
                continue
            if msg.type is WSMsgType.TEXT:
                try:
                    hub.handle_text(client, msg.data)
                except Exception:
                    logger.exception("dashboard client %s: handling a message failed", client.id)
                    hub.send_error(client, "internal error")
            elif msg.type is WSMsgType.BINARY:
                hub.send_error(client, "binary messages are not supported; send JSON text")
            elif msg.type is WSMsgType.ERROR:
                logger.debug("dashboard client %s: %s", client.id, ws.exception())
                break
    except ConnectionError:
        pass
    finally:
        hub.unregister(client)
    return ws


def create_app(
    state: DashboardState | None = None,
    *,
    dashboard_html_path: str | os.PathLike[str] | None = None,
    history_size: int = 100,
    name: str | None = None,
    **options: Any,
) -> web.Application:
    """Build the dashboard's :class:`aiohttp.web.Application` (for tests and custom runners).

    Takes the same options as :class:`DashboardWebSocketServer` (except host and port). Running
    the app (``AppRunner`` or ``aiohttp_client``) subscribes it to ``state``; cleaning it up
    closes every socket and unsubscribes.

    Raises:
        FileNotFoundError: the dashboard page (or a given ``static_dir``) does not exist.
        ValueError: an invalid option, named in the message.
    """
    return _build_app(state, _make_options(dashboard_html_path, history_size, name, options))


_OPTION_DEFAULTS: dict[str, Any] = {
    "static_dir": None,
    "client_queue_size": 10_000,
    "send_timeout_seconds": 10.0,
    "heartbeat_seconds": 20.0,
    "max_message_bytes": 64 * 1024,
    "health_interval_seconds": 5.0,
    "metrics_interval_seconds": 1.0,
    "overflow_window_seconds": 30.0,
    "stall_threshold_seconds": None,
    "compress": False,
}


def _make_options(
    dashboard_html_path: Any, history_size: Any, name: Any, options: dict[str, Any]
) -> _Options:
    unknown = set(options) - set(_OPTION_DEFAULTS)
    if unknown:
        raise TypeError(f"unexpected option(s): {', '.join(sorted(unknown))}")
    return _Options(
        dashboard_html_path=dashboard_html_path, history_size=history_size, name=name,
        **{**_OPTION_DEFAULTS, **options},
    )


def _build_app(state: DashboardState | None, options: _Options) -> web.Application:
    web_dir = _default_web_dir()
    html = options.dashboard_html_path or web_dir / "index.html"
    if not html.is_file():
        raise FileNotFoundError(f"dashboard page not found: {html} (pass dashboard_html_path=)")
    static_dir = options.static_dir
    if static_dir is not None and not static_dir.is_dir():
        raise FileNotFoundError(f"static_dir is not a directory: {static_dir}")
    if static_dir is None and web_dir.is_dir():
        static_dir = web_dir

    hub = _Hub(state if state is not None else get_dashboard(), options)
    app = web.Application(middlewares=[_error_middleware])
    app[HUB_KEY] = hub
    app[_HTML_KEY] = html.resolve()
    if static_dir is not None:
        app[_STATIC_KEY] = static_dir.resolve()

    async def hub_context(app: web.Application) -> AsyncIterator[None]:
        hub.start(asyncio.get_running_loop())
        yield
        await hub.cleanup()

    async def on_shutdown(app: web.Application) -> None:
        await hub.shutdown()

    app.cleanup_ctx.append(hub_context)
    app.on_shutdown.append(on_shutdown)
    app.router.add_get("/", _index)
    app.router.add_get("/dashboard", _dashboard_page)
    app.router.add_get("/dashboard/", _index)
    app.router.add_get("/ws", _websocket)
    app.router.add_get("/health", _health)
    app.router.add_get("/stats", _stats)
    app.router.add_get("/api/events", _api_events)
    if static_dir is not None:
        app.router.add_get("/static/{path:.*}", _static_file)
    return app


# --------------------------------------------------------------------------- the server
class DashboardWebSocketServer:
    """The dashboard server: page, WebSocket stream, health, stats and history over aiohttp.

    Use it as an async context manager, or call :meth:`start` / :meth:`stop` (or
    :meth:`run_forever`) from a running event loop.

    Args:
        host: interface to listen on (loopback by default; ``"0.0.0.0"`` exposes it).
        port: TCP port; 0 picks a free one (read it back from :attr:`port`).
        dashboard_html_path: the page served at ``/dashboard``; the package's ``web/index.html``
            by default.
        state: the :class:`DashboardState` to serve; :func:`get_dashboard` when None.
        history_size: newest events sent in each client's snapshot (0-100000). How much history
            ``resume`` and ``/api/events`` can reach is the state's own store bound
            (``DashboardState(max_history=...)``).
        name: a label for this dashboard, shown on the page and in ``/health``.
        static_dir: directory served under ``/static/``; the package's ``web/`` by default.
        client_queue_size: events (and control messages) queued per client before the slow-client
            policy kicks in.
        send_timeout_seconds: a single frame that takes longer closes the client (1013); also the
            time a close handshake gets before the connection is aborted.
        heartbeat_seconds: WebSocket ping interval; a peer that does not answer within half of it
            is disconnected. None disables heartbeats.
        max_message_bytes: largest client message accepted (bigger ones get an error message).
        health_interval_seconds: period of ``system_health_updated``; None disables it.
        metrics_interval_seconds: period of the ``metrics_updated`` check; None disables it.
        overflow_window_seconds: a second queue overflow within this window closes the client.
        stall_threshold_seconds: if given, sets ``state.stall_threshold_seconds`` at start.
        compress: negotiate permessage-deflate (saves bandwidth, costs CPU per client).

    Raises:
        ValueError: an invalid option, named in the message.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        dashboard_html_path: str | os.PathLike[str] | None = None,
        *,
        state: DashboardState | None = None,
        history_size: int = 100,
        name: str | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty string, got {host!r}")
        self.host = host
        self._requested_port = _check_int("port", port, 0, 65535)
        if state is not None and not isinstance(state, DashboardState):
            raise ValueError(f"state must be a DashboardState or None, got {type(state).__name__}")
        self._options = _make_options(dashboard_html_path, history_size, name, options)
        self._state = state
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None
        self._port: int | None = None
        self._stopped: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None

    # ------------------------------------------------------------ properties
    @property
    def state(self) -> DashboardState:
        """The state this server serves."""
        return self._state if self._state is not None else get_dashboard()

    @property
    def name(self) -> str | None:
        """The dashboard's label, or None."""
        return self._options.name

    @property
    def port(self) -> int:
        """The bound port once started (the chosen one when started with port 0)."""
        return self._port if self._port is not None else self._requested_port

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def dashboard_url(self) -> str:
        """The URL of the dashboard page."""
        return self.url + "/dashboard"

    @property
    def started(self) -> bool:
        """Whether the server is listening."""
        return self._runner is not None

    @property
    def app(self) -> web.Application | None:
        """The running application (None when stopped)."""
        return self._app

    @property
    def connected_clients(self) -> int:
        """WebSocket clients connected right now."""
        return self._app[HUB_KEY].client_count if self._app is not None else 0

    # ------------------------------------------------------------ lifecycle
    def create_app(self) -> web.Application:
        """A new application with this server's state and options (``start`` uses it)."""
        return _build_app(self._state, self._options)

    async def start(self) -> None:
        """Listen on ``host:port``; a no-op when already started.

        Raises:
            FileNotFoundError: the dashboard page does not exist.
            OSError: the port cannot be bound.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._runner is not None:
                return
            app = self.create_app()
            runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0)
            await runner.setup()
            try:
                site = web.TCPSite(runner, self.host, self._requested_port)
                await site.start()
            except BaseException:
                await runner.cleanup()
                raise
            addresses = runner.addresses
            self._port = int(addresses[0][1]) if addresses else self._requested_port
            self._runner = runner
            self._app = app
            self._stopped = asyncio.Event()
            logger.info("otel-dashboard serving on %s", self.dashboard_url)

    async def stop(self) -> None:
        """Close every client (1001), stop the timers, unsubscribe and release the port; idempotent."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            runner = self._runner
            if runner is None:
                return
            self._runner = None
            try:
                await runner.cleanup()
            finally:
                self._app = None
                if self._stopped is not None:
                    self._stopped.set()
                logger.info("otel-dashboard on port %s stopped", self._port)

    async def run_forever(
        self, *, on_started: Callable[[DashboardWebSocketServer], object] | None = None
    ) -> None:
        """Start if needed, serve until SIGINT/SIGTERM (or :meth:`stop`), then stop gracefully.

        Args:
            on_started: called once the server listens, with the signal handlers already in place
                (print the URL here: a Ctrl+C after it always means a graceful stop).
        """
        loop = asyncio.get_running_loop()
        signalled = asyncio.Event()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, signalled.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / Windows
                pass
        try:
            await self.start()
        except BaseException:
            for sig in installed:
                loop.remove_signal_handler(sig)
            raise
        if on_started is not None:
            on_started(self)
        stopped = self._stopped
        assert stopped is not None
        waiters = [asyncio.ensure_future(signalled.wait()), asyncio.ensure_future(stopped.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.stop()

    async def __aenter__(self) -> DashboardWebSocketServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        status = "started" if self.started else "stopped"
        return f"<DashboardWebSocketServer {self.url} {status}>"
