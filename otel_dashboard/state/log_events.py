"""Log events waiting for their span, for the trace store (:class:`~otel_dashboard.state.traces.TraceStore`).

A GenAI event or an exception log (:mod:`otel_dashboard.model.otlp.logs`) usually arrives before its
span has ended and been exported: its events and its failure wait here, keyed by ``(trace_id,
span_id)``, until the span arrives finished, and are then merged into the span's record. Bounded
three ways, the oldest entry going first and counted: at most ``max_spans`` spans' worth, at most
``max_bytes`` of events (by the trace store's estimate), and at most ``max_age_seconds`` of waiting
(a span that never comes: not sampled, or lost). Each span keeps at most :data:`MAX_LOG_EVENTS_PER_SPAN`
log events and :data:`MAX_LOG_EVENT_BYTES_PER_SPAN` of them, waiting or attached; the rest are
dropped and counted in the span's ``dropped_events``.

Not thread-safe: the trace store's lock guards it. Imports neither aiohttp nor the SDK.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from otel_dashboard.model.limits import positive_ints
from otel_dashboard.model.record_size import events_bytes

__all__ = [
    "MAX_LOG_EVENTS_PER_SPAN",
    "MAX_LOG_EVENT_BYTES_PER_SPAN",
    "PendingLogEvents",
    "cap_events",
]

MAX_LOG_EVENTS_PER_SPAN = 128
"""Log events one span keeps (beside its own 32 span events); more are dropped and counted."""
MAX_LOG_EVENT_BYTES_PER_SPAN = 1024 * 1024
"""The estimated bytes of the log events one span keeps; events past it are dropped and counted."""
DEFAULT_MAX_PENDING_SPANS = 10_000
DEFAULT_MAX_PENDING_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_PENDING_AGE_SECONDS = 60.0

Key = tuple[int, int]


def cap_events(
    count: int, size: int, events: Iterable[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int, int]:
    """The events a span holding ``count`` log events of ``size`` bytes may still take.

    Returns:
        ``(kept, dropped, kept_bytes)``.
    """
    kept: list[dict[str, Any]] = []
    dropped = 0
    added = 0
    for event in events:
        event_size = events_bytes((event,))
        if (count + len(kept) >= MAX_LOG_EVENTS_PER_SPAN
                or size + added + event_size > MAX_LOG_EVENT_BYTES_PER_SPAN):
            dropped += 1
            continue
        kept.append(event)
        added += event_size
    return kept, dropped, added


class Pending:
    """One span's waiting log events (bounded by :func:`cap_events`) and exception-log failures."""

    __slots__ = ("bytes", "dropped", "events", "failures", "since")

    def __init__(self, since: float) -> None:
        self.events: list[dict[str, Any]] = []
        self.failures: list[Any] = []
        self.dropped = 0
        self.bytes = 0
        self.since = since


class PendingLogEvents:
    """Log events and failures waiting for their span (see the module docstring).

    Args:
        max_spans: spans with waiting events at most.
        max_bytes: estimated bytes of waiting events at most.
        max_age_seconds: how long an entry waits for its span at most (see :meth:`expire`).
        clock: monotonic seconds (tests give their own).

    Raises:
        ValueError: a bound that is not positive (the message names it).
    """

    def __init__(
        self,
        *,
        max_spans: int = DEFAULT_MAX_PENDING_SPANS,
        max_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        max_age_seconds: float = DEFAULT_MAX_PENDING_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        positive_ints(max_spans=max_spans, max_bytes=max_bytes)
        if not max_age_seconds > 0:
            raise ValueError(f"max_age_seconds must be positive, got {max_age_seconds!r}")
        self._max_spans = max_spans
        self._max_bytes = max_bytes
        self._max_age = float(max_age_seconds)
        self._clock = clock
        self._entries: OrderedDict[Key, Pending] = OrderedDict()
        self._bytes = 0
        self.evicted_events = 0
        """Waiting events dropped for a bound or their age (their span never came in time)."""
        self.dropped_events = 0
        """Events refused by a span's own caps (:func:`cap_events`)."""

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    @property
    def bytes(self) -> int:
        """The estimated bytes of the waiting events."""
        return self._bytes

    def add(self, key: Key, events: Iterable[dict[str, Any]], failures: Iterable[Any] = ()) -> list[Any]:
        """Keep ``events`` and ``failures`` until the span ``key`` arrives.

        Returns:
            The failures of entries evicted to make room (their span is given up on).
        """
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = Pending(self._clock())
        kept, dropped, size = cap_events(len(entry.events), entry.bytes, events)
        entry.events.extend(kept)
        entry.dropped += dropped
        entry.bytes += size
        entry.failures.extend(failures)
        self.dropped_events += dropped
        self._bytes += size
        given_up: list[Any] = []
        entries = self._entries
        while len(entries) > 1 and (len(entries) > self._max_spans or self._bytes > self._max_bytes):
            oldest = next(iter(self._entries))
            if oldest == key:
                break  # the entry just added is never the first to go
            given_up.extend(self._drop(oldest).failures)
        return given_up

    def take(self, key: Key) -> Pending | None:
        """The span's waiting entry, removed (None when there is none)."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.bytes
        return entry

    def expire(self) -> list[Any]:
        """Drop the entries that waited longer than ``max_age_seconds``.

        Returns:
            Their failures (their span is given up on).
        """
        if not self._entries:
            return []
        deadline = self._clock() - self._max_age
        given_up: list[Any] = []
        while self._entries:
            oldest_key, oldest = next(iter(self._entries.items()))
            if oldest.since > deadline:
                break
            given_up.extend(self._drop(oldest_key).failures)
        return given_up

    def _drop(self, key: Key) -> Pending:
        entry = self._entries.pop(key)
        self._bytes -= entry.bytes
        self.evicted_events += len(entry.events)
        return entry
