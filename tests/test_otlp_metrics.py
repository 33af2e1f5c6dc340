"""``POST /v1/metrics`` on a real server, and the metric usage behind ``GET /api/agents``.

The stock OTLP/HTTP metric exporter (``opentelemetry-exporter-otlp-proto-http``) sends what an SDK
``MeterProvider`` recorded under the GenAI metric names (cumulative, the SDK's default, or delta);
the agents table must show the tokens, runs and durations once, never counted twice, with the span
figures first when both exist. Hand-written OTLP/JSON and raw protobuf pin the partial success of
malformed points. The window's bounds (streams, agents) are pinned on :class:`MetricUsage` itself
with an injected clock.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExportResult,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from server_support import WAIT, running_server

from otel_dashboard.model.otlp.metrics import FIGURES, MetricPoint, read_metrics
from otel_dashboard.model.prices import PriceBook
from otel_dashboard.server.app import DashboardWebSocketServer
from otel_dashboard.state import metric_usage
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.state.metric_usage import MetricUsage

pytestmark = pytest.mark.timeout(60)

MODEL = "my-llama"  # priced by the test's own price book: 1 USD per million input, 2 per million output
PRICES = PriceBook(overrides=[{"model": MODEL, "input_per_mtok": 1.0, "output_per_mtok": 2.0}],
                   use_builtin=False)
_DELTA = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA,
          UpDownCounter: AggregationTemporality.CUMULATIVE}


@pytest.fixture(name="server")
async def fixture_server() -> AsyncIterator[DashboardWebSocketServer]:
    async with running_server(prices=PRICES) as server:
        yield server


class App:
    """An SDK MeterProvider (cumulative unless ``delta``) whose readings the stock exporter sends."""

    def __init__(self, url: str, *, service: str = "shop", delta: bool = False,
                 compression: Compression = Compression.NoCompression) -> None:
        self.reader = InMemoryMetricReader(preferred_temporality=_DELTA if delta else None)
        self.provider = MeterProvider(metric_readers=[self.reader],
                                      resource=Resource.create({"service.name": service}))
        meter = self.provider.get_meter("tests.otlp_metrics")
        self.tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
        self.runs = meter.create_histogram("gen_ai.invoke_agent.duration", unit="s")
        self.calls = meter.create_histogram("gen_ai.client.operation.duration", unit="s")
        self.tools = meter.create_histogram("gen_ai.execute_tool.duration", unit="s")
        self.mcp = meter.create_histogram("mcp.client.operation.duration", unit="s")
        self.other = meter.create_counter("http.client.requests")
        self.exporter = OTLPMetricExporter(endpoint=f"{url}/v1/metrics", compression=compression)

    def model_call(self, agent: str, tokens_in: int, tokens_out: int, **attrs: Any) -> None:
        base = {"gen_ai.agent.name": agent, "gen_ai.request.model": MODEL,
                "gen_ai.provider.name": "self-hosted", "gen_ai.operation.name": "chat", **attrs}
        self.tokens.record(tokens_in, {**base, "gen_ai.token.type": "input"})
        self.tokens.record(tokens_out, {**base, "gen_ai.token.type": "output"})
        self.calls.record(0.4, base)

    def export(self) -> MetricExportResult:
        """Collect and send (in the calling thread: run it with asyncio.to_thread)."""
        data = self.reader.get_metrics_data()
        assert data is not None
        return self.exporter.export(data)

    def close(self) -> None:
        self.exporter.shutdown()
        self.provider.shutdown()


async def agents(session: aiohttp.ClientSession, server: DashboardWebSocketServer) -> dict[str, Any]:
    async with session.get(f"{server.url}/api/agents") as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def receiver(session: aiohttp.ClientSession, server: DashboardWebSocketServer) -> dict[str, int]:
    async with session.get(f"{server.url}/stats") as response:
        assert response.status == 200
        counters: dict[str, int] = (await response.json())["receiver"]
        return counters


def row(body: dict[str, Any], agent: str) -> dict[str, Any]:
    found = [entry for entry in body["agents"] if entry["agent"] == agent]
    assert len(found) == 1, body["agents"]
    return found[0]


# ------------------------------------------------------------------------------ the stock exporter
@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
async def test_stock_exporter_tokens_and_runs_reach_the_agents_table(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, compression: Compression
) -> None:
    app = App(server.url, compression=compression)
    try:
        app.model_call("Researcher", 1000, 500)
        app.model_call("Researcher", 3000, 1500)
        app.runs.record(1.2, {"gen_ai.agent.name": "Researcher"})
        app.runs.record(30.0, {"gen_ai.agent.name": "Researcher", "error.type": "TimeoutError"})
        app.tools.record(0.1, {"gen_ai.agent.name": "Researcher", "gen_ai.tool.name": "search"})
        app.mcp.record(0.2, {"gen_ai.agent.name": "Researcher", "mcp.method.name": "tools/call"})
        app.other.add(5)
        assert await asyncio.to_thread(app.export) is MetricExportResult.SUCCESS
    finally:
        app.close()

    entry = row(await agents(session, server), "Researcher")
    assert entry["service"] == "shop"
    assert entry["tokens"] == {"input": 4000, "output": 2000}
    assert entry["cost_usd"] == pytest.approx(4000 * 1e-6 + 2000 * 2e-6)
    assert entry["cost_status"] == "priced"
    assert (entry["runs"], entry["failures"], entry["success_rate"]) == (2, 1, 0.5)
    assert entry["last_error"]["type"] == "TimeoutError"
    # SDK default buckets (0, 5, 10, 25, ...): 1.2 s in (0, 5], 30 s in (25, 50].
    assert entry["duration_ms"]["samples"] == 2
    assert 0 < entry["duration_ms"]["p50"] <= 5000 < 25000 <= entry["duration_ms"]["p95"] <= 50000
    assert sum(entry["activity"]) == 2 and sum(entry["failures_activity"]) == 1
    assert entry["sources"] == {"runs": "metrics", "tokens": "metrics", "cost": "metrics"}
    assert entry["metrics"]["model_calls"] == 2
    assert (entry["metrics"]["tool_calls"], entry["metrics"]["mcp_calls"]) == (1, 1)
    assert entry["metrics"]["families"]["tokens"] == "gen_ai.client.token.usage"
    totals = (await agents(session, server))["totals"]
    assert totals["tokens"] == {"input": 4000, "output": 2000}
    assert totals["sources"]["tokens"] == "metrics"
    counters = await receiver(session, server)
    # 2 token streams, 1 model-call stream, 2 run streams, 1 tool, 1 MCP, 1 other counter.
    assert counters["otlp_metric_points_accepted"] == 8
    assert counters["otlp_metric_points_used"] == 7
    assert counters.get("otlp_metric_points_rejected", 0) == 0


async def test_cumulative_exports_are_not_counted_twice(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession
) -> None:
    app = App(server.url)
    try:
        app.model_call("Writer", 100, 10)
        assert await asyncio.to_thread(app.export) is MetricExportResult.SUCCESS
        assert await asyncio.to_thread(app.export) is MetricExportResult.SUCCESS  # same totals again
        app.model_call("Writer", 50, 5)
        assert await asyncio.to_thread(app.export) is MetricExportResult.SUCCESS
    finally:
        app.close()
    entry = row(await agents(session, server), "Writer")
    assert entry["tokens"] == {"input": 150, "output": 15}
    assert entry["metrics"]["model_calls"] == 2


async def test_delta_temporality_adds_each_export(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession
) -> None:
    app = App(server.url, delta=True)
    try:
        app.model_call("Writer", 100, 10)
        assert await asyncio.to_thread(app.export) is MetricExportResult.SUCCESS
        app.model_call("Writer", 50, 5)
        assert await asyncio.to_thread(app.export) is MetricExportResult.SUCCESS
    finally:
        app.close()
    entry = row(await agents(session, server), "Writer")
    assert entry["tokens"] == {"input": 150, "output": 15}
    assert entry["metrics"]["model_calls"] == 2


async def test_agent_falls_back_to_the_service_name(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession
) -> None:
    app = App(server.url, service="billing")
    try:
        app.tokens.record(70, {"gen_ai.token.type": "prompt"})  # the older token type names
        app.tokens.record(30, {"gen_ai.token.type": "completion"})
        app.tokens.record(99, {"gen_ai.token.type": "cached"})  # another type: not read
        assert await asyncio.to_thread(app.export) is MetricExportResult.SUCCESS
    finally:
        app.close()
    entry = row(await agents(session, server), "billing")
    assert (entry["service"], entry["tokens"]) == ("billing", {"input": 70, "output": 30})
    assert entry["cost_status"] == "no_price"  # no model named: tokens, no cost
    assert entry["sources"] == {"runs": None, "tokens": "metrics", "cost": None}


# ------------------------------------------------------------------------------ spans first
def send_agent_span(url: str, agent: str, service: str, tokens_in: int, tokens_out: int) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    tracer = provider.get_tracer("tests.otlp_metrics")
    try:
        with (
            tracer.start_as_current_span(f"invoke_agent {agent}", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent}),
            tracer.start_as_current_span(f"chat {MODEL}", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": MODEL,
                "gen_ai.usage.input_tokens": tokens_in, "gen_ai.usage.output_tokens": tokens_out}),
        ):
            pass
    finally:
        provider.shutdown()


async def wait_for_runs(session: aiohttp.ClientSession, server: DashboardWebSocketServer, agent: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if any(e["agent"] == agent and e["runs"] for e in (await agents(session, server))["agents"]):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no run of {agent} in /api/agents")


async def test_span_figures_win_over_metrics(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession
) -> None:
    await asyncio.to_thread(send_agent_span, server.url, "Planner", "shop", 11, 7)
    await wait_for_runs(session, server, "Planner")
    app = App(server.url)
    try:
        app.model_call("Planner", 5000, 5000)
        for _ in range(3):
            app.runs.record(2.0, {"gen_ai.agent.name": "Planner"})
        app.model_call("OnlyMetrics", 10, 20)
        assert await asyncio.to_thread(app.export) is MetricExportResult.SUCCESS
    finally:
        app.close()
    body = await agents(session, server)
    planner = row(body, "Planner")
    assert planner["runs"] == 1  # the span's run, not the metrics' three
    assert planner["tokens"] == {"input": 11, "output": 7}
    assert planner["sources"]["runs"] == "spans" and planner["sources"]["tokens"] == "spans"
    assert planner["metrics"]["model_calls"] == 1  # what only the metrics tell is still there
    only = row(body, "OnlyMetrics")
    assert (only["runs"], only["tokens"]) == (0, {"input": 10, "output": 20})
    assert only["sources"] == {"runs": None, "tokens": "metrics", "cost": "metrics"}
    totals = body["totals"]
    assert totals["runs"] == 1 and totals["sources"]["runs"] == "spans"
    assert totals["tokens"] == {"input": 11, "output": 7}
    # The filters see the metric-only agents too.
    async with session.get(f"{server.url}/api/agents", params={"agent": "OnlyMetrics"}) as response:
        assert [e["agent"] for e in (await response.json())["agents"]] == ["OnlyMetrics"]


# ------------------------------------------------------------------------------ raw bodies
def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, str):
        return KeyValue(key=key, value=AnyValue(string_value=value))
    return KeyValue(key=key, value=AnyValue(int_value=value))


def _request(*metrics: metrics_pb2.Metric, service: str = "raw") -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest(resource_metrics=[metrics_pb2.ResourceMetrics(
        resource={"attributes": [_kv("service.name", service)]},
        scope_metrics=[metrics_pb2.ScopeMetrics(scope={"name": "raw"}, metrics=list(metrics))],
    )])


def _histogram(name: str, points: list[dict[str, Any]], *, delta: bool = True) -> metrics_pb2.Metric:
    now = time.time_ns()
    temporality = 1 if delta else 2
    return metrics_pb2.Metric(name=name, histogram=metrics_pb2.Histogram(
        aggregation_temporality=temporality,
        data_points=[metrics_pb2.HistogramDataPoint(
            start_time_unix_nano=now - 1_000_000_000, time_unix_nano=now,
            attributes=[_kv(k, v) for k, v in p.get("attributes", {}).items()],
            **{k: v for k, v in p.items() if k != "attributes"}) for p in points],
    ))


async def post(session: aiohttp.ClientSession, server: DashboardWebSocketServer, body: bytes,
               content_type: str, **headers: str) -> tuple[int, bytes]:
    async with session.post(f"{server.url}/v1/metrics", data=body,
                            headers={"Content-Type": content_type, **headers}) as response:
        return response.status, await response.read()


async def test_malformed_points_are_a_partial_success(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession
) -> None:
    request = _request(
        _histogram("gen_ai.invoke_agent.duration", [
            {"count": 1, "sum": 1.0, "bucket_counts": [0, 1], "explicit_bounds": [0.5],
             "attributes": {"gen_ai.agent.name": "Good"}},
            {"count": 1, "sum": 1.0, "bucket_counts": [1, 0, 0], "explicit_bounds": [0.5],  # 3 for 1 bound
             "attributes": {"gen_ai.agent.name": "Bad"}},
            {"count": 1, "sum": float("nan"), "attributes": {"gen_ai.agent.name": "Bad"}},
            {"count": 2, "sum": 1.0, "bucket_counts": [1, 0], "explicit_bounds": [0.5],  # adds up to 1
             "attributes": {"gen_ai.agent.name": "Bad"}},
        ]),
        # Malformed buckets are rejected whatever the metric's name.
        _histogram("http.server.request.duration", [
            {"count": 1, "sum": 1.0, "bucket_counts": [1], "explicit_bounds": [0.5, 1.0]}]),
    )
    status, body = await post(session, server, request.SerializeToString(), "application/x-protobuf")
    assert status == 200
    response = ExportMetricsServiceResponse.FromString(body)
    assert response.partial_success.rejected_data_points == 4
    assert "4 data point(s) rejected" in response.partial_success.error_message
    assert "bucket counts" in response.partial_success.error_message
    listed = {e["agent"] for e in (await agents(session, server))["agents"]}
    assert listed == {"Good"}
    counters = await receiver(session, server)
    assert (counters["otlp_metric_points_accepted"], counters["otlp_metric_points_rejected"]) == (1, 4)


@pytest.mark.parametrize("gzipped", [False, True])
async def test_hand_written_otlp_json(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, gzipped: bool
) -> None:
    now = time.time_ns()
    document = {"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-app"}}]},
        "scopeMetrics": [{"scope": {"name": "hand"}, "metrics": [
            {"name": "gen_ai.client.inference.usage.input_tokens", "unit": "{token}",
             "sum": {"aggregationTemporality": 1, "isMonotonic": True, "dataPoints": [
                 {"asInt": "1200", "timeUnixNano": str(now),
                  "attributes": [{"key": "gen_ai.agent.name", "value": {"stringValue": "Triage"}},
                                 {"key": "gen_ai.request.model", "value": {"stringValue": MODEL}}]}]}},
            {"name": "gen_ai.client.inference.usage.output_tokens", "unit": "{token}",
             "sum": {"aggregationTemporality": "AGGREGATION_TEMPORALITY_DELTA", "isMonotonic": True,
                     "dataPoints": [{"asInt": 300, "timeUnixNano": str(now),
                                     "attributes": [{"key": "gen_ai.agent.name",
                                                     "value": {"stringValue": "Triage"}}]}]}},
            {"name": "gen_ai.invoke_agent.duration", "unit": "s",
             "histogram": {"aggregationTemporality": 1, "dataPoints": [
                 {"count": "4", "sum": 8.0, "bucketCounts": ["0", "3", "1"], "explicitBounds": [1.0, 2.0],
                  "timeUnixNano": str(now),
                  "attributes": [{"key": "gen_ai.agent.name", "value": {"stringValue": "Triage"}}]}]}},
            {"name": "system.memory.usage", "gauge": {"dataPoints": [{"asDouble": 1.5,
                                                                       "timeUnixNano": str(now)}]}},
        ]}],
    }]}
    body = json.dumps(document).encode()
    headers = {"Content-Encoding": "gzip"} if gzipped else {}
    status, answer = await post(session, server, gzip.compress(body) if gzipped else body,
                                "application/json", **headers)
    assert status == 200, answer
    assert json.loads(answer) == {} or json.loads(answer).get("partialSuccess", {}) in ({}, None)
    entry = row(await agents(session, server), "Triage")
    assert entry["service"] == "json-app"
    assert entry["tokens"] == {"input": 1200, "output": 300}
    assert entry["cost_usd"] == pytest.approx(1200 * 1e-6)  # the output point names no model
    assert entry["cost_status"] == "partial"
    assert entry["metrics"]["families"]["tokens"] == "gen_ai.client.inference.usage"
    # 3 of 4 runs in (1, 2], 1 in (2, inf): p50 inside (1, 2], p95 the overflow bucket's lower bound.
    assert entry["runs"] == 4 and 1000 < entry["duration_ms"]["p50"] <= 2000
    assert entry["duration_ms"]["p95"] == 2000.0


async def test_each_data_point_is_charged_to_the_ingest_rate(session: aiohttp.ClientSession) -> None:
    from otel_dashboard.server.security import SecurityConfig

    security = SecurityConfig(ingest_events_per_second=1, ingest_burst_events=3)
    async with running_server(security=security) as server:
        def runs(agent: str) -> bytes:
            one = {"count": 1, "sum": 1.0, "attributes": {"gen_ai.agent.name": agent}}
            return _request(_histogram("gen_ai.invoke_agent.duration", [one] * 4)).SerializeToString()

        assert (await post(session, server, runs("First"), "application/x-protobuf"))[0] == 200
        status, _ = await post(session, server, runs("Second"), "application/x-protobuf")
        assert status == 429  # the first took the burst: the second is refused whole
        assert [e["agent"] for e in (await agents(session, server))["agents"]] == ["First"]
        assert (await agents(session, server))["agents"][0]["runs"] == 4


async def test_unknown_metrics_are_counted_not_stored(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession
) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "web"}))
    meter = provider.get_meter("tests.otlp_metrics")
    meter.create_counter("http.server.requests").add(3, {"route": "/a"})
    meter.create_counter("http.server.requests").add(1, {"route": "/b"})
    meter.create_histogram("http.server.request.duration").record(0.2)
    meter.create_up_down_counter("gen_ai.client.token.usage.weird").add(-1)
    # A model-call duration that is no model call (gen_ai.client.operation.duration also times agents).
    meter.create_histogram("gen_ai.client.operation.duration").record(
        1.0, {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Remote"})
    exporter = OTLPMetricExporter(endpoint=f"{server.url}/v1/metrics")
    try:
        data = reader.get_metrics_data()
        assert data is not None
        assert await asyncio.to_thread(exporter.export, data) is MetricExportResult.SUCCESS
    finally:
        exporter.shutdown()
        provider.shutdown()
    counters = await receiver(session, server)
    assert counters["otlp_metric_points_accepted"] == 5
    assert counters["otlp_metric_points_used"] == 0
    assert (await agents(session, server))["agents"] == []


# ------------------------------------------------------------------------------ MetricUsage itself
class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def point(clock: Clock, *, stream: bytes = b"s" * 16, total: float = 10.0, cumulative: bool = True,
          start: int = 1, agent: str = "A", family: str = "gen_ai.client.token.usage",
          direction: str = "input", **extra: Any) -> MetricPoint:
    return MetricPoint(figure="tokens", family=family, direction=direction, agent=agent, service="svc",
                       model=None, provider=None, error_type=None, stream=stream, cumulative=cumulative,
                       start_time_unix_nano=start, time_unix_nano=int(clock.now * 1e9), count=0,
                       total=total, **extra)


def tokens_in(usage: MetricUsage, agent: str = "A") -> int:
    figures = usage.figures((agent, "svc"))
    return figures["tokens"]["input"] if figures else 0


def test_reset_and_stale_points() -> None:
    clock = Clock()
    usage = MetricUsage(window_seconds=600, bucket_seconds=10, clock=clock)
    usage.record([point(clock, total=10)])
    clock.now += 1
    usage.record([point(clock, total=25)])
    assert tokens_in(usage) == 25
    stale = point(clock, total=20)
    clock.now += 1
    usage.record([point(clock, total=30)])
    usage.record([stale])  # older than the stream's last point: ignored
    assert (tokens_in(usage), usage.stale_points) == (30, 1)
    usage.record([point(clock, total=4, start=2)])  # the sender restarted: a new start time
    clock.now += 1
    usage.record([point(clock, total=3, start=2)])  # went down: a reset too
    assert (tokens_in(usage), usage.resets) == (37, 2)


def test_streams_are_bounded_and_a_forgotten_stream_counts_whole() -> None:
    clock = Clock()
    usage = MetricUsage(window_seconds=600, bucket_seconds=10, max_streams=3, clock=clock)
    usage.record([point(clock, stream=bytes([i]) * 16, total=1) for i in range(5)])
    assert (usage.streams, usage.evicted_streams) == (3, 2)
    assert tokens_in(usage) == 5
    clock.now += 1
    usage.record([point(clock, stream=bytes([0]) * 16, total=2)])  # forgotten: its whole value again
    assert tokens_in(usage) == 7
    assert usage.counters()["evicted_metric_streams"] == 3


def test_agents_are_bounded_and_the_totals_keep_the_evicted() -> None:
    clock = Clock()
    usage = MetricUsage(window_seconds=600, bucket_seconds=10, max_agents=2, clock=clock)
    for i in range(4):
        usage.record([point(clock, stream=bytes([i]) * 16, agent=f"A{i}", total=1, cumulative=False)])
    assert (len(usage), usage.evicted_agents) == (2, 2)
    assert [key for _, key in usage.newest()] == [("A3", "svc"), ("A2", "svc")]
    assert usage.totals()["tokens"]["input"] == 4


def test_one_family_per_figure_and_the_window() -> None:
    clock = Clock()
    usage = MetricUsage(window_seconds=600, bucket_seconds=10, clock=clock)
    # The same tokens under the old and the new name: counted once, from the preferred family.
    usage.record([point(clock, stream=b"o" * 16, total=100, cumulative=False),
                  point(clock, stream=b"n" * 16, total=100, cumulative=False,
                        family="gen_ai.client.inference.usage")])
    figures = usage.figures(("A", "svc"))
    assert figures is not None
    assert figures["tokens"]["input"] == 100
    assert figures["families"]["tokens"] == "gen_ai.client.inference.usage"
    clock.now += 601  # out of the window: forgotten
    assert usage.figures(("A", "svc")) is None and usage.newest() == []
    old = point(clock, total=5, cumulative=False)
    clock.now += 1200
    usage.record([old])  # older than the window when it arrives: ignored
    assert usage.newest() == []


def test_the_state_may_not_import_the_model_otlp_package() -> None:
    # state/metric_usage.py repeats the families (the model's OTLP package loads the SDK): pin them.
    assert metric_usage._FIGURES == FIGURES


def test_read_metrics_never_raises_and_keeps_the_stream_identity() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    histogram = provider.get_meter("t").create_histogram("gen_ai.execute_tool.duration")
    histogram.record(0.5, {"gen_ai.tool.name": "a", "gen_ai.agent.name": "X"})
    histogram.record(0.5, {"gen_ai.agent.name": "X", "gen_ai.tool.name": "b"})
    data = reader.get_metrics_data()
    assert data is not None
    read = read_metrics(encode_metrics(data))
    provider.shutdown()
    assert read.data_points == 2 and len({p.stream for p in read.points}) == 2
    # The SDK's default service name, passed through as the spans' is.
    assert {(p.figure, p.agent, p.service) for p in read.points} == {
        ("tool_calls", "X", "unknown_service:python")}
    # No service.name and no gen_ai.agent.name: the agent is "unknown_service", the service None.
    mcp = _histogram("mcp.server.operation.duration", [{"count": 1, "sum": 0.1}])
    bare = ExportMetricsServiceRequest(resource_metrics=[metrics_pb2.ResourceMetrics(scope_metrics=[
        metrics_pb2.ScopeMetrics(metrics=[mcp])])])
    assert [(p.figure, p.agent, p.service) for p in read_metrics(bare).points] == [
        ("mcp_calls", "unknown_service", None)]
    assert read_metrics(ExportMetricsServiceRequest()).data_points == 0
    assert read_metrics(object()).points == []


def test_state_prices_off_the_lock_and_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    state = DashboardState()
    calls: list[Callable[..., Any]] = []

    class Book:
        def cost(self, *, model: str | None, provider: str | None, input_tokens: int = 0,
                 output_tokens: int = 0, **_: int) -> float | None:
            calls.append(self.cost)
            return 0.001 * (input_tokens + output_tokens)

    clock_point = point(Clock(), cumulative=False)
    priced = MetricPoint(**{**{f: getattr(clock_point, f) for f in MetricPoint.__dataclass_fields__},
                            "model": MODEL, "time_unix_nano": time.time_ns()})
    from otel_dashboard.model.otlp.metrics import MetricsRead

    assert state.record_metric_usage(MetricsRead(points=[priced]), prices=Book()) == 1
    assert len(calls) == 2  # once to warm the book off the lock, once under it
    entry = state.get_agent_stats()["agents"][0]
    assert entry["cost_usd"] == pytest.approx(0.01) and entry["cost_status"] == "priced"
    assert state.get_counters()["metric_agents"] == 1
