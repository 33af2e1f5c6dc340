"""The agent graph page (issue 16) in a real headless Chromium against a real server.

Runs go in the real way: OpenTelemetry spans (``invoke_agent``, ``execute_tool``, a model call)
through a :class:`DashboardSpanProcessor` into the module's server, which serves ``GET /api/graph``;
the page polls it every second. Pinned here: the nodes and edges of a known nested run (Planner
invokes MarketResearcher twice, each calls two tools), the node of a run in progress lit with its
current step and unlit once the run ends, positions that never move when nodes arrive (even one that
a fresh layout would put before them), a click on an agent opening its view, no polling once the
page is left, the trace scope, and the layout's rules on cycles (graph-layout.js, run in the page).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import Console, ServerThread
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, Tracer, use_span
from playwright.sync_api import Page, expect

from otel_dashboard.pipeline.processor import DashboardSpanProcessor
from otel_dashboard.state.dashboard import DashboardState

SERVICE = "graph-tests"
PLANNER = f"agent:{SERVICE}/Planner"
RESEARCHER = f"agent:{SERVICE}/MarketResearcher"
NODE = ".graph-node"
TIMES = "\u00d7"  # the edge labels' multiplication sign: "\u00d72" is two calls


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    server = ServerThread(DashboardState(), health_interval_seconds=60).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def provider(server: ServerThread) -> Iterator[TracerProvider]:
    """Spans of the service ``graph-tests`` into the module's server, through the in-process processor."""
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(DashboardSpanProcessor(state=server.state, schedule_delay_millis=10))
    try:
        yield provider
    finally:
        provider.shutdown()


def agent_span(tracer: Tracer, name: str) -> Any:
    attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name}
    return tracer.start_as_current_span(f"invoke_agent {name}", attributes=attributes)


def tool_span(tracer: Tracer, name: str) -> Any:
    attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
    return tracer.start_as_current_span(f"execute_tool {name}", attributes=attributes)


def nested_run(provider: TracerProvider) -> str:
    """Planner invokes MarketResearcher twice; each calls web_search and fetch_page. Returns its trace id."""
    tracer = provider.get_tracer("tests")
    with agent_span(tracer, "Planner") as planner:
        for _ in range(2):
            with agent_span(tracer, "MarketResearcher"):
                with tool_span(tracer, "web_search"):
                    pass
                with tool_span(tracer, "fetch_page"):
                    pass
    assert provider.force_flush(5000)
    return f"{planner.get_span_context().trace_id:032x}"


def node(page: Page, node_id: str) -> Any:
    return page.locator(f'{NODE}[data-id="{node_id}"]')


def edge(page: Page, source: str, target: str) -> Any:
    return page.locator(f'.graph-edge[data-source="{source}"][data-target="{target}"]')


def positions(page: Page) -> dict[str, list[float]]:
    """Every drawn node's layer, slot, transform and on-screen box."""
    return dict(page.eval_on_selector_all(NODE, """ns => ns.map(n => {
        const r = n.getBoundingClientRect();
        return [n.dataset.id, [Number(n.dataset.layer), Number(n.dataset.slot), n.getAttribute('transform'),
                               r.x, r.y, r.width, r.height]];
    })"""))


def test_a_nested_run_its_lit_node_and_stable_positions(
    page: Page, server: ServerThread, provider: TracerProvider, console: Console
) -> None:
    trace_id = nested_run(provider)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/api/graph" in r.url else None)
    page.goto(f"{server.dashboard_url}#graph=window")
    expect(page.locator("#page-graph")).to_be_visible()
    expect(page.locator(".page-tab[data-page=graph]")).to_have_attribute("aria-current", "page")

    # The nodes: two agents of the service, two tools; laid out by depth, Planner first.
    expect(page.locator(NODE)).to_have_count(4)
    tools = ("tool:web_search", "tool:fetch_page")
    for node_id in (PLANNER, RESEARCHER, *tools):
        expect(node(page, node_id)).to_be_visible()
    expect(node(page, PLANNER).locator(".graph-node-name")).to_have_text("Planner")
    expect(node(page, PLANNER).locator(".graph-node-meta")).to_have_text(f"agent · {SERVICE}")
    expect(node(page, PLANNER).locator(".graph-node-state")).to_have_text("1 run")
    expect(node(page, RESEARCHER).locator(".graph-node-state")).to_have_text("2 runs")
    expect(node(page, "tool:web_search").locator(".graph-node-meta")).to_have_text("tool")
    expect(node(page, "tool:web_search").locator(".graph-node-state")).to_have_text("2 calls")
    before = positions(page)
    assert [before[PLANNER][0], before[RESEARCHER][0]] == [0, 1]
    assert {before[t][0] for t in tools} == {2}
    assert page.locator(f"{NODE}.is-running").count() == 0

    # The edges, with their counts and an arrowhead.
    invokes = edge(page, PLANNER, RESEARCHER)
    expect(invokes).to_have_attribute("data-kind", "invokes")
    expect(invokes.locator(".graph-edge-label")).to_have_text(f"{TIMES}2")
    assert invokes.locator("path").get_attribute("marker-end") == "url(#graph-arrow)"
    for tool in tools:
        calls = edge(page, RESEARCHER, tool)
        expect(calls).to_have_attribute("data-kind", "calls_tool")
        expect(calls.locator(".graph-edge-label")).to_have_text(f"{TIMES}2")
    expect(page.locator(".graph-edge")).to_have_count(3)
    expect(page.locator("#graph-status")).to_contain_text("2 agents · 2 tools · 0 running")
    title = invokes.locator("title").text_content() or ""
    assert title.startswith("Planner invokes MarketResearcher: 2 times")

    # A run in progress: a Director that invokes Planner, which waits on a model call. A fresh
    # layout would put Director first and push everything right; here nothing moves.
    tracer = provider.get_tracer("tests")
    director = tracer.start_span("invoke_agent Director", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Director"})
    spans: list[Span] = [director]
    with use_span(director, end_on_exit=False):
        spans.append(tracer.start_span("invoke_agent Planner", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Planner"}))
        with use_span(spans[-1], end_on_exit=False):
            spans.append(tracer.start_span("chat gpt-4o", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}))
    assert provider.force_flush(5000)
    director_id = f"agent:{SERVICE}/Director"
    expect(node(page, director_id)).to_be_visible()
    planner = node(page, PLANNER)
    expect(planner).to_have_class(re.compile(r"\bis-running\b"))
    expect(planner.locator(".graph-node-state")).to_have_text("running · model call to gpt-4o")
    expect(node(page, director_id)).to_have_class(re.compile(r"\bis-running\b"))
    expect(node(page, director_id).locator(".graph-node-state")).to_contain_text("running")
    expect(node(page, RESEARCHER)).not_to_have_class(re.compile(r"\bis-running\b"))
    expect(edge(page, director_id, PLANNER)).to_have_class(re.compile(r"\bis-running\b"))
    after = positions(page)
    for node_id, place in before.items():
        assert after[node_id] == place, f"{node_id} moved"
    assert after[director_id][:2] == [0, 1]  # a root: the first column, after Planner

    # The run ends: the lit nodes go out, the counts grow, and still nothing moves.
    for span in reversed(spans):
        span.end()
    assert provider.force_flush(5000)
    expect(planner).not_to_have_class(re.compile(r"\bis-running\b"))
    expect(planner.locator(".graph-node-state")).to_have_text("2 runs")
    expect(page.locator(f"{NODE}.is-running")).to_have_count(0)
    expect(edge(page, director_id, PLANNER).locator(".graph-edge-label")).to_have_text(f"{TIMES}1")
    assert positions(page) == after

    # A click on an agent opens its view and the graph stops polling; closing the view (Escape) goes
    # back to the graph, drawn as it was.
    node(page, RESEARCHER).click()
    expect(page.locator("#detail")).to_have_attribute("data-view", "agent")
    expect(page).to_have_url(re.compile(rf"#agent=MarketResearcher&service={SERVICE}$"))
    expect(page.locator("#page-graph")).to_be_hidden()
    page.wait_for_timeout(300)  # an answer in flight when the page was left may still land
    polled = len(requests)
    page.wait_for_timeout(1500)
    assert len(requests) == polled, "the graph polls while another page is shown"
    page.keyboard.press("Escape")
    expect(page.locator("#page-graph")).to_be_visible()
    expect(page).to_have_url(re.compile(r"#graph=window$"))
    expect(page.locator("#detail")).to_be_hidden()
    expect(node(page, RESEARCHER)).to_be_visible()
    assert positions(page) == after
    assert len(requests) > polled

    # The trace scope: only that trace's nodes; the select goes back to the window.
    page.evaluate(f"location.hash = '#graph={trace_id}'")
    expect(page.locator("#graph-scope")).to_have_value("trace")
    expect(page.locator(NODE)).to_have_count(4)
    expect(node(page, director_id)).to_have_count(0)
    expect(edge(page, PLANNER, RESEARCHER).locator(".graph-edge-label")).to_have_text(f"{TIMES}2")
    page.select_option("#graph-scope", "window")
    expect(page).to_have_url(re.compile(r"#graph=window$"))
    expect(page.locator(NODE)).to_have_count(5)
    assert positions(page) == after  # each scope keeps its own layout

    # WCAG AA in both themes: node texts on their node's fill, edge labels on their halo.
    for theme in ("dark", "light"):
        if page.evaluate("document.documentElement.dataset.theme || 'dark'") != theme:
            page.click("#theme-toggle")
        expect(page.locator("html")).to_have_attribute("data-theme", theme)
        ratios = page.evaluate(CONTRAST_JS)
        assert len(ratios) >= 5 * 3 + 4
        assert [r for r in ratios if r[1] < 4.5] == [], f"graph texts under 4.5:1 in the {theme} theme"
    page.goto("about:blank")


# Each SVG text of the graph against what it is drawn on: a node's texts on the node's box fill, an
# edge label on its own halo (its stroke, drawn under it). Fills may compute to color(srgb ...)
# (color-mix); an alpha is blended over the canvas background.
CONTRAST_JS = """() => {
  const parse = (c) => {
    let m = c.match(/rgba?\\(([^)]+)\\)/), scale = 1;
    if (!m) { m = c.match(/color\\(srgb ([^)]+)\\)/); scale = 255; }
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0] * scale, g: p[1] * scale, b: p[2] * scale, a: p.length > 3 ? p[3] : 1};
  };
  const over = (t, b) => ({r: t.r * t.a + b.r * (1 - t.a), g: t.g * t.a + b.g * (1 - t.a),
                           b: t.b * t.a + b.b * (1 - t.a), a: 1});
  const lum = (c) => {
    const ch = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * ch(c.r) + 0.7152 * ch(c.g) + 0.0722 * ch(c.b);
  };
  const canvas = parse(getComputedStyle(document.getElementById('graph-canvas')).backgroundColor);
  const ratio = (fg, bg) => {
    const b = over(bg, canvas), f = over(fg, b);
    const l1 = lum(f), l2 = lum(b);
    return Math.round((Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05) * 100) / 100;
  };
  const out = [];
  for (const t of document.querySelectorAll('.graph-node text, .graph-edge-label')) {
    if (!t.textContent.trim()) continue;
    const s = getComputedStyle(t);
    const bg = t.classList.contains('graph-edge-label') ? s.stroke
      : getComputedStyle(t.parentNode.querySelector('.graph-node-box')).fill;
    out.push([t.textContent, ratio(parse(s.fill), parse(bg))]);
  }
  return out;
}"""


LAYOUT_JS = """async () => {
  const { StableLayout, computeLayers, edgePath, nodeOrigin, GEOMETRY: g } =
    await import('/static/js/graph-layout.js');
  const n = (id, t) => ({ id, first_seen: `2026-01-01T00:00:${String(t).padStart(2, '0')}Z` });
  const e = (source, target) => ({ source, target });
  const layers = (nodes, edges) => Object.fromEntries(computeLayers(nodes, edges));
  const out = {};
  // Longest path: a -> b -> c and a -> c puts c two columns right of a.
  out.dag = layers([n('a', 1), n('b', 2), n('c', 3)], [e('a', 'b'), e('b', 'c'), e('a', 'c')]);
  // A cycle no root reaches: its earliest node is the root; the edge back to it is dropped.
  out.cycle = layers([n('y', 2), n('x', 1), n('z', 3)], [e('x', 'y'), e('y', 'z'), e('z', 'x')]);
  // Self edges and edges to unknown nodes are ignored.
  out.self = layers([n('s', 1)], [e('s', 's'), e('s', 'ghost')]);
  // Stable: b keeps its place when a new root r invokes it; new nodes of a layer take the next slots.
  const layout = new StableLayout();
  const first = layout.update([n('a', 1), n('b', 2)], [e('a', 'b')]);
  const second = layout.update([n('r', 3), n('a', 1), n('b', 2), n('c', 4)],
                               [e('r', 'b'), e('a', 'b'), e('a', 'c')]);
  const pick = (m) => Object.fromEntries([...m].map(([k, v]) => [k, [v.layer, v.slot, v.x, v.y]]));
  // An edge over two columns runs along the gap under its source's row, past the middle column.
  const at = (layer, slot) => ({ layer, slot, ...nodeOrigin(layer, slot) });
  const long = edgePath(at(0, 0), at(2, 1));
  out.long = { straight: long.d.includes(' L '), y: long.labels[0].y,
               gap: g.margin + g.nodeHeight + g.rowGap / 2 };
  out.first = pick(first);
  out.second = pick(second);
  return out;
}"""


def test_the_layout_breaks_cycles_and_never_moves_a_placed_node(page: Page, server: ServerThread) -> None:
    page.goto(server.dashboard_url)  # the live page: the graph page (and its polling) stays shut
    out = page.evaluate(LAYOUT_JS)
    assert out["dag"] == {"a": 0, "b": 1, "c": 2}
    assert out["cycle"] == {"x": 0, "y": 1, "z": 2}
    assert out["self"] == {"s": 0}
    assert out["long"]["straight"] and out["long"]["y"] == out["long"]["gap"]
    assert out["second"]["a"] == out["first"]["a"] and out["second"]["b"] == out["first"]["b"]
    assert out["second"]["r"][:2] == [0, 1] and out["second"]["c"][:2] == [1, 1]
    page.goto("about:blank")
