"""The agent graph over the usage window: who invokes whom, which tools each agent calls, what runs now.

:class:`AgentGraph` is fed the accepted ``agent_execution_started`` and ``agent_execution_completed``
events (by :meth:`~otel_dashboard.state.derived.DerivedState.apply`, so the rebuild after a restart,
which replays the stored run events, restores it) and answers the window scope of ``GET /api/graph``
(``docs/api.md``, "The agent graph"). :class:`GraphBuilder` makes the answer's nodes and edges, bounded
and ordered, for this module and for the trace scope (:mod:`~otel_dashboard.state.trace_graph`).

The contract:

* Nodes: an agent (its name and service, ``agent:<service>/<name>``, an empty service when it has
  none) and a tool (``tool:<name>``, shared by every agent that calls it). Edges: ``invokes`` (a run's
  agent to the agent of a sub-run, by ``parent_run_id``), ``calls_tool`` (a run's agent to a tool of
  its completion's ``tools``) and ``handoff`` (a tool named ``handoff to <agent>``, the OpenAI Agents
  SDK's handoff span as OpenInference names it: the run's agent to that agent, of the same service).
* Counts: an agent node's ``runs`` and ``failures`` are its completions in the window (by the event's
  timestamp, clamped to now) and the failed ones; an ``invokes`` edge counts the sub-runs completed, a
  tool node and a ``calls_tool`` or ``handoff`` edge the calls (``tools.<name>.calls``/``failures``).
  The tools of the runs open now are added from their live progress, so a running run's calls show
  before it completes (its completion then replaces them: its progress leaves in the same hold of the
  state's lock).
* ``running`` (read time): the open runs now per agent, and per ``invokes`` edge from the parent run's
  agent; the tool a run's ``current_step`` names (``calling tool <name>``) for tools and their edges.
  ``current_step`` of an agent is its most recently updated open run's step (``run_progress``).
* A node or edge is kept while it has a count in the window, was seen (a run started) within it, or
  runs now; then it is forgotten.

Bounded memory: at most ``max_nodes`` nodes and ``max_edges`` edges (200 and 1,000 by default); beyond,
new ones are refused and counted (:attr:`AgentGraph.dropped_nodes`, :attr:`AgentGraph.dropped_edges`)
and the answer says ``truncated`` while a refusal is in the window; each keeps at most one bucket per
bucket of the window. The run ids it maps to their agents (for ``parent_run_id``) are at most
``max_runs`` (10,000), the least recently seen forgotten first.

Not thread-safe by itself: the :class:`~otel_dashboard.state.dashboard.DashboardState` that owns it
guards it with its lock, as the rest of the derived state. No aiohttp, no OpenTelemetry SDK.

Over 400 lines on purpose: the bounded answer (:class:`GraphBuilder`, shared with the trace scope), the
window's buckets and caps, and the read-time overlay of the open runs are one contract (what a count
covers, when an item is forgotten, what ``truncated`` means); split, each part would restate it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from otel_dashboard.model.events import format_timestamp
from otel_dashboard.state.agent_stats import (
    DEFAULT_BUCKETS,
    DEFAULT_WINDOW_SECONDS,
    agent_key,
    check_window,
    parse_epoch,
)

__all__ = [
    "DEFAULT_MAX_EDGES",
    "DEFAULT_MAX_NODES",
    "DEFAULT_MAX_RUNS",
    "HANDOFF_PREFIX",
    "AgentGraph",
    "GraphBuilder",
    "agent_node_id",
    "mcp_node_id",
    "tool_node_id",
]

DEFAULT_MAX_NODES = 200
"""Nodes in one graph at most; beyond, new ones are refused (and the answer is ``truncated``)."""
DEFAULT_MAX_EDGES = 1000
"""Edges in one graph at most; beyond, new ones are refused (and the answer is ``truncated``)."""
DEFAULT_MAX_RUNS = 10_000
"""Run ids remembered with their agent, for the sub-runs' ``parent_run_id``."""
HANDOFF_PREFIX = "handoff to "
"""The name OpenInference gives an OpenAI Agents SDK handoff span (a tool span): ``handoff to <agent>``."""
_STEP_TOOL_PREFIX = "calling tool "  # the run tracker's current_step of an open tool call
_MAX_NAME_CHARS = 256

AGENT = "agent"
TOOL = "tool"
MCP_SERVER = "mcp_server"
INVOKES = "invokes"
HANDOFF = "handoff"
CALLS_TOOL = "calls_tool"
AGENT_AS_TOOL = "agent_as_tool"


def agent_node_id(name: str, service: str | None) -> str:
    """``agent:<service>/<name>`` (an empty service for none)."""
    return f"agent:{service or ''}/{name}"


def tool_node_id(name: str) -> str:
    """``tool:<name>``."""
    return f"tool:{name}"


def mcp_node_id(server: str) -> str:
    """``mcp:<server>``."""
    return f"mcp:{server}"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _name(value: Any) -> str | None:
    return value[:_MAX_NAME_CHARS] if isinstance(value, str) and value else None


def handoff_target(tool_name: str) -> str | None:
    """The agent a tool named ``handoff to <agent>`` hands off to; None for another tool."""
    if tool_name.startswith(HANDOFF_PREFIX):
        return tool_name[len(HANDOFF_PREFIX):].strip() or None
    return None


# --------------------------------------------------------------------------- the answer
class GraphBuilder:
    """The nodes and edges of one answer, bounded: the first ``max_nodes`` nodes and ``max_edges``
    edges added are kept, later new ones refused (``truncated``); an edge needs both its nodes.

    Nodes and edges are the answer's dicts (``docs/api.md``); ``first_seen`` is held as epoch seconds
    until :meth:`result` formats it.
    """

    def __init__(self, max_nodes: int = DEFAULT_MAX_NODES, max_edges: int = DEFAULT_MAX_EDGES) -> None:
        self.max_nodes = max_nodes
        self.max_edges = max_edges
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.truncated = False

    def node(self, node_id: str, node_type: str, name: str, service: str | None,
             first_seen: float) -> dict[str, Any] | None:
        """The node ``node_id``, made if new (None when refused); its ``first_seen`` the earliest given."""
        node = self.nodes.get(node_id)
        if node is not None:
            if first_seen < node["first_seen"]:
                node["first_seen"] = first_seen
            return node
        if len(self.nodes) >= self.max_nodes:
            self.truncated = True
            return None
        node = self.nodes[node_id] = {
            "id": node_id, "type": node_type, "name": name, "service": service, "runs": 0,
            "failures": 0, "running": 0, "current_step": None, "first_seen": first_seen,
        }
        return node

    def edge(self, source: str, target: str, kind: str, first_seen: float) -> dict[str, Any] | None:
        """The edge (``source``, ``target``, ``kind``), made if new; None when refused or when a node
        of it is not in the graph (refused before)."""
        key = (source, target, kind)
        edge = self.edges.get(key)
        if edge is not None:
            if first_seen < edge["_first"]:
                edge["_first"] = first_seen
            return edge
        if source not in self.nodes or target not in self.nodes:
            return None
        if len(self.edges) >= self.max_edges:
            self.truncated = True
            return None
        edge = self.edges[key] = {"source": source, "target": target, "kind": kind, "count": 0,
                                  "failures": 0, "running": 0, "_first": first_seen}
        return edge

    def result(self) -> dict[str, Any]:
        """``{"nodes", "edges", "truncated"}``: nodes by ``first_seen`` then id, edges by when first
        seen then source, target and kind."""
        nodes = sorted(self.nodes.values(), key=lambda n: (n["first_seen"], n["id"]))
        for node in nodes:
            node["first_seen"] = format_timestamp(int(node["first_seen"] * 1_000_000_000))
        edges = sorted(self.edges.values(),
                       key=lambda e: (e["_first"], e["source"], e["target"], e["kind"]))
        for edge in edges:
            del edge["_first"]
        return {"nodes": nodes, "edges": edges, "truncated": self.truncated}


# --------------------------------------------------------------------------- the window
class _Item:
    """A node or an edge of the window: what identifies it, its buckets (index -> [count,
    failures]) and when it was first and last seen (epoch seconds)."""

    __slots__ = ("buckets", "first_seen", "key", "last_seen")

    def __init__(self, key: tuple[str, ...], ts: float) -> None:
        self.key = key  # a node: (id, type, name, service or ""); an edge: (source, target, kind)
        self.first_seen = ts
        self.last_seen = ts
        self.buckets: dict[int, list[int]] = {}

    def add(self, index: int, count: int, failures: int) -> None:
        bucket = self.buckets.get(index)
        if bucket is None:
            self.buckets[index] = [count, failures]
        else:
            bucket[0] += count
            bucket[1] += failures

    def sums(self, first: int) -> tuple[int, int]:
        """Count and failures over the buckets from ``first`` (older ones dropped)."""
        count = failures = 0
        for index in [i for i in self.buckets if i < first]:
            del self.buckets[index]
        for bucket_count, bucket_failures in self.buckets.values():
            count += bucket_count
            failures += bucket_failures
        return count, failures


class AgentGraph:
    """The window scope of the agent graph, maintained from the run events.

    Args:
        window_seconds: the window's length (the state's usage window).
        bucket_seconds: one bucket's length (``window_seconds`` is a multiple of it).
        max_nodes: nodes kept at most; new ones beyond are refused (counted).
        max_edges: edges kept at most; new ones beyond are refused (counted).
        max_runs: run ids remembered with their agent (for ``parent_run_id``).
        clock: seconds since the epoch, now (``time.time``; tests inject their own).

    Raises:
        ValueError: a bound that is not a positive integer, or a window that is not a whole number of
            buckets (the parameter is named).
    """

    def __init__(
        self,
        *,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        bucket_seconds: int = DEFAULT_WINDOW_SECONDS // DEFAULT_BUCKETS,
        max_nodes: int = DEFAULT_MAX_NODES,
        max_edges: int = DEFAULT_MAX_EDGES,
        max_runs: int = DEFAULT_MAX_RUNS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_window(window_seconds, bucket_seconds, max_nodes=max_nodes, max_edges=max_edges,
                     max_runs=max_runs)
        self.window_seconds = window_seconds
        self.bucket_seconds = bucket_seconds
        self.max_nodes = max_nodes
        self.max_edges = max_edges
        self.max_runs = max_runs
        self._clock = clock
        self._nodes: dict[str, _Item] = {}
        self._edges: dict[tuple[str, str, str], _Item] = {}
        # run id -> (its agent's node id, its parent run's agent's node id or None), least recent first.
        self._runs: OrderedDict[str, tuple[str, str | None]] = OrderedDict()
        self.dropped_nodes = 0
        self.dropped_edges = 0
        self._refused_at = float("-inf")  # the last refusal (the answer is truncated while in the window)

    def __len__(self) -> int:
        return len(self._nodes)

    # ------------------------------------------------------------------ recording
    def record_started(self, data: dict[str, Any], timestamp: str) -> None:
        """Take one ``agent_execution_started`` (its ``data`` and its event's ``timestamp``): the
        agent's node and the ``invokes`` edge from its parent run's agent. Never raises for odd
        values (a value of the wrong type counts as missing)."""
        now = self._clock()
        ts = min(parse_epoch(timestamp) or now, now)
        node_id, name, service, parent_id = self._remember(data)
        if int(ts // self.bucket_seconds) < self._first_index(now):
            return  # a replay of old history: only the run's agent is remembered (for its sub-runs)
        if self._node(node_id, AGENT, name, service, ts, now) is not None and parent_id is not None:
            self._edge(parent_id, node_id, INVOKES, ts, now)

    def record_completed(self, data: dict[str, Any], timestamp: str) -> None:
        """Take one ``agent_execution_completed``: a run (and a failure when ``success`` is false)
        of its agent and of the ``invokes`` edge from its parent run's agent, and its ``tools``."""
        now = self._clock()
        ts = parse_epoch(timestamp)
        if ts is None:
            return
        ts = min(ts, now)
        node_id, name, service, parent_id = self._remember(data)
        first = self._first_index(now)
        index = int(ts // self.bucket_seconds)
        if index < first:
            return
        failed = 1 if data.get("success") is False else 0
        node = self._node(node_id, AGENT, name, service, ts, now)
        if node is None:
            return
        node.add(index, 1, failed)
        if parent_id is not None:
            edge = self._edge(parent_id, node_id, INVOKES, ts, now)
            if edge is not None:
                edge.add(index, 1, failed)
        tools = data.get("tools")
        if isinstance(tools, dict):
            for tool, counts in tools.items():
                if isinstance(tool, str) and tool and isinstance(counts, dict):
                    self._tool_call(node_id, service, tool, _count(counts.get("calls")),
                                    _count(counts.get("failures")), index, ts, now)

    def _tool_call(self, node_id: str, service: str | None, tool: str, calls: int, failures: int,
                   index: int, ts: float, now: float) -> None:
        target = handoff_target(tool)
        if target is not None:
            target_id = agent_node_id(target, service)
            if self._node(target_id, AGENT, target, service, ts, now) is None:
                return
            edge = self._edge(node_id, target_id, HANDOFF, ts, now)
        else:
            tool_id = tool_node_id(tool)
            tool_node = self._node(tool_id, TOOL, tool[:_MAX_NAME_CHARS], None, ts, now)
            if tool_node is None:
                return
            tool_node.add(index, calls, failures)
            edge = self._edge(node_id, tool_id, CALLS_TOOL, ts, now)
        if edge is not None:
            edge.add(index, calls, failures)

    def _remember(self, data: dict[str, Any]) -> tuple[str, str, str | None, str | None]:
        """The run's agent (node id, name, service) and its parent run's node id (when known); the
        run is remembered."""
        name, service = agent_key(data)
        name = name[:_MAX_NAME_CHARS]
        node_id = agent_node_id(name, service)
        parent_run = data.get("parent_run_id")
        parent = self._runs.get(parent_run) if isinstance(parent_run, str) else None
        run_id = data.get("run_id")
        known = self._runs.get(run_id) if isinstance(run_id, str) else None
        parent_id = parent[0] if parent is not None else known[1] if known is not None else None
        if isinstance(run_id, str) and run_id:
            self._runs[run_id] = (node_id, parent_id)
            self._runs.move_to_end(run_id)
            if len(self._runs) > self.max_runs:
                self._runs.popitem(last=False)
        return node_id, name, service, parent_id

    def _node(self, node_id: str, node_type: str, name: str, service: str | None, ts: float,
              now: float) -> _Item | None:
        node = self._nodes.get(node_id)
        if node is None:
            if len(self._nodes) >= self.max_nodes:
                self._forget_stale(now)
                if len(self._nodes) >= self.max_nodes:
                    self.dropped_nodes += 1
                    self._refused_at = now
                    return None
            node = self._nodes[node_id] = _Item((node_id, node_type, name, service or ""), ts)
        else:
            node.first_seen = min(node.first_seen, ts)
        node.last_seen = max(node.last_seen, ts)
        return node

    def _edge(self, source: str, target: str, kind: str, ts: float, now: float) -> _Item | None:
        key = (source, target, kind)
        edge = self._edges.get(key)
        if edge is None:
            if len(self._edges) >= self.max_edges:
                self._forget_stale(now)
                if len(self._edges) >= self.max_edges:
                    self.dropped_edges += 1
                    self._refused_at = now
                    return None
            edge = self._edges[key] = _Item(key, ts)
        else:
            edge.first_seen = min(edge.first_seen, ts)
        edge.last_seen = max(edge.last_seen, ts)
        return edge

    def _forget_stale(self, now: float) -> None:
        """Forget the nodes and edges with nothing in the window (the caps are full)."""
        first = self._first_index(now)
        start = first * self.bucket_seconds
        for node_id in [key for key, item in self._nodes.items()
                        if item.last_seen < start and not item.sums(first)[0]]:
            del self._nodes[node_id]
        for edge_key in [key for key, item in self._edges.items()
                         if item.last_seen < start and not item.sums(first)[0]]:
            del self._edges[edge_key]

    def _first_index(self, now: float) -> int:
        return int(now // self.bucket_seconds) - self.window_seconds // self.bucket_seconds + 1

    # ------------------------------------------------------------------ reading
    def graph(self, open_runs: Iterable[dict[str, Any]],
              progress: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """The window scope's answer (``docs/api.md``, "The agent graph"), without ``generated_at``.

        Args:
            open_runs: the open runs now (``run_id``, ``agent_id``, ``agent_name``, ``service_name``:
                the state's ``open_runs_now``), each counted once as running.
            progress: the live state of open runs (the state's open-run table, oldest-updated
                first): their ``parent_run_id``, ``current_step``, ``tools`` and ``started_at``.

        Returns:
            ``{"scope": "window", "window_seconds", "nodes", "edges", "truncated"}``.
        """
        now = self._clock()
        first = self._first_index(now)
        start = float(first * self.bucket_seconds)
        self._forget_stale(now)
        builder = GraphBuilder(self.max_nodes, self.max_edges)
        for item in self._nodes.values():
            node_id, node_type, name, service = item.key
            node = builder.node(node_id, node_type, name, service or None, item.first_seen)
            if node is not None:
                node["runs"], node["failures"] = item.sums(first)
        open_runs = list(open_runs)
        for run in open_runs:  # the agents running now first: a kept edge may lead to one
            agent, agent_service = agent_key(run)
            agent = agent[:_MAX_NAME_CHARS]
            builder.node(agent_node_id(agent, agent_service), AGENT, agent, agent_service, now)
        for item in self._edges.values():
            source, target, kind = item.key
            edge = builder.edge(source, target, kind, item.first_seen)
            if edge is not None:
                edge["count"], edge["failures"] = item.sums(first)
        live = {run["run_id"]: run for run in progress if isinstance(run.get("run_id"), str)}
        # In the order of their updates (the runs without progress first): the last step an agent's
        # runs give is its most recently updated run's.
        updated = {run_id: i for i, run_id in enumerate(live)}
        open_runs.sort(key=lambda run: updated.get(run["run_id"], -1))
        for run in open_runs:
            self._add_running(builder, run, live.get(run["run_id"]), now)
        builder.truncated = builder.truncated or self._refused_at >= start
        return {"scope": "window", "window_seconds": self.window_seconds, **builder.result()}

    def _add_running(self, builder: GraphBuilder, run: dict[str, Any], live: dict[str, Any] | None,
                     now: float) -> None:
        """One open run: its agent (and the edge from its parent's) running, its live tool calls
        counted, its current step."""
        name, service = agent_key(run)
        name = name[:_MAX_NAME_CHARS]
        node_id = agent_node_id(name, service)
        started = parse_epoch(live.get("started_at")) if live is not None else None
        ts = min(started, now) if started is not None else now
        node = builder.node(node_id, AGENT, name, service, ts)
        if node is None:
            return
        node["running"] += 1
        known = self._runs.get(run["run_id"])
        parent_id = known[1] if known is not None else None
        if parent_id is None and live is not None and isinstance(live.get("parent_run_id"), str):
            parent = self._runs.get(live["parent_run_id"])
            parent_id = parent[0] if parent is not None else None
        if parent_id is not None and parent_id in builder.nodes:
            edge = builder.edge(parent_id, node_id, INVOKES, ts)
            if edge is not None:
                edge["running"] += 1
        if live is None:
            return
        step = live.get("current_step")
        if isinstance(step, str) and step:
            node["current_step"] = step  # the most recently updated run's, which comes last
        tools = live.get("tools")
        running_tool = step[len(_STEP_TOOL_PREFIX):] if isinstance(step, str) and step.startswith(
            _STEP_TOOL_PREFIX) else None
        if isinstance(tools, dict):
            for tool, counts in tools.items():
                if isinstance(tool, str) and tool and isinstance(counts, dict):
                    self._live_tool(builder, node_id, service, tool, _count(counts.get("calls")),
                                    _count(counts.get("failures")), 0, ts)
        if running_tool:
            self._live_tool(builder, node_id, service, running_tool, 0, 0, 1, ts)

    @staticmethod
    def _live_tool(builder: GraphBuilder, node_id: str, service: str | None, tool: str, calls: int,
                   failures: int, running: int, ts: float) -> None:
        target = handoff_target(tool)
        if target is not None:
            target_id = agent_node_id(target, service)
            if builder.node(target_id, AGENT, target, service, ts) is None:
                return
            edge = builder.edge(node_id, target_id, HANDOFF, ts)
        else:
            tool_id = tool_node_id(tool)
            tool_node = builder.node(tool_id, TOOL, tool[:_MAX_NAME_CHARS], None, ts)
            if tool_node is None:
                return
            tool_node["runs"] += calls
            tool_node["failures"] += failures
            tool_node["running"] += running
            edge = builder.edge(node_id, tool_id, CALLS_TOOL, ts)
        if edge is not None:
            edge["count"] += calls
            edge["failures"] += failures
            edge["running"] += running
