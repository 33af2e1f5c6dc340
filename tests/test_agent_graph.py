"""The agent graph in the state layer: the window scope (``state/agent_graph.py``) fed by the run events a
``DashboardState`` accepts (nested runs, tools, handoffs, running counts and current steps from live
progress, the window expiring, the caps and ``truncated``, the rebuild after a restart), and the trace
scope (``state/trace_graph.py``) over span records (invokes, agent as tool, handoffs by span name, by
attributes and by ``graph.node.parent_id``, MCP servers, current steps, caps).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from otel_dashboard.model.events import DashboardEvent, EventType, format_timestamp
from otel_dashboard.state.agent_graph import AgentGraph
from otel_dashboard.state.dashboard import DashboardState
from otel_dashboard.state.trace_graph import trace_graph
from otel_dashboard.store.sqlite import SqliteEventStore

T0 = 28_333_333 * 60.0  # a whole minute: bucket arithmetic stays readable
SVC = "demo"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def iso(epoch: float) -> str:
    return format_timestamp(int(epoch * 1_000_000_000))


def rid(n: int) -> str:
    return f"{n:016x}"


def run_data(n: int, agent: str, parent: int | None = None, **extra: Any) -> dict[str, Any]:
    return {"run_id": rid(n), "agent_id": agent.lower(), "agent_name": agent, "service_name": SVC,
            "parent_run_id": rid(parent) if parent is not None else None, **extra}


def started(n: int, agent: str, parent: int | None = None) -> DashboardEvent:
    return DashboardEvent.create(EventType.AGENT_EXECUTION_STARTED, run_data(n, agent, parent))


def completed(n: int, agent: str, parent: int | None = None, *, ok: bool = True,
              tools: dict[str, tuple[int, int]] | None = None) -> DashboardEvent:
    data = run_data(n, agent, parent, success=ok,
                    tools={t: {"calls": c, "failures": f} for t, (c, f) in (tools or {}).items()})
    return DashboardEvent.create(EventType.AGENT_EXECUTION_COMPLETED, data)


Edges = dict[tuple[str, str, str], dict[str, Any]]


def by_id(graph: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], Edges]:
    nodes = {n["id"]: n for n in graph["nodes"]}
    edges = {(e["source"], e["target"], e["kind"]): e for e in graph["edges"]}
    return nodes, edges


PLANNER, RESEARCHER = f"agent:{SVC}/Planner", f"agent:{SVC}/MarketResearcher"
SEARCH, FETCH = "tool:web_search", "tool:fetch_page"


def nested_wave(state: DashboardState, base: int, *, fail_second: bool = False) -> None:
    """Planner (run base) delegates two MarketResearcher runs, each calling tools."""
    state.publish(started(base, "Planner"))
    state.publish(started(base + 1, "MarketResearcher", base))
    state.publish(started(base + 2, "MarketResearcher", base))
    state.publish(completed(base + 1, "MarketResearcher", base,
                            tools={"web_search": (1, 0), "fetch_page": (2, 0)}))
    state.publish(completed(base + 2, "MarketResearcher", base, ok=not fail_second,
                            tools={"web_search": (1, 1), "fetch_page": (2, 0)}))
    state.publish(completed(base, "Planner", tools={"rank_opportunities": (1, 0)}))


# --------------------------------------------------------------------------- window scope
def test_nested_runs_give_agents_tools_and_counted_edges_in_first_seen_order() -> None:
    state = DashboardState()
    nested_wave(state, 10)
    nested_wave(state, 20, fail_second=True)
    graph = state.get_agent_graph()
    assert graph["scope"] == "window" and graph["window_seconds"] == 3600 and not graph["truncated"]
    assert set(graph) == {"scope", "window_seconds", "generated_at", "nodes", "edges", "truncated"}
    nodes, edges = by_id(graph)
    assert graph["nodes"] == sorted(graph["nodes"], key=lambda n: (n["first_seen"], n["id"]))
    assert set(nodes) == {PLANNER, RESEARCHER, SEARCH, FETCH, "tool:rank_opportunities"}
    assert nodes[PLANNER] == {"id": PLANNER, "type": "agent", "name": "Planner", "service": SVC, "runs": 2,
                              "failures": 0, "running": 0, "current_step": None,
                              "first_seen": nodes[PLANNER]["first_seen"]}
    assert (nodes[RESEARCHER]["runs"], nodes[RESEARCHER]["failures"]) == (4, 1)
    assert nodes[SEARCH] | {"first_seen": None} == {"id": SEARCH, "type": "tool", "name": "web_search",
                                                    "service": None, "runs": 4, "failures": 2, "running": 0,
                                                    "current_step": None, "first_seen": None}
    assert edges[(PLANNER, RESEARCHER, "invokes")] == {"source": PLANNER, "target": RESEARCHER,
                                                        "kind": "invokes", "count": 4, "failures": 1,
                                                        "running": 0}
    assert edges[(RESEARCHER, FETCH, "calls_tool")]["count"] == 8
    assert edges[(RESEARCHER, SEARCH, "calls_tool")]["failures"] == 2
    assert edges[(PLANNER, "tool:rank_opportunities", "calls_tool")]["count"] == 2
    assert len(edges) == 4
    assert all(n["first_seen"].endswith("Z") for n in graph["nodes"])


def test_running_runs_light_their_agents_edges_and_tools_with_the_current_step() -> None:
    state = DashboardState()
    state.publish(started(1, "Planner"))
    state.publish(started(2, "MarketResearcher", 1))
    state.publish(started(3, "MarketResearcher", 1))
    state.update_runs([
        {**run_data(2, "MarketResearcher", 1), "status": "running", "started_at": format_timestamp(),
         "current_step": "calling tool web_search", "tools": {"fetch_page": {"calls": 2, "failures": 1}}},
        {**run_data(3, "MarketResearcher", 1), "status": "running", "started_at": format_timestamp(),
         "current_step": "waiting on gpt-4o-mini", "tools": {}},
    ])
    nodes, edges = by_id(state.get_agent_graph())
    assert (nodes[PLANNER]["running"], nodes[PLANNER]["runs"], nodes[PLANNER]["current_step"]) == (1, 0, None)
    assert nodes[RESEARCHER]["running"] == 2
    assert nodes[RESEARCHER]["current_step"] == "waiting on gpt-4o-mini"  # the most recently updated run's
    assert edges[(PLANNER, RESEARCHER, "invokes")] == {
        "source": PLANNER, "target": RESEARCHER, "kind": "invokes", "count": 0, "failures": 0, "running": 2}
    assert (nodes[SEARCH]["running"], edges[(RESEARCHER, SEARCH, "calls_tool")]["running"]) == (1, 1)
    # The open run's calls so far count before it completes...
    assert (nodes[FETCH]["runs"], nodes[FETCH]["failures"]) == (2, 1)
    # ...and its completion replaces them (its progress leaves with it): no double count.
    state.publish(completed(2, "MarketResearcher", 1, tools={"fetch_page": (3, 1), "web_search": (1, 0)}))
    state.publish(completed(3, "MarketResearcher", 1))
    state.publish(completed(1, "Planner"))
    nodes, edges = by_id(state.get_agent_graph())
    assert all(n["running"] == 0 and n["current_step"] is None for n in nodes.values())
    assert (nodes[FETCH]["runs"], nodes[SEARCH]["runs"], nodes[RESEARCHER]["runs"]) == (3, 1, 2)
    assert edges[(PLANNER, RESEARCHER, "invokes")]["count"] == 2


def test_a_progress_only_run_and_a_handoff_tool_show_up() -> None:
    state = DashboardState()
    state.update_runs([{**run_data(7, "Triage"), "status": "running", "started_at": format_timestamp(),
                        "current_step": "calling tool handoff to Billing", "tools": {}}])
    nodes, edges = by_id(state.get_agent_graph())
    triage, billing = f"agent:{SVC}/Triage", f"agent:{SVC}/Billing"
    assert nodes[triage]["running"] == 1 and nodes[billing]["type"] == "agent"
    assert edges[(triage, billing, "handoff")]["running"] == 1
    state.publish(completed(7, "Triage", tools={"handoff to Billing": (1, 0)}))
    nodes, edges = by_id(state.get_agent_graph())
    assert edges[(triage, billing, "handoff")] == {"source": triage, "target": billing, "kind": "handoff",
                                                   "count": 1, "failures": 0, "running": 0}
    assert "tool:handoff to Billing" not in nodes


def test_the_window_expires_and_forgets_idle_nodes() -> None:
    clock = Clock()
    graph = AgentGraph(window_seconds=120, bucket_seconds=60, clock=clock)
    graph.record_started(run_data(1, "A"), iso(T0))
    graph.record_started(run_data(2, "B", 1), iso(T0 + 1))
    graph.record_completed({**run_data(2, "B", 1), "tools": {"t": {"calls": 2, "failures": 0}}}, iso(T0 + 2))
    graph.record_completed(run_data(1, "A"), iso(T0 + 3))
    body = graph.graph([], [])
    assert [n["name"] for n in body["nodes"]] == ["A", "B", "t"] and len(body["edges"]) == 2
    clock.now = T0 + 119
    assert len(graph.graph([], [])["nodes"]) == 3
    clock.now = T0 + 120  # the first bucket left the window
    assert graph.graph([], []) == {"scope": "window", "window_seconds": 120, "nodes": [], "edges": [],
                                   "truncated": False}
    assert len(graph) == 0
    # A replay of old history (a rebuild) only remembers the runs: a later sub-run still finds its parent.
    graph.record_started(run_data(5, "Old"), iso(T0 - 3600))
    graph.record_started(run_data(6, "New", 5), iso(T0 + 120))
    nodes, edges = by_id(graph.graph([], []))
    assert list(nodes) == [f"agent:{SVC}/New"] and not edges  # Old is not in the window: no edge to draw
    graph.record_completed(run_data(6, "New", 5), iso(T0 + 121))
    assert by_id(graph.graph([{"run_id": rid(5), "agent_name": "Old", "service_name": SVC}], []))[1]


def test_the_caps_refuse_new_nodes_and_edges_and_say_truncated() -> None:
    clock = Clock()
    graph = AgentGraph(window_seconds=120, bucket_seconds=60, max_nodes=3, max_edges=2, max_runs=4,
                       clock=clock)
    tools = {f"t{i}": {"calls": 1, "failures": 0} for i in range(5)}
    graph.record_completed({**run_data(1, "A"), "tools": tools}, iso(T0))
    body = graph.graph([], [])
    assert len(body["nodes"]) == 3 and len(body["edges"]) == 2 and body["truncated"]
    assert graph.dropped_nodes == 3 and graph.dropped_edges == 0
    # Refused nodes take no edges; a running agent beyond the cap is refused at read time too.
    body = graph.graph([{"run_id": rid(9), "agent_name": "Z", "service_name": SVC}], [])
    assert "agent:demo/Z" not in {n["id"] for n in body["nodes"]}
    for n in range(2, 12):
        graph.record_started(run_data(n, "A"), iso(T0))
    assert len(graph._runs) == 4  # the run map is bounded too
    clock.now = T0 + 240  # everything left the window: room again, truncated no more
    graph.record_completed(run_data(20, "C"), iso(clock.now))
    body = graph.graph([], [])
    assert [n["name"] for n in body["nodes"]] == ["C"] and not body["truncated"]
    with pytest.raises(ValueError, match="max_nodes"):
        AgentGraph(max_nodes=0)
    with pytest.raises(ValueError, match="window_seconds"):
        AgentGraph(window_seconds=90, bucket_seconds=60)


def test_odd_values_count_as_missing() -> None:
    graph = AgentGraph()
    graph.record_completed({"agent_name": 5, "run_id": 7, "parent_run_id": [], "tools": {"x": "y", 3: {}}},
                           format_timestamp())
    graph.record_completed({"agent_name": "A", "tools": {"t": {"calls": -1, "failures": True}}}, "not a time")
    graph.record_started({"agent_name": "B", "tools": None}, "garbage")
    nodes, edges = by_id(graph.graph([], []))
    assert set(nodes) == {"agent:/5", "agent:/B"} and not edges  # agent_key's str(); no service


def test_the_graph_comes_back_after_a_restart_with_open_runs_not_running(tmp_path: Any) -> None:
    path = tmp_path / "events.db"
    state = DashboardState(store=SqliteEventStore(path))
    nested_wave(state, 10)
    state.publish(started(30, "Planner"))
    state.publish(started(31, "MarketResearcher", 30))
    assert state.wait_durable(timeout_seconds=5)
    before = state.get_agent_graph()
    state.store.close()
    again = DashboardState(store=SqliteEventStore(path))
    try:
        after = again.get_agent_graph()
        nodes, edges = by_id(after)
        assert [n["id"] for n in after["nodes"]] == [n["id"] for n in before["nodes"]]
        assert nodes[PLANNER]["running"] == 0 and nodes[RESEARCHER]["runs"] == 2  # open runs are lost
        assert edges[(PLANNER, RESEARCHER, "invokes")]["count"] == 2
        # The run map came back too: a sub-run of a run started before the restart finds its parent.
        again.publish(started(32, "MarketResearcher", 30))
        again.publish(completed(32, "MarketResearcher", 30))
        assert by_id(again.get_agent_graph())[1][(PLANNER, RESEARCHER, "invokes")]["count"] == 3
    finally:
        again.store.close()


# --------------------------------------------------------------------------- trace scope
def span(sid: int, name: str, kind: str, parent: int | None = None, *, start: int = 0, ended: bool = True,
         agent: str | None = None, tool: str | None = None, service: str = SVC, status: str = "ok",
         **attrs: Any) -> dict[str, Any]:
    ns = int(T0 * 1e9) + start * 1_000_000
    return {"trace_id": "ab" * 16, "span_id": rid(sid), "parent_span_id": rid(parent) if parent else None,
            "name": name, "kind": kind, "start_time_unix_nano": ns,
            "end_time": iso(T0 + 1) if ended else None,
            "status": status, "service_name": service, "agent_name": agent, "tool_name": tool,
            "attributes": attrs}


def test_trace_scope_nested_runs_agent_as_tool_and_the_current_step() -> None:
    spans = [
        span(1, "invoke_agent Planner", "agent", start=0, ended=False, agent="Planner"),
        span(2, "invoke_agent MarketResearcher", "agent", 1, start=1, agent="MarketResearcher"),
        span(3, "execute_tool web_search", "tool", 2, start=2, tool="web_search"),
        span(4, "inner web_search", "tool", 3, start=3, tool="web_search"),  # the same call
        span(5, "invoke_agent MarketResearcher", "agent", 1, start=4, agent="MarketResearcher",
             status="error"),
        span(6, "execute_tool web_search", "tool", 5, start=5, tool="web_search", status="error"),
        span(7, "execute_tool Critic", "tool", 1, start=6, tool="Critic"),
        span(8, "invoke_agent Critic", "agent", 7, start=7, agent="Critic"),
        span(9, "chat gpt-4o", "model", 1, start=8, ended=False, **{"gen_ai.request.model": "gpt-4o"}),
        span(10, "execute_tool old", "tool", 1, start=1, ended=False, tool="old"),
        span(11, "orphan", "tool", 99, start=9, tool="lonely"),
    ]
    graph = trace_graph(reversed(spans))  # any order
    nodes, edges = by_id(graph)
    critic = f"agent:{SVC}/Critic"
    assert [n["id"] for n in graph["nodes"]] == [PLANNER, RESEARCHER, "tool:old", SEARCH, critic,
                                                 "tool:lonely"]
    assert (nodes[PLANNER]["running"], nodes[PLANNER]["runs"]) == (1, 0)
    assert nodes[PLANNER]["current_step"] == "waiting on gpt-4o"  # the newest open call
    assert (nodes[RESEARCHER]["runs"], nodes[RESEARCHER]["failures"], nodes[RESEARCHER]["current_step"]) \
        == (2, 1, None)
    assert (nodes[SEARCH]["runs"], nodes[SEARCH]["failures"]) == (2, 1)  # the inner span is the same call
    assert edges[(PLANNER, RESEARCHER, "invokes")]["count"] == 2
    assert edges[(PLANNER, critic, "agent_as_tool")]["count"] == 1 and "tool:Critic" not in nodes
    assert edges[(PLANNER, "tool:old", "calls_tool")]["running"] == 1
    assert not any(e["target"] == "tool:lonely" for e in graph["edges"])
    assert not graph["truncated"]


def test_trace_scope_handoffs_by_name_attributes_and_graph_parent() -> None:
    spans = [
        span(1, "Agent workflow", "agent", agent="Agent workflow"),
        span(2, "Triage", "agent", 1, start=1, agent="Triage", **{"graph.node.parent_id": "Intake"}),
        span(3, "handoff to Billing", "tool", 2, start=2, tool="handoff to Billing"),
        span(4, "Billing", "agent", 1, start=3, agent="Billing", **{"graph.node.parent_id": "Triage"}),
        span(5, "transfer", "tool", 4, start=4, tool="transfer",
             **{"gen_ai.handoff.from_agent": "Billing", "gen_ai.handoff.to_agent": "Refunds"}),
    ]
    nodes, edges = by_id(trace_graph(spans))
    workflow, triage, billing, refunds = (f"agent:{SVC}/{n}" for n in ("Agent workflow", "Triage", "Billing",
                                                                       "Refunds"))
    # The handoff span and Billing's graph.node.parent_id say one handoff; an attribute alone says one too.
    assert edges[(triage, billing, "handoff")]["count"] == 1
    assert edges[(f"agent:{SVC}/Intake", triage, "handoff")]["count"] == 1
    assert edges[(billing, refunds, "handoff")]["count"] == 1
    assert edges[(workflow, billing, "invokes")]["count"] == 1
    assert "tool:handoff to Billing" not in nodes and "tool:transfer" not in nodes


def test_trace_scope_mcp_server_names_and_caps() -> None:
    spans = [
        span(1, "invoke_agent W", "agent", agent="W"),
        span(2, "execute_tool get_weather", "tool", 1, start=1, tool="get_weather"),
        span(3, "MCP send tools/call get_weather", "tool", 2, start=2, tool="get_weather",
             **{"mcp.method.name": "tools/call"}),
        span(4, "tools/call get_weather", "tool", 3, start=3, tool="get_weather", service="weather-server",
             **{"mcp.method.name": "tools/call"}),
        span(5, "tools/call lookup", "tool", 1, start=4, tool="lookup",
             **{"mcp.method.name": "tools/call", "server.address": "10.0.0.7"}),
    ]
    nodes, edges = by_id(trace_graph(spans))
    assert nodes["mcp:weather-server"]["type"] == "mcp_server" and nodes["mcp:10.0.0.7"]["runs"] == 1
    assert edges[("tool:get_weather", "mcp:weather-server", "calls_tool")]["count"] == 1
    assert edges[(f"agent:{SVC}/W", "tool:get_weather", "calls_tool")]["count"] == 1
    small = trace_graph(spans, max_nodes=2, max_edges=1)
    assert len(small["nodes"]) == 2 and len(small["edges"]) == 1 and small["truncated"]


def test_a_graph_read_is_cheap_enough() -> None:
    state = DashboardState()
    for wave in range(200):
        nested_wave(state, 10 * wave + 10)
    began = time.perf_counter()
    for _ in range(20):
        state.get_agent_graph()
    assert (time.perf_counter() - began) / 20 < 0.01
