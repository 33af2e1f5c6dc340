"""``/v1/logs`` and the gRPC LogsService, once decoded: GenAI log events onto their spans, exception
logs into errors.

The request is read in a worker thread (:func:`~otel_dashboard.model.otlp.logs.read_logs`), the
sender charged one event per log record, then
:meth:`~otel_dashboard.state.dashboard.DashboardState.record_log_events` attaches the events to
their spans (or keeps them waiting for their span) and publishes the exception logs' errors. When
errors were published the answer waits for the store to commit them, as for spans. Counted in
``/stats`` (``receiver``): ``otlp_log_records_accepted`` (every record of an accepted request,
rejected ones aside), ``otlp_log_records_attached`` (records that became span events),
``otlp_log_records_rejected`` and ``otlp_log_errors_published``.

The first request also gives the state its check of exception logs against the received spans'
failures (:attr:`~otel_dashboard.state.dashboard.DashboardState.log_failure_check`): a log written
where a failure was caught, below which a span already gave that failure's error, adds none.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from otel_dashboard.server.broadcast import BROADCASTER_KEY
from otel_dashboard.server.health import HEALTH_KEY
from otel_dashboard.server.otlp_ingest import (
    DURABLE_RETRY_AFTER,
    ExportRefused,
    ExportResult,
    charge_items,
    durable,
)

__all__ = ["accept_logs"]


async def accept_logs(app: web.Application, request: Any, *, address: str) -> ExportResult:
    """Keep one decoded ``ExportLogsServiceRequest`` (see :mod:`otel_dashboard.server.otlp_ingest`).

    Raises:
        ExportRefused: refused as a whole (429, 503); nothing of it was kept (a 503 for an error the
            store did not confirm in time: the events were attached, the sender sends again).
    """
    state = app[BROADCASTER_KEY].state
    server_health = app[HEALTH_KEY]
    read = await asyncio.to_thread(_read, request)
    try:
        charge_items(app, address, read.log_records)
    except ExportRefused:
        server_health.count("otlp_refused_requests")
        raise
    published = await asyncio.to_thread(state.record_log_events, read)
    server_health.count("otlp_log_records_accepted", read.log_records - read.rejected)
    server_health.count("otlp_log_records_attached", len(read.span_events))
    server_health.count("otlp_log_records_rejected", read.rejected)
    server_health.count("otlp_log_errors_published", len(published))
    if published and not await durable(state, published[-1].seq):
        server_health.count("otlp_not_durable_requests")
        raise ExportRefused(503, "the log records were received but the store did not confirm their errors "
                                 "in time; send them again", retry_after=DURABLE_RETRY_AFTER)
    return ExportResult(read.rejected, read.message)


def _read(request: Any) -> Any:
    """Worker thread: read the request (the reader and its protobuf modules load on first use)."""
    from otel_dashboard.model.otlp.logs import read_logs

    return read_logs(request)
