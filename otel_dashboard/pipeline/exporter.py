"""A standard OpenTelemetry ``SpanExporter`` for people who add exporters the usual way.

Usage::

    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    provider.add_span_processor(BatchSpanProcessor(DashboardSpanExporter()))   # in process
    provider.add_span_processor(BatchSpanProcessor(DashboardSpanExporter("http://dashboard:8000")))

Zero-code (with ``opentelemetry-distro`` installed)::

    OTEL_TRACES_EXPORTER=otel_dashboard OTEL_METRICS_EXPORTER=otel_dashboard \
    OTEL_LOGS_EXPORTER=otel_dashboard OTEL_DASHBOARD_ENDPOINT=http://dashboard:8000 \
    opentelemetry-instrument python app.py

plus ``OTEL_DASHBOARD_TOKEN=...`` for a server with a token. Set all three: the distro makes
``otlp`` (OTLP/gRPC) the exporter of any signal left unset, and without
``opentelemetry-exporter-otlp`` installed the configurator then fails and the app runs untraced. The
metric and log exporters are :mod:`otel_dashboard.pipeline.otlp_exporters`.

An exporter only ever sees ENDED spans: it yields completed events (and the span events, errors and
registrations of ended spans) but never ``agent_execution_started`` or ``synthesis_started``, so the
page cannot show those agents while they run.
:class:`~otel_dashboard.pipeline.processor.DashboardSpanProcessor`
is the way to see agents start.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_dashboard.model import mapping
from otel_dashboard.model.auth import TOKEN_ENV, bearer_headers
from otel_dashboard.model.events import DashboardEvent, QualityThresholds
from otel_dashboard.model.span_records import compact_span_record, span_record_from_span
from otel_dashboard.pipeline.remote import RemoteEventSender
from otel_dashboard.state.dashboard import DashboardState, get_dashboard

__all__ = ["ENDPOINT_ENV", "DashboardSpanExporter"]

logger = logging.getLogger(__name__)

ENDPOINT_ENV = "OTEL_DASHBOARD_ENDPOINT"
"""Read when ``endpoint`` is not given (the zero-code path has no other way to pass it)."""

_DEFAULT_TIMEOUT_MILLIS = 30_000


class DashboardSpanExporter(SpanExporter):
    """Maps ended spans to dashboard events and publishes them in process or ships them to a server.

    Only ended spans reach an exporter, so it produces completed events but no started ones (see
    the module docstring). ``export`` never raises; after :meth:`shutdown` it returns FAILURE.

    Args:
        endpoint: base URL of a dashboard server; when ``None``, the ``OTEL_DASHBOARD_ENDPOINT``
            environment variable, and when that is unset too, the in-process state.
        state: the in-process state to publish to (default: :func:`get_dashboard`); not with an
            endpoint.
        headers: extra HTTP headers for the endpoint.
        quality_thresholds: turn quality scores into severities.
        token: the server's token (``serve --token``), sent as ``Authorization: Bearer <token>``
            (it replaces an ``Authorization`` in ``headers``); when ``None`` with an endpoint, the
            ``OTEL_DASHBOARD_TOKEN`` environment variable if set (the zero-code path). Not used in
            process.

    Raises:
        ValueError: ``state`` combined with an endpoint, a ``token`` without an endpoint, or an
            invalid endpoint, headers or token.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        state: DashboardState | None = None,
        headers: dict[str, str] | None = None,
        quality_thresholds: QualityThresholds | None = None,
        token: str | None = None,
    ) -> None:
        if endpoint is None:
            endpoint = os.environ.get(ENDPOINT_ENV) or None
        self._sender: RemoteEventSender | None = None
        self._state: DashboardState | None = None
        if token is not None and endpoint is None:
            raise ValueError("token is for a remote server: pass endpoint= (or set OTEL_DASHBOARD_ENDPOINT)")
        if endpoint is not None:
            if state is not None:
                raise ValueError("state and endpoint cannot be combined: events go to one of them")
            if token is None:
                token = os.environ.get(TOKEN_ENV, "").strip() or None
            if token is not None:
                headers = bearer_headers(headers, token)
            self._sender = RemoteEventSender(endpoint, headers=headers)
            self._sink: Callable[[DashboardEvent], object] = self._sender.submit
        else:
            self._state = state if state is not None else get_dashboard()
            self._sink = self._state.publish
        self._thresholds = quality_thresholds or getattr(self._state, "quality_thresholds", None)
        self._shutdown = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Map and hand on ``spans``; FAILURE only after shutdown."""
        if self._shutdown:
            return SpanExportResult.FAILURE
        for span in spans:
            try:
                for event in mapping.map_span_end(span, thresholds=self._thresholds):
                    self._sink(event)
                # The span for the trace view too: a compact record in process, a JSON one remote.
                if self._sender is not None:
                    self._sender.submit_span(span_record_from_span(span, ended=True))
                elif self._state is not None:
                    self._state.traces.add_span_records([compact_span_record(span, ended=True)])
            except Exception:
                logger.exception("dashboard exporter: mapping span %r failed", getattr(span, "name", "?"))
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = _DEFAULT_TIMEOUT_MILLIS) -> bool:
        """Wait for remote delivery of what was exported (in process there is nothing to wait for)."""
        if self._sender is None:
            return not self._shutdown
        return self._sender.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush and stop; idempotent."""
        if self._shutdown:
            return
        self._shutdown = True
        if self._sender is not None:
            self._sender.shutdown(_DEFAULT_TIMEOUT_MILLIS)

    @property
    def dropped_events(self) -> int:
        """Events the remote sender dropped (0 in process)."""
        return self._sender.dropped_events if self._sender is not None else 0
