"""Which events expire, and deleting them a small batch at a time.

The writer thread calls :meth:`Retention.step` between batches: a few thousand rows per step at
most, so that deleting a backlog of old events never holds new ones back for long.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from otel_dashboard.store.sqlite.schema import transaction

__all__ = ["Retention"]


class Retention:
    """Retention by count and by age.

    Args:
        events: keep at most this many newest events (None: no count limit).
        hours: delete events whose timestamp is older than this (None: no age limit).
        batch_events: rows deleted per step and limit.
        interval_seconds: how often the age limit is checked while the writer is idle.
    """

    def __init__(
        self, *, events: int | None, hours: float | None, batch_events: int, interval_seconds: float
    ) -> None:
        self.events = events
        self.hours = hours
        self.batch_events = batch_events
        self.interval_seconds = interval_seconds
        self.deleted_events = 0  # written by the writer thread only

    def step(
        self, conn: sqlite3.Connection, newest_seq: int, *, count: bool, age: bool
    ) -> tuple[bool, bool]:
        """Delete one small batch of expired events per limit asked for.

        Args:
            conn: the writer's connection.
            newest_seq: the newest committed seq (the count limit counts back from it).
            count: apply the count limit.
            age: apply the age limit.

        Returns:
            ``(count limit has more to delete, age limit has more to delete)``.

        Raises:
            sqlite3.Error: a delete failed (what was deleted before it is counted).
        """
        limit = self.batch_events
        count_more = age_more = False
        if count and self.events is not None:
            cutoff = newest_seq - self.events
            if cutoff > 0:
                count_more = self._delete(
                    conn, "SELECT seq FROM events WHERE seq <= ? ORDER BY seq LIMIT ?", (cutoff, limit)
                ) >= limit
        if age and self.hours is not None:
            cutoff_ts = time.time() - self.hours * 3600.0
            age_more = self._delete(
                conn, "SELECT seq FROM events WHERE ts < ? LIMIT ?", (cutoff_ts, limit)
            ) >= limit
        return count_more, age_more

    def _delete(self, conn: sqlite3.Connection, select: str, params: tuple[Any, ...]) -> int:
        with transaction(conn):
            deleted = max(conn.execute(f"DELETE FROM events WHERE seq IN ({select})", params).rowcount, 0)
        self.deleted_events += deleted
        return deleted
