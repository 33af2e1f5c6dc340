"""The events accepted but not yet written, and who waits for them to be durable.

:class:`Backlog` is what the publisher's thread, the writer thread, the readers and the durability
waiters share. Appending only queues in memory (it runs under the state's lock, so it must never
touch the disk); an event leaves the queue only once it is *resolved*: committed, or dropped (the
disk failed for too long, SQLite refused the row, or the store closed first). Readers copy the queue
before they read the database, so every accepted event is in one of the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence

from otel_dashboard.model.events import DashboardEvent
from otel_dashboard.store.sqlite.logs import RateLimitedLog

__all__ = ["Backlog"]

_MAX_DROPPED_RANGES = 1024


class _AsyncWaiter:
    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[bool]) -> None:
        self.loop = loop
        self.future = future


def _set_future(future: asyncio.Future[bool], result: bool) -> None:
    if not future.done():
        future.set_result(result)


class Backlog:
    """The queue of unresolved events (in seq order; the writer's current batch is its head) and
    the durability waiters. Thread-safe.

    Every attribute is guarded by :attr:`cond`, on which the writer waits for work and
    :meth:`wait_durable` for commits.

    Args:
        path: the database, for log messages.
        log: the store's rate-limited log.
        last_seq: the seq numbering continues after (every seq up to it counts as resolved).
    """

    def __init__(self, path: str, log: RateLimitedLog, last_seq: int) -> None:
        self.path = path
        self._log = log
        self.cond = threading.Condition(threading.Lock())
        self.pending: deque[DashboardEvent] = deque()
        self.last_appended = last_seq
        self.resolved_seq = last_seq  # every appended seq <= this is committed or dropped
        self.db_max_seq = last_seq  # the newest committed seq
        self.closing = False
        self.closed = False
        self.close_deadline = 0.0
        self.dropped_events = 0
        self.committed_events = 0
        self._dropped_ranges: deque[list[int]] = deque(maxlen=_MAX_DROPPED_RANGES)
        self._async_waiters: list[tuple[int, int, _AsyncWaiter]] = []
        self._waiter_ids = itertools.count()

    # ------------------------------------------------------------------ the publisher's side
    def append(self, event: DashboardEvent) -> None:
        """Queue ``event`` for the writer (dropped, counted and logged once the store is closing).

        Raises:
            ValueError: ``event.seq`` is unset or not larger than the previous one.
        """
        seq = event.seq
        with self.cond:
            if seq is None or seq <= self.last_appended:
                raise ValueError(f"event seq must be set and increasing: got {seq!r} after "
                                 f"{self.last_appended}")
            if self.closing:
                self.dropped_events += 1
                self._resolve_dropped_locked(seq, seq)
                self.last_appended = seq
                self._log("closed", logging.ERROR,
                          "event database %s is closed; event seq=%s is not stored", self.path, seq)
                return
            self.pending.append(event)
            self.last_appended = seq
            if len(self.pending) == 1:
                self.cond.notify_all()

    def snapshot(self) -> list[DashboardEvent]:
        """The unresolved events, ascending seq. Take it BEFORE reading the database: an event leaves
        the queue only once committed, so every accepted event is in the copy or in the later read."""
        with self.cond:
            return list(self.pending)

    def __len__(self) -> int:
        with self.cond:
            return len(self.pending)

    # ------------------------------------------------------------------ the writer's side
    def committed(self, count: int, rejected: Sequence[int] = ()) -> None:
        """The oldest ``count`` events are resolved: committed, except the ``rejected`` seqs (dropped)."""
        with self.cond:
            last = self.db_max_seq
            for _ in range(count):
                last = self.pending.popleft().seq or last
            for seq in rejected:
                self.dropped_events += 1
                self._resolve_dropped_locked(seq, seq)
            self.db_max_seq = last
            self.resolved_seq = max(self.resolved_seq, last)
            self.committed_events += count - len(rejected)
            self._resolve_waiters_locked()
            self.cond.notify_all()

    def drop_beyond(self, limit: int) -> tuple[int, int, int, int]:
        """Drop the oldest events beyond ``limit`` queued (writes keep failing).

        Returns:
            ``(backlog before, dropped, first seq, last seq)``; ``dropped`` is 0 when under the limit.
        """
        with self.cond:
            backlog = len(self.pending)
            excess = backlog - limit
            if excess <= 0:
                return backlog, 0, 0, 0
            first = last = self.pending[0].seq or 0
            for _ in range(excess):
                last = self.pending.popleft().seq or 0
            self.dropped_events += excess
            self._resolve_dropped_locked(first, last)
            self._resolve_waiters_locked()
            self.cond.notify_all()
            return backlog, excess, first, last

    def drop_all(self) -> tuple[int, int, int]:
        """Drop every queued event (the writer stops).

        Returns:
            ``(dropped, first seq, last seq)``.
        """
        with self.cond:
            left = len(self.pending)
            first = last = 0
            if left:
                first, last = self.pending[0].seq or 0, self.pending[-1].seq or 0
                self.pending.clear()
                self.dropped_events += left
                self._resolve_dropped_locked(first, last)
            self._resolve_waiters_locked()
            self.cond.notify_all()
            return left, first, last

    def begin_close(self, timeout_seconds: float) -> bool:
        """Stop taking events; the writer gets ``timeout_seconds`` to write what is queued.

        Returns:
            True if closing had already begun.
        """
        with self.cond:
            if self.closing:
                return True
            self.closing = True
            self.close_deadline = time.monotonic() + max(0.0, timeout_seconds)
            self.cond.notify_all()
            return False

    def end_close(self) -> None:
        """The store is closed: whoever still waits for a seq is told it will not be written."""
        with self.cond:
            self.closed = True
            self._resolve_waiters_locked()
            self.cond.notify_all()

    def _resolve_dropped_locked(self, first: int, last: int) -> None:
        ranges = self._dropped_ranges
        if ranges and ranges[-1][1] + 1 >= first:
            ranges[-1][1] = max(ranges[-1][1], last)
        else:
            ranges.append([first, last])
        self.resolved_seq = max(self.resolved_seq, last)

    # ------------------------------------------------------------------ durability
    def _status_locked(self, seq: int) -> bool | None:
        """True: committed; False: dropped; None: not resolved yet."""
        if seq > self.resolved_seq:
            return None
        return not any(first <= seq <= last for first, last in self._dropped_ranges)

    def _resolve_waiters_locked(self) -> None:
        waiters = self._async_waiters
        while waiters and waiters[0][0] <= self.resolved_seq:
            seq, _, waiter = heapq.heappop(waiters)
            self._notify_async(waiter, bool(self._status_locked(seq)))
        if self.closed:
            while waiters:
                _, _, waiter = heapq.heappop(waiters)
                self._notify_async(waiter, False)

    @staticmethod
    def _notify_async(waiter: _AsyncWaiter, result: bool) -> None:
        # RuntimeError: the waiter's loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            waiter.loop.call_soon_threadsafe(_set_future, waiter.future, result)

    def wait_durable(self, seq: int, timeout_seconds: float) -> bool:
        """Block until the event ``seq`` is committed.

        Returns:
            True once committed (at once if it already is); False on timeout, if it was dropped, or
            if the store closed before writing it.
        """
        deadline = time.monotonic() + max(0.0, timeout_seconds)
        with self.cond:
            while True:
                status = self._status_locked(seq)
                if status is not None:
                    return status
                if self.closed:
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(remaining)

    async def wait_durable_async(self, seq: int, timeout_seconds: float) -> bool:
        """:meth:`wait_durable` without blocking the event loop (the writer wakes a future)."""
        loop = asyncio.get_running_loop()
        with self.cond:
            status = self._status_locked(seq)
            if status is not None:
                return status
            if self.closed:
                return False
            waiter = _AsyncWaiter(loop, loop.create_future())
            heapq.heappush(self._async_waiters, (seq, next(self._waiter_ids), waiter))
        try:
            return await asyncio.wait_for(waiter.future, max(0.0, timeout_seconds))
        except asyncio.TimeoutError:
            return False
