"""``POST /v1/traces`` on a real server: the stock OTLP/HTTP exporter, hand-written OTLP JSON, bad bodies.

The cross-language path: any OpenTelemetry SDK's OTLP/HTTP exporter (here the stock Python one from
``opentelemetry-exporter-otlp-proto-http``, configured by arguments or by the standard
``OTEL_EXPORTER_OTLP_*`` variables) sends GenAI agent spans; a real WebSocket client must see the
agent's events with the resource's ``service.name``. The exporter is synchronous, so it runs in a
thread while the server's loop keeps serving.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from server_support import WAIT, EventStream, of_type, running_server

from otel_dashboard.server import otlp_http
from otel_dashboard.server.app import DashboardWebSocketServer

pytestmark = pytest.mark.timeout(60)

FIXTURE = Path(__file__).parent / "fixtures" / "otlp_agent_trace.json"
FIXTURE_TRACE_ID = "5b8efff798038103d269b633813fc60c"
SMALL_LIMIT = 64 * 1024
_OTLP_ENV = (
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
)


@pytest.fixture(name="server")
async def fixture_server() -> AsyncIterator[DashboardWebSocketServer]:
    async with running_server(max_body_bytes=SMALL_LIMIT) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_otlp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _OTLP_ENV:
        monkeypatch.delenv(name, raising=False)


class RecordingExporter(SpanExporter):
    """Wraps the stock exporter and keeps each export's result (SimpleSpanProcessor discards them)."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.results: list[SpanExportResult] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        self.results.append(result)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()


def run_agent_through(exporter: SpanExporter, service: str, agent_name: str) -> str:
    """A GenAI agent span with a tool span inside, exported span by span; returns the trace id."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.otlp_receiver")
    try:
        agent_attributes = {
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent_name,
            "gen_ai.agent.id": f"{agent_name.lower()}-1",
        }
        tool_attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"}
        with (
            tracer.start_as_current_span(f"invoke_agent {agent_name}", attributes=agent_attributes)
            as agent_span,
            tracer.start_as_current_span("execute_tool lookup", attributes=tool_attributes),
        ):
            pass
        return format(agent_span.get_span_context().trace_id, "032x")
    finally:
        provider.shutdown()


async def assert_agent_arrives(
    stream: EventStream, session: aiohttp.ClientSession, server: DashboardWebSocketServer,
    agent_name: str, service: str, trace_id: str,
) -> None:
    completed = await stream.wait_for(of_type("agent_execution_completed", agent_name=agent_name))
    assert completed["data"]["service_name"] == service
    assert completed["data"]["success"] is True
    assert completed["trace_id"] == trace_id
    started = await stream.wait_for(of_type("agent_execution_started", agent_name=agent_name))
    assert started["seq"] < completed["seq"]
    async with session.get(f"{server.url}/api/traces/{trace_id}") as response:
        assert response.status == 200
        spans = (await response.json())["spans"]
    assert sorted((s["kind"], s["name"]) for s in spans) == [
        ("agent", f"invoke_agent {agent_name}"), ("tool", "execute_tool lookup"),
    ]
    assert {s["service_name"] for s in spans} == {service}


# ------------------------------------------------------------------------------ the stock exporter
@pytest.mark.parametrize("compression", [None, "gzip"])
async def test_stock_otlp_exporter_delivers_agent_spans(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, compression: str | None
) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression

    stream = await EventStream.connect(session, server)
    exporter = RecordingExporter(OTLPSpanExporter(
        endpoint=f"{server.url}/v1/traces",
        compression=Compression.Gzip if compression else Compression.NoCompression,
    ))
    trace_id = await asyncio.to_thread(run_agent_through, exporter, "otlp-e2e", "Planner")
    assert exporter.results == [SpanExportResult.SUCCESS] * 2
    await assert_agent_arrives(stream, session, server, "Planner", "otlp-e2e", trace_id)
    await stream.close()


@pytest.mark.parametrize(("variable", "path", "extra"), [
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "/v1/traces", {}),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "", {}),  # the exporter appends /v1/traces itself
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "", {"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip"}),
])
async def test_stock_exporter_configured_by_environment(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch,
    variable: str, path: str, extra: dict[str, str],
) -> None:
    monkeypatch.setenv(variable, server.url + path)
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    stream = await EventStream.connect(session, server)
    exporter = RecordingExporter(OTLPSpanExporter())  # everything from the environment
    trace_id = await asyncio.to_thread(run_agent_through, exporter, "env-configured", "Writer")
    assert exporter.results == [SpanExportResult.SUCCESS] * 2
    await assert_agent_arrives(stream, session, server, "Writer", "env-configured", trace_id)
    await stream.close()


# ------------------------------------------------------------------------------ OTLP JSON
async def test_hand_written_otlp_json_fixture(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession
) -> None:
    stream = await EventStream.connect(session, server)
    async with session.post(f"{server.url}/v1/traces", data=FIXTURE.read_bytes(),
                            headers={"Content-Type": "application/json"}) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.json() == {}  # no partial_success: every span accepted
    completed = await stream.wait_for(of_type("agent_execution_completed", agent_name="Researcher"))
    assert completed["data"]["service_name"] == "research-agents"
    assert completed["trace_id"] == FIXTURE_TRACE_ID
    failed_tool = await stream.wait_for(of_type("error_occurred"))
    assert "search timed out" in failed_tool["data"]["error_message"]

    async with session.get(f"{server.url}/api/traces/{FIXTURE_TRACE_ID.upper()}") as response:
        trace = await response.json()
    assert response.status == 200
    by_id = {s["span_id"]: s for s in trace["spans"]}
    assert trace["root_span_ids"] == ["eee19b7ec3c1b174"]
    assert by_id["eee19b7ec3c1b174"]["kind"] == "agent"
    assert by_id["eee19b7ec3c1b172"]["parent_span_id"] == "eee19b7ec3c1b174"
    assert by_id["eee19b7ec3c1b172"]["kind"] == "tool"
    assert by_id["eee19b7ec3c1b172"]["status"] == "error"
    assert by_id["eee19b7ec3c1b172"]["duration_ms"] == 800.0
    assert trace["running"] is False
    await stream.close()


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
async def test_rejected_spans_are_a_partial_success(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, encoding: str
) -> None:
    document = json.loads(FIXTURE.read_text())
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["traceId"] = "abc"  # not 16 bytes: this span is rejected, the others accepted
    if encoding == "json":
        body, content_type = orjson.dumps(document), "application/json"
    else:
        # The protobuf JSON mapping has base64 ids; the OTLP/JSON fixture has hex ones.
        spans[0]["traceId"] = "AAAA"  # two bytes
        for item in [*spans[1:], *(link for span in spans[1:] for link in span.get("links", []))]:
            for key in ("traceId", "spanId", "parentSpanId"):
                if item.get(key):
                    item[key] = base64.b64encode(bytes.fromhex(item[key])).decode()
        request = json_format.ParseDict(document, ExportTraceServiceRequest(), ignore_unknown_fields=True)
        body, content_type = request.SerializeToString(), "application/x-protobuf"
    async with session.post(f"{server.url}/v1/traces", data=body,
                            headers={"Content-Type": content_type}) as response:
        assert response.status == 200
        payload = await response.read()
    if encoding == "json":
        partial = orjson.loads(payload)["partialSuccess"]
        assert int(partial["rejectedSpans"]) == 1
        message = partial["errorMessage"]
    else:
        parsed = ExportTraceServiceResponse.FromString(payload)
        assert parsed.partial_success.rejected_spans == 1
        message = parsed.partial_success.error_message
    assert "traceId" in message
    async with session.get(f"{server.url}/api/traces/{FIXTURE_TRACE_ID}") as response:
        assert len((await response.json())["spans"]) == 2


# ------------------------------------------------------------------------------ bad requests
def _gzip_bomb() -> bytes:
    # 16 MiB of zeros compress to ~16 KiB: far under the limit compressed, far over it inflated.
    return gzip.compress(b"\0" * (16 * 1024 * 1024), compresslevel=9)


BAD_REQUESTS = [
    # (case, content type, content encoding, body factory, status)
    ("malformed protobuf", "application/x-protobuf", None, lambda: b"\x0a\xff\xff\xff\xff\x0f", 400),
    ("malformed JSON", "application/json", None, lambda: b'{"resourceSpans": [', 400),
    ("JSON that is not OTLP", "application/json", None, lambda: b'{"resourceSpans": 7}', 400),
    ("invalid gzip", "application/json", "gzip", lambda: b"\x1f\x8bnot really gzip", 400),
    ("wrong content type", "text/plain", None, lambda: b"hello", 415),
    ("no content type", None, None, lambda: b"{}", 415),
    ("unknown content coding", "application/json", "br", lambda: b"{}", 415),
    ("oversized", "application/x-protobuf", None, lambda: b"\0" * (SMALL_LIMIT + 1), 413),
    ("gzip bomb", "application/x-protobuf", "gzip", _gzip_bomb, 413),
]


@pytest.mark.parametrize(("case", "content_type", "content_encoding", "body", "status"), BAD_REQUESTS,
                         ids=[case[0] for case in BAD_REQUESTS])
async def test_bad_requests_get_the_right_status_and_an_error_body(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession,
    case: str, content_type: str | None, content_encoding: str | None, body: Any, status: int,
) -> None:
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if content_encoding is not None:
        headers["Content-Encoding"] = content_encoding
    data = body()
    # aiohttp adds application/octet-stream to bytes bodies unless told to skip the header.
    skip = ["Content-Type"] if content_type is None else []
    async with session.post(f"{server.url}/v1/traces", data=data, headers=headers,
                            skip_auto_headers=skip) as response:
        assert response.status == status, (case, await response.read())
        payload = await response.read()
        response_type = response.content_type
    # The OTLP/HTTP error body: a google.rpc.Status in the request's encoding (JSON when unknown).
    if response_type == "application/x-protobuf":
        assert content_type == "application/x-protobuf"
        rpc_status = status_pb2.Status.FromString(payload)
        code, message = rpc_status.code, rpc_status.message
    else:
        assert response_type == "application/json"
        error = orjson.loads(payload)
        code, message = error["code"], error["message"]
    assert code == (8 if status == 413 else 3)  # RESOURCE_EXHAUSTED / INVALID_ARGUMENT
    assert message
    if case == "gzip bomb":
        assert "once decompressed" in message  # stopped while inflating, not by the raw size
    # The server keeps serving.
    async with session.get(f"{server.url}/health") as response:
        assert response.status == 200
        assert (await response.json())["status"] in ("healthy", "degraded")
    assert server.state.last_seq == 0  # nothing of a refused request was published


async def test_decoding_runs_off_the_event_loop(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body being decoded (held here at a gate) does not stop the server from answering others."""
    entered, gate = threading.Event(), threading.Event()
    real_decode = otlp_http.decode_body

    def gated_decode(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert gate.wait(WAIT), "the test never opened the gate"
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(otlp_http, "decode_body", gated_decode)
    post = asyncio.ensure_future(session.post(f"{server.url}/v1/traces", data=FIXTURE.read_bytes(),
                                              headers={"Content-Type": "application/json"}))
    try:
        assert await asyncio.to_thread(entered.wait, WAIT)
        async with session.get(f"{server.url}/health") as response:  # answered while decoding
            assert response.status == 200
    finally:
        gate.set()
    response = await asyncio.wait_for(post, WAIT)
    assert response.status == 200
    response.release()
    async with session.get(f"{server.url}/stats") as stats:
        receiver_counters = (await stats.json())["receiver"]
    assert receiver_counters["otlp_spans_accepted"] == 3
    assert receiver_counters["otlp_requests"] == 1
