"""Per-agent series on ``GET /metrics`` (server/agent_series.py, wired by server/prometheus.py).

Real servers on loopback, real scrapes parsed by prometheus_client's own parser; runs come from
decorated agents and GenAI spans through the real span processor, or from events published as a
sender would publish them (budget alerts: the documented BudgetExceeded shape).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer
from prometheus_client.parser import text_string_to_metric_families
from server_support import WAIT, running_server
from tracing_support import routed_to

from instrumentation import agent
from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.model.prices import load_price_file
from otel_dashboard.pipeline.processor import DashboardSpanProcessor
from otel_dashboard.server.agent_series import MAX_AGENTS, MAX_MODELS, RUN_DURATION_BUCKETS, AgentSeries
from otel_dashboard.server.prometheus import CONTENT_TYPE
from otel_dashboard.state.dashboard import DashboardState

pytestmark = pytest.mark.timeout(30)

P = "otel_dashboard_"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(session: aiohttp.ClientSession, url: str) -> tuple[Samples, dict[str, str]]:
    """{(sample name, sorted labels): value} and {family name: type} of one real scrape."""
    async with session.get(url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == CONTENT_TYPE
        text = await resp.text()
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, types


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return P + name, tuple(sorted(labels.items()))


def completion(agent_name: Any, *, success: bool = True, duration_ms: Any = 1500.0,
               **data: Any) -> DashboardEvent:
    return DashboardEvent.create(
        EventType.AGENT_EXECUTION_COMPLETED,
        {"agent_id": f"id-{agent_name}", "agent_name": agent_name, "success": success,
         "duration_ms": duration_ms, **data},
        Severity.SUCCESS if success else Severity.ERROR,
    )


def budget_exceeded(agent_name: str, kind: Any, *, error_type: str = "BudgetExceeded") -> DashboardEvent:
    """An error_occurred in the documented BudgetExceeded shape (docs/guardrails.md)."""
    return DashboardEvent.create(EventType.ERROR_OCCURRED, {
        "source": agent_name, "error_type": error_type,
        "error_message": f"run of {agent_name} used 120,400 tokens, over its budget of 100,000",
        "agent_name": agent_name, "agent_id": "0123456789abcdef", "run_id": "0123456789abcdef",
        "service_name": "svc", "conversation_id": None,
        "budget": {"scope": "run", "kind": kind, "limit": 100000, "value": 120400,
                   "window_seconds": None, "agent": None},
    }, Severity.ERROR)


@contextmanager
def traced(processor: DashboardSpanProcessor) -> Iterator[Tracer]:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    try:
        yield provider.get_tracer("agent-framework")
    finally:
        provider.shutdown()


def genai_run(tracer: Tracer, agent_name: str, models: list[str]) -> None:
    """invoke_agent with one chat span per model (1000 input, 100 output tokens each)."""
    with tracer.start_as_current_span(f"invoke_agent {agent_name}", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent_name,
    }):
        for model in models:
            with tracer.start_as_current_span(f"chat {model}", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": model,
                "gen_ai.provider.name": "self-hosted",
                "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100,
            }):
                pass


# --------------------------------------------------------------------------- real runs
async def test_decorated_agents_count_runs_by_status_and_duration(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    processor = DashboardSpanProcessor(state=state)

    @agent(name="Planner")
    def plan(fail: bool) -> str:
        if fail:
            raise RuntimeError("no plan")
        return "plan"

    def run_three() -> None:
        plan(False)
        plan(False)
        with pytest.raises(RuntimeError):
            plan(True)

    try:
        async with running_server(state) as server:
            before, types = await scrape(session, server.url)
            with routed_to(processor):
                await asyncio.to_thread(run_three)
            assert await asyncio.to_thread(processor.force_flush, 5000)
            got, _ = await scrape(session, server.url)
    finally:
        processor.shutdown(5000)

    # Declared before any run (HELP and TYPE lines), with no sample yet.
    assert types[P + "runs"] == "counter" and types[P + "run_duration_seconds"] == "histogram"
    for family in ("tokens", "cost_usd", "budget_exceeded"):
        assert types[P + family] == "counter"
    assert not [k for k in before if k[0].startswith(P + "runs")]
    assert got[key("runs_total", agent="Planner", status="ok")] == 2
    assert got[key("runs_total", agent="Planner", status="error")] == 1
    assert got[key("run_duration_seconds_count", agent="Planner")] == 3
    assert got[key("run_duration_seconds_bucket", agent="Planner", le="+Inf")] == 3
    assert got[key("run_duration_seconds_sum", agent="Planner")] >= 0
    assert len([k for k in got if k[0] == P + "run_duration_seconds_bucket"]) == len(RUN_DURATION_BUCKETS) + 1
    # Decorated agents without model calls carry no tokens: no token or cost series.
    assert not [k for k in got if k[0] in (P + "tokens_total", P + "cost_usd_total")]


async def test_genai_runs_count_tokens_and_cost_by_model(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": [
        {"model": "local-llama", "input_per_mtok": 2.0, "output_per_mtok": 10.0},
        {"model": "local-mistral", "input_per_mtok": 1.0, "output_per_mtok": 1.0}]}))
    state = DashboardState()
    processor = DashboardSpanProcessor(state=state, prices=load_price_file(prices))
    async with running_server(state) as server:
        with traced(processor) as tracer:
            await asyncio.to_thread(genai_run, tracer, "WeatherAgent", ["local-llama"])
            await asyncio.to_thread(genai_run, tracer, "WeatherAgent", ["local-llama"])
            await asyncio.to_thread(genai_run, tracer, "Router", ["local-llama", "local-mistral"])
            await asyncio.to_thread(genai_run, tracer, "Unpriced", ["gpt-unknown-model"])
            assert await asyncio.to_thread(processor.force_flush, 5000)
        got, _ = await scrape(session, server.url)

    assert got[key("runs_total", agent="WeatherAgent", status="ok")] == 2
    assert got[key("tokens_total", agent="WeatherAgent", model="local-llama", type="input")] == 2000
    assert got[key("tokens_total", agent="WeatherAgent", model="local-llama", type="output")] == 200
    assert got[key("cost_usd_total", agent="WeatherAgent", model="local-llama")] == pytest.approx(
        2 * (1000 * 2.0 + 100 * 10.0) / 1e6)
    # A run's totals are not split by model: a run of two models counts under "multiple".
    assert got[key("tokens_total", agent="Router", model="multiple", type="input")] == 2000
    assert got[key("tokens_total", agent="Router", model="multiple", type="output")] == 200
    assert got[key("cost_usd_total", agent="Router", model="multiple")] == pytest.approx(
        (1000 * 2.0 + 100 * 10.0 + 1000 * 1.0 + 100 * 1.0) / 1e6)
    # Tokens without a price: tokens counted, no cost series.
    assert got[key("tokens_total", agent="Unpriced", model="gpt-unknown-model", type="input")] == 1000
    assert key("cost_usd_total", agent="Unpriced", model="gpt-unknown-model") not in got


# --------------------------------------------------------------------------- budgets
async def test_budget_exceeded_counts_by_agent_and_kind(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        state.publish(budget_exceeded("Planner", "tokens"))
        state.publish(budget_exceeded("Planner", "tokens"))
        state.publish(budget_exceeded("Planner", "cost_usd"))
        state.publish(budget_exceeded("Researcher", "duration_seconds"))
        state.publish(budget_exceeded("Researcher", "bananas"))  # not a budget kind: "other"
        state.publish(budget_exceeded("Planner", "tokens", error_type="LoopSuspected"))  # not counted
        await state.error_occurred("Planner", "boom", "RuntimeError")  # not counted
        got, _ = await scrape(session, server.url)

    budget = {k: v for k, v in got.items() if k[0] == P + "budget_exceeded_total"}
    assert budget == {
        key("budget_exceeded_total", agent="Planner", kind="tokens"): 2,
        key("budget_exceeded_total", agent="Planner", kind="cost_usd"): 1,
        key("budget_exceeded_total", agent="Researcher", kind="duration_seconds"): 1,
        key("budget_exceeded_total", agent="Researcher", kind="other"): 1,
    }
    assert state.get_counters()["subscriber_errors"] == 0


# --------------------------------------------------------------------------- caps
async def test_agents_and_models_past_the_caps_fold_into_other(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    extra = 7
    async with running_server(state) as server:
        for i in range(MAX_AGENTS + extra):
            state.publish(completion(f"agent-{i:03}", models=[f"model-{i % (MAX_MODELS + extra):03}"],
                                     tokens={"input": 10, "output": 1}, cost_usd=0.5))
        state.publish(budget_exceeded("agent-999", "tokens"))  # a new agent past the cap
        state.publish(budget_exceeded("agent-000", "tokens"))  # an admitted one keeps its name
        got, _ = await scrape(session, server.url)

    runs = {k: v for k, v in got.items() if k[0] == P + "runs_total"}
    agents = {dict(labels)["agent"] for _, labels in runs}
    assert len(agents) == MAX_AGENTS + 1 and "other" in agents and "agent-099" in agents
    assert "agent-100" not in agents
    assert got[key("runs_total", agent="other", status="ok")] == extra
    assert sum(runs.values()) == MAX_AGENTS + extra  # nothing lost, only folded
    models = {dict(labels)["model"] for name, labels in got if name == P + "tokens_total"}
    assert len(models) == MAX_MODELS + 1 and "other" in models and "model-050" not in models
    tokens_in = sum(v for (name, labels), v in got.items()
                    if name == P + "tokens_total" and dict(labels)["type"] == "input")
    assert tokens_in == 10 * (MAX_AGENTS + extra)
    assert sum(v for k, v in got.items() if k[0] == P + "cost_usd_total") == pytest.approx(
        0.5 * (MAX_AGENTS + extra))
    assert got[key("budget_exceeded_total", agent="other", kind="tokens")] == 1
    assert got[key("budget_exceeded_total", agent="agent-000", kind="tokens")] == 1
    # Folded: 7 runs + 1 budget alert by agent; by model, the runs of agents 50-56 (models 50-56).
    assert got[key("agent_series_folded_total", label="agent")] == extra + 1
    assert got[key("agent_series_folded_total", label="model")] == extra


def test_caps_must_be_positive() -> None:
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="max_agents must be a positive integer"):
            AgentSeries(max_agents=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_models"):
        AgentSeries(max_models=0)


# --------------------------------------------------------------------------- odd input, lifetime, threads
async def test_odd_completions_count_without_raising(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    async with running_server(state) as server:
        state.publish(completion(None, duration_ms="slow", tokens=["x"], cost_usd=float("nan")))
        state.publish(completion(12, duration_ms=-5, tokens={"input": "many", "output": 3}, models="gpt"))
        state.publish(completion("A" * 500, duration_ms=7_200_000, input_tokens=5, output_tokens=2,
                                 model="m1", cost_usd=-1, success=False))
        got, _ = await scrape(session, server.url)

    assert got[key("runs_total", agent="unknown", status="ok")] == 2
    assert got[key("runs_total", agent="A" * 128, status="error")] == 1  # cut to 128 characters
    assert got[key("tokens_total", agent="unknown", model="unknown", type="output")] == 3
    assert got[key("tokens_total", agent="A" * 128, model="m1", type="input")] == 5
    assert not [k for k in got if k[0] == P + "cost_usd_total"]  # NaN and negative costs ignored
    assert key("run_duration_seconds_count", agent="unknown") not in got  # no usable duration
    two_hours = "A" * 128
    assert got[key("run_duration_seconds_bucket", agent=two_hours, le="3600.0")] == 0
    assert got[key("run_duration_seconds_bucket", agent=two_hours, le="+Inf")] == 1
    assert got[key("run_duration_seconds_sum", agent=two_hours)] == 7200
    assert state.get_counters()["subscriber_errors"] == 0


async def test_counts_start_with_the_server_and_stop_with_it(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    state.publish(completion("Before"))
    async with running_server(state) as server:
        subscribers = state.get_counters()["subscribers"]
        state.publish(completion("During"))
        got, _ = await scrape(session, server.url)
    assert key("runs_total", agent="Before", status="ok") not in got
    assert got[key("runs_total", agent="During", status="ok")] == 1
    assert subscribers >= 2  # the broadcaster and the per-agent series
    assert state.get_counters()["subscribers"] == 0  # both unsubscribed when the server stopped


async def test_publishing_threads_lose_no_count(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    threads, per_thread = 4, 250

    def publish(n: int) -> None:
        for i in range(per_thread):
            state.publish(completion(f"T{n}", success=i % 5 != 0, tokens={"input": 2, "output": 1},
                                     models=["m"], cost_usd=0.25))

    async with running_server(state) as server:
        workers = [threading.Thread(target=publish, args=(n,), daemon=True) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            await asyncio.to_thread(worker.join, WAIT)
        got, _ = await scrape(session, server.url)

    for n in range(threads):
        assert got[key("runs_total", agent=f"T{n}", status="ok")] == per_thread * 4 / 5
        assert got[key("runs_total", agent=f"T{n}", status="error")] == per_thread / 5
        assert got[key("tokens_total", agent=f"T{n}", model="m", type="input")] == 2 * per_thread
        assert got[key("cost_usd_total", agent=f"T{n}", model="m")] == 0.25 * per_thread
        assert got[key("run_duration_seconds_count", agent=f"T{n}")] == per_thread
