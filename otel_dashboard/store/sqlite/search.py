"""The bounded searches of the events table: every filter in SQL, within a window of seqs.

:func:`search_up` and :func:`search_down` are ``EventStore.search`` on one read-only connection,
inside the caller's read transaction, merged with the writer's queue (``pending``, copied before
the transaction began: an event leaves it only once committed, so the two together miss nothing
and double nothing). The reader (:mod:`~otel_dashboard.store.sqlite.reader`) runs them on its
search thread and turns a failure into ``StoreReadError``.

The window: a search begins at the first event held in its range (one index lookup, so a run of
seqs that retention deleted or a restart skipped costs nothing) and covers at most
``max_scanned_rows`` consecutive seqs, so SQLite examines at most that many rows, whatever the
filter. Within it, each filter is an ``IN`` on its column: the planner walks the index of event
type, agent id and name, or service (one range per value, each already in seq order), and reads
only the matching rows; severity, which has no index, is checked on the rows. Measured on
1,000,000 events (``benchmarks/bench_history.py``): a window of 100,000 costs under 1 ms for a
service or agent filter matching nothing, ~25 ms for a severity filter (every row read), and
~130 ms at worst (an indexed filter matching everything combined with a severity matching
nothing: every row looked up through the index).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from otel_dashboard.model.events import DashboardEvent
from otel_dashboard.store.base import EventQuery, SearchCollector, SearchPage
from otel_dashboard.store.sqlite.rows import text_value
from otel_dashboard.store.sqlite.schema import COLUMNS

__all__ = ["Decode", "filters_sql", "scalar", "search_down", "search_up"]

# Rows fetched from SQLite at a time: a search stops reading (and decoding) once its page is full,
# by count or by bytes.
_FETCH_ROWS = 64
_MAX_SEQ = (1 << 63) - 1

Decode = Callable[[int, str], "DashboardEvent | None"]
"""Turns a row (seq, event_json) into its event; None for an unreadable one (counted by the reader)."""


def scalar(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Any:
    """The first column of the first row of ``sql`` (None when there is no row)."""
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def filters_sql(query: EventQuery) -> tuple[str, list[Any]]:
    """``query``'s filters as SQL (`` AND ...`` terms) and their parameters.

    Each is an ``IN``: SQLite walks the index of the column (or both agent columns, merged), one
    range per value, within the seq range of the search. Long lists (agents, services: up to
    ``MAX_FILTER_VALUES``) go in as ONE JSON array parameter read by ``json_each``: no limit on
    the number of SQL variables or compound SELECT terms applies. ``run_ids``, ``conversation_ids``,
    ``trace_ids``, ``success`` and ``root_only`` have no column: they are checked on the rows, read
    from their JSON (within the search's window of seqs, so never more than ``max_scanned_rows``).
    """
    terms: list[str] = []
    params: list[Any] = []
    if query.event_types is not None:
        types = sorted(t.value for t in query.event_types)
        terms.append(f"event_type IN ({', '.join('?' * len(types))})")
        params.extend(types)
    if query.severities is not None:
        severities = sorted(s.value for s in query.severities)
        terms.append(f"severity IN ({', '.join('?' * len(severities))})")
        params.extend(severities)
    if query.agents is not None:
        agents = _json_list(query.agents)
        terms.append("(agent_id IN (SELECT value FROM json_each(?))"
                     " OR agent_name IN (SELECT value FROM json_each(?)))")
        params.extend([agents, agents])
    if query.services is not None:
        terms.append("service_name IN (SELECT value FROM json_each(?))")
        params.append(_json_list(query.services))
    if query.run_ids is not None:
        # No column holds the run id: it is read from each row's JSON, on the rows the other
        # filters (and the window of max_scanned_rows) leave. json_valid first: a damaged row's
        # text must not fail the whole search (json_extract raises on malformed JSON).
        terms.append("(CASE WHEN json_valid(event_json) THEN json_extract(event_json, '$.data.run_id') END)"
                     " IN (SELECT value FROM json_each(?))")
        params.append(_json_list(query.run_ids))
    # The traces list's filters: no column either, read from the JSON in the same way.
    for values, path in ((query.conversation_ids, "$.data.conversation_id"), (query.trace_ids, "$.trace_id")):
        if values is not None:
            terms.append(f"(CASE WHEN json_valid(event_json) THEN json_extract(event_json, '{path}') END)"
                         " IN (SELECT value FROM json_each(?))")
            params.append(_json_list(values))
    if query.success is not None:
        # json_type says 'true' or 'false' for a JSON boolean; a missing or other field matches neither.
        terms.append("(CASE WHEN json_valid(event_json) THEN json_type(event_json, '$.data.success')"
                     " END) = ?")
        params.append("true" if query.success else "false")
    if query.root_only:
        terms.append("(CASE WHEN json_valid(event_json) THEN json_extract(event_json, '$.data.parent_run_id')"
                     " END) IS NULL")
    return "".join(f" AND {term}" for term in terms), params


def _json_list(values: frozenset[str]) -> str:
    # As the columns hold them (text_value): only strings name anything.
    return json.dumps(sorted(text_value(v) for v in values if isinstance(v, str)), ensure_ascii=False)


def search_up(
    conn: sqlite3.Connection, decode: Decode, pending: list[DashboardEvent], query: EventQuery, limit: int,
    max_scanned_rows: int | None, max_bytes: int | None,
) -> SearchPage:
    """The first matches after ``query.after_seq``, walking at most ``max_scanned_rows`` seqs."""
    after = query.after_seq or 0
    upto = query.until_seq
    queued = [e for e in pending if (e.seq or 0) > after and (upto is None or (e.seq or 0) <= upto)]
    # The range to cover: up to until_seq, else up to the newest event held.
    if upto is None:
        newest = scalar(conn, "SELECT MAX(seq) FROM events", ())
        upto = max(after, newest or 0, (pending[-1].seq or 0) if pending else 0)
    # The walk starts at the first event held after `after` (retention or a restart may have
    # left a run of seqs without events: the window never spends itself on them).
    first = scalar(conn, "SELECT MIN(seq) FROM events WHERE seq > ? AND seq <= ?", (after, upto))
    starts = [seq for seq in (first, queued[0].seq if queued else None) if seq is not None]
    collector = SearchCollector(query, limit, max_bytes)
    if not starts:
        return collector.page(ascending=True, first=None, scan_stop=None, end=max(after, upto))
    window_end = upto if max_scanned_rows is None else min(upto, min(starts) - 1 + max_scanned_rows)
    where, params = filters_sql(query)
    last = after
    full = False
    for seq, event in _stream(conn, decode, f"SELECT {COLUMNS} FROM events WHERE seq > ? AND seq <= ?"
                                         f"{where} ORDER BY seq LIMIT ?",
                                   [after, window_end, *params, limit + 1]):
        last = seq
        if event is not None and not collector.add(event):
            full = True
            break
    if not full:
        # A queued event may have been committed between the copy and the read: skip what the
        # read already gave.
        for event in queued:
            seq = event.seq or 0
            if seq > window_end:
                break
            if seq > last and not collector.offer(event):
                break
    return collector.page(ascending=True, first=min(starts),
                          scan_stop=window_end if window_end < upto else None, end=max(after, upto))

def search_down(
    conn: sqlite3.Connection, decode: Decode, pending: list[DashboardEvent], query: EventQuery, limit: int,
    max_scanned_rows: int | None, max_bytes: int | None,
) -> SearchPage:
    """The newest matches up to ``query.until_seq``, walking at most ``max_scanned_rows`` seqs."""
    upto = query.until_seq
    queued = [e for e in pending if upto is None or (e.seq or 0) <= upto]
    newest = scalar(conn, "SELECT MAX(seq) FROM events WHERE seq <= ?",
                     (upto if upto is not None else _MAX_SEQ,))
    top = max(newest or 0, (queued[-1].seq or 0) if queued else 0)
    collector = SearchCollector(query, limit, max_bytes)
    if not top:
        return collector.page(ascending=False, first=None, scan_stop=None, end=0)
    window_start = 1 if max_scanned_rows is None else max(1, top - max_scanned_rows + 1)
    full = False
    for queued_event in reversed(queued):  # the newest first
        if (queued_event.seq or 0) < window_start:
            break
        if not collector.offer(queued_event):
            full = True
            break
    if not full:
        # The database part ends where the queue begins.
        db_top = min(top, (queued[0].seq or 0) - 1) if queued else top
        where, params = filters_sql(query)
        for _, event in _stream(conn, decode, f"SELECT {COLUMNS} FROM events WHERE seq >= ? AND seq <= ?"
                                           f"{where} ORDER BY seq DESC LIMIT ?",
                                     [window_start, db_top, *params, limit + 1 - len(collector.events)]):
            if event is not None and not collector.add(event):
                break
    scan_stop = None
    if window_start > 1 and ((queued and (queued[0].seq or 0) < window_start) or scalar(
            conn, "SELECT MAX(seq) FROM events WHERE seq < ?", (window_start,)) is not None):
        scan_stop = window_start - 1  # older events are held: the walk did not reach them
    return collector.page(ascending=False, first=top, scan_stop=scan_stop, end=0, low=window_start)

def _stream(
    conn: sqlite3.Connection, decode: Decode, sql: str, params: Sequence[Any]
) -> Iterator[tuple[int, DashboardEvent | None]]:
    """``(seq, event)`` per row of ``sql`` (which selects :data:`COLUMNS`), fetched a few at a time:
    the caller stops reading (and decoding) once its page is full. An unreadable row comes as
    ``(seq, None)`` (``decode`` counted it)."""
    cursor = conn.execute(sql, params)
    try:
        while rows := cursor.fetchmany(_FETCH_ROWS):
            for seq, text in rows:
                yield seq, decode(seq, text)
    finally:
        cursor.close()
