"""The server's health and statistics: what ``/health``, ``/stats`` and ``system_health_updated`` say.

:class:`ServerHealth` combines the state's numbers with the broadcaster's (clients, event rate, drops
by reason) and the process's own (CPU time, resident memory, read without psutil).

The health contract is the original design's: ``status`` is ``"healthy"`` or ``"degraded"``, about the
*server* (dropped events, the broker, its stream reader, the event store, the alert webhooks), with
``reasons`` saying why; agents that run past the stall threshold are the agents' health, reported
as ``stalled_agents`` and shown on the agents, never a reason for the server to be degraded.
"""

from __future__ import annotations

import os
import time
from typing import Any

from aiohttp import web

from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.server.alerts import AlertSender
from otel_dashboard.server.broadcast import Broadcaster
from otel_dashboard.server.broker import RedisBroker
from otel_dashboard.server.options import ServerOptions

__all__ = ["DEGRADED", "HEALTHY", "HEALTH_KEY", "ServerHealth"]

_HEALTH_BROKER_FIELDS = frozenset({"connected", "reading", "replica", "buffered_events", "down_seconds",
                                   "last_error"})
# A drop, or a failed store write, makes /health and system_health_updated "degraded" for at least
# this long.
_DEGRADED_WINDOW_SECONDS = 10.0
# Events waiting for the store and none written for this long: the store is not writing.
_STORE_STALL_SECONDS = 10.0

HEALTHY = "healthy"
"""``/health``'s ``status`` when nothing is wrong with the server (the original design's word)."""
DEGRADED = "degraded"
"""``/health``'s ``status`` when something is: ``reasons`` says what."""

REASON_DROPPED = "recent dropped events"
REASON_BROKER_DOWN = "broker down"
REASON_READER = "broker reader not reading"
REASON_STORE = "store not writing"
REASON_ALERTS = "alert webhook failing"


class _StoreWatch:
    """Whether the event store writes, from its ``stats()`` counters sampled at each health check
    (read-only: the store counts, this compares)."""

    def __init__(self) -> None:
        self._last: tuple[int, int, int] | None = None  # (write_errors, dropped_events, committed_events)
        self._waiting = False  # events were waiting to be written at the last sample
        self._failed_at: float | None = None
        self._progress_at = time.monotonic()

    def writing(self, store: Any, now: float, window: float) -> bool:
        stats_of = getattr(store, "stats", None)
        if not callable(stats_of):
            return True  # the in-memory store cannot fail to write
        try:
            stats = stats_of()
            sample = (int(stats.get("write_errors", 0)), int(stats.get("dropped_events", 0)),
                      int(stats.get("committed_events", 0)))
            unwritten = int(stats.get("unwritten_events", 0))
        except Exception:
            return False  # a store that cannot say how it is doing is not known to write
        last, self._last = self._last, sample
        waiting, self._waiting = self._waiting, unwritten > 0
        if last is not None and (sample[0] > last[0] or sample[1] > last[1]):
            self._failed_at = now
        # Stalled only if events waited at the last sample too, and none was written since: a
        # backlog that began after an idle sample is new, however long ago that sample was.
        if last is None or sample[2] != last[2] or not waiting or unwritten == 0:
            self._progress_at = now
        failed_recently = self._failed_at is not None and now - self._failed_at < window
        return not failed_recently and now - self._progress_at < _STORE_STALL_SECONDS


class ServerHealth:
    """Health and statistics of one running server.

    Args:
        broadcaster: the server's broadcaster (its state is the one served).
        options: the server's options.
    """

    def __init__(self, broadcaster: Broadcaster, options: ServerOptions) -> None:
        self.broadcaster = broadcaster
        self.state = broadcaster.state
        self.options = options
        self._cpu_sample = (time.monotonic(), time.process_time())
        self._store_watch = _StoreWatch()
        self.counters: dict[str, int] = {}
        self.broker: RedisBroker | None = None  # set when the server shares events through Redis
        self.alerts: AlertSender | None = None  # set when the server posts alerts to webhooks

    def start(self) -> None:
        """Reset the CPU sample (the server's start)."""
        self._cpu_sample = (time.monotonic(), time.process_time())

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the server counter ``name`` (shown in ``/stats`` under ``receiver``)."""
        self.counters[name] = self.counters.get(name, 0) + n

    def reasons(self) -> list[str]:
        """Why the server is degraded, in this order; empty when it is healthy.

        * ``"recent dropped events"``: events were dropped (any reason of ``/stats``'
          ``dropped_events``) within the last 10 s (or the health interval, if longer);
        * ``"broker down"``: a cluster replica cannot reach Redis (it buffers meanwhile);
        * ``"broker reader not reading"``: a cluster replica's stream reader is not running, keeps
          failing, or had no answer from Redis for 10 s while Redis is reachable;
        * ``"store not writing"``: the event store failed a write or dropped events within the
          window, or it has events waiting and wrote none for 10 s;
        * ``"alert webhook failing"``: an alert webhook failed its last 2 attempts or gave an alert
          up, and no alert got through since (``alerts`` says which).

        Stalled *agents* are not among them: they are the agents' health (``stalled_agents``).
        """
        now = time.monotonic()
        window = max(_DEGRADED_WINDOW_SECONDS, self.options.health_interval_seconds or 0.0)
        reasons = []
        broadcaster = self.broadcaster
        last_drop = broadcaster.last_drop_time(broadcaster.drops_by_reason()["total"])
        if last_drop is not None and now - last_drop < window:
            reasons.append(REASON_DROPPED)
        broker = self.broker
        if broker is not None:
            if not broker.connected:
                reasons.append(REASON_BROKER_DOWN)
            if not broker.reading:
                reasons.append(REASON_READER)
        if not self._store_watch.writing(self.state.store, now, window):
            reasons.append(REASON_STORE)
        if self.alerts is not None and self.alerts.failing:
            reasons.append(REASON_ALERTS)
        return reasons

    def health(self) -> dict[str, Any]:
        """Status and numbers shared by ``/health`` and ``system_health_updated``: ``status``
        (:data:`HEALTHY` or :data:`DEGRADED`), ``reasons`` (see :meth:`reasons`), and the numbers."""
        broadcaster = self.broadcaster
        reasons = self.reasons()
        # The open runs (started events UNION live progress): the same count as metrics.active_agents.
        agents = self.state.get_open_run_summary()
        health: dict[str, Any] = {
            "status": DEGRADED if reasons else HEALTHY,
            "reasons": reasons,
            "connected_clients": broadcaster.client_count,
            "events_per_second": broadcaster.events_per_second(),
            "dropped_events": broadcaster.drops_by_reason()["total"],
            "uptime_seconds": broadcaster.uptime_seconds(),
            "active_agents": len(agents),
            "stalled_agents": sum(1 for a in agents if a.get("stalled")),
        }
        broker = self.broker
        if broker is not None:
            health["broker"] = {k: v for k, v in broker.status().items() if k in _HEALTH_BROKER_FIELDS}
        if self.alerts is not None:
            health["alerts"] = self.alerts.health()
        return health

    def stats(self) -> dict[str, Any]:
        """The state's ``get_dashboard_stats()`` plus the server's own numbers."""
        return self._with_server_numbers(self.state.get_dashboard_stats())

    async def stats_async(self) -> dict[str, Any]:
        """:meth:`stats` for the ``/stats`` handler: the state reads its store off the event loop."""
        return self._with_server_numbers(await self.state.get_dashboard_stats_async())

    def _with_server_numbers(self, stats: dict[str, Any]) -> dict[str, Any]:
        broadcaster = self.broadcaster
        stats.update({
            "connected_clients": broadcaster.client_count,
            "events_per_second": broadcaster.events_per_second(),
            "dropped_events": broadcaster.drops_by_reason(),
            "server_uptime_seconds": broadcaster.uptime_seconds(),
            "clients": broadcaster.client_infos(),
            "run_progress": broadcaster.run_progress_stats(),
            "slow_clients": broadcaster.slow_client_stats(),
        })
        traces = getattr(self.state, "traces", None)
        if traces is not None:
            stats["traces"] = traces.stats()
        stats["receiver"] = dict(self.counters)
        if self.broker is not None:
            stats["broker"] = self.broker.status()
        if self.alerts is not None:
            stats["alerts"] = self.alerts.stats()
        return stats

    def _cpu_percent(self) -> float:
        wall, cpu = time.monotonic(), time.process_time()
        last_wall, last_cpu = self._cpu_sample
        self._cpu_sample = (wall, cpu)
        if wall - last_wall <= 0:
            return 0.0
        return round(100.0 * (cpu - last_cpu) / (wall - last_wall), 1)

    def publish_health(self) -> DashboardEvent:
        """Publish ``system_health_updated`` (``warning`` when degraded)."""
        data = self.health()
        rss = _memory_rss_bytes()
        data.update({
            "cpu_percent": self._cpu_percent(),
            "memory_rss_bytes": rss,
            "memory_percent": _memory_percent(rss),
        })
        if self.broker is not None:
            data["replica"] = self.broker.replica
        severity = Severity.INFO if data["status"] == HEALTHY else Severity.WARNING
        return self.state.publish(DashboardEvent.create(EventType.SYSTEM_HEALTH_UPDATED, data, severity))


def _memory_rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # peak, not current: the best we have
    return int(peak) if os.uname().sysname == "Darwin" else int(peak) * 1024


def _memory_percent(rss: int | None) -> float | None:
    if rss is None:
        return None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return round(100.0 * rss / total, 2) if total > 0 else None


HEALTH_KEY = web.AppKey("otel_dashboard_health", ServerHealth)
