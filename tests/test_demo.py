"""The demo's simulated agents, run for a few waves at 40x speed against a real server on loopback,
read back through ``GET /api/events`` as any client would: what the dashboard shows from them.

One bounded run (seeded) serves every test here: model calls with tokens and a cost, tool calls, a
Planner run with nested MarketResearcher runs, failures with a clear error type, opportunity titles
unique and cased from the demo's own table, one DeepDiver at a time taking 27-65 simulated seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from server_support import WAIT, running_server
from tracing_support import routed_to

from otel_dashboard.demo import _MARKETS, _Opportunities, run_scenario
from otel_dashboard.pipeline.processor import DashboardSpanProcessor
from otel_dashboard.state.dashboard import DashboardState

pytestmark = pytest.mark.timeout(60)

SEED = 3
SPEED = 40.0
WAVES = 14

PRICED_MODELS = {"gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", "gemini-2.0-flash"}
UNPRICED_MODEL = "local-llama-3-8b"  # the demo's one deliberately unpriced (self-hosted) model
MARKET_TITLES = {"Home Energy Storage", "B2B Invoice Automation", "Pet Telehealth", "Urban Vertical Farming",
                 "AI Code Review", "Cold-Chain Logistics", "Senior Fitness Apps", "Carbon Accounting SaaS"}
DEMO_ERROR_TYPES = {"TimeoutError", "ValueError", "otel_dashboard.demo.RateLimitError"}


async def _events(session: aiohttp.ClientSession, base: str, event_type: str) -> list[dict[str, Any]]:
    params = {"event_type": event_type, "limit": "1000", "after_seq": "0"}  # oldest first
    async with session.get(f"{base}/api/events", params=params) as response:
        assert response.status == 200, await response.text()
        page = await response.json()
    assert not page["has_more"]
    events: list[dict[str, Any]] = page["events"]
    return events


async def _run_demo() -> dict[str, Any]:
    state = DashboardState(max_history=10_000)  # the whole run stays readable (default: 100)
    processor = DashboardSpanProcessor(state=state)
    async with running_server(state) as server, aiohttp.ClientSession() as session:
        with routed_to(processor):
            started = time.monotonic()
            await asyncio.wait_for(run_scenario(seed=SEED, speed=SPEED, waves=WAVES), WAIT * 3)
            elapsed = time.monotonic() - started
            assert processor.force_flush()
        found: dict[str, Any] = {"elapsed": elapsed}
        for key, event_type in [("completed", "agent_execution_completed"),
                                ("started", "agent_execution_started"),
                                ("opportunities", "opportunity_discovered")]:
            found[key] = [event["data"] for event in await _events(session, server.url, event_type)]
        return found


def _instant(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def demo() -> Iterator[dict[str, Any]]:
    yield asyncio.run(_run_demo())


def test_every_run_completes_and_none_in_zero_time(demo: dict[str, Any]) -> None:
    started = {run["run_id"] for run in demo["started"]}
    completed = {run["run_id"] for run in demo["completed"]}
    assert started == completed  # a bounded run ends with no run left open
    assert {run["agent_name"] for run in demo["completed"]} == {
        "Planner", "MarketResearcher", "TrendScout", "CompetitorAnalyst", "DeepDiver"}
    # Every agent awaits real (simulated) work: no "completed in 0 ms".
    assert min(run["duration_ms"] for run in demo["completed"]) > 1.0
    # A few runs per second at most, in demo time (wall time x speed; overheads only lower it).
    assert len(demo["completed"]) / (demo["elapsed"] * SPEED) < 3.0


def test_model_calls_carry_tokens_and_a_cost(demo: dict[str, Any]) -> None:
    succeeded = [run for run in demo["completed"] if run["success"]]
    priced = [run for run in succeeded if run["cost_status"] == "priced"]
    assert priced, "no priced run"
    for run in priced:
        assert run["model_calls"] > 0 and run["tokens"]["input"] > 0 and run["tokens"]["output"] > 0
        assert run["cost_usd"] > 0
        assert set(run["models"]) <= PRICED_MODELS
    assert {model for run in priced for model in run["models"]} == PRICED_MODELS
    unpriced = {model for run in demo["completed"] for model in run["unpriced_models"]}
    assert unpriced == {UNPRICED_MODEL}
    no_price = {run["agent_name"] for run in succeeded if run["cost_status"] == "no_price"}
    assert no_price == {"CompetitorAnalyst"}


def test_tool_calls_are_counted_in_their_runs(demo: dict[str, Any]) -> None:
    tools = {name for run in demo["completed"] for name in run["tools"]}
    assert tools == {"web_search", "fetch_page", "download_filing"}
    researcher = next(run for run in demo["completed"]
                      if run["agent_name"] == "MarketResearcher" and run["success"])
    assert researcher["tools"]["web_search"]["calls"] == 1 and researcher["tool_calls"] >= 2


def test_the_planner_runs_researchers_as_nested_runs(demo: dict[str, Any]) -> None:
    planners = {run["run_id"] for run in demo["completed"] if run["agent_name"] == "Planner"}
    assert len(planners) == WAVES
    nested = [run for run in demo["completed"] if run["parent_run_id"] is not None]
    assert nested and all(run["agent_name"] == "MarketResearcher" for run in nested)
    assert all(run["parent_run_id"] in planners and run["root_run_id"] == run["parent_run_id"]
               for run in nested)
    for planner in (run for run in demo["completed"] if run["agent_name"] == "Planner" and run["success"]):
        assert sum(run["parent_run_id"] == planner["run_id"] for run in nested) == 2  # two markets per plan
    assert any(run["parent_run_id"] is None for run in demo["completed"]
               if run["agent_name"] == "MarketResearcher")  # and one researcher on its own per wave


def test_failures_have_a_clear_error_type_and_message(demo: dict[str, Any]) -> None:
    failed = [run for run in demo["completed"] if not run["success"]]
    assert failed, f"seed {SEED} produced no failure"
    for run in failed:
        assert run["error_type"] in DEMO_ERROR_TYPES
        assert run["error_message"]
    assert len(failed) < len(demo["completed"]) / 4  # now and then, not most of the time


def test_opportunities_are_unique_and_cased_from_the_table(demo: dict[str, Any]) -> None:
    titles = [opp["title"] for opp in demo["opportunities"]]
    assert len(titles) >= 5
    assert len(titles) == len(set(titles))
    for title in titles:
        market, _, angle = title.partition(": ")
        assert market in MARKET_TITLES and angle, title
        assert not any(word in title for word in ("Saas", "Ai ", "B2b")), title


def test_one_deep_diver_at_a_time_taking_30_to_60_seconds(demo: dict[str, Any]) -> None:
    dives = [run for run in demo["completed"] if run["agent_name"] == "DeepDiver"]
    assert any(run["success"] for run in dives)
    for run in dives:
        if run["success"]:  # a rate-limited model call ends a dive early
            # In demo seconds: its sleeps add up to 26.5-65 s; at 40x a loaded machine adds scheduling
            # delays, hence the loose upper bound.
            assert 26.5 <= run["duration_ms"] * SPEED / 1000 < 120.0
            assert run["model_calls"] == 5
    spans = sorted((_instant(run["started_at"]), run["duration_ms"] / 1000) for run in dives)
    for (start, duration), (next_start, _) in itertools.pairwise(spans):
        assert next_start >= start + duration - 0.05  # the next starts once this one ended


def test_opportunity_titles_run_out_rather_than_repeat() -> None:
    opportunities = _Opportunities(random.Random(0))
    titles = []
    for market in _MARKETS:
        while (found := opportunities.take(market)) is not None:
            titles.append(found[0])
    assert len(titles) == len(set(titles)) == 64
    assert {title.partition(": ")[0] for title in titles} == MARKET_TITLES
    assert all(opportunities.take(market) is None for market in _MARKETS)


@pytest.mark.parametrize(("kwargs", "needle"), [({"speed": 0}, "speed"), ({"waves": -1}, "waves")])
def test_bad_arguments(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        asyncio.run(run_scenario(**kwargs))

