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
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from otel_dashboard.model.events import DashboardEvent
from otel_dashboard.state.derived import DerivedState
from otel_dashboard.store.base import EventQuery, EventStore

if TYPE_CHECKING:
    from otel_dashboard.state.dashboard import Subscriber

__all__ = ["HistoryReads"]

_STATS_RECENT_EVENTS = 10


def _wire(events: list[DashboardEvent]) -> list[dict[str, Any]]:
    return [e.to_dict() for e in events]


class HistoryReads:
    """The read side of :class:`~otel_dashboard.state.dashboard.DashboardState` (a mixin: it uses the
    state's lock, ``seq``, store, derived state and read-outs, declared below)."""

    _lock: threading.RLock
    _seq: int
    _store: EventStore
    _derived: DerivedState
    subscribe: Callable[[Subscriber], None]
    get_metrics: Callable[[], dict[str, Any]]
    get_opportunities: Callable[[], list[dict[str, Any]]]
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
                "opportunities": self.get_opportunities(),
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
            oldest of them go meanwhile; never one after ``seq``).
        """
        view, history = self._capture()
        view["events"] = _wire(self._store.query(history, recent_limit))
        return view

    async def snapshot_async(self, *, recent_limit: int = 50) -> dict[str, Any]:
        """:meth:`snapshot` for a coroutine: the store is read off the event loop. ``seq`` and the
        derived state are captured when the coroutine starts, before it first suspends."""
        view, history = self._capture()
        view["events"] = _wire(await self._store.query_async(history, recent_limit))
        return view

    def subscribe_with_snapshot(self, callback: Subscriber, *, recent_limit: int = 50) -> dict[str, Any]:
        """Subscribe and take a snapshot atomically: no event falls between the two or is in both.

        ``callback`` may be called (from a publishing thread) before this returns.

        Returns:
            :meth:`snapshot`'s view; ``callback`` gets every event after its ``seq``.
        """
        view, history = self._capture(callback)
        view["events"] = _wire(self._store.query(history, recent_limit))
        return view

    async def subscribe_with_snapshot_async(
        self, callback: Subscriber, *, recent_limit: int = 50
    ) -> dict[str, Any]:
        """:meth:`subscribe_with_snapshot` for a coroutine: the subscription and the capture happen
        when the coroutine starts, the store is read off the event loop."""
        view, history = self._capture(callback)
        view["events"] = _wire(await self._store.query_async(history, recent_limit))
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
    def get_recent_events(self, limit: int = 50) -> list[DashboardEvent]:
        """Up to ``limit`` newest events, newest first."""
        return self._store.recent(limit)

    async def get_recent_events_async(self, limit: int = 50) -> list[DashboardEvent]:
        """:meth:`get_recent_events` for a coroutine: the store is read off the event loop."""
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
