"""``DashboardSpanExporter``: in process and to a real server, the export contract, the entry point.

An exporter sees only ENDED spans, so it yields completed events and never started ones.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from importlib import metadata

import aiohttp
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from server_support import EventStream, of_type, running_server

from otel_dashboard.model.events import EventType
from otel_dashboard.pipeline.exporter import DashboardSpanExporter
from otel_dashboard.pipeline.otlp_exporters import DashboardLogExporter, DashboardMetricExporter
from otel_dashboard.state.dashboard import DashboardState

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_endpoint_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_DASHBOARD_ENDPOINT", raising=False)


def run_agent(provider: TracerProvider, agent_name: str) -> None:
    tracer = provider.get_tracer("tests.exporter")
    with tracer.start_as_current_span(f"invoke_agent {agent_name}", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent_name,
    }):
        pass


def run_agent_with_tool(provider: TracerProvider) -> str:
    """An agent span around a tool span; returns the trace id (hex)."""
    tracer = provider.get_tracer("tests.exporter")
    with tracer.start_as_current_span("invoke_agent Planner", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Planner",
    }) as span, tracer.start_as_current_span("execute_tool search", attributes={
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
    }):
        pass
    return format(span.get_span_context().trace_id, "032x")


def test_exported_spans_reach_the_trace_view_in_process() -> None:
    state = DashboardState()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(DashboardSpanExporter(state=state)))
    try:
        trace_id = run_agent_with_tool(provider)
    finally:
        provider.shutdown()
    trace = state.traces.get_trace(trace_id)
    assert trace is not None
    assert [(s["name"], s["kind"]) for s in trace["spans"]] == [
        ("invoke_agent Planner", "agent"), ("execute_tool search", "tool")]
    assert trace["root_span_ids"] == [trace["spans"][0]["span_id"]]
    assert trace["running"] is False


async def test_exported_spans_reach_the_trace_view_of_a_remote_server(
    session: aiohttp.ClientSession,
) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        exporter = DashboardSpanExporter(server.url)
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        try:
            trace_id = await asyncio.to_thread(run_agent_with_tool, provider)
            assert await asyncio.to_thread(exporter.force_flush, 10_000)
        finally:
            await asyncio.to_thread(provider.shutdown)
        async with session.get(f"{server.url}/api/traces/{trace_id}") as response:
            assert response.status == 200
            trace = await response.json()
    assert sorted(s["kind"] for s in trace["spans"]) == ["agent", "tool"]


def export_through(exporter: DashboardSpanExporter, agent_name: str) -> None:
    """The usual set-up: BatchSpanProcessor(exporter) on a provider; one agent run; flushed."""
    provider = TracerProvider(resource=Resource.create({"service.name": "exporter-tests"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=50))
    try:
        run_agent(provider, agent_name)
        assert provider.force_flush(10_000)
        assert exporter.force_flush(10_000)
    finally:
        provider.shutdown()  # shuts the exporter down too


async def test_in_process_completed_events_but_no_started_ones(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        stream = await EventStream.connect(session, server)
        exporter = DashboardSpanExporter(state=state)
        await asyncio.to_thread(export_through, exporter, "Batcher")
        completed = await stream.wait_for(of_type("agent_execution_completed", agent_name="Batcher"))
        assert completed["data"]["service_name"] == "exporter-tests"
        assert completed["data"]["success"] is True
        await stream.close()
    types = [e.event_type for e in state.get_events_after(0)]
    assert EventType.AGENT_EXECUTION_STARTED not in types
    assert types.count(EventType.AGENT_EXECUTION_COMPLETED) == 1


async def test_to_an_endpoint_completed_events_but_no_started_ones(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        stream = await EventStream.connect(session, server)
        exporter = DashboardSpanExporter(server.url)
        await asyncio.to_thread(export_through, exporter, "Shipper")
        completed = await stream.wait_for(of_type("agent_execution_completed", agent_name="Shipper"))
        assert completed["data"]["service_name"] == "exporter-tests"
        types = [e.event_type for e in server.state.get_events_after(0)]
        assert EventType.AGENT_EXECUTION_STARTED not in types
        assert exporter.dropped_events == 0
        await stream.close()


async def test_the_endpoint_can_come_from_the_environment(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_server() as server:
        monkeypatch.setenv("OTEL_DASHBOARD_ENDPOINT", server.url)
        stream = await EventStream.connect(session, server)
        await asyncio.to_thread(export_through, DashboardSpanExporter(), "FromEnv")
        await stream.wait_for(of_type("agent_execution_completed", agent_name="FromEnv"))
        await stream.close()


def finished_spans() -> tuple[ReadableSpan, ...]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    run_agent(provider, "Late")
    provider.shutdown()
    return memory.get_finished_spans()


def test_export_is_failure_after_shutdown() -> None:
    state = DashboardState()
    exporter = DashboardSpanExporter(state=state)
    spans = finished_spans()
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    seq = state.last_seq
    exporter.shutdown()
    exporter.shutdown()  # idempotent
    assert exporter.export(spans) is SpanExportResult.FAILURE
    assert state.last_seq == seq  # nothing published after shutdown


def test_the_entry_points_load_the_exporters() -> None:
    (entry_point,) = metadata.entry_points(group="opentelemetry_traces_exporter", name="otel_dashboard")
    assert entry_point.load() is DashboardSpanExporter
    from opentelemetry.sdk._configuration import _import_exporters

    span_exporters, metric_exporters, log_exporters = _import_exporters(
        ["otel_dashboard"], ["otel_dashboard"], ["otel_dashboard"])
    assert span_exporters == {"otel_dashboard": DashboardSpanExporter}
    assert metric_exporters == {"otel_dashboard": DashboardMetricExporter}
    assert log_exporters == {"otel_dashboard": DashboardLogExporter}


async def test_zero_code_configuration_ships_to_the_server(session: aiohttp.ClientSession) -> None:
    """``OTEL_{TRACES,METRICS,LOGS}_EXPORTER=otel_dashboard`` + ``OTEL_DASHBOARD_ENDPOINT``: the SDK's own
    configurator (what ``opentelemetry-instrument`` runs) builds the three exporters from the entry
    points. (The same under the real ``opentelemetry-instrument``: tests/test_zero_code.py.)"""
    script = textwrap.dedent("""
        from opentelemetry import trace
        from opentelemetry.sdk._configuration import _OTelSDKConfigurator

        _OTelSDKConfigurator().configure()
        tracer = trace.get_tracer("zero-code")
        with tracer.start_as_current_span("invoke_agent ZeroCode", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "ZeroCode",
        }):
            pass
        trace.get_tracer_provider().shutdown()
    """)
    async with running_server() as server:
        stream = await EventStream.connect(session, server)
        env = {
            **os.environ, "OTEL_TRACES_EXPORTER": "otel_dashboard", "OTEL_DASHBOARD_ENDPOINT": server.url,
            "OTEL_METRICS_EXPORTER": "otel_dashboard", "OTEL_LOGS_EXPORTER": "otel_dashboard",
            "OTEL_SERVICE_NAME": "zero-code-app",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, err.decode()
        assert "not found in entry point" not in err.decode()
        completed = await stream.wait_for(of_type("agent_execution_completed", agent_name="ZeroCode"))
        assert completed["data"]["service_name"] == "zero-code-app"
        await stream.close()
