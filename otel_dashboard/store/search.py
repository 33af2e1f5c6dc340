"""Bounded history searches: what one search found and where it stopped (:class:`SearchPage`), the
page being filled (:class:`SearchCollector`), and the search over a list of events that the
in-memory store (and the SQLite store's queue of unwritten events) use.

A search walks seqs in one direction and stops at the first bound it reaches: ``limit`` matches,
``max_bytes`` of their JSON, or ``max_scanned_rows`` seqs walked. Its page says which, and the seq to
continue from: following it walks the whole history once, with no gap and no duplicate.
``EventStore.search`` (:mod:`~otel_dashboard.store.base`) is the interface; the SQLite store's
implementation is :mod:`~otel_dashboard.store.sqlite.search`.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, NamedTuple

from otel_dashboard.model.events import DashboardEvent

if TYPE_CHECKING:
    from otel_dashboard.store.base import EventQuery

__all__ = [
    "STOPPED_BY_BYTES",
    "STOPPED_BY_LIMIT",
    "STOPPED_BY_SCAN",
    "SearchCollector",
    "SearchPage",
    "check_search_bounds",
    "search_events",
]


def _seq_of(event: DashboardEvent) -> int:
    return event.seq or 0


STOPPED_BY_LIMIT = "limit"
STOPPED_BY_BYTES = "max_bytes"
STOPPED_BY_SCAN = "max_scanned_rows"


class SearchPage(NamedTuple):
    """What one :meth:`EventStore.search` found, and where the search stopped.

    A search walks seqs in one direction: upwards from ``after_seq`` when the query has one
    (ascending), else downwards from the newest (or from ``until_seq``). Every seq it walked over is
    *covered*: each matching event there is in :attr:`events`.
    """

    events: list[DashboardEvent]
    """The matches found, ascending ``seq`` (also for a downward search)."""
    complete: bool
    """True when the search covered its whole range: no further match exists in its direction."""
    resume_seq: int
    """Where to continue. Ascending: every seq up to this one is covered; pass it as the next
    ``after_seq`` (when complete, the highest seq covered: a poller continues from it). Descending:
    every seq above this one is covered; pass it as the next ``until_seq`` (0 when complete)."""
    stopped_by: str | None
    """None when complete, else what stopped the search first: :data:`STOPPED_BY_LIMIT` (``limit``
    matches found), :data:`STOPPED_BY_BYTES` (the next match would pass ``max_bytes``) or
    :data:`STOPPED_BY_SCAN` (``max_scanned_rows`` seqs walked)."""
    first_seq: int | None = None
    """The first seq held in the range, where the walk began (ascending: the smallest after
    ``after_seq``; descending: the largest up to ``until_seq``), matching or not; None when the
    range holds no event. Ascending, ``first_seq > after_seq + 1`` means the seqs between are not
    held (deleted by retention, or never stored)."""
    scanned: int = 0
    """How many seqs the walk covered, from :attr:`first_seq` on: an upper bound on the stored events
    it examined (what ``max_scanned_rows`` caps)."""
    oldest_seq: int | None = None
    """The smallest seq the store held when it was read (:meth:`EventStore.first_seq`), read with
    the page (one trip to the store's threads, not two)."""


def check_search_bounds(limit: int, max_scanned_rows: int | None, max_bytes: int | None) -> None:
    """Validate :meth:`EventStore.search`'s bounds.

    Raises:
        ValueError: one is not a positive integer (the bounds may be None), named in the message.
    """
    for name, value, optional in (("limit", limit, False), ("max_scanned_rows", max_scanned_rows, True),
                                  ("max_bytes", max_bytes, True)):
        if value is None and optional:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer{' or None' if optional else ''}, "
                             f"got {value!r}")


def _wire_size(event: DashboardEvent) -> int:
    """The event's size in a JSON list: its wire form and a comma (the encoding is cached on it)."""
    return len(event.to_json_bytes()) + 1


class SearchCollector:
    """The matches of one search, in the order it walks them, up to ``limit`` and ``max_bytes``.

    The stores' :meth:`EventStore.search` offer it each event they walk over; it keeps the matches
    and says when to stop. ``limit + 1`` matches are looked for: the one beyond ``limit`` only tells
    that more exist. The first match is kept whatever its size (a page always moves the cursor).

    Args:
        query: the filters.
        limit: most events kept.
        max_bytes: most bytes of wire form kept (each event's JSON plus a comma); None: no cap.
    """

    __slots__ = ("events", "limit", "max_bytes", "query", "size", "stopped_by")

    def __init__(self, query: EventQuery, limit: int, max_bytes: int | None) -> None:
        self.query = query
        self.limit = limit
        self.max_bytes = max_bytes
        self.events: list[DashboardEvent] = []
        self.size = 0
        self.stopped_by: str | None = None

    def offer(self, event: DashboardEvent) -> bool:
        """Keep ``event`` if it matches; False once the page is full (stop walking)."""
        if not self.query.matches(event):
            return True
        return self.add(event)

    def add(self, event: DashboardEvent) -> bool:
        """Keep ``event`` (a match); False once the page is full (``event`` is then not kept)."""
        if len(self.events) >= self.limit:
            self.stopped_by = STOPPED_BY_LIMIT
            return False
        if self.max_bytes is not None:
            size = _wire_size(event)
            if self.events and self.size + size > self.max_bytes:
                self.stopped_by = STOPPED_BY_BYTES
                return False
            self.size += size
        self.events.append(event)
        return True

    def page(
        self, *, ascending: bool, first: int | None, scan_stop: int | None, end: int, low: int = 1
    ) -> SearchPage:
        """The :class:`SearchPage`, once the walk stopped.

        Args:
            ascending: the direction walked (the events were offered in that order).
            first: the first seq held in the range, where the walk began (None: none held).
            scan_stop: when the scan cap ended the walk, its resume seq (see
                :attr:`SearchPage.resume_seq`); None when the walk reached the end of its range.
            end: the resume seq of a complete ascending walk (the highest seq covered).
            low: the lowest seq a complete descending walk covered.
        """
        events = self.events if ascending else self.events[::-1]
        if self.stopped_by is not None:
            last = self.events[-1].seq or 0  # the last one walked over (and kept)
            complete, resume, edge = False, (last if ascending else last - 1), last
        elif scan_stop is not None:
            complete, resume, edge = False, scan_stop, (scan_stop if ascending else scan_stop + 1)
        else:
            complete, resume, edge = True, (end if ascending else 0), (end if ascending else low)
        scanned = 0 if first is None else max(0, (edge - first if ascending else first - edge) + 1)
        return SearchPage(events, complete, resume, None if complete else self.stopped_by or STOPPED_BY_SCAN,
                          first, scanned)


def search_events(
    events: list[DashboardEvent], query: EventQuery, limit: int, *, max_scanned_rows: int | None,
    max_bytes: int | None,
) -> SearchPage:
    """:meth:`EventStore.search` over ``events`` (ascending ``seq``).

    The window is counted in seqs from the first event held in the range, as the database does: the
    same query gives the same pages from either store.
    """
    page = _search_list(events, query, limit, max_scanned_rows, max_bytes)
    return page._replace(oldest_seq=(events[0].seq or 0) if events else None)


def _search_list(
    events: list[DashboardEvent], query: EventQuery, limit: int, max_scanned_rows: int | None,
    max_bytes: int | None,
) -> SearchPage:
    collector = SearchCollector(query, limit, max_bytes)
    end = len(events)
    covered = (events[-1].seq or 0) if events else 0  # a complete upward walk covers up to here
    if query.until_seq is not None:
        end = bisect.bisect_right(events, query.until_seq, key=_seq_of)
        covered = query.until_seq
    if query.after_seq is not None:
        start = bisect.bisect_right(events, query.after_seq, key=_seq_of)
        covered = max(query.after_seq, covered)
        if start >= end:
            return collector.page(ascending=True, first=None, scan_stop=None, end=covered)
        first = events[start].seq or 0
        stop, scan_stop = end, None
        if max_scanned_rows is not None and first + max_scanned_rows - 1 < covered:
            scan_stop = first + max_scanned_rows - 1
            stop = bisect.bisect_right(events, scan_stop, key=_seq_of, lo=start, hi=end)
        for i in range(start, stop):
            if not collector.offer(events[i]):
                break
        return collector.page(ascending=True, first=first, scan_stop=scan_stop, end=covered)
    if not end:
        return collector.page(ascending=False, first=None, scan_stop=None, end=0)
    top = events[end - 1].seq or 0
    window_start = 1 if max_scanned_rows is None else max(1, top - max_scanned_rows + 1)
    stop = bisect.bisect_left(events, window_start, key=_seq_of, hi=end)
    for i in range(end - 1, stop - 1, -1):
        if not collector.offer(events[i]):
            break
    return collector.page(ascending=False, first=top, scan_stop=window_start - 1 if stop > 0 else None,
                          end=0, low=window_start)
