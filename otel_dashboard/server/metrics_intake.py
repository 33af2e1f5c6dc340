"""``/v1/metrics`` and the gRPC MetricsService, once decoded: GenAI and MCP usage into the state.

:func:`accept_metrics` is the metrics step of :func:`~otel_dashboard.server.otlp_ingest.accept_export`:

1. read the request in a worker thread (:func:`~otel_dashboard.model.otlp.metrics.read_metrics`:
   the GenAI and MCP points, every data point counted, malformed ones rejected one by one);
2. charge the sender's ingest bucket one event per data point (429 when over: nothing is kept);
3. add the points to the state's metric usage (:meth:`DashboardState.record_metric_usage
   <otel_dashboard.state.dashboard.DashboardState.record_metric_usage>`, also in a worker thread);
4. count them in ``/stats`` (``receiver``): ``otlp_metric_points_accepted`` (every data point of an
   accepted request, rejected ones excepted), ``otlp_metric_points_used`` (those that added to the
   agents table), ``otlp_metric_points_rejected``.

No event is published and nothing is stored, so there is no durability wait: metric usage lives in
memory, like the agents table's rolling window, on the replica that received it (a cluster's other
replicas do not see it; a restart starts empty).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from otel_dashboard.model.otlp.metrics import read_metrics
from otel_dashboard.server.broadcast import BROADCASTER_KEY
from otel_dashboard.server.health import HEALTH_KEY
from otel_dashboard.server.options import OPTIONS_KEY
from otel_dashboard.server.otlp_ingest import ExportRefused, ExportResult, charge_items

__all__ = ["accept_metrics"]


async def accept_metrics(app: web.Application, request: Any, *, address: str) -> ExportResult:
    """Keep one decoded ``ExportMetricsServiceRequest`` (see :mod:`otel_dashboard.server.otlp_ingest`).

    Args:
        app: the dashboard application (its state, options, security and counters).
        request: the decoded request.
        address: the sender's address, for the ingest rate.

    Returns:
        The data points rejected one by one (partial success), and why.

    Raises:
        ExportRefused: refused as a whole (429); nothing of it was kept.
    """
    state = app[BROADCASTER_KEY].state
    server_health = app[HEALTH_KEY]
    read = await asyncio.to_thread(read_metrics, request)
    try:
        charge_items(app, address, read.data_points)
    except ExportRefused:
        server_health.count("otlp_refused_requests")
        raise
    options = app.get(OPTIONS_KEY)
    prices = options.prices if options is not None else None
    used = await asyncio.to_thread(state.record_metric_usage, read, prices=prices) if read.points else 0
    server_health.count("otlp_metric_points_accepted", read.data_points - read.rejected)
    server_health.count("otlp_metric_points_used", used)
    server_health.count("otlp_metric_points_rejected", read.rejected)
    return ExportResult(read.rejected, read.message)
