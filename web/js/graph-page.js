// The live agent graph (#graph=window or #graph=<trace_id>; docs/dashboard.md, "Agent graph"):
// who invokes whom, drawn as an SVG from GET api/graph (docs/api.md, "The agent graph"), polled
// every second while the page is shown and the browser tab is visible, and stopped when another
// page is shown (pages.js calls closeGraphPage) or the tab is hidden.
//
// Nodes are agents, tools and MCP servers; edges carry their count. A node with runs open now is
// lit (the class is-running, a visible "running" line with its current step); failures show on
// the node and the edge (graph-draw.js draws them). The positions come from graph-layout.js and
// never move while the page is open: each poll updates the drawn nodes and edges in place, adds
// the new ones, removes the gone ones. A click (or Enter) on an agent opens the agent view
// (openRoute({agent, service})). Everything is built with textContent only.

import { $, el, fmtInt, fmtTime, txt } from "./util.js";
import { showPage } from "./pages.js";
import { openRoute } from "./router.js";
import { agentStats } from "./agents-table.js";
import { windowText } from "./agent-figures.js";
import { StableLayout } from "./graph-layout.js";
import { GraphDrawing, count } from "./graph-draw.js";

const POLL_MS = 1000;
const RETRY_MS = 5000; // after an error
const FETCH_TIMEOUT_MS = 8000;
const MAX_LAYOUTS = 8; // layouts kept (per scope) while the page lives
const TRACE_ID = /^[0-9a-f]{32}$/;

const view = {
  active: false,
  scope: "window", // "window" or a trace id
  traceId: "", // the last trace opened here: the select offers it back
  gen: 0, // bumped on every open, leave and hide: a late answer of an older poll is dropped
  timer: 0,
  controller: null,
  dom: null,
  layouts: new Map(), // scope → StableLayout
  drawing: null, // GraphDrawing
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
  if (!view.drawing.nodes.size) view.dom.status.textContent = "Loading the graph…";
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
  view.drawing = new GraphDrawing((agent, service) => openRoute({ agent, service }));
  canvas.appendChild(view.drawing.root);
  body.replaceChildren(toolbar, message, canvas);
  return { select, windowOption, traceOption, traceLink, status, message, canvas };
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
  if (view.drawing) view.drawing.clear();
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
  view.drawing.draw(nodes, edges, positions, layout.extent());

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
