""":class:`SqliteEventStore`: the durable event store, assembled from the package's parts.

It owns the lock file, the :class:`~otel_dashboard.store.sqlite.backlog.Backlog`, the
:class:`~otel_dashboard.store.sqlite.writer.Writer` thread and the
:class:`~otel_dashboard.store.sqlite.reader.Reader`, checks the options, and closes everything in
order (also at interpreter exit, since the writer is a daemon thread).
"""

from __future__ import annotations

import atexit
import os
import weakref
from typing import Any

from otel_dashboard.model.events import DashboardEvent
from otel_dashboard.store.base import EventQuery, EventStore, SearchPage, check_search_bounds
from otel_dashboard.store.sqlite.backlog import Backlog
from otel_dashboard.store.sqlite.lockfile import acquire_lock_file, release_lock_file
from otel_dashboard.store.sqlite.logs import RateLimitedLog, logger
from otel_dashboard.store.sqlite.reader import Reader
from otel_dashboard.store.sqlite.retention import Retention
from otel_dashboard.store.sqlite.schema import open_database
from otel_dashboard.store.sqlite.writer import Writer

__all__ = ["SqliteEventStore"]

_DEFAULT_RETENTION_EVENTS = 1_000_000
_DEFAULT_BATCH_MAX_EVENTS = 1000
_DEFAULT_RETENTION_BATCH_EVENTS = 2000
_DEFAULT_RETENTION_INTERVAL_SECONDS = 5.0
_DEFAULT_MAX_UNWRITTEN_EVENTS = 100_000
_DEFAULT_RETRY_INITIAL_SECONDS = 0.1
_DEFAULT_RETRY_MAX_SECONDS = 5.0
_DEFAULT_CLOSE_TIMEOUT_SECONDS = 10.0
_SYNCHRONOUS_MODES = ("normal", "full")

_open_stores: weakref.WeakSet[SqliteEventStore] = weakref.WeakSet()


@atexit.register
def _close_open_stores() -> None:
    # The writer is a daemon thread; flush what it holds before the interpreter stops it.
    for store in list(_open_stores):
        try:
            store.close()
        except Exception:  # pragma: no cover - best effort at exit
            logger.exception("closing the event store %s at exit failed", store.path)


def _positive_int(name: str, value: Any, *, or_none: str = "") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer{or_none}, got {value!r}")
    return value


def _positive_float(name: str, value: Any, *, or_none: str = "") -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 \
            or value == float("inf"):
        raise ValueError(f"{name} must be a positive number{or_none}, got {value!r}")
    return float(value)


class _CounterOf:
    """A read-only counter of the store, kept by one of its parts under the same name."""

    def __init__(self, part: str, doc: str) -> None:
        self._part = part
        self.__doc__ = doc
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, store: object, owner: type | None = None) -> Any:
        if store is None:
            return self
        return getattr(getattr(store, self._part), self._name)


class SqliteEventStore(EventStore):
    """Event history in an SQLite file: WAL mode, batched writes by one writer thread, retention,
    reads (plain, or ``async`` on reader threads) that include the events not yet written.

    Args:
        path: the database file (created if missing; its directory must exist). Not ``":memory:"``:
            use :class:`~otel_dashboard.store.base.MemoryEventStore` for that.
        retention_events: keep at most this many newest events (None: no count limit).
        retention_hours: delete events whose timestamp is older than this (None: no age limit).
        batch_max_events: most events written in one transaction.
        synchronous: ``"normal"`` (default: a commit survives a crash of the process, the newest
            commits may be lost if the machine loses power) or ``"full"`` (an fsync per commit: also
            survives power loss, slower).
        max_unwritten_events: events queued while writes fail before the oldest are dropped.
        retention_batch_events: rows deleted per retention step (small, so the writer never stalls).
        retention_interval_seconds: how often the writer checks the age limit while idle.
        retry_initial_seconds: first pause after a failed write; doubles up to ``retry_max_seconds``.
        retry_max_seconds: longest pause between retries of a failed write.

    Raises:
        ValueError: an invalid option, named in the message.
        StoreError: the file cannot be used (corrupt, not an otel-dashboard database, written by a
            newer version, unwritable, or in use by another process); the message names the path.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention_events: int | None = _DEFAULT_RETENTION_EVENTS,
        retention_hours: float | None = None,
        batch_max_events: int = _DEFAULT_BATCH_MAX_EVENTS,
        synchronous: str = "normal",
        max_unwritten_events: int = _DEFAULT_MAX_UNWRITTEN_EVENTS,
        retention_batch_events: int = _DEFAULT_RETENTION_BATCH_EVENTS,
        retention_interval_seconds: float = _DEFAULT_RETENTION_INTERVAL_SECONDS,
        retry_initial_seconds: float = _DEFAULT_RETRY_INITIAL_SECONDS,
        retry_max_seconds: float = _DEFAULT_RETRY_MAX_SECONDS,
    ) -> None:
        self.path = os.fspath(path)
        if not self.path or self.path == ":memory:":
            raise ValueError(f"path must be a file path, got {self.path!r} "
                             "(use MemoryEventStore for an in-memory history)")
        self.retention_events = (None if retention_events is None
                                 else _positive_int("retention_events", retention_events, or_none=" or None"))
        self.retention_hours = (None if retention_hours is None
                                else _positive_float("retention_hours", retention_hours, or_none=" or None"))
        self.batch_max_events = _positive_int("batch_max_events", batch_max_events)
        if synchronous not in _SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS_MODES)}, "
                             f"got {synchronous!r}")
        self.synchronous = synchronous
        self.max_unwritten_events = _positive_int("max_unwritten_events", max_unwritten_events)
        self.retention_batch_events = _positive_int("retention_batch_events", retention_batch_events)
        retention_interval = _positive_float("retention_interval_seconds", retention_interval_seconds)
        retry_initial = _positive_float("retry_initial_seconds", retry_initial_seconds)
        retry_max = _positive_float("retry_max_seconds", retry_max_seconds)

        self._log = RateLimitedLog()
        self._lock_file = acquire_lock_file(self.path)
        try:
            opened = open_database(self.path, synchronous=synchronous,
                                   max_unwritten_events=self.max_unwritten_events)
            try:
                self._backlog = Backlog(self.path, self._log, opened.last_seq)
                self._reader = Reader(self.path, self._backlog.snapshot, self._log)
            except BaseException:
                opened.conn.close()
                raise
        except BaseException:
            release_lock_file(self._lock_file)
            raise
        self._restart_holes = opened.restart_holes
        self._retention = Retention(events=self.retention_events, hours=self.retention_hours,
                                    batch_events=self.retention_batch_events,
                                    interval_seconds=retention_interval)
        self._writer = Writer(self.path, opened.conn, self._backlog, self._retention, self._log,
                              batch_max_events=self.batch_max_events,
                              max_unwritten_events=self.max_unwritten_events,
                              retry_initial_seconds=retry_initial, retry_max_seconds=retry_max,
                              insert=opened.insert)
        self._writer.start()
        _open_stores.add(self)

    # ------------------------------------------------------------------ writing and durability
    def append(self, event: DashboardEvent) -> None:
        """Queue ``event`` for the writer; never touches the disk.

        Raises:
            ValueError: ``event.seq`` is unset or not larger than the previous one.
        """
        self._backlog.append(event)

    def wait_durable(self, seq: int, timeout_seconds: float = 5.0) -> bool:
        """Block until the event ``seq`` is committed.

        Returns:
            True once committed (at once if it already is); False on timeout, if it was dropped
            (see :attr:`dropped_events`), or if the store closed before writing it.
        """
        return self._backlog.wait_durable(seq, timeout_seconds)

    async def wait_durable_async(self, seq: int, timeout_seconds: float = 5.0) -> bool:
        """:meth:`wait_durable` without blocking the event loop (the writer wakes a future)."""
        return await self._backlog.wait_durable_async(seq, timeout_seconds)

    # ------------------------------------------------------------------ reading
    # The plain reads run SQL on the calling thread; the async ones on the reader's own threads.
    def recent(self, limit: int) -> list[DashboardEvent]:
        return self._reader.recent(limit)

    async def recent_async(self, limit: int) -> list[DashboardEvent]:
        return await self._reader.recent_async(limit)

    def after(self, after_seq: int, limit: int) -> list[DashboardEvent]:
        return self._reader.query(EventQuery(after_seq=after_seq), limit)

    async def after_async(self, after_seq: int, limit: int) -> list[DashboardEvent]:
        return await self._reader.query_async(EventQuery(after_seq=after_seq), limit)

    def query(self, query: EventQuery, limit: int) -> list[DashboardEvent]:
        return self._reader.query(query, limit)

    async def query_async(self, query: EventQuery, limit: int) -> list[DashboardEvent]:
        return await self._reader.query_async(query, limit)

    def search(
        self, query: EventQuery, limit: int, *, max_scanned_rows: int | None = None,
        max_bytes: int | None = None,
    ) -> SearchPage:
        """See :meth:`EventStore.search`: every filter runs in SQL, on an index where there is one
        (event type, agent id and name, service), within a window of ``max_scanned_rows`` seqs that
        starts at the first event held (so a run of deleted seqs never uses it up).

        Raises:
            ValueError: a bound is not a positive integer.
            StoreReadError: SQLite failed (counted in :attr:`read_errors` and logged).
        """
        check_search_bounds(limit, max_scanned_rows, max_bytes)
        return self._reader.search(query, limit, max_scanned_rows, max_bytes)

    async def search_async(
        self, query: EventQuery, limit: int, *, max_scanned_rows: int | None = None,
        max_bytes: int | None = None,
    ) -> SearchPage:
        check_search_bounds(limit, max_scanned_rows, max_bytes)
        return await self._reader.search_async(query, limit, max_scanned_rows, max_bytes)

    def first_seq(self) -> int | None:
        return self._reader.first_seq()

    async def first_seq_async(self) -> int | None:
        return await self._reader.first_seq_async()

    def count_by_type(self) -> dict[str, int]:
        return self._reader.count_by_type()

    async def count_by_type_async(self) -> dict[str, int]:
        return await self._reader.count_by_type_async()

    def last_seq(self) -> int | None:
        with self._backlog.cond:
            return self._backlog.last_appended or None

    def restart_holes(self) -> list[tuple[int, int]]:
        return list(self._restart_holes)

    # ------------------------------------------------------------------ state
    @property
    def unwritten_events(self) -> int:
        """Events accepted but not written yet (the writer's backlog)."""
        return len(self._backlog)

    committed_events = _CounterOf("_backlog", "Events written so far.")
    dropped_events = _CounterOf("_backlog", "Events accepted but never written (a failing disk, a refused "
                                            "row, a closed store).")
    write_errors = _CounterOf("_writer", "Failed writes (each retried) and failed retention steps.")
    write_seconds_total = _CounterOf("_writer", "Time spent in successful batch writes.")
    write_batches = _CounterOf("_writer", "Successful batch writes.")
    read_errors = _CounterOf("_reader", "Failed reads and unreadable rows.")
    deleted_events = _CounterOf("_retention", "Events deleted by retention.")

    def stats(self) -> dict[str, Any]:
        """Counters for health and stats pages."""
        backlog, writer = self._backlog, self._writer
        with backlog.cond:
            return {
                "path": self.path,
                "unwritten_events": len(backlog.pending),
                "committed_events": backlog.committed_events,
                "write_errors": writer.write_errors,
                "dropped_events": backlog.dropped_events,
                "read_errors": self._reader.read_errors,
                "deleted_events": self._retention.deleted_events,
                "last_committed_seq": backlog.db_max_seq,
                "write_seconds_total": round(writer.write_seconds_total, 6),
                "write_batches": writer.write_batches,
            }

    def close(self, timeout_seconds: float = _DEFAULT_CLOSE_TIMEOUT_SECONDS) -> None:
        """Write what is queued (for up to ``timeout_seconds``), then close the database; idempotent.

        Events still unwritten at the deadline (the disk is failing) are counted as dropped and
        logged.
        """
        if self._backlog.begin_close(timeout_seconds):
            self._writer.join(timeout_seconds)
            return
        self._writer.join(max(0.0, timeout_seconds) + 5.0)
        writer_hung = self._writer.is_alive()
        if writer_hung:  # pragma: no cover - a write hung in the OS
            logger.error("event database %s: the writer did not stop; leaving the file as is", self.path)
        self._reader.close()
        self._backlog.end_close()
        if not writer_hung:
            try:
                self._writer.conn.close()
            except Exception:  # pragma: no cover - closing a broken connection
                logger.debug("closing the writer connection of %s failed", self.path, exc_info=True)
        release_lock_file(self._lock_file)
        self._lock_file = None
        _open_stores.discard(self)

    def __repr__(self) -> str:
        return f"SqliteEventStore({self.path!r})"
