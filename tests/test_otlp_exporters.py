"""``DashboardMetricExporter`` and ``DashboardLogExporter`` (the zero-code twins of the span exporter):
what they send to a real server, the token, the retry policy, never raising, shutdown, the in-process path.

The servers are real: the dashboard's own on loopback, or (for the answers a dashboard does not give
on demand: 503 then 200, a partial success) a small aiohttp application on loopback.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from opentelemetry._logs import SeverityNumber
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from otlp_support import IntakeRecorder
from server_support import WAIT, running_server

from otel_dashboard.pipeline.exporter import DashboardSpanExporter
from otel_dashboard.pipeline.otlp_exporters import DashboardLogExporter, DashboardMetricExporter
from otel_dashboard.server.security import SecurityConfig
from otel_dashboard.state.dashboard import DashboardState

pytestmark = pytest.mark.timeout(60)

TOKEN = "exporter-test-token-1234"
HOUR_MILLIS = 3_600_000  # a reader that never exports by itself: the tests flush it


@pytest.fixture(autouse=True)
def _no_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_DASHBOARD_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_DASHBOARD_TOKEN", raising=False)


@pytest.fixture
def intake(monkeypatch: pytest.MonkeyPatch) -> IntakeRecorder:
    return IntakeRecorder().install(monkeypatch)


def record_usage(exporter: DashboardMetricExporter, agent: str = "Metered", *, exports: int = 1) -> bool:
    """``exports`` times: one histogram point and one counter increment through a MeterProvider,
    flushed to ``exporter``. Whether every export succeeded (the reader's force_flush is True either
    way). The exporter is shut down after (with the provider)."""
    failed_before = exporter.failed_exports
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=HOUR_MILLIS)
    provider = MeterProvider(resource=Resource.create({"service.name": "exporter-tests"}),
                             metric_readers=[reader])
    try:
        meter = provider.get_meter("tests.otlp_exporters")
        histogram = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
        counter = meter.create_counter("requests")
        for _ in range(exports):
            histogram.record(120, {"gen_ai.token.type": "input", "gen_ai.agent.name": agent,
                                   "gen_ai.request.model": "gpt-4o"})
            counter.add(1)
            assert provider.force_flush(10_000)
        return exporter.failed_exports == failed_before
    finally:
        provider.shutdown()


def emit_log(exporter: DashboardLogExporter, text: str = "hello") -> None:
    provider = LoggerProvider(resource=Resource.create({"service.name": "exporter-tests"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    try:
        provider.get_logger("tests.otlp_exporters").emit(
            event_name="gen_ai.user.message", body={"content": text}, severity_number=SeverityNumber.INFO)
    finally:
        provider.shutdown()


# ------------------------------------------------------------------------------- to a real server
async def test_metrics_reach_the_server_in_deltas(intake: IntakeRecorder) -> None:
    async with running_server() as server:
        exporter = DashboardMetricExporter(server.url)
        assert exporter.endpoint_url == f"{server.url}/v1/metrics"
        await asyncio.to_thread(record_usage, exporter)
    assert intake.metric_names() == {"gen_ai.client.token.usage", "requests"}
    assert intake.metric_services() == {"exporter-tests"}
    metrics = {metric.name: metric for request in intake.metrics for resource in request.resource_metrics
               for scope in resource.scope_metrics for metric in scope.metrics}
    histogram = metrics["gen_ai.client.token.usage"].histogram
    assert histogram.aggregation_temporality == 1  # AGGREGATION_TEMPORALITY_DELTA
    assert histogram.data_points[0].sum == 120
    assert metrics["requests"].sum.aggregation_temporality == 1
    intake.check_accepted()


async def test_log_records_reach_the_server(intake: IntakeRecorder) -> None:
    async with running_server() as server:
        exporter = DashboardLogExporter(server.url)
        assert exporter.endpoint_url == f"{server.url}/v1/logs"
        await asyncio.to_thread(emit_log, exporter, "from the log exporter")
    (body,) = intake.log_bodies()
    assert body.kvlist_value.values[0].value.string_value == "from the log exporter"
    (request,) = intake.logs
    assert request.resource_logs[0].scope_logs[0].log_records[0].event_name == "gen_ai.user.message"
    intake.check_accepted()


async def test_the_token_is_sent_and_required(
    intake: IntakeRecorder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_server(security=SecurityConfig(token=TOKEN)) as server:
        # From the argument, and from OTEL_DASHBOARD_TOKEN with the endpoint from OTEL_DASHBOARD_ENDPOINT:
        # past the token check, into the intake.
        await asyncio.to_thread(record_usage, DashboardMetricExporter(server.url, token=TOKEN))
        monkeypatch.setenv("OTEL_DASHBOARD_ENDPOINT", server.url)
        monkeypatch.setenv("OTEL_DASHBOARD_TOKEN", TOKEN)
        await asyncio.to_thread(emit_log, DashboardLogExporter(), "with the token from the environment")
        assert len(intake.metrics) == 1 and len(intake.logs) == 1
        intake.check_accepted()

        # Without it: 401, not retried, FAILURE, one WARNING however many exports fail.
        monkeypatch.delenv("OTEL_DASHBOARD_TOKEN")
        refused = DashboardMetricExporter(server.url)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="otel_dashboard.pipeline.otlp_exporters"):
            assert not await asyncio.to_thread(record_usage, refused, exports=2)
        assert refused.failed_exports == 2
        warnings = [r.getMessage() for r in caplog.records if r.name.endswith("otlp_exporters")]
        assert len(warnings) == 1 and "HTTP 401" in warnings[0], warnings
        assert TOKEN not in caplog.text
    assert len(intake.metrics) == 1  # the refused ones never reached the intake


# ------------------------------------------------------------------------------- retries, failures
@asynccontextmanager
async def scripted_server(answers: Callable[[int], web.Response]) -> AsyncIterator[tuple[str, list[bytes]]]:
    """An OTLP/HTTP endpoint on loopback whose n-th answer (from 0) is ``answers(n)``; yields its base
    URL and the bodies it received."""
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return answers(len(bodies) - 1)

    app = web.Application()
    app.router.add_post("/v1/metrics", handle)
    app.router.add_post("/v1/logs", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", bodies
    finally:
        await runner.cleanup()


def protobuf(message: Any) -> web.Response:
    return web.Response(body=message.SerializeToString(), content_type="application/x-protobuf")


async def test_busy_answers_are_retried_until_one_succeeds() -> None:
    def answers(n: int) -> web.Response:
        if n == 0:
            return web.Response(status=503, headers={"Retry-After": "0"}, text="busy")
        if n == 1:
            return web.Response(status=429, text="slow down")
        return protobuf(ExportMetricsServiceResponse())

    async with scripted_server(answers) as (url, bodies):
        exporter = DashboardMetricExporter(url)
        assert await asyncio.to_thread(record_usage, exporter)
    assert len(bodies) == 3 and len(set(bodies)) == 1  # the same request, sent again
    assert ExportMetricsServiceRequest.FromString(bodies[0]).resource_metrics
    assert exporter.failed_exports == 0


async def test_other_answers_fail_at_once_and_retries_end_at_the_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with scripted_server(lambda n: web.Response(status=400, text="bad")) as (url, bodies):
        exporter = DashboardLogExporter(url)
        await asyncio.to_thread(emit_log, exporter)
        assert len(bodies) == 1 and exporter.failed_exports == 1
    async with scripted_server(lambda n: web.Response(status=503, text="busy")) as (url, bodies):
        exporter = DashboardLogExporter(url, timeout_millis=400)
        await asyncio.to_thread(emit_log, exporter)
        assert len(bodies) >= 2 and exporter.failed_exports == 1
    assert "HTTP 503 busy" in caplog.text


async def test_a_partial_success_is_success_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    response = ExportMetricsServiceResponse()
    response.partial_success.rejected_data_points = 1
    response.partial_success.error_message = "one bad point"
    async with scripted_server(lambda n: protobuf(response)) as (url, _):
        exporter = DashboardMetricExporter(url)
        with caplog.at_level(logging.WARNING, logger="otel_dashboard.pipeline.otlp_exporters"):
            assert await asyncio.to_thread(record_usage, exporter, exports=2)
    messages = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(messages) == 1 and "rejected 1 data points: one bad point" in messages[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_server_is_failure_never_an_exception() -> None:
    exporter = DashboardMetricExporter(f"http://127.0.0.1:{free_port()}", timeout_millis=300)
    assert not record_usage(exporter)
    assert exporter.failed_exports == 1


async def test_shutdown_cuts_a_retry_short_and_is_idempotent() -> None:
    first_request = threading.Event()

    def answers(n: int) -> web.Response:
        first_request.set()
        return web.Response(status=503, headers={"Retry-After": "5"}, text="busy")

    async with scripted_server(answers) as (url, _):
        exporter = DashboardMetricExporter(url, timeout_millis=60_000)
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=HOUR_MILLIS)
        provider = MeterProvider(metric_readers=[reader])
        provider.get_meter("t").create_counter("c").add(1)
        flushing = asyncio.ensure_future(asyncio.to_thread(provider.force_flush, 60_000))
        assert await asyncio.to_thread(first_request.wait, WAIT)
        exporter.shutdown()  # during the 5 s backoff: the export gives up now, not in 60 s
        await asyncio.wait_for(flushing, WAIT)
        exporter.shutdown()
        assert exporter.failed_exports == 1
        assert exporter.export(MetricsData(resource_metrics=[])) is MetricExportResult.FAILURE
        assert not exporter.force_flush()
        await asyncio.to_thread(provider.shutdown)


@pytest.mark.parametrize(("make", "needle"), [
    (lambda: DashboardMetricExporter(token=TOKEN), "token is for a remote server"),
    (lambda: DashboardLogExporter("http://h:1", state=DashboardState()), "cannot be combined"),
    (lambda: DashboardLogExporter("ftp://h"), "endpoint must be an http"),
    (lambda: DashboardMetricExporter("http://h:1", token="short"), "token must be"),
    (lambda: DashboardMetricExporter("http://h:1", timeout_millis=0), "timeout_millis"),
])
def test_bad_arguments_are_named(make: Callable[[], object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        make()


def test_an_endpoint_with_a_path_prefix_keeps_it() -> None:
    assert DashboardMetricExporter("https://proxy.example/dashboard/").endpoint_url == (
        "https://proxy.example/dashboard/v1/metrics")
    assert DashboardLogExporter("http://[::1]:8000").endpoint_url == "http://[::1]:8000/v1/logs"


# ------------------------------------------------------------------------------- in process


def test_in_process_metrics_reach_the_agents_table() -> None:
    state = DashboardState()
    assert record_usage(DashboardMetricExporter(state=state), agent="InProcess")
    (row,) = [row for row in state.get_agent_stats()["agents"] if row["agent"] == "InProcess"]
    assert row["service"] == "exporter-tests"
    assert row["tokens"] == {"input": 120, "output": 0}
    assert row["sources"]["tokens"] == "metrics"


async def test_in_process_log_events_join_their_span(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(DashboardSpanExporter(state=state)))
    log_exporter = DashboardLogExporter(state=state)
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))

    def chat() -> tuple[str, str]:
        with tracer_provider.get_tracer("t").start_as_current_span("chat gpt-4o", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
        }) as span:
            logger_provider.get_logger("t").emit(event_name="gen_ai.user.message",
                                                 body={"content": "the in-process question"})
        context = span.get_span_context()
        return format(context.trace_id, "032x"), format(context.span_id, "016x")

    trace_id, span_id = chat()
    tracer_provider.shutdown()
    logger_provider.shutdown()
    assert log_exporter.failed_exports == 0
    async with running_server(state) as server, session.get(
            f"{server.url}/api/traces/{trace_id}/spans/{span_id}") as response:
        assert response.status == 200
        detail = await response.json()
    assert "the in-process question" in orjson.dumps(detail).decode()


def test_in_process_failures_are_failure_not_exceptions(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenState(DashboardState):
        def record_metric_usage(self, read: Any) -> None:
            raise RuntimeError("broken state")

    exporter = DashboardMetricExporter(state=BrokenState())
    assert not record_usage(exporter, exports=2)
    assert exporter.failed_exports == 2
    assert caplog.text.count("recording metrics in process failed") == 1
