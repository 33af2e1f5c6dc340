"""The server's health and statistics: what ``/health``, ``/stats`` and ``system_health_updated`` say.

:class:`ServerHealth` combines the state's numbers with the broadcaster's (clients, event rate, drops
by reason) and the process's own (CPU time, resident memory, read without psutil).
"""

from __future__ import annotations

import os
import time
from typing import Any

from aiohttp import web

from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.server.broadcast import Broadcaster
from otel_dashboard.server.broker import RedisBroker
from otel_dashboard.server.options import ServerOptions

__all__ = ["HEALTH_KEY", "ServerHealth"]

_HEALTH_BROKER_FIELDS = frozenset({"connected", "replica", "buffered_events", "down_seconds", "last_error"})
# A drop makes /health and system_health_updated "degraded" for at least this long.
_DEGRADED_WINDOW_SECONDS = 10.0


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
        self.counters: dict[str, int] = {}
        self.broker: RedisBroker | None = None  # set when the server shares events through Redis

    def start(self) -> None:
        """Reset the CPU sample (the server's start)."""
        self._cpu_sample = (time.monotonic(), time.process_time())

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the server counter ``name`` (shown in ``/stats`` under ``receiver``)."""
        self.counters[name] = self.counters.get(name, 0) + n

    def health(self) -> dict[str, Any]:
        """Status and numbers shared by ``/health`` and ``system_health_updated``."""
        broadcaster = self.broadcaster
        drops = broadcaster.drops_by_reason()["total"]
        last_drop = broadcaster.last_drop_time(drops)
        now = time.monotonic()
        window = max(_DEGRADED_WINDOW_SECONDS, self.options.health_interval_seconds or 0.0)
        recently_dropped = last_drop is not None and now - last_drop < window
        agents = self.state.get_active_agents()
        stalled = sum(1 for a in agents if a.get("stalled"))
        broker = self.broker
        broker_down = broker is not None and not broker.connected
        health: dict[str, Any] = {
            "status": "degraded" if recently_dropped or stalled or broker_down else "ok",
            "connected_clients": broadcaster.client_count,
            "events_per_second": broadcaster.events_per_second(),
            "dropped_events": drops,
            "uptime_seconds": broadcaster.uptime_seconds(),
            "active_agents": len(agents),
            "stalled_agents": stalled,
        }
        if broker is not None:
            health["broker"] = {k: v for k, v in broker.status().items() if k in _HEALTH_BROKER_FIELDS}
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
        severity = Severity.WARNING if data["status"] != "ok" else Severity.INFO
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
