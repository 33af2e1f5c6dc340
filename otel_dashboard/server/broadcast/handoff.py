"""The thread hand-off: the state's events, from whichever thread publishes them, into the event loop.

The state calls :meth:`HandOff.submit` synchronously, under its lock, in ``seq`` order. On the event
loop's own thread (the direct API, the timers, the ingest handlers) the event goes into the log at
once; from any other thread (the span processor's worker) it goes into a bounded deque, and ONE
drain is scheduled with ``loop.call_soon_threadsafe``, only when none is pending (not one call per
event). Publishing never waits on the loop or on a client.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable

from otel_dashboard.model.events import DashboardEvent
from otel_dashboard.server.broadcast.counters import Counters
from otel_dashboard.server.broadcast.log import Lost

__all__ = ["DRAIN_BATCH", "HANDOFF_LIMIT", "HandOff"]

HANDOFF_LIMIT = 100_000
"""Events waiting in the hand-off; beyond this they are dropped (and clients told with a gap)."""
DRAIN_BATCH = 2000
"""At most this many events are taken per drain callback before the loop gets a turn."""


class HandOff:
    """Takes the state's events in any thread and gives them to the loop in order.

    Args:
        on_event: called on the loop with each event, in ``seq`` order.
        on_lost: called on the loop, in its place in that order, with each run of events dropped
            because more than :data:`HANDOFF_LIMIT` were waiting.
        counters: where the received events and the drops are counted.
    """

    def __init__(
        self,
        on_event: Callable[[DashboardEvent], None],
        on_lost: Callable[[Lost], None],
        counters: Counters,
    ) -> None:
        self._on_event = on_event
        self._on_lost = on_lost
        self._counters = counters
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._pending: deque[DashboardEvent | Lost] = deque()
        self._drain_scheduled = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand events to ``loop`` (call on the loop's thread)."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def clear(self) -> None:
        """Forget what is waiting (the server is being torn down)."""
        self._pending.clear()

    def submit(self, event: DashboardEvent) -> None:
        """The state's subscriber: called under its lock, so calls never overlap and come in seq order."""
        pending = self._pending
        if threading.get_ident() == self._loop_thread:
            if pending:  # keep seq order behind events still waiting in the hand-off
                pending.append(event)
                if not self._drain_scheduled:
                    self._drain_scheduled = True
                    self._loop.call_soon(self._drain)  # type: ignore[union-attr]
            else:
                self._counters.count_received(1)
                self._on_event(event)
            return
        if len(pending) >= HANDOFF_LIMIT:
            self._counters.drops["handoff_overflow"] += 1
            last = pending[-1]
            if isinstance(last, Lost):
                last.last = event.seq or last.last
            else:
                pending.append(Lost(event.seq or 0))
        else:
            pending.append(event)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._drain)  # type: ignore[union-attr]
            except RuntimeError:  # the loop is closed: we are being torn down
                pending.clear()

    def _drain(self) -> None:
        self._drain_scheduled = False  # before popping: a later append schedules its own drain
        pending = self._pending
        n = min(len(pending), DRAIN_BATCH)
        if n == 0 or self._loop is None:
            return
        self._counters.count_received(n)
        popleft = pending.popleft
        on_event = self._on_event
        for _ in range(n):
            item = popleft()
            if isinstance(item, Lost):
                self._on_lost(item)
            else:
                on_event(item)
        if pending and not self._drain_scheduled:
            self._drain_scheduled = True
            self._loop.call_soon(self._drain)
