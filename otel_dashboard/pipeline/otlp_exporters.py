"""Metric and log exporters for the zero-code path (``OTEL_METRICS_EXPORTER=otel_dashboard``,
``OTEL_LOGS_EXPORTER=otel_dashboard``), the twins of
:class:`~otel_dashboard.pipeline.exporter.DashboardSpanExporter`.

Usage (what ``opentelemetry-instrument`` builds from the entry points, configured by the environment)::

    OTEL_TRACES_EXPORTER=otel_dashboard OTEL_METRICS_EXPORTER=otel_dashboard \\
    OTEL_LOGS_EXPORTER=otel_dashboard OTEL_DASHBOARD_ENDPOINT=http://127.0.0.1:8000 \\
    opentelemetry-instrument python app.py

In code::

    reader = PeriodicExportingMetricReader(DashboardMetricExporter("http://dashboard:8000"))
    MeterProvider(metric_readers=[reader])
    LoggerProvider().add_log_record_processor(BatchLogRecordProcessor(DashboardLogExporter()))

Where the data goes
    With an endpoint (the argument, else ``OTEL_DASHBOARD_ENDPOINT``) the exporters POST OTLP/protobuf
    (encoded by ``opentelemetry-exporter-otlp-proto-common``, as the stock OTLP exporters do) to
    ``<endpoint>/v1/metrics`` and ``<endpoint>/v1/logs``, with ``OTEL_DASHBOARD_TOKEN`` (or ``token=``)
    as ``Authorization: Bearer``. Without one they hand the same request to the in-process state:
    ``read_metrics`` then ``DashboardState.record_metric_usage``, ``read_logs`` then
    ``DashboardState.record_log_events`` (what the server does with a received request, minus the
    network).

Temporality
    :class:`DashboardMetricExporter` asks the SDK for DELTA temporality for counters and histograms
    (UpDownCounters stay cumulative, as OTLP's "delta" preference has it): the server then adds
    what each export carries, and a server restarted mid-run does not count a cumulative total a
    second time. ``preferred_temporality=`` overrides it.

Failures
    ``export`` never raises. One request is sent per export, from the SDK's own export thread (the
    metric reader's, the log batch processor's); connection errors, timeouts and the answers OTLP
    calls retryable (429, 502, 503, 504; ``Retry-After`` honoured) are retried with jittered backoff
    until the export's deadline (``timeout_millis``, 10 s by default), then the export is FAILURE.
    Any other answer is FAILURE at once. The first failure is logged as a WARNING, and the recovery
    after it as INFO; ``failed_exports`` counts them all. After :meth:`shutdown` (idempotent; it
    interrupts a backoff in progress) every export is FAILURE. The requests are sent with
    OpenTelemetry instrumentation suppressed, so an instrumented HTTP client never traces them.

(Over 400 lines on purpose: the two exporters are thin; what they share, the delivery to a server or
to the state and the HTTP sender with its retry policy, is here with them. The sender is not
:class:`~otel_dashboard.pipeline.remote.RemoteEventSender`, whose queue and thread suit events
submitted from application code: an OTLP exporter is called on the SDK's export thread and must
answer with the outcome, so it sends synchronously; it reuses that module's endpoint, header and
``Retry-After`` parsing.)
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

from google.protobuf.message import DecodeError, Message
from opentelemetry import context as context_api
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)

from instrumentation._suppression import suppressing_context
from otel_dashboard.model.auth import TOKEN_ENV, bearer_headers
from otel_dashboard.model.otlp.logs import LogsRead, read_logs
from otel_dashboard.model.otlp.metrics import MetricsRead, read_metrics
from otel_dashboard.model.otlp.signals import SIGNAL_LOGS, SIGNAL_METRICS, Signal, signal_of
from otel_dashboard.pipeline.exporter import ENDPOINT_ENV
from otel_dashboard.pipeline.http_post import KeptAliveConnection
from otel_dashboard.pipeline.remote import (
    _check_headers,
    _check_int,
    _host_port,
    _parse_endpoint,
)
from otel_dashboard.state.dashboard import DashboardState, get_dashboard

# The SDK renamed the log exporter interface (LogExporter -> LogRecordExporter); the configurator
# checks against the name of its own release, so subclass whichever it has.
try:
    from opentelemetry.sdk._logs.export import LogRecordExporter as _LogExporterBase
    from opentelemetry.sdk._logs.export import LogRecordExportResult as _LogExportResult
except ImportError:  # pragma: no cover - an older opentelemetry-sdk
    from opentelemetry.sdk._logs.export import LogExporter as _LogExporterBase
    from opentelemetry.sdk._logs.export import LogExportResult as _LogExportResult  # type: ignore[assignment]

__all__ = ["DashboardLogExporter", "DashboardMetricExporter"]

logger = logging.getLogger(__name__)

_EVENTS_PATH = "/api/events"  # what remote._parse_endpoint appends; the base URL is what comes before
_DEFAULT_TIMEOUT_MILLIS = 10_000
_INITIAL_RETRY_DELAY_SECONDS = 0.1
_MAX_RETRY_DELAY_SECONDS = 5.0
_RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})  # the OTLP/HTTP specification's list
_USER_AGENT = "otel-dashboard-otlp-exporter"

# OTLP's "delta" temporality preference: counters and histograms in deltas, UpDownCounters cumulative.
_DELTA_TEMPORALITY: dict[type, AggregationTemporality] = {
    Counter: AggregationTemporality.DELTA,
    UpDownCounter: AggregationTemporality.CUMULATIVE,
    Histogram: AggregationTemporality.DELTA,
    ObservableCounter: AggregationTemporality.DELTA,
    ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
    ObservableGauge: AggregationTemporality.CUMULATIVE,
}


class _MetricUsageSink(Protocol):
    """What the in-process metric path needs of the state (``DashboardState.record_metric_usage``)."""

    def record_metric_usage(self, read: MetricsRead) -> None: ...


class _LogEventSink(Protocol):
    """What the in-process log path needs of the state (``DashboardState.record_log_events``)."""

    def record_log_events(self, read: LogsRead) -> object: ...


class _OtlpSender:
    """POSTs one signal's serialized export requests to ``<base>/v1/<signal>`` of a dashboard server.

    One keep-alive ``http.client`` connection, used under a lock (the SDK exports from one thread,
    but ``shutdown`` may come from another). See the module docstring for the retry policy.
    """

    def __init__(self, endpoint: str, signal: Signal, *, headers: Mapping[str, str] | None) -> None:
        scheme, host, port, path = _parse_endpoint(endpoint)
        base_path = path[: -len(_EVENTS_PATH)]
        self._http = KeptAliveConnection(scheme, host, port)
        self._path = base_path + signal.http_path
        self._signal = signal
        self.url = f"{scheme}://{_host_port(host, port)}{self._path}"
        self._headers = {
            "Content-Type": "application/x-protobuf",
            "User-Agent": _USER_AGENT,
            **_check_headers(headers),
        }
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._failing = False
        self._logged_partial = False

    def send(self, body: bytes, *, timeout_seconds: float) -> bool:
        """Delivers ``body``, retrying what may succeed later until ``timeout_seconds`` have passed.

        Returns:
            True once the server answered 2xx; False on any other outcome (logged, never raised).
        """
        deadline = time.monotonic() + timeout_seconds
        token = context_api.attach(suppressing_context())
        try:
            with self._lock:
                return self._send_until(body, deadline)
        except Exception:  # a bug here must not reach the SDK's export thread
            logger.exception("exporting %s to %s failed", self._signal.name, self.url)
            return False
        finally:
            context_api.detach(token)

    def _send_until(self, body: bytes, deadline: float) -> bool:
        attempt = 0
        while True:
            if self._closed.is_set():
                return self._failed("the exporter is shut down")
            status, detail, payload, retry_after = self._post(body, deadline)
            if status is not None and 200 <= status < 300:
                self._succeeded(payload)
                return True
            retryable = status is None or status in _RETRYABLE_STATUSES
            delay = min(_MAX_RETRY_DELAY_SECONDS, _INITIAL_RETRY_DELAY_SECONDS * 2 ** min(attempt, 16))
            delay *= random.uniform(0.5, 1.0)
            if retry_after is not None:
                delay = max(delay, min(retry_after, _MAX_RETRY_DELAY_SECONDS))
            if not retryable or time.monotonic() + delay >= deadline:
                return self._failed(detail)
            if self._closed.wait(delay):  # shutdown cuts the backoff short
                return self._failed("the exporter is shut down")
            attempt += 1

    def _post(self, body: bytes, deadline: float) -> tuple[int | None, str, bytes, float | None]:
        """One request: status (None when no answer came), detail, answer body, Retry-After seconds."""
        answer = self._http.post(self._path, body, self._headers,
                                 timeout_seconds=lambda: max(deadline - time.monotonic(), 0.001))
        return answer.status, answer.detail, answer.payload, answer.retry_after

    def _succeeded(self, payload: bytes) -> None:
        if self._failing:
            self._failing = False
            logger.info("dashboard %s exports reach %s again", self._signal.name, self.url)
        rejected, message = _partial_success(self._signal, payload)
        if rejected and not self._logged_partial:
            self._logged_partial = True
            logger.warning("%s rejected %d %s: %s (further partial successes not logged)",
                           self.url, rejected, self._signal.items, message)

    def _failed(self, detail: str) -> bool:
        if not self._failing:
            self._failing = True
            logger.warning("cannot export %s to %s (%s); further failures not logged until one succeeds",
                           self._signal.name, self.url, detail)
        return False

    def close(self) -> None:
        """Stops retrying (at once) and closes the connection once no request uses it."""
        self._closed.set()
        with self._lock:
            self._http.close()


def _partial_success(signal: Signal, payload: bytes) -> tuple[int, str]:
    """What a 200 answer's ``partial_success`` says was rejected (0 when unreadable or absent)."""
    if not payload:
        return 0, ""
    try:
        response = signal.response_type.FromString(payload)
    except (DecodeError, ValueError):
        return 0, ""
    partial: Any = getattr(response, "partial_success", None)
    if partial is None:
        return 0, ""
    return int(getattr(partial, signal.rejected_field, 0)), str(partial.error_message)


class _Delivery:
    """Where one exporter's requests go: a server (``sender``) or the in-process state (``deliver``)."""

    def __init__(
        self,
        signal: Signal,
        endpoint: str | None,
        *,
        state: DashboardState | None,
        headers: Mapping[str, str] | None,
        token: str | None,
        timeout_millis: int,
        in_process: Callable[[DashboardState, Any], None],
    ) -> None:
        if endpoint is None:
            endpoint = os.environ.get(ENDPOINT_ENV, "").strip() or None
        if token is not None and endpoint is None:
            raise ValueError("token is for a remote server: pass endpoint= (or set OTEL_DASHBOARD_ENDPOINT)")
        self.timeout_seconds = _check_int("timeout_millis", timeout_millis, minimum=1) / 1000
        self.signal = signal
        self.sender: _OtlpSender | None = None
        self.state: DashboardState | None = None
        if endpoint is not None:
            if state is not None:
                raise ValueError("state and endpoint cannot be combined: data goes to one of them")
            if token is None:
                token = os.environ.get(TOKEN_ENV, "").strip() or None
            if token is not None:
                headers = bearer_headers(headers, token)
            self.sender = _OtlpSender(endpoint, signal, headers=headers)
        else:
            self.state = state if state is not None else get_dashboard()
        self._in_process = in_process
        self._logged_in_process_failure = False
        self.failed_exports = 0
        self.shut_down = False

    def deliver(self, request: Message, *, timeout_seconds: float | None = None) -> bool:
        """Sends or records one export request; False (logged once) when that failed."""
        if self.shut_down:
            self.failed_exports += 1
            return False
        if self.sender is not None:
            timeout = self.timeout_seconds if timeout_seconds is None else min(timeout_seconds,
                                                                                  self.timeout_seconds)
            ok = self.sender.send(request.SerializeToString(), timeout_seconds=timeout)
        else:
            ok = self._record(request)
        if not ok:
            self.failed_exports += 1
        return ok

    def _record(self, request: Message) -> bool:
        assert self.state is not None
        try:
            self._in_process(self.state, request)
        except Exception:
            if not self._logged_in_process_failure:
                self._logged_in_process_failure = True
                logger.exception("recording %s in process failed (further failures not logged)",
                                 self.signal.name)
            return False
        return True

    def shutdown(self) -> None:
        if self.shut_down:
            return
        self.shut_down = True
        if self.sender is not None:
            self.sender.close()


def _record_metrics(state: DashboardState, request: ExportMetricsServiceRequest) -> None:
    cast(_MetricUsageSink, state).record_metric_usage(read_metrics(request))


def _record_logs(state: DashboardState, request: ExportLogsServiceRequest) -> None:
    # record_log_events publishes the exception logs' errors itself (and returns them).
    cast(_LogEventSink, state).record_log_events(read_logs(request))


class DashboardMetricExporter(MetricExporter):
    """Exports metrics to a dashboard server's ``/v1/metrics``, or into the in-process state.

    The GenAI and MCP metrics among them fill the agents table where spans lack the numbers
    (docs/otlp.md); the rest is counted. ``export`` never raises; after :meth:`shutdown` it returns
    FAILURE.

    Args:
        endpoint: base URL of a dashboard server (``http(s)://host:port``); when ``None``, the
            ``OTEL_DASHBOARD_ENDPOINT`` environment variable, and when that is unset too, the
            in-process state.
        state: the in-process state (default: :func:`get_dashboard`); not with an endpoint.
        headers: extra HTTP headers for the endpoint.
        token: the server's token, sent as ``Authorization: Bearer <token>``; when ``None`` with an
            endpoint, ``OTEL_DASHBOARD_TOKEN`` if set.
        timeout_millis: the longest one export may take, retries included (also bounded by the
            reader's own ``timeout_millis``).
        preferred_temporality: per instrument class; default DELTA for counters and histograms
            (module docstring).
        preferred_aggregation: per instrument class, as for any SDK metric exporter.

    Raises:
        ValueError: ``state`` with an endpoint, a ``token`` without one, or an invalid endpoint,
            headers, token or timeout.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        state: DashboardState | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        timeout_millis: int = _DEFAULT_TIMEOUT_MILLIS,
        preferred_temporality: dict[type, AggregationTemporality] | None = None,
        preferred_aggregation: dict[type, Any] | None = None,
    ) -> None:
        super().__init__(
            preferred_temporality={**_DELTA_TEMPORALITY, **(preferred_temporality or {})},
            preferred_aggregation=preferred_aggregation,
        )
        self._delivery = _Delivery(signal_of(SIGNAL_METRICS), endpoint, state=state, headers=headers,
                                   token=token, timeout_millis=timeout_millis, in_process=_record_metrics)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = _DEFAULT_TIMEOUT_MILLIS, **kwargs: Any
    ) -> MetricExportResult:
        """Sends (or records) one collection; FAILURE when it could not be delivered in time."""
        try:
            request = encode_metrics(metrics_data)
        except Exception:
            logger.exception("encoding metrics for the dashboard failed")
            self._delivery.failed_exports += 1
            return MetricExportResult.FAILURE
        ok = self._delivery.deliver(request, timeout_seconds=max(timeout_millis, 1) / 1000)
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Nothing is buffered here (each export is sent before it returns): True until shutdown."""
        return not self._delivery.shut_down

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Stops; idempotent. An export retrying at that moment gives up at once."""
        self._delivery.shutdown()

    @property
    def failed_exports(self) -> int:
        """Exports that returned FAILURE."""
        return self._delivery.failed_exports

    @property
    def endpoint_url(self) -> str | None:
        """The URL requests go to (``<endpoint>/v1/metrics``), None in process."""
        return self._delivery.sender.url if self._delivery.sender is not None else None


class DashboardLogExporter(_LogExporterBase):
    """Exports log records to a dashboard server's ``/v1/logs``, or into the in-process state.

    GenAI events tied to a span join its transcript and exception records become errors
    (docs/otlp.md); the rest is counted. ``export`` never raises; after :meth:`shutdown` it returns
    FAILURE.

    Args:
        endpoint: base URL of a dashboard server; when ``None``, ``OTEL_DASHBOARD_ENDPOINT``, and
            when that is unset too, the in-process state.
        state: the in-process state (default: :func:`get_dashboard`); not with an endpoint.
        headers: extra HTTP headers for the endpoint.
        token: the server's token (``Authorization: Bearer``); when ``None`` with an endpoint,
            ``OTEL_DASHBOARD_TOKEN`` if set.
        timeout_millis: the longest one export may take, retries included.

    Raises:
        ValueError: ``state`` with an endpoint, a ``token`` without one, or an invalid endpoint,
            headers, token or timeout.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        state: DashboardState | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        timeout_millis: int = _DEFAULT_TIMEOUT_MILLIS,
    ) -> None:
        self._delivery = _Delivery(signal_of(SIGNAL_LOGS), endpoint, state=state, headers=headers,
                                   token=token, timeout_millis=timeout_millis, in_process=_record_logs)

    def export(self, batch: Sequence[Any]) -> _LogExportResult:
        """Sends (or records) one batch; FAILURE when it could not be delivered in time."""
        try:
            request = encode_logs(batch)
        except Exception:
            logger.exception("encoding log records for the dashboard failed")
            self._delivery.failed_exports += 1
            return _LogExportResult.FAILURE
        ok = self._delivery.deliver(request)
        return _LogExportResult.SUCCESS if ok else _LogExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here (each export is sent before it returns): True until shutdown."""
        return not self._delivery.shut_down

    def shutdown(self) -> None:
        """Stops; idempotent. An export retrying at that moment gives up at once."""
        self._delivery.shutdown()

    @property
    def failed_exports(self) -> int:
        """Exports that returned FAILURE."""
        return self._delivery.failed_exports

    @property
    def endpoint_url(self) -> str | None:
        """The URL requests go to (``<endpoint>/v1/logs``), None in process."""
        return self._delivery.sender.url if self._delivery.sender is not None else None
