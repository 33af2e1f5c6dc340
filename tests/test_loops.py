"""Loop detection (``LoopSuspected``): the detector's three checks and bounds, the recorded runaways
(pydantic-ai, smolagents, traceloop calling the same tool 8 times, tests/fixtures/spans/*/runaway.json)
replayed into a real server's ``POST /v1/traces`` whole and one span per request, and decorated
``@agent``/``@tool`` code in process and through the remote processor.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer
from server_support import WAIT, EventStream, of_type, running_server
from tracing_support import routed_to

from instrumentation import agent, tool
from otel_dashboard.model.guardrails import LOOP_SUSPECTED, Guardrails, LoopThresholds
from otel_dashboard.model.loops import (
    MAX_ARGUMENT_CHARS,
    MAX_KEYS_PER_MEMORY,
    MAX_SPAN_IDS,
    LoopDetector,
    LoopMemory,
)
from otel_dashboard.model.otlp import decode_body, spans_from_request
from otel_dashboard.model.span_mapper import SpanMapper
from otel_dashboard.pipeline.processor import DashboardSpanProcessor
from otel_dashboard.state.dashboard import DashboardState

pytestmark = pytest.mark.timeout(60)

SPANS_DIR = Path(__file__).parent / "fixtures" / "spans"
RUNAWAY_STACKS = ("pydantic_ai", "smolagents", "traceloop")
ARGS = "gen_ai.tool.call.arguments"


def is_loop(event: dict[str, Any]) -> bool:
    return event["event_type"] == "error_occurred" and event["data"].get("error_type") == LOOP_SUSPECTED


def loops_of(events: list[Any]) -> list[Any]:
    return [e for e in events if e.event_type.value == "error_occurred"
            and e.data.get("error_type") == LOOP_SUSPECTED]


# ---------------------------------------------------------------------------------- the detector
def test_a_repeated_tool_call_is_reported_once_at_the_threshold() -> None:
    detector = LoopDetector(LoopThresholds(repeated_tool_calls=3))
    memory = LoopMemory()
    found = [detector.tool_call(memory, {ARGS: '{"city": "Paris", "days": 2}'}, tool_name="get_weather",
                                span_id=f"{i:016x}") for i in range(1, 8)]
    assert [f is not None for f in found] == [False, False, True, False, False, False, False]
    finding = found[2]
    assert finding is not None
    assert finding.loop_data() == {
        "kind": "repeated_tool_call", "count": 3, "threshold": 3, "tool_name": "get_weather",
        "arguments": '{"city":"Paris","days":2}', "span_ids": [f"{i:016x}" for i in (1, 2, 3)],
    }
    assert finding.message("WeatherAgent") == (
        "get_weather called 3 times with the same arguments in one run of WeatherAgent")


def test_arguments_are_compared_as_the_trace_view_reads_them() -> None:
    detector = LoopDetector(LoopThresholds(repeated_tool_calls=3))
    memory = LoopMemory()
    # The same call in three vocabularies: GenAI (keys in another order), OpenLLMetry's and
    # smolagents' call wrappers: one key.
    spans = [{ARGS: '{"days": 2, "city": "Paris"}'},
             {"traceloop.entity.input": '{"args": [], "kwargs": {"city": "Paris", "days": 2}}'},
             {"input.value": json.dumps({"args": [], "sanitize_inputs_outputs": True,
                                         "kwargs": {"city": "Paris", "days": 2}}),
              "input.mime_type": "application/json"}]
    found = [detector.tool_call(memory, attrs, tool_name="get_weather", span_id="0" * 15 + str(i))
             for i, attrs in enumerate(spans)]
    assert found[2] is not None and found[2].arguments == '{"city":"Paris","days":2}'


def test_other_arguments_other_tools_and_unknown_arguments_are_not_a_loop() -> None:
    detector = LoopDetector(LoopThresholds(repeated_tool_calls=2))
    memory = LoopMemory()
    calls = [("search", {ARGS: '{"q": "a"}'}), ("search", {ARGS: '{"q": "b"}'}),
             ("lookup", {ARGS: '{"q": "a"}'}), ("search", {}), ("search", {}),
             ("search", {"gen_ai.tool.call.result": "only a result"})]
    assert all(detector.tool_call(memory, attrs, tool_name=name, span_id="1" * 16) is None
               for name, attrs in calls)


def test_a_repeated_prompt_is_reported_once_and_a_growing_conversation_is_not() -> None:
    detector = LoopDetector(LoopThresholds(repeated_prompts=3))
    memory = LoopMemory()
    prompt = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "plan the trip"}]}])
    same = [detector.model_call(memory, {"gen_ai.input.messages": prompt}, span_id=f"{i:016x}")
            for i in range(1, 6)]
    assert [f is not None for f in same] == [False, False, True, False, False]
    assert same[2] is not None and same[2].loop_data() == {
        "kind": "repeated_prompt", "count": 3, "threshold": 3, "span_ids": [f"{i:016x}" for i in (1, 2, 3)]}
    assert same[2].message("Planner") == "the same prompt sent to the model 3 times in one run of Planner"
    # OpenInference's indexed messages and the GenAI message events count too; other system
    # instructions make another prompt.
    indexed = {"llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "hi"}
    events = [{"name": "gen_ai.user.message", "attributes": {"content": "hi there"}}]
    assert [detector.model_call(memory, indexed, span_id="2" * 16) for _ in range(3)][2] is not None
    assert [detector.model_call(memory, {}, events, span_id="3" * 16) for _ in range(3)][2] is not None
    other = {"gen_ai.input.messages": prompt, "gen_ai.system_instructions": "be brief"}
    assert detector.model_call(memory, other, span_id="4" * 16) is None
    history: list[dict[str, Any]] = []
    fresh = LoopMemory()
    for turn in range(6):  # an agent's loop: the history grows, each input differs
        history.append({"role": "user", "content": f"turn {turn}"})
        assert detector.model_call(fresh, {"gen_ai.input.messages": json.dumps(history)},
                                   span_id="5" * 16) is None


def test_self_invocation_counts_the_enclosing_runs_of_the_same_agent() -> None:
    detector = LoopDetector(LoopThresholds(self_invocation_depth=2))
    memory = LoopMemory()
    chain = [("A", "a3"), ("B", "b2"), ("A", "a2"), ("B", "b1"), ("A", "a1")]  # innermost first
    assert detector.self_invocation(memory, chain[2:]) is None  # A > B > A: depth 1
    finding = detector.self_invocation(memory, chain)
    assert finding is not None
    assert finding.loop_data() == {"kind": "self_invocation", "count": 2, "threshold": 2,
                                   "agents": ["A", "B", "A", "B", "A"],
                                   "span_ids": ["a1", "b1", "a2", "b2", "a3"]}
    assert finding.message("A") == "A running inside its own run 2 deep (A > B > A > B > A)"
    assert detector.self_invocation(memory, [("A", "a4"), *chain]) is None  # once per run


def test_zero_turns_a_check_off_and_bad_thresholds_are_refused() -> None:
    off = LoopDetector(LoopThresholds(0, 0, 0))
    assert not off.enabled
    assert LoopDetector(None).enabled is False
    memory = LoopMemory()
    assert all(off.tool_call(memory, {ARGS: "{}"}, tool_name="t", span_id="1" * 16) is None
               for _ in range(20))
    assert off.self_invocation(memory, [("A", "1")] * 20) is None
    for bad in (LoopThresholds(repeated_tool_calls=-1), LoopThresholds(repeated_prompts=2.5)):  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="loop threshold"):
            LoopDetector(bad)


def test_memory_is_bounded_and_a_loop_survives_many_distinct_calls() -> None:
    detector = LoopDetector(LoopThresholds(repeated_tool_calls=5))
    memory = LoopMemory()
    found = []
    for i in range(MAX_KEYS_PER_MEMORY * 4):
        found.append(detector.tool_call(memory, {ARGS: json.dumps({"q": i})}, tool_name="search",
                                        span_id=f"{i:016x}"))
        if i % 4 == 0:  # the stuck call comes back among many others
            found.append(detector.tool_call(memory, {ARGS: '{"q": "stuck"}'}, tool_name="search",
                                            span_id=f"{i:016x}"))
    assert len(memory.seen) == MAX_KEYS_PER_MEMORY
    assert memory.forgotten_keys > 0
    reported = [f for f in found if f is not None]
    assert [(f.arguments, f.count) for f in reported] == [('{"q":"stuck"}', 5)]
    long_arguments = json.dumps({"text": "x" * 1000})
    for _ in range(5):
        last = detector.tool_call(memory, {ARGS: long_arguments}, tool_name="write", span_id="1" * 16)
    assert last is not None and len(last.arguments or "") == MAX_ARGUMENT_CHARS
    assert len(last.span_ids) == 5
    many = [detector.tool_call(memory, {ARGS: "[1]"}, tool_name="t", span_id=f"{i:016x}") for i in range(30)]
    assert len(next(f for f in many if f is not None).span_ids) <= MAX_SPAN_IDS


def test_hostile_values_never_raise() -> None:
    detector = LoopDetector(LoopThresholds(1, 1, 1))
    memory = LoopMemory()

    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    for value in (Hostile(), b"\xff\xfe", "\ud800", float("nan"), ["\ud800"], 10**400):
        detector.tool_call(memory, {ARGS: value}, tool_name="t", span_id="1" * 16)
        detector.model_call(memory, {"gen_ai.input.messages": value}, [object(), {"name": 3}],
                            span_id="1" * 16)


def test_merged_memories_report_what_their_sums_reach() -> None:
    detector = LoopDetector(LoopThresholds(repeated_tool_calls=4))
    waiting, run = LoopMemory(), LoopMemory()
    for memory in (waiting, waiting, run, run):
        assert detector.tool_call(memory, {ARGS: "{}"}, tool_name="t", span_id="1" * 16, report=False) is None
    assert detector.due(waiting) == []
    detector.merge(run, waiting)
    found = detector.due(run)
    assert [(f.kind, f.count) for f in found] == [("repeated_tool_call", 4)]
    assert detector.due(run) == []


# ---------------------------------------------------------------------------------- recorded runaways
def runaway(stack: str) -> tuple[bytes, dict[str, Any]]:
    body = (SPANS_DIR / stack / "runaway.json").read_bytes()
    return body, json.loads(body)


def spans_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [span for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for span in ss["spans"]]


def one_span_documents(doc: dict[str, Any]) -> list[bytes]:
    """The recorded spans one per request, in export order (end order), as a SimpleSpanProcessor
    with an OTLP exporter sends them: a run's tool spans arrive before its agent span."""
    out = []
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                one = {"resourceSpans": [{**rs, "scopeSpans": [{**ss, "spans": [span]}]}]}
                out.append(json.dumps(one).encode())
    return out


def expected_evidence(doc: dict[str, Any]) -> tuple[str, str, list[str]]:
    """The run (the agent span named WeatherAgent), its trace, the get_weather tool spans in time order."""
    spans = spans_of(doc)
    run = next(s for s in spans if s["name"] in ("invoke_agent WeatherAgent", "WeatherAgent.run",
                                                  "WeatherAgent.agent"))
    names = ("execute_tool get_weather", "SimpleTool", "get_weather.tool")
    tools = sorted((s for s in spans if s["name"] in names), key=lambda s: int(s["startTimeUnixNano"]))
    assert len(tools) == 8  # what was recorded: the framework called the tool 8 times
    return run["spanId"], run["traceId"], [s["spanId"] for s in tools]


def test_the_recorded_runaways_are_real_recordings() -> None:
    for stack in RUNAWAY_STACKS:
        _, doc = runaway(stack)
        recording = doc["recording"]
        assert (recording["stack"], recording["scenario"]) == (stack, "runaway")
        assert len(recording["model_calls"]) == 9
        assert all(call["mode"] == "runaway" for call in recording["model_calls"])
        assert "sunny" in recording["outcome"]


@pytest.mark.parametrize("stack", RUNAWAY_STACKS)
def test_the_mapper_finds_the_recorded_loop_once(stack: str) -> None:
    body, doc = runaway(stack)
    request, _ = decode_body(body, content_type="application/json", content_encoding=None,
                             max_decoded_bytes=len(body) * 2)
    spans, rejected, _ = spans_from_request(request)
    assert rejected == 0
    run_id, trace_id, tool_span_ids = expected_evidence(doc)
    events = SpanMapper().map_received(spans)
    [found] = loops_of(events)
    assert found.severity.value == "warning"
    assert found.trace_id == trace_id
    assert found.data == {
        "source": "WeatherAgent", "error_type": "LoopSuspected",
        "error_message": "get_weather called 5 times with the same arguments in one run of WeatherAgent",
        "agent_name": "WeatherAgent", "agent_id": found.data["agent_id"], "run_id": run_id,
        "service_name": f"recorder-{stack}",
        "loop": {"kind": "repeated_tool_call", "count": 5, "threshold": 5, "tool_name": "get_weather",
                 "arguments": '{"city":"Paris"}', "span_ids": tool_span_ids[:5]},
    }
    completed = next(i for i, e in enumerate(events) if e.event_type.value == "agent_execution_completed"
                     and e.data["run_id"] == run_id)
    assert events.index(found) < completed  # inside the run
    assert loops_of(SpanMapper(loops=None).map_received(spans)) == []
    assert loops_of(SpanMapper(loops=LoopThresholds(repeated_tool_calls=9)).map_received(spans)) == []


@pytest.mark.parametrize("stack", RUNAWAY_STACKS)
async def test_a_recorded_runaway_posted_to_v1_traces_gives_one_loop_suspected(stack: str) -> None:
    body, doc = runaway(stack)
    run_id, trace_id, tool_span_ids = expected_evidence(doc)
    async with running_server() as server, aiohttp.ClientSession() as session:
        for sending in ("whole", "one span per request"):
            stream = await EventStream.connect(session, server)
            documents = [body] if sending == "whole" else one_span_documents(doc)
            for document in documents:
                async with session.post(f"{server.url}/v1/traces", data=document,
                                        headers={"Content-Type": "application/json"}) as response:
                    assert response.status == 200, await response.text()
            await stream.wait_for(of_type("agent_execution_completed", run_id=run_id))
            # The run has completed: everything its spans gave is out, the loop event before it.
            [event] = [e for e in stream.events if is_loop(e)]
            await stream.close()
            assert event["severity"] == "warning" and event["trace_id"] == trace_id
            data = event["data"]
            assert (data["run_id"], data["agent_name"], data["source"]) == (
                run_id, "WeatherAgent", "WeatherAgent")
            loop = data["loop"]
            assert (loop["kind"], loop["tool_name"], loop["arguments"], loop["threshold"]) == (
                "repeated_tool_call", "get_weather", '{"city":"Paris"}', 5)
            if stack == "smolagents" and sending != "whole":
                # smolagents' tool spans name no agent (they sit under "Step N" spans): the run is
                # known when its agent span arrives, at its end, with all 8 calls.
                assert (loop["count"], loop["span_ids"]) == (8, tool_span_ids)
            else:
                assert (loop["count"], loop["span_ids"]) == (5, tool_span_ids[:5])
            assert data["error_message"] == (f"get_weather called {loop['count']} times with the same "
                                             "arguments in one run of WeatherAgent")


async def test_the_servers_state_sets_the_thresholds() -> None:
    body, doc = runaway("pydantic_ai")
    run_id, _, tool_span_ids = expected_evidence(doc)
    state = DashboardState()
    state.guardrails = Guardrails(loops=LoopThresholds(repeated_tool_calls=8))
    async with running_server(state) as server, aiohttp.ClientSession() as session:
        stream = await EventStream.connect(session, server)
        async with session.post(f"{server.url}/v1/traces", data=body,
                                headers={"Content-Type": "application/json"}) as response:
            assert response.status == 200
        await stream.wait_for(of_type("agent_execution_completed", run_id=run_id))
        [event] = [e for e in stream.events if is_loop(e)]
        assert (event["data"]["loop"]["count"], event["data"]["loop"]["span_ids"]) == (8, tool_span_ids)
        await stream.close()


# ---------------------------------------------------------------------------------- decorated code
@tool(name="get_weather")
def get_weather(city: str) -> str:
    # The decorators record no arguments: a tool that wants loop detection writes them on its span.
    trace.get_current_span().set_attribute(ARGS, json.dumps({"city": city}))
    return f"{city}: sunny"


@agent(name="WeatherAgent")
def stuck_agent(calls: int) -> str:
    answers = [get_weather("Paris") for _ in range(calls)]
    answers += [get_weather("Lyon"), get_weather("Nice")]
    return answers[-1]


@agent(name="Planner")
def planner(depth: int) -> str:
    return critic(depth) if depth > 0 else "done"


@agent(name="Critic")
def critic(depth: int) -> str:
    return planner(depth - 1)


@agent(name="Repeater")
def repeater(times: int) -> None:
    tracer = trace.get_tracer("tests.loops")
    prompt = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "and now?"}]}])
    for _ in range(times):
        with tracer.start_as_current_span("chat fake-gpt", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "fake-gpt",
                "gen_ai.input.messages": prompt}):
            pass


@pytest.fixture(name="in_process")
def fixture_in_process() -> Iterator[tuple[DashboardState, DashboardSpanProcessor]]:
    state = DashboardState()
    processor = DashboardSpanProcessor(state=state)
    try:
        with routed_to(processor):
            yield state, processor
    finally:
        processor.shutdown()


def test_decorated_tools_in_process(in_process: tuple[DashboardState, DashboardSpanProcessor]) -> None:
    state, processor = in_process
    stuck_agent(7)
    stuck_agent(4)  # under the threshold: nothing
    assert processor.force_flush()
    events = state.get_events_after(0, 10_000)
    [found] = loops_of(events)
    first_run = next(e for e in events if e.event_type.value == "agent_execution_completed")
    assert found.data["run_id"] == first_run.data["run_id"]
    assert found.data["agent_id"] == "WeatherAgent"
    assert (found.data["loop"]["count"], found.data["loop"]["arguments"]) == (5, '{"city":"Paris"}')
    assert found.trace_id == first_run.trace_id


def test_self_invocation_and_a_repeated_prompt_in_process(
    in_process: tuple[DashboardState, DashboardSpanProcessor],
) -> None:
    state, processor = in_process
    planner(3)  # Planner > Critic > Planner > Critic > Planner > Critic > Planner
    planner(2)  # Planner two deep only
    repeater(6)
    assert processor.force_flush()
    events = state.get_events_after(0, 10_000)
    found = loops_of(events)
    assert [f.data["loop"]["kind"] for f in found] == ["self_invocation", "repeated_prompt"]
    invocation, prompt = found
    outer_planner = next(e for e in events if e.event_type.value == "agent_execution_started"
                         and e.data["agent_name"] == "Planner")
    assert invocation.data["run_id"] == outer_planner.data["run_id"]
    loop = invocation.data["loop"]
    assert loop["agents"] == ["Planner", "Critic", "Planner", "Critic", "Planner", "Critic", "Planner"]
    assert (loop["count"], loop["threshold"], len(loop["span_ids"])) == (3, 3, 7)
    assert loop["span_ids"][0] == outer_planner.data["run_id"]
    chain = " > ".join(loop["agents"])
    assert invocation.data["error_message"] == f"Planner running inside its own run 3 deep ({chain})"
    assert (prompt.data["agent_name"], prompt.data["loop"]["count"]) == ("Repeater", 5)


def test_the_states_thresholds_and_the_processors_option() -> None:
    state = DashboardState()
    state.guardrails = Guardrails(loops=LoopThresholds(repeated_tool_calls=3))
    processors = [DashboardSpanProcessor(state=state),
                  DashboardSpanProcessor(state=state, loops=LoopThresholds(0, 0, 0))]
    try:
        for processor in processors:
            with routed_to(processor):
                stuck_agent(3)
            assert processor.force_flush()
    finally:
        for processor in processors:
            processor.shutdown()
    [found] = loops_of(state.get_events_after(0, 10_000))
    assert (found.data["loop"]["count"], found.data["loop"]["threshold"]) == (3, 3)


async def test_decorated_tools_through_the_remote_processor() -> None:
    async with running_server() as server, aiohttp.ClientSession() as session:
        stream = await EventStream.connect(session, server)
        processor = DashboardSpanProcessor(endpoint=server.url)
        provider = TracerProvider()
        provider.add_span_processor(processor)
        tracer: Tracer = provider.get_tracer("tests.loops")
        try:
            def run() -> None:
                with tracer.start_as_current_span("invoke_agent Remote", attributes={
                        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Remote"}):
                    for _ in range(6):
                        with tracer.start_as_current_span("execute_tool fetch", attributes={
                                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "fetch",
                                ARGS: '{"url": "http://127.0.0.1/x"}'}):
                            pass

            await asyncio.to_thread(run)
            assert await asyncio.to_thread(processor.force_flush, 5000)
            completed = await stream.wait_for(of_type("agent_execution_completed", agent_name="Remote"), WAIT)
            [event] = [e for e in stream.events if is_loop(e)]
            assert event["data"]["run_id"] == completed["data"]["run_id"]
            assert event["data"]["loop"]["tool_name"] == "fetch" and event["data"]["loop"]["count"] == 5
        finally:
            provider.shutdown()
            await stream.close()
