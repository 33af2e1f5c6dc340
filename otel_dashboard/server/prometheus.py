"""Self-observability: ``GET /metrics`` in the Prometheus text format.

Usage (the app factory does this; tests may do it themselves before the app starts)::

    from otel_dashboard.server.prometheus import add_metrics_route, observe_ingest_seconds

    app = create_app(state)
    add_metrics_route(app)                      # before the app starts: its router freezes then
    ...
    observe_ingest_seconds(app, elapsed)        # the ingest handler, once per request

Each application gets its OWN :class:`prometheus_client.CollectorRegistry` (never the global one), so
any number of servers can run in one process (tests) without duplicated time series. Almost every
figure is read at scrape time from the objects that already count it (the state, the broadcaster,
the server's health counters, the store), so publishing an event costs nothing extra; the two
exceptions are the ingest latency histogram, which the ingest handler feeds through
:func:`observe_ingest_seconds`, and the per-agent series, which
:class:`~otel_dashboard.server.agent_series.AgentSeries` counts as a state subscriber (one more
subscriber while the application runs: ``subscribers`` in ``/stats`` counts it).

Metrics (all prefixed ``otel_dashboard_``):

* ``events_accepted_total{event_type}`` (counter): events the state accepted, by type (those rebuilt
  from a durable store at start included);
* ``events_broadcast_total`` (counter): events handed to the WebSocket fan-out since the server started;
* ``events_dropped_total{reason}`` (counter): ``upstream``, ``queue_overflow``, ``slow_client_closed``,
  ``handoff_overflow`` (see ``docs/server.md``);
* ``clients_connected`` (gauge): WebSocket clients connected;
* ``client_queue_depth`` (histogram): each client's lag at scrape time (events of the broadcaster's
  log not yet sent to it);
* ``events_per_second`` (gauge): events received, averaged over the last 10 s;
* ``last_seq`` (gauge) and ``uptime_seconds`` (gauge);
* ``healthy`` (gauge): 1 while ``/health`` says ``healthy``, 0 while ``degraded``;
* ``receiver_<counter>_total`` (counters): the intake of ``POST /api/events`` and ``POST /v1/traces``
  (``ingest_requests``, ``ingested_events``, ``ingest_refused_requests``, ``otlp_requests``, ...);
* ``ingest_request_duration_seconds`` (histogram): ``POST /api/events`` handling time, as reported
  through :func:`observe_ingest_seconds`;
* ``store_unwritten_events`` (gauge) and ``store_committed_events_total``, ``store_write_errors_total``,
  ``store_dropped_events_total``, ``store_read_errors_total``, ``store_deleted_events_total``
  (counters): the durable store's ``stats()``; ``store_write_seconds`` (summary) once the store reports
  ``write_seconds_total`` and ``write_batches`` there;
* ``subscriber_errors_total`` (counter): state subscribers that raised;
* ``open_runs`` (gauge), ``evicted_runs_total`` and ``run_progress_messages_total`` (counters): the
  live progress of agent runs;
* on a cluster replica (``broker=``): ``broker_connected`` and ``broker_buffered_events`` (gauges),
  ``broker_appended_events_total``, ``broker_received_events_total``, ``broker_provisional_events_total``,
  ``broker_dropped_events_total``, ``broker_dropped_spans_total``, ``broker_duplicate_events_total``
  (counters); ``broker_reader_reading`` (gauge), ``broker_reader_restarts_total`` and
  ``broker_skipped_entries_total{kind}`` (counters: unusable stream entries, see
  :mod:`~otel_dashboard.server.broker.entries`);
* per agent, counted since the server started by :class:`~otel_dashboard.server.agent_series.AgentSeries`
  (a state subscriber, subscribed while the application runs): ``runs_total{agent,status}``,
  ``run_duration_seconds{agent}`` (histogram), ``tokens_total{agent,model,type}``,
  ``cost_usd_total{agent,model}``, ``budget_exceeded_total{agent,kind}`` and
  ``agent_series_folded_total{label}`` (at most 100 agents and 50 models, the rest folded into
  ``other``);
* ``process_*``: CPU seconds, resident memory, open file descriptors (``prometheus_client``'s
  process collector, Linux).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from otel_dashboard.server.agent_series import AgentSeries
from otel_dashboard.server.broadcast import BROADCASTER_KEY, Broadcaster
from otel_dashboard.server.broker import BROKER_KEY
from otel_dashboard.server.health import HEALTH_KEY

__all__ = [
    "CONTENT_TYPE",
    "METRICS_KEY",
    "QUEUE_DEPTH_BUCKETS",
    "DashboardMetrics",
    "add_metrics_route",
    "metrics_handler",
    "observe_ingest_seconds",
    "queue_depth_histogram",
]

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic Prometheus text format, which every scraper reads."""

PREFIX = "otel_dashboard"

QUEUE_DEPTH_BUCKETS: tuple[float, ...] = (0, 1, 10, 100, 1000, 10000)
"""Upper bounds of the queue depth histogram (the default ``client_queue_size`` is 10,000)."""

INGEST_SECONDS_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)

# The receiver counters ServerHealth.count() knows today; always exported (0 until counted).
_RECEIVER_COUNTERS = (
    "ingest_requests", "ingested_events", "ingest_refused_requests", "ingest_not_durable_requests",
    "otlp_requests", "otlp_spans_accepted", "otlp_spans_rejected", "otlp_events_published",
    "otlp_refused_requests", "otlp_not_durable_requests",
    "otlp_metric_points_accepted", "otlp_metric_points_used", "otlp_metric_points_rejected",
    "otlp_log_records_accepted", "otlp_log_records_attached", "otlp_log_records_rejected",
    "otlp_log_errors_published", "grpc_requests", "grpc_refused_requests", "grpc_unauthenticated",
)
_DROP_REASONS = ("upstream", "queue_overflow", "slow_client_closed", "handoff_overflow")
# Durable store stats() keys exported as counters (the store counts them since it opened).
_STORE_COUNTERS = ("committed_events", "write_errors", "dropped_events", "read_errors", "deleted_events")
_BROKER_COUNTERS = ("appended_events", "received_events", "provisional_events", "dropped_events",
                    "dropped_spans", "duplicate_events")


def queue_depth_histogram(
    depths: Iterable[int], buckets: Sequence[float] = QUEUE_DEPTH_BUCKETS
) -> tuple[list[tuple[str, float]], int]:
    """Cumulative Prometheus buckets (``le`` label, count) and the sum of ``depths``."""
    counts = [0] * len(buckets)
    total = 0
    n = 0
    for depth in depths:
        n += 1
        total += depth
        for i, bound in enumerate(buckets):
            if depth <= bound:
                counts[i] += 1
                break
    cumulative: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(buckets, counts, strict=True):
        running += count
        cumulative.append((_le(bound), running))
    cumulative.append(("+Inf", n))
    return cumulative, total


def _le(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


class _DashboardCollector(Collector):
    """Reads the server's own counters at scrape time (on the event loop's thread)."""

    def __init__(self, app: web.Application, metrics: DashboardMetrics) -> None:
        self._app = app
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        broadcaster: Broadcaster = self._app[BROADCASTER_KEY]
        state = broadcaster.state

        accepted = CounterMetricFamily(f"{PREFIX}_events_accepted", "Events the state accepted, by type.",
                                       labels=["event_type"])
        for event_type, count in sorted(_events_by_type(state).items()):
            accepted.add_metric([event_type], count)
        yield accepted

        drops = broadcaster.drops_by_reason()
        yield CounterMetricFamily(f"{PREFIX}_events_broadcast",
                                  "Events handed to the WebSocket fan-out since the server started.",
                                  value=self._metrics.events_broadcast(broadcaster, drops))
        dropped = CounterMetricFamily(f"{PREFIX}_events_dropped", "Events dropped, by reason.",
                                      labels=["reason"])
        for reason in _DROP_REASONS:
            dropped.add_metric([reason], drops.get(reason, 0))
        for reason, count in drops.items():  # a reason added later is exported too
            if reason not in _DROP_REASONS and reason != "total":
                dropped.add_metric([reason], count)
        yield dropped

        yield GaugeMetricFamily(f"{PREFIX}_clients_connected", "WebSocket clients connected.",
                                value=broadcaster.client_count)
        slow = broadcaster.slow_client_stats()
        closed = CounterMetricFamily(f"{PREFIX}_slow_clients_closed",
                                     "WebSocket clients closed by the slow-client policy (1013), by reason.",
                                     labels=["reason"])
        for reason, count in slow["closed"].items():
            closed.add_metric([reason], count)
        yield closed
        yield GaugeMetricFamily(f"{PREFIX}_client_queued_bytes",
                                "Bytes queued for all WebSocket clients (replies, unsent frames).",
                                value=slow["queued_bytes"])
        buckets, depth_sum = queue_depth_histogram(_queue_depths(broadcaster))
        yield HistogramMetricFamily(f"{PREFIX}_client_queue_depth",
                                    "Events not yet sent per WebSocket client (its lag), at scrape time.",
                                    buckets=buckets, sum_value=depth_sum)
        yield GaugeMetricFamily(f"{PREFIX}_events_per_second",
                                "Events received per second, averaged over the last 10 s.",
                                value=broadcaster.events_per_second())
        yield GaugeMetricFamily(f"{PREFIX}_last_seq", "seq of the newest accepted event.",
                                value=state.last_seq)
        yield GaugeMetricFamily(f"{PREFIX}_uptime_seconds", "Seconds since the server started.",
                                value=broadcaster.uptime_seconds())
        yield GaugeMetricFamily(f"{PREFIX}_healthy",
                                "1 while /health says healthy, 0 while degraded (stalled agents aside).",
                                value=0 if self._app[HEALTH_KEY].reasons() else 1)

        counters = state.get_counters()
        yield CounterMetricFamily(f"{PREFIX}_subscriber_errors", "State subscribers that raised.",
                                  value=counters.get("subscriber_errors", 0))
        yield GaugeMetricFamily(f"{PREFIX}_open_runs", "Runs with live progress and no completion yet.",
                                value=counters.get("open_runs", 0))
        yield CounterMetricFamily(f"{PREFIX}_evicted_runs",
                                  "Open runs evicted from the progress table (it was full).",
                                  value=counters.get("evicted_runs", 0))
        yield CounterMetricFamily(f"{PREFIX}_run_progress_messages",
                                  "run_progress messages sent to WebSocket clients.",
                                  value=broadcaster.run_progress_stats()["sent_messages"])

        received = dict.fromkeys(_RECEIVER_COUNTERS, 0)
        received.update(self._app[HEALTH_KEY].counters)
        for name, count in received.items():
            yield CounterMetricFamily(f"{PREFIX}_receiver_{name}", f"Intake counter {name}.", value=count)

        yield from _store_metrics(state.store)
        broker = self._app.get(BROKER_KEY)
        if broker is not None:
            yield from _broker_metrics(broker.status())


class DashboardMetrics:
    """One application's registry: the collector above, the ingest histogram, the per-agent series
    (:attr:`agent_series`, which the application subscribes to its state while it runs), process
    metrics."""

    def __init__(self, app: web.Application) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.ingest_seconds = Histogram(
            f"{PREFIX}_ingest_request_duration_seconds",
            "Time to handle one POST /api/events request (parse, publish, durable wait).",
            buckets=INGEST_SECONDS_BUCKETS, registry=self.registry,
        )
        self.registry.register(_DashboardCollector(app, self))
        self.agent_series = AgentSeries(prefix=PREFIX)
        self.registry.register(self.agent_series)
        try:
            ProcessCollector(registry=self.registry)
        except Exception:  # pragma: no cover - platforms without /proc
            logger.debug("process metrics unavailable", exc_info=True)
        self._start_seq: int | None = None

    def mark_started(self, last_seq: int) -> None:
        self._start_seq = last_seq

    def events_broadcast(self, broadcaster: Broadcaster, drops: dict[str, int]) -> int:
        # A counter of the broadcaster's own, when it has one; else what the state accepted since
        # the server started (the broadcaster is subscribed from then on) minus the hand-off losses.
        own = getattr(broadcaster, "events_broadcast", None)
        if isinstance(own, int):
            return own
        if self._start_seq is None:
            return 0
        return max(0, broadcaster.state.last_seq - self._start_seq - drops.get("handoff_overflow", 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


METRICS_KEY = web.AppKey("otel_dashboard_metrics", DashboardMetrics)


async def metrics_handler(request: web.Request) -> web.Response:
    """``GET /metrics``: the application's registry in the Prometheus text format."""
    metrics = request.app[METRICS_KEY]
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})


def add_metrics_route(app: web.Application, path: str = "/metrics") -> DashboardMetrics:
    """Give ``app`` (built by :func:`otel_dashboard.server.app.create_app`) a ``GET /metrics`` route.

    Call it before the application starts. The route sits behind the server's security layer like
    every other one (a token, when the server has one, is required).

    Returns:
        The application's :class:`DashboardMetrics` (also ``app[METRICS_KEY]``).

    Raises:
        RuntimeError: the application is already running (its router is frozen).
    """
    if app.frozen:
        raise RuntimeError("add_metrics_route() must be called before the application starts")
    metrics = DashboardMetrics(app)
    app[METRICS_KEY] = metrics

    async def on_startup(app: web.Application) -> None:
        state = app[BROADCASTER_KEY].state
        metrics.mark_started(state.last_seq)
        state.subscribe(metrics.agent_series)  # the per-agent counts start with the server

    async def on_cleanup(app: web.Application) -> None:
        app[BROADCASTER_KEY].state.unsubscribe(metrics.agent_series)

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get(path, metrics_handler)
    return metrics


def observe_ingest_seconds(app: web.Application, seconds: float) -> None:
    """Record one ``POST /api/events`` handling time; a no-op when ``app`` has no ``/metrics``."""
    metrics = app.get(METRICS_KEY)
    if metrics is not None:
        metrics.ingest_seconds.observe(seconds)


# --------------------------------------------------------------------------- readers
def _events_by_type(state: Any) -> dict[str, int]:
    public = getattr(state, "events_by_type", None)
    if callable(public):
        return dict(public())
    counts = getattr(state, "_events_by_type", None)
    if isinstance(counts, dict):  # a copy of ten ints: consistent enough without the state's lock
        return {getattr(k, "value", str(k)): v for k, v in dict(counts).items()}
    return dict(state.get_dashboard_stats().get("events_by_type", {}))


def _queue_depths(broadcaster: Broadcaster) -> Iterator[int]:
    depths = getattr(broadcaster, "queue_depths", None)
    if callable(depths):  # each client's lag behind the shared log, without building /stats rows
        yield from depths()
        return
    for info in broadcaster.client_infos():
        yield int(info.get("queue_depth", 0))


def _store_metrics(store: Any) -> Iterator[Metric]:
    stats_of = getattr(store, "stats", None)
    if not callable(stats_of):
        return  # the in-memory store has nothing to report
    try:
        stats = stats_of()
    except Exception:
        logger.debug("store stats unavailable", exc_info=True)
        return
    if "unwritten_events" in stats:
        yield GaugeMetricFamily(f"{PREFIX}_store_unwritten_events",
                                "Events accepted but not yet written to the store.",
                                value=stats["unwritten_events"])
    for key in _STORE_COUNTERS:
        if key in stats:
            yield CounterMetricFamily(f"{PREFIX}_store_{key}", f"Store counter {key}.", value=stats[key])
    if "write_seconds_total" in stats and "write_batches" in stats:
        yield SummaryMetricFamily(f"{PREFIX}_store_write_seconds", "Time per batch write to the store.",
                                  count_value=stats["write_batches"], sum_value=stats["write_seconds_total"])


def _broker_metrics(status: dict[str, Any]) -> Iterator[Metric]:
    yield GaugeMetricFamily(f"{PREFIX}_broker_connected", "1 while Redis is reachable (cluster replicas).",
                            value=1 if status["connected"] else 0)
    yield GaugeMetricFamily(f"{PREFIX}_broker_buffered_events",
                            "Events waiting to be appended to Redis.", value=status["buffered_events"])
    for key in _BROKER_COUNTERS:
        yield CounterMetricFamily(f"{PREFIX}_broker_{key}", f"Broker counter {key}.", value=status[key])
    yield GaugeMetricFamily(f"{PREFIX}_broker_reader_reading", "1 while the Redis stream reader reads.",
                            value=1 if status["reading"] else 0)
    yield CounterMetricFamily(f"{PREFIX}_broker_reader_restarts",
                              "Restarts of the stream reader after an unexpected failure.",
                              value=status["reader_restarts"])
    skipped = CounterMetricFamily(f"{PREFIX}_broker_skipped_entries",
                                  "Redis stream entries skipped (unusable), by kind.", labels=["kind"])
    for kind, count in status["skipped_entries"].items():
        skipped.add_metric([kind], count)
    yield skipped
