"""What OTLP metrics and logs add to the state: the GenAI / MCP usage behind the agents table, and
log events on their spans with the errors of exception logs.

:class:`SignalIntake` is a mixin of :class:`~otel_dashboard.state.dashboard.DashboardState`; its
methods take the state's one lock like every other public write, and read the state's parts
(``traces``, the metric usage, the agent stats) declared below. The receivers call them
(``server/metrics_intake.py``, ``server/logs_intake.py``), and so do the zero-code exporters in
process (``pipeline/otlp_exporters.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.state.agent_stats import parse_epoch
from otel_dashboard.state.metric_usage import (
    MetricUsage,
    is_service_row,
    merge_entry,
    metric_only_entry,
    service_row_figures,
)
from otel_dashboard.state.traces import ResolvedFailure, TraceStore

if TYPE_CHECKING:  # the model's OTLP package loads the SDK, which the state may not
    from otel_dashboard.model.otlp.logs import LogFailure, LogsRead
    from otel_dashboard.model.otlp.metrics import MetricsRead
    from otel_dashboard.model.runs import CostSource
    from otel_dashboard.state.derived import DerivedState

__all__ = ["SignalIntake"]

logger = logging.getLogger(__name__)


def _log_error_event(failure: Any, span: dict[str, Any] | None) -> DashboardEvent:
    """``error_occurred`` for an exception log (a :class:`LogFailure`), with its span when known."""
    span = span or {}
    service = getattr(failure, "service_name", None) or span.get("service_name")
    error_type = getattr(failure, "error_type", None)
    message = getattr(failure, "message", None)
    span_name = span.get("name")
    data: dict[str, Any] = {
        "source": span.get("agent_name") or span_name or service or "logs",
        "error_message": message or error_type or "error",
        "error_type": error_type or "Error",
        "span_name": span_name,
        "service_name": service,
        "from_log": True,
    }
    if span.get("agent_name"):
        data["agent_name"] = span["agent_name"]
    trace_id, span_id = getattr(failure, "trace_id", 0), getattr(failure, "span_id", 0)
    return DashboardEvent.create(
        EventType.ERROR_OCCURRED, data, Severity.ERROR,
        timestamp_ns=getattr(failure, "time_unix_nano", 0) or None,
        trace_id=format(trace_id, "032x") if trace_id else None,
        span_id=format(span_id, "016x") if span_id else None,
    )




class SignalIntake:
    """Metric usage and log events into the state (a mixin: it uses the state's parts declared below)."""

    publish: Callable[[DashboardEvent], DashboardEvent]
    traces: TraceStore
    log_failure_check: Callable[[Any], bool] | None
    _lock: threading.RLock
    _metric_usage: MetricUsage
    _derived: DerivedState

    def record_log_events(self, read: LogsRead) -> list[DashboardEvent]:
        """Attach the log events of one OTLP logs request to their spans (see
        :meth:`~otel_dashboard.state.traces.TraceStore.attach_events`) and publish
        ``error_occurred`` for its exception logs, one failure one error (``docs/events.md``,
        "Exception logs"):

        * an exception log without a span (no trace or span id): an error at once;
        * its span is kept and ended: no error when the span gave its own (status ERROR, or its own
          ``exception`` span event), nor when :attr:`log_failure_check` says a span below it gave
          the error for the same failure (caught there and logged), else one error;
        * its span is not kept yet (or still running): the failure waits with the span's log events
          and is decided as above when the span arrives; a span that never comes (60 s, or evicted
          from the bounded wait) gets the error then, without its span's name.

        Thread-safe; never raises for the read's content. Log events stay on this replica (like span
        records, they are not sent to a cluster's other replicas).

        Returns:
            The ``error_occurred`` events published now.
        """
        groups: dict[tuple[int, int], tuple[list[dict[str, Any]], list[LogFailure]]] = {}
        resolved: list[ResolvedFailure] = []
        for item in read.span_events:
            groups.setdefault((item.trace_id, item.span_id), ([], []))[0].append(item.event)
        for failure in read.failures:
            if failure.trace_id and failure.span_id:
                groups.setdefault((failure.trace_id, failure.span_id), ([], []))[1].append(failure)
            else:
                resolved.append((failure, None))
        for (trace_id, span_id), (events, failures) in groups.items():
            resolved.extend(self.traces.attach_events(trace_id, span_id, events, failures))
        return self._publish_log_failures(resolved)

    def _publish_log_failures(self, resolved: list[ResolvedFailure]) -> list[DashboardEvent]:
        """One ``error_occurred`` per exception log whose span did not give its own (see
        :meth:`record_log_events`). Never raises: a failure is logged."""
        published: list[DashboardEvent] = []
        check = self.log_failure_check
        for failure, span in resolved:
            if span is not None and span.get("failed"):
                continue  # the span's own failure gave (or continued) its error
            try:
                if check is not None and check(failure):
                    continue  # a failure below the span, caught there and logged: its error was given
                published.append(self.publish(_log_error_event(failure, span)))
            except Exception:
                logger.exception("publishing the error of an exception log failed")
        return published


    def record_metric_usage(self, read: MetricsRead, *, prices: CostSource | None = None) -> int:
        """Add the GenAI and MCP usage of one metrics request to the agents table's window.

        Thread-safe. The cumulative points become deltas per stream, the token deltas are priced
        (the price book is consulted once per model outside the lock first, so the lock never waits
        for genai-prices to load), and the figures fill :meth:`get_agent_stats` where the spans have
        none (:mod:`~otel_dashboard.state.metric_usage`). Nothing is published nor stored: metric
        usage lives in memory, like the rolling window, on the replica that received it.

        Args:
            read: what :func:`~otel_dashboard.model.otlp.metrics.read_metrics` read.
            prices: prices the token deltas; None: genai-prices' bundled prices
                (:func:`~otel_dashboard.model.prices.default_price_book`).

        Returns:
            How many points added something to the window.
        """
        points = read.points
        if not points:
            return 0
        if prices is None:
            from otel_dashboard.model.prices import default_price_book

            prices = default_price_book()
        for model, provider in {(p.model, p.provider) for p in points if p.figure == "tokens" and p.model}:
            try:
                prices.cost(model=model, provider=provider)  # fills the book's cache, off the lock
            except Exception:  # a price source that fails is answered "no price" under the lock too
                logger.debug("pricing %r failed", model, exc_info=True)
        with self._lock:
            return self._metric_usage.record(points, prices=prices)


    def _with_metric_rows(
        self,
        entries: list[dict[str, Any]],
        newest: list[tuple[float, tuple[str, str | None]]],
        running: dict[tuple[str, str | None], int],
        limit: int,
    ) -> list[dict[str, Any]]:
        """The span entries merged with the metric rows (the newest ``limit`` of each side), the
        most recently active first (under the lock)."""
        stats = self._derived.agent_stats
        assert stats is not None
        usage = self._metric_usage
        by_key = {(entry["agent"], entry["service"]): entry for entry in entries}
        # An agent among the newest in metrics but not among the newest in spans may still have
        # span figures: fetch its span entry, spans first.
        missing = {key for _, key in newest if key not in by_key}
        if missing:
            for entry in stats.agents(running, keep=lambda key, _ids: key in missing):
                by_key[(entry["agent"], entry["service"])] = entry
        now = time.time()
        recency: dict[tuple[str, str | None], float] = {}
        for key, entry in by_key.items():
            last = entry.get("last_run_at")
            recency[key] = now if entry["running"] else (parse_epoch(last) or 0.0)
            merge_entry(entry, usage.figures(key))
        for last_ts, key in newest:
            if key not in by_key:
                figures = usage.figures(key)
                if figures is not None and is_service_row(key):  # spans first, per service too
                    service = key[1]
                    figures = service_row_figures(
                        figures, stats.agents(running, keep=lambda k, _ids: k[1] == service))  # noqa: B023 (called at once)
                if figures is None:
                    continue
                by_key[key] = metric_only_entry(key, figures, stats.buckets)
            recency[key] = max(recency.get(key, 0.0), last_ts)
        ordered = sorted(by_key, key=lambda key: recency[key], reverse=True)[:limit]
        return [by_key[key] for key in ordered]

