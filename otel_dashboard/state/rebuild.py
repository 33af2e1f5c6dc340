"""Rebuilding the derived state from what a store already holds (a durable store after a restart).

Stored events are replayed through :meth:`~otel_dashboard.state.derived.DerivedState.apply` (not
stored again, no subscriber told): every agent run and registration event in ``seq`` order, and the
newest opportunities; the per-type counts come from the store itself (SQL aggregates for SQLite).
Runs still open at the end were running when the previous server stopped: they become lost agents,
not active ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from otel_dashboard.model.events import DashboardEvent, EventType, format_timestamp
from otel_dashboard.state.derived import EVENT_TYPE_VALUES, DerivedState
from otel_dashboard.store.base import EventQuery, EventStore

__all__ = ["rebuild_from_store"]

# The state's logger: the rebuild is part of starting a DashboardState.
logger = logging.getLogger("otel_dashboard.state.dashboard")

# What a rebuild replays in full: everything that derives more than a count (opportunities apart).
_REPLAYED_TYPES = (
    EventType.AGENT_EXECUTION_STARTED,
    EventType.AGENT_EXECUTION_COMPLETED,
    EventType.AGENT_REGISTERED,
)
_PAGE_EVENTS = 5000


def rebuild_from_store(store: EventStore, derived: DerivedState) -> int:
    """Replay what ``store`` holds into a fresh ``derived``.

    Call it before the state is shared with another thread: it reads the store page by page and
    takes no lock.

    Returns:
        The seq numbering continues after (0 for a store that never held an event).
    """
    last_seq = store.last_seq()
    if not last_seq:
        return 0
    began = time.perf_counter()
    counts = store.count_by_type()
    replayed = 0
    for event in _stored_events(store, _REPLAYED_TYPES):
        derived.apply(event)
        replayed += 1
    opportunities = store.query(
        EventQuery(event_types=[EventType.OPPORTUNITY_DISCOVERED]), derived.opportunities.maxlen or 1
    )
    for event in opportunities:
        derived.apply(event)
    replayed += len(opportunities)
    # Counts cover every held event, replayed or not.
    by_type = dict.fromkeys(EventType, 0)
    for type_value, count in counts.items():
        if type_value in EVENT_TYPE_VALUES:
            by_type[EventType(type_value)] = count
    derived.set_counts(by_type)
    derived.mark_open_runs_lost(format_timestamp())
    logger.info(
        "dashboard state rebuilt from the store: seq continues after %d, %d events held, %d replayed, "
        "%d lost agent runs, in %.2f s",
        last_seq, derived.total_events, replayed, len(derived.lost_agents), time.perf_counter() - began,
    )
    return last_seq


def _stored_events(store: EventStore, event_types: tuple[EventType, ...]) -> Iterator[DashboardEvent]:
    """Every held event of ``event_types``, ascending ``seq``, read page by page."""
    query = EventQuery(after_seq=0, event_types=event_types)
    while True:
        page = store.query(query, _PAGE_EVENTS)
        if not page:
            return
        yield from page
        query.after_seq = page[-1].seq
