"""Budgets (issue 18, ``docs/guardrails.md``, "Budgets"): the file format and its errors, each kind
and scope crossed, and the ``BudgetExceeded`` event arriving on a real WebSocket in process, through
a remote processor and through OTLP ingest (stock exporter), once per crossing.

Spans come from a real SDK tracer (GenAI attributes, as an instrumented framework writes them) routed
to a real ``DashboardSpanProcessor``; servers are real, on loopback ports. A run that must still be
open when its budget is crossed waits on a gate the test opens afterwards (no sleeps).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from server_support import WAIT, EventStream, running_server

from otel_dashboard.cli import main
from otel_dashboard.model.budget_tracker import BudgetTracker
from otel_dashboard.model.events import DashboardEvent, EventType
from otel_dashboard.model.guardrails import (
    Budget,
    Guardrails,
    GuardrailsConfigError,
    LoopThresholds,
    load_guardrails,
    parse_guardrails,
)
from otel_dashboard.pipeline.processor import DashboardSpanProcessor
from otel_dashboard.state.dashboard import DashboardState

pytestmark = pytest.mark.timeout(60)

CROSSING_SECONDS = 1.0  # the bound: from the span that crossed ending to the browser


# ---------------------------------------------------------------------------------------------- config
EXAMPLE_TOML = """\
# budgets for the support agents
[loops]
repeated_tool_calls = 4

[[budgets]]
scope = "run"
tokens = 100_000
cost_usd = 2.5

[[budgets]]
scope = "agent"
agent = "Planner"
window_seconds = 3600
cost_usd = 20
model_calls = 500

[[budgets]]
scope = "conversation"
duration_seconds = 900
tool_calls = 300
"""


def test_toml_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(EXAMPLE_TOML)
    config = load_guardrails(path)
    assert config == Guardrails(
        budgets=(
            Budget("run", {"tokens": 100_000, "cost_usd": 2.5}),
            Budget("agent", {"cost_usd": 20, "model_calls": 500}, agent="Planner", window_seconds=3600),
            Budget("conversation", {"duration_seconds": 900, "tool_calls": 300}),
        ),
        loops=LoopThresholds(repeated_tool_calls=4),
    )


def test_json_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "budgets.json"
    path.write_text(json.dumps({"budgets": [{"scope": "run", "tool_calls": 10}]}, indent=2))
    assert load_guardrails(path).budgets == (Budget("run", {"tool_calls": 10}),)


@pytest.mark.parametrize(("text", "expected"), [
    (EXAMPLE_TOML.replace("cost_usd = 20", "cost_usd = -20"),
     "budgets.toml:14: budgets[1].cost_usd: must be a positive"),
    (EXAMPLE_TOML.replace('scope = "conversation"', 'scope = "team"'),
     "budgets.toml:18: budgets[2].scope: scope must"),
    (EXAMPLE_TOML.replace("tokens = 100_000", "tokenz = 100_000"),
     "budgets.toml:7: budgets[0].tokenz: unknown setting"),
    (EXAMPLE_TOML.replace("tokens = 100_000", "window_seconds = 60"),
     "budgets.toml:7: budgets[0].window_seconds: only an \"agent\" budget has a window"),
    (EXAMPLE_TOML.replace("repeated_tool_calls = 4", "repeated_tool_calls = -1"),
     "budgets.toml:3: loops.repeated_tool_calls: must be a whole number"),
    ('[[budgets]]\nscope = "run"\n', "budgets.toml:1: budgets[0]: a budget needs at least one limit"),
    ('[[budgets]\nscope = "run"\n', "budgets.toml:1: not valid TOML"),
])
def test_toml_errors_name_the_line_and_setting(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(text)
    with pytest.raises(GuardrailsConfigError) as caught:
        load_guardrails(path)
    assert str(caught.value).startswith(f"{tmp_path}/{expected}"), str(caught.value)
    assert "\n" not in str(caught.value)


def test_json_errors_name_the_line_and_setting(tmp_path: Path) -> None:
    path = tmp_path / "budgets.json"
    path.write_text('{\n  "budgets": [\n    {"scope": "run", "tokens": 5},\n    {"scope": "agent",\n'
                    '     "tool_calls": "many"}\n  ]\n}\n')
    with pytest.raises(GuardrailsConfigError,
                       match=r"budgets.json:5: budgets\[1\].tool_calls: must be a positive"):
        load_guardrails(path)
    path.write_text('{\n  "budgets": [\n    {"scope": "run",}\n  ]\n}\n')
    with pytest.raises(GuardrailsConfigError, match=r"budgets.json:3: not valid JSON"):
        load_guardrails(path)
    with pytest.raises(GuardrailsConfigError, match=r"guardrails: extra: unknown setting"):
        parse_guardrails({"extra": 1})


def test_serve_with_a_bad_budgets_file_exits_2_naming_the_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(EXAMPLE_TOML.replace("tool_calls = 300", "tool_calls = 0"))
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--budgets", str(path)])
    assert exited.value.code == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    expected = f"--budgets: {path}:20: budgets[2].tool_calls: must be a positive number, got 0"
    assert last_line.endswith(expected)


def test_python_api_checks_budgets() -> None:
    with pytest.raises(GuardrailsConfigError, match=r"budgets\[0\]: tokens: must be a positive number"):
        DashboardState(budgets=[Budget("run", {"tokens": 0})])
    with pytest.raises(GuardrailsConfigError, match="scope must be one of"):
        DashboardSpanProcessor(state=DashboardState(), budgets=[Budget("team", {"tokens": 1})])


# ---------------------------------------------------------------------------------------------- tracker
def run_state(run_id: str = "a" * 16, **fields: Any) -> dict[str, Any]:
    return {"run_id": run_id, "agent_name": "Planner", "trace_id": "1" * 32, **fields}


@pytest.mark.parametrize(("kind", "limit", "under", "over"), [
    ("tokens", 100, {"tokens": {"input": 60, "output": 40}}, {"tokens": {"input": 60, "output": 41}}),
    ("cost_usd", 0.5, {"cost_usd": 0.5}, {"cost_usd": 0.51}),
    ("model_calls", 3, {"model_calls": 3}, {"model_calls": 4}),
    ("tool_calls", 3, {"tool_calls": 3}, {"tool_calls": 4}),
])
def test_each_counted_kind_crosses_a_run_budget_once(kind: str, limit: float, under: dict[str, Any],
                                                     over: dict[str, Any]) -> None:
    tracker = BudgetTracker([Budget("run", {kind: limit})])
    assert tracker.observe([run_state(**under)], now=0) == []
    crossings = tracker.observe([run_state(**over)], now=1)
    assert [(c.kind, c.limit, c.run_id) for c in crossings] == [(kind, limit, "a" * 16)]
    assert tracker.observe([run_state(**over)], now=2) == []  # once
    assert tracker.complete({**run_state(**over), "duration_ms": 5}, timestamp=3, trace_id=None, now=3) == []
    assert tracker.over_budget("a" * 16) == [kind]
    event = crossings[0].event()
    assert event.event_type is EventType.ERROR_OCCURRED and event.severity.value == "error"
    assert event.trace_id == "1" * 32
    assert event.data["error_type"] == "BudgetExceeded" and event.data["run_id"] == "a" * 16
    assert event.data["budget"]["scope"] == "run" and event.data["budget"]["kind"] == kind


def test_duration_crosses_on_the_clock_and_message_reads() -> None:
    tracker = BudgetTracker([Budget("run", {"duration_seconds": 60})])
    assert tracker.observe([run_state(started_at="1970-01-01T00:00:00Z")], now=30) == []
    assert tracker.tick(now=59) == []
    [crossing] = tracker.tick(now=61)
    assert crossing.event().data["error_message"] == "run of Planner used 61.0 s, over its budget of 60.0 s"
    assert tracker.tick(now=62) == []
    tokens = BudgetTracker([Budget("run", {"tokens": 100_000})])
    [crossing] = tokens.observe([run_state(tokens={"input": 120_000, "output": 400})], now=0)
    assert crossing.message() == "run of Planner used 120,400 tokens, over its budget of 100,000"


def test_agent_window_crosses_again_only_after_falling_back_under() -> None:
    tracker = BudgetTracker([Budget("agent", {"model_calls": 5}, agent="Planner", window_seconds=60)])
    out = []
    for i in range(3):
        out += tracker.complete(run_state(f"{i:016x}", model_calls=2), timestamp=float(i), trace_id=None,
                                now=i)
    assert [(c.key, c.value, c.budget.scope) for c in out] == [("Planner", 6, "agent")]
    assert out[0].event().data["budget"]["window_seconds"] == 60
    assert tracker.complete(run_state("f" * 16, model_calls=2), timestamp=4.0, trace_id=None, now=4) == []
    assert tracker.tick(now=200) == []  # the window emptied: back under, re-armed
    again = []
    for i in range(3):
        again += tracker.complete(run_state(f"{i + 10:016x}", model_calls=2), timestamp=201.0 + i,
                                  trace_id=None, now=201 + i)
    assert len(again) == 1
    other = tracker.complete({**run_state("e" * 16, model_calls=50), "agent_name": "Other"}, timestamp=205.0,
                             trace_id=None, now=205)
    assert other == []  # the budget names Planner only


def test_conversation_budget_counts_open_and_completed_runs_once() -> None:
    tracker = BudgetTracker([Budget("conversation", {"tool_calls": 4})])
    assert tracker.complete(run_state("1" * 16, tool_calls=3, conversation_id="c-1"), timestamp=0.0,
                            trace_id=None, now=0) == []
    [crossing] = tracker.observe([run_state("2" * 16, tool_calls=2, conversation_id="c-1")], now=1)
    assert (crossing.key, crossing.value, crossing.run_id) == ("c-1", 5, "2" * 16)
    assert crossing.message() == "conversation c-1 used 5 tool calls, over its budget of 4"
    assert tracker.observe([run_state("3" * 16, tool_calls=9, conversation_id="c-1")], now=2) == []
    assert tracker.observe([run_state("4" * 16, tool_calls=9)], now=2) == []  # no conversation
    given_up = BudgetTracker([Budget("conversation", {"tool_calls": 4})])
    assert given_up.observe([run_state("5" * 16, tool_calls=3, conversation_id="c-2")], now=0) == []
    given_up.observe([{"run_id": "5" * 16, "status": "ended"}], now=1)  # not a run after all: uncounted
    assert given_up.observe([run_state("6" * 16, tool_calls=3, conversation_id="c-2")], now=2) == []


# ---------------------------------------------------------------------------------------------- end to end
def is_budget(kind: str, scope: str = "run") -> Any:
    def check(event: dict[str, Any]) -> bool:
        data = event["data"]
        return (event["event_type"] == "error_occurred" and data.get("error_type") == "BudgetExceeded"
                and data["budget"]["kind"] == kind and data["budget"]["scope"] == scope)
    return check


def run_agent(provider: TracerProvider, gate: threading.Event, ended: dict[str, float], *,
              input_tokens: int = 0, agent_name: str = "Planner", tools: int = 0) -> None:
    """An agent run: a chat call with tokens and some tool calls, then it waits on ``gate``."""
    tracer = provider.get_tracer("tests.budgets")
    with tracer.start_as_current_span(f"invoke_agent {agent_name}", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent_name,
        "gen_ai.conversation.id": "conv-1",
    }):
        with tracer.start_as_current_span("chat gpt-4o", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
            "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": input_tokens, "gen_ai.usage.output_tokens": 10,
        }):
            pass
        for _ in range(tools):
            with tracer.start_as_current_span("execute_tool lookup", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"}):
                pass
        ended["crossed"] = time.monotonic()
        assert gate.wait(WAIT), "the test never let the agent finish"


async def run_until_crossed(stream: EventStream, provider: TracerProvider, predicate: Any,
                            **run: Any) -> dict[str, Any]:
    """Runs an agent in a thread; the BudgetExceeded event, which must arrive while the run is still open
    and within CROSSING_SECONDS of the span that crossed ending."""
    gate = threading.Event()
    ended: dict[str, float] = {}
    running = asyncio.ensure_future(asyncio.to_thread(run_agent, provider, gate, ended, **run))
    try:
        arrived, event = await stream.wait_for_timed(predicate)
        assert not running.done()  # crossed while the run is going
    finally:
        gate.set()
    await asyncio.wait_for(running, WAIT)
    assert arrived - ended["crossed"] < CROSSING_SECONDS
    return event


def provider_with(processor: Any, service: str = "budgets-test") -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(processor)
    return provider


async def test_in_process_tokens_budget_crosses_once(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        stream = await EventStream.connect(session, server)
        processor = DashboardSpanProcessor(state=state, budgets=[Budget("run", {"tokens": 1000})])
        provider = provider_with(processor)
        try:
            event = await run_until_crossed(stream, provider, is_budget("tokens"), input_tokens=5000)
            assert event["data"]["budget"] == {"scope": "run", "kind": "tokens", "limit": 1000, "value": 5010,
                                               "agent": None}
            assert event["data"]["error_message"] == (
                "run of Planner used 5,010 tokens, over its budget of 1,000")
            run_id = event["data"]["run_id"]
            await stream.wait_for(lambda e: e["event_type"] == "agent_execution_completed")
            # The completion crosses nothing new.
            assert sum(is_budget("tokens")(e) for e in stream.events) == 1
            agents = state.get_agent_stats()["agents"]
            assert [(a["agent"], a["over_budget_runs"]) for a in agents] == [("Planner", 1)]
            assert event["trace_id"] and run_id
        finally:
            provider.shutdown()
        await stream.close()


async def test_in_process_tool_calls_and_run_state_over_budget(session: aiohttp.ClientSession) -> None:
    state = DashboardState(budgets=[Budget("run", {"tool_calls": 2}),
                                    Budget("conversation", {"model_calls": 1})])
    async with running_server(state) as server:
        stream = await EventStream.connect(session, server)
        processor = DashboardSpanProcessor(state=state)
        provider = provider_with(processor)
        gate = threading.Event()
        running = asyncio.ensure_future(asyncio.to_thread(run_agent, provider, gate, {}, tools=3))
        try:
            event = await stream.wait_for(is_budget("tool_calls"))
            runs = state.get_open_runs()
            assert [(r["run_id"], r["over_budget"]) for r in runs] == [
                (event["data"]["run_id"], ["tool_calls"])]
        finally:
            gate.set()
        await asyncio.wait_for(running, WAIT)
        # A second run of the same conversation crosses its model-call budget (one call each).
        gate2 = threading.Event()
        gate2.set()
        await asyncio.to_thread(run_agent, provider, gate2, {})
        conversation = await stream.wait_for(is_budget("model_calls", "conversation"))
        assert conversation["data"]["conversation_id"] == "conv-1"
        assert conversation["data"]["error_message"] == (
            "conversation conv-1 used 2 model calls, over its budget of 1")
        provider.shutdown()
        await stream.close()


async def test_duration_budget_crosses_on_the_server_clock(session: aiohttp.ClientSession) -> None:
    state = DashboardState(budgets=[Budget("run", {"duration_seconds": 0.2})])
    async with running_server(state, metrics_interval_seconds=1.0) as server:
        stream = await EventStream.connect(session, server)
        provider = provider_with(DashboardSpanProcessor(state=state))
        gate = threading.Event()
        running = asyncio.ensure_future(asyncio.to_thread(run_agent, provider, gate, {}))
        try:
            event = await stream.wait_for(is_budget("duration_seconds"))
            assert not running.done()
            assert event["data"]["budget"]["value"] > 0.2
            assert state.get_open_runs()[0]["over_budget"] == ["duration_seconds"]
        finally:
            gate.set()
        await asyncio.wait_for(running, WAIT)
        provider.shutdown()
        await stream.close()


async def test_remote_processor_to_a_server_with_budgets(session: aiohttp.ClientSession) -> None:
    state = DashboardState(budgets=parse_guardrails({"budgets": [{"scope": "run", "cost_usd": 0.001}]}))
    async with running_server(state) as server:
        stream = await EventStream.connect(session, server)
        processor = DashboardSpanProcessor(endpoint=server.url)
        provider = provider_with(processor)
        try:
            event = await run_until_crossed(stream, provider, is_budget("cost_usd"), input_tokens=100_000)
            assert event["data"]["budget"]["value"] > 0.001
            assert event["data"]["service_name"] == "budgets-test"
        finally:
            await asyncio.to_thread(provider.shutdown)
        await stream.close()


async def test_remote_processor_with_its_own_budgets(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:  # a server without budgets: the processor's own count
        stream = await EventStream.connect(session, server)
        processor = DashboardSpanProcessor(endpoint=server.url, budgets=[Budget("run", {"model_calls": 0.5})])
        provider = provider_with(processor)
        try:
            event = await run_until_crossed(stream, provider, is_budget("model_calls"))
            flag = processor.flagged(event["data"]["run_id"])
            assert flag == {"reason": event["data"]["error_message"], "kind": "budget"}
            assert processor.flagged("0" * 16) is None
            await stream.wait_for(lambda e: e["event_type"] == "agent_execution_completed")
            assert sum(is_budget("model_calls")(e) for e in stream.events) == 1
        finally:
            await asyncio.to_thread(provider.shutdown)
        await stream.close()


async def test_otlp_ingest_with_budgets(session: aiohttp.ClientSession) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    state = DashboardState(budgets=[Budget("agent", {"tokens": 1500}, agent="Planner", window_seconds=600)])
    async with running_server(state) as server:
        stream = await EventStream.connect(session, server)
        provider = TracerProvider(resource=Resource.create({"service.name": "otlp-budgets"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{server.url}/v1/traces")))
        gate = threading.Event()
        gate.set()
        try:
            for _ in range(2):  # 1,010 tokens each: the second run takes the agent over 1,500
                await asyncio.to_thread(run_agent, provider, gate, {}, input_tokens=1000)
            event = await stream.wait_for(is_budget("tokens", "agent"))
            assert event["data"]["budget"] == {"scope": "agent", "kind": "tokens", "limit": 1500,
                                               "value": 2020, "window_seconds": 600, "agent": "Planner"}
            assert event["data"]["error_message"] == (
                "agent Planner used 2,020 tokens in the last 600 s, over its budget of 1,500")
            await asyncio.to_thread(run_agent, provider, gate, {}, input_tokens=1000)
            await stream.wait_for(lambda e: e["event_type"] == "agent_execution_completed"
                                  and len([x for x in stream.events
                                           if x["event_type"] == "agent_execution_completed"]) == 3)
            assert sum(is_budget("tokens", "agent")(e) for e in stream.events) == 1  # once per window
        finally:
            await asyncio.to_thread(provider.shutdown)
        await stream.close()


def test_set_guardrails_and_events_without_budgets() -> None:
    state = DashboardState()
    state.update_runs([run_state(tokens={"input": 10})])
    assert state.get_open_runs()[0]["over_budget"] == []
    state.set_guardrails(Guardrails(budgets=(Budget("run", {"tokens": 5}),)))
    seen: list[DashboardEvent] = []
    state.subscribe(seen.append)
    state.update_runs([run_state(tokens={"input": 10})])
    assert [e.data["budget"]["kind"] for e in seen if e.event_type is EventType.ERROR_OCCURRED] == ["tokens"]
    assert state.get_open_runs()[0]["over_budget"] == ["tokens"]


def test_processor_budgets_keep_the_states_loop_thresholds() -> None:
    state = DashboardState(budgets=Guardrails(loops=LoopThresholds(repeated_tool_calls=3)))
    processor = DashboardSpanProcessor(state=state, budgets=[Budget("run", {"tokens": 10})])
    try:
        assert state.guardrails == Guardrails(budgets=(Budget("run", {"tokens": 10}),),
                                              loops=LoopThresholds(repeated_tool_calls=3))
    finally:
        processor.shutdown()


def test_tracker_is_bounded_and_counts_what_it_forgot() -> None:
    tracker = BudgetTracker([Budget("run", {"tokens": 10}), Budget("agent", {"tokens": 10})],
                            max_runs=3, max_keys=2)
    for i in range(5):
        tracker.observe([{**run_state(f"{i:016x}"), "agent_name": f"A{i}"}], now=i)
    assert tracker.counters() == {"budget_crossings": 0, "budget_evicted_runs": 2, "budget_evicted_keys": 3,
                                  "budget_open_runs": 3}
    assert tracker.observe([{"run_id": 5}, "not a run", {"run_id": "x" * 16, "tokens": "many"}], now=9) == []
