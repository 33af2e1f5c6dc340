"""The agent graph of one trace (the trace scope of ``GET /api/graph``), from its kept span records.

:func:`trace_graph` reads the JSON span records of one trace (``TraceStore.get_trace``, any order) and
makes the same nodes and edges as the window scope (:mod:`~otel_dashboard.state.agent_graph`), from
the spans themselves rather than the run events, so it also sees what the events do not say:

* a **run** is an agent span and what is under it down to the next agent span (as in
  ``docs/events.md``, "Runs"); its agent is a node, ``runs`` its ended agent spans, ``running`` the
  open ones, ``failures`` those with status ERROR;
* an agent span under another run is ``invokes`` from that run's agent, or ``agent_as_tool`` when a
  tool span of that run encloses it (``execute_tool`` of an agent used as a tool); that tool span is
  then no tool call of its own;
* a tool call is the outermost tool span of a run (inner ones, a framework's span around a client's,
  are the same call): ``calls_tool`` from the run's agent to ``tool:<name>``; a tool span outside any
  run is a tool node without an edge;
* a handoff: a tool span named ``handoff to <agent>`` (OpenInference's name for the OpenAI Agents
  SDK's handoff span), or one whose attributes name the agents (``gen_ai.handoff.to_agent`` /
  ``handoff.to_agent``, and ``.from_agent``), or ``gen_ai.operation.name`` ``handoff``; and an agent
  span whose ``graph.node.parent_id`` (OpenInference) names another agent than the run it is in (only
  for a pair of agents no handoff span names: both say the same handoff). Each is a ``handoff`` edge,
  from the named agent, else the run's agent, of the same service;
* an MCP call: a tool call whose own span or a span under it speaks MCP (``mcp.method.name``
  ``tools/call``, or a span named ``MCP send tools/call ...``) goes on from its tool node to
  ``mcp:<server>`` (``calls_tool``): the server is the service of an MCP span under it that another
  service sent (the server's own span), else the client span's ``server.address``, else ``mcp``;
* ``current_step`` of an agent: its open run's most recently started open model or tool call, worded
  as the live runs word it (``waiting on <model>``, ``waiting on the model``, ``calling tool <name>``).

Bounded as the window scope (200 nodes, 1,000 edges by default); a trace itself holds at most 10,000
spans (the trace store's cap). No aiohttp, no OpenTelemetry SDK.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from otel_dashboard.model.vocab import view_of
from otel_dashboard.state.agent_graph import (
    AGENT,
    AGENT_AS_TOOL,
    CALLS_TOOL,
    DEFAULT_MAX_EDGES,
    DEFAULT_MAX_NODES,
    HANDOFF,
    INVOKES,
    MCP_SERVER,
    TOOL,
    GraphBuilder,
    agent_node_id,
    handoff_target,
    mcp_node_id,
    tool_node_id,
)

__all__ = ["trace_graph"]

_HANDOFF_TO_KEYS = ("gen_ai.handoff.to_agent", "handoff.to_agent")
_HANDOFF_FROM_KEYS = ("gen_ai.handoff.from_agent", "handoff.from_agent")
_GRAPH_PARENT_KEY = "graph.node.parent_id"  # OpenInference: the agent that handed off to this one
_MCP_METHOD_KEY = "mcp.method.name"
_MCP_CALL = "tools/call"
_MCP_CLIENT_PREFIX = "MCP send tools/call"
_MAX_NAME_CHARS = 256


class _Run:
    """The run a span is in: its agent's node id, name and service, and the tool call open in it."""

    __slots__ = ("name", "node_id", "open", "service", "tool")

    def __init__(self, node_id: str | None, name: str | None, service: str | None, open_: bool) -> None:
        self.node_id = node_id
        self.name = name
        self.service = service
        self.open = open_
        self.tool: _ToolCall | None = None


class _ToolCall:
    """One tool call (a run's outermost tool span) and what was found under it."""

    __slots__ = ("agent_inside", "mcp_server", "mcp_source", "mcp_start", "run", "span")

    def __init__(self, span: Mapping[str, Any], run: _Run) -> None:
        self.span = span
        self.run = run
        self.agent_inside = False
        self.mcp_server: str | None = None
        self.mcp_source = 0  # how good mcp_server is: 1 the client's server.address, 2 the server's service
        self.mcp_start: float | None = None  # when its first MCP span started


def _text(value: Any) -> str | None:
    return value.strip()[:_MAX_NAME_CHARS] or None if isinstance(value, str) else None


def _attrs(span: Mapping[str, Any]) -> Mapping[str, Any]:
    attributes = span.get("attributes")
    return attributes if isinstance(attributes, Mapping) else {}


def _seconds(span: Mapping[str, Any]) -> float:
    start = span.get("start_time_unix_nano")
    return start / 1e9 if isinstance(start, int) and not isinstance(start, bool) and start > 0 else 0.0


def _first(attrs: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        text = _text(attrs.get(key))
        if text:
            return text
    return None


def _is_mcp_call(span: Mapping[str, Any]) -> bool:
    name = span.get("name")
    return _attrs(span).get(_MCP_METHOD_KEY) == _MCP_CALL or (
        isinstance(name, str) and name.startswith(_MCP_CLIENT_PREFIX))


def trace_graph(spans: Iterable[Mapping[str, Any]], *, max_nodes: int = DEFAULT_MAX_NODES,
                max_edges: int = DEFAULT_MAX_EDGES) -> dict[str, Any]:
    """The agent graph of one trace's span records (the JSON records of ``GET /api/traces/{id}``).

    Returns:
        ``{"nodes", "edges", "truncated"}`` as in ``docs/api.md`` ("The agent graph"): ``truncated``
        when a node or edge was refused for the caps.
    """
    records = [span for span in spans if isinstance(span.get("span_id"), str)]
    records.sort(key=lambda s: (s.get("start_time_unix_nano") or 0, s["span_id"]))
    ids = {span["span_id"] for span in records}
    children: dict[str, list[Mapping[str, Any]]] = {}
    roots: list[Mapping[str, Any]] = []
    for span in records:
        parent = span.get("parent_span_id")
        if isinstance(parent, str) and parent in ids and parent != span["span_id"]:
            children.setdefault(parent, []).append(span)
        else:
            roots.append(span)
    builder = GraphBuilder(max_nodes, max_edges)
    calls: list[_ToolCall] = []
    steps: dict[str, tuple[float, str]] = {}  # agent node id -> (start, step) of its newest open call
    outside = _Run(None, None, None, False)
    stack: list[tuple[Mapping[str, Any], _Run]] = [(span, outside) for span in reversed(roots)]
    seen: set[str] = set()
    handed: list[tuple[str, str | None, str, float]] = []  # graph.node.parent_id handoffs
    while stack:
        span, run = stack.pop()
        if span["span_id"] in seen:  # a cycle of parent ids: each span once
            continue
        seen.add(span["span_id"])
        kind = span.get("kind")
        ended = span.get("end_time") is not None
        if kind == AGENT:
            run = _agent_span(builder, span, run, ended, handed)
        elif kind == TOOL:
            if run.tool is None:
                call = _ToolCall(span, run)
                calls.append(call)
                run = _within(run, call)
            _mcp_of(run.tool, span, run)
            if not ended and run.open and run.node_id is not None:
                _step(steps, run.node_id, span, f"calling tool {_tool_name(span)}")
        elif kind == "model" and not ended and run.open and run.node_id is not None:
            model = view_of(str(span.get("name") or ""), _attrs(span)).model
            _step(steps, run.node_id, span, f"waiting on {model}" if model else "waiting on the model")
        elif run.tool is not None:
            _mcp_of(run.tool, span, run)
        stack.extend((child, run) for child in reversed(children.get(span["span_id"], ())))
    for call in calls:
        _add_call(builder, call)
    # A handoff span and the target's graph.node.parent_id say the same handoff: the attribute counts
    # only for a pair no handoff span names.
    spanned = {key for key in builder.edges if key[2] == HANDOFF}
    for source_name, service, target_id, start in handed:
        source = agent_node_id(source_name, service)
        if (source, target_id, HANDOFF) in spanned:
            continue
        if builder.node(source, AGENT, source_name, service, start) is not None:
            edge = builder.edge(source, target_id, HANDOFF, start)
            if edge is not None:
                _count(edge, True, False, "count")
    for node_id, (_, step) in steps.items():
        node = builder.nodes.get(node_id)
        if node is not None and node["running"]:
            node["current_step"] = step
    return builder.result()


def _within(run: _Run, call: _ToolCall) -> _Run:
    """The run as seen under its tool call ``call``."""
    inner = _Run(run.node_id, run.name, run.service, run.open)
    inner.tool = call
    return inner


def _tool_name(span: Mapping[str, Any]) -> str:
    return _text(span.get("tool_name")) or _text(span.get("name")) or "tool"


def _step(steps: dict[str, tuple[float, str]], node_id: str, span: Mapping[str, Any], step: str) -> None:
    start = _seconds(span)
    if node_id not in steps or start >= steps[node_id][0]:
        steps[node_id] = (start, step)


def _count(item: dict[str, Any], ended: bool, failed: bool, key: str) -> None:
    if ended:
        item[key] += 1
    else:
        item["running"] += 1
    if failed:
        item["failures"] += 1


def _agent_span(builder: GraphBuilder, span: Mapping[str, Any], run: _Run, ended: bool,
                handed: list[tuple[str, str | None, str, float]]) -> _Run:
    """An agent span: its node and run, the edge from the run it is in; a handoff it names is noted
    in ``handed`` (agent handing off, service, node id, start)."""
    name = _text(span.get("agent_name")) or "agent"
    service = _text(span.get("service_name"))
    node_id = agent_node_id(name, service)
    start = _seconds(span)
    failed = span.get("status") == "error"
    node = builder.node(node_id, AGENT, name, service, start)
    if node is not None:
        _count(node, ended, failed, "runs")
        if run.node_id is not None:
            kind = AGENT_AS_TOOL if run.tool is not None else INVOKES
            edge = builder.edge(run.node_id, node_id, kind, start)
            if edge is not None:
                _count(edge, ended, failed, "count")
        if run.tool is not None:
            run.tool.agent_inside = True
        handed_by = _text(_attrs(span).get(_GRAPH_PARENT_KEY))
        if handed_by and handed_by not in (name, run.name):
            handed.append((handed_by, service, node_id, start))
    return _Run(node_id if node is not None else None, name, service, not ended)


def _mcp_of(call: _ToolCall | None, span: Mapping[str, Any], run: _Run) -> None:
    """Note the MCP server of ``call`` when ``span`` (in it) is an MCP ``tools/call``."""
    if call is None or not _is_mcp_call(span):
        return
    if call.mcp_start is None:
        call.mcp_start = _seconds(span)
    service = _text(span.get("service_name"))
    if service and service != run.service:
        call.mcp_server, call.mcp_source = service, 2  # the server's own span: the best name
    elif call.mcp_source < 1:
        address = _text(_attrs(span).get("server.address"))
        if address:
            call.mcp_server, call.mcp_source = address, 1
        elif call.mcp_server is None:
            call.mcp_server = "mcp"


def _handoff(span: Mapping[str, Any]) -> tuple[str | None, str] | None:
    """(from agent or None, to agent) when the tool span is a handoff."""
    attrs = _attrs(span)
    target = _first(attrs, _HANDOFF_TO_KEYS) or handoff_target(_tool_name(span))
    if target is None and attrs.get("gen_ai.operation.name") == HANDOFF:
        target = _first(attrs, ("gen_ai.agent.name",))
    if target is None:
        return None
    return _first(attrs, _HANDOFF_FROM_KEYS), target


def _add_call(builder: GraphBuilder, call: _ToolCall) -> None:
    """One tool call's nodes and edges (none for an agent used as a tool: its edge is made)."""
    if call.agent_inside:
        return
    span, run = call.span, call.run
    ended = span.get("end_time") is not None
    failed = span.get("status") == "error"
    start = _seconds(span)
    handoff = _handoff(span)
    if handoff is not None:
        source_name, target = handoff
        source = agent_node_id(source_name, run.service) if source_name else run.node_id
        if source is None:
            return
        if source_name:
            builder.node(source, AGENT, source_name, run.service, start)
        if builder.node(agent_node_id(target, run.service), AGENT, target, run.service, start) is None:
            return
        edge = builder.edge(source, agent_node_id(target, run.service), HANDOFF, start)
        if edge is not None:
            _count(edge, ended, failed, "count")
        return
    name = _tool_name(span)
    tool_id = tool_node_id(name)
    node = builder.node(tool_id, TOOL, name, None, start)
    if node is None:
        return
    _count(node, ended, failed, "runs")
    if run.node_id is not None:
        edge = builder.edge(run.node_id, tool_id, CALLS_TOOL, start)
        if edge is not None:
            _count(edge, ended, failed, "count")
    if call.mcp_server is not None or _is_mcp_call(span):
        server = call.mcp_server or "mcp"
        server_id = mcp_node_id(server)
        mcp_start = call.mcp_start if call.mcp_start is not None else start
        server_node = builder.node(server_id, MCP_SERVER, server, None, mcp_start)
        if server_node is not None:
            _count(server_node, ended, failed, "runs")
            edge = builder.edge(tool_id, server_id, CALLS_TOOL, mcp_start)
            if edge is not None:
                _count(edge, ended, failed, "count")
