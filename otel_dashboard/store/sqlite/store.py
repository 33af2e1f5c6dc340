"""Durable event history in an SQLite file.

:class:`SqliteEventStore` implements :class:`~otel_dashboard.store.base.EventStore` on one SQLite database
in WAL mode. It is the default store of ``otel-dashboard serve`` (``docs/operations.md`` is the
operator's manual: location, schema, retention, backups, restart, errors).

How it works:

* :meth:`~SqliteEventStore.append` only queues the event in memory (it runs under the state's lock on
  the publisher's thread, so it never touches the disk).
* ONE writer thread takes the queue in batches (up to ``batch_max_events``), serializes them and
  writes each batch in one transaction. While a commit is in progress the next batch accumulates, so
  batches grow with the load (group commit) without any artificial delay.
* Reads use a separate read connection (WAL lets it read while the writer writes) and merge in the
  events still queued, so a read never misses an accepted event: the queue is snapshotted first, the
  database read second, and an event leaves the queue only after its commit.
* :meth:`~SqliteEventStore.wait_durable` (and its ``async`` twin) blocks until the batch holding a
  ``seq`` is committed: the ingest endpoint answers 200 only after it.
* Retention by count and by age is applied by the writer in small ``DELETE`` batches.
* A write error (a full disk, an I/O error) is logged (rate limited) and counted; the batch stays
  queued and is retried with backoff. Beyond ``max_unwritten_events`` queued events the oldest are
  dropped, counted and logged at ERROR level: memory stays bounded through a long outage.

Usage::

    from otel_dashboard.store.sqlite import SqliteEventStore
    from otel_dashboard.state.dashboard import DashboardState

    state = DashboardState(store=SqliteEventStore("events.db"))  # rebuilt from the file
    ...
    state.store.close()
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import heapq
import itertools
import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from itertools import islice
from typing import Any

import orjson

from otel_dashboard.model.events import DashboardEvent
from otel_dashboard.store.base import EventQuery, EventStore, StoreError

try:  # pragma: no cover - not on Windows
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["SCHEMA_VERSION", "SqliteEventStore"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the databases this module writes."""

_DEFAULT_RETENTION_EVENTS = 1_000_000
_DEFAULT_BATCH_MAX_EVENTS = 1000
_DEFAULT_RETENTION_BATCH_EVENTS = 2000
_DEFAULT_RETENTION_INTERVAL_SECONDS = 5.0
_DEFAULT_MAX_UNWRITTEN_EVENTS = 100_000
_DEFAULT_RETRY_INITIAL_SECONDS = 0.1
_DEFAULT_RETRY_MAX_SECONDS = 5.0
_DEFAULT_CLOSE_TIMEOUT_SECONDS = 10.0
_BUSY_TIMEOUT_MILLIS = 5000
_LOG_INTERVAL_SECONDS = 10.0
_MAX_DROPPED_RANGES = 1024
_SYNCHRONOUS_MODES = ("normal", "full")

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value)",
    # One row per event: the wire form as JSON, plus the columns the queries filter on.
    "CREATE TABLE events ("
    " seq INTEGER PRIMARY KEY,"
    " event_id TEXT NOT NULL,"
    " event_type TEXT NOT NULL,"
    " severity TEXT NOT NULL,"
    " agent_id TEXT,"
    " agent_name TEXT,"
    " ts REAL NOT NULL,"  # the event's timestamp, Unix seconds (retention by age)
    " event_json TEXT NOT NULL)",
    # seq (the rowid) is implicitly the last column of every index: each gives rows in seq order.
    "CREATE INDEX events_by_type ON events (event_type)",
    "CREATE INDEX events_by_agent_id ON events (agent_id)",
    "CREATE INDEX events_by_agent_name ON events (agent_name)",
    "CREATE INDEX events_by_time ON events (ts)",
)

_INSERT = (
    "INSERT OR REPLACE INTO events"
    " (seq, event_id, event_type, severity, agent_id, agent_name, ts, event_json)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SET_LAST_SEQ = "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_seq', ?)"
_SET_CLEAN_SHUTDOWN = "INSERT OR REPLACE INTO meta (key, value) VALUES ('clean_shutdown', ?)"
_SET_RESTART_HOLES = "INSERT OR REPLACE INTO meta (key, value) VALUES ('restart_holes', ?)"
_MAX_RESTART_HOLES = 20


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (the connection is in autocommit mode): committed, or rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _read_holes(conn: sqlite3.Connection) -> list[tuple[int, int]]:
    row = conn.execute("SELECT value FROM meta WHERE key = 'restart_holes'").fetchone()
    try:
        return [(int(a), int(b)) for a, b in orjson.loads(row[0])] if row and row[0] else []
    except (ValueError, TypeError):
        return []
_COLUMNS = "seq, event_json"

_open_stores: weakref.WeakSet[SqliteEventStore] = weakref.WeakSet()


@atexit.register
def _close_open_stores() -> None:
    # The writer is a daemon thread; flush what it holds before the interpreter stops it.
    for store in list(_open_stores):
        try:
            store.close()
        except Exception:  # pragma: no cover - best effort at exit
            logger.exception("closing the event store %s at exit failed", store.path)


class _RateLimitedLog:
    """Log one message per key at most every ``interval`` seconds, with the count of the suppressed."""

    def __init__(self, interval: float = _LOG_INTERVAL_SECONDS) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str, level: int, message: str, *args: Any) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        logger.log(level, message, *args)


# (the "YYYY-MM-DDTHH:MM:SS" prefix, its Unix seconds) of the last timestamp parsed: events come in
# bursts within one second, and datetime parsing is a large part of building a row.
_second_cache: tuple[str, float] = ("", 0.0)


def _timestamp_seconds(timestamp: str, fallback: float) -> float:
    """Unix seconds of an event timestamp (ISO 8601; naive means UTC); ``fallback`` if unreadable."""
    global _second_cache
    # Fast path for the form the dashboard writes itself: 2026-01-15T10:30:00.123Z
    if len(timestamp) == 24 and timestamp[19] == "." and timestamp[23] == "Z" and timestamp[20:23].isdigit():
        prefix, seconds = _second_cache
        if prefix != timestamp[:19]:
            parsed = _parse_iso_seconds(timestamp[:19] + "Z")
            if parsed is None:
                return fallback
            seconds = parsed
            _second_cache = (timestamp[:19], seconds)
        return seconds + int(timestamp[20:23]) / 1000
    parsed = _parse_iso_seconds(timestamp)
    return fallback if parsed is None else parsed


def _parse_iso_seconds(timestamp: str) -> float | None:
    try:
        text = timestamp[:-1] + "+00:00" if timestamp.endswith(("Z", "z")) else timestamp
        value = datetime.fromisoformat(text)
    except (ValueError, TypeError, AttributeError):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def _event_json(event: DashboardEvent) -> str:
    """The wire form as JSON text; never raises (an unencodable event keeps what can be kept)."""
    try:
        return event.to_json_bytes().decode()
    except Exception:  # e.g. an integer beyond 64 bits, which orjson refuses
        pass
    try:
        return json.dumps(event.to_dict(), default=str)
    except Exception:
        wire = event.to_dict()
        wire["data"] = {"_unserializable": repr(event.data)[:10_000]}
        return json.dumps(wire, default=str)


def _text(value: str) -> str:
    """``value`` as SQLite can store it: lone surrogates (legal in JSON escapes) are escaped."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _agent_column(value: Any) -> str | None:
    return _text(value) if isinstance(value, str) else None


def _row(event: DashboardEvent, now: float) -> tuple[Any, ...]:
    data = event.data
    return (
        event.seq,
        _text(str(event.event_id)),
        event.event_type.value,
        event.severity.value,
        _agent_column(data.get("agent_id")),
        _agent_column(data.get("agent_name")),
        _timestamp_seconds(event.timestamp, now),
        _event_json(event),
    )


def _decode(seq: int, text: str) -> DashboardEvent:
    try:
        wire = orjson.loads(text)
    except orjson.JSONDecodeError:  # written by the json fallback (lone surrogates, huge integers)
        wire = json.loads(text)
    return DashboardEvent(
        wire["event_id"],
        wire["event_type"],
        wire["timestamp"],
        wire.get("data") or {},
        wire.get("severity") or "info",
        wire.get("trace_id"),
        wire.get("span_id"),
        seq,
    )


def _positive_int(name: str, value: Any, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer{' or None' if allow_none else ''}, "
                         f"got {value!r}")
    return value


def _positive_float(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 \
            or value == float("inf"):
        raise ValueError(f"{name} must be a positive number{' or None' if allow_none else ''}, "
                         f"got {value!r}")
    return float(value)


class _AsyncWaiter:
    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[bool]) -> None:
        self.loop = loop
        self.future = future


def _set_future(future: asyncio.Future[bool], result: bool) -> None:
    if not future.done():
        future.set_result(result)


class SqliteEventStore(EventStore):
    """Event history in an SQLite file: WAL mode, batched writes by one writer thread, retention.

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
        self.retention_events = _positive_int("retention_events", retention_events, allow_none=True)
        self.retention_hours = _positive_float("retention_hours", retention_hours, allow_none=True)
        self.batch_max_events = _positive_int("batch_max_events", batch_max_events)
        if synchronous not in _SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS_MODES)}, "
                             f"got {synchronous!r}")
        self.synchronous = synchronous
        self.max_unwritten_events = _positive_int("max_unwritten_events", max_unwritten_events)
        self.retention_batch_events = _positive_int("retention_batch_events", retention_batch_events)
        self._retention_interval = _positive_float("retention_interval_seconds",
                                                   retention_interval_seconds)
        self._retry_initial = _positive_float("retry_initial_seconds", retry_initial_seconds)
        self._retry_max = max(_positive_float("retry_max_seconds", retry_max_seconds),  # type: ignore[type-var]
                              self._retry_initial)

        # Everything below `_cond` is guarded by it. `_pending` holds the events not yet resolved
        # (committed or dropped), in seq order; the writer's current batch is its head.
        self._cond = threading.Condition(threading.Lock())
        self._pending: deque[DashboardEvent] = deque()
        self._last_appended = 0
        self._resolved_seq = 0  # every appended seq <= this is committed or dropped
        self._restart_holes: list[tuple[int, int]] = []
        self._dropped_ranges: deque[list[int]] = deque(maxlen=_MAX_DROPPED_RANGES)
        self._async_waiters: list[tuple[int, int, _AsyncWaiter]] = []
        self._waiter_ids = itertools.count()
        self._closing = False
        self._closed = False
        self._close_deadline = 0.0
        self.write_errors = 0
        self.dropped_events = 0
        self.read_errors = 0
        self.committed_events = 0
        self.write_seconds_total = 0.0  # time spent in successful batch writes (for /metrics)
        self.write_batches = 0
        self.deleted_events = 0
        self._log = _RateLimitedLog()
        self._lock_file: Any = None
        self._read_lock = threading.Lock()

        self._acquire_lock_file()
        try:
            self._wconn = self._open_writer()
            self._rconn = self._connect()
            self._rconn.execute("PRAGMA query_only = ON")
        except BaseException:
            self._release()
            raise
        self._db_max_seq = self._resolved_seq
        self._last_appended = self._resolved_seq

        self._writer = threading.Thread(target=self._run, name=f"otel-dashboard-store {self.path}",
                                        daemon=True)
        self._writer.start()
        _open_stores.add(self)

    # ------------------------------------------------------------------ opening
    def _error(self, message: str, exc: BaseException | None = None) -> StoreError:
        detail = f": {exc}" if exc is not None else ""
        return StoreError(self.path, f"event database {self.path}: {message}{detail}")

    def _acquire_lock_file(self) -> None:
        # One server per database: a second one would number events from the same seq.
        if fcntl is None:  # pragma: no cover - Windows
            return
        lock_path = self.path + ".lock"
        try:
            handle = open(lock_path, "a+")  # noqa: SIM115 - held open until close()
        except OSError as exc:
            raise self._error("cannot create its lock file " + repr(lock_path)
                              + " (is the directory missing or not writable?)", exc) from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip()[:20]
            handle.close()
            raise self._error(
                f"in use by another otel-dashboard process{f' (pid {owner})' if owner else ''}; "
                "give each server its own --db"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MILLIS / 1000, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error("cannot open it (is the path a directory, or its directory missing or "
                              "not writable?)", exc) from None
        return conn

    def _open_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        try:
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                tables = {row[0] for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
            except sqlite3.DatabaseError as exc:
                raise self._error("the file is corrupt or not an SQLite database; move it aside "
                                  "(or restore a backup) and start again", exc) from None
            if version > SCHEMA_VERSION:
                raise self._error(f"written by a newer otel-dashboard (schema version {version}, this "
                                  f"version reads up to {SCHEMA_VERSION}); upgrade, or use another --db")
            if version == 0 and tables:
                raise self._error("not an otel-dashboard database (it holds other tables: "
                                  f"{', '.join(sorted(tables)[:5])})")
            if version == SCHEMA_VERSION and not {"events", "meta"} <= tables:
                raise self._error("the otel-dashboard tables are missing; the file is damaged")
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    logger.warning("event database %s: WAL mode unavailable (journal mode %s); reads "
                                   "may wait for writes", self.path, mode)
                conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
                with _transaction(conn):
                    if version == 0:
                        for statement in _SCHEMA:
                            conn.execute(statement)
                        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    # A real write, so that an unwritable file fails here and not at the first event.
                    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('opened_at', ?)",
                                 (time.time(),))
                    clean = conn.execute(
                        "SELECT value FROM meta WHERE key = 'clean_shutdown'").fetchone()
                    was_clean = version == 0 or (clean is not None and clean[0] == 1)
                    conn.execute(_SET_CLEAN_SHUTDOWN, (0,))
                row = conn.execute("SELECT MAX(seq) FROM events").fetchone()
                meta = conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
                self._restart_holes = _read_holes(conn)
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc).replace(" ", ""):
                    raise self._error("not writable", exc) from None
                raise self._error("cannot be used (corrupt, unwritable, or locked)", exc) from None
            self._resolved_seq = max(row[0] or 0, int(meta[0]) if meta and meta[0] is not None else 0)
            if not was_clean and self._resolved_seq:
                # The last run died with up to max_unwritten_events accepted (and already sent to
                # browsers) but not committed. Handing those seqs out again would make a browser that
                # saw them resume past new events: continue beyond every seq that run could have used.
                skipped_to = self._resolved_seq + self.max_unwritten_events
                logger.warning("event database %s: the previous server did not shut down cleanly; seq "
                               "continues at %d (not %d) so that no seq a client saw is reused",
                               self.path, skipped_to + 1, self._resolved_seq + 1)
                holes = [*self._restart_holes, (self._resolved_seq + 1, skipped_to)][-_MAX_RESTART_HOLES:]
                conn.execute(_SET_RESTART_HOLES, (orjson.dumps(holes).decode(),))
                self._restart_holes = holes
                self._resolved_seq = skipped_to
                conn.execute(_SET_LAST_SEQ, (skipped_to,))
        except BaseException:
            conn.close()
            raise
        return conn

    def _release(self) -> None:
        for name in ("_wconn", "_rconn"):
            conn = self.__dict__.pop(name, None)
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # pragma: no cover - closing a broken connection
                    logger.debug("closing %s failed", name, exc_info=True)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None

    # ------------------------------------------------------------------ writing
    def append(self, event: DashboardEvent) -> None:
        """Queue ``event`` for the writer; never touches the disk.

        Raises:
            ValueError: ``event.seq`` is unset or not larger than the previous one.
        """
        seq = event.seq
        with self._cond:
            if seq is None or seq <= self._last_appended:
                raise ValueError(f"event seq must be set and increasing: got {seq!r} after "
                                 f"{self._last_appended}")
            if self._closing:
                self.dropped_events += 1
                self._resolve_dropped_locked(seq, seq)
                self._last_appended = seq
                self._log("closed", logging.ERROR,
                          "event database %s is closed; event seq=%s is not stored", self.path, seq)
                return
            self._pending.append(event)
            self._last_appended = seq
            if len(self._pending) == 1:
                self._cond.notify_all()

    def _execute_batch(
        self, conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], last_seq: int
    ) -> None:
        """Write ``rows`` in one transaction (the seam a test uses to inject a full disk)."""
        with _transaction(conn):
            conn.executemany(_INSERT, rows)
            conn.execute(_SET_LAST_SEQ, (last_seq,))

    def _mark_clean_shutdown(self, conn: sqlite3.Connection) -> None:
        # Everything accepted is written: the next start may continue seq right after the last one.
        try:
            conn.execute(_SET_CLEAN_SHUTDOWN, (1,))
        except sqlite3.Error as exc:
            logger.warning("event database %s: could not record the clean shutdown: %s", self.path, exc)

    def _run(self) -> None:
        try:
            self._write_loop()
        except BaseException:  # pragma: no cover - a bug; never leave waiters hanging silently
            logger.exception("event database %s: the writer thread failed", self.path)
        finally:
            self._finish_writer()

    def _write_loop(self) -> None:
        conn = self._wconn
        retry_delay = 0.0
        count_due = self.retention_events is not None
        age_due = False
        next_age_check = time.monotonic()
        rows: list[tuple[Any, ...]] = []
        rows_key: tuple[int, int] | None = None  # (first seq, length) of the batch `rows` encodes
        while True:
            with self._cond:
                while not self._closing:
                    if retry_delay:
                        self._cond.wait(retry_delay)  # the pause after a failure; close() wakes it
                        break
                    if self.retention_hours is not None and time.monotonic() >= next_age_check:
                        age_due = True
                        next_age_check = time.monotonic() + self._retention_interval
                    if self._pending or count_due or age_due:
                        break
                    timeout = None
                    if self.retention_hours is not None:
                        timeout = max(0.001, next_age_check - time.monotonic())
                    self._cond.wait(timeout)
                if self._closing:
                    if not self._pending:
                        self._mark_clean_shutdown(conn)
                        return
                    if time.monotonic() >= self._close_deadline:
                        return
                    if retry_delay:  # still failing: pause, but not past the close deadline
                        self._cond.wait(min(retry_delay, max(0.0, self._close_deadline - time.monotonic())))
                batch = list(islice(self._pending, self.batch_max_events))
            if batch:
                try:
                    key = (batch[0].seq or 0, len(batch))
                    if key != rows_key:  # a retry reuses the rows it already serialized
                        now = time.time()
                        rows = [_row(event, now) for event in batch]
                        rows_key = key
                    write_started = time.perf_counter()
                    self._execute_batch(conn, rows, batch[-1].seq or 0)
                    self.write_seconds_total += time.perf_counter() - write_started
                    self.write_batches += 1
                    rejected: list[tuple[int, BaseException]] = []
                except Exception as exc:
                    # sqlite3.OperationalError is the disk, the file or a lock: retry it all later.
                    # Anything else is most likely one bad row: isolate it rather than block the rest.
                    try:
                        if isinstance(exc, sqlite3.OperationalError):
                            raise
                        rejected = self._execute_rows_one_by_one(conn, rows, batch[-1].seq or 0)
                    except Exception as retry_exc:
                        retry_delay = min(self._retry_max, max(self._retry_initial, retry_delay * 2))
                        self._write_failed(retry_exc, len(batch))
                        continue
                rows, rows_key = [], None
                retry_delay = 0.0
                self._committed(batch, rejected)
                count_due = self.retention_events is not None
            if (count_due or age_due) and not self._closing:
                try:
                    count_due, age_due = self._retention_step(conn, count=count_due, age=age_due)
                except Exception as exc:
                    retry_delay = min(self._retry_max, max(self._retry_initial, retry_delay * 2))
                    with self._cond:
                        self.write_errors += 1
                    self._log("retention", logging.WARNING,
                              "event database %s: deleting expired events failed (%s: %s); will retry",
                              self.path, type(exc).__name__, exc)

    def _execute_rows_one_by_one(
        self, conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], last_seq: int
    ) -> list[tuple[int, BaseException]]:
        """Write ``rows`` in one transaction, row by row, leaving out the rows SQLite refuses."""
        rejected: list[tuple[int, BaseException]] = []
        with _transaction(conn):
            for row in rows:
                try:
                    conn.execute(_INSERT, row)
                except sqlite3.OperationalError:
                    raise
                except Exception as exc:  # a value SQLite cannot bind or store
                    rejected.append((int(row[0]) if isinstance(row[0], int) else -1, exc))
            conn.execute(_SET_LAST_SEQ, (last_seq,))
        return rejected

    def _committed(
        self, batch: list[DashboardEvent], rejected: Sequence[tuple[int, BaseException]] = ()
    ) -> None:
        for seq, exc in rejected:  # logged before anyone waiting is told
            logger.error("event database %s: event seq=%s cannot be stored (%s: %s); DROPPED from the "
                         "database (it was shown live)", self.path, seq, type(exc).__name__, exc)
        with self._cond:
            for _ in batch:
                self._pending.popleft()
            for seq, _ in rejected:
                self.dropped_events += 1
                self._resolve_dropped_locked(seq, seq)
            self._db_max_seq = batch[-1].seq or self._db_max_seq
            self._resolved_seq = max(self._resolved_seq, self._db_max_seq)
            self.committed_events += len(batch) - len(rejected)
            self._resolve_waiters_locked()
            self._cond.notify_all()

    def _write_failed(self, exc: Exception, batch_size: int) -> None:
        with self._cond:
            self.write_errors += 1
            backlog = len(self._pending)
            excess = backlog - self.max_unwritten_events
            dropped = None
            if excess > 0:
                first = self._pending[0].seq or 0
                for _ in range(excess):
                    last = self._pending.popleft().seq or 0
                self.dropped_events += excess
                self._resolve_dropped_locked(first, last)
                self._resolve_waiters_locked()
                self._cond.notify_all()
                dropped = (excess, first, last)
        self._log("write", logging.WARNING,
                  "event database %s: writing %d events failed (%s: %s); %d events wait to be written, "
                  "retrying (write errors so far: %d)",
                  self.path, batch_size, type(exc).__name__, exc, backlog, self.write_errors)
        if dropped is not None:
            self._log("dropped", logging.ERROR,
                      "event database %s: more than %d events could not be written; DROPPED the oldest "
                      "%d (seq %d-%d) from the database (they were shown live). Dropped so far: %d",
                      self.path, self.max_unwritten_events, *dropped, self.dropped_events)

    def _resolve_dropped_locked(self, first: int, last: int) -> None:
        ranges = self._dropped_ranges
        if ranges and ranges[-1][1] + 1 >= first:
            ranges[-1][1] = max(ranges[-1][1], last)
        else:
            ranges.append([first, last])
        self._resolved_seq = max(self._resolved_seq, last)

    def _retention_step(self, conn: sqlite3.Connection, *, count: bool, age: bool) -> tuple[bool, bool]:
        """Delete one small batch of expired events per limit; says which limits have more to do."""
        limit = self.retention_batch_events
        count_more = age_more = False
        if count and self.retention_events is not None:
            cutoff = self._db_max_seq - self.retention_events
            if cutoff > 0:
                count_more = self._delete(
                    conn, "SELECT seq FROM events WHERE seq <= ? ORDER BY seq LIMIT ?", (cutoff, limit)
                ) >= limit
        if age and self.retention_hours is not None:
            cutoff_ts = time.time() - self.retention_hours * 3600.0
            age_more = self._delete(
                conn, "SELECT seq FROM events WHERE ts < ? LIMIT ?", (cutoff_ts, limit)
            ) >= limit
        return count_more, age_more

    def _delete(self, conn: sqlite3.Connection, select: str, params: tuple[Any, ...]) -> int:
        with _transaction(conn):
            deleted = conn.execute(f"DELETE FROM events WHERE seq IN ({select})", params).rowcount
        if deleted > 0:
            with self._cond:
                self.deleted_events += deleted
        return max(deleted, 0)

    def _finish_writer(self) -> None:
        with self._cond:
            left = len(self._pending)
            if left:
                first, last = self._pending[0].seq or 0, self._pending[-1].seq or 0
                self._pending.clear()
                self.dropped_events += left
                self._resolve_dropped_locked(first, last)
            self._resolve_waiters_locked()
            self._cond.notify_all()
        if left:
            logger.error("event database %s: closed with %d events not written (seq %d-%d); they are "
                         "lost from history", self.path, left, first, last)
        else:
            try:
                self._wconn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                logger.debug("final checkpoint of %s failed", self.path, exc_info=True)

    # ------------------------------------------------------------------ durability
    def _status_locked(self, seq: int) -> bool | None:
        """True: committed; False: dropped; None: not resolved yet."""
        if seq > self._resolved_seq:
            return None
        return not any(first <= seq <= last for first, last in self._dropped_ranges)

    def _resolve_waiters_locked(self) -> None:
        waiters = self._async_waiters
        while waiters and waiters[0][0] <= self._resolved_seq:
            seq, _, waiter = heapq.heappop(waiters)
            self._notify_async(waiter, bool(self._status_locked(seq)))
        if self._closed or (self._closing and not self._writer.is_alive()):
            while waiters:
                _, _, waiter = heapq.heappop(waiters)
                self._notify_async(waiter, False)

    @staticmethod
    def _notify_async(waiter: _AsyncWaiter, result: bool) -> None:
        # RuntimeError: the waiter's loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            waiter.loop.call_soon_threadsafe(_set_future, waiter.future, result)

    def wait_durable(self, seq: int, timeout_seconds: float = 5.0) -> bool:
        """Block until the event ``seq`` is committed.

        Returns:
            True once committed (at once if it already is); False on timeout, if it was dropped
            (see :attr:`dropped_events`), or if the store closed before writing it.
        """
        deadline = time.monotonic() + max(0.0, timeout_seconds)
        with self._cond:
            while True:
                status = self._status_locked(seq)
                if status is not None:
                    return status
                if self._closed:
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)

    async def wait_durable_async(self, seq: int, timeout_seconds: float = 5.0) -> bool:
        """:meth:`wait_durable` without blocking the event loop (the writer wakes a future)."""
        loop = asyncio.get_running_loop()
        with self._cond:
            status = self._status_locked(seq)
            if status is not None:
                return status
            if self._closed:
                return False
            waiter = _AsyncWaiter(loop, loop.create_future())
            heapq.heappush(self._async_waiters, (seq, next(self._waiter_ids), waiter))
        try:
            return await asyncio.wait_for(waiter.future, max(0.0, timeout_seconds))
        except asyncio.TimeoutError:
            return False

    # ------------------------------------------------------------------ reading
    def _pending_snapshot(self) -> list[DashboardEvent]:
        # Taken BEFORE the database read: an event leaves the queue only once committed, so every
        # accepted event is in the snapshot or visible to the (later) read.
        with self._cond:
            return list(self._pending)

    def _select(self, sql: str, params: Sequence[Any]) -> list[DashboardEvent]:
        rconn = self.__dict__.get("_rconn")
        if rconn is None:
            return []
        try:
            with self._read_lock:
                if self._closed:
                    return []
                rows = rconn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            self.read_errors += 1
            self._log("read", logging.WARNING, "event database %s: read failed (%s: %s); serving the "
                      "events not yet written only", self.path, type(exc).__name__, exc)
            return []
        out = []
        for seq, text in rows:
            try:
                out.append(_decode(seq, text))
            except Exception as exc:
                self.read_errors += 1
                self._log("decode", logging.WARNING, "event database %s: skipping unreadable event "
                          "seq=%s (%s: %s)", self.path, seq, type(exc).__name__, exc)
        return out

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rconn = self.__dict__.get("_rconn")
        if rconn is None:
            return None
        try:
            with self._read_lock:
                if self._closed:
                    return None
                row = rconn.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            self.read_errors += 1
            self._log("read", logging.WARNING, "event database %s: read failed (%s: %s)",
                      self.path, type(exc).__name__, exc)
            return None
        return row[0] if row else None

    def recent(self, limit: int) -> list[DashboardEvent]:
        if limit <= 0:
            return []
        pending = self._pending_snapshot()
        newest = pending[: -limit - 1 : -1]
        if len(newest) < limit:
            below = pending[0].seq if pending else None
            where, params = ("WHERE seq < ?", [below]) if below is not None else ("", [])
            newest.extend(self._select(f"SELECT {_COLUMNS} FROM events {where} ORDER BY seq DESC LIMIT ?",
                                       [*params, limit - len(newest)]))
        return newest

    def after(self, after_seq: int, limit: int) -> list[DashboardEvent]:
        return self.query(EventQuery(after_seq=after_seq), limit)

    def query(self, query: EventQuery, limit: int) -> list[DashboardEvent]:
        if limit <= 0:
            return []
        pending = self._pending_snapshot()
        if query.after_seq is not None:
            found = self._select_matching(query, query.after_seq, ascending=True, limit=limit)
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
            below = pending[0].seq if pending else None
            newest.extend(self._select_matching(query, below, ascending=False, limit=limit - len(newest)))
        newest.reverse()
        return newest

    def _select_matching(
        self, query: EventQuery, bound: int | None, *, ascending: bool, limit: int
    ) -> list[DashboardEvent]:
        """Up to ``limit`` stored events matching ``query`` beyond ``bound`` (after it ascending, before
        it descending), in that order.

        An indexed filter (agents, else event types) drives the search: one small index range per
        value, each already in seq order and cut at ``limit``, merged by a UNION. So a page costs
        about ``limit`` rows per value however many events match, instead of a sort of them all.
        The other filters are written ``+column`` so that the planner does not pick their index.
        """
        order, compare = ("ASC", ">") if ascending else ("DESC", "<")
        range_sql, range_params = (f" AND seq {compare} ?", [bound]) if bound is not None else ("", [])
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
                f"SELECT {_COLUMNS} FROM events WHERE 1{range_sql}{rest_sql} ORDER BY seq {order} LIMIT ?",
                [*range_params, *rest_params, limit])
        branch = (f"SELECT seq FROM (SELECT seq FROM events WHERE {{column}} = ?{range_sql}{rest_sql} "
                  f"ORDER BY seq {order} LIMIT ?)")
        branches: list[str] = []
        params: list[Any] = []
        for column, value in drivers:
            branches.append(branch.format(column=column))
            params.extend([value, *range_params, *rest_params, limit])
        return self._select(
            f"SELECT {_COLUMNS} FROM events WHERE seq IN (SELECT seq FROM ({' UNION '.join(branches)}) "
            f"ORDER BY seq {order} LIMIT ?) ORDER BY seq {order}",
            [*params, limit])

    def first_seq(self) -> int | None:
        pending = self._pending_snapshot()
        first = self._scalar("SELECT MIN(seq) FROM events")
        if first is not None:
            return int(first)
        return pending[0].seq if pending else None

    def restart_holes(self) -> list[tuple[int, int]]:
        return list(self._restart_holes)

    def last_seq(self) -> int | None:
        with self._cond:
            return self._last_appended or None

    def count_by_type(self) -> dict[str, int]:
        pending = self._pending_snapshot()
        rconn = self.__dict__.get("_rconn")
        rows: list[tuple[str, int, int]] = []
        if rconn is not None:
            try:
                with self._read_lock:
                    rows = rconn.execute(
                        "SELECT event_type, COUNT(*), MAX(seq) FROM events GROUP BY event_type").fetchall()
            except sqlite3.Error as exc:
                self.read_errors += 1
                logger.warning("event database %s: counting events failed: %s", self.path, exc)
        counts = {str(t): int(n) for t, n, _ in rows}
        # Commits go in seq order: the read saw every committed event up to its newest one, and
        # none of the queued events after that.
        seen = max((int(m) for _, _, m in rows), default=0)
        for event in pending:
            if (event.seq or 0) > seen:
                counts[event.event_type.value] = counts.get(event.event_type.value, 0) + 1
        return counts

    # ------------------------------------------------------------------ state
    @property
    def unwritten_events(self) -> int:
        """Events accepted but not written yet (the writer's backlog)."""
        with self._cond:
            return len(self._pending)

    def stats(self) -> dict[str, Any]:
        """Counters for health and stats pages."""
        with self._cond:
            return {
                "path": self.path,
                "unwritten_events": len(self._pending),
                "committed_events": self.committed_events,
                "write_errors": self.write_errors,
                "dropped_events": self.dropped_events,
                "read_errors": self.read_errors,
                "deleted_events": self.deleted_events,
                "last_committed_seq": self._db_max_seq,
                "write_seconds_total": round(self.write_seconds_total, 6),
                "write_batches": self.write_batches,
            }

    def close(self, timeout_seconds: float = _DEFAULT_CLOSE_TIMEOUT_SECONDS) -> None:
        """Write what is queued (for up to ``timeout_seconds``), then close the database; idempotent.

        Events still unwritten at the deadline (the disk is failing) are counted as dropped and
        logged.
        """
        with self._cond:
            if self._closing:
                already = True
            else:
                already = False
                self._closing = True
                self._close_deadline = time.monotonic() + max(0.0, timeout_seconds)
                self._cond.notify_all()
        if already:
            self._writer.join(max(0.0, timeout_seconds))
            return
        self._writer.join(max(0.0, timeout_seconds) + 5.0)
        if self._writer.is_alive():  # pragma: no cover - a write hung in the OS
            logger.error("event database %s: the writer did not stop; leaving the file as is", self.path)
            self.__dict__.pop("_wconn", None)
        with self._read_lock, self._cond:
            self._closed = True
            self._resolve_waiters_locked()
            self._cond.notify_all()
        self._release()
        _open_stores.discard(self)

    def __repr__(self) -> str:
        return f"SqliteEventStore({self.path!r})"

