"""The event filter: which events a WebSocket client (``subscribe``) or a history query wants.

A filter is three lists (event types, severities, agents); an empty list means "all", the lists
combine with AND and the values inside one list with OR (``docs/server.md``). The object that
applies one is the store's ``EventQuery``; this module only needs its ``matches`` method, so it
depends on nothing above the model (no store, no aiohttp).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from otel_dashboard.model.events import DashboardEvent, EventType, Severity

__all__ = ["FILTER_FIELDS", "MAX_FILTER_VALUES", "EventFilter", "FilterError", "event_matches",
           "parse_filter_lists"]

MAX_FILTER_VALUES = 1000
"""Filters (subscribe lists, ``/api/events`` agents): at most this many values per list."""

FILTER_FIELDS = ("event_types", "severities", "agents")
"""The lists of a filter, in the order a ``subscribed`` message echoes them."""

_ALLOWED: dict[str, frozenset[str] | None] = {
    "event_types": frozenset(t.value for t in EventType),
    "severities": frozenset(s.value for s in Severity),
    "agents": None,  # any name: agents are whatever the instrumented code calls them
}
# An error quotes at most this many unknown values, each cut to this many characters.
_QUOTED_VALUES = 10
_QUOTED_CHARS = 40


class EventFilter(Protocol):
    """What :func:`event_matches` needs of a filter (``store.base.EventQuery`` is one)."""

    def matches(self, event: DashboardEvent) -> bool:
        """Whether ``event`` passes."""
        ...


class FilterError(ValueError):
    """A filter list that cannot be used; the message says which and why (it is shown to the client)."""


def event_matches(query: EventFilter | None, event: DashboardEvent) -> bool:
    """Whether ``event`` passes ``query`` (None passes everything); never raises TypeError."""
    if query is None:
        return True
    try:
        return query.matches(event)
    except TypeError:  # an unhashable agent name in the event's data never matches a filter
        return False


def parse_filter_lists(message: Mapping[str, Any]) -> dict[str, list[str]]:
    """The filter lists of a ``subscribe`` message, validated, sorted and deduplicated.

    A missing field or ``null`` is an empty list ("all").

    Raises:
        FilterError: a field that is not a list of strings, has more than :data:`MAX_FILTER_VALUES`
            values, or names unknown event types or severities.
    """
    lists: dict[str, list[str]] = {}
    for key in FILTER_FIELDS:
        value = message.get(key)
        if value is None:
            lists[key] = []
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise FilterError(f"{key} must be a list of strings")
        if len(value) > MAX_FILTER_VALUES:
            raise FilterError(f"{key} has more than {MAX_FILTER_VALUES} values")
        allowed = _ALLOWED[key]
        if allowed is not None:
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise FilterError(f"unknown {key}: {_quoted(unknown)}")
        lists[key] = sorted(set(value))
    return lists


def _quoted(values: list[str]) -> str:
    """The first values as the client sent them, each ``repr`` cut short (client input is unbounded)."""
    shown = []
    for value in values[:_QUOTED_VALUES]:
        text = repr(value)
        shown.append(text if len(text) <= _QUOTED_CHARS else text[: _QUOTED_CHARS - 3] + "...")
    return ", ".join(shown)
