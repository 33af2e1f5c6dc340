"""OTLP logs: GenAI events join their span's transcript, exception logs become errors (docs/otlp.md, "Logs").

Against a real server with the stock OTLP/HTTP exporters of the SDK (spans to ``/v1/traces``, logs to
``/v1/logs``), the log records emitted the way ``opentelemetry-instrumentation-openai-v2`` and
``opentelemetry-util-genai`` emit them (``Logger.emit(LogRecord(event_name=..., body=...))`` inside
the model call's span), plus unit tests of the reader and the bounded waiting room.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
from server_support import WAIT, EventStream, of_type, running_server

from otel_dashboard.model.otlp.logs import SPAN_EVENT_NAMES, read_logs
from otel_dashboard.server.app import DashboardWebSocketServer
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.state.log_events import MAX_LOG_EVENTS_PER_SPAN, PendingLogEvents

pytestmark = [
    pytest.mark.timeout(60),
    # The SDK's LoggingHandler is what opentelemetry-instrumentation-logging replaces; same records.
    pytest.mark.filterwarnings("ignore:`LoggingHandler` in `opentelemetry-sdk` is deprecated"),
]

SERVICE = "chat-app"
USER_TEXT = "What's the weather in Paris?"
ANSWER_TEXT = "Rainy, 57F."


@pytest.fixture(name="server")
async def fixture_server() -> AsyncIterator[DashboardWebSocketServer]:
    async with running_server() as server:
        yield server



class Telemetry:
    """A tracer and a logger exporting with the stock OTLP/HTTP exporters, synchronously (Simple
    processors: each span and each log record is one request, in emit order)."""

    def __init__(self, url: str) -> None:
        resource = Resource.create({"service.name": SERVICE})
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(
            SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{url}/v1/logs")))
        self.tracer = self.tracer_provider.get_tracer("test.genai")
        self.logger = self.logger_provider.get_logger("test.genai")

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()


@pytest.fixture(name="telemetry")
def fixture_telemetry(server: DashboardWebSocketServer) -> Iterator[Telemetry]:
    telemetry = Telemetry(server.url)
    yield telemetry
    telemetry.shutdown()


def _openai_v2_events(logger: Any, context: Any = None) -> None:
    """The events opentelemetry-instrumentation-openai-v2 emits for one chat call with content
    capture on (utils.message_to_event / choice_to_event): one per input message, one per choice."""
    system = {"gen_ai.system": "openai"}
    logger.emit(LogRecord(event_name="gen_ai.system.message", attributes=system,
                          body={"content": "You are terse."}, context=context))
    logger.emit(LogRecord(event_name="gen_ai.user.message", attributes=system,
                          body={"content": USER_TEXT}, context=context))
    logger.emit(LogRecord(event_name="gen_ai.assistant.message", attributes=system, context=context,
                          body={"tool_calls": [{"id": "call_1", "type": "function",
                                                "function": {"name": "get_weather",
                                                             "arguments": '{"city": "Paris"}'}}]}))
    logger.emit(LogRecord(event_name="gen_ai.tool.message", attributes=system,
                          body={"content": "rainy, 57F", "id": "call_1"}, context=context))
    logger.emit(LogRecord(event_name="gen_ai.choice", attributes=system, context=context,
                          body={"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": ANSWER_TEXT}}))


def _chat_span(telemetry: Telemetry, emit: Callable[[Any], None] | None) -> tuple[str, str, Any]:
    """One model-call span (as openai-v2 makes it), ``emit(span)`` called inside it."""
    with telemetry.tracer.start_as_current_span(
        "chat gpt-4o", kind=SpanKind.CLIENT,
        attributes={"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
                    "gen_ai.request.model": "gpt-4o"},
    ) as span:
        if emit is not None:
            emit(span)
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"), span


async def _span_detail(session: aiohttp.ClientSession, server: DashboardWebSocketServer, trace_id: str,
                       span_id: str) -> dict[str, Any]:
    async with session.get(f"{server.url}/api/traces/{trace_id}/spans/{span_id}") as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


def _texts(messages: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    return [(m["role"], [p.get("content", p.get("name", p.get("response"))) for p in m["parts"]])
            for m in messages]


async def _stats(session: aiohttp.ClientSession, server: DashboardWebSocketServer) -> dict[str, Any]:
    async with session.get(f"{server.url}/stats") as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


# ------------------------------------------------------------------------------ the transcript
async def test_events_logged_inside_the_span_reach_its_transcript(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, telemetry: Telemetry
) -> None:
    """Log before span: the events are exported while the span runs, wait, and join it at its end."""
    trace_id, span_id, _ = await asyncio.to_thread(
        _chat_span, telemetry, lambda span: _openai_v2_events(telemetry.logger))
    detail = await _span_detail(session, server, trace_id, span_id)
    transcript = detail["transcript"]
    assert transcript["source"] == "genai_events"
    assert _texts(transcript["input"]) == [
        ("system", ["You are terse."]),
        ("user", [USER_TEXT]),
        ("assistant", ["get_weather"]),
        ("tool", ["rainy, 57F"]),
    ]
    assert transcript["input"][2]["parts"][0]["arguments"] == '{"city": "Paris"}'  # as the model gave it
    assert transcript["input"][3]["parts"][0]["id"] == "call_1"
    assert _texts(transcript["output"]) == [("assistant", [ANSWER_TEXT])]
    assert transcript["output"][0]["finish_reason"] == "stop"
    assert [event["name"] for event in detail["events"]] == [
        "gen_ai.system.message", "gen_ai.user.message", "gen_ai.assistant.message", "gen_ai.tool.message",
        "gen_ai.choice"]
    assert detail["events"][1]["attributes"] == {"content": USER_TEXT, "gen_ai.system": "openai"}
    receiver = (await _stats(session, server))["receiver"]
    assert receiver["otlp_log_records_accepted"] == 5
    assert receiver["otlp_log_records_attached"] == 5


async def test_events_logged_after_the_span_ended_join_it(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, telemetry: Telemetry
) -> None:
    """Span before log: openai-v2 emits a streamed answer's ``gen_ai.choice`` with the span's context
    after the span ended; the kept span takes the events at once."""
    trace_id, span_id, span = await asyncio.to_thread(_chat_span, telemetry, None)
    await asyncio.to_thread(_openai_v2_events, telemetry.logger, set_span_in_context(span))
    detail = await _span_detail(session, server, trace_id, span_id)
    assert _texts(detail["transcript"]["input"])[1] == ("user", [USER_TEXT])
    assert _texts(detail["transcript"]["output"]) == [("assistant", [ANSWER_TEXT])]
    async with session.get(f"{server.url}/api/traces/{trace_id}") as response:
        page = await response.json()
    assert page["spans"][0]["has_detail"] is True


async def test_the_details_event_of_util_genai(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, telemetry: Telemetry
) -> None:
    """``gen_ai.client.inference.operation.details`` (opentelemetry-util-genai, latest experimental
    conventions): the messages are structured attributes of the record, no body."""
    def emit(span: Any) -> None:
        attributes = {f"gen_ai.attr.{i}": i for i in range(30)}  # more than an event keeps
        attributes.update({
            "gen_ai.operation.name": "chat",
            "gen_ai.input.messages": ({"role": "user", "parts": ({"type": "text", "content": USER_TEXT},)},),
            "gen_ai.output.messages": ({"role": "assistant", "finish_reason": "stop",
                                        "parts": ({"type": "text", "content": ANSWER_TEXT},)},),
            "gen_ai.system_instructions": ({"type": "text", "content": "Be brief."},),
        })
        telemetry.logger.emit(LogRecord(event_name="gen_ai.client.inference.operation.details",
                                        attributes=attributes))

    trace_id, span_id, _ = await asyncio.to_thread(_chat_span, telemetry, emit)
    transcript = (await _span_detail(session, server, trace_id, span_id))["transcript"]
    assert transcript["source"] == "genai_events"
    assert transcript["system"] == "Be brief."
    assert _texts(transcript["input"]) == [("user", [USER_TEXT])]
    assert _texts(transcript["output"]) == [("assistant", [ANSWER_TEXT])]


async def test_a_json_body_attaches_and_bad_ids_are_rejected_one_by_one(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, telemetry: Telemetry
) -> None:
    trace_id, span_id, _ = await asyncio.to_thread(_chat_span, telemetry, None)

    def record(event_name: str, body: dict[str, Any], trace: str, span: str) -> dict[str, Any]:
        return {"timeUnixNano": "1700000000000000000", "eventName": event_name, "traceId": trace,
                "spanId": span, "body": {"kvlistValue": {"values": [
                    {"key": key, "value": {"stringValue": value}} for key, value in body.items()]}}}

    document = {"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": SERVICE}}]},
        "scopeLogs": [{"logRecords": [
            record("gen_ai.user.message", {"content": USER_TEXT}, trace_id, span_id),
            record("gen_ai.user.message", {"content": "lost"}, trace_id[:30], span_id),
            {"body": {"stringValue": "plain log line"}},
        ]}],
    }]}
    async with session.post(f"{server.url}/v1/logs", json=document) as response:
        assert response.status == 200
        answer = await response.json()
    assert answer["partialSuccess"]["rejectedLogRecords"] == "1"
    assert "traceId must be empty or 16 bytes" in answer["partialSuccess"]["errorMessage"]
    transcript = (await _span_detail(session, server, trace_id, span_id))["transcript"]
    assert _texts(transcript["input"]) == [("user", [USER_TEXT])]
    receiver = (await _stats(session, server))["receiver"]
    assert receiver["otlp_log_records_accepted"] == 2
    assert receiver["otlp_log_records_attached"] == 1
    assert receiver["otlp_log_records_rejected"] == 1


async def test_gzip_compressed_logs(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, telemetry: Telemetry
) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression

    trace_id, span_id, span = await asyncio.to_thread(_chat_span, telemetry, None)
    provider = LoggerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(
        OTLPLogExporter(endpoint=f"{server.url}/v1/logs", compression=Compression.Gzip)))
    await asyncio.to_thread(_openai_v2_events, provider.get_logger("gz"), set_span_in_context(span))
    provider.shutdown()
    transcript = (await _span_detail(session, server, trace_id, span_id))["transcript"]
    assert _texts(transcript["output"]) == [("assistant", [ANSWER_TEXT])]


async def test_each_log_record_is_charged_to_the_ingest_rate(session: aiohttp.ClientSession) -> None:
    from otel_dashboard.server.security import SecurityConfig

    config = SecurityConfig(ingest_events_per_second=1, ingest_burst_events=3)
    async with running_server(security=config) as server:
        body = _request([LogRecord(body=f"line {i}") for i in range(5)]).SerializeToString()
        statuses = []
        for _ in range(2):  # the first is admitted and charged 5 (the bucket of 3 goes into debt)
            async with session.post(f"{server.url}/v1/logs", data=body,
                                    headers={"Content-Type": "application/x-protobuf"}) as response:
                statuses.append(response.status)
                retry_after = response.headers.get("Retry-After")
        assert statuses == [200, 429] and retry_after  # the bucket in debt: refused whole
        assert (await _stats(session, server))["receiver"]["otlp_log_records_accepted"] == 5


async def test_unrelated_logs_are_counted_only(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, telemetry: Telemetry
) -> None:
    def emit(span: Any) -> None:
        telemetry.logger.emit(LogRecord(body="starting the call", severity_number=SeverityNumber.INFO))
        telemetry.logger.emit(LogRecord(event_name="app.custom", body={"content": "not a GenAI event"}))

    trace_id, span_id, _ = await asyncio.to_thread(_chat_span, telemetry, emit)
    # Outside any span: a GenAI event has no span to join.
    outside = LogRecord(event_name="gen_ai.user.message", body={"content": "x"})
    await asyncio.to_thread(telemetry.logger.emit, outside)
    detail = await _span_detail(session, server, trace_id, span_id)
    assert detail["events"] == [] and detail["transcript"] is None
    receiver = (await _stats(session, server))["receiver"]
    assert receiver["otlp_log_records_accepted"] == 3
    assert receiver.get("otlp_log_records_attached", 0) == 0
    assert (await _stats(session, server))["traces"]["log_events_waiting_spans"] == 0


# ------------------------------------------------------------------------------ exception logs
def _fail_in(telemetry: Telemetry, *, span_fails: bool, handler: logging.Handler) -> tuple[str, str]:
    """A tool call whose exception is logged through Python's logging (the SDK's LoggingHandler)
    inside the span; the span then fails with it, or recovers."""
    log = logging.getLogger("test.genai.app")
    log.addHandler(handler)
    log.propagate = False
    try:
        with telemetry.tracer.start_as_current_span(
            "execute_tool get_weather", attributes={"gen_ai.operation.name": "execute_tool",
                                                    "gen_ai.tool.name": "get_weather"},
            record_exception=False, set_status_on_exception=False,
        ) as span:
            try:
                raise TimeoutError("weather service timed out")
            except TimeoutError as exc:
                log.exception("tool failed")
                if span_fails:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, str(exc)))
    finally:
        log.removeHandler(handler)
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


async def _marker(telemetry: Telemetry, stream: EventStream, name: str) -> list[dict[str, Any]]:
    """The errors before a marker error (an exception log without a span, published at once): every
    error the earlier requests made has been published before it."""
    await asyncio.to_thread(telemetry.logger.emit, LogRecord(
        severity_number=SeverityNumber.ERROR, attributes={"exception.type": name, "exception.message": name}))
    await stream.wait_for(of_type("error_occurred", error_type=name))
    errors = [event for event in stream.events if event["event_type"] == "error_occurred"]
    return errors[:-1]


@pytest.mark.parametrize("span_first", [False, True])
async def test_an_exception_log_in_a_span_that_ended_ok_gives_one_error(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, telemetry: Telemetry, span_first: bool
) -> None:
    stream = await EventStream.connect(session, server)
    handler = LoggingHandler(logger_provider=telemetry.logger_provider)
    if span_first:  # the log waits in an exporter that is not flushed until after the span
        buffered = InMemoryLogRecordExporter()
        provider = LoggerProvider(resource=Resource.create({"service.name": SERVICE}))
        provider.add_log_record_processor(SimpleLogRecordProcessor(buffered))
        handler = LoggingHandler(logger_provider=provider)
    trace_id, span_id = await asyncio.to_thread(_fail_in, telemetry, span_fails=False, handler=handler)
    if span_first:
        request = encode_logs(buffered.get_finished_logs())
        async with session.post(f"{server.url}/v1/logs", data=request.SerializeToString(),
                                headers={"Content-Type": "application/x-protobuf"}) as response:
            assert response.status == 200
    errors = await _marker(telemetry, stream, "Marker")
    assert len(errors) == 1, errors
    error = errors[0]
    assert error["data"]["error_type"] == "TimeoutError"
    assert error["data"]["error_message"] == "weather service timed out"
    assert error["data"]["span_name"] == "execute_tool get_weather"
    assert error["data"]["service_name"] == SERVICE
    assert error["data"]["from_log"] is True
    assert (error["trace_id"], error["span_id"]) == (trace_id, span_id)
    detail = await _span_detail(session, server, trace_id, span_id)
    assert [e["type"] for e in detail["exceptions"]] == ["TimeoutError"]
    await stream.close()


async def test_an_exception_log_in_a_failed_span_gives_no_second_error(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, telemetry: Telemetry
) -> None:
    stream = await EventStream.connect(session, server)
    handler = LoggingHandler(logger_provider=telemetry.logger_provider)
    _, span_id = await asyncio.to_thread(_fail_in, telemetry, span_fails=True, handler=handler)
    errors = await _marker(telemetry, stream, "Marker")
    assert len(errors) == 1, errors
    assert errors[0]["data"].get("from_log") is None  # the span's own error
    assert errors[0]["span_id"] == span_id
    await stream.close()


def _caught_and_logged(telemetry: Telemetry, handler: logging.Handler) -> str:
    """A tool call fails (its span records the exception and ends ERROR); the agent around it catches
    the exception, logs it and goes on (its span ends OK)."""
    log = logging.getLogger("test.genai.agent")
    log.addHandler(handler)
    log.propagate = False
    try:
        with telemetry.tracer.start_as_current_span(
            "invoke_agent Forecaster", attributes={"gen_ai.operation.name": "invoke_agent",
                                                   "gen_ai.agent.name": "Forecaster"},
        ):
            try:
                with telemetry.tracer.start_as_current_span(
                    "execute_tool get_weather", attributes={"gen_ai.operation.name": "execute_tool",
                                                            "gen_ai.tool.name": "get_weather"}) as tool:
                    raise TimeoutError("weather service timed out")
            except TimeoutError:
                log.exception("the tool failed; answering without the weather")
    finally:
        log.removeHandler(handler)
    return format(tool.get_span_context().span_id, "016x")


async def test_a_failure_caught_and_logged_above_its_span_gives_no_second_error(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, telemetry: Telemetry
) -> None:
    """One failure, one error: the agent span's exception log is the tool span's failure."""
    stream = await EventStream.connect(session, server)
    handler = LoggingHandler(logger_provider=telemetry.logger_provider)
    tool_span_id = await asyncio.to_thread(_caught_and_logged, telemetry, handler)
    errors = await _marker(telemetry, stream, "Marker")
    assert [(e["span_id"], e["data"]["error_type"], e["data"].get("from_log")) for e in errors] == [
        (tool_span_id, "TimeoutError", None)]
    await stream.close()


async def test_an_exception_log_without_a_span_is_an_error_at_once(
    server: DashboardWebSocketServer, session: aiohttp.ClientSession, telemetry: Telemetry
) -> None:
    stream = await EventStream.connect(session, server)
    await asyncio.to_thread(telemetry.logger.emit, LogRecord(
        event_name="gen_ai.client.operation.exception", severity_number=SeverityNumber.WARN,
        attributes={"exception.type": "openai.RateLimitError", "exception.message": "429 Too Many Requests"}))
    error = await stream.wait_for(of_type("error_occurred", error_type="openai.RateLimitError"))
    assert error["data"]["error_message"] == "429 Too Many Requests"
    assert error["data"]["source"] == SERVICE
    assert error["trace_id"] is None
    await stream.close()


# ------------------------------------------------------------------------------ state and bounds
def _request(records: list[LogRecord], service: str = SERVICE) -> ExportLogsServiceRequest:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("test")
    for record in records:
        logger.emit(record)
    provider.shutdown()
    return encode_logs(exporter.get_finished_logs())


def test_a_span_keeps_at_most_128_log_events_and_counts_the_rest() -> None:
    state = DashboardState()
    trace_id, span_id = 0x1234, 0x99
    n = MAX_LOG_EVENTS_PER_SPAN + 72
    read = read_logs(_request([LogRecord(event_name="gen_ai.user.message", trace_id=trace_id, span_id=span_id,
                                         body={"content": f"m{i}"}) for i in range(n)]))
    assert len(read.span_events) == n
    state.record_log_events(read)
    assert state.traces.stats()["log_events_waiting_spans"] == 1
    state.record_spans([_json_span(trace_id, span_id)])
    _, record = state.traces.get_span(format(trace_id, "032x"), format(span_id, "016x"))
    assert record is not None
    assert len(record["events"]) == MAX_LOG_EVENTS_PER_SPAN
    assert record["dropped_events"] == 72
    stats = state.traces.stats()
    assert (stats["log_events_attached"], stats["log_events_dropped"], stats["log_events_waiting_spans"]) == (
        MAX_LOG_EVENTS_PER_SPAN, 72, 0)


def test_a_long_message_is_cut_like_a_span_events() -> None:
    read = read_logs(_request([LogRecord(event_name="gen_ai.user.message", trace_id=1, span_id=2,
                                         body={"content": "x" * 100_000, "role": "r" * 1000})]))
    attributes = read.span_events[0].event["attributes"]
    assert len(attributes["content"]) == 32 * 1024
    assert len(attributes["role"]) == 256


def test_the_genai_event_names_are_the_conventions() -> None:
    """The names of semantic-conventions model/gen-ai (events-deprecated.yaml since the move to the
    GenAI repository) that carry messages, and the evaluation result."""
    assert {
        "gen_ai.client.inference.operation.details", "gen_ai.system.message", "gen_ai.user.message",
        "gen_ai.assistant.message", "gen_ai.tool.message", "gen_ai.choice", "gen_ai.evaluation.result",
    } <= SPAN_EVENT_NAMES


def test_an_event_name_attribute_counts_as_the_event_name() -> None:
    """SDKs before the LogRecord ``event_name`` field put it in the ``event.name`` attribute."""
    read = read_logs(_request([LogRecord(trace_id=1, span_id=2, attributes={"event.name": "gen_ai.choice"},
                                         body={"index": 0, "finish_reason": "stop"})]))
    assert [item.event["name"] for item in read.span_events] == ["gen_ai.choice"]


def test_a_span_that_never_comes_gives_its_exception_log_an_error_when_given_up() -> None:
    state = DashboardState()
    now = [0.0]
    state.traces._pending = PendingLogEvents(max_age_seconds=60, clock=lambda: now[0])  # time, not waited
    read = read_logs(_request([LogRecord(trace_id=7, span_id=8, attributes={"exception.type": "KeyError"})]))
    assert state.record_log_events(read) == []
    now[0] = 61.0
    state.emit_metrics_if_changed()
    assert state.events_by_type().get("error_occurred") == 1
    assert state.traces.stats()["log_events_dropped"] == 1  # its exception event went with it


def test_the_waiting_room_evicts_the_oldest_span_and_gives_up_its_failures() -> None:
    pending = PendingLogEvents(max_spans=2)
    event = {"name": "gen_ai.user.message", "time_unix_nano": 1, "attributes": {"content": "x"}}
    assert pending.add((1, 1), [event], ["first"]) == []
    assert pending.add((1, 2), [event]) == []
    assert pending.add((1, 3), [event]) == ["first"]
    assert (1, 1) not in pending and len(pending) == 2 and pending.evicted_events == 1


def test_the_waiting_room_keeps_its_byte_budget() -> None:
    pending = PendingLogEvents(max_bytes=4096)
    big = {"name": "gen_ai.user.message", "time_unix_nano": 1, "attributes": {"content": "x" * 3000}}
    assert pending.add((1, 1), [big], ["first"]) == []
    assert pending.add((1, 2), [big]) == ["first"]  # over 4 KiB: the oldest span goes
    assert pending.bytes <= 4096 and len(pending) == 1
    entry = pending.take((1, 2))
    assert entry is not None and entry.events == [big] and pending.bytes == 0


def test_in_process_spans_take_the_events_that_waited_for_them() -> None:
    """The span processor's compact records (a running one, then the finished one) merge waiting events."""
    from otel_dashboard.pipeline.processor import DashboardSpanProcessor

    state = DashboardState()
    provider = TracerProvider()
    processor = DashboardSpanProcessor(state=state)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("chat gpt-4o", attributes={"gen_ai.operation.name": "chat"}) as span:
        ctx = span.get_span_context()
        state.record_log_events(read_logs(_request([LogRecord(
            event_name="gen_ai.user.message", trace_id=ctx.trace_id, span_id=ctx.span_id,
            body={"content": USER_TEXT})])))
    assert processor.force_flush(int(WAIT * 1000))
    _, record = state.traces.get_span(format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))
    assert record is not None
    assert [event["attributes"]["content"] for event in record["events"]] == [USER_TEXT]
    provider.shutdown()


def _json_span(trace_id: int, span_id: int, **extra: Any) -> dict[str, Any]:
    return {"trace_id": format(trace_id, "032x"), "span_id": format(span_id, "016x"), "name": "chat",
            "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:00:01Z", "status": "ok",
            "attributes": {}, "events": [], **extra}
