"""The state in a cluster: a sequencer numbers the events of every replica, and each replica's
state accepts them numbered (``serve --broker``, see ``docs/deployment.md``).

:class:`ClusterSync` is the part of :class:`~otel_dashboard.state.dashboard.DashboardState` that a
broker talks to: attaching the sequencer, accepting numbered events, copying history and taking
another replica's derived state when joining. :func:`first_sight_agent_id` and
:func:`first_sight_registration` are the rule "a run event of an agent id never seen before is
preceded by ``agent_registered``", shared by the local bus and the cluster's sequencer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.state.derived import DerivedState
from otel_dashboard.store.base import EventStore

__all__ = ["ClusterSync", "Sequencer", "first_sight_agent_id", "first_sight_registration"]

_AGENT_RUN_EVENT_TYPES = frozenset(
    {EventType.AGENT_EXECUTION_STARTED, EventType.AGENT_EXECUTION_COMPLETED}
)


class Sequencer(Protocol):
    """Where a state in a cluster sends its events (see :meth:`ClusterSync.attach_sequencer`).

    The sequencer numbers the events cluster-wide and hands them back to every replica's state through
    :meth:`ClusterSync.accept_sequenced`, in ``seq`` order. ``submit`` must not block or raise.
    """

    def submit(self, event: DashboardEvent) -> None: ...

    def submit_spans(self, records: list[dict[str, Any]]) -> None: ...


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


class ClusterSync:
    """The cluster side of :class:`~otel_dashboard.state.dashboard.DashboardState` (a mixin: it uses
    the state's lock, ``seq``, store and derived state, declared below)."""

    _lock: threading.RLock
    _seq: int
    _store: EventStore
    _derived: DerivedState
    _sequencer: Sequencer | None
    _take: Callable[[DashboardEvent], None]

    def attach_sequencer(self, sequencer: Sequencer | None) -> None:
        """Let ``sequencer`` number this state's events (a cluster broker), or go back to local numbering.

        While attached, :meth:`~otel_dashboard.state.dashboard.DashboardState.publish` hands each
        event to ``sequencer.submit`` and returns it without a ``seq``; the event is accepted
        (numbered, kept, applied, broadcast) when the sequencer passes it to
        :meth:`accept_sequenced`. Attaching also makes the runs that the rebuild found open running
        again: in a cluster they are not lost because this replica restarted. ``seq`` restarts from
        the newest event actually in the store, so that the cluster's events after it are all taken.
        """
        with self._lock:
            self._sequencer = sequencer
            if sequencer is None:
                return
            self._derived.revive_rebuilt_runs()
            seq_before = self._seq
        # Read outside the lock (it may be a database read). From here on nothing is numbered
        # locally; whatever the sequencer already handed back is the newest stored event itself.
        newest = self._store.recent(1)
        with self._lock:
            if self._sequencer is sequencer and self._seq == seq_before:
                self._seq = (newest[0].seq or 0) if newest else 0

    def accept_sequenced(self, events: list[DashboardEvent]) -> int:
        """Accept events numbered by a sequencer, in ``seq`` order; events at or below ``last_seq``
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

    def accept_history(self, events: list[DashboardEvent]) -> int:
        """Keep numbered events in the store only (no derived state, no subscriber): the history a
        replica joining a cluster copies before it takes the cluster's derived state
        (:meth:`import_derived`). Events at or below ``last_seq`` are skipped.

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
        """What the events up to ``last_seq`` add up to (counts, running agents, known agents,
        opportunities), as JSON-ready data: what a cluster keeps for replicas that join after its
        stream dropped old events (see :meth:`import_derived`)."""
        with self._lock:
            return self._derived.export(self._seq)

    def import_derived(self, derived: dict[str, Any]) -> None:
        """Take the derived state another replica exported at its ``seq`` (which must be this
        state's ``last_seq``: the history up to it copied with :meth:`accept_history`).

        Raises:
            ValueError: ``derived`` is not such an export (the field is named); nothing changed.
        """
        seq, fields = DerivedState.parse_export(derived)
        with self._lock:
            if seq != self._seq:
                raise ValueError(f"derived: exported at seq {seq}, this state is at {self._seq}")
            self._derived.take_export(fields)
