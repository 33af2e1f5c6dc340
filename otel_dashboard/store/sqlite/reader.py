"""Reads of the events table, merged with the events the writer has not written yet.

Plain reads (for threads that may block: tests, the state's rebuild, the direct API) share one
read-only connection. The ``async`` reads never run SQL on the event loop: a small pool of reader
threads, each with its own read-only connection (WAL lets them read while the writer writes), runs
them and hands the result back to the loop. Either way a read copies the writer's queue first and
reads the database second, and an event leaves the queue only once committed: a read never misses
an accepted event, and never doubles one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from otel_dashboard.model.events import DashboardEvent
from otel_dashboard.store.base import (
    EventQuery,
    SearchCollector,
    SearchPage,
    StoreReadError,
    search_events,
)
from otel_dashboard.store.sqlite.logs import RateLimitedLog, logger
from otel_dashboard.store.sqlite.rows import decode_event, text_value
from otel_dashboard.store.sqlite.schema import COLUMNS, connect_reader, database_error

__all__ = ["Reader"]

# Two lanes. Searches (the history API, resume pages: bounded by their scan cap, but up to a few
# hundred milliseconds each) queue for ONE thread of their own: however many come at once, they use
# at most one core and hold the GIL from one thread, and never hold up the short reads (a new
# client's snapshot, counts), which have two threads of their own.
_READ_THREADS = 2
_SEARCH_THREADS = 1
# Rows fetched from SQLite at a time by a search: it stops reading (and decoding) once its page is
# full, by count or by bytes.
_FETCH_ROWS = 64
_MAX_SEQ = (1 << 63) - 1

_Rows = list[tuple[Any, ...]]
_Use = Callable[[], AbstractContextManager[sqlite3.Connection | None]]
"""The connection a read runs on, held for the read (None once the reader is closed)."""
_T = TypeVar("_T")


def _scalar(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Any:
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def _filters(query: EventQuery) -> tuple[str, list[Any]]:
    """``query``'s filters as SQL (`` AND ...`` terms) and their parameters.

    Each is an ``IN``: SQLite walks the index of the column (or both agent columns, merged), one
    range per value, within the seq range of the search. Long lists (agents, services: up to
    ``MAX_FILTER_VALUES``) go in as ONE JSON array parameter read by ``json_each``: no limit on
    the number of SQL variables or compound SELECT terms applies.
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
    return "".join(f" AND {term}" for term in terms), params


def _json_list(values: frozenset[str]) -> str:
    # As the columns hold them (text_value): only strings name anything.
    return json.dumps(sorted(text_value(v) for v in values if isinstance(v, str)), ensure_ascii=False)


class Reader:
    """The reads of one database.

    Args:
        path: the database file.
        pending: a copy of the events not yet written, ascending seq
            (:meth:`~otel_dashboard.store.sqlite.backlog.Backlog.snapshot`).
        log: the store's rate-limited log.

    Raises:
        StoreError: the file cannot be opened for reading.
    """

    def __init__(self, path: str, pending: Callable[[], list[DashboardEvent]], log: RateLimitedLog) -> None:
        self.path = path
        self._pending = pending
        self._log = log
        self.read_errors = 0
        try:
            self._conn = connect_reader(path)
        except sqlite3.Error as exc:
            raise database_error(path, "cannot open it (is the path a directory, or its directory missing "
                                       "or not writable?)", exc) from None
        self._conn_lock = threading.Lock()  # one plain read at a time on the shared connection
        # The pool is made on the first async read; _pool_lock guards it, its connections and _closed.
        self._pool_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._search_pool: ThreadPoolExecutor | None = None
        self._pool_conns: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._closed = False

    # ------------------------------------------------------------------ connections
    @contextlib.contextmanager
    def _use_here(self) -> Iterator[sqlite3.Connection | None]:
        with self._conn_lock:
            yield None if self._closed else self._conn

    @contextlib.contextmanager
    def _use_in_pool(self) -> Iterator[sqlite3.Connection | None]:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_reader(self.path)
            with self._pool_lock:
                if self._closed:
                    conn.close()
                    conn = None
                else:
                    self._pool_conns.append(conn)
            self._local.conn = conn
        yield conn

    async def _in_pool(self, read: Callable[..., _T], *args: Any, search: bool = False) -> _T:
        """``read(use, *args)`` on a reader thread (of the search lane if ``search``), its SQL on
        that thread's own connection.

        Once closed, ``read`` runs here with a ``use`` that gives no connection (no SQL at all).
        """
        with self._pool_lock:
            if self._closed:
                future = None
            elif search:
                if self._search_pool is None:
                    self._search_pool = ThreadPoolExecutor(
                        _SEARCH_THREADS, f"otel-dashboard-store-search {self.path}")
                future = self._search_pool.submit(read, self._use_in_pool, *args)
            else:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(_READ_THREADS, f"otel-dashboard-store-read {self.path}")
                future = self._pool.submit(read, self._use_in_pool, *args)
        if future is None:
            return read(_closed, *args)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Let running reads finish, then close every connection; later reads find nothing. Idempotent."""
        with self._pool_lock:
            self._closed = True
            pools = [pool for pool in (self._pool, self._search_pool) if pool is not None]
            self._pool = self._search_pool = None
        for pool in pools:
            pool.shutdown(wait=True)  # the reads already submitted complete first
        with self._conn_lock, self._pool_lock:
            conns, self._pool_conns = [self._conn, *self._pool_conns], []
        for conn in conns:
            try:
                conn.close()
            except Exception:  # pragma: no cover - closing a broken connection
                logger.debug("closing a read connection of %s failed", self.path, exc_info=True)

    # ------------------------------------------------------------------ reads (any connection)
    # Each takes the `use` of the connection it runs on: the shared one, or its reader thread's.
    def _rows(self, use: _Use, sql: str, params: Sequence[Any]) -> _Rows | None:
        """The rows of ``sql`` ([] once closed); None (counted and logged) when SQLite fails."""
        try:
            with use() as conn:
                return [] if conn is None else conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            self.read_errors += 1
            self._log("read", logging.WARNING, "event database %s: read failed (%s: %s); serving the "
                      "events not yet written only", self.path, type(exc).__name__, exc)
            return None

    def _select(self, use: _Use, sql: str, params: Sequence[Any]) -> list[DashboardEvent]:
        out = []
        for seq, text in self._rows(use, sql, params) or ():
            try:
                out.append(decode_event(seq, text))
            except Exception as exc:
                self.read_errors += 1
                self._log("decode", logging.WARNING, "event database %s: skipping unreadable event "
                          "seq=%s (%s: %s)", self.path, seq, type(exc).__name__, exc)
        return out

    def _recent(self, use: _Use, limit: int) -> list[DashboardEvent]:
        if limit <= 0:
            return []
        pending = self._pending()
        newest = pending[: -limit - 1 : -1]
        if len(newest) < limit:
            below = pending[0].seq if pending else None
            where, params = ("WHERE seq < ?", [below]) if below is not None else ("", [])
            newest.extend(self._select(use, f"SELECT {COLUMNS} FROM events {where} ORDER BY seq DESC "
                                                "LIMIT ?", [*params, limit - len(newest)]))
        return newest

    def _query(self, use: _Use, query: EventQuery, limit: int) -> list[DashboardEvent]:
        if limit <= 0:
            return []
        try:
            return self._search(use, query, limit, None, None).events
        except StoreReadError:
            # Counted and logged: a snapshot or the direct API still gets the events not yet written.
            return search_events(self._pending(), query, limit, max_scanned_rows=None, max_bytes=None).events

    def _search(
        self, use: _Use, query: EventQuery, limit: int, max_scanned_rows: int | None, max_bytes: int | None,
    ) -> SearchPage:
        """:meth:`EventStore.search` on the connection ``use`` gives: the pending copy first, then
        the database in one read transaction (its lookups and its rows agree with each other).

        Raises:
            StoreReadError: SQLite failed (counted and logged).
        """
        pending = self._pending()
        try:
            with use() as conn:
                if conn is None:  # closed: what is still queued, nothing from the file
                    return search_events(pending, query, limit, max_scanned_rows=max_scanned_rows,
                                         max_bytes=max_bytes)
                conn.execute("BEGIN")
                try:
                    if query.after_seq is not None:
                        page = self._search_up(conn, pending, query, limit, max_scanned_rows, max_bytes)
                    else:
                        page = self._search_down(conn, pending, query, limit, max_scanned_rows, max_bytes)
                    oldest = _scalar(conn, "SELECT MIN(seq) FROM events", ())
                finally:
                    conn.execute("COMMIT")
                if oldest is None and pending:
                    oldest = pending[0].seq
                return page._replace(oldest_seq=oldest)
        except sqlite3.Error as exc:
            self.read_errors += 1
            self._log("read", logging.WARNING, "event database %s: read failed (%s: %s)", self.path,
                      type(exc).__name__, exc)
            raise StoreReadError(self.path, f"event database {self.path}: read failed") from exc

    def _search_up(
        self, conn: sqlite3.Connection, pending: list[DashboardEvent], query: EventQuery, limit: int,
        max_scanned_rows: int | None, max_bytes: int | None,
    ) -> SearchPage:
        """The first matches after ``query.after_seq``, walking at most ``max_scanned_rows`` seqs."""
        after = query.after_seq or 0
        upto = query.until_seq
        queued = [e for e in pending if (e.seq or 0) > after and (upto is None or (e.seq or 0) <= upto)]
        # The range to cover: up to until_seq, else up to the newest event held.
        if upto is None:
            newest = _scalar(conn, "SELECT MAX(seq) FROM events", ())
            upto = max(after, newest or 0, (pending[-1].seq or 0) if pending else 0)
        # The walk starts at the first event held after `after` (retention or a restart may have
        # left a run of seqs without events: the window never spends itself on them).
        first = _scalar(conn, "SELECT MIN(seq) FROM events WHERE seq > ? AND seq <= ?", (after, upto))
        starts = [seq for seq in (first, queued[0].seq if queued else None) if seq is not None]
        collector = SearchCollector(query, limit, max_bytes)
        if not starts:
            return collector.page(ascending=True, first=None, scan_stop=None, end=max(after, upto))
        window_end = upto if max_scanned_rows is None else min(upto, min(starts) - 1 + max_scanned_rows)
        where, params = _filters(query)
        last = after
        full = False
        for seq, event in self._stream(conn, f"SELECT {COLUMNS} FROM events WHERE seq > ? AND seq <= ?"
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

    def _search_down(
        self, conn: sqlite3.Connection, pending: list[DashboardEvent], query: EventQuery, limit: int,
        max_scanned_rows: int | None, max_bytes: int | None,
    ) -> SearchPage:
        """The newest matches up to ``query.until_seq``, walking at most ``max_scanned_rows`` seqs."""
        upto = query.until_seq
        queued = [e for e in pending if upto is None or (e.seq or 0) <= upto]
        newest = _scalar(conn, "SELECT MAX(seq) FROM events WHERE seq <= ?",
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
            where, params = _filters(query)
            for _, event in self._stream(conn, f"SELECT {COLUMNS} FROM events WHERE seq >= ? AND seq <= ?"
                                               f"{where} ORDER BY seq DESC LIMIT ?",
                                         [window_start, db_top, *params, limit + 1 - len(collector.events)]):
                if event is not None and not collector.add(event):
                    break
        scan_stop = None
        if window_start > 1 and ((queued and (queued[0].seq or 0) < window_start) or _scalar(
                conn, "SELECT MAX(seq) FROM events WHERE seq < ?", (window_start,)) is not None):
            scan_stop = window_start - 1  # older events are held: the walk did not reach them
        return collector.page(ascending=False, first=top, scan_stop=scan_stop, end=0, low=window_start)

    def _stream(
        self, conn: sqlite3.Connection, sql: str, params: Sequence[Any]
    ) -> Iterator[tuple[int, DashboardEvent | None]]:
        """``(seq, event)`` per row of ``sql`` (which selects :data:`COLUMNS`), fetched a few at a
        time: the caller stops reading (and decoding) once its page is full. An unreadable row
        comes as ``(seq, None)``, counted and logged."""
        cursor = conn.execute(sql, params)
        try:
            while rows := cursor.fetchmany(_FETCH_ROWS):
                for seq, text in rows:
                    try:
                        yield seq, decode_event(seq, text)
                    except Exception as exc:
                        self.read_errors += 1
                        self._log("decode", logging.WARNING, "event database %s: skipping unreadable "
                                  "event seq=%s (%s: %s)", self.path, seq, type(exc).__name__, exc)
                        yield seq, None
        finally:
            cursor.close()

    def _first_seq(self, use: _Use) -> int | None:
        pending = self._pending()
        rows = self._rows(use, "SELECT MIN(seq) FROM events", ())
        if rows and rows[0][0] is not None:
            return int(rows[0][0])
        return pending[0].seq if pending else None

    def _count_by_type(self, use: _Use) -> dict[str, int]:
        pending = self._pending()
        rows = self._rows(use, "SELECT event_type, COUNT(*), MAX(seq) FROM events GROUP BY event_type",
                          ()) or []
        counts = {str(t): int(n) for t, n, _ in rows}
        # Commits go in seq order: the read saw every committed event up to its newest one, and
        # none of the queued events after that.
        seen = max((int(m) for _, _, m in rows), default=0)
        for event in pending:
            if (event.seq or 0) > seen:
                counts[event.event_type.value] = counts.get(event.event_type.value, 0) + 1
        return counts

    # ------------------------------------------------------------------ the plain and async forms
    def recent(self, limit: int) -> list[DashboardEvent]:
        """Up to ``limit`` newest events, newest first."""
        return self._recent(self._use_here, limit)

    async def recent_async(self, limit: int) -> list[DashboardEvent]:
        """:meth:`recent` on a reader thread."""
        return await self._in_pool(self._recent, limit)

    def query(self, query: EventQuery, limit: int) -> list[DashboardEvent]:
        """Up to ``limit`` events matching ``query``, ascending seq (see ``EventStore.query``)."""
        return self._query(self._use_here, query, limit)

    async def query_async(self, query: EventQuery, limit: int) -> list[DashboardEvent]:
        """:meth:`query` on a reader thread."""
        return await self._in_pool(self._query, query, limit)

    def search(
        self, query: EventQuery, limit: int, max_scanned_rows: int | None, max_bytes: int | None
    ) -> SearchPage:
        """See ``EventStore.search``.

        Raises:
            StoreReadError: SQLite failed.
        """
        return self._search(self._use_here, query, limit, max_scanned_rows, max_bytes)

    async def search_async(
        self, query: EventQuery, limit: int, max_scanned_rows: int | None, max_bytes: int | None
    ) -> SearchPage:
        """:meth:`search` on a reader thread."""
        return await self._in_pool(self._search, query, limit, max_scanned_rows, max_bytes, search=True)

    def first_seq(self) -> int | None:
        """The smallest seq held, in the database or still queued."""
        return self._first_seq(self._use_here)

    async def first_seq_async(self) -> int | None:
        """:meth:`first_seq` on a reader thread."""
        return await self._in_pool(self._first_seq)

    def count_by_type(self) -> dict[str, int]:
        """How many events of each type are held, in the database or still queued."""
        return self._count_by_type(self._use_here)

    async def count_by_type_async(self) -> dict[str, int]:
        """:meth:`count_by_type` on a reader thread."""
        return await self._in_pool(self._count_by_type)


@contextlib.contextmanager
def _closed() -> Iterator[sqlite3.Connection | None]:
    yield None
