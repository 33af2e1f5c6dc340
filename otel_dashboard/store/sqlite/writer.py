"""The one writer thread: batches, group commit, retries, and retention between batches.

It takes the :class:`~otel_dashboard.store.sqlite.backlog.Backlog` in batches (up to
``batch_max_events``), serializes them and writes each batch in one transaction. While a commit is
in progress the next batch accumulates, so batches grow with the load (group commit) without any
artificial delay.

A write error (a full disk, an I/O error: ``sqlite3.OperationalError``) is logged (rate limited) and
counted; the batch stays queued and is retried with backoff, and beyond ``max_unwritten_events``
queued events the oldest are dropped, counted and logged at ERROR level. Any other error is most
likely one row SQLite cannot take: the batch is written again row by row, without it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from itertools import islice
from typing import Any

from otel_dashboard.store.sqlite.backlog import Backlog
from otel_dashboard.store.sqlite.logs import RateLimitedLog, logger
from otel_dashboard.store.sqlite.retention import Retention
from otel_dashboard.store.sqlite.rows import event_row
from otel_dashboard.store.sqlite.schema import INSERT, SET_CLEAN_SHUTDOWN, SET_LAST_SEQ, transaction

__all__ = ["Writer"]


class Writer:
    """The writer thread of one database (a daemon: the store's ``close``, also run at exit,
    flushes it).

    Args:
        path: the database, for log messages and the thread's name.
        conn: the writer's connection (from :func:`~otel_dashboard.store.sqlite.schema.open_database`).
        backlog: what to write.
        retention: what to delete between batches.
        log: the store's rate-limited log.
        batch_max_events: most events written in one transaction.
        max_unwritten_events: events queued while writes fail before the oldest are dropped.
        retry_initial_seconds: first pause after a failed write; doubles up to ``retry_max_seconds``.
        retry_max_seconds: longest pause between retries of a failed write.
        insert: the statement that writes one row (the file's layout: ``OpenedDatabase.insert``).
    """

    def __init__(
        self,
        path: str,
        conn: sqlite3.Connection,
        backlog: Backlog,
        retention: Retention,
        log: RateLimitedLog,
        *,
        batch_max_events: int,
        max_unwritten_events: int,
        retry_initial_seconds: float,
        retry_max_seconds: float,
        insert: str = INSERT,
    ) -> None:
        self.path = path
        self._insert = insert
        self.conn = conn
        self._backlog = backlog
        self._retention = retention
        self._log = log
        self._batch_max = batch_max_events
        self._max_unwritten = max_unwritten_events
        self._retry_initial = retry_initial_seconds
        self._retry_max = max(retry_max_seconds, retry_initial_seconds)
        self.write_errors = 0  # updated under the backlog's lock
        self.write_seconds_total = 0.0  # time spent in successful batch writes (for /metrics)
        self.write_batches = 0
        self._thread = threading.Thread(target=self._run, name=f"otel-dashboard-store {path}", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def join(self, timeout_seconds: float) -> None:
        """Wait up to ``timeout_seconds`` for the thread to end (after the backlog began closing)."""
        self._thread.join(max(0.0, timeout_seconds))

    def is_alive(self) -> bool:
        """Whether the thread still runs."""
        return self._thread.is_alive()

    def execute_batch(self, conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], last_seq: int) -> None:
        """Write ``rows`` in one transaction (the seam a test uses to inject a full disk)."""
        with transaction(conn):
            conn.executemany(self._insert, rows)
            conn.execute(SET_LAST_SEQ, (last_seq,))

    def _run(self) -> None:
        try:
            self._write_loop()
        except BaseException:  # pragma: no cover - a bug; never leave waiters hanging silently
            logger.exception("event database %s: the writer thread failed", self.path)
        finally:
            self._finish()

    def _mark_clean_shutdown(self) -> None:
        # Everything accepted is written: the next start may continue seq right after the last one.
        try:
            self.conn.execute(SET_CLEAN_SHUTDOWN, (1,))
        except sqlite3.Error as exc:
            logger.warning("event database %s: could not record the clean shutdown: %s", self.path, exc)

    def _write_loop(self) -> None:
        backlog, retention, conn = self._backlog, self._retention, self.conn
        cond = backlog.cond
        retry_delay = 0.0
        count_due = retention.events is not None
        age_due = False
        next_age_check = time.monotonic()
        rows: list[tuple[Any, ...]] = []
        rows_key: tuple[int, int] | None = None  # (first seq, length) of the batch `rows` encodes
        while True:
            with cond:
                while not backlog.closing:
                    if retry_delay:
                        cond.wait(retry_delay)  # the pause after a failure; close() wakes it
                        break
                    if retention.hours is not None and time.monotonic() >= next_age_check:
                        age_due = True
                        next_age_check = time.monotonic() + retention.interval_seconds
                    if backlog.pending or count_due or age_due:
                        break
                    timeout = None
                    if retention.hours is not None:
                        timeout = max(0.001, next_age_check - time.monotonic())
                    cond.wait(timeout)
                if backlog.closing:
                    if not backlog.pending:
                        self._mark_clean_shutdown()
                        return
                    if time.monotonic() >= backlog.close_deadline:
                        return
                    if retry_delay:  # still failing: pause, but not past the close deadline
                        cond.wait(min(retry_delay, max(0.0, backlog.close_deadline - time.monotonic())))
                batch = list(islice(backlog.pending, self._batch_max))
            if batch:
                try:
                    key = (batch[0].seq or 0, len(batch))
                    if key != rows_key:  # a retry reuses the rows it already serialized
                        now = time.time()
                        rows = [event_row(event, now) for event in batch]
                        rows_key = key
                    write_started = time.perf_counter()
                    self.execute_batch(conn, rows, batch[-1].seq or 0)
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
                self._committed(len(batch), rejected)
                count_due = retention.events is not None
            if (count_due or age_due) and not backlog.closing:
                try:
                    count_due, age_due = retention.step(conn, backlog.db_max_seq,
                                                        count=count_due, age=age_due)
                except Exception as exc:
                    retry_delay = min(self._retry_max, max(self._retry_initial, retry_delay * 2))
                    with cond:
                        self.write_errors += 1
                    self._log("retention", logging.WARNING,
                              "event database %s: deleting expired events failed (%s: %s); will retry",
                              self.path, type(exc).__name__, exc)

    def _execute_rows_one_by_one(
        self, conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], last_seq: int
    ) -> list[tuple[int, BaseException]]:
        """Write ``rows`` in one transaction, row by row, leaving out the rows SQLite refuses."""
        rejected: list[tuple[int, BaseException]] = []
        with transaction(conn):
            for row in rows:
                try:
                    conn.execute(self._insert, row)
                except sqlite3.OperationalError:
                    raise
                except Exception as exc:  # a value SQLite cannot bind or store
                    rejected.append((int(row[0]) if isinstance(row[0], int) else -1, exc))
            conn.execute(SET_LAST_SEQ, (last_seq,))
        return rejected

    def _committed(self, count: int, rejected: Sequence[tuple[int, BaseException]]) -> None:
        for seq, exc in rejected:  # logged before anyone waiting is told
            logger.error("event database %s: event seq=%s cannot be stored (%s: %s); DROPPED from the "
                         "database (it was shown live)", self.path, seq, type(exc).__name__, exc)
        self._backlog.committed(count, [seq for seq, _ in rejected])

    def _write_failed(self, exc: Exception, batch_size: int) -> None:
        backlog = self._backlog
        with backlog.cond:
            self.write_errors += 1
        queued, dropped, first, last = backlog.drop_beyond(self._max_unwritten)
        self._log("write", logging.WARNING,
                  "event database %s: writing %d events failed (%s: %s); %d events wait to be written, "
                  "retrying (write errors so far: %d)",
                  self.path, batch_size, type(exc).__name__, exc, queued, self.write_errors)
        if dropped:
            self._log("dropped", logging.ERROR,
                      "event database %s: more than %d events could not be written; DROPPED the oldest "
                      "%d (seq %d-%d) from the database (they were shown live). Dropped so far: %d",
                      self.path, self._max_unwritten, dropped, first, last, backlog.dropped_events)

    def _finish(self) -> None:
        left, first, last = self._backlog.drop_all()
        if left:
            logger.error("event database %s: closed with %d events not written (seq %d-%d); they are "
                         "lost from history", self.path, left, first, last)
        else:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                logger.debug("final checkpoint of %s failed", self.path, exc_info=True)
