"""What the dashboard makes of real agent stacks: the recorded spans of tests/fixtures/spans replayed
through the mapping and through ``POST /v1/traces`` on a real server.

Each row is one recorded run (tests/fixtures/spans/README.md says what the stack sent); the expected
figures are what the fake model server answered (101/17 then 163/24 tokens) and what the stack did
with the tool's or the model's failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from server_support import running_server

from otel_dashboard.model.otlp import decode_body, events_from_otlp_spans, spans_from_request
from otel_dashboard.model.span_mapper import SpanMapper
from otel_dashboard.server.app import DashboardWebSocketServer

SPANS_DIR = Path(__file__).parent / "fixtures" / "spans"
TASK = "What is the weather in Paris?"
BOTH_CALLS = {"input": 264, "output": 41, "total": 305}
FIRST_CALL = {"input": 101, "output": 17, "total": 118}


@dataclass
class RunRow:
    agent: str
    success: bool
    model_calls: int
    tools: dict[str, tuple[int, int]]  # name -> (calls, failures)
    tokens: dict[str, int] | None  # None: no tokens at all
    task: str = TASK
    parent: str | None = None  # the agent name of the parent run
    error_type: str | None = None


@dataclass
class Case:
    runs: list[RunRow]
    errors: list[str] = field(default_factory=list)  # error_type of each error_occurred, in order


WEATHER = {"get_weather": (1, 0)}
WEATHER_FAILED = {"get_weather": (1, 1)}
TOOL_FAILURE = "__main__.ToolFailure"
RUNAWAY_TOOLS = {"get_weather": (8, 0)}
RUNAWAY_TOKENS = {"input": 8 * 101 + 163, "output": 8 * 17 + 24, "total": 8 * 118 + 187}
LOOP = "LoopSuspected"

CASES: dict[str, Case] = {
    # GenAI semconv (pydantic-ai): tokens on the chat spans only, the run's sums apart.
    "pydantic_ai/ok": Case([RunRow("WeatherAgent", True, 2, WEATHER, BOTH_CALLS)]),
    "pydantic_ai/tool_error": Case(
        [RunRow("WeatherAgent", False, 1, WEATHER_FAILED, FIRST_CALL, error_type=TOOL_FAILURE)],
        [TOOL_FAILURE],
    ),
    "pydantic_ai/model_error": Case(
        [RunRow("WeatherAgent", False, 1, {}, None, task="",
                error_type="pydantic_ai.exceptions.ModelServerError")],
        ["pydantic_ai.exceptions.ModelServerError"],
    ),
    # OpenInference (smolagents): the agent's name only in the span name; the run's sums on the
    # AGENT span under the model calls' keys (counted once).
    "smolagents/ok": Case([RunRow("WeatherAgent", True, 2, {**WEATHER, "final_answer": (1, 0)}, BOTH_CALLS)]),
    "smolagents/tool_error": Case(
        [RunRow("WeatherAgent", True, 2, {**WEATHER_FAILED, "final_answer": (1, 0)}, BOTH_CALLS)],
        [TOOL_FAILURE],
    ),
    # The AGENT span is never ended when the run raises: no run, one error.
    "smolagents/model_error": Case([], ["openai.InternalServerError"]),
    # OpenLLMetry (traceloop-sdk): a workflow around the agent; the exception on every span it crosses.
    "traceloop/ok": Case([
        RunRow("WeatherAgent", True, 2, WEATHER, BOTH_CALLS, parent="weather_workflow"),
        RunRow("weather_workflow", True, 0, {}, None, task=""),
    ]),
    "traceloop/ok_stream": Case([
        RunRow("WeatherAgent", True, 2, WEATHER, BOTH_CALLS, parent="weather_workflow"),
        RunRow("weather_workflow", True, 0, {}, None, task=""),
    ]),
    "traceloop/tool_error": Case(
        [
            RunRow("WeatherAgent", False, 1, WEATHER_FAILED, FIRST_CALL, parent="weather_workflow",
                   error_type=TOOL_FAILURE),
            RunRow("weather_workflow", False, 0, {}, None, task="", error_type=TOOL_FAILURE),
        ],
        [TOOL_FAILURE],
    ),
    "traceloop/model_error": Case(
        [
            RunRow("WeatherAgent", False, 1, {}, None, parent="weather_workflow",
                   error_type="openai.InternalServerError"),
            RunRow("weather_workflow", False, 0, {}, None, task="", error_type="openai.InternalServerError"),
        ],
        ["openai.InternalServerError"],
    ),
    # The runaways (loop detection's fixture, tests/test_loops.py): the model asks for the same tool
    # call 8 times (101/17 tokens each), then answers (163/24); one LoopSuspected at the 5th call.
    "pydantic_ai/runaway": Case([RunRow("WeatherAgent", True, 9, RUNAWAY_TOOLS, RUNAWAY_TOKENS)], [LOOP]),
    "smolagents/runaway": Case(
        [RunRow("WeatherAgent", True, 9, {**RUNAWAY_TOOLS, "final_answer": (1, 0)}, RUNAWAY_TOKENS)], [LOOP]),
    "traceloop/runaway": Case([
        RunRow("WeatherAgent", True, 9, RUNAWAY_TOOLS, RUNAWAY_TOKENS, parent="weather_workflow"),
        RunRow("weather_workflow", True, 0, {}, None, task=""),
    ], [LOOP]),
    # OpenInference (OpenAI Agents SDK): agent.name; no exception events; tool errors swallowed.
    "openai_agents/ok": Case([
        RunRow("WeatherAgent", True, 2, WEATHER, BOTH_CALLS, parent="Agent workflow"),
        RunRow("Agent workflow", True, 0, {}, None, task=""),
    ]),
    "openai_agents/tool_error": Case(
        [
            RunRow("WeatherAgent", True, 2, WEATHER_FAILED, BOTH_CALLS, parent="Agent workflow"),
            RunRow("Agent workflow", True, 0, {}, None, task=""),
        ],
        ["Error"],
    ),
    "openai_agents/model_error": Case(
        [
            RunRow("WeatherAgent", False, 1, {}, None, parent="Agent workflow"),
            RunRow("Agent workflow", True, 0, {}, None, task=""),
        ],
        ["Error"],
    ),
    # MCP: one tool call seen by three spans (pydantic-ai's, the MCP client's, the server's).
    "mcp/ok": Case([RunRow("WeatherAgent", True, 2, WEATHER, BOTH_CALLS)]),
    "mcp/tool_error": Case([RunRow("WeatherAgent", True, 2, WEATHER_FAILED, BOTH_CALLS)], ["tool_error"]),
    "mcp/model_error": Case(
        [RunRow("WeatherAgent", False, 1, {}, None, task="",
                error_type="pydantic_ai.exceptions.ModelServerError")],
        ["pydantic_ai.exceptions.ModelServerError"],
    ),
}


def _fixture(name: str) -> bytes:
    return (SPANS_DIR / f"{name}.json").read_bytes()


def _mapped(name: str) -> list[dict[str, Any]]:
    request, _ = decode_body(_fixture(name), content_type="application/json", content_encoding=None,
                             max_decoded_bytes=1 << 20)
    spans, _, _ = spans_from_request(request)
    return [event.to_dict() for event in events_from_otlp_spans(spans)]


def _check(case: Case, events: list[dict[str, Any]]) -> None:
    completed = [e["data"] for e in events if e["event_type"] == "agent_execution_completed"]
    started = [e["data"] for e in events if e["event_type"] == "agent_execution_started"]
    errors = [e["data"] for e in events if e["event_type"] == "error_occurred"]
    assert [e["error_type"] for e in errors] == case.errors
    assert [d["agent_name"] for d in completed] == [row.agent for row in case.runs]
    assert sorted(d["agent_name"] for d in started) == sorted(row.agent for row in case.runs)
    run_names = {d["run_id"]: d["agent_name"] for d in completed}
    for row, data in zip(case.runs, completed, strict=True):
        assert data["success"] is row.success, row
        assert data["model_calls"] == row.model_calls, row
        assert {name: (t["calls"], t["failures"]) for name, t in data["tools"].items()} == row.tools
        assert data["tool_calls"] == sum(calls for calls, _ in row.tools.values())
        assert data["tool_failures"] == sum(failures for _, failures in row.tools.values())
        if row.tokens is None:
            assert data["tokens_source"] is None
            assert data["cost_status"] == "no_tokens"
        else:
            assert data["tokens_source"] == "model_calls"
            assert {k: data["tokens"][k] for k in row.tokens} == row.tokens
            assert data["input_tokens"] == row.tokens["input"]
            assert data["output_tokens"] == row.tokens["output"]
        assert data["task_description"] == row.task
        assert run_names.get(data["parent_run_id"]) == row.parent
        assert data["root_run_id"] == (data["parent_run_id"] or data["run_id"])
        if row.parent is not None:
            assert data["parent_span_id"] == data["parent_run_id"]
        if not row.success:
            assert data["error_message"] and data["error_message"] != "error"
            assert data["error_type"] == row.error_type
            if errors:  # the run failed with the one error's message
                assert data["error_message"] == errors[0]["error_message"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_recorded_stack_through_the_mapping(name: str) -> None:
    _check(CASES[name], _mapped(name))


def test_every_recorded_fixture_has_a_row() -> None:
    recorded = {f"{path.parent.name}/{path.stem}" for path in SPANS_DIR.glob("*/*.json")}
    assert recorded == set(CASES)


@pytest.fixture(name="server")
async def fixture_server() -> AsyncIterator[DashboardWebSocketServer]:
    async with running_server() as server:
        yield server


async def test_recorded_stacks_through_post_v1_traces(server: DashboardWebSocketServer) -> None:
    """Each fixture posted to a real server gives the same runs and errors in its history."""
    async with aiohttp.ClientSession() as session:
        for name, case in sorted(CASES.items()):
            before = server.state.last_seq
            async with session.post(f"{server.url}/v1/traces", data=_fixture(name),
                                    headers={"Content-Type": "application/json"}) as response:
                assert response.status == 200, name
            query = {"after_seq": str(before), "limit": "1000"}
            async with session.get(f"{server.url}/api/events", params=query) as r:
                body = await r.json()
            events = [e for e in body["events"] if e["event_type"] != "agent_registered"]
            _check(case, events)


# ------------------------------------------------------------------ live progress of received spans
def _spans(name: str) -> list[Any]:
    request, _ = decode_body(_fixture(name), content_type="application/json", content_encoding=None,
                             max_decoded_bytes=1 << 20)
    return spans_from_request(request)[0]


def test_a_run_shows_live_from_its_spans_before_its_agent_span_arrives() -> None:
    """An exporter sends each span when it ends: pydantic-ai's model and tool calls (which name their
    agent) arrive before the run's agent span, and the run shows live under that span's id."""
    spans = _spans("pydantic_ai/ok")
    agent_span = spans[-1]
    mapper = SpanMapper()
    assert mapper.map_received(spans[:-1]) == []
    (state,) = mapper.take_progress()
    assert state["run_id"] == f"{agent_span.context.span_id:016x}"
    assert (state["status"], state["agent_name"]) == ("running", "WeatherAgent")
    assert (state["model_calls"], state["tool_calls"], state["tokens"]["total"]) == (2, 1, 305)
    assert state["task_description"] == TASK

    events = mapper.map_received([agent_span])
    completed = [e.data for e in events if e.event_type.value == "agent_execution_completed"]
    assert [(d["run_id"], d["model_calls"], d["tokens"]["total"]) for d in completed] == [
        (state["run_id"], 2, 305)  # counted once
    ]
    assert mapper.take_progress() == []


def test_a_run_known_from_its_spans_moves_up_until_its_agent_span_arrives() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    chat_attributes = {
        "gen_ai.operation.name": "chat", "gen_ai.agent.name": "Planner", "gen_ai.request.model": "m",
        "gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 3,
    }
    with (
        tracer.start_as_current_span("invoke_agent P", attributes={"gen_ai.operation.name": "invoke_agent"}),
        tracer.start_as_current_span("step", attributes={"openinference.span.kind": "CHAIN"}),
        tracer.start_as_current_span("chat m", attributes=chat_attributes),
    ):
        pass
    chat, step, agent = exporter.get_finished_spans()
    mapper = SpanMapper()
    mapper.map_received([chat])
    (first,) = mapper.take_progress()
    assert first["run_id"] == f"{step.context.span_id:016x}" and first["model_calls"] == 1
    mapper.map_received([step])
    ended, moved = mapper.take_progress()
    assert (ended["run_id"], ended["status"]) == (first["run_id"], "ended")
    assert (moved["run_id"], moved["status"], moved["tokens"]["total"]) == (
        f"{agent.context.span_id:016x}", "running", 10)
    events = mapper.map_received([agent])
    completed = next(e.data for e in events if e.event_type.value == "agent_execution_completed")
    assert (completed["run_id"], completed["model_calls"]) == (moved["run_id"], 1)
    assert completed["tokens"]["total"] == 10
