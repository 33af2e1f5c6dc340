"""Event history storage.

:class:`EventStore` is the small interface the state and the server read history through;
:class:`MemoryEventStore` keeps a bounded ring in memory (O(1) append and trim), and
:class:`~otel_dashboard.store.sqlite.SqliteEventStore` keeps history in an SQLite file (durable across
restarts, see ``docs/operations.md``).

Every read has an ``async`` twin (``recent_async``, ``after_async``, ``query_async``,
``search_async``, ``count_by_type_async``, ``first_seq_async``) for callers on an event loop: a store
that does I/O answers them from its own thread(s), so the loop never waits for a disk.

:meth:`EventStore.search` is the bounded read behind the history API and ``resume``: one call
examines at most ``max_scanned_rows`` consecutive seqs and returns at most ``max_bytes`` of events,
and its :class:`SearchPage` says where to continue when a bound stopped it.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from collections import deque
from collections.abc import Iterable

from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.store.search import (
    STOPPED_BY_BYTES,
    STOPPED_BY_LIMIT,
    STOPPED_BY_SCAN,
    SearchCollector,
    SearchPage,
    check_search_bounds,
    search_events,
)

__all__ = [
    "STOPPED_BY_BYTES",
    "STOPPED_BY_LIMIT",
    "STOPPED_BY_SCAN",
    "EventQuery",
    "EventStore",
    "MemoryEventStore",
    "SearchCollector",
    "SearchPage",
    "StoreError",
    "StoreReadError",
    "check_search_bounds",
    "search_events",
]


class StoreError(ValueError):
    """The event store cannot be opened or used: a corrupt or unwritable file, a newer schema, a lock.

    The message names the path; :attr:`path` holds it.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


class StoreReadError(StoreError):
    """A read of the history failed (an I/O error, a corrupt page, a lock held too long).

    :meth:`EventStore.search` raises it rather than answer as if nothing matched: the history API
    turns it into a 503, a ``resume`` into an error message.
    """


class EventQuery:
    """Filters of a history query; ``None`` means "any".

    Args:
        after_seq: only events with ``seq`` greater than this.
        event_types: only these event types.
        severities: only these severities.
        agents: only events whose ``data`` names one of these agents (by id or name).
        services: only events whose ``data["service_name"]`` is one of these.
        run_ids: only events whose ``data["run_id"]`` is one of these (a run's started and
            completed events, and the other events that name it).
        until_seq: only events with ``seq`` up to this one, included. A snapshot reads with it the
            history up to the ``seq`` it captured, after it let go of the state's lock (events
            accepted meanwhile reach the snapshot's subscriber, not its history).
        root_only: only events whose ``data["parent_run_id"]`` is null or missing (root runs).
        conversation_ids: only events whose ``data["conversation_id"]`` is one of these.
        trace_ids: only events whose ``trace_id`` is one of these (lower-case hex).
        success: only events whose ``data["success"]`` is this boolean (None: any).
    """

    __slots__ = ("after_seq", "agents", "conversation_ids", "event_types", "root_only", "run_ids", "services",
                 "severities", "success", "trace_ids", "until_seq")

    def __init__(
        self,
        *,
        after_seq: int | None = None,
        event_types: Iterable[EventType | str] | None = None,
        severities: Iterable[Severity | str] | None = None,
        agents: Iterable[str] | None = None,
        services: Iterable[str] | None = None,
        until_seq: int | None = None,
        run_ids: Iterable[str] | None = None,
        root_only: bool = False,
        conversation_ids: Iterable[str] | None = None,
        trace_ids: Iterable[str] | None = None,
        success: bool | None = None,
    ) -> None:
        self.after_seq = after_seq
        self.until_seq = until_seq
        self.event_types = frozenset(EventType(t) for t in event_types) if event_types else None
        self.severities = frozenset(Severity(s) for s in severities) if severities else None
        self.agents = frozenset(agents) if agents else None
        self.services = frozenset(services) if services else None
        self.run_ids = frozenset(run_ids) if run_ids else None
        self.root_only, self.success = root_only, success
        self.conversation_ids = frozenset(conversation_ids) if conversation_ids else None
        self.trace_ids = frozenset(trace_ids) if trace_ids else None

    def matches(self, event: DashboardEvent) -> bool:
        """Whether ``event`` passes every filter."""
        if self.after_seq is not None and (event.seq or 0) <= self.after_seq:
            return False
        if self.until_seq is not None and (event.seq or 0) > self.until_seq:
            return False
        if self.event_types is not None and event.event_type not in self.event_types:
            return False
        if self.severities is not None and event.severity not in self.severities:
            return False
        data = event.data
        if self.agents is not None and not (
                _named(data.get("agent_name"), self.agents) or _named(data.get("agent_id"), self.agents)):
            return False
        if self.run_ids is not None and not _named(data.get("run_id"), self.run_ids):
            return False
        if self.root_only and data.get("parent_run_id") is not None:
            return False
        if self.conversation_ids and not _named(data.get("conversation_id"), self.conversation_ids):
            return False
        if self.trace_ids is not None and not _named(event.trace_id, self.trace_ids):
            return False
        if self.success is not None and data.get("success") is not self.success:
            return False
        return self.services is None or _named(data.get("service_name"), self.services)


def _named(value: object, names: frozenset[str]) -> bool:
    # Only a string names something (as in the database's columns): an object or a list in the
    # event's data never matches, and never raises TypeError (unhashable) either.
    return isinstance(value, str) and value in names


class EventStore:
    """Where accepted events are kept. Implementations are thread-safe.

    The ``async`` reads run the plain ones in a worker thread here (:func:`asyncio.to_thread`), so a
    store that only implements those never blocks a loop; a store with its own reader overrides them.
    """

    def append(self, event: DashboardEvent) -> None:
        """Keep ``event`` (its ``seq`` is already set and larger than any kept before)."""
        raise NotImplementedError

    def recent(self, limit: int) -> list[DashboardEvent]:
        """Up to ``limit`` newest events, newest first."""
        raise NotImplementedError

    def after(self, after_seq: int, limit: int) -> list[DashboardEvent]:
        """Up to ``limit`` events with ``seq > after_seq``, in ascending ``seq`` order."""
        raise NotImplementedError

    def query(self, query: EventQuery, limit: int) -> list[DashboardEvent]:
        """Up to ``limit`` events matching ``query``, ascending ``seq`` order.

        With ``query.after_seq`` set, these are the first matches after it; without it, the newest
        matches (still returned oldest first).
        """
        raise NotImplementedError

    def search(
        self, query: EventQuery, limit: int, *, max_scanned_rows: int | None = None,
        max_bytes: int | None = None,
    ) -> SearchPage:
        """The matches of ``query`` that :meth:`query` gives, with bounds on the work and the size.

        With ``query.after_seq`` the search walks upwards from it, else downwards from the newest
        event (or ``query.until_seq``). It stops at the first bound reached: ``limit`` matches, the
        next match passing ``max_bytes`` (the sum of the events' JSON wire forms plus one byte
        each; the first match is always kept), or ``max_scanned_rows`` stored events walked over
        (None: no cap). The page says which, and where to continue.

        This default has no scan cap (it reads through :meth:`query`); the stores of this package
        implement the cap.

        Raises:
            ValueError: a bound is not a positive integer.
            StoreReadError: the store could not be read (never an empty page instead).
        """
        check_search_bounds(limit, max_scanned_rows, max_bytes)
        ascending = query.after_seq is not None
        found = self.query(query, limit + 1)
        collector = SearchCollector(query, limit, max_bytes)
        for event in found if ascending else reversed(found):
            if not collector.add(event):
                break
        if query.until_seq is not None:
            end = query.until_seq
        else:
            end = max(query.after_seq or 0, self.last_seq() or 0)
        first = (found[0].seq if ascending else found[-1].seq) if found else None
        page = collector.page(ascending=ascending, first=first, scan_stop=None, end=end,
                              low=(found[0].seq or 1) if found else 1)
        return page._replace(oldest_seq=self.first_seq())

    def first_seq(self) -> int | None:
        """The smallest ``seq`` still held, or ``None`` when empty."""
        raise NotImplementedError

    def last_seq(self) -> int | None:
        """The largest ``seq`` ever appended (kept or not), or ``None`` before the first.

        A durable store remembers it across restarts, so numbering can continue after it.
        """
        newest = self.recent(1)
        return newest[0].seq if newest else None

    def count_by_type(self) -> dict[str, int]:
        """How many events of each type are held (keys are event type values)."""
        counts: dict[str, int] = {}
        cursor = 0
        while True:
            page = self.after(cursor, 10_000)
            if not page:
                return counts
            for event in page:
                counts[event.event_type.value] = counts.get(event.event_type.value, 0) + 1
            cursor = page[-1].seq or cursor + len(page)

    async def recent_async(self, limit: int) -> list[DashboardEvent]:
        """:meth:`recent` for a coroutine: the event loop never waits for the store."""
        return await asyncio.to_thread(self.recent, limit)

    async def after_async(self, after_seq: int, limit: int) -> list[DashboardEvent]:
        """:meth:`after` for a coroutine: the event loop never waits for the store."""
        return await asyncio.to_thread(self.after, after_seq, limit)

    async def query_async(self, query: EventQuery, limit: int) -> list[DashboardEvent]:
        """:meth:`query` for a coroutine: the event loop never waits for the store."""
        return await asyncio.to_thread(self.query, query, limit)

    async def search_async(
        self, query: EventQuery, limit: int, *, max_scanned_rows: int | None = None,
        max_bytes: int | None = None,
    ) -> SearchPage:
        """:meth:`search` for a coroutine: the event loop never waits for the store."""
        return await asyncio.to_thread(self.search, query, limit, max_scanned_rows=max_scanned_rows,
                                       max_bytes=max_bytes)

    async def count_by_type_async(self) -> dict[str, int]:
        """:meth:`count_by_type` for a coroutine: the event loop never waits for the store."""
        return await asyncio.to_thread(self.count_by_type)

    async def first_seq_async(self) -> int | None:
        """:meth:`first_seq` for a coroutine: the event loop never waits for the store."""
        return await asyncio.to_thread(self.first_seq)

    def wait_durable(self, seq: int, timeout_seconds: float = 5.0) -> bool:
        """Block until the event ``seq`` is committed to durable storage.

        Returns:
            True once it is (at once for a store that is not durable); False on timeout, or when the
            event could not be stored (see the implementation's counters).
        """
        return True

    async def wait_durable_async(self, seq: int, timeout_seconds: float = 5.0) -> bool:
        """:meth:`wait_durable` for a coroutine: waits without blocking the event loop."""
        return True

    def restart_holes(self) -> list[tuple[int, int]]:
        """Seq ranges skipped after unclean stops (``(first, last)``, inclusive): events there, if
        any, were accepted and streamed by a server that died before writing them. Empty for stores
        that do not survive a restart."""
        return []

    def close(self) -> None:
        """Release resources; idempotent."""


def _seq_of(event: DashboardEvent) -> int:
    return event.seq or 0


class MemoryEventStore(EventStore):
    """A bounded in-memory ring of events; the oldest go first.

    Its ``async`` reads run inline: they copy a list in memory and touch no disk, which costs the
    loop less than a hop to a thread and back.

    Args:
        max_events: how many events to keep (a positive integer).

    Raises:
        ValueError: ``max_events`` is not a positive integer.
    """

    def __init__(self, max_events: int = 100) -> None:
        if not isinstance(max_events, int) or isinstance(max_events, bool) or max_events < 1:
            raise ValueError(f"max_events must be a positive integer, got {max_events!r}")
        self.max_events = max_events
        self._events: deque[DashboardEvent] = deque(maxlen=max_events)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._events)

    def append(self, event: DashboardEvent) -> None:
        with self._lock:
            self._events.append(event)

    def _snapshot(self) -> list[DashboardEvent]:
        with self._lock:
            return list(self._events)

    def recent(self, limit: int) -> list[DashboardEvent]:
        if limit <= 0:
            return []
        events = self._snapshot()
        return events[: -limit - 1 : -1]

    def after(self, after_seq: int, limit: int) -> list[DashboardEvent]:
        if limit <= 0:
            return []
        events = self._snapshot()
        # seqs are strictly increasing in the ring, so a binary search finds the start.
        start = bisect.bisect_right(events, after_seq, key=_seq_of)
        return events[start : start + limit]

    def query(self, query: EventQuery, limit: int) -> list[DashboardEvent]:
        if limit <= 0:
            return []
        events = self._snapshot()
        end = len(events)
        if query.until_seq is not None:
            end = bisect.bisect_right(events, query.until_seq, key=_seq_of)
        if query.after_seq is not None:
            out: list[DashboardEvent] = []
            for i in range(bisect.bisect_right(events, query.after_seq, key=_seq_of), end):
                if query.matches(events[i]):
                    out.append(events[i])
                    if len(out) >= limit:
                        break
            return out
        newest: list[DashboardEvent] = []
        for i in range(end - 1, -1, -1):
            if query.matches(events[i]):
                newest.append(events[i])
                if len(newest) >= limit:
                    break
        newest.reverse()
        return newest

    def search(
        self, query: EventQuery, limit: int, *, max_scanned_rows: int | None = None,
        max_bytes: int | None = None,
    ) -> SearchPage:
        """See :meth:`EventStore.search`; ``max_scanned_rows`` counts the events of the ring."""
        check_search_bounds(limit, max_scanned_rows, max_bytes)
        return search_events(self._snapshot(), query, limit, max_scanned_rows=max_scanned_rows,
                             max_bytes=max_bytes)

    def first_seq(self) -> int | None:
        with self._lock:
            return self._events[0].seq if self._events else None

    def last_seq(self) -> int | None:
        with self._lock:
            return self._events[-1].seq if self._events else None

    def count_by_type(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for event in self._snapshot():
            counts[event.event_type.value] = counts.get(event.event_type.value, 0) + 1
        return counts

    # Inline: a copy of a list in memory, no disk (see the class docstring).
    async def recent_async(self, limit: int) -> list[DashboardEvent]:
        return self.recent(limit)

    async def after_async(self, after_seq: int, limit: int) -> list[DashboardEvent]:
        return self.after(after_seq, limit)

    async def query_async(self, query: EventQuery, limit: int) -> list[DashboardEvent]:
        return self.query(query, limit)

    async def count_by_type_async(self) -> dict[str, int]:
        return self.count_by_type()

    async def first_seq_async(self) -> int | None:
        return self.first_seq()
