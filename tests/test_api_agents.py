"""The live agent view's server side against a real server on loopback: ``GET /api/agents`` (body,
400s, auth), the metrics' ``window_*`` fields in ``/stats`` and the snapshot, one count of "active"
(started runs UNION open runs) in the metrics, ``/stats`` and ``/health``, ``/api/events?run_id=``
(memory and SQLite), and runs unknown since a restart coming back over a real SQLite file when a
remote-style ``POST /api/events`` names them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from server_support import WAIT, running_server

from otel_dashboard.model.events import DashboardEvent, EventType, Severity, format_timestamp
from otel_dashboard.server.security import SecurityConfig
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.store.sqlite import SqliteEventStore

pytestmark = pytest.mark.timeout(60)

WINDOW_KEYS = ("window_seconds", "window_runs", "window_failed_runs", "window_error_rate",
               "window_tokens_input", "window_tokens_output", "window_cost_usd", "window_cost_status")
AGENT_KEYS = {"agent", "service", "running", "runs", "failures", "success_rate", "duration_ms", "tokens",
              "cost_usd", "cost_status", "last_error", "last_run_at", "activity", "failures_activity",
              "sources", "metrics",  # where the figures came from (tests/test_otlp_metrics.py)
              "over_budget_runs"}  # runs of the window over a run budget (tests/test_budgets.py)


def rid(n: int) -> str:
    return f"{n:016x}"


def wire(event_type: EventType, data: dict[str, Any], severity: Severity = Severity.INFO) -> dict[str, Any]:
    """An event as a remote processor posts it (no seq)."""
    event = DashboardEvent.create(event_type, data, severity).to_dict()
    event.pop("seq")
    return event


def started(n: int, agent: str = "Researcher", service: str = "research", **extra: Any) -> dict[str, Any]:
    return wire(EventType.AGENT_EXECUTION_STARTED, {
        "run_id": rid(n), "agent_id": agent.lower(), "agent_name": agent, "service_name": service,
        "task_description": "t", "started_at": extra.pop("started_at", format_timestamp()), **extra})


def completed(n: int, agent: str = "Researcher", service: str = "research", *, ok: bool = True,
              ms: float = 100.0, tokens: tuple[int, int] = (0, 0), cost: float | None = None,
              **extra: Any) -> dict[str, Any]:
    data = {"run_id": rid(n), "agent_id": agent.lower(), "agent_name": agent, "service_name": service,
            "success": ok, "duration_ms": ms, "tokens": {"input": tokens[0], "output": tokens[1]},
            "cost_usd": cost, "cost_status": "priced" if cost is not None else "no_price", **extra}
    return wire(EventType.AGENT_EXECUTION_COMPLETED, data, Severity.SUCCESS if ok else Severity.ERROR)


def progress(n: int, agent: str = "Researcher", service: str = "research", **fields: Any) -> dict[str, Any]:
    return {"run_id": rid(n), "agent_id": agent.lower(), "agent_name": agent, "service_name": service,
            "started_at": fields.pop("started_at", format_timestamp()), "status": "running", **fields}


async def post(session: aiohttp.ClientSession, url: str, events: list[dict[str, Any]],
               runs: list[dict[str, Any]] | None = None) -> None:
    body: dict[str, Any] = {"events": events}
    if runs is not None:
        body["runs"] = runs
    async with session.post(url + "/api/events", json=body) as response:
        assert response.status == 200, await response.text()


async def get(session: aiohttp.ClientSession, url: str, path: str, **params: Any) -> tuple[int, Any]:
    async with session.get(url + path, params=params) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


async def snapshot(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.ws_connect(url + "/ws") as ws:
        message = await asyncio.wait_for(ws.receive(), WAIT)
        body: dict[str, Any] = orjson.loads(message.data)
        assert body["type"] == "snapshot"
        return body


# --------------------------------------------------------------------------- GET /api/agents
async def test_api_agents_numbers_totals_and_the_same_numbers_in_metrics(
    session: aiohttp.ClientSession,
) -> None:
    async with running_server() as server:
        url = server.url
        events = [started(1), started(2), started(3, "Writer", "writers")]
        events += [completed(1, ms=200.0, tokens=(1000, 100), cost=0.02),
                   completed(2, ok=False, ms=800.0, tokens=(500, 50), cost=0.01,
                             error_type="TimeoutError", error_message="the search tool timed out")]
        events += [started(4), started(5, "Writer", "writers")]
        await post(session, url, events, runs=[progress(6, "Planner", "plans")])  # progress only

        status, body = await get(session, url, "/api/agents")
        assert status == 200
        assert (body["window_seconds"], body["bucket_seconds"]) == (3600, 60)
        assert body["generated_at"].endswith("Z")
        agents = {(a["agent"], a["service"]): a for a in body["agents"]}
        assert set(agents) == {("Researcher", "research"), ("Writer", "writers"), ("Planner", "plans")}
        assert all(set(a) == AGENT_KEYS and len(a["activity"]) == 60 for a in body["agents"])
        researcher = agents[("Researcher", "research")]
        assert (researcher["running"], researcher["runs"], researcher["failures"]) == (1, 2, 1)
        assert researcher["success_rate"] == 0.5
        assert researcher["duration_ms"] == {"p50": 200.0, "p95": 800.0, "samples": 2}
        assert researcher["tokens"] == {"input": 1500, "output": 150}
        assert researcher["cost_usd"] == pytest.approx(0.03) and researcher["cost_status"] == "priced"
        assert researcher["last_error"]["type"] == "TimeoutError"
        assert researcher["last_error"]["message"] == "the search tool timed out"
        assert researcher["last_error"]["run_id"] == rid(2) and researcher["last_error"]["at"].endswith("Z")
        assert researcher["activity"][-1] == 2 and researcher["failures_activity"][-1] == 1
        writer = agents[("Writer", "writers")]
        assert (writer["running"], writer["runs"], writer["success_rate"]) == (2, 0, None)
        assert writer["last_error"] is None
        assert writer["duration_ms"] == {"p50": None, "p95": None, "samples": 0}
        assert agents[("Planner", "plans")]["running"] == 1
        assert body["totals"] == {"runs": 2, "failures": 1, "error_rate": 0.5, "running": 4,
                                  "tokens": {"input": 1500, "output": 150}, "cost_usd": 0.03,
                                  "cost_status": "priced",
                                  "sources": {"runs": "spans", "tokens": "spans", "cost": "spans"}}

        # The same numbers in /stats' metrics and the snapshot's metrics.
        expected = {"window_seconds": 3600, "window_runs": 2, "window_failed_runs": 1,
                    "window_error_rate": 0.5, "window_tokens_input": 1500, "window_tokens_output": 150,
                    "window_cost_usd": 0.03, "window_cost_status": "priced"}
        _, stats = await get(session, url, "/stats")
        assert {k: stats["metrics"][k] for k in WINDOW_KEYS} == expected
        view = await snapshot(session, url)
        assert {k: view["metrics"][k] for k in WINDOW_KEYS} == expected

        # One count of "active": the open runs, started or known from progress only.
        assert stats["metrics"]["active_agents"] == stats["active_agents"] == 4
        assert view["metrics"]["active_agents"] == 4
        _, health = await get(session, url, "/health")
        assert health["active_agents"] == 4 and health["stalled_agents"] == 0

        # Filters and limit (most recently active first: the running ones are active now).
        _, only = await get(session, url, "/api/agents", agent="writer")  # the agent id
        assert [a["agent"] for a in only["agents"]] == ["Writer"] and only["totals"] == body["totals"]
        _, only = await get(session, url, "/api/agents", service="plans,research")
        assert sorted(a["agent"] for a in only["agents"]) == ["Planner", "Researcher"]
        _, one = await get(session, url, "/api/agents", limit="1")
        assert len(one["agents"]) == 1


async def test_api_agents_refuses_bad_parameters_and_needs_the_token(session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        many = ",".join(f"a{i}" for i in range(1001))
        for params, parameter in [({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
                                  ({"limit": "x"}, "limit"), ({"agents": "x"}, "agents"),
                                  ({"agent": many}, "agent"), ({"service": many}, "service")]:
            status, body = await get(session, server.url, "/api/agents", **params)
            assert status == 400 and body["parameter"] == parameter and body["error"]
    token = "s3cret-token-123"
    config = SecurityConfig.from_options(token=token, bind_host="127.0.0.1")
    async with running_server(security=config) as server:
        async with session.get(server.url + "/api/agents") as response:
            assert response.status == 401
        async with session.get(server.url + "/api/agents", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200 and (await r.json())["agents"] == []


# --------------------------------------------------------------------------- /api/events?run_id=
@pytest.mark.parametrize("durable", [False, True], ids=["memory", "sqlite"])
async def test_api_events_run_id_filter(
    session: aiohttp.ClientSession, tmp_path: Path, durable: bool,
) -> None:
    state = DashboardState(store=SqliteEventStore(tmp_path / "e.db")) if durable else DashboardState(
        max_history=1000)
    try:
        async with running_server(state) as server:
            url = server.url
            error = wire(EventType.ERROR_OCCURRED, {"run_id": rid(2), "agent_name": "Researcher",
                                                    "error_type": "ValueError", "error_message": "x"},
                         Severity.ERROR)
            await post(session, url, [started(1), started(2), error, completed(1), completed(2, ok=False),
                                      started(3)])
            if durable:
                assert state.wait_durable(timeout_seconds=5)

            async def types(**params: Any) -> list[tuple[str, str]]:
                status, body = await get(session, url, "/api/events", **params)
                assert status == 200, body
                return [(e["event_type"], e["data"]["run_id"]) for e in body["events"]]

            assert await types(run_id=rid(2)) == [("agent_execution_started", rid(2)),
                                                  ("error_occurred", rid(2)),
                                                  ("agent_execution_completed", rid(2))]
            assert [r for _, r in await types(run_id=[rid(1), rid(3)])] == [rid(1), rid(1), rid(3)]
            assert await types(run_id=rid(2), event_type="error_occurred") == [("error_occurred", rid(2))]
            assert await types(run_id="nothing") == []
            status, body = await get(session, url, "/api/events",
                                     run_id=",".join(str(i) for i in range(1001)))  # a URL fits 8 KiB
            assert status == 400 and body["parameter"] == "run_id"
    finally:
        state.store.close()


# --------------------------------------------------------------------------- unknown since restart
async def test_runs_open_at_a_restart_are_unknown_then_come_back_when_named(
    session: aiohttp.ClientSession, tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    first = DashboardState(store=SqliteEventStore(path))
    began = format_timestamp()
    async with running_server(first) as server:
        await post(session, server.url, [started(n, started_at=began) for n in (1, 2, 3)]
                   + [completed(9, tokens=(7, 3), cost=0.5)])
        assert first.wait_durable(timeout_seconds=5)
    first.store.close()

    again = DashboardState(store=SqliteEventStore(path))  # a real restart over the same file
    try:
        async with running_server(again) as server:
            url = server.url
            view = await snapshot(session, url)
            assert [a["run_id"] for a in view["lost_agents"]] == [rid(1), rid(2), rid(3)]
            assert all(a["status"] == "unknown" and a["unknown_since"] and a["lost_detected_at"]
                       for a in view["lost_agents"])
            assert view["active_agents"] == [] and view["metrics"]["active_agents"] == 0
            assert view["metrics"]["window_runs"] == 1 and view["metrics"]["window_cost_usd"] == 0.5

            # A remote processor still at work: progress for run 1, an event naming run 2.
            error = wire(EventType.ERROR_OCCURRED, {"run_id": rid(2), "agent_name": "Researcher",
                                                    "error_message": "retrying"}, Severity.ERROR)
            await post(session, url, [error], runs=[progress(1, started_at=began, current_step="thinking")])
            view = await snapshot(session, url)
            assert [a["run_id"] for a in view["lost_agents"]] == [rid(3)]
            assert sorted(a["run_id"] for a in view["active_agents"]) == [rid(1), rid(2)]
            assert all(a["started_at"] == began for a in view["active_agents"])  # the original start
            assert view["metrics"]["active_agents"] == 2 and view["metrics"]["lost_agents"] == 1
            _, body = await get(session, url, "/api/agents")
            assert body["totals"]["running"] == 2 and body["agents"][0]["running"] == 2

            await post(session, url, [completed(1), completed(2, ok=False)])
            _, stats = await get(session, url, "/stats")
            assert stats["metrics"]["active_agents"] == 0 and stats["metrics"]["lost_agents"] == 1
            assert stats["metrics"]["window_runs"] == 3 and stats["metrics"]["window_failed_runs"] == 1
            assert [a["run_id"] for a in again.get_lost_agents()] == [rid(3)]
    finally:
        again.store.close()
