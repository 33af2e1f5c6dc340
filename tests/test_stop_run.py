"""Stopping a runaway run (issue 18, ``docs/guardrails.md``, "Stopping a runaway run"); the last test
crosses a real token budget with real model-call spans, nothing flagged by hand.

Real decorated agents on the global SDK provider (``tracing_support.routed_to``), a real
:class:`DashboardSpanProcessor` in process and with ``endpoint=`` to a real server, and
``POST /api/runs/{run_id}/stop`` over HTTP. A run is flagged the way the budget tracker does it
(``state.flag_run(..., kind="budget")``) or the way the page does (the POST); the run's next decorated
step must raise :class:`BudgetExceeded` in the agent's own code, the run must end failed with that
error, and nothing may be raised for an agent that did not opt in.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from server_support import WAIT, EventStream, of_type, running_server
from tracing_support import instrumentation_suppressed, routed_to

from instrumentation import BudgetExceeded, agent, agent_span, synthesis, tool
from instrumentation.guard import StopRequest, current_runs, register_step_guard
from otel_dashboard.model.events import DashboardEvent, EventType
from otel_dashboard.pipeline.processor import DashboardSpanProcessor
from otel_dashboard.pipeline.remote import MAX_STOP_RUNS, RemoteEventSender
from otel_dashboard.server.security import SecurityConfig
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.state.run_flags import MAX_FLAGGED_RUNS

pytestmark = pytest.mark.timeout(60)

TOKEN = "stop-test-token-0123456789"
REASON = "run of Runaway used 120 tokens, over its budget of 100"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@tool(name="lookup")
def lookup(query: str) -> str:
    return query.upper()


@synthesis(phase="summarise")
def summarise(items: list[str]) -> list[str]:
    return items


def completions(state: DashboardState) -> dict[str, dict[str, Any]]:
    """agent name -> the data of its last agent_execution_completed, from the state's subscribers."""
    return state._test_completions  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(name="state")
def fixture_state() -> Iterator[DashboardState]:
    state = DashboardState()
    seen: dict[str, dict[str, Any]] = {}

    def keep(event: DashboardEvent) -> None:
        if event.event_type is EventType.AGENT_EXECUTION_COMPLETED:
            seen[event.data["agent_name"]] = event.data

    state.subscribe(keep)
    state._test_completions = seen  # type: ignore[attr-defined]
    yield state


@pytest.fixture(name="processor")
def fixture_processor(state: DashboardState) -> Iterator[DashboardSpanProcessor]:
    processor = DashboardSpanProcessor(state=state)
    with routed_to(processor):
        yield processor
    processor.shutdown(5000)


def own_run_id() -> str:
    """The run id of the innermost decorated agent run around the caller (its span id)."""
    return current_runs()[-1].run_id


# ------------------------------------------------------------------------------------- in process
def test_a_flagged_run_that_opted_in_raises_at_its_next_tool_and_ends_failed(
    state: DashboardState, processor: DashboardSpanProcessor
) -> None:
    calls: list[int] = []
    caught: list[BudgetExceeded] = []

    @agent(name="Runaway", stop_on_budget=True)
    def runaway() -> None:
        run_id = own_run_id()
        for i in range(10):
            if i == 3:  # what the budget tracker does on a run-scope crossing
                assert state.flag_run(run_id, reason=REASON, kind="budget") is True
            try:
                lookup(str(i))
            except BudgetExceeded as exc:
                caught.append(exc)
                raise
            calls.append(i)

    with pytest.raises(BudgetExceeded) as raised:
        runaway()
    assert calls == [0, 1, 2]  # the fourth call never ran
    assert raised.value is caught[0]  # raised in the agent's own code, at the tool call
    assert raised.value.kind == "budget" and raised.value.reason.startswith(REASON)
    flag = state.run_flag(str(raised.value.run_id))
    assert flag is not None and flag["reason"] == REASON
    assert processor.force_flush(5000)
    done = completions(state)["Runaway"]
    assert done["success"] is False and done["error_type"] == "instrumentation.guard.BudgetExceeded"
    assert REASON in done["error_message"] and done["run_id"] == raised.value.run_id
    assert done["tool_calls"] == 3  # the stopped call made no span


def test_without_opting_in_nothing_is_raised(
    state: DashboardState, processor: DashboardSpanProcessor
) -> None:
    @agent(name="Plain")
    def plain() -> int:
        state.flag_run(own_run_id(), reason=REASON, kind="budget")
        return len([lookup(str(i)) for i in range(3)]) + len(summarise(["a"]))

    assert plain() == 4
    assert processor.force_flush(5000)
    assert completions(state)["Plain"]["success"] is True


def test_the_processor_option_stops_every_flagged_run(state: DashboardState) -> None:
    processor = DashboardSpanProcessor(state=state, stop_on_budget=True)
    try:
        @agent(name="NotOptedIn")
        def not_opted_in() -> None:
            state.flag_run(own_run_id(), reason="stop requested on the dashboard", kind="user")
            summarise(["x"])

        with routed_to(processor), pytest.raises(BudgetExceeded, match="stop requested on the dashboard"):
            not_opted_in()
        assert processor.force_flush(5000)
        assert completions(state)["NotOptedIn"]["error_type"] == "instrumentation.guard.BudgetExceeded"
    finally:
        processor.shutdown(5000)
    # Shut down, its check is gone: the same flagged state stops nothing any more.
    with routed_to(processor):
        assert not_opted_in() is None


def test_sub_runs_stop_too_and_a_nested_agent_is_a_step(
    state: DashboardState, processor: DashboardSpanProcessor
) -> None:
    entered: list[str] = []

    @agent(name="Child")
    def child() -> str:
        entered.append("child")
        return lookup("x")

    @agent(name="Parent", stop_on_budget=True)
    async def parent() -> None:
        assert child() == "X"  # not flagged yet
        state.flag_run(own_run_id(), reason=REASON, kind="budget")
        child()  # a nested agent of a flagged run: a step, refused before it starts

    with pytest.raises(BudgetExceeded):
        asyncio.run(parent())
    assert entered == ["child"]

    # A child run inside a flagged parent that opted in stops at the child's own tool call.
    @agent(name="Inner")
    def inner(parent_run: str) -> None:
        state.flag_run(parent_run, reason=REASON, kind="budget")
        lookup("y")

    @agent(name="Outer", stop_on_budget=True)
    def outer() -> None:
        inner(own_run_id())

    with pytest.raises(BudgetExceeded):
        outer()
    assert processor.force_flush(5000)
    assert completions(state)["Inner"]["error_type"] == "instrumentation.guard.BudgetExceeded"
    assert completions(state)["Outer"]["error_type"] == "instrumentation.guard.BudgetExceeded"


def test_generators_context_managers_and_suppression(
    state: DashboardState, processor: DashboardSpanProcessor
) -> None:
    @tool(name="pages")
    def pages(n: int) -> Iterator[int]:
        yield from range(n)

    @agent(name="Gen", stop_on_budget=True)
    def gen() -> Iterator[int]:
        yield from pages(2)
        state.flag_run(own_run_id(), reason=REASON, kind="budget")
        yield from pages(2)

    got: list[int] = []
    with pytest.raises(BudgetExceeded):
        for item in gen():
            got.append(item)
    assert got == [0, 1]

    with agent_span("Ctx", stop_on_budget=True):
        state.flag_run(own_run_id(), reason=REASON, kind="budget")
        with pytest.raises(BudgetExceeded):
            lookup("z")
        with instrumentation_suppressed():  # suppressed: the step runs as if undecorated
            assert lookup("z") == "Z"
    with pytest.raises(ValueError, match="stop_on_budget must be True or False"):
        agent(stop_on_budget="yes")  # type: ignore[arg-type]


def test_a_failing_guard_counts_as_not_flagged() -> None:
    def broken(run_id: str) -> StopRequest | None:
        raise RuntimeError("broken guard")

    handle = register_step_guard(broken)
    try:
        @agent(name="Guarded", stop_on_budget=True)
        def guarded() -> str:
            return lookup("ok")

        assert guarded() == "OK"
    finally:
        handle.unregister()
        handle.unregister()  # idempotent


def test_flags_on_run_states_and_their_bounds(state: DashboardState) -> None:
    run_id = "f0000000000000a1"
    state.update_runs([{"run_id": run_id, "agent_name": "Runaway", "model_calls": 1}])
    assert state.get_open_runs()[0]["stop"] is None
    assert state.flag_run(run_id, reason=REASON, kind="budget") is True
    # At once, without the run's next progress: the pages show the flag now.
    assert state.get_open_runs()[0]["stop"] == {"reason": REASON, "kind": "budget"}
    assert state.flag_run(run_id, reason="again", kind="user") is False  # the first flag stays
    state.update_runs([{"run_id": run_id, "agent_name": "Runaway", "model_calls": 2}])
    assert state.get_open_runs()[0]["stop"] == {"reason": REASON, "kind": "budget"}
    flag = state.run_flag(run_id)
    assert flag is not None and flag["kind"] == "budget" and flag["at"].endswith("Z")
    # Odd values never raise: nothing flagged.
    assert state.flag_run(None, reason="x", kind="user") is False  # type: ignore[arg-type]
    assert state.flag_run("", reason="x", kind="user") is False
    assert state.flag_run("f" * 65, reason="x", kind="user") is False
    assert state.flag_run("f0000000000000a2", reason="x" * 2000, kind="odd") is True
    odd = state.run_flag("f0000000000000a2")
    assert odd is not None and odd["kind"] == "user" and len(odd["reason"]) == 500
    # Bounded: the oldest flags are forgotten first.
    for i in range(MAX_FLAGGED_RUNS):
        state.flag_run(f"{i:016x}", reason="r", kind="budget")
    assert state.run_flag(run_id) is None and state.run_flag(f"{MAX_FLAGGED_RUNS - 1:016x}") is not None
    assert len(state.stop_runs_among(f"{i:016x}" for i in range(5000))) == 1000  # an answer's cap


def test_the_remote_sender_remembers_a_bounded_set_of_stop_runs() -> None:
    sender = RemoteEventSender("http://127.0.0.1:9")
    try:
        named = [{"run_id": f"{i:016x}", "reason": "r", "kind": "budget"} for i in range(MAX_STOP_RUNS + 200)]
        named += [{"run_id": 5}, "junk", {"run_id": "ffff0000000000ff", "reason": None, "kind": "odd"}]
        sender._note_stop_runs(orjson.dumps({"accepted": 0, "stop_runs": named}))
        sender._note_stop_runs(b"not json")
        assert sender.stop_runs == MAX_STOP_RUNS
        assert sender.stop_request(f"{MAX_STOP_RUNS - 1:016x}") == {"reason": "r", "kind": "budget"}
        assert sender.stop_request("ffff0000000000ff") is None  # past the first MAX_STOP_RUNS entries
        sender._note_stop_runs(orjson.dumps({"stop_runs": [{"run_id": "ffff0000000000ff", "kind": "odd"}]}))
        assert sender.stop_request("ffff0000000000ff") == {"reason": "run flagged to stop", "kind": "user"}
        assert sender.stop_request("0000000000000000") is None  # the oldest was forgotten
    finally:
        sender.shutdown(1000)


# ------------------------------------------------------------------------------------- over HTTP
async def test_post_stop_answers(session: aiohttp.ClientSession) -> None:
    run_id = "00000000000000b1"
    async with running_server() as server:  # no token configured
        async with session.post(f"{server.url}/api/runs/{run_id}/stop") as response:
            assert response.status == 403
            assert (await response.json()) == {"error": "stopping runs needs a token (serve --token)"}
        assert server.state.run_flag(run_id) is None
    state = DashboardState()
    state.update_runs([{"run_id": run_id, "agent_name": "Runaway"}])
    async with running_server(state, security=SecurityConfig(token=TOKEN)) as server:
        url = f"{server.url}/api/runs/{run_id}/stop"
        async with session.post(url) as response:
            assert response.status == 401
        async with session.post(url, headers={"Authorization": "Bearer wrong"}) as response:
            assert response.status == 401
        for bad in ("xyz", "0" * 16, "a" * 15, "g" * 16, "a" * 33):
            async with session.post(f"{server.url}/api/runs/{bad}/stop", headers=AUTH) as response:
                assert response.status == 404, bad
                assert "16 (or 32) hex digits" in (await response.json())["error"]
        async with session.post(f"{server.url}/api/runs/{run_id.upper()}/stop", headers=AUTH) as response:
            assert response.status == 200
            body = await response.json()
        assert body["run_id"] == run_id and body["flagged"] is True and body["running"] is True
        assert body["stop"]["kind"] == "user" and body["stop"]["reason"] == "stop requested on the dashboard"
        async with session.post(url, headers=AUTH) as response:
            assert (await response.json())["flagged"] is False
        async with session.get(f"{server.url}/api/runs", headers=AUTH) as response:
            (run,) = (await response.json())["runs"]
        assert run["stop"] == {"reason": "stop requested on the dashboard", "kind": "user"}
        # POST /api/events answers name the flagged runs a batch speaks of.
        event = {"event_type": "agent_execution_started",
                 "data": {"agent_name": "X", "run_id": "00000000000000c1", "root_run_id": run_id}}
        ingest = f"{server.url}/api/events"
        async with session.post(ingest, json={"events": [event]}, headers=AUTH) as response:
            answer = await response.json()
        assert answer["stop_runs"] == [{"run_id": run_id, "reason": "stop requested on the dashboard",
                                        "kind": "user"}]
        async with session.post(f"{server.url}/api/events", json={"events": [], "runs": [
                {"run_id": "00000000000000c2"}]}, headers=AUTH) as response:
            assert "stop_runs" not in await response.json()


async def test_a_remote_run_stopped_from_the_api_ends_failed_in_its_own_code() -> None:
    async with aiohttp.ClientSession(headers=AUTH) as session, \
            running_server(security=SecurityConfig(token=TOKEN)) as server:
        stream = await EventStream.connect(session, server)
        processor = DashboardSpanProcessor(endpoint=server.url, token=TOKEN)
        outcome: dict[str, Any] = {}
        flagged = threading.Event()
        calls_after_flag: list[int] = []

        @agent(name="RemoteRunaway", stop_on_budget=True)
        def remote_runaway() -> None:
            deadline = time.monotonic() + WAIT
            i = 0
            while time.monotonic() < deadline:  # bounded: a runaway that the flag must end
                lookup(str(i))
                if flagged.is_set():
                    calls_after_flag.append(i)
                i += 1
                time.sleep(0.02)

        def run() -> None:
            try:
                remote_runaway()
            except BudgetExceeded as exc:
                outcome["raised"] = exc

        try:
            with routed_to(processor):
                running = asyncio.ensure_future(asyncio.to_thread(run))
                started = await stream.wait_for(
                    of_type("agent_execution_started", agent_name="RemoteRunaway"))
                run_id = started["data"]["run_id"]
                async with session.post(f"{server.url}/api/runs/{run_id}/stop") as response:
                    assert response.status == 200 and (await response.json())["flagged"] is True
                flagged.set()
                await asyncio.wait_for(running, WAIT)
            exc = outcome.get("raised")
            assert isinstance(exc, BudgetExceeded), "the flagged run was never stopped"
            assert exc.run_id == run_id and exc.kind == "user"
            # Learnt from the answers to the run's next batches: within a few tool calls.
            assert 0 < len(calls_after_flag) < 100
            done = await stream.wait_for(of_type("agent_execution_completed", agent_name="RemoteRunaway"))
            assert done["data"]["success"] is False
            assert done["data"]["error_type"] == "instrumentation.guard.BudgetExceeded"
            assert "stop requested on the dashboard" in done["data"]["error_message"]
        finally:
            await asyncio.to_thread(processor.shutdown, 5000)
        await stream.close()


# ----------------------------------------------------------------------- a real budget, end to end
def test_a_real_token_budget_crossed_by_model_calls_stops_the_run_at_its_next_tool(
    state: DashboardState,
) -> None:
    """Nothing flagged by hand: the run's own model calls (GenAI chat spans with token usage) cross
    the state's run token budget; the state's tracker publishes BudgetExceeded and flags the run; the
    agent, opted in, gets BudgetExceeded raised at its next tool and the run ends failed."""
    from opentelemetry import trace

    from otel_dashboard.model.guardrails import Budget

    processor = DashboardSpanProcessor(state=state, budgets=[Budget(scope="run", limits={"tokens": 1000})],
                                       schedule_delay_millis=10)
    budget_events: list[DashboardEvent] = []

    def keep_budget_events(event: DashboardEvent) -> None:
        if event.data.get("error_type") == "BudgetExceeded":
            budget_events.append(event)

    state.subscribe(keep_budget_events)
    tracer = trace.get_tracer("tests.stop_run")
    tools_run: list[int] = []

    @agent(name="Spender", stop_on_budget=True)
    def spender() -> None:
        run_id = own_run_id()
        for i in range(20):
            with tracer.start_as_current_span("chat gpt-4o", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 300, "gen_ai.usage.output_tokens": 100,
            }):
                pass
            if i == 2:  # 1,200 tokens now: wait (bounded) until the tracker has flagged the run
                deadline = time.monotonic() + WAIT
                while state.run_flag(run_id) is None:
                    assert time.monotonic() < deadline, "the run was never flagged"
                    time.sleep(0.01)
            lookup(str(i))
            tools_run.append(i)

    try:
        with routed_to(processor), pytest.raises(BudgetExceeded) as raised:
            spender()
        assert processor.force_flush(5000)
    finally:
        processor.shutdown(5000)
    assert tools_run == [0, 1]  # the third tool call, after the crossing, never ran
    assert raised.value.kind == "budget"
    (crossing,) = budget_events  # one event for the crossing, none again for the rest of the run
    assert crossing.data["budget"]["kind"] == "tokens" and crossing.data["budget"]["limit"] == 1000
    assert crossing.data["budget"]["value"] >= 1200 and crossing.data["run_id"] == raised.value.run_id
    done = completions(state)["Spender"]
    assert done["success"] is False and done["error_type"].endswith("BudgetExceeded")
