"""Runs end to end: spans from a real SDK tracer through the dashboard's processor (in process and
remote) and through ``POST /v1/traces``, to real WebSocket clients of a real server on loopback.

A run's live state reaches every client within 1 s of each child span ending (run_progress), a
client connecting mid-run gets it in its snapshot, and the run's completion carries its totals and
cost. Model calls follow the GenAI semantic conventions, as a model client's instrumentation writes
them.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer
from server_support import WAIT, running_server
from test_runs_live import PROGRESS_BOUND_SECONDS, Client

from otel_dashboard.model.prices import PriceBook, load_price_file
from otel_dashboard.pipeline.processor import DashboardSpanProcessor
from otel_dashboard.state.dashboard import DashboardState

pytestmark = pytest.mark.timeout(60)

SPANS_DIR = Path(__file__).parent / "fixtures" / "spans"


@contextmanager
def traced(processor: DashboardSpanProcessor) -> Iterator[Tracer]:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    try:
        yield provider.get_tracer("agent-framework")
    finally:
        provider.shutdown()


class Gate:
    """Steps of an agent run on its own thread, released one at a time by the test."""

    def __init__(self) -> None:
        self._events = [threading.Event() for _ in range(8)]
        self._next = 0

    def wait(self, step: int) -> None:
        assert self._events[step].wait(WAIT), f"step {step} never released"

    def release(self) -> float:
        self._events[self._next].set()
        self._next += 1
        return time.monotonic()


def agent_run(tracer: Tracer, gate: Gate, *, model: str = "gpt-4o", provider: str = "openai") -> None:
    """invoke_agent -> chat (waits) -> execute_tool (waits) -> done (waits)."""
    with tracer.start_as_current_span("invoke_agent WeatherAgent", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "WeatherAgent",
    }):
        with tracer.start_as_current_span(f"chat {model}", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": model, "gen_ai.provider.name": provider,
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}]),
        }) as chat:
            gate.wait(0)
            chat.set_attribute("gen_ai.usage.input_tokens", 1000)
            chat.set_attribute("gen_ai.usage.output_tokens", 100)
        with tracer.start_as_current_span("execute_tool get_weather", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather",
        }):
            gate.wait(1)
        gate.wait(2)


def start(target: Any, *args: Any, **kwargs: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
    thread.start()
    return thread


async def next_completion(client: Client) -> dict[str, Any]:
    """The data of the next agent_execution_completed the client receives."""
    while True:
        _, message = await client.next("events")
        for event in message["events"]:
            if event["event_type"] == "agent_execution_completed":
                return event["data"]


async def _follow_a_run(session: aiohttp.ClientSession, state: DashboardState,
                        make_processor: Callable[[Any], DashboardSpanProcessor]) -> dict[str, Any]:
    async with running_server(state) as server:
        client = await Client.connect(session, server)
        gate = Gate()
        with traced(make_processor(server)) as tracer:
            thread = start(agent_run, tracer, gate)
            run = (await client.progress())["runs"][0]
            assert (run["agent_name"], run["current_step"]) == ("WeatherAgent", "waiting on gpt-4o")

            ended = gate.release()  # the model call ends
            while True:
                arrived, message = await client.next("run_progress")
                run = message["runs"][0]
                if run["model_calls"] == 1:
                    break
            assert arrived - ended < PROGRESS_BOUND_SECONDS
            assert run["tokens"]["input"] == 1000 and run["tokens"]["total"] == 1100
            assert run["task_description"] == "Weather in Paris?"
            while run["current_step"] != "calling tool get_weather":
                run = (await client.progress())["runs"][0]

            late = await Client.connect(session, server)  # mid-run: the run is in its snapshot
            assert [r["run_id"] for r in late.snapshot["runs"]] == [run["run_id"]]

            gate.release()
            while run["tool_calls"] != 1:
                run = (await client.progress())["runs"][0]
            assert run["tools"] == {"get_weather": {"calls": 1, "failures": 0}}
            gate.release()
            await asyncio.to_thread(thread.join, WAIT)
            completion = await next_completion(client)
        assert completion["run_id"] == run["run_id"]
        assert state.get_open_runs() == []
        return completion


async def test_a_run_followed_live_in_process(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    completion = await _follow_a_run(session, state, lambda _: DashboardSpanProcessor(state=state))
    assert (completion["model_calls"], completion["tool_calls"]) == (1, 1)
    assert completion["tokens"]["total"] == 1100 and completion["tokens_source"] == "model_calls"
    # gpt-4o is in genai-prices' bundled data: priced, never fetched
    assert completion["cost_status"] == "priced" and completion["cost_usd"] > 0


async def test_a_run_followed_live_through_the_remote_processor(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    completion = await _follow_a_run(session, state, lambda s: DashboardSpanProcessor(endpoint=s.url))
    assert (completion["model_calls"], completion["tool_calls"]) == (1, 1)
    assert completion["tokens"]["total"] == 1100


def test_a_price_file_prices_a_self_hosted_model(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": [
        {"model": "local-llama", "input_per_mtok": 2.0, "output_per_mtok": 10.0}]}))
    state = DashboardState()
    gate = Gate()
    processor = DashboardSpanProcessor(state=state, prices=load_price_file(prices))
    with traced(processor) as tracer:
        for _ in range(3):
            gate.release()
        agent_run(tracer, gate, model="local-llama", provider="self-hosted")
        assert processor.force_flush(5000)
    completion = next(e.data for e in state.recent_events(50)
                      if e.event_type.value == "agent_execution_completed")
    assert completion["cost_status"] == "priced"
    assert completion["cost_usd"] == pytest.approx(1000 * 2.0 / 1e6 + 100 * 10.0 / 1e6)


def test_an_unknown_model_shows_its_tokens_and_no_price() -> None:
    state = DashboardState()
    gate = Gate()
    processor = DashboardSpanProcessor(state=state, prices=PriceBook(use_builtin=False))
    with traced(processor) as tracer:
        for _ in range(3):
            gate.release()
        agent_run(tracer, gate, model="gpt-4o")
        assert processor.force_flush(5000)
    completion = next(e.data for e in state.recent_events(50)
                      if e.event_type.value == "agent_execution_completed")
    assert (completion["cost_status"], completion["cost_usd"]) == ("no_price", None)
    assert completion["unpriced_models"] == ["gpt-4o"] and completion["tokens"]["total"] == 1100


async def test_over_otlp_a_run_shows_when_its_first_spans_arrive(session: aiohttp.ClientSession) -> None:
    """pydantic-ai's spans, sent as an exporter sends them: the model and tool calls first (they end
    first), the agent span later. The run shows live from the first request, then completes."""
    doc = json.loads((SPANS_DIR / "pydantic_ai" / "ok.json").read_text())
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    agent = next(s for s in spans if s["name"].startswith("invoke_agent"))
    children = [s for s in spans if s is not agent]

    def request(selected: list[dict[str, Any]]) -> bytes:
        body = json.loads(json.dumps(doc))
        body["resourceSpans"][0]["scopeSpans"][0]["spans"] = selected
        return json.dumps(body).encode()

    async with running_server() as server:
        client = await Client.connect(session, server)
        headers = {"Content-Type": "application/json"}
        sent = time.monotonic()
        async with session.post(f"{server.url}/v1/traces", data=request(children), headers=headers) as r:
            assert r.status == 200
        arrived, message = await client.next("run_progress")
        assert arrived - sent < PROGRESS_BOUND_SECONDS
        (run,) = message["runs"]
        assert (run["run_id"], run["agent_name"]) == (agent["spanId"], "WeatherAgent")
        assert (run["model_calls"], run["tool_calls"], run["tokens"]["total"]) == (2, 1, 305)
        async with session.post(f"{server.url}/v1/traces", data=request([agent]), headers=headers) as r:
            assert r.status == 200
        completion = await next_completion(client)
        assert (completion["run_id"], completion["tokens"]["total"]) == (agent["spanId"], 305)
        assert server.state.get_open_runs() == []


async def test_a_run_given_up_leaves_the_open_runs_and_the_clients_are_told(
    session: aiohttp.ClientSession,
) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        client = await Client.connect(session, server)
        await asyncio.to_thread(state.update_runs, [{"run_id": "00000000000000aa", "agent_name": "A",
                                                     "status": "running"}])
        assert (await client.progress())["runs"][0]["status"] == "running"
        await asyncio.to_thread(state.update_runs, [{"run_id": "00000000000000aa", "status": "ended"}])
        assert (await client.progress())["runs"] == [{"run_id": "00000000000000aa", "status": "ended"}]
        assert state.get_open_runs() == []
        late = await Client.connect(session, server)
        assert late.snapshot["runs"] == []
