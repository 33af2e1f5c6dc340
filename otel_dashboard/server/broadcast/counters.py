"""The broadcaster's counters: dropped events by reason, clients closed by reason, the event rate,
the uptime.

``/health``, ``/stats``, ``system_health_updated`` and ``/metrics`` read them (through the
:class:`~otel_dashboard.server.broadcast.Broadcaster`'s methods of the same names).
"""

from __future__ import annotations

import time
from collections import Counter, deque

__all__ = ["Counters"]

_RATE_WINDOW_SECONDS = 10


class Counters:
    """Drops per reason (``drops``), slow clients closed per reason (``closed_clients``), events
    received per second, and when the last drop was."""

    def __init__(self) -> None:
        # queue_overflow, slow_client_closed, handoff_overflow: the broadcaster's own drops.
        self.drops: Counter[str] = Counter()
        # queue_overflow, send_timeout, queue_bytes, total_queue_bytes: clients closed with 1013
        # (slow.CLOSE_REASONS).
        self.closed_clients: Counter[str] = Counter()
        self._rate: deque[list[int]] = deque(maxlen=_RATE_WINDOW_SECONDS + 2)  # [second, count]
        self.started_monotonic = time.monotonic()
        self._seen_drop_total = 0
        self._last_drop_change: float | None = None

    def restart_clock(self) -> None:
        """The server starts now (uptime and the rate's first window count from here)."""
        self.started_monotonic = time.monotonic()

    def count_received(self, n: int) -> None:
        """``n`` events arrived (for :meth:`events_per_second`)."""
        now = int(time.monotonic())
        rate = self._rate
        if rate and rate[-1][0] == now:
            rate[-1][1] += n
        else:
            rate.append([now, n])

    def note_drop(self) -> None:
        """Events were just dropped (``/health`` says degraded for a while)."""
        self._last_drop_change = time.monotonic()

    def events_per_second(self) -> float:
        """Events received, averaged over a sliding 10-second window."""
        now = int(time.monotonic())
        window_start = now - _RATE_WINDOW_SECONDS + 1
        total = sum(count for sec, count in self._rate if sec >= window_start)
        elapsed = min(float(_RATE_WINDOW_SECONDS), max(1.0, time.monotonic() - self.started_monotonic))
        return round(total / elapsed, 2)

    def drops_by_reason(self, upstream: int) -> dict[str, int]:
        """Dropped events per reason, ``upstream`` (the state's count) included, and their total."""
        out = {
            "upstream": upstream,
            "queue_overflow": self.drops["queue_overflow"],
            "slow_client_closed": self.drops["slow_client_closed"],
            "handoff_overflow": self.drops["handoff_overflow"],
        }
        out["total"] = sum(out.values())
        return out

    def last_drop_time(self, total: int) -> float | None:
        """When (monotonic) the drop total last changed; ``total`` is the current one."""
        if total != self._seen_drop_total:
            self._seen_drop_total = total
            self._last_drop_change = time.monotonic()
        return self._last_drop_change

    def uptime_seconds(self) -> float:
        return round(time.monotonic() - self.started_monotonic, 3)
