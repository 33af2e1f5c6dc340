"""The state's history reads: snapshots for new clients, the stats, paging and queries, each plain
and ``async``.

No read of the store happens under the state's lock, which the span worker needs to publish: a
database read can take milliseconds, a publish must not wait for it. A snapshot stays consistent all
the same: under the lock it captures ``seq`` with the derived state (and subscribes, when asked);
outside it, it reads the newest events up to that ``seq`` (``EventQuery.until_seq``). Every event
accepted meanwhile has a larger ``seq``: it goes to the subscriber, never into the snapshot.

The ``async`` forms are for callers on an event loop: their store reads run off the loop (see
``EventStore.query_async``); the capture under the lock happens when the coroutine starts, before
its first suspension.

A snapshot's events add up to at most ``max_snapshot_bytes`` of JSON (the state's
:class:`~otel_dashboard.model.limits.Limits`): the oldest are left out first, so the newest events
and the snapshot's ``seq`` stay (the page resumes from ``seq``; the events are only the stream's
recent rows). Each new WebSocket client gets a snapshot: without this cap 20 events of a few MiB
each cost every client that connects their full size again.

The direct API's contract (the original design's): :meth:`HistoryReads.get_recent_events` returns
plain dicts in the ``DashboardEvent.to_dict()`` shape, newest first; :meth:`HistoryReads.recent_events`
the :class:`~otel_dashboard.model.events.DashboardEvent` objects themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from otel_dashboard.model.events import DashboardEvent
from otel_dashboard.model.limits import Limits
from otel_dashboard.state.derived import DerivedState
from otel_dashboard.store.base import EventQuery, EventStore

if TYPE_CHECKING:
    from otel_dashboard.state.dashboard import Subscriber

__all__ = ["HistoryReads"]

_STATS_RECENT_EVENTS = 10


def _wire(events: list[DashboardEvent]) -> list[dict[str, Any]]:
    return [e.to_dict() for e in events]


def _capped_wire(events: list[DashboardEvent], limits: Limits) -> list[dict[str, Any]]:
    """The wire forms of ``events`` (ascending), the oldest left out until the rest add up to at
    most ``limits.max_snapshot_bytes`` of JSON (the size of each is its cached wire encoding)."""
    budget = limits.max_snapshot_bytes
    keep = len(events)
    for index in range(len(events) - 1, -1, -1):
        budget -= len(events[index].to_json_bytes()) + 1  # + the comma between them
        if budget < 0:
            break
        keep = index
    left_out = keep
    if left_out:
        limits.count(snapshot_events_left_out=left_out)
    return [e.to_dict() for e in events[keep:]]


class HistoryReads:
    """The read side of :class:`~otel_dashboard.state.dashboard.DashboardState` (a mixin: it uses the
    state's lock, ``seq``, store, derived state and read-outs, declared below)."""

    _lock: threading.RLock
    _seq: int
    _store: EventStore
    _derived: DerivedState
    limits: Limits
    subscribe: Callable[[Subscriber], None]
    get_metrics: Callable[[], dict[str, Any]]
    opportunity_records: Callable[[], list[dict[str, Any]]]
    get_active_agents: Callable[[], list[dict[str, Any]]]
    get_lost_agents: Callable[[], list[dict[str, Any]]]
    get_open_runs: Callable[[], list[dict[str, Any]]]
    get_counters: Callable[[], dict[str, int]]

    # ------------------------------------------------------------------ snapshots
    def _capture(self, callback: Subscriber | None = None) -> tuple[dict[str, Any], EventQuery]:
        """The snapshot without its events, and the query of its events; subscribes ``callback``
        in the same hold of the lock."""
        with self._lock:
            seq = self._seq
            view = {
                "seq": seq,
                "metrics": self.get_metrics(),
                "events": [],  # filled outside the lock, in this place among the keys
                "opportunities": self.opportunity_records(),
                "active_agents": self.get_active_agents(),
                "lost_agents": self.get_lost_agents(),
                # In the same hold as seq: progress after it reaches the run subscribers.
                "runs": self.get_open_runs(),
            }
            if callback is not None:
                self.subscribe(callback)
        return view, EventQuery(until_seq=seq)

    def snapshot(self, *, recent_limit: int = 50) -> dict[str, Any]:
        """Everything a newly connected page needs, as one consistent view.

        Returns:
            ``{"seq", "metrics", "events", "opportunities", "active_agents", "lost_agents", "runs"}``;
            ``runs`` are the open runs' live state (``get_open_runs()``); ``events`` are the newest
            ``recent_limit`` events up to ``seq``, ascending (a bounded store may have let the
            oldest of them go meanwhile; never one after ``seq``), their JSON at most
            ``max_snapshot_bytes`` in all (the oldest left out first); ``opportunities`` are
            :meth:`opportunity_records`, the flat form.
        """
        view, history = self._capture()
        view["events"] = _capped_wire(self._store.query(history, recent_limit), self.limits)
        return view

    async def snapshot_async(self, *, recent_limit: int = 50) -> dict[str, Any]:
        """:meth:`snapshot` for a coroutine: the store is read off the event loop. ``seq`` and the
        derived state are captured when the coroutine starts, before it first suspends."""
        view, history = self._capture()
        view["events"] = _capped_wire(await self._store.query_async(history, recent_limit), self.limits)
        return view

    def subscribe_with_snapshot(self, callback: Subscriber, *, recent_limit: int = 50) -> dict[str, Any]:
        """Subscribe and take a snapshot atomically: no event falls between the two or is in both.

        ``callback`` may be called (from a publishing thread) before this returns.

        Returns:
            :meth:`snapshot`'s view; ``callback`` gets every event after its ``seq``.
        """
        view, history = self._capture(callback)
        view["events"] = _capped_wire(self._store.query(history, recent_limit), self.limits)
        return view

    async def subscribe_with_snapshot_async(
        self, callback: Subscriber, *, recent_limit: int = 50
    ) -> dict[str, Any]:
        """:meth:`subscribe_with_snapshot` for a coroutine: the subscription and the capture happen
        when the coroutine starts, the store is read off the event loop."""
        view, history = self._capture(callback)
        view["events"] = _capped_wire(await self._store.query_async(history, recent_limit), self.limits)
        return view

    # ------------------------------------------------------------------ stats
    def _capture_stats(self) -> tuple[dict[str, Any], EventQuery]:
        with self._lock:
            metrics = self.get_metrics()
            stats = {
                "metrics": metrics,
                "active_agents": metrics["active_agents"],
                "total_opportunities": len(self._derived.opportunities),
                "recent_events": [],  # filled outside the lock, in this place among the keys
                "system_uptime_seconds": metrics["system_uptime_seconds"],
                "events_by_type": self._derived.counts_by_type(),
                "known_agents": len(self._derived.known_agents),
                **self.get_counters(),
            }
            return stats, EventQuery(until_seq=self._seq)

    def get_dashboard_stats(self) -> dict[str, Any]:
        """The original design's stats: metrics, counts and the newest events (newest first)."""
        stats, history = self._capture_stats()
        stats["recent_events"] = _wire(self._store.query(history, _STATS_RECENT_EVENTS)[::-1])
        return stats

    async def get_dashboard_stats_async(self) -> dict[str, Any]:
        """:meth:`get_dashboard_stats` for a coroutine: the store is read off the event loop."""
        stats, history = self._capture_stats()
        stats["recent_events"] = _wire((await self._store.query_async(history, _STATS_RECENT_EVENTS))[::-1])
        return stats

    # ------------------------------------------------------------------ history
    def get_recent_events(self, limit: int = 50) -> list[dict[str, Any]]:
        """Up to ``limit`` newest events, newest first, each a plain dict in the
        ``DashboardEvent.to_dict()`` shape (the original design's contract; new dicts, but their
        ``data`` is the event's own: read it, never change it). :meth:`recent_events` gives the
        :class:`~otel_dashboard.model.events.DashboardEvent` objects."""
        return _wire(self._store.recent(limit))

    async def get_recent_events_async(self, limit: int = 50) -> list[dict[str, Any]]:
        """:meth:`get_recent_events` for a coroutine: the store is read off the event loop."""
        return _wire(await self._store.recent_async(limit))

    def recent_events(self, limit: int = 50) -> list[DashboardEvent]:
        """Up to ``limit`` newest events, newest first, as the accepted
        :class:`~otel_dashboard.model.events.DashboardEvent` objects (read them, never change them)."""
        return self._store.recent(limit)

    async def recent_events_async(self, limit: int = 50) -> list[DashboardEvent]:
        """:meth:`recent_events` for a coroutine: the store is read off the event loop."""
        return await self._store.recent_async(limit)

    def get_events_after(self, after_seq: int, limit: int = 1000) -> list[DashboardEvent]:
        """Up to ``limit`` events with ``seq > after_seq``, ascending (the paging ``resume`` uses)."""
        return self._store.after(after_seq, limit)

    async def get_events_after_async(self, after_seq: int, limit: int = 1000) -> list[DashboardEvent]:
        """:meth:`get_events_after` for a coroutine: the store is read off the event loop."""
        return await self._store.after_async(after_seq, limit)

    def query_events(self, query: EventQuery, limit: int = 100) -> list[DashboardEvent]:
        """History matching ``query``, ascending ``seq`` (see :meth:`EventStore.query`)."""
        return self._store.query(query, limit)

    async def query_events_async(self, query: EventQuery, limit: int = 100) -> list[DashboardEvent]:
        """:meth:`query_events` for a coroutine: the store is read off the event loop."""
        return await self._store.query_async(query, limit)
