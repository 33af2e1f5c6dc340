"""``GET /api/traces/{trace_id}/spans/{span_id}`` (one span's details) and the trace page's new fields.

Pins, on a real server on loopback: the transcript, tool input/output, model call and exceptions of
each vocabulary from the RECORDED fixtures (tests/fixtures/spans) sent to ``POST /v1/traces``; the
same through the in-process processor (priced model call, bounds of the content and raw attributes,
counted in the store's memory budget) and through a remote processor (``POST /api/events`` span
records); 400/404 JSON errors. The bounds themselves (module docstring of
otel_dashboard/model/span_attributes.py) are checked on their functions directly.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from server_support import WAIT, running_server

from otel_dashboard.model.span_attributes import (
    MAX_CONTENT_VALUE_CHARS,
    MAX_DETAIL_ATTRIBUTES,
    MAX_DETAIL_CHARS,
    MAX_RAW_VALUE_CHARS,
    detail_attributes,
)
from otel_dashboard.model.span_events import json_events
from otel_dashboard.pipeline.processor import DashboardSpanProcessor
from otel_dashboard.server.app import DashboardWebSocketServer
from otel_dashboard.state.dashboard import DashboardState

pytestmark = pytest.mark.timeout(60)

SPANS = Path(__file__).parent / "fixtures" / "spans"
_FIXTURES = ("pydantic_ai/ok", "pydantic_ai/tool_error", "smolagents/ok", "traceloop/ok",
             "traceloop/ok_stream",
             "traceloop/tool_error", "openai_agents/ok", "mcp/ok")
_QUESTION = "What is the weather in Paris?"


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with session.get(url) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


async def _trace(
    session: aiohttp.ClientSession, server: DashboardWebSocketServer, trace_id: str
) -> dict[str, Any]:
    """The trace's page, once the server keeps it (received spans are recorded off the loop)."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        status, body = await _get(session, f"{server.url}/api/traces/{trace_id}")
        if status == 200 or asyncio.get_running_loop().time() > deadline:
            assert status == 200, body
            return body
        await asyncio.sleep(0.02)


async def _details(session: aiohttp.ClientSession, server: DashboardWebSocketServer, trace: dict[str, Any],
                   name: str, index: int = 0) -> dict[str, Any]:
    span = [s for s in trace["spans"] if s["name"] == name][index]
    status, body = await _get(session, f"{server.url}/api/traces/{trace['trace_id']}/spans/{span['span_id']}")
    assert status == 200, body
    assert body["trace_id"] == trace["trace_id"] and body["span"]["span_id"] == span["span_id"]
    assert "detail_attributes" not in body["span"] and "detail_attributes" not in span
    return body


def _texts(message: dict[str, Any]) -> str:
    return " ".join(str(part.get("content", "")) for part in message["parts"])


async def test_each_vocabulary_from_the_recorded_fixtures(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        traces = {}
        for fixture in _FIXTURES:
            path = SPANS / f"{fixture}.json"
            async with session.post(f"{server.url}/v1/traces", data=path.read_bytes(),
                                    headers={"Content-Type": "application/json"}) as response:
                assert response.status == 200, fixture
            doc = json.loads(path.read_text())
            traces[fixture] = await _trace(
                session, server, doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"])

        # GenAI semantic conventions (pydantic-ai): messages, system instructions, tools, the call.
        trace = traces["pydantic_ai/ok"]
        assert {key: trace["summary"][key] for key in (
            "root_name", "status", "input_tokens", "output_tokens", "span_count", "error_count",
            "model_calls", "tool_calls", "service_name")} == {
            "root_name": "invoke_agent WeatherAgent", "status": "ok", "input_tokens": 264,
            "output_tokens": 41,
            "span_count": 4, "error_count": 0, "model_calls": 2, "tool_calls": 1,
            "service_name": "recorder-pydantic_ai"}
        assert trace["summary"]["cost_status"] == "no_price"  # the fake model has no price
        assert trace["summary"]["root_span_id"] == trace["root_span_ids"][0]
        assert trace["summary"]["duration_ms"] > 0 and trace["summary"]["started_at"].endswith("Z")
        chat = next(s for s in trace["spans"] if s["kind"] == "model")
        fields = ("model", "input_tokens", "output_tokens", "cost_usd", "has_detail")
        assert [chat[key] for key in fields] == ["fake-gpt", 101, 17, None, True]
        agent = next(s for s in trace["spans"] if s["kind"] == "agent")
        assert (agent["model"], agent["input_tokens"], agent["cost_usd"]) == (None, None, None)
        details = await _details(session, server, trace, "chat fake-gpt")
        call = details["model_call"]
        assert {key: call[key] for key in ("operation", "model", "request_model", "provider", "input_tokens",
                                           "output_tokens", "cost_usd", "cost_status", "finish_reasons",
                                           "time_to_first_token_ms")} == {
            "operation": "chat", "model": "fake-gpt", "request_model": "fake-gpt", "provider": "openai",
            "input_tokens": 101, "output_tokens": 17, "cost_usd": None, "cost_status": "no_price",
            "finish_reasons": ["tool_call"], "time_to_first_token_ms": None}
        assert call["duration_ms"] == details["span"]["duration_ms"] > 0
        transcript = details["transcript"]
        assert transcript["source"] == "genai" and "weather questions" in transcript["system"]
        assert [m["role"] for m in transcript["input"]] == ["user"]
        assert _texts(transcript["input"][0]) == _QUESTION
        (answer,) = transcript["output"]
        assert answer["parts"][0]["type"] == "tool_call" and answer["parts"][0]["name"] == "get_weather"
        assert len(transcript["tools"]) == 1 and details["tool_io"] is None and details["exceptions"] == []
        assert {"gen_ai.input.messages", "gen_ai.request.model"} <= set(details["attributes"])
        assert details["dropped_attributes"] == 0
        tool = await _details(session, server, trace, "execute_tool get_weather")
        assert tool["tool_io"]["source"] == "genai" and tool["tool_io"]["arguments"] == {"city": "Paris"}
        assert "sunny" in tool["tool_io"]["result"]
        assert tool["model_call"] is None and tool["transcript"] is None

        # OpenInference (smolagents, OpenAI Agents): indexed messages, tool input/output values.
        for fixture, model_span, tool_span in (("smolagents/ok", "OpenAIModel.generate", "SimpleTool"),
                                               ("openai_agents/ok", "generation", "get_weather")):
            trace = traces[fixture]
            details = await _details(session, server, trace, model_span, 1)
            assert details["transcript"]["source"] == "openinference", fixture
            assert any(_QUESTION in _texts(m) for m in details["transcript"]["input"]), fixture
            assert details["model_call"]["input_tokens"] == 163, fixture
            tool = await _details(session, server, trace, tool_span)
            assert tool["tool_io"]["source"] == "openinference", fixture
            assert tool["tool_io"]["arguments"] == {"city": "Paris"}, fixture
            assert (trace["summary"]["input_tokens"], trace["summary"]["output_tokens"]) == (264, 41), fixture

        # OpenLLMetry (traceloop): the tool's entity input/output; streaming gives the first token.
        trace = traces["traceloop/ok"]
        tool = await _details(session, server, trace, "get_weather.tool")
        assert tool["tool_io"]["source"] == "openllmetry"
        assert tool["tool_io"]["arguments"] == {"city": "Paris"}
        details = await _details(session, server, trace, "openai.chat")
        assert details["transcript"]["input"][-1]["role"] == "user"
        assert details["model_call"]["time_to_first_token_ms"] is None  # not streamed
        stream = await _details(session, server, traces["traceloop/ok_stream"], "openai.chat")
        ttft = stream["model_call"]["time_to_first_token_ms"]
        assert 0 < ttft < stream["model_call"]["duration_ms"]
        assert stream["events"][0]["name"] == "gen_ai.content.completion.chunk"

        # MCP (pydantic-ai over an MCP server): the execute_tool span's arguments and result.
        tool = await _details(session, server, traces["mcp/ok"], "execute_tool get_weather")
        assert tool["tool_io"]["arguments"] == {"city": "Paris"}

        # Exceptions from span events, with their stack traces.
        for fixture, name in (("traceloop/tool_error", "get_weather.tool"),
                              ("pydantic_ai/tool_error", "execute_tool get_weather")):
            tool = await _details(session, server, traces[fixture], name)
            (exception,) = tool["exceptions"]
            assert exception["type"] == "__main__.ToolFailure", fixture
            assert exception["message"] == "weather service unavailable for Paris", fixture
            assert exception["stacktrace"].startswith("Traceback (most recent call last):"), fixture
            assert isinstance(exception["escaped"], bool) and exception["time"].endswith("Z"), fixture
            assert tool["span"]["has_detail"] is True and tool["span"]["status"] == "error", fixture
        assert traces["traceloop/tool_error"]["summary"]["status"] == "error"
        assert traces["traceloop/tool_error"]["summary"]["error_count"] == 3

        # Errors: JSON, naming the id.
        kept = traces["traceloop/ok"]["trace_id"]
        base = f"{server.url}/api/traces"
        cases = {
            f"{base}/{'ab' * 16}/spans/{'cd' * 8}": (404, "trace_id"),
            f"{base}/{kept}/spans/{'cd' * 8}": (404, "span_id"),
            f"{base}/xyz/spans/{'cd' * 8}": (400, "trace_id"),
            f"{base}/{'0' * 32}/spans/{'cd' * 8}": (400, "trace_id"),
            f"{base}/{kept}/spans/{'0' * 16}": (400, "span_id"),
            f"{base}/{kept}/spans/{'cd' * 7}zz": (400, "span_id"),
            f"{base}/{kept}/spans/{'cd' * 9}": (400, "span_id"),
        }
        for url, (status, parameter) in cases.items():
            got, body = await _get(session, url)
            assert (got, body["parameter"]) == (status, parameter), url
            assert isinstance(body["error"], str)


class _FixedTraceIds(RandomIdGenerator):
    def __init__(self, trace_id: int) -> None:
        self._trace_id = trace_id

    def generate_trace_id(self) -> int:
        return self._trace_id


def _model_span_attributes() -> dict[str, Any]:
    messages = [{"role": "user", "parts": [{"type": "text", "content": "Summarize: " + "y" * 100_000}]}]
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o",
        "gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 200,
        "gen_ai.response.time_to_first_chunk": 0.25, "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": "Done."}]}]),
        "gen_ai.input.messages": json.dumps(messages),
        "app.note": "z" * 5000,
        "app.tags": ("a", "b"),
    }
    attrs.update({f"app.extra.{n:03}": n for n in range(200)})
    return attrs


async def test_in_process_and_remote_processors(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        for remote in (False, True):
            trace_number = 0x77 + remote
            processor = (DashboardSpanProcessor(endpoint=server.url) if remote
                         else DashboardSpanProcessor(state=state))
            # The SDK's own limit (128 attributes) is raised: the record's bounds are under test.
            provider = TracerProvider(id_generator=_FixedTraceIds(trace_number),
                                      span_limits=SpanLimits(max_span_attributes=1000))
            provider.add_span_processor(processor)
            tracer = provider.get_tracer("test")
            before = state.traces.stats()["bytes"]
            with tracer.start_as_current_span("invoke_agent Summarizer", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Summarizer"}):
                with tracer.start_as_current_span("chat gpt-4o", attributes=_model_span_attributes()):
                    pass
                with tracer.start_as_current_span("execute_tool lookup", attributes={
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup",
                    "gen_ai.tool.call.arguments": '{"q": "heat pumps"}', "gen_ai.tool.call.result": "found 3",
                }) as span:
                    span.record_exception(LookupError("the index is gone"))
            assert await asyncio.to_thread(processor.force_flush, 5000)
            trace = await _trace(session, server, format(trace_number, "032x"))
            deadline = asyncio.get_running_loop().time() + WAIT
            while trace["span_count"] < 3 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)  # the remote records may come in more than one batch
                trace = await _trace(session, server, format(trace_number, "032x"))
            provider.shutdown()
            where = "remote" if remote else "in process"

            summary = trace["summary"]
            assert summary["root_name"] == "invoke_agent Summarizer" and summary["status"] == "ok", where
            assert (summary["input_tokens"], summary["output_tokens"]) == (1000, 200), where
            assert summary["cost_status"] == "priced" and summary["cost_usd"] > 0, where
            assert (summary["model_calls"], summary["tool_calls"], summary["span_count"]) == (1, 1, 3), where
            chat = next(s for s in trace["spans"] if s["kind"] == "model")
            assert chat["cost_usd"] == summary["cost_usd"] and chat["model"] == "gpt-4o", where
            assert "app.note" not in chat["attributes"], where  # the page keeps only selected attributes

            details = await _details(session, server, trace, "chat gpt-4o")
            call = details["model_call"]
            assert call["cost_status"] == "priced" and call["cost_usd"] == chat["cost_usd"], where
            assert call["time_to_first_token_ms"] == 250.0 and call["finish_reasons"] == ["stop"], where
            attrs = details["attributes"]
            # Content attributes first and longer; raw ones cut shorter; the rest over the span's
            # budget of attributes dropped and counted.
            assert len(attrs["gen_ai.input.messages"]) == MAX_CONTENT_VALUE_CHARS, where
            assert attrs["gen_ai.input.messages"].endswith("\u2026"), where
            assert len(attrs["app.note"]) == MAX_RAW_VALUE_CHARS and attrs["app.tags"] == ["a", "b"], where
            assert attrs["gen_ai.output.messages"].startswith("[{"), where
            others = len(_model_span_attributes()) - len(chat["attributes"])
            assert len(attrs) - len(chat["attributes"]) == MAX_DETAIL_ATTRIBUTES, where
            assert details["dropped_attributes"] == others - MAX_DETAIL_ATTRIBUTES, where
            assert "app.extra.000" in attrs and "app.extra.199" not in attrs, where
            # Cut JSON is no longer JSON: the transcript keeps its text; the answer is whole.
            assert details["transcript"]["output"][0]["parts"][0]["content"] == "Done.", where
            assert details["transcript"]["input"][0]["parts"][0]["type"] == "other", where

            tool = await _details(session, server, trace, "execute_tool lookup")
            assert tool["tool_io"]["arguments"] == {"q": "heat pumps"}, where
            assert tool["tool_io"]["result"] == "found 3", where
            (exception,) = tool["exceptions"]
            assert (exception["type"], exception["message"]) == ("LookupError", "the index is gone"), where
            assert tool["span"]["has_detail"] and details["span"]["has_detail"], where

            # Counted in the trace store's memory budget.
            grown = state.traces.stats()["bytes"] - before
            assert grown > MAX_CONTENT_VALUE_CHARS + MAX_RAW_VALUE_CHARS, where


def test_the_bounds_of_detail_attributes() -> None:
    big = "c" * (MAX_CONTENT_VALUE_CHARS * 2)
    attrs = {"app.a": "r" * 5000, "gen_ai.input.messages": big, "llm.input_messages.0.message.content": big,
             "gen_ai.request.model": "m", "app.list": list(range(40)), "app.obj": {"k": 1}}
    keys, values, dropped = detail_attributes(attrs, {"gen_ai.request.model"})
    kept = dict(zip(keys, values, strict=True))
    assert keys[:2] == ["gen_ai.input.messages", "llm.input_messages.0.message.content"]  # content first
    assert len(kept["gen_ai.input.messages"]) == MAX_CONTENT_VALUE_CHARS
    assert len(kept["app.a"]) == MAX_RAW_VALUE_CHARS and kept["app.a"].endswith("\u2026")
    assert kept["app.list"] == list(range(16)) and kept["app.obj"] == '{"k":1}'
    assert "gen_ai.request.model" not in kept and dropped == 0

    # The span's budget: later content is cut to what is left, then attributes are dropped.
    many = {f"gen_ai.prompt.{n}.content": big for n in range(10)}
    keys, values, dropped = detail_attributes(many, (), tuple)
    total = sum(len(k) + len(v) for k, v in zip(keys, values, strict=True))
    assert total <= MAX_DETAIL_CHARS and dropped == 10 - len(keys) and dropped > 0

    # Message events keep their content longer, within one budget per span.
    events, _ = json_events([{"name": "gen_ai.user.message", "attributes": {"content": big, "other": big}}])
    assert len(events[0]["attributes"]["content"]) == MAX_CONTENT_VALUE_CHARS
    assert len(events[0]["attributes"]["other"]) == 256
