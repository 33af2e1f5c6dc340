// The live agent graph (#graph=window or #graph=<trace_id>; docs/dashboard.md, "Agent graph"):
// who invokes whom, drawn as an SVG from GET api/graph (docs/api.md, "The agent graph"), polled
// every second while the page is shown and the browser tab is visible, and stopped when another
// page is shown (pages.js calls closeGraphPage) or the tab is hidden.
//
// Nodes are agents, tools and MCP servers; edges carry their count. A node with runs open now is
// lit (the class is-running, a visible "running" line with its current step); failures show on
// the node and the edge. The positions come from graph-layout.js and never move while the page is
// open: each poll updates the drawn nodes and edges in place, adds the new ones, removes the gone
// ones. A click (or Enter) on an agent opens the agent view (openRoute({agent, service})).
//
// Everything is built with createElementNS/createElement and textContent: names come from the
// telemetry and are never parsed as markup.

import { $, el, fmtInt, fmtTime, num, txt } from "./util.js";
import { showPage } from "./pages.js";
import { openRoute } from "./router.js";
import { stepText } from "./runs.js";
import { agentStats } from "./agents-table.js";
import { windowText } from "./agent-figures.js";
import { GEOMETRY, StableLayout, edgePath } from "./graph-layout.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const POLL_MS = 1000;
const RETRY_MS = 5000; // after an error
const FETCH_TIMEOUT_MS = 8000;
const MAX_LAYOUTS = 8; // layouts kept (per scope) while the page lives
const TRACE_ID = /^[0-9a-f]{32}$/;
const TEXT_PAD = 12; // a node's text inset, px
const KIND_WORDS = { invokes: "invokes", handoff: "hands off to", calls_tool: "calls", agent_as_tool: "calls as a tool" };
const TYPE_WORDS = { agent: "agent", tool: "tool", mcp_server: "MCP server" };

const view = {
  active: false,
  scope: "window", // "window" or a trace id
  traceId: "", // the last trace opened here: the select offers it back
  gen: 0, // bumped on every open, leave and hide: a late answer of an older poll is dropped
  timer: 0,
  controller: null,
  dom: null,
  layouts: new Map(), // scope → StableLayout
  nodes: new Map(), // id → drawn node
  edges: new Map(), // key → drawn edge
};

/** Opens the graph page; `scope` is "window" or a trace id (32 hex digits). */
export function openGraphPage(scope) {
  showPage("graph", closeGraphPage);
  const wanted = String(scope || "window").toLowerCase();
  if (!view.dom) view.dom = buildPage();
  if (wanted !== view.scope) clearDrawing();
  view.scope = wanted;
  if (wanted !== "window" && TRACE_ID.test(wanted)) view.traceId = wanted;
  view.active = true;
  view.gen++;
  stopPolling();
  updateScopeControls();
  if (wanted !== "window" && !TRACE_ID.test(wanted)) {
    showMessage(`"${txt(scope, 80)}" is not a trace id (32 hexadecimal digits).`, "error");
    view.dom.status.textContent = "";
    return;
  }
  poll();
}

/** Stops the page's polling (pages.js calls it when another page is shown). */
export function closeGraphPage() {
  view.active = false;
  view.gen++;
  stopPolling();
}

function stopPolling() {
  clearTimeout(view.timer);
  view.timer = 0;
  if (view.controller) view.controller.abort();
  view.controller = null;
}

document.addEventListener("visibilitychange", () => {
  if (!view.active) return;
  view.gen++;
  stopPolling();
  if (!document.hidden) poll();
});

// ---------------------------------------------------------------------------------- fetching

function graphUrl() {
  if (view.scope === "window") return "api/graph?scope=window";
  return `api/graph?scope=trace&trace_id=${encodeURIComponent(view.scope)}`;
}

async function poll() {
  view.timer = 0;
  if (!view.active || document.hidden) return;
  const gen = view.gen;
  const ctl = new AbortController();
  view.controller = ctl;
  const timeout = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
  let delay = POLL_MS;
  try {
    const res = await fetch(graphUrl(), { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" }, signal: ctl.signal });
    if (gen !== view.gen) return;
    if (res.status === 404 && view.scope !== "window") {
      clearDrawing();
      showMessage("This trace is not kept by the server (never seen, or evicted from the trace store).", "error");
      view.dom.status.textContent = "";
      delay = RETRY_MS; // it may still arrive
    } else if (!res.ok) {
      throw new Error(`HTTP ${res.status}`);
    } else {
      const body = await res.json();
      if (gen !== view.gen) return;
      render(body);
    }
  } catch (err) {
    if (gen !== view.gen) return;
    const reason = err && err.name === "AbortError" ? "timed out" : err && err.message ? err.message : "error";
    showMessage(`The graph could not be read (${reason}); retrying.`, "error");
    delay = RETRY_MS;
  } finally {
    clearTimeout(timeout);
    if (view.controller === ctl) view.controller = null;
  }
  if (gen === view.gen && view.active && !document.hidden) view.timer = setTimeout(poll, delay);
}

// ---------------------------------------------------------------------------------- the page

function svg(tag, attrs = {}, className = "") {
  const node = document.createElementNS(SVG_NS, tag);
  if (className) node.setAttribute("class", className);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function arrowMarker(id, className) {
  const marker = svg("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto" });
  marker.appendChild(svg("path", { d: "M 0 0 L 10 5 L 0 10 z" }, `graph-arrow-head ${className}`));
  return marker;
}

function buildPage() {
  const body = $("graph-page-body");
  const toolbar = el("div", "graph-toolbar");
  const label = el("label", "graph-scope-label", "Scope");
  label.htmlFor = "graph-scope";
  const select = el("select", "graph-scope");
  select.id = "graph-scope";
  const windowOption = el("option", null, "Last window");
  windowOption.value = "window";
  const traceOption = el("option", null, "This trace");
  traceOption.value = "trace";
  select.append(windowOption, traceOption);
  select.addEventListener("change", () => {
    if (select.value === "trace" && view.traceId) openRoute({ graph: view.traceId });
    else openRoute({ graph: "window" });
  });
  const traceLink = el("a", "graph-trace-link link-button", "Open trace");
  traceLink.addEventListener("click", (ev) => {
    ev.preventDefault();
    if (view.traceId) openRoute({ trace: view.traceId });
  });
  const status = el("span", "graph-status");
  status.id = "graph-status";
  status.setAttribute("aria-live", "polite");
  const legend = el("span", "graph-legend");
  legend.append(el("span", "graph-legend-item graph-legend-running", "running now"), el("span", "graph-legend-item graph-legend-failed", "has failures"), el("span", "graph-legend-item graph-legend-tool", "tool / MCP server"));
  toolbar.append(label, select, traceLink, status, legend);

  const message = el("p", "graph-message");
  message.id = "graph-message";
  message.hidden = true;

  const canvas = el("div", "graph-canvas");
  canvas.id = "graph-canvas";
  const root = svg("svg", { width: 0, height: 0, role: "group", "aria-label": "Agent graph" }, "graph-svg");
  root.id = "graph-svg";
  const defs = svg("defs");
  defs.append(arrowMarker("graph-arrow", ""), arrowMarker("graph-arrow-running", "is-running"), arrowMarker("graph-arrow-failed", "has-failures"));
  const edgeLayer = svg("g", {}, "graph-edges");
  const nodeLayer = svg("g", {}, "graph-nodes");
  root.append(defs, edgeLayer, nodeLayer);
  canvas.appendChild(root);
  body.replaceChildren(toolbar, message, canvas);
  return { select, windowOption, traceOption, traceLink, status, message, canvas, root, edgeLayer, nodeLayer };
}

function updateScopeControls() {
  const d = view.dom;
  d.windowOption.textContent = `${capitalize(windowText(agentStats.windowSeconds)) || "Last window"}`;
  d.traceOption.hidden = !view.traceId;
  d.traceOption.disabled = !view.traceId;
  d.traceOption.textContent = view.traceId ? `This trace (${view.traceId.slice(0, 8)}…)` : "This trace";
  d.select.value = view.scope === "window" ? "window" : "trace";
  d.traceLink.hidden = view.scope === "window" || !view.traceId;
  if (view.traceId) d.traceLink.href = `#trace=${view.traceId}`;
}

function capitalize(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

function showMessage(text, kind = "") {
  const m = view.dom.message;
  m.hidden = !text;
  m.textContent = text || "";
  m.className = `graph-message${kind ? ` is-${kind}` : ""}`;
}

function layoutFor(scope) {
  let layout = view.layouts.get(scope);
  if (!layout) {
    layout = new StableLayout();
    view.layouts.set(scope, layout);
    while (view.layouts.size > MAX_LAYOUTS) view.layouts.delete(view.layouts.keys().next().value);
  }
  return layout;
}

function clearDrawing() {
  view.nodes.clear();
  view.edges.clear();
  if (!view.dom) return;
  view.dom.edgeLayer.replaceChildren();
  view.dom.nodeLayer.replaceChildren();
  view.dom.root.setAttribute("width", "0");
  view.dom.root.setAttribute("height", "0");
}

// ---------------------------------------------------------------------------------- drawing

function count(value) {
  const n = num(value);
  return n === null || n < 0 ? 0 : Math.round(n);
}

/** The answer's nodes and edges, checked: nodes need an id, edges two known ends. */
function cleanGraph(body) {
  const nodes = [];
  const seen = new Set();
  for (const n of Array.isArray(body && body.nodes) ? body.nodes : []) {
    if (!n || typeof n.id !== "string" || !n.id || seen.has(n.id)) continue;
    seen.add(n.id);
    nodes.push(n);
  }
  const edges = [];
  for (const e of Array.isArray(body && body.edges) ? body.edges : []) {
    if (!e || !seen.has(e.source) || !seen.has(e.target)) continue;
    edges.push(e);
  }
  return { nodes, edges };
}

function render(body) {
  if (typeof body.window_seconds === "number" && body.window_seconds > 0) agentStats.windowSeconds = body.window_seconds;
  updateScopeControls();
  const { nodes, edges } = cleanGraph(body);
  const layout = layoutFor(view.scope);
  const positions = layout.update(nodes, edges);
  const size = layout.extent();
  view.dom.root.setAttribute("width", String(size.width));
  view.dom.root.setAttribute("height", String(size.height));
  view.dom.root.setAttribute("viewBox", `0 0 ${size.width} ${size.height}`);

  const liveNodes = new Set();
  for (const n of nodes) {
    liveNodes.add(n.id);
    drawNode(n, positions.get(n.id));
  }
  for (const [id, drawn] of view.nodes) {
    if (!liveNodes.has(id)) {
      drawn.g.remove();
      view.nodes.delete(id);
    }
  }
  const names = new Map(nodes.map((n) => [n.id, txt(n.name, 120) || n.id]));
  const liveEdges = new Set();
  for (const e of edges) {
    const key = `${e.source}\u0000${e.target}\u0000${e.kind}`;
    if (liveEdges.has(key)) continue;
    liveEdges.add(key);
    drawEdge(key, e, positions.get(e.source), positions.get(e.target), names);
  }
  for (const [key, drawn] of view.edges) {
    if (!liveEdges.has(key)) {
      drawn.g.remove();
      view.edges.delete(key);
    }
  }

  const of = (type) => nodes.filter((n) => n.type === type).length;
  const [agents, tools, servers] = [of("agent"), of("tool"), of("mcp_server")];
  const running = nodes.filter((n) => count(n.running) > 0).length;
  const parts = [`${fmtInt(agents)} agent${agents === 1 ? "" : "s"}`];
  if (tools) parts.push(`${fmtInt(tools)} tool${tools === 1 ? "" : "s"}`);
  if (servers) parts.push(`${fmtInt(servers)} MCP server${servers === 1 ? "" : "s"}`);
  parts.push(`${fmtInt(running)} running`);
  parts.push(`updated ${fmtTime(body.generated_at)}`);
  view.dom.status.textContent = parts.join(" · ");
  if (!nodes.length) {
    const where = view.scope === "window" ? `in the ${windowText(agentStats.windowSeconds) || "window"}` : "in this trace";
    showMessage(`No agent runs ${where} yet.`);
  } else if (body.truncated) {
    showMessage("The graph is truncated: the server keeps a bounded number of nodes and edges (docs/api.md).", "warning");
  } else {
    showMessage("");
  }
}

/** Sets a <text>'s content, cut to `width` px with an ellipsis (the node's <title> has it whole). */
function fitText(node, text, width) {
  const key = `${Math.round(width)}|${text}`;
  if (node.dataset.fit === key) return;
  node.dataset.fit = key;
  node.textContent = text;
  if (!text || node.getComputedTextLength() <= width) return;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    node.textContent = `${text.slice(0, mid)}…`;
    if (node.getComputedTextLength() <= width) lo = mid;
    else hi = mid - 1;
  }
  node.textContent = `${text.slice(0, lo)}…`;
}

function nodeTexts(n) {
  const type = TYPE_WORDS[n.type] || "node";
  const name = txt(n.name, 200) || n.id;
  const runs = count(n.runs);
  const failures = count(n.failures);
  const running = count(n.running);
  const unit = n.type === "agent" ? "run" : "call";
  const meta = n.type === "agent" ? (n.service ? `agent · ${txt(n.service, 120)}` : "agent") : type;
  let state;
  if (running > 0) {
    const step = stepText(n.current_step);
    state = `running${running > 1 ? ` ×${running}` : ""}${step === "running" ? "" : ` · ${txt(step, 120)}`}`;
  } else {
    state = `${fmtInt(runs)} ${unit}${runs === 1 ? "" : "s"}`;
  }
  const fails = failures > 0 ? `${fmtInt(failures)} failed` : "";
  const title = [`${type} ${name}${n.service && n.type === "agent" ? ` (service ${txt(n.service, 120)})` : ""}`,
    `${fmtInt(runs)} ${unit}${runs === 1 ? "" : "s"}, ${fmtInt(failures)} failed`,
    running > 0 ? `running now: ${running}${n.current_step ? ` (${stepText(n.current_step)})` : ""}` : "not running now"].join("\n");
  return { name, meta, state, fails, title };
}

function drawNode(n, pos) {
  let d = view.nodes.get(n.id);
  if (!d) {
    const g = svg("g", {}, "graph-node");
    const title = svg("title");
    const box = svg("rect", { width: GEOMETRY.nodeWidth, height: GEOMETRY.nodeHeight, rx: 8, ry: 8 }, "graph-node-box");
    const name = svg("text", { x: TEXT_PAD, y: 20 }, "graph-node-name");
    const meta = svg("text", { x: TEXT_PAD, y: 36 }, "graph-node-meta");
    const state = svg("text", { x: TEXT_PAD, y: 51 }, "graph-node-state");
    const fails = svg("text", { x: GEOMETRY.nodeWidth - TEXT_PAD, y: 36, "text-anchor": "end" }, "graph-node-fails");
    g.append(title, box, name, meta, state, fails);
    g.dataset.id = n.id;
    if (n.type === "agent") {
      g.setAttribute("tabindex", "0");
      g.setAttribute("role", "link");
      const open = () => openRoute({ agent: d.agent, service: d.service });
      g.addEventListener("click", open);
      g.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          open();
        }
      });
    }
    view.dom.nodeLayer.appendChild(g);
    d = { g, title, name, meta, state, fails, agent: "", service: "", pos: null };
    view.nodes.set(n.id, d);
  }
  d.agent = String(n.name || "");
  d.service = String(n.service || "");
  if (!d.pos || d.pos.x !== pos.x || d.pos.y !== pos.y) {
    d.g.setAttribute("transform", `translate(${pos.x} ${pos.y})`);
    d.g.dataset.layer = String(pos.layer);
    d.g.dataset.slot = String(pos.slot);
    d.pos = pos;
  }
  const t = nodeTexts(n);
  const running = count(n.running) > 0;
  const failed = count(n.failures) > 0;
  const cls = `graph-node type-${TYPE_WORDS[n.type] ? n.type : "other"}${running ? " is-running" : ""}${failed ? " has-failures" : ""}`;
  if (d.g.getAttribute("class") !== cls) d.g.setAttribute("class", cls);
  if (d.title.textContent !== t.title) d.title.textContent = t.title;
  if (n.type === "agent") d.g.setAttribute("aria-label", `${t.title.replace(/\n/g, "; ")}. Open the agent view.`);
  fitText(d.fails, t.fails, 80);
  const failsWidth = t.fails ? d.fails.getComputedTextLength() + 8 : 0;
  fitText(d.name, t.name, GEOMETRY.nodeWidth - 2 * TEXT_PAD);
  fitText(d.meta, t.meta, GEOMETRY.nodeWidth - 2 * TEXT_PAD - failsWidth);
  fitText(d.state, t.state, GEOMETRY.nodeWidth - 2 * TEXT_PAD);
}

function edgeLabel(e) {
  const n = count(e.count);
  const prefix = e.kind === "handoff" ? "handoff " : e.kind === "agent_as_tool" ? "as tool " : "";
  const failures = count(e.failures);
  return `${prefix}×${fmtInt(n)}${failures ? `, ${fmtInt(failures)} failed` : ""}`;
}

function drawEdge(key, e, from, to, names) {
  let d = view.edges.get(key);
  if (!d) {
    const g = svg("g", {}, "graph-edge");
    const title = svg("title");
    const path = svg("path", {}, "graph-edge-line");
    const label = svg("text", { "text-anchor": "middle", "dominant-baseline": "middle" }, "graph-edge-label");
    g.append(title, path, label);
    g.dataset.source = e.source;
    g.dataset.target = e.target;
    g.dataset.kind = String(e.kind || "");
    view.dom.edgeLayer.appendChild(g);
    d = { g, title, path, label, geometry: "" };
    view.edges.set(key, d);
  }
  const geometry = `${from.x},${from.y},${to.x},${to.y}`;
  if (d.geometry !== geometry) {
    const p = edgePath(from, to);
    d.path.setAttribute("d", p.d);
    d.label.setAttribute("x", p.label.x.toFixed(1));
    d.label.setAttribute("y", p.label.y.toFixed(1));
    d.geometry = geometry;
  }
  const running = count(e.running) > 0;
  const failed = count(e.failures) > 0;
  const kind = KIND_WORDS[e.kind] ? e.kind : "invokes";
  const cls = `graph-edge kind-${kind}${running ? " is-running" : ""}${failed ? " has-failures" : ""}`;
  if (d.g.getAttribute("class") !== cls) {
    d.g.setAttribute("class", cls);
    d.path.setAttribute("marker-end", `url(#${running ? "graph-arrow-running" : failed ? "graph-arrow-failed" : "graph-arrow"})`);
  }
  const label = edgeLabel(e);
  if (d.label.textContent !== label) d.label.textContent = label;
  const c = count(e.count);
  const title = `${names.get(e.source)} ${KIND_WORDS[kind]} ${names.get(e.target)}: ${fmtInt(c)} time${c === 1 ? "" : "s"}, ${fmtInt(count(e.failures))} failed${running ? `, ${fmtInt(count(e.running))} running now` : ""}`;
  if (d.title.textContent !== title) d.title.textContent = title;
}
