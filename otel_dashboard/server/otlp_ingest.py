"""The OTLP ingest path shared by both transports: what happens to an export request once decoded.

The OTLP/HTTP handlers (:mod:`otel_dashboard.server.otlp_http`) and the OTLP/gRPC receiver
(:mod:`otel_dashboard.server.grpc_receiver`) decode a request into its protobuf message, then call
:func:`accept_export` with the sender's address. The three signals go the same way:

1. convert (in a worker thread: a large request never stalls the event loop);
2. charge the sender's events-per-second bucket, one event per span, data point or log record,
   before anything is kept (:class:`ExportRefused` 429 when over);
3. on a cluster replica, refuse (503) what the broker's buffer has no room for;
4. keep it (publish the events, record the spans, the metric usage, the log events);
5. wait until the store confirms the last event (503 when it does not within
   :data:`DURABLE_TIMEOUT_SECONDS`: the sender retries; delivery is at least once);
6. answer with the partial success (how many items were rejected, and why).

Both transports turn :class:`ExportRefused` into their own answer: an HTTP status with a
``google.rpc.Status`` body, or a gRPC status code (:attr:`ExportRefused.grpc_code`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from otel_dashboard.model.events import DashboardEvent
from otel_dashboard.model.otlp.signals import SIGNAL_LOGS, SIGNAL_METRICS, SIGNAL_TRACES
from otel_dashboard.model.span_records import span_record_from_span
from otel_dashboard.server.broadcast import BROADCASTER_KEY
from otel_dashboard.server.broker import BROKER_KEY
from otel_dashboard.server.health import HEALTH_KEY
from otel_dashboard.server.security import SECURITY_KEY
from otel_dashboard.server.security.ratelimit import failed_decode_events, retry_after_header
from otel_dashboard.state.dashboard import DashboardState

if TYPE_CHECKING:
    from otel_dashboard.model.runs import CostSource
    from otel_dashboard.model.span_mapper import SpanMapper

__all__ = [
    "DURABLE_TIMEOUT_SECONDS",
    "RECEIVED_MAPPER_KEY",
    "ExportRefused",
    "ExportResult",
    "ReceivedSpanMapper",
    "accept_export",
    "charge_failed_decode",
    "charge_items",
    "durable",
]

logger = logging.getLogger(__name__)

DURABLE_TIMEOUT_SECONDS = 10.0
"""How long an ingest request waits for its events to be committed before it answers 503."""
DURABLE_RETRY_AFTER = "1"

# grpc.StatusCode names for the HTTP statuses the ingest path answers with (the OTLP/gRPC
# specification: RESOURCE_EXHAUSTED and UNAVAILABLE are retryable, INVALID_ARGUMENT is not).
_GRPC_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 413: "RESOURCE_EXHAUSTED",
               415: "INVALID_ARGUMENT", 429: "UNAVAILABLE", 503: "UNAVAILABLE"}


class ExportRefused(Exception):
    """An export request refused as a whole; nothing of it was kept.

    Attributes:
        http_status: the OTLP/HTTP status (400, 413, 429, 503).
        retry_after: the ``Retry-After`` value (whole seconds) for a retryable refusal, else None.
    """

    def __init__(self, http_status: int, message: str, *, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.retry_after = retry_after

    @property
    def grpc_code(self) -> str:
        """The name of the ``grpc.StatusCode`` to answer with."""
        return _GRPC_CODES.get(self.http_status, "INVALID_ARGUMENT")


@dataclass(frozen=True)
class ExportResult:
    """An accepted export: how many items were rejected one by one (partial success), and why."""

    rejected: int = 0
    message: str = ""


def charge_items(app: web.Application, address: str, n_items: int) -> None:
    """Charge ``n_items`` events to ``address``'s ingest bucket.

    Raises:
        ExportRefused: 429, the bucket is empty (nothing is charged then).
    """
    sec = app.get(SECURITY_KEY)
    if sec is None or n_items <= 0:
        return
    wait = sec.ingest.take(address, n_items)
    if wait > 0:
        sec.note("ingest_rate_exceeded")
        raise ExportRefused(429, f"ingest rate exceeded (at most {sec.config.ingest_events_per_second:g} "
                                 "events/s per address): retry later",
                            retry_after=retry_after_header(wait))


def charge_failed_decode(app: web.Application, address: str, examined_bytes: int) -> None:
    """Charge a request refused undecoded by what it made the server inflate or parse (the gRPC
    twin of :func:`~otel_dashboard.server.security.charge_failed_ingest`)."""
    sec = app.get(SECURITY_KEY)
    if sec is None:
        return
    sec.counters["ingest_failed_decodes"] += 1
    sec.ingest.charge(address, failed_decode_events(examined_bytes, sec.config.failed_decode_cost_events))


def retry_after_seconds(value: str | None) -> float:
    """A ``Retry-After`` value as seconds (for gRPC's RetryInfo), 1 when absent."""
    try:
        return max(1.0, float(value)) if value else 1.0
    except ValueError:
        return 1.0


async def durable(state: DashboardState, seq: int | None) -> bool:
    """Whether the store confirms the event ``seq`` (at once for an in-memory store)."""
    wait = getattr(state, "wait_durable_async", None)
    if wait is None or seq is None:
        return True
    return bool(await wait(seq, timeout_seconds=DURABLE_TIMEOUT_SECONDS))


async def accept_export(app: web.Application, signal: str, request: Any, *, address: str) -> ExportResult:
    """Keep one decoded export request of ``signal`` (steps 1-6 of the module docstring).

    Args:
        app: the dashboard application (its state, options, security and counters).
        signal: ``"traces"``, ``"metrics"`` or ``"logs"``.
        request: the decoded ``Export*ServiceRequest``.
        address: the sender's address, for the ingest rate.

    Raises:
        ExportRefused: the request is refused as a whole (429, 503); nothing of it was kept.
        ValueError: an unknown ``signal``.
    """
    if signal == SIGNAL_TRACES:
        return await _accept_traces(app, request, address)
    if signal == SIGNAL_METRICS:
        from otel_dashboard.server.metrics_intake import accept_metrics

        return await accept_metrics(app, request, address=address)
    if signal == SIGNAL_LOGS:
        from otel_dashboard.server.logs_intake import accept_logs

        return await accept_logs(app, request, address=address)
    raise ValueError(f"signal must be 'traces', 'metrics' or 'logs', got {signal!r}")


# --------------------------------------------------------------------------- traces
async def _accept_traces(app: web.Application, request: Any, address: str) -> ExportResult:
    state = app[BROADCASTER_KEY].state
    server_health = app[HEALTH_KEY]
    spans, rejected, message = await asyncio.to_thread(_spans_of, request)
    try:
        charge_items(app, address, len(spans))
        broker = app.get(BROKER_KEY)
        # Up to two events per span (started and completed): a buffer without room for them refuses now.
        if broker is not None and spans and not broker.has_room(2 * len(spans)):
            raise ExportRefused(503, "the broker is unreachable and its buffer is full; send them again",
                                retry_after=DURABLE_RETRY_AFTER)
    except ExportRefused:
        server_health.count("otlp_refused_requests")
        raise
    published, last_seq = await asyncio.to_thread(_publish_spans, state, app[RECEIVED_MAPPER_KEY], spans)
    server_health.count("otlp_spans_accepted", len(spans))
    server_health.count("otlp_spans_rejected", rejected)
    server_health.count("otlp_events_published", published)
    if published and not await durable(state, last_seq):
        server_health.count("otlp_not_durable_requests")
        raise ExportRefused(503, "the spans were received but the store did not confirm their events in "
                                 "time; send them again", retry_after=DURABLE_RETRY_AFTER)
    return ExportResult(rejected, message or "")


def _spans_of(request: Any) -> tuple[list[Any], int, str | None]:
    """Worker thread: the SDK spans of a trace request (the conversion loads the SDK on first use)."""
    from otel_dashboard.model.otlp.spans import spans_from_request

    return spans_from_request(request)


class ReceivedSpanMapper:
    """The server's one :class:`~otel_dashboard.model.span_mapper.SpanMapper` for received spans:
    runs, failures and spans waiting for their parent carry over between requests (and between
    the two transports). Requests are mapped one at a time (worker threads; the lock is held for
    the mapping only).

    The mapper (and with it the mapping and the OpenTelemetry SDK) is made with the first received
    span, not at start: a server that receives no OTLP never loads them (its idle footprint).
    """

    def __init__(self, state: DashboardState, prices: CostSource | None) -> None:
        self._thresholds = state.quality_thresholds
        self._state = state
        self._prices = prices
        self._mapper: SpanMapper | None = None
        self._lock = threading.Lock()

    @property
    def lock(self) -> threading.Lock:
        """Held while a request's spans are mapped; whoever else reads the mapper's failures takes it."""
        return self._lock

    @property
    def mapper(self) -> SpanMapper:
        """The mapper itself, made on first use (read it under :attr:`lock`)."""
        if self._mapper is None:
            from otel_dashboard.model.prices import default_price_book
            from otel_dashboard.model.span_mapper import SpanMapper

            prices = self._prices or default_price_book()
            # The state's loop thresholds as they are at the first received span (serve --budgets
            # sets them before the server starts).
            self._mapper = SpanMapper(thresholds=self._thresholds, prices=prices,
                                      loops=self._state.guardrails.loops)
        return self._mapper

    def reported(self, failure: Any) -> bool:
        """Whether an exception log (a :class:`~otel_dashboard.model.otlp.logs.LogFailure`) reports a
        failure the received spans already gave an error for: a failure below its span, caught there
        and logged (:meth:`~otel_dashboard.model.failures.FailureChain.reported`). The state's
        ``log_failure_check``."""
        from otel_dashboard.model.otlp.logs import LogFailure  # loaded by the logs that sent it

        if not isinstance(failure, LogFailure) or not failure.span_id or self._mapper is None:
            return False  # no received span yet: none can have reported it
        with self._lock:
            return self._mapper.failures.reported(failure.trace_id, failure.span_id, failure.error_type,
                                                  failure.message)

    def map(self, spans: list[Any]) -> tuple[list[DashboardEvent], list[dict[str, Any]]]:
        """The events of one request's spans, and the live states of the runs they changed."""
        from otel_dashboard.model.otlp.events import events_from_otlp_spans

        with self._lock:
            mapper = self.mapper
            events = events_from_otlp_spans(spans, mapper=mapper)
            return events, mapper.take_progress()


RECEIVED_MAPPER_KEY = web.AppKey("otel_dashboard_received_mapper", ReceivedSpanMapper)


def _publish_spans(
    state: DashboardState, mapper: ReceivedSpanMapper, spans: list[Any]
) -> tuple[int, int | None]:
    """Worker thread: map, publish and record the spans of one request.

    Returns:
        The number of events published and the ``seq`` of the last one (None when there is none).
    """
    events, runs = mapper.map(spans)
    for event in events:
        state.publish(event)
    if runs:
        state.update_runs(runs)
    records = []
    for span in spans:
        try:
            records.append(span_record_from_span(span, ended=True))
        except Exception:  # a span the record cannot describe: its events went out anyway
            logger.debug("no trace record for received span %r", span.name, exc_info=True)
    if records:
        state.record_spans(records)
    return len(events), (events[-1].seq if events else None)
