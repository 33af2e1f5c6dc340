"""The dashboard's state and event bus.

:class:`DashboardState` accepts events from any thread, numbers them (``seq``), keeps a bounded
history, derives the metrics, the running agents and the opportunities from them, and hands each
accepted event to its subscribers (the server). :func:`get_dashboard` returns the one instance of
the process.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import types
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from otel_dashboard.model.events import (
    DashboardEvent,
    EventType,
    QualityThresholds,
    Severity,
    format_timestamp,
)
from otel_dashboard.state.traces import TraceStore
from otel_dashboard.store.base import EventQuery, EventStore, MemoryEventStore

__all__ = [
    "DashboardState",
    "Sequencer",
    "Subscriber",
    "first_sight_agent_id",
    "first_sight_registration",
    "get_dashboard",
    "reset_dashboard",
]

logger = logging.getLogger(__name__)

class Sequencer(Protocol):
    """Where a state in a cluster sends its events (see :meth:`DashboardState.attach_sequencer`).

    The sequencer numbers the events cluster-wide and hands them back to every replica's state through
    :meth:`DashboardState.accept_sequenced`, in ``seq`` order. ``submit`` must not block or raise.
    """

    def submit(self, event: DashboardEvent) -> None: ...

    def submit_spans(self, records: list[dict[str, Any]]) -> None: ...


Subscriber = Callable[[DashboardEvent], None]
"""Called with each accepted event, synchronously, in the publishing thread, in ``seq`` order.

It must not block: hand the event to your own queue or loop and return.
"""

_DEFAULT_MAX_ACTIVE_AGENTS = 1000
_DEFAULT_MAX_OPPORTUNITIES = 200
_DEFAULT_MAX_KNOWN_AGENTS = 10_000
_DEFAULT_STALL_THRESHOLD_SECONDS = 300.0

# Events that describe the system rather than change it; they do not trigger metrics_updated.
_META_EVENT_TYPES = frozenset({EventType.METRICS_UPDATED, EventType.SYSTEM_HEALTH_UPDATED})
_AGENT_RUN_EVENT_TYPES = frozenset(
    {EventType.AGENT_EXECUTION_STARTED, EventType.AGENT_EXECUTION_COMPLETED}
)
# Compared in _apply for every event: an enum member looked up through its class goes through the
# enum metaclass and costs about ten times a module constant.
_STARTED = EventType.AGENT_EXECUTION_STARTED
_COMPLETED = EventType.AGENT_EXECUTION_COMPLETED


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class DashboardState:
    """Event history, metrics, running agents and opportunities; the in-process event bus.

    All methods are thread-safe. :meth:`publish` is the one way in: the span processor, the
    direct API below, the ingest endpoint and the server's timers all go through it.

    Args:
        max_history: events kept in the default in-memory history (ignored when ``store`` is given).
        store: where accepted events are kept; a :class:`MemoryEventStore` by default. A store
            that already holds events (a database, after a restart) is read back at once: ``seq``
            continues after it and the derived state is rebuilt (see :meth:`_rebuild_from_store`).
        max_active_agents: running agents tracked at most; the oldest are evicted (and counted).
        max_opportunities: opportunities kept at most; the oldest go first.
        max_known_agents: agent ids remembered for ``agent_registered`` on first sight.
        quality_thresholds: turn quality scores into severities.
        stall_threshold_seconds: a running agent older than this counts as stalled.
        max_traces: traces kept for the trace view (:attr:`traces`); the least recently updated go
            first.

    Raises:
        ValueError: a bound that is not a positive integer, or a non-positive stall threshold.
    """

    def __init__(
        self,
        max_history: int = 100,
        *,
        store: EventStore | None = None,
        max_active_agents: int = _DEFAULT_MAX_ACTIVE_AGENTS,
        max_opportunities: int = _DEFAULT_MAX_OPPORTUNITIES,
        max_known_agents: int = _DEFAULT_MAX_KNOWN_AGENTS,
        quality_thresholds: QualityThresholds | None = None,
        stall_threshold_seconds: float = _DEFAULT_STALL_THRESHOLD_SECONDS,
        max_traces: int = 1000,
    ) -> None:
        _positive_int("max_history", max_history)
        self._max_active_agents = _positive_int("max_active_agents", max_active_agents)
        _positive_int("max_opportunities", max_opportunities)
        self._max_known_agents = _positive_int("max_known_agents", max_known_agents)
        if not stall_threshold_seconds > 0:
            raise ValueError(
                f"stall_threshold_seconds must be positive, got {stall_threshold_seconds!r}"
            )
        self.stall_threshold_seconds = float(stall_threshold_seconds)
        self.quality_thresholds = quality_thresholds or QualityThresholds()
        self._store: EventStore = store if store is not None else MemoryEventStore(max_history)
        self.traces = TraceStore(max_traces=max_traces)  # spans by trace, for GET /api/traces/{id}
        self._lock = threading.RLock()
        self._subscribers: tuple[Subscriber, ...] = ()
        self._seq = 0
        self._started_monotonic = time.monotonic()
        self._started_at = time.time()

        self._total_events = 0
        self._events_by_type: dict[EventType, int] = dict.fromkeys(EventType, 0)
        self._total_agents_executed = 0
        self._failed_agent_runs = 0
        self._total_opportunities = 0
        self._quality_sum = 0.0
        self._quality_count = 0
        self._total_errors = 0
        self._metrics_version = 0
        self._metrics_emitted_version = 0
        self._active_agents: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._evicted_active_agents = 0
        self._known_agents: OrderedDict[str, str] = OrderedDict()
        self._opportunities: deque[dict[str, Any]] = deque(maxlen=max_opportunities)
        self._subscriber_errors = 0
        self._dropped_events = 0
        # Runs that were in progress when a previous server stopped (see _rebuild_from_store).
        self._lost_agents: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._sequencer: Sequencer | None = None
        # Runs found open by the rebuild, kept so that a replica joining a cluster can take them back
        # as running (in a cluster another replica may still be receiving their events).
        self._rebuilt_runs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        # Keep this call LAST in __init__: it replays stored events through _apply, which needs
        # every field above.
        self._rebuild_from_store()

    # ------------------------------------------------------------------ the bus
    @property
    def store(self) -> EventStore:
        """Where accepted events are kept."""
        return self._store

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the newest accepted event (0 before the first)."""
        return self._seq

    def wait_durable(self, seq: int | None = None, timeout_seconds: float = 5.0) -> bool:
        """Block until the event ``seq`` (the newest accepted one when None) is committed to the store.

        The ingest endpoint calls it (or :meth:`wait_durable_async`) before it answers 200. An
        in-memory store answers True at once.

        Returns:
            True once committed; False on timeout or if the store could not keep the event.
        """
        return self._store.wait_durable(self._seq if seq is None else seq, timeout_seconds)

    async def wait_durable_async(self, seq: int | None = None, timeout_seconds: float = 5.0) -> bool:
        """:meth:`wait_durable` for coroutines: waits without blocking the event loop."""
        return await self._store.wait_durable_async(self._seq if seq is None else seq, timeout_seconds)

    def publish(self, event: DashboardEvent) -> DashboardEvent:
        """Accept ``event``: number it, keep it, update the derived state, notify subscribers.

        Never blocks on I/O; safe from any thread. A run event for an agent id never seen before is
        preceded by an ``agent_registered`` event.

        Returns:
            The same event, with its ``seq`` set.
        """
        sequencer = self._sequencer
        if sequencer is not None:
            # A cluster numbers events once for every replica: the event comes back, numbered,
            # through accept_sequenced (registration on first sight included).
            sequencer.submit(event)
            return event
        with self._lock:
            agent_id = first_sight_agent_id(event)
            if agent_id and agent_id not in self._known_agents:
                self._accept(first_sight_registration(event, agent_id))
            self._accept(event)
        return event

    def publish_many(self, events: Iterable[DashboardEvent]) -> None:
        """:meth:`publish` each of ``events`` in order, taking the lock once for all of them.

        The span processor's worker publishes the events of a batch of spans this way. Everything
        :meth:`publish` does applies to each event (``agent_registered`` on first sight, the
        sequencer when one is attached).

        Raises:
            Exception: the first exception publishing an event raised, after every event was tried.
        """
        sequencer = self._sequencer
        if sequencer is not None:
            submit = sequencer.submit  # numbered by the cluster, as in publish
            for event in events:
                submit(event)
            return
        take = self._take
        failed: Exception | None = None
        with self._lock:
            known_agents = self._known_agents  # import_derived may replace it, under the lock
            for event in events:
                try:
                    agent_id = first_sight_agent_id(event)
                    if agent_id and agent_id not in known_agents:
                        self._accept(first_sight_registration(event, agent_id))
                    # _accept inlined: this loop runs for every event the span processor maps.
                    self._seq = event.seq = self._seq + 1
                    take(event)
                except Exception as exc:
                    failed = failed or exc
        if failed is not None:
            raise failed

    def attach_sequencer(self, sequencer: Sequencer | None) -> None:
        """Let ``sequencer`` number this state's events (a cluster broker), or go back to local numbering.

        While attached, :meth:`publish` hands each event to ``sequencer.submit`` and returns it
        without a ``seq``; the event is accepted (numbered, kept, applied, broadcast) when the
        sequencer passes it to :meth:`accept_sequenced`. Attaching also makes the runs that the
        rebuild found open running again: in a cluster they are not lost because this replica
        restarted. ``seq`` restarts from the newest event actually in the store, so that the
        cluster's events after it are all taken.
        """
        with self._lock:
            self._sequencer = sequencer
            if sequencer is None:
                return
            newest = self._store.recent(1)
            self._seq = (newest[0].seq or 0) if newest else 0
            for run_id, entry in self._rebuilt_runs.items():
                if run_id in self._lost_agents:
                    self._lost_agents.pop(run_id)
                    self._active_agents[run_id] = entry
            self._rebuilt_runs.clear()

    def accept_sequenced(self, events: list[DashboardEvent]) -> int:
        """Accept events numbered by a sequencer, in ``seq`` order; events at or below :attr:`last_seq`
        are skipped (already taken). Each is kept, applied and broadcast like a published one.

        Returns:
            How many were accepted.
        """
        accepted = 0
        with self._lock:
            for event in events:
                seq = event.seq
                if seq is None or seq <= self._seq:
                    continue
                self._seq = seq
                self._take(event)
                accepted += 1
        return accepted

    async def broadcast_event(self, event: DashboardEvent) -> DashboardEvent:
        """Accept a hand-built event (the original design's entry point); see :meth:`publish`."""
        return self.publish(event)

    def accept_history(self, events: list[DashboardEvent]) -> int:
        """Keep numbered events in the store only (no derived state, no subscriber): the history a
        replica joining a cluster copies before it takes the cluster's derived state
        (:meth:`import_derived`). Events at or below :attr:`last_seq` are skipped.

        Returns:
            How many were kept.
        """
        kept = 0
        with self._lock:
            for event in events:
                if event.seq is not None and event.seq > self._seq:
                    self._seq = event.seq
                    self._store.append(event)
                    kept += 1
        return kept

    def export_derived(self) -> dict[str, Any]:
        """What the events up to :attr:`last_seq` add up to (counts, running agents, known agents,
        opportunities), as JSON-ready data: what a cluster keeps for replicas that join after its
        stream dropped old events (see :meth:`import_derived`)."""
        now = time.monotonic()
        with self._lock:
            return {
                "seq": self._seq,
                "events_by_type": {k.value: v for k, v in self._events_by_type.items()},
                "total_agents_executed": self._total_agents_executed,
                "failed_agent_runs": self._failed_agent_runs,
                "quality_sum": self._quality_sum,
                "quality_count": self._quality_count,
                "active_agents": [
                    {**{k: v for k, v in entry.items() if not k.startswith("_")},
                     "elapsed_seconds": now - entry["_started_monotonic"]}
                    for entry in self._active_agents.values()
                ],
                "known_agents": list(self._known_agents.items()),
                "opportunities": list(self._opportunities),
                "lost_agents": list(self._lost_agents.values()),
            }

    def import_derived(self, derived: dict[str, Any]) -> None:
        """Take the derived state another replica exported at its ``seq`` (which must be this
        state's :attr:`last_seq`: the history up to it copied with :meth:`accept_history`).

        Raises:
            ValueError: ``derived`` is not such an export (the field is named); nothing changed.
        """
        try:
            seq = int(derived["seq"])
            by_type = dict.fromkeys(EventType, 0)
            for type_value, count in derived["events_by_type"].items():
                if type_value in _EVENT_TYPE_VALUES:
                    by_type[EventType(type_value)] = int(count)
            now = time.monotonic()
            active = OrderedDict(
                (str(entry["run_id"]), {
                    **{k: v for k, v in entry.items() if k != "elapsed_seconds"},
                    "_started_monotonic": now - float(entry.get("elapsed_seconds") or 0.0),
                })
                for entry in derived["active_agents"]
            )
            known = OrderedDict((str(k), str(v)) for k, v in derived["known_agents"])
            lost = OrderedDict((str(entry["run_id"]), dict(entry)) for entry in derived["lost_agents"])
            opportunities = [dict(o) for o in derived["opportunities"]]
            numbers = {name: derived[name] for name in (
                "total_agents_executed", "failed_agent_runs", "quality_sum", "quality_count")}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"derived: not a state export ({type(exc).__name__}: {exc})") from None
        with self._lock:
            if seq != self._seq:
                raise ValueError(f"derived: exported at seq {seq}, this state is at {self._seq}")
            self._events_by_type = by_type
            self._total_events = sum(by_type.values())
            self._total_opportunities = by_type[EventType.OPPORTUNITY_DISCOVERED]
            self._total_errors = by_type[EventType.ERROR_OCCURRED]
            self._total_agents_executed = int(numbers["total_agents_executed"])
            self._failed_agent_runs = int(numbers["failed_agent_runs"])
            self._quality_sum = float(numbers["quality_sum"])
            self._quality_count = int(numbers["quality_count"])
            self._active_agents = active
            self._known_agents = known
            self._lost_agents = lost
            self._opportunities.clear()
            self._opportunities.extend(opportunities)
            self._metrics_version += 1

    def _accept(self, event: DashboardEvent) -> None:
        self._seq += 1
        event.seq = self._seq
        self._take(event)

    def _take(self, event: DashboardEvent) -> None:
        self._store.append(event)
        self._apply(event)
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                self._subscriber_errors += 1
                logger.exception("dashboard subscriber %r failed; event seq=%s", subscriber, event.seq)

    def _apply(self, event: DashboardEvent) -> None:
        etype = event.event_type
        data = event.data
        self._total_events += 1
        self._events_by_type[etype] += 1
        if etype not in _META_EVENT_TYPES:
            self._metrics_version += 1
        if etype is _STARTED:
            run_id = str(data.get("run_id") or data.get("agent_id") or event.event_id)
            self._active_agents[run_id] = {
                "run_id": run_id,
                "agent_id": data.get("agent_id"),
                "agent_name": data.get("agent_name"),
                "task_description": data.get("task_description"),
                "started_at": data.get("started_at") or event.timestamp,
                "service_name": data.get("service_name"),
                "trace_id": event.trace_id,
                "span_id": event.span_id,
                "_started_monotonic": time.monotonic(),
            }
            self._active_agents.move_to_end(run_id)
            while len(self._active_agents) > self._max_active_agents:
                self._active_agents.popitem(last=False)
                self._evicted_active_agents += 1
        elif etype is _COMPLETED:
            run_id = str(data.get("run_id") or data.get("agent_id") or "")
            self._active_agents.pop(run_id, None)
            self._lost_agents.pop(run_id, None)  # a lost run that finished after all
            self._total_agents_executed += 1
            if data.get("success") is False:
                self._failed_agent_runs += 1
            score = data.get("quality_score")
            if isinstance(score, (int, float)) and not isinstance(score, bool):
                self._quality_sum += float(score)
                self._quality_count += 1
        elif etype is EventType.OPPORTUNITY_DISCOVERED:
            self._total_opportunities += 1
            self._opportunities.append(
                {**data, "timestamp": event.timestamp, "seq": event.seq, "event_id": event.event_id}
            )
        elif etype is EventType.ERROR_OCCURRED:
            self._total_errors += 1
        elif etype is EventType.AGENT_REGISTERED:
            agent_id = data.get("agent_id")
            if agent_id:
                self._known_agents[str(agent_id)] = str(data.get("agent_name") or agent_id)
                self._known_agents.move_to_end(str(agent_id))
                while len(self._known_agents) > self._max_known_agents:
                    self._known_agents.popitem(last=False)

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback`` with every event accepted from now on (see :data:`Subscriber`)."""
        with self._lock:
            if callback not in self._subscribers:
                self._subscribers = (*self._subscribers, callback)

    def unsubscribe(self, callback: Subscriber) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s != callback)

    def subscribe_with_snapshot(self, callback: Subscriber, *, recent_limit: int = 50) -> dict:
        """Subscribe and take a snapshot atomically: no event falls between the two or is in both.

        Returns:
            ``{"seq", "metrics", "events", "opportunities", "active_agents", "lost_agents"}``;
            ``events`` are the newest ``recent_limit`` events in ascending ``seq`` order, ``seq`` the
            last one included.
        """
        with self._lock:
            snapshot = self.snapshot(recent_limit=recent_limit)
            self.subscribe(callback)
        return snapshot

    def snapshot(self, *, recent_limit: int = 50) -> dict[str, Any]:
        """Everything a newly connected page needs, as one consistent view."""
        with self._lock:
            events = self._store.recent(recent_limit)
            events.reverse()
            return {
                "seq": self._seq,
                "metrics": self.get_metrics(),
                "events": [e.to_dict() for e in events],
                "opportunities": self.get_opportunities(),
                "active_agents": self.get_active_agents(),
                "lost_agents": self.get_lost_agents(),
            }

    def count_dropped(self, n: int = 1) -> None:
        """Record ``n`` events dropped before they reached the state (shown in health and stats)."""
        with self._lock:
            self._dropped_events += n

    def record_spans(self, records: list[dict[str, Any]], *, from_cluster: bool = False) -> None:
        """Keep span records (see :func:`~otel_dashboard.state.traces.span_record_from_span`) in
        :attr:`traces`; thread-safe (the trace store has its own lock). Invalid records are skipped.

        With a sequencer attached they also go to the other replicas, unless they came from them
        (``from_cluster``)."""
        sequencer = self._sequencer
        if sequencer is not None and not from_cluster and records:
            sequencer.submit_spans(records)
        for record in records:
            try:
                self.traces.add_span(record)
            except ValueError:
                logger.debug("span record without valid ids skipped: %r", record)

    # ------------------------------------------------------------------ reads
    def get_metrics(self) -> dict[str, Any]:
        """The metric card values (the original design's keys plus a few more)."""
        with self._lock:
            avg = self._quality_sum / self._quality_count if self._quality_count else 0.0
            return {
                "total_events": self._total_events,
                "total_agents_executed": self._total_agents_executed,
                "total_opportunities_discovered": self._total_opportunities,
                "avg_quality_score": round(avg, 2),
                "quality_scores_count": self._quality_count,
                "active_agents": len(self._active_agents),
                "lost_agents": len(self._lost_agents),
                "failed_agent_runs": self._failed_agent_runs,
                "total_errors": self._total_errors,
                "system_uptime_seconds": round(time.monotonic() - self._started_monotonic, 3),
            }

    def get_recent_events(self, limit: int = 50) -> list[DashboardEvent]:
        """Up to ``limit`` newest events, newest first."""
        return self._store.recent(limit)

    def get_events_after(self, after_seq: int, limit: int = 1000) -> list[DashboardEvent]:
        """Up to ``limit`` events with ``seq > after_seq``, ascending (the paging ``resume`` uses)."""
        return self._store.after(after_seq, limit)

    def query_events(self, query: EventQuery, limit: int = 100) -> list[DashboardEvent]:
        """History matching ``query``, ascending ``seq`` (see :meth:`EventStore.query`)."""
        return self._store.query(query, limit)

    def get_opportunities(self) -> list[dict[str, Any]]:
        """The kept opportunities, newest first."""
        with self._lock:
            return list(reversed(self._opportunities))

    def get_active_agents(self) -> list[dict[str, Any]]:
        """The agent runs in progress, oldest first, each with ``elapsed_seconds`` and ``stalled``."""
        now = time.monotonic()
        with self._lock:
            out = []
            for entry in self._active_agents.values():
                elapsed = now - entry["_started_monotonic"]
                public = {k: v for k, v in entry.items() if not k.startswith("_")}
                public["elapsed_seconds"] = round(elapsed, 3)
                public["stalled"] = elapsed > self.stall_threshold_seconds
                out.append(public)
            return out

    def events_by_type(self) -> dict[str, int]:
        """Accepted events per event type, since this state was created (or rebuilt)."""
        with self._lock:
            return {k.value: v for k, v in self._events_by_type.items()}

    def get_known_agents(self) -> dict[str, str]:
        """Agent ids seen so far (bounded), mapped to their names."""
        with self._lock:
            return dict(self._known_agents)

    def get_lost_agents(self) -> list[dict[str, Any]]:
        """Agent runs that were in progress when a previous server stopped, oldest first.

        Found at start by :meth:`_rebuild_from_store` (a start with no completion); each keeps the
        fields of an active agent plus ``"status": "lost"``. A run leaves the list if its completion
        arrives after all. Bounded by ``max_active_agents``.
        """
        with self._lock:
            return [dict(entry) for entry in self._lost_agents.values()]

    def _rebuild_from_store(self) -> None:
        """Continue from what the store already holds (a durable store after a restart).

        ``seq`` continues after the store's last one. Stored events are replayed through
        :meth:`_apply` (not stored again, no subscriber told): every agent run and registration
        event in ``seq`` order, and the newest ``max_opportunities`` opportunities; the per-type
        counts come from the store itself (SQL aggregates for SQLite). Runs still open at the end
        were running when the previous server stopped: they become lost agents, not active ones.
        """
        last_seq = self._store.last_seq()
        if not last_seq:
            return
        began = time.perf_counter()
        with self._lock:
            self._seq = last_seq
            counts = self._store.count_by_type()
            replayed = 0
            for event in _stored_events(self._store, _REBUILD_REPLAYED_TYPES):
                self._apply(event)
                replayed += 1
            opportunities = self._store.query(
                EventQuery(event_types=[EventType.OPPORTUNITY_DISCOVERED]), self._opportunities.maxlen or 1
            )
            for event in opportunities:
                self._apply(event)
            replayed += len(opportunities)
            # Counts cover every held event, replayed or not.
            self._events_by_type = dict.fromkeys(EventType, 0)
            for type_value, count in counts.items():
                if type_value in _EVENT_TYPE_VALUES:
                    self._events_by_type[EventType(type_value)] = count
            self._total_events = sum(self._events_by_type.values())
            self._total_opportunities = self._events_by_type[EventType.OPPORTUNITY_DISCOVERED]
            self._total_errors = self._events_by_type[EventType.ERROR_OCCURRED]
            detected_at = format_timestamp()
            self._rebuilt_runs = OrderedDict(self._active_agents)
            for run_id, entry in self._active_agents.items():
                lost = {k: v for k, v in entry.items() if not k.startswith("_")}
                lost.update(status="lost", lost_detected_at=detected_at)
                self._lost_agents[run_id] = lost
            while len(self._lost_agents) > self._max_active_agents:
                self._lost_agents.popitem(last=False)
            self._active_agents.clear()
            self._evicted_active_agents = 0
        logger.info(
            "dashboard state rebuilt from the store: seq continues after %d, %d events held, %d replayed, "
            "%d lost agent runs, in %.2f s",
            last_seq, self._total_events, replayed, len(self._lost_agents), time.perf_counter() - began,
        )

    def get_counters(self) -> dict[str, int]:
        """Internal counters for health and stats."""
        with self._lock:
            return {
                "dropped_events": self._dropped_events,
                "subscriber_errors": self._subscriber_errors,
                "evicted_active_agents": self._evicted_active_agents,
                "subscribers": len(self._subscribers),
            }

    def get_dashboard_stats(self) -> dict[str, Any]:
        """The original design's stats: metrics, counts and the newest events."""
        with self._lock:
            metrics = self.get_metrics()
            return {
                "metrics": metrics,
                "active_agents": metrics["active_agents"],
                "total_opportunities": len(self._opportunities),
                "recent_events": [e.to_dict() for e in self._store.recent(10)],
                "system_uptime_seconds": metrics["system_uptime_seconds"],
                "events_by_type": {k.value: v for k, v in self._events_by_type.items()},
                "known_agents": len(self._known_agents),
                **self.get_counters(),
            }

    def emit_metrics_if_changed(self) -> DashboardEvent | None:
        """Publish ``metrics_updated`` if anything changed since the last one (the server's timer
        calls this, which is what throttles it)."""
        with self._lock:
            if self._metrics_version == self._metrics_emitted_version:
                return None
            self._metrics_emitted_version = self._metrics_version
            return self.publish(DashboardEvent.create(EventType.METRICS_UPDATED, self.get_metrics()))

    # ------------------------------------------------------------------ the direct API
    async def agent_started(
        self, agent_id: str, agent_name: str, task_description: str, **extra: Any
    ) -> DashboardEvent:
        """Publish ``agent_execution_started``; ``extra`` goes into ``data``."""
        data = {"agent_id": agent_id, "agent_name": agent_name,
                "task_description": task_description, **extra}
        return self.publish(DashboardEvent.create(EventType.AGENT_EXECUTION_STARTED, data))

    async def agent_completed(
        self,
        agent_id: str,
        agent_name: str,
        task_description: str,
        duration_ms: float,
        success: bool,
        data_source: str | None = None,
        quality_score: float | None = None,
        **extra: Any,
    ) -> DashboardEvent:
        """Publish ``agent_execution_completed`` (``success``, or ``error`` when not successful).

        Raises:
            ValueError: ``duration_ms`` negative or ``quality_score`` outside 0-100.
        """
        _check_number("duration_ms", duration_ms, low=0)
        if quality_score is not None:
            _check_number("quality_score", quality_score, low=0, high=100)
        data = {
            "agent_id": agent_id, "agent_name": agent_name, "task_description": task_description,
            "duration_ms": duration_ms, "success": bool(success), "data_source": data_source,
            "quality_score": quality_score, **extra,
        }
        severity = Severity.SUCCESS if success else Severity.ERROR
        return self.publish(DashboardEvent.create(EventType.AGENT_EXECUTION_COMPLETED, data, severity))

    async def opportunity_discovered(
        self,
        opportunity_id: str,
        title: str,
        description: str,
        confidence_score: float,
        revenue_potential: str,
        category: str,
        **extra: Any,
    ) -> DashboardEvent:
        """Publish ``opportunity_discovered``.

        Raises:
            ValueError: ``confidence_score`` outside 0-1.
        """
        _check_number("confidence_score", confidence_score, low=0, high=1)
        data = {
            "opportunity_id": opportunity_id, "title": title, "description": description,
            "confidence_score": confidence_score, "revenue_potential": revenue_potential,
            "category": category, **extra,
        }
        return self.publish(
            DashboardEvent.create(EventType.OPPORTUNITY_DISCOVERED, data, Severity.SUCCESS)
        )

    async def synthesis_started(self, phase: str, description: str, **extra: Any) -> DashboardEvent:
        """Publish ``synthesis_started``."""
        data = {"phase": phase, "description": description, **extra}
        return self.publish(DashboardEvent.create(EventType.SYNTHESIS_STARTED, data))

    async def synthesis_completed(
        self, phase: str, duration_ms: float, patterns_found: int, **extra: Any
    ) -> DashboardEvent:
        """Publish ``synthesis_completed``."""
        _check_number("duration_ms", duration_ms, low=0)
        data = {"phase": phase, "duration_ms": duration_ms, "patterns_found": patterns_found,
                "success": True, **extra}
        return self.publish(
            DashboardEvent.create(EventType.SYNTHESIS_COMPLETED, data, Severity.SUCCESS)
        )

    async def quality_score_updated(
        self,
        source: str,
        overall_score: float,
        dimension_scores: dict[str, float] | None = None,
        **extra: Any,
    ) -> DashboardEvent:
        """Publish ``quality_score_updated``; its severity follows :attr:`quality_thresholds`.

        Raises:
            ValueError: ``overall_score`` outside 0-100.
        """
        _check_number("overall_score", overall_score, low=0, high=100)
        data = {"source": source, "overall_score": overall_score,
                "dimension_scores": dict(dimension_scores or {}), **extra}
        severity = self.quality_thresholds.severity(overall_score)
        return self.publish(DashboardEvent.create(EventType.QUALITY_SCORE_UPDATED, data, severity))

    async def error_occurred(
        self, source: str, error_message: str, error_type: str, **extra: Any
    ) -> DashboardEvent:
        """Publish ``error_occurred``."""
        data = {"source": source, "error_message": error_message, "error_type": error_type, **extra}
        return self.publish(DashboardEvent.create(EventType.ERROR_OCCURRED, data, Severity.ERROR))

    async def system_health_updated(
        self,
        cpu_percent: float | None = None,
        memory_percent: float | None = None,
        active_agents: int = 0,
        **extra: Any,
    ) -> DashboardEvent:
        """Publish ``system_health_updated`` (``warning`` when ``extra`` says ``status="degraded"``)."""
        data = {"cpu_percent": cpu_percent, "memory_percent": memory_percent,
                "active_agents": active_agents, **extra}
        severity = Severity.WARNING if data.get("status") == "degraded" else Severity.INFO
        return self.publish(DashboardEvent.create(EventType.SYSTEM_HEALTH_UPDATED, data, severity))


_EVENT_TYPE_VALUES = frozenset(t.value for t in EventType)
# What a rebuild replays in full: everything that derives more than a count (opportunities apart).
_REBUILD_REPLAYED_TYPES = (
    EventType.AGENT_EXECUTION_STARTED,
    EventType.AGENT_EXECUTION_COMPLETED,
    EventType.AGENT_REGISTERED,
)
_REBUILD_PAGE_EVENTS = 5000


def first_sight_agent_id(event: DashboardEvent) -> Any:
    """The agent id of a run event (started or completed), whose first sight registers the agent;
    None for other events."""
    if event.event_type in _AGENT_RUN_EVENT_TYPES:
        return event.data.get("agent_id") or None
    return None


def first_sight_registration(event: DashboardEvent, agent_id: Any) -> DashboardEvent:
    """The ``agent_registered`` event that precedes the first run event of ``agent_id``."""
    data = {
        "agent_id": agent_id,
        "agent_name": event.data.get("agent_name") or agent_id,
        "registered_by": "first_seen",
    }
    if "service_name" in event.data:
        data["service_name"] = event.data["service_name"]
    return DashboardEvent.create(
        EventType.AGENT_REGISTERED, data, Severity.INFO,
        trace_id=event.trace_id, span_id=event.span_id,
    )


def _stored_events(store: EventStore, event_types: tuple[EventType, ...]) -> Iterator[DashboardEvent]:
    """Every held event of ``event_types``, ascending ``seq``, read page by page."""
    query = EventQuery(after_seq=0, event_types=event_types)
    while True:
        page = store.query(query, _REBUILD_PAGE_EVENTS)
        if not page:
            return
        yield from page
        query.after_seq = page[-1].seq


def _check_number(name: str, value: Any, *, low: float, high: float | None = None) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


# The singleton lives in a module object registered under a fixed name in sys.modules, so that
# two copies of this module (imported under two paths) still share one state per process.
_HOLDER_NAME = "_otel_dashboard_process_state"


def _holder() -> types.ModuleType:
    holder = sys.modules.get(_HOLDER_NAME)
    if holder is None:
        fresh = types.ModuleType(_HOLDER_NAME)
        fresh.state = None  # type: ignore[attr-defined]
        fresh.lock = threading.Lock()  # type: ignore[attr-defined]
        holder = sys.modules.setdefault(_HOLDER_NAME, fresh)
    return holder


def get_dashboard() -> DashboardState:
    """The process's :class:`DashboardState`, created on first use."""
    holder = _holder()
    state = holder.state
    if state is None:
        with holder.lock:
            if holder.state is None:
                holder.state = DashboardState()
            state = holder.state
    return state


def reset_dashboard(state: DashboardState | None = None) -> DashboardState:
    """Replace the process's state with ``state`` (a fresh one by default); for tests."""
    holder = _holder()
    with holder.lock:
        holder.state = state if state is not None else DashboardState()
        return holder.state
