"""Several dashboard servers sharing one Redis: the cluster's event sequence (``serve --broker``).

Every replica hands the events it accepts (ingest, OTLP, its in-process processor, its timers) to a
:class:`RedisBroker`, which appends them to one Redis Stream with a Lua script that numbers them:
``seq`` is assigned once for the whole cluster (kept in a counter key, and used as the stream entry
id ``<seq>-0``), and the first run event of an agent id never seen by the cluster is preceded by its
``agent_registered`` (a Redis set of known agent ids). Every replica reads the stream (``XREAD
BLOCK``) and accepts each entry into its own :class:`~otel_dashboard.state.dashboard.DashboardState`
(:meth:`~otel_dashboard.state.dashboard.DashboardState.accept_sequenced`): same events, same order, same
``seq`` on every replica, so the metrics, the running agents and the history agree, and a browser can
resume on any replica. Only the leader (a Redis key with a TTL) publishes ``metrics_updated``.

When Redis cannot be reached, the replica keeps going on its own: what it accepts waits in a bounded
buffer (ingest still answers 200 while the buffer has room, 503 when it is full), is shown at once to
its own clients as *provisional* events (no ``seq`` yet), and is appended when Redis is back, after
which every replica receives it with its ``seq``. ``/health`` says ``degraded`` meanwhile. See
``docs/deployment.md``.

Anything that can write to the Redis can add entries of any shape, so the reader takes none on
trust: an entry it cannot use (see :mod:`~otel_dashboard.server.broker.entries` for the kinds) is
skipped, counted in ``/stats`` (``broker.skipped_entries``), logged once per kind per minute, and the
reader's cursor moves past it. An exception nobody foresaw restarts the reader after a backoff;
``/health`` says ``"broker reader not reading"`` while it is not reading.

``redis`` (the ``redis`` package's asyncio client) is an optional extra:
``pip install 'otel-dashboard[redis]'``.

This module is longer than ~400 lines for a reason: :class:`RedisBroker` is one object whose writer
(append script, buffer, provisional events), reader (stream, joining, snapshots) and leader lease
share one Redis client, one buffer and one status; split, each part would reach into the others.
Its configuration is :mod:`otel_dashboard.server.broker.config`, the decoding of the entries it
reads :mod:`otel_dashboard.server.broker.entries`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import orjson
from aiohttp import web

from otel_dashboard.model.events import DashboardEvent, EventType, json_dumps
from otel_dashboard.server.broker.config import BrokerBufferFull, BrokerConfig, redact_url
from otel_dashboard.server.broker.entries import (
    SKIP_KINDS,
    decode_event_entry,
    decode_span_entry,
    parse_entry_id,
)
from otel_dashboard.state.dashboard import first_sight_agent_id, first_sight_registration

if TYPE_CHECKING:
    from otel_dashboard.state.dashboard import DashboardState

__all__ = ["BROKER_KEY", "RedisBroker"]

logger = logging.getLogger(__name__)

_READ_COUNT = 1000
_READ_BLOCK_MILLIS = 1000
_BATCH_EVENTS = 500
_RETRY_MIN_SECONDS = 0.05
_RETRY_MAX_SECONDS = 1.0
_STOP_FLUSH_SECONDS = 2.0
_ACK_TIMEOUT_SECONDS = 2.0
_START_PING_SECONDS = 1.5
_SEEN_IDS = 10_000
_SPAN_BATCH = 1000
_ACCEPT_SLICE = 100
_READER_RESTART_MIN_SECONDS = 0.1
_READER_RESTART_MAX_SECONDS = 5.0
# A reader that has not had an answer from XREAD (which blocks at most _READ_BLOCK_MILLIS) for this
# long while Redis is reachable is not reading.
_READER_STALE_SECONDS = 10.0
_SKIP_LOG_INTERVAL_SECONDS = 60.0

# A stream entry as this client reads it: (id, fields), all bytes. redis-py types its stream replies
# for every protocol and decode_responses setting (bytes | str | None, dicts under RESP3); the client
# here is RESP2 without decoding, so the reads below narrow the replies to these types with a cast.
_Entry = tuple[bytes, dict[bytes, bytes]]
# XREAD's reply: one [stream name, entries] pair per stream that has new entries.
_ReadReply = list[tuple[bytes, list[_Entry]]]

# KEYS: the counter, the stream, the set of known agent ids.
# ARGV: MAXLEN, the caller's newest seq (a floor: a Redis that lost its data must not hand out a seq
# again), then (agent id or "", registration JSON or "", event JSON) per event.
# Returns the seq of each event (registrations take their own seqs in between).
_APPEND_LUA = """
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[2])
if seq < floor then seq = floor end
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if top[1] then
  local last = tonumber(string.match(top[1][1], '^(%d+)'))
  if last and seq < last then seq = last end
end
local out = {}
local function emit(json)
  seq = seq + 1
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], string.format('%d-0', seq), 'e', json)
end
for i = 3, #ARGV, 3 do
  local aid = ARGV[i]
  if aid ~= '' and redis.call('SADD', KEYS[3], aid) == 1 and ARGV[i + 1] ~= '' then
    emit(ARGV[i + 1])
  end
  emit(ARGV[i + 2])
  out[#out + 1] = seq
end
redis.call('SET', KEYS[1], seq)
return out
"""


class _Ticket:
    """One ingest request waiting for its events' seqs."""

    __slots__ = ("future", "remaining", "seqs")

    def __init__(self, future: asyncio.Future[list[int] | None], count: int) -> None:
        self.future = future
        self.remaining = count
        self.seqs: list[int] = [0] * count


class _Item:
    __slots__ = ("event", "index", "shown", "ticket")

    def __init__(self, event: DashboardEvent, ticket: _Ticket | None = None, index: int = 0) -> None:
        self.event = event
        self.ticket = ticket
        self.index = index
        self.shown = False  # delivered to this replica's clients as a provisional event


class RedisBroker:
    """The cluster's sequencer and event feed for one replica (see the module docstring).

    Args:
        config: the broker's configuration.

    Raises:
        RuntimeError: the ``redis`` package is not installed (the message says how to install it).
    """

    def __init__(self, config: BrokerConfig) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError:  # pragma: no cover - the extra is installed for the tests
            raise RuntimeError(
                "--broker needs the redis package: pip install 'otel-dashboard[redis]'") from None
        self.config = config
        self.replica = config.replica_name
        from redis.exceptions import RedisError

        # What a lost or refused Redis command raises: the broker is down (anything else is a bug
        # of the reader, which restarts it).
        self._redis_errors: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)
        self._redis = aioredis.Redis.from_url(
            config.url, socket_connect_timeout=1.0, socket_timeout=_READ_BLOCK_MILLIS / 1000 + 4.0,
            health_check_interval=0,
        )
        prefix = config.prefix
        self._keys = [f"{prefix}:seq", f"{prefix}:events", f"{prefix}:agents"]
        self._stream = f"{prefix}:events"
        self._span_stream = f"{prefix}:spans"
        self._pending_spans: deque[dict[str, Any]] = deque()
        self._leader_key = f"{prefix}:leader"
        self._snapshot_key = f"{prefix}:snapshot"
        self._snapshot_seq = -1
        self._append = self._redis.register_script(_APPEND_LUA)
        self._state: DashboardState | None = None
        self._on_provisional: Callable[[list[DashboardEvent]], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._pending: deque[_Item] = deque()
        self._wake: asyncio.Event | None = None
        self._wake_scheduled = False
        self._tasks: list[asyncio.Task[None]] = []
        self._registered: set[str] = set()
        self._seen_ids: OrderedDict[str, None] = OrderedDict()
        self._highest_assigned = 0
        self._stopped = False
        self.connected = False
        self.last_error: str | None = None
        self.down_since: float | None = None
        self.appended_events = 0
        self.received_events = 0
        self.dropped_events = 0
        self.dropped_spans = 0
        self.duplicate_events = 0
        self.provisional_events = 0
        self.skipped_entries: dict[str, int] = dict.fromkeys(SKIP_KINDS, 0)
        self._skip_logged: dict[str, float] = {}
        self._skip_suppressed: dict[str, int] = {}
        self._reader_task: asyncio.Task[None] | None = None
        self._event_cursor = (0, 0)  # the newest event stream entry id read (taken or skipped)
        self._span_cursor: bytes | None = None  # span records: only those appended after the start
        self._last_read: float | None = None
        self._reader_failed_since: float | None = None
        self.reader_restarts = 0
        self.reader_last_error: str | None = None

    # ------------------------------------------------------------ lifecycle
    async def start(
        self,
        state: DashboardState,
        *,
        on_provisional: Callable[[list[DashboardEvent]], None] | None = None,
    ) -> None:
        """Attach to ``state`` and start reading and appending (on the server's loop).

        Never fails because Redis is down: the replica starts degraded and keeps trying.

        Args:
            state: the replica's state; its events go through the broker from now on.
            on_provisional: called on the loop with events accepted while Redis is unreachable
                (shown to this replica's clients before they have a ``seq``).
        """
        self._state = state
        self._on_provisional = on_provisional
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        try:
            await asyncio.wait_for(self._redis.ping(), _START_PING_SECONDS)
            self._came_up()
        except Exception as exc:
            self._went_down(exc)
        state.attach_sequencer(self)
        self._last_read = time.monotonic()  # reading from now on (it says otherwise within seconds)
        self._reader_task = asyncio.ensure_future(self._run_reader())
        self._tasks = [
            self._reader_task,
            asyncio.ensure_future(self._run_writer()),
            asyncio.ensure_future(self._run_snapshots()),
        ]
        logger.info("otel-dashboard replica %s shares events through %s (stream %s)",
                    self.replica, redact_url(self.config.url), self._stream)

    async def stop(self) -> None:
        """Append what is buffered (for up to 2 s), stop reading, detach from the state; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + _STOP_FLUSH_SECONDS
        while self._pending and self.connected and time.monotonic() < deadline:
            self._kick()
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        if self._pending:
            logger.warning("otel-dashboard broker: %d buffered events were never appended to Redis "
                           "(unreachable at shutdown)", len(self._pending))
            self.dropped_events += len(self._pending)
            self._resolve_buffered(list(self._pending))
            self._pending.clear()
        if self._state is not None:
            self._state.attach_sequencer(None)
        try:
            await self._redis.aclose()
        except Exception:  # pragma: no cover - closing a broken connection
            logger.debug("closing the Redis client failed", exc_info=True)

    # ------------------------------------------------------------ intake
    def submit(self, event: DashboardEvent) -> None:
        """Queue ``event`` for the stream (the state's publish; any thread; never blocks or raises)."""
        if self._stopped or len(self._pending) >= self.config.max_buffered_events:
            self.dropped_events += 1
            if self._state is not None:
                self._state.count_dropped(1)
            return
        self._pending.append(_Item(event))
        self._kick()

    def submit_spans(self, records: list[dict[str, Any]]) -> None:
        """Queue span records for the other replicas' trace views (any thread; never blocks or raises).

        Beyond the buffer's bound (Redis unreachable) the oldest records go first: the events matter,
        a trace view can do without some spans."""
        if self._stopped:
            return
        pending = self._pending_spans
        pending.extend(records)
        excess = len(pending) - self.config.max_buffered_events
        for _ in range(max(0, excess)):
            try:
                pending.popleft()
            except IndexError:  # the writer took them meanwhile
                break
            self.dropped_spans += 1
        self._kick()

    def has_room(self, events: int) -> bool:
        """Whether ``events`` more fit in the buffer (ingest checks this before accepting a request)."""
        return len(self._pending) + events <= self.config.max_buffered_events

    async def append(self, events: list[DashboardEvent]) -> list[int] | None:
        """Queue ``events`` (an ingest request) and wait until Redis has numbered them.

        Returns:
            Their seqs, or None when Redis is unreachable (or slow) and they wait in the buffer;
            either way they are accepted.

        Raises:
            BrokerBufferFull: no room in the buffer; nothing was queued.
        """
        if not events:
            return []
        if self._stopped or not self.has_room(len(events)):
            raise BrokerBufferFull(f"the broker is unreachable and its buffer of "
                                   f"{self.config.max_buffered_events} events is full")
        assert self._loop is not None
        ticket = _Ticket(self._loop.create_future(), len(events))
        self._pending.extend(_Item(event, ticket, i) for i, event in enumerate(events))
        if not self.connected:
            self._show_provisional()
            ticket.future.set_result(None)
        self._kick()
        try:
            return await asyncio.wait_for(asyncio.shield(ticket.future), _ACK_TIMEOUT_SECONDS)
        except asyncio.TimeoutError:
            return None

    def _kick(self) -> None:
        if self._wake is None or self._wake_scheduled:
            return
        if threading.get_ident() == self._loop_thread:
            self._wake.set()
            return
        self._wake_scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._wake_from_thread)  # type: ignore[union-attr]
        except RuntimeError:  # the loop is closed: shutting down
            self._wake_scheduled = False

    def _wake_from_thread(self) -> None:
        self._wake_scheduled = False
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------ writer
    async def _run_writer(self) -> None:
        assert self._wake is not None
        wake = self._wake
        backoff = _RETRY_MIN_SECONDS
        while True:
            await wake.wait()
            wake.clear()
            if self._pending_spans and not self._pending and self.connected:
                await self._ship_spans()
            while self._pending:
                batch = [self._pending.popleft() for _ in range(min(_BATCH_EVENTS, len(self._pending)))]
                try:
                    seqs = await self._append(keys=self._keys, args=self._script_args(batch))
                except asyncio.CancelledError:
                    self._pending.extendleft(reversed(batch))
                    raise
                except Exception as exc:
                    self._pending.extendleft(reversed(batch))
                    self._went_down(exc)
                    self._resolve_buffered(list(self._pending))
                    self._show_provisional()
                    await self._pause(backoff)
                    backoff = min(_RETRY_MAX_SECONDS, backoff * 2)
                    continue
                backoff = _RETRY_MIN_SECONDS
                self._came_up()
                self.appended_events += len(batch)
                if seqs:
                    self._highest_assigned = max(self._highest_assigned, int(seqs[-1]))
                self._resolve(batch, seqs)
                if self._pending_spans and not self._pending:
                    await self._ship_spans()

    async def _ship_spans(self) -> None:
        """Append the queued span records as one entry of the span stream (after the events they go with)."""
        records: list[dict[str, Any]] = []
        while len(records) < _SPAN_BATCH:
            try:  # submit_spans may pop the oldest from another thread (a full buffer)
                records.append(self._pending_spans.popleft())
            except IndexError:
                break
        if not records:
            return
        try:
            await self._redis.xadd(
                self._span_stream,
                {b"o": self.replica.encode(), b"r": json_dumps(records)},
                maxlen=self.config.max_stream_events, approximate=True,
            )
        except asyncio.CancelledError:
            self._pending_spans.extendleft(reversed(records))
            raise
        except Exception as exc:
            self._pending_spans.extendleft(reversed(records))
            self._went_down(exc)
            return
        if self._pending_spans:
            self._kick()

    async def _pause(self, seconds: float) -> None:
        """Wait before retrying; events queued meanwhile are shown provisionally at once."""
        assert self._wake is not None
        deadline = time.monotonic() + seconds
        while not self.connected and (left := deadline - time.monotonic()) > 0:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except asyncio.TimeoutError:
                break
            self._show_provisional()
            self._resolve_buffered(list(self._pending))

    def _script_args(self, batch: list[_Item]) -> list[Any]:
        state = self._state
        floor = max(self._highest_assigned, state.last_seq if state is not None else 0)
        args: list[Any] = [self.config.max_stream_events, floor]
        registered = self._registered
        for item in batch:
            event = item.event
            agent_id = first_sight_agent_id(event)
            registration = b""
            if agent_id is not None:
                agent_id = str(agent_id)
                if agent_id not in registered:
                    registration = first_sight_registration(event, agent_id).to_json_bytes()
            elif event.event_type is EventType.AGENT_REGISTERED and event.data.get("agent_id"):
                agent_id = str(event.data["agent_id"])  # an explicit registration: no first-sight one
            args += (agent_id or "", registration, _wire(event))
        return args

    def _resolve(self, batch: list[_Item], seqs: list[Any]) -> None:
        for item, seq in zip(batch, seqs, strict=True):
            ticket = item.ticket
            if ticket is None:
                continue
            ticket.seqs[item.index] = int(seq)
            ticket.remaining -= 1
            if ticket.remaining == 0 and not ticket.future.done():
                ticket.future.set_result(ticket.seqs)

    @staticmethod
    def _resolve_buffered(batch: list[_Item]) -> None:
        for item in batch:
            ticket = item.ticket
            if ticket is not None and not ticket.future.done():
                ticket.future.set_result(None)

    def _show_provisional(self) -> None:
        # list() copies the deque atomically; iterating it directly races with other threads' appends.
        fresh = [item for item in list(self._pending) if not item.shown]
        if not fresh:
            return
        shown = []
        for item in fresh:
            item.shown = True
            shown.append(item.event)
        self.provisional_events += len(shown)
        if self._on_provisional is not None:
            try:
                self._on_provisional(shown)
            except Exception:
                logger.exception("showing provisional events failed")

    # ------------------------------------------------------------ reader
    async def _run_reader(self) -> None:
        """Keep the reader reading: after any unexpected exception, log it, wait (0.1 s doubling to
        5 s) and read again from where it was. ``/health`` says the reader is not reading meanwhile."""
        state = self._state
        assert state is not None
        backoff = _READER_RESTART_MIN_SECONDS
        while True:
            try:
                await self._read(state)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.reader_restarts += 1
                self.reader_last_error = f"{type(exc).__name__}: {exc}"[:300]
                if self._reader_failed_since is None:
                    self._reader_failed_since = time.monotonic()
                    backoff = _READER_RESTART_MIN_SECONDS
                self._log_once("reader_failed", logging.ERROR,
                               "otel-dashboard broker: the stream reader failed (%s); it restarts after "
                               "%.1f s, doubling to %.0f s while it keeps failing",
                               self.reader_last_error, backoff, _READER_RESTART_MAX_SECONDS,
                               exc_info=exc)
                await asyncio.sleep(backoff)
                backoff = min(_READER_RESTART_MAX_SECONDS, backoff * 2)

    async def _read(self, state: DashboardState) -> None:
        """Read both streams until cancelled; returns only by raising (a bug: :meth:`_run_reader`)."""
        backoff = _RETRY_MIN_SECONDS
        joined = False
        span_stream = self._span_stream.encode()
        while True:
            try:
                if not joined:
                    await self._join(state)
                    if self._span_cursor is None:
                        tail = cast("list[_Entry]",
                                    await self._redis.xrevrange(self._span_stream, "+", "-", count=1))
                        self._span_cursor = tail[0][0] if tail else b"0-0"
                    joined = True
                assert self._span_cursor is not None  # set on joining
                # From the newest entry read, taken or skipped: a skipped newest entry is not read
                # again (and again, at once: a busy loop), nor is an entry whose id is not "<seq>-0".
                cursor = max(self._event_cursor, (state.last_seq, 0))
                reply = cast("_ReadReply | None", await self._redis.xread(
                    {self._stream: f"{cursor[0]}-{cursor[1]}", self._span_stream: self._span_cursor},
                    count=_READ_COUNT, block=_READ_BLOCK_MILLIS,
                ))
            except self._redis_errors as exc:
                self._went_down(exc)
                joined = False  # the stream may have moved on meanwhile: check again
                await asyncio.sleep(backoff)
                backoff = min(_RETRY_MAX_SECONDS, backoff * 2)
                continue
            backoff = _RETRY_MIN_SECONDS
            self._came_up()
            for stream, entries in reply or ():
                if not entries:
                    continue
                if stream == span_stream:
                    if parse_entry_id(entries[-1][0]) is not None:
                        self._span_cursor = entries[-1][0]
                    self._take_spans(state, entries)
                    continue
                events = self._parse(entries)
                # In slices, with a turn for the loop between them: a big reply (a backlog) must not
                # hold up ingest answers and the sockets while every event of it is fanned out.
                for start in range(0, len(events), _ACCEPT_SLICE):
                    if start:
                        await asyncio.sleep(0)
                    self._accept(state, events[start:start + _ACCEPT_SLICE])
                # Past every entry of the reply (in id order), taken or skipped, once they are taken.
                newest = parse_entry_id(entries[-1][0])
                if newest is not None and newest > self._event_cursor:
                    self._event_cursor = newest
            # A whole pass went through: the reader reads.
            self._last_read = time.monotonic()
            self._reader_failed_since = None

    def _accept(self, state: DashboardState, events: list[DashboardEvent]) -> None:
        """Hand numbered events to the state; one that it cannot take is skipped (``unappliable``)
        and the ones after it are still taken."""
        while events:
            before = state.last_seq
            try:
                self.received_events += state.accept_sequenced(events)
                return
            except Exception as exc:
                # accept_sequenced moves last_seq to an event before it takes it: that one failed.
                failed = state.last_seq
                rest = [event for event in events if (event.seq or 0) > failed]
                if len(rest) >= len(events):  # it failed before moving: skip the first, go on
                    rest = events[1:]
                    failed = events[0].seq or 0
                self.received_events += sum(1 for event in events if before < (event.seq or 0) < failed)
                self._skip("unappliable", f"{failed}-0", "event", f"{type(exc).__name__}: {exc}")
                events = rest

    def _take_spans(self, state: DashboardState, entries: list[_Entry]) -> None:
        replica = self.replica.encode()
        max_bytes = self.config.max_entry_bytes
        for entry_id, fields in entries:
            records, problems = decode_span_entry(entry_id, fields, replica=replica,
                                                  max_entry_bytes=max_bytes)
            for kind in problems:
                self._skip(kind, entry_id, "span")
            if records:
                try:
                    state.record_spans(records, from_cluster=True)
                except Exception as exc:
                    self._skip("invalid_span_record", entry_id, "span", f"{type(exc).__name__}: {exc}")

    def _parse(self, entries: list[_Entry]) -> list[DashboardEvent]:
        """The events of event stream entries, in order; other entries are skipped and counted."""
        events: list[DashboardEvent] = []
        seen = self._seen_ids
        max_bytes = self.config.max_entry_bytes
        for entry_id, fields in entries:
            event = decode_event_entry(entry_id, fields, max_entry_bytes=max_bytes)
            if isinstance(event, str):
                self._skip(event, entry_id, "event")
                continue
            # A batch whose reply was lost (a timeout after Redis ran it) is appended again on retry.
            if event.event_id in seen:
                self.duplicate_events += 1
                continue
            seen[event.event_id] = None
            if len(seen) > _SEEN_IDS:
                seen.popitem(last=False)
            if event.event_type is EventType.AGENT_REGISTERED and event.data.get("agent_id"):
                self._registered.add(str(event.data["agent_id"]))
            events.append(event)
        return events

    def _skip(self, kind: str, entry_id: Any, where: str, detail: str = "") -> None:
        """Count a skipped entry (or record) of ``kind`` and log it, once per kind per minute.

        ``where`` is ``"event"``, ``"span"`` (the stream) or ``"saved state"``; ``detail`` what was
        wrong, when an exception said it.
        """
        self.skipped_entries[kind] = self.skipped_entries.get(kind, 0) + 1
        # repr: an id or a detail from the stream must not write lines or control codes into the log.
        shown = entry_id[:40] if isinstance(entry_id, (bytes, str)) else entry_id
        self._log_once(kind, logging.WARNING,
                       "otel-dashboard broker: skipped %s entry %r of the %s stream%s; such entries are "
                       "counted in /stats (broker.skipped_entries) and logged once a minute",
                       kind, shown, where, f" ({detail[:200]!r})" if detail else "")

    def _log_once(self, key: str, level: int, message: str, *args: Any,
                  exc_info: BaseException | None = None) -> None:
        """Log ``message`` at most once per ``key`` per minute, with how many were left out since."""
        now = time.monotonic()
        last = self._skip_logged.get(key)
        if last is not None and now - last < _SKIP_LOG_INTERVAL_SECONDS:
            self._skip_suppressed[key] = self._skip_suppressed.get(key, 0) + 1
            return
        self._skip_logged[key] = now
        suppressed = self._skip_suppressed.pop(key, 0)
        if suppressed:
            message += " (%d more since the last message)"
            args = (*args, suppressed)
        logger.log(level, message, *args, exc_info=exc_info)

    @property
    def reading(self) -> bool:
        """Whether the stream reader works: its task runs, its last pass did not fail, and while
        Redis is reachable its last read answered within 10 s (``/health`` is degraded otherwise)."""
        task = self._reader_task
        if task is None or task.done() or self._reader_failed_since is not None:
            return False
        if not self.connected:
            return True  # waiting for Redis, which /health reports as the broker being down
        last = self._last_read
        return last is not None and time.monotonic() - last < _READER_STALE_SECONDS

    async def _join(self, state: DashboardState) -> None:
        """Catch up with a stream that no longer holds every event after ours (trimmed by ``MAXLEN``).

        The derived state (counts, running agents) needs every event: when the oldest one left is
        beyond ours, take the leader's saved snapshot instead, after copying the history the stream
        still holds up to it. Without a usable snapshot, the replica carries on from what is left
        (and says so in the log).
        """
        oldest = cast("list[_Entry]", await self._redis.xrange(self._stream, "-", "+", count=1))
        if not oldest:
            return
        position = parse_entry_id(oldest[0][0])
        if position is None or position[0] <= state.last_seq + 1:
            return
        first = position[0]
        raw = await self._redis.get(self._snapshot_key)
        try:
            loaded = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            self._skip("invalid_snapshot", self._snapshot_key, "saved state", "not JSON")
            loaded = None
        snapshot: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
        seq = snapshot.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < first - 1 or seq <= state.last_seq:
            logger.warning("otel-dashboard broker: the stream starts at seq %d, after this replica's %d, "
                           "and no saved state covers the gap: counts start from the events still held",
                           first, state.last_seq)
            return
        start = f"{first}-0"
        while True:
            page = cast("list[_Entry]",
                        await self._redis.xrange(self._stream, start, f"{seq}-0", count=_READ_COUNT))
            if not page:
                break
            state.accept_history(self._parse(page))
            start = f"({page[-1][0].decode()}"
        if state.last_seq != seq:  # the stream moved past the snapshot while we copied: use the events
            logger.warning("otel-dashboard broker: history copy ended at seq %d, not %d: no saved state "
                           "taken", state.last_seq, seq)
            return
        try:
            state.import_derived(snapshot)
        except Exception as exc:  # not an export of this version: carry on from the events
            self._skip("invalid_snapshot", self._snapshot_key, "saved state", str(exc))
            return
        logger.info("otel-dashboard broker: joined the cluster at seq %d from its saved state", seq)

    async def _run_snapshots(self) -> None:
        state = self._state
        assert state is not None
        interval = self.config.snapshot_interval_seconds
        lease_millis = int(interval * 3000)
        while True:
            await asyncio.sleep(interval)
            if state.last_seq == self._snapshot_seq or not await self.is_leader(lease_millis):
                continue
            try:
                derived = state.export_derived()
                await self._redis.set(self._snapshot_key, json_dumps(derived))
                self._snapshot_seq = derived["seq"]
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis down (the reader reports it) or an unexpected value: next time
                logger.debug("saving the cluster snapshot failed", exc_info=True)

    # ------------------------------------------------------------ health
    def _went_down(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if self.connected or self.down_since is None:
            self.down_since = time.monotonic()
            logger.warning("otel-dashboard broker %s unreachable (%s): buffering up to %d events",
                           redact_url(self.config.url), self.last_error, self.config.max_buffered_events)
        self.connected = False

    def _came_up(self) -> None:
        if not self.connected:
            if self.down_since is not None and self.last_error is not None:
                logger.info("otel-dashboard broker %s reachable again; appending %d buffered events",
                            redact_url(self.config.url), len(self._pending))
            self.connected = True
            self.down_since = None
            self._kick()

    def status(self) -> dict[str, Any]:
        """What ``/health`` and ``/stats`` say about the broker."""
        return {
            "url": redact_url(self.config.url),
            "stream": self._stream,
            "replica": self.replica,
            "connected": self.connected,
            "buffered_events": len(self._pending),
            "max_buffered_events": self.config.max_buffered_events,
            "down_seconds": (round(time.monotonic() - self.down_since, 3)
                             if self.down_since is not None and not self.connected else None),
            "last_error": self.last_error,
            "appended_events": self.appended_events,
            "received_events": self.received_events,
            "provisional_events": self.provisional_events,
            "dropped_events": self.dropped_events,
            "dropped_spans": self.dropped_spans,
            "duplicate_events": self.duplicate_events,
            "invalid_entries": sum(self.skipped_entries.values()),
            "skipped_entries": dict(self.skipped_entries),
            "reading": self.reading,
            "reader_restarts": self.reader_restarts,
            "reader_last_error": self.reader_last_error,
        }

    async def is_leader(self, ttl_millis: int) -> bool:
        """Whether this replica leads (publishes ``metrics_updated``); takes or renews the lease.

        False when Redis is unreachable: no replica publishes what it could not append anyway.
        """
        replica = self.replica.encode()
        try:
            if await self._redis.set(self._leader_key, replica, nx=True, px=ttl_millis):
                return True
            if await self._redis.get(self._leader_key) == replica:
                await self._redis.pexpire(self._leader_key, ttl_millis)
                return True
        except Exception:
            return False
        return False


def _wire(event: DashboardEvent) -> bytes:
    """The event's JSON without a seq (the stream entry's id carries it)."""
    if event.seq is None:
        return event.to_json_bytes()
    return DashboardEvent.from_dict({**event.to_dict(), "seq": None}).to_json_bytes()


BROKER_KEY = web.AppKey("otel_dashboard_broker", RedisBroker)
"""The application key of the server's :class:`RedisBroker` (only set with ``broker=``)."""
