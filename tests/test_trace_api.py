"""``GET /api/traces/{trace_id}`` after an in-process agent -> tool -> agent run (decorators + processor).

The processor records every span it processes in the state's trace store (running at start,
finished at end), so the tree is there while the run is still going.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from server_support import WAIT, running_server
from tracing_support import routed_to

from instrumentation import agent, tool
from otel_dashboard.pipeline.processor import DashboardSpanProcessor
from otel_dashboard.server.app import DashboardWebSocketServer
from otel_dashboard.state.dashboard import DashboardState

pytestmark = pytest.mark.timeout(60)


async def get_trace(
    session: aiohttp.ClientSession, server: DashboardWebSocketServer, trace_id: str
) -> tuple[int, dict[str, Any]]:
    async with session.get(f"{server.url}/api/traces/{trace_id}") as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


@pytest.fixture(name="state")
def fixture_state() -> DashboardState:
    return DashboardState()


@pytest.fixture(name="processor")
def fixture_processor(state: DashboardState) -> Iterator[DashboardSpanProcessor]:
    processor = DashboardSpanProcessor(state=state)
    yield processor
    processor.shutdown(5000)


async def test_nested_run_gives_the_span_tree_live_and_finished(
    session: aiohttp.ClientSession, state: DashboardState, processor: DashboardSpanProcessor
) -> None:
    inside, proceed = threading.Event(), threading.Event()
    seen: dict[str, str] = {}

    @agent(name="Critic")
    def critic(draft: str) -> str:
        context = trace.get_current_span().get_span_context()
        seen["trace_id"] = format(context.trace_id, "032x")
        inside.set()
        assert proceed.wait(WAIT), "the test never let the run finish"
        return draft + " (reviewed)"

    @tool(name="review")
    def review(draft: str) -> str:
        return critic(draft)

    @agent(name="Writer")
    def writer(topic: str) -> str:
        return review(f"a draft about {topic}")

    async with running_server(state) as server:
        with routed_to(processor):
            run = asyncio.ensure_future(asyncio.to_thread(writer, "heat pumps"))
            try:
                assert await asyncio.to_thread(inside.wait, WAIT)
                assert await asyncio.to_thread(processor.force_flush, 5000)
                status, live = await get_trace(session, server, seen["trace_id"])
            finally:
                proceed.set()
            assert await asyncio.wait_for(run, WAIT) == "a draft about heat pumps (reviewed)"
        assert await asyncio.to_thread(processor.force_flush, 5000)
        _, done = await get_trace(session, server, seen["trace_id"])

        # While the inner agent waits, all three spans are there and all are running.
        assert status == 200
        assert live["running"] is True
        assert [(s["name"], s["end_time"], s["duration_ms"]) for s in live["spans"]] == [
            ("invoke_agent Writer", None, None),
            ("execute_tool review", None, None),
            ("invoke_agent Critic", None, None),
        ]

        # Finished: the same tree, with kinds, parent links and durations.
        assert done["running"] is False
        assert done["trace_id"] == seen["trace_id"]
        assert done["span_count"] == 3
        outer, tool_span, inner = done["spans"]  # sorted by start time
        assert [(s["kind"], s["name"]) for s in done["spans"]] == [
            ("agent", "invoke_agent Writer"),
            ("tool", "execute_tool review"),
            ("agent", "invoke_agent Critic"),
        ]
        assert done["root_span_ids"] == [outer["span_id"]]
        assert outer["parent_span_id"] is None
        assert tool_span["parent_span_id"] == outer["span_id"]
        assert inner["parent_span_id"] == tool_span["span_id"]
        names = (outer["agent_name"], tool_span["tool_name"], inner["agent_name"])
        assert names == ("Writer", "review", "Critic")
        for span in done["spans"]:
            assert span["status"] == "unset"  # the decorators leave a success UNSET
            assert span["end_time"] is not None
            assert span["duration_ms"] > 0
        assert outer["duration_ms"] >= tool_span["duration_ms"] >= inner["duration_ms"]
        starts = [s["start_time_unix_nano"] for s in (outer, tool_span, inner)]
        assert starts == sorted(starts)
        # The waterfall's fields (no model call here) and the whole trace's summary.
        for span in done["spans"]:
            fields = ("model", "input_tokens", "output_tokens", "cost_usd", "has_detail")
            assert [span[key] for key in fields] == [None, None, None, None, False]
            assert "detail_attributes" not in span
        assert live["summary"]["status"] == "running" and live["summary"]["duration_ms"] >= 0
        summary = done["summary"]
        keys = ("root_name", "root_span_id", "status", "span_count", "error_count", "model_calls",
                "tool_calls", "cost_status")
        assert {key: summary[key] for key in keys} == {
            "root_name": "invoke_agent Writer", "root_span_id": outer["span_id"], "status": "ok",
            "span_count": 3, "error_count": 0, "model_calls": 0, "tool_calls": 1, "cost_status": "no_tokens"}
        assert summary["duration_ms"] >= outer["duration_ms"] and summary["started_at"] == outer["start_time"]

        # Unknown and malformed ids.
        unknown = "0af7651916cd43dd8448eb211c80319c"
        status, body = await get_trace(session, server, unknown)
        assert (status, body) == (404, {"error": "trace not found", "trace_id": unknown})
        for bad in ("xyz", "0af7651916cd43dd8448eb211c80319", "0af7651916cd43dd8448eb211c80319cz", "0" * 32):
            status, body = await get_trace(session, server, bad)
            assert status == 400, bad
            assert body["parameter"] == "trace_id"
        status, body = await get_trace(session, server, seen["trace_id"].upper())
        assert status == 200
        assert body["trace_id"] == seen["trace_id"]


# --------------------------------------------------------------------------------- pages, span events
def _raise_lookup() -> None:
    raise LookupError("the index is gone")


def _failed_span(trace_id: int) -> ReadableSpan:
    """One ended SDK span of trace ``trace_id`` with a real exception event (and its stack trace)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=_FixedTraceIds(trace_id))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("execute_tool lookup", record_exception=False) as span:
        try:
            _raise_lookup()
        except LookupError as exc:
            span.record_exception(exc)
    provider.shutdown()
    (ended,) = exporter.get_finished_spans()
    return ended


class _FixedTraceIds(RandomIdGenerator):
    def __init__(self, trace_id: int) -> None:
        self._trace_id = trace_id

    def generate_trace_id(self) -> int:
        return self._trace_id


def _hex_ids(node: Any) -> Any:
    """An OTLP/JSON document from protobuf's JSON mapping: ids as hex, not base64."""
    if isinstance(node, dict):
        return {key: base64.b64decode(value).hex() if key in ("traceId", "spanId", "parentSpanId")
                else _hex_ids(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_hex_ids(item) for item in node]
    return node


async def _trace_when_kept(
    session: aiohttp.ClientSession, server: DashboardWebSocketServer, trace_id: str
) -> dict[str, Any]:
    """The trace's first page, once the server keeps it (received spans are recorded off the loop)."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        status, body = await get_trace(session, server, trace_id)
        if status == 200 or asyncio.get_running_loop().time() > deadline:
            assert status == 200, body
            return body
        await asyncio.sleep(0.02)


def _assert_exception_event(span: dict[str, Any]) -> None:
    (event,) = span["events"]
    assert event["name"] == "exception"
    assert isinstance(event["time_unix_nano"], int) and event["time"].endswith("Z")
    attrs = event["attributes"]
    assert attrs["exception.type"] == "LookupError"
    assert attrs["exception.message"] == "the index is gone"
    assert attrs["exception.stacktrace"].startswith("Traceback (most recent call last):")
    assert "_raise_lookup" in attrs["exception.stacktrace"]
    assert span["dropped_events"] == 0


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
async def test_otlp_spans_keep_their_exception_events(session: aiohttp.ClientSession, encoding: str) -> None:
    trace_number = 0x5B8EFFF798038103D269B633813FC60C + (encoding == "json")
    request = encode_spans([_failed_span(trace_number)])
    if encoding == "protobuf":
        body, content_type = request.SerializeToString(), "application/x-protobuf"
    else:
        body = orjson.dumps(_hex_ids(json_format.MessageToDict(request)))
        content_type = "application/json"
    async with running_server() as server:
        async with session.post(f"{server.url}/v1/traces", data=body,
                                headers={"Content-Type": content_type}) as response:
            assert response.status == 200
        trace = await _trace_when_kept(session, server, format(trace_number, "032x"))
    _assert_exception_event(trace["spans"][0])


async def test_a_remote_processors_record_keeps_its_events(session: aiohttp.ClientSession) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    events = [{"name": "exception", "time_unix_nano": 1_700_000_000_000_000_000, "attributes": {
        "exception.type": "LookupError", "exception.message": "the index is gone",
        "exception.stacktrace": "Traceback (most recent call last):\n  in _raise_lookup\n" + "x" * 20_000,
        "nested": {"not": "kept as an object"}}}] + [{"name": f"step {n}"} for n in range(40)] + ["junk"]
    record = {"trace_id": trace_id, "span_id": "00f067aa0ba902b7", "name": "execute_tool lookup",
              "events": events, "dropped_events": 2}
    async with running_server() as server:
        batch = {"events": [], "spans": [record]}
        async with session.post(f"{server.url}/api/events", json=batch) as response:
            assert response.status == 200, await response.text()
        trace = await _trace_when_kept(session, server, trace_id)
    (span,) = trace["spans"]
    assert len(span["events"]) == 32 and span["dropped_events"] == 2 + 9
    exception = span["events"][0]
    assert exception["time"] == "2023-11-14T22:13:20.000Z"
    assert len(exception["attributes"]["exception.stacktrace"]) == 16 * 1024
    assert exception["attributes"]["nested"] == "{'not': 'kept as an object'}"


async def test_in_process_exception_events_through_the_api(
    session: aiohttp.ClientSession, state: DashboardState, processor: DashboardSpanProcessor
) -> None:
    provider = TracerProvider(id_generator=_FixedTraceIds(0x1234))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("execute_tool lookup", record_exception=False) as span:
        try:
            _raise_lookup()
        except LookupError as exc:
            span.record_exception(exc)
    assert processor.force_flush(5000)
    async with running_server(state) as server:
        status, trace = await get_trace(session, server, format(0x1234, "032x"))
    assert status == 200
    _assert_exception_event(trace["spans"][0])


async def test_a_trace_is_served_in_pages(session: aiohttp.ClientSession, state: DashboardState) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    number = int(trace_id, 16)
    state.traces.add_span_records([
        (number, n, 0, f"span {n}", 1000 + n, 2000 + n, "ok", None, None, 500) for n in range(1, 26)
    ])
    async with running_server(state) as server:
        pages, offset = [], 0
        while offset is not None:
            async with session.get(f"{server.url}/api/traces/{trace_id}",
                                   params={"offset": offset, "limit": 10}) as response:
                assert response.status == 200
                page = await response.json()
            pages.append(page)
            offset = page["next_offset"]
        _, default = await get_trace(session, server, trace_id)
        bad = {}
        for params in ({"limit": "0"}, {"limit": "5001"}, {"limit": "ten"}, {"offset": "-1"},
                       {"offset": "x"}, {"page": "2"}):
            async with session.get(f"{server.url}/api/traces/{trace_id}", params=params) as response:
                assert response.status == 400 and response.content_type == "application/json"
                bad[next(iter(params))] = (await response.json())["parameter"]
    assert [(p["offset"], p["limit"], p["next_offset"], len(p["spans"])) for p in pages] == [
        (0, 10, 10, 10), (10, 10, 20, 10), (20, 10, None, 5)]
    assert [s["span_id"] for p in pages for s in p["spans"]] == [format(n, "016x") for n in range(1, 26)]
    assert all(p["span_count"] == 25 and p["dropped_spans"] == 0 and p["truncated"] is False for p in pages)
    envelope = (default["offset"], default["limit"], default["next_offset"], len(default["spans"]))
    assert envelope == (0, 2000, None, 25)
    assert bad == {"limit": "limit", "offset": "offset", "page": "page"}
