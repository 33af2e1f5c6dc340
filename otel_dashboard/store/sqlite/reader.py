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
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from otel_dashboard.model.events import DashboardEvent
from otel_dashboard.store.base import EventQuery, SearchPage, StoreReadError, search_events
from otel_dashboard.store.sqlite.logs import RateLimitedLog, logger
from otel_dashboard.store.sqlite.rows import decode_event
from otel_dashboard.store.sqlite.schema import COLUMNS, connect_reader, database_error
from otel_dashboard.store.sqlite.search import scalar, search_down, search_up

__all__ = ["Reader"]

# Two lanes. Searches (the history API, resume pages: bounded by their scan cap, but up to a few
# hundred milliseconds each) queue for ONE thread of their own: however many come at once, they use
# at most one core and hold the GIL from one thread, and never hold up the short reads (a new
# client's snapshot, counts), which have two threads of their own.
_READ_THREADS = 2
_SEARCH_THREADS = 1

_Rows = list[tuple[Any, ...]]
_Use = Callable[[], AbstractContextManager[sqlite3.Connection | None]]
"""The connection a read runs on, held for the read (None once the reader is closed)."""
_T = TypeVar("_T")


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
                        page = search_up(conn, self._decode, pending, query, limit, max_scanned_rows,
                                         max_bytes)
                    else:
                        page = search_down(conn, self._decode, pending, query, limit, max_scanned_rows,
                                           max_bytes)
                    oldest = scalar(conn, "SELECT MIN(seq) FROM events", ())
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

    def _decode(self, seq: int, text: str) -> DashboardEvent | None:
        """The event of a row; None (counted and logged) when it cannot be read."""
        try:
            return decode_event(seq, text)
        except Exception as exc:
            self.read_errors += 1
            self._log("decode", logging.WARNING, "event database %s: skipping unreadable event seq=%s "
                      "(%s: %s)", self.path, seq, type(exc).__name__, exc)
            return None

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
