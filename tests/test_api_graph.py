"""``GET /api/graph`` against a real server on loopback: the window scope from events posted to
``POST /api/events`` (with live progress) and from an in-process nested run (decorators + processor),
the trace scope of that run and of recorded fixtures posted to ``POST /v1/traces`` (an MCP call; an
OpenAI Agents handoff), and the 400s and 404 with their JSON bodies.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry import trace
from server_support import WAIT, running_server
from tracing_support import routed_to

from instrumentation import agent, tool
from otel_dashboard.model.events import DashboardEvent, EventType, Severity, format_timestamp
from otel_dashboard.pipeline.processor import DashboardSpanProcessor
from otel_dashboard.server.app import DashboardWebSocketServer
from otel_dashboard.state.dashboard import DashboardState

pytestmark = pytest.mark.timeout(60)

SPANS = Path(__file__).parent / "fixtures" / "spans"
SVC = "research"
PLANNER, RESEARCHER = f"agent:{SVC}/Planner", f"agent:{SVC}/MarketResearcher"


def rid(n: int) -> str:
    return f"{n:016x}"


def wire(event_type: EventType, data: dict[str, Any], severity: Severity = Severity.INFO) -> dict[str, Any]:
    event = DashboardEvent.create(event_type, data, severity).to_dict()
    event.pop("seq")
    return event


def run_data(n: int, agent_name: str, parent: int | None) -> dict[str, Any]:
    return {"run_id": rid(n), "agent_id": agent_name.lower(), "agent_name": agent_name, "service_name": SVC,
            "parent_run_id": rid(parent) if parent is not None else None}


def started(n: int, agent_name: str, parent: int | None = None) -> dict[str, Any]:
    return wire(EventType.AGENT_EXECUTION_STARTED, {**run_data(n, agent_name, parent),
                                                    "started_at": format_timestamp()})


def completed(n: int, agent_name: str, parent: int | None = None, *, ok: bool = True,
              tools: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    return wire(EventType.AGENT_EXECUTION_COMPLETED, {
        **run_data(n, agent_name, parent), "success": ok, "duration_ms": 5.0,
        "tools": {t: {"calls": c, "failures": f} for t, (c, f) in (tools or {}).items()},
    }, Severity.SUCCESS if ok else Severity.ERROR)


async def post_events(session: aiohttp.ClientSession, server: DashboardWebSocketServer,
                      events: list[dict[str, Any]], runs: list[dict[str, Any]] | None = None) -> None:
    body: dict[str, Any] = {"events": events, **({"runs": runs} if runs is not None else {})}
    async with session.post(f"{server.url}/api/events", json=body) as response:
        assert response.status == 200, await response.text()


async def get_graph(session: aiohttp.ClientSession, server: DashboardWebSocketServer,
                    query: str = "") -> tuple[int, dict[str, Any]]:
    async with session.get(f"{server.url}/api/graph{query}") as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


def by_id(graph: dict[str, Any]) -> tuple[dict[str, Any], dict[tuple[str, str, str], Any]]:
    return ({n["id"]: n for n in graph["nodes"]},
            {(e["source"], e["target"], e["kind"]): e for e in graph["edges"]})


async def graph_of_trace(session: aiohttp.ClientSession, server: DashboardWebSocketServer,
                         trace_id: str) -> dict[str, Any]:
    """The trace scope once the server keeps the trace (received spans are recorded off the loop)."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        status, body = await get_graph(session, server, f"?scope=trace&trace_id={trace_id}")
        if status == 200 or asyncio.get_running_loop().time() > deadline:
            assert status == 200, body
            return body
        await asyncio.sleep(0.02)


async def post_otlp(session: aiohttp.ClientSession, server: DashboardWebSocketServer,
                    doc: dict[str, Any]) -> None:
    async with session.post(f"{server.url}/v1/traces", data=json.dumps(doc),
                            headers={"Content-Type": "application/json"}) as response:
        assert response.status == 200, await response.text()


# --------------------------------------------------------------------------- window scope
async def test_window_scope_from_posted_events_lit_while_running_then_counted(
        session: aiohttp.ClientSession) -> None:
    async with running_server() as server:
        await post_events(session, server, [started(1, "Planner"), started(2, "MarketResearcher", 1),
                                            started(3, "MarketResearcher", 1)],
                          runs=[{**run_data(2, "MarketResearcher", 1), "status": "running",
                                 "started_at": format_timestamp(), "current_step": "calling tool web_search",
                                 "tools": {"web_search": {"calls": 1, "failures": 0}}}])
        status, live = await get_graph(session, server)
        assert status == 200 and live["scope"] == "window" and live["window_seconds"] == 3600
        assert set(live) == {"scope", "window_seconds", "generated_at", "nodes", "edges", "truncated"}
        nodes, edges = by_id(live)
        assert (nodes[PLANNER]["running"], nodes[RESEARCHER]["running"]) == (1, 2)
        assert nodes[RESEARCHER]["current_step"] == "calling tool web_search"
        assert edges[(PLANNER, RESEARCHER, "invokes")]["running"] == 2
        assert nodes["tool:web_search"] | {"first_seen": None} == {
            "id": "tool:web_search", "type": "tool", "name": "web_search", "service": None, "runs": 1,
            "failures": 0, "running": 1, "current_step": None, "first_seen": None}

        await post_events(session, server, [
            completed(2, "MarketResearcher", 1, tools={"web_search": (2, 1)}),
            completed(3, "MarketResearcher", 1, ok=False, tools={"fetch_page": (1, 0)}),
            completed(1, "Planner")])
        status, done = await get_graph(session, server, "?scope=window")
        assert status == 200 and not done["truncated"]
        nodes, edges = by_id(done)
        assert [n["id"] for n in done["nodes"]][:2] == sorted([PLANNER, RESEARCHER])  # same ms: by id
        assert all(n["running"] == 0 and n["current_step"] is None for n in done["nodes"])
        assert (nodes[RESEARCHER]["runs"], nodes[RESEARCHER]["failures"]) == (2, 1)
        assert edges[(PLANNER, RESEARCHER, "invokes")] == {
            "source": PLANNER, "target": RESEARCHER, "kind": "invokes", "count": 2, "failures": 1,
            "running": 0}
        assert edges[(RESEARCHER, "tool:web_search", "calls_tool")]["count"] == 2  # not 3: no double count
        assert edges[(RESEARCHER, "tool:fetch_page", "calls_tool")]["count"] == 1


async def test_an_in_process_nested_run_in_both_scopes(session: aiohttp.ClientSession) -> None:
    state = DashboardState()
    processor = DashboardSpanProcessor(state=state)
    inside, proceed = threading.Event(), threading.Event()
    seen: dict[str, str] = {}

    @agent(name="Critic")
    def critic(draft: str) -> str:
        seen["trace_id"] = format(trace.get_current_span().get_span_context().trace_id, "032x")
        inside.set()
        assert proceed.wait(WAIT), "the test never let the run finish"
        return draft

    @tool(name="review")
    def review(draft: str) -> str:
        return critic(draft)

    @tool(name="web_search")
    def web_search(query: str) -> str:
        return query

    @agent(name="MarketResearcher")
    def research(market: str) -> str:
        return web_search(market)

    @agent(name="Planner")
    def plan() -> str:
        research("heat pumps")
        research("solar")
        return review("plan")

    try:
        async with running_server(state) as server:
            with routed_to(processor):
                run = asyncio.ensure_future(asyncio.to_thread(plan))
                try:
                    assert await asyncio.to_thread(inside.wait, WAIT)
                    assert await asyncio.to_thread(processor.force_flush, 5000)
                    live = await graph_of_trace(session, server, seen["trace_id"])
                    _, window_live = await get_graph(session, server)
                finally:
                    proceed.set()
                await asyncio.wait_for(run, WAIT)
            assert await asyncio.to_thread(processor.force_flush, 5000)
            done = await graph_of_trace(session, server, seen["trace_id"])
            _, window = await get_graph(session, server)
    finally:
        processor.shutdown(5000)

    nodes, edges = by_id(live)
    planner = next(n for n in live["nodes"] if n["name"] == "Planner")
    researcher = next(n for n in live["nodes"] if n["name"] == "MarketResearcher")
    critic_node = next(n for n in live["nodes"] if n["name"] == "Critic")
    assert live["scope"] == "trace" and live["trace_id"] == seen["trace_id"]
    assert (planner["running"], critic_node["running"], researcher["runs"]) == (1, 1, 2)
    assert planner["current_step"] == "calling tool review"
    assert edges[(planner["id"], critic_node["id"], "agent_as_tool")]["running"] == 1
    assert "tool:review" not in nodes
    nodes, edges = by_id(done)
    assert all(n["running"] == 0 and n["current_step"] is None for n in done["nodes"])
    assert edges[(planner["id"], researcher["id"], "invokes")]["count"] == 2
    assert edges[(researcher["id"], "tool:web_search", "calls_tool")]["count"] == 2
    assert edges[(planner["id"], critic_node["id"], "agent_as_tool")]["count"] == 1
    # The window scope saw the same run through its events: the agent used as a tool is a sub-run.
    assert next(n for n in window_live["nodes"] if n["name"] == "Planner")["running"] == 1
    wnodes, wedges = by_id(window)
    assert wnodes[planner["id"]]["runs"] == 1 and wnodes[researcher["id"]]["runs"] == 2
    assert wedges[(planner["id"], researcher["id"], "invokes")]["count"] == 2
    assert wedges[(planner["id"], critic_node["id"], "invokes")]["count"] == 1
    assert wedges[(researcher["id"], "tool:web_search", "calls_tool")]["count"] == 2


# --------------------------------------------------------------------------- trace scope (recorded)
def _spans(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]


def _with_handoff(doc: dict[str, Any]) -> dict[str, Any]:
    """The recorded OpenAI Agents run, extended with a handoff as that instrumentation writes one:
    a TOOL span ``handoff to ForecastAgent`` in WeatherAgent's run, then the ForecastAgent AGENT span
    (under the workflow, as the SDK runs the next agent) naming WeatherAgent in ``graph.node.parent_id``."""
    doc = copy.deepcopy(doc)
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    agent_span = next(s for s in spans if s["name"] == "WeatherAgent")
    tool_span = next(s for s in spans if s["name"] == "get_weather")
    handoff = {**copy.deepcopy(tool_span), "name": "handoff to ForecastAgent", "spanId": "00000000000000a1",
               "attributes": [{"key": "openinference.span.kind", "value": {"stringValue": "TOOL"}}]}
    forecast = {**copy.deepcopy(agent_span), "name": "ForecastAgent", "spanId": "00000000000000a2",
                "startTimeUnixNano": str(int(agent_span["endTimeUnixNano"]) - 1000),
                "attributes": [
                    {"key": "openinference.span.kind", "value": {"stringValue": "AGENT"}},
                    {"key": "agent.name", "value": {"stringValue": "ForecastAgent"}},
                    {"key": "graph.node.id", "value": {"stringValue": "ForecastAgent"}},
                    {"key": "graph.node.parent_id", "value": {"stringValue": "WeatherAgent"}}]}
    spans.extend([handoff, forecast])
    return doc


async def test_trace_scope_of_recorded_fixtures_mcp_and_a_handoff(session: aiohttp.ClientSession) -> None:
    mcp = json.loads((SPANS / "mcp" / "ok.json").read_text())
    oai = _with_handoff(json.loads((SPANS / "openai_agents" / "ok.json").read_text()))
    async with running_server() as server:
        await post_otlp(session, server, mcp)
        await post_otlp(session, server, oai)
        graph = await graph_of_trace(session, server, _spans(mcp)[0]["traceId"])
        assert set(graph) == {"scope", "trace_id", "generated_at", "nodes", "edges", "truncated"}
        nodes, edges = by_id(graph)
        weather = "agent:recorder-mcp/WeatherAgent"
        assert [n["id"] for n in graph["nodes"]] == [weather, "tool:get_weather", "mcp:recorder-mcp-server"]
        assert (nodes[weather]["runs"], nodes[weather]["running"]) == (1, 0)
        assert nodes[weather]["current_step"] is None
        assert nodes["mcp:recorder-mcp-server"]["type"] == "mcp_server"
        # Three spans say "execute_tool get_weather" for one call: one call.
        assert edges[(weather, "tool:get_weather", "calls_tool")]["count"] == 1
        assert edges[("tool:get_weather", "mcp:recorder-mcp-server", "calls_tool")]["count"] == 1
        assert len(edges) == 2 and not graph["truncated"]

        graph = await graph_of_trace(session, server, _spans(oai)[0]["traceId"])
        nodes, edges = by_id(graph)
        service = next(n["service"] for n in graph["nodes"] if n["name"] == "WeatherAgent")
        workflow, weather, forecast = (f"agent:{service}/{n}" for n in ("Agent workflow", "WeatherAgent",
                                                                        "ForecastAgent"))
        assert edges[(weather, forecast, "handoff")]["count"] == 1  # the span and the attribute: one handoff
        assert edges[(workflow, weather, "invokes")]["count"] == 1
        assert edges[(workflow, forecast, "invokes")]["count"] == 1
        assert edges[(weather, "tool:get_weather", "calls_tool")]["count"] == 1
        assert "tool:handoff to ForecastAgent" not in nodes


# --------------------------------------------------------------------------- errors
async def test_bad_parameters_are_400s_naming_them_and_an_unknown_trace_a_404(
        session: aiohttp.ClientSession) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    async with running_server() as server:
        for query, parameter in (
            ("?scope=forever", "scope"),
            ("?scope=trace", "trace_id"),
            ("?scope=trace&trace_id=xyz", "trace_id"),
            (f"?scope=trace&trace_id={'0' * 32}", "trace_id"),
            (f"?trace_id={trace_id}z", "trace_id"),
            (f"?scope=window&trace_id={trace_id}", "trace_id"),
            ("?scope=window&scope=trace", "scope"),
            ("?limit=5", "limit"),
        ):
            status, body = await get_graph(session, server, query)
            assert status == 400 and body["parameter"] == parameter, (query, body)
            assert isinstance(body["error"], str) and body["error"]
        status, body = await get_graph(session, server, f"?trace_id={trace_id.upper()}")  # scope implied
        assert (status, body) == (404, {"error": "trace not found", "trace_id": trace_id})
