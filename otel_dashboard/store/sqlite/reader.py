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
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from otel_dashboard.model.events import DashboardEvent
from otel_dashboard.store.base import EventQuery
from otel_dashboard.store.sqlite.logs import RateLimitedLog, logger
from otel_dashboard.store.sqlite.rows import decode_event
from otel_dashboard.store.sqlite.schema import COLUMNS, connect_reader, database_error

__all__ = ["Reader"]

# Two: one long read (a service filter scans the whole history) must not hold up every snapshot.
_READ_THREADS = 2

_Rows = list[tuple[Any, ...]]
_Execute = Callable[[str, Sequence[Any]], _Rows]
"""Runs one SELECT on some connection and returns its rows ([] once the reader is closed)."""
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
        self._pool_conns: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._closed = False

    # ------------------------------------------------------------------ connections
    def _execute_here(self, sql: str, params: Sequence[Any]) -> _Rows:
        with self._conn_lock:
            if self._closed:
                return []
            return self._conn.execute(sql, params).fetchall()

    def _execute_in_pool(self, sql: str, params: Sequence[Any]) -> _Rows:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_reader(self.path)
            with self._pool_lock:
                if self._closed:
                    conn.close()
                    return []
                self._pool_conns.append(conn)
            self._local.conn = conn
        return conn.execute(sql, params).fetchall()

    async def _in_pool(self, read: Callable[..., _T], *args: Any) -> _T:
        """``read(execute, *args)`` on a reader thread, its SQL on that thread's own connection.

        Once closed, ``read`` runs here with an ``execute`` that finds nothing (no SQL at all).
        """
        with self._pool_lock:
            if self._closed:
                future = None
            else:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(_READ_THREADS, f"otel-dashboard-store-read {self.path}")
                future = self._pool.submit(read, self._execute_in_pool, *args)
        if future is None:
            return read(_closed, *args)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Let running reads finish, then close every connection; later reads find nothing. Idempotent."""
        with self._pool_lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)  # the reads already submitted complete first
        with self._conn_lock, self._pool_lock:
            conns, self._pool_conns = [self._conn, *self._pool_conns], []
        for conn in conns:
            try:
                conn.close()
            except Exception:  # pragma: no cover - closing a broken connection
                logger.debug("closing a read connection of %s failed", self.path, exc_info=True)

    # ------------------------------------------------------------------ reads (any connection)
    # Each takes the `execute` of the connection it runs on: the shared one, or its reader thread's.
    def _rows(self, execute: _Execute, sql: str, params: Sequence[Any]) -> _Rows | None:
        """The rows of ``sql``; None (counted and logged) when SQLite fails."""
        try:
            return execute(sql, params)
        except sqlite3.Error as exc:
            self.read_errors += 1
            self._log("read", logging.WARNING, "event database %s: read failed (%s: %s); serving the "
                      "events not yet written only", self.path, type(exc).__name__, exc)
            return None

    def _select(self, execute: _Execute, sql: str, params: Sequence[Any]) -> list[DashboardEvent]:
        out = []
        for seq, text in self._rows(execute, sql, params) or ():
            try:
                out.append(decode_event(seq, text))
            except Exception as exc:
                self.read_errors += 1
                self._log("decode", logging.WARNING, "event database %s: skipping unreadable event "
                          "seq=%s (%s: %s)", self.path, seq, type(exc).__name__, exc)
        return out

    def _recent(self, execute: _Execute, limit: int) -> list[DashboardEvent]:
        if limit <= 0:
            return []
        pending = self._pending()
        newest = pending[: -limit - 1 : -1]
        if len(newest) < limit:
            below = pending[0].seq if pending else None
            where, params = ("WHERE seq < ?", [below]) if below is not None else ("", [])
            newest.extend(self._select(execute, f"SELECT {COLUMNS} FROM events {where} ORDER BY seq DESC "
                                                "LIMIT ?", [*params, limit - len(newest)]))
        return newest

    def _query(self, execute: _Execute, query: EventQuery, limit: int) -> list[DashboardEvent]:
        if limit <= 0:
            return []
        pending = self._pending()
        if query.after_seq is not None:
            found = self._select_matching(execute, query, query.after_seq, query.until_seq,
                                          ascending=True, limit=limit)
            # A queued event may have been committed between the copy and the read: skip what the
            # read already gave.
            cursor = max(query.after_seq, found[-1].seq or 0) if found else query.after_seq
            for event in pending:
                if len(found) >= limit:
                    break
                if (event.seq or 0) > cursor and query.matches(event):
                    found.append(event)
            return found
        newest: list[DashboardEvent] = []
        for event in reversed(pending):
            if len(newest) >= limit:
                break
            if query.matches(event):
                newest.append(event)
        if len(newest) < limit:
            upto = query.until_seq
            if pending:  # the database part ends where the queue begins
                below = (pending[0].seq or 0) - 1
                upto = below if upto is None else min(upto, below)
            newest.extend(self._select_matching(execute, query, None, upto, ascending=False,
                                                limit=limit - len(newest)))
        newest.reverse()
        return newest

    def _select_matching(
        self, execute: _Execute, query: EventQuery, after: int | None, upto: int | None, *,
        ascending: bool, limit: int,
    ) -> list[DashboardEvent]:
        """Up to ``limit`` stored events matching ``query`` with ``after < seq <= upto`` (None: no
        bound), the first ones ascending or the last ones descending, in that order.

        An indexed filter (agents, else event types) drives the search: one small index range per
        value, each already in seq order and cut at ``limit``, merged by a UNION. So a page costs
        about ``limit`` rows per value however many events match, instead of a sort of them all.
        The other filters are written ``+column`` so that the planner does not pick their index.
        """
        order = "ASC" if ascending else "DESC"
        range_sql, range_params = "", []
        if after is not None:
            range_sql, range_params = " AND seq > ?", [after]
        if upto is not None:
            range_sql, range_params = range_sql + " AND seq <= ?", [*range_params, upto]
        drivers: list[tuple[str, str]] = []
        rest: list[tuple[str, list[str]]] = []
        types = sorted(t.value for t in query.event_types) if query.event_types is not None else None
        severities = sorted(s.value for s in query.severities) if query.severities is not None else None
        if query.agents is not None:
            agents = sorted(a for a in query.agents if isinstance(a, str))
            if not agents:
                return []
            drivers = [(column, agent) for agent in agents for column in ("agent_id", "agent_name")]
            if types is not None:
                rest.append(("+event_type", types))
        elif types is not None:
            drivers = [("event_type", value) for value in types]
        if severities is not None:
            rest.append(("+severity", severities))
        rest_sql = "".join(f" AND {column} IN ({', '.join('?' * len(values))})" for column, values in rest)
        rest_params = [value for _, values in rest for value in values]
        if not drivers:
            return self._select(
                execute,
                f"SELECT {COLUMNS} FROM events WHERE 1{range_sql}{rest_sql} ORDER BY seq {order} LIMIT ?",
                [*range_params, *rest_params, limit])
        branch = (f"SELECT seq FROM (SELECT seq FROM events WHERE {{column}} = ?{range_sql}{rest_sql} "
                  f"ORDER BY seq {order} LIMIT ?)")
        branches: list[str] = []
        params: list[Any] = []
        for column, value in drivers:
            branches.append(branch.format(column=column))
            params.extend([value, *range_params, *rest_params, limit])
        return self._select(
            execute,
            f"SELECT {COLUMNS} FROM events WHERE seq IN (SELECT seq FROM ({' UNION '.join(branches)}) "
            f"ORDER BY seq {order} LIMIT ?) ORDER BY seq {order}",
            [*params, limit])

    def _first_seq(self, execute: _Execute) -> int | None:
        pending = self._pending()
        rows = self._rows(execute, "SELECT MIN(seq) FROM events", ())
        if rows and rows[0][0] is not None:
            return int(rows[0][0])
        return pending[0].seq if pending else None

    def _count_by_type(self, execute: _Execute) -> dict[str, int]:
        pending = self._pending()
        rows = self._rows(execute, "SELECT event_type, COUNT(*), MAX(seq) FROM events GROUP BY event_type",
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
        return self._recent(self._execute_here, limit)

    async def recent_async(self, limit: int) -> list[DashboardEvent]:
        """:meth:`recent` on a reader thread."""
        return await self._in_pool(self._recent, limit)

    def query(self, query: EventQuery, limit: int) -> list[DashboardEvent]:
        """Up to ``limit`` events matching ``query``, ascending seq (see ``EventStore.query``)."""
        return self._query(self._execute_here, query, limit)

    async def query_async(self, query: EventQuery, limit: int) -> list[DashboardEvent]:
        """:meth:`query` on a reader thread."""
        return await self._in_pool(self._query, query, limit)

    def first_seq(self) -> int | None:
        """The smallest seq held, in the database or still queued."""
        return self._first_seq(self._execute_here)

    async def first_seq_async(self) -> int | None:
        """:meth:`first_seq` on a reader thread."""
        return await self._in_pool(self._first_seq)

    def count_by_type(self) -> dict[str, int]:
        """How many events of each type are held, in the database or still queued."""
        return self._count_by_type(self._execute_here)

    async def count_by_type_async(self) -> dict[str, int]:
        """:meth:`count_by_type` on a reader thread."""
        return await self._in_pool(self._count_by_type)


def _closed(sql: str, params: Sequence[Any]) -> _Rows:
    return []
