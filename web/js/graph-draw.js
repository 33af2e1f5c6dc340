// The agent graph's SVG (graph-page.js draws each answer of GET api/graph with it). Drawn nodes and
// edges are kept across answers and changed in place, so a poll a second costs only what changed.
// Built with createElementNS and textContent only: names come from the telemetry and are never
// parsed as markup.
//
// A node: <g class="graph-node type-<type> [is-running] [has-failures]" data-id data-layer
// data-slot> holding a <title> (everything in words), its box, its name, "agent · <service>" (or
// "tool", "MCP server") with "n failed" on its right, and its state: "3 runs", or, lit, "running ·
// model call to gpt-4o". An edge: <g class="graph-edge kind-<kind> [is-running] [has-failures]"
// data-source data-target data-kind> holding a <title>, a path ending in an arrowhead, and its
// count ("×2", "handoff ×1", "as tool ×3, 1 failed").

import { fmtInt, num, txt } from "./util.js";
import { stepText } from "./runs.js";
import { GEOMETRY, edgePath } from "./graph-layout.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const TEXT_PAD = 12; // a node's text inset, px
const FAILS_WIDTH = 80; // the most "n failed" may take, px
const KIND_WORDS = { invokes: "invokes", handoff: "hands off to", calls_tool: "calls", agent_as_tool: "calls as a tool" };
const TYPE_WORDS = { agent: "agent", tool: "tool", mcp_server: "MCP server" };

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

/** A count of the answer: a non-negative integer (0 for anything else). */
export function count(value) {
  const n = num(value);
  return n === null || n < 0 ? 0 : Math.round(n);
}

function plural(n, unit) {
  return `${fmtInt(n)} ${unit}${n === 1 ? "" : "s"}`;
}

/** The drawing: `draw()` each answer; `clear()` before another scope's. */
export class GraphDrawing {
  /** `onOpenAgent(name, service)` runs on a click (or Enter, Space) on an agent node. */
  constructor(onOpenAgent) {
    this.onOpenAgent = onOpenAgent;
    this.labelsMoved = false; // an edge came, went, moved or changed its count: place the counts again
    this.nodes = new Map(); // id → drawn node
    this.edges = new Map(); // source, target, kind → drawn edge
    this.root = svg("svg", { width: 0, height: 0, role: "group", "aria-label": "Agent graph" }, "graph-svg");
    this.root.id = "graph-svg";
    const defs = svg("defs");
    defs.append(arrowMarker("graph-arrow", ""), arrowMarker("graph-arrow-running", "is-running"), arrowMarker("graph-arrow-failed", "has-failures"));
    this.edgeLayer = svg("g", {}, "graph-edges");
    this.nodeLayer = svg("g", {}, "graph-nodes");
    this.root.append(defs, this.edgeLayer, this.nodeLayer);
  }

  clear() {
    this.nodes.clear();
    this.edges.clear();
    this.edgeLayer.replaceChildren();
    this.nodeLayer.replaceChildren();
    this.root.setAttribute("width", "0");
    this.root.setAttribute("height", "0");
  }

  /** Draws an answer's nodes and edges at `positions` (StableLayout.update) on a canvas of `size`. */
  draw(nodes, edges, positions, size) {
    this.root.setAttribute("width", String(size.width));
    this.root.setAttribute("height", String(size.height));
    this.root.setAttribute("viewBox", `0 0 ${size.width} ${size.height}`);
    const liveNodes = new Set();
    for (const n of nodes) {
      liveNodes.add(n.id);
      this.drawNode(n, positions.get(n.id));
    }
    dropMissing(this.nodes, liveNodes);
    const names = new Map(nodes.map((n) => [n.id, txt(n.name, 120) || n.id]));
    const liveEdges = new Set();
    for (const e of edges) {
      const key = `${e.source}\u0000${e.target}\u0000${e.kind}`;
      if (liveEdges.has(key)) continue;
      liveEdges.add(key);
      this.drawEdge(key, e, positions.get(e.source), positions.get(e.target), names);
    }
    if (dropMissing(this.edges, liveEdges)) this.labelsMoved = true;
    if (this.labelsMoved) this.placeLabels();
    this.labelsMoved = false;
  }

  /** Puts each edge's count on the first spot of its path that no earlier edge's count covers. */
  placeLabels() {
    const taken = [];
    const height = 14;
    for (const d of this.edges.values()) {
      if (d.labelWidth < 0) d.labelWidth = d.label.getComputedTextLength() + 6;
      const w = d.labelWidth;
      const free = (s) => !taken.some((b) => Math.abs(b.x - s.x) * 2 < b.w + w && Math.abs(b.y - s.y) * 2 < height * 2);
      const spot = d.spots.find(free) || d.spots[0];
      taken.push({ x: spot.x, y: spot.y, w });
      d.label.setAttribute("x", spot.x.toFixed(1));
      d.label.setAttribute("y", spot.y.toFixed(1));
    }
  }

  drawNode(n, pos) {
    let d = this.nodes.get(n.id);
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
      d = { g, title, name, meta, state, fails, agent: "", service: "", pos: null };
      if (n.type === "agent") {
        g.setAttribute("tabindex", "0");
        g.setAttribute("role", "link");
        const drawn = d;
        const open = () => this.onOpenAgent(drawn.agent, drawn.service);
        g.addEventListener("click", open);
        g.addEventListener("keydown", (ev) => {
          if (ev.key === "Enter" || ev.key === " ") {
            ev.preventDefault();
            open();
          }
        });
      }
      this.nodeLayer.appendChild(g);
      this.nodes.set(n.id, d);
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
    if (n.type === "agent") d.g.setAttribute("aria-label", `${t.title.replace(/\n/g, "; ")}. Opens the agent view.`);
    fitText(d.fails, t.fails, FAILS_WIDTH);
    const failsWidth = t.fails ? d.fails.getComputedTextLength() + 8 : 0;
    const width = GEOMETRY.nodeWidth - 2 * TEXT_PAD;
    fitText(d.name, t.name, width);
    fitText(d.meta, t.meta, width - failsWidth);
    fitText(d.state, t.state, width);
  }

  drawEdge(key, e, from, to, names) {
    let d = this.edges.get(key);
    if (!d) {
      const g = svg("g", {}, "graph-edge");
      const title = svg("title");
      const path = svg("path", {}, "graph-edge-line");
      const label = svg("text", { "text-anchor": "middle", "dominant-baseline": "middle" }, "graph-edge-label");
      g.append(title, path, label);
      g.dataset.source = e.source;
      g.dataset.target = e.target;
      g.dataset.kind = String(e.kind || "");
      this.edgeLayer.appendChild(g);
      d = { g, title, path, label, geometry: "", spots: [], labelWidth: -1 };
      this.edges.set(key, d);
    }
    const geometry = `${from.x},${from.y},${to.x},${to.y}`;
    if (d.geometry !== geometry) {
      const p = edgePath(from, to);
      d.path.setAttribute("d", p.d);
      d.spots = p.labels;
      d.geometry = geometry;
      this.labelsMoved = true;
    }
    const running = count(e.running);
    const failures = count(e.failures);
    const kind = KIND_WORDS[e.kind] ? e.kind : "invokes";
    const cls = `graph-edge kind-${kind}${running ? " is-running" : ""}${failures ? " has-failures" : ""}`;
    if (d.g.getAttribute("class") !== cls) {
      d.g.setAttribute("class", cls);
      d.path.setAttribute("marker-end", `url(#${running ? "graph-arrow-running" : failures ? "graph-arrow-failed" : "graph-arrow"})`);
    }
    const n = count(e.count);
    const prefix = kind === "handoff" ? "handoff " : kind === "agent_as_tool" ? "as tool " : "";
    const label = `${prefix}×${fmtInt(n)}${failures ? `, ${fmtInt(failures)} failed` : ""}`;
    if (d.label.textContent !== label) {
      d.label.textContent = label;
      d.labelWidth = -1;
      this.labelsMoved = true;
    }
    const title = `${names.get(e.source)} ${KIND_WORDS[kind]} ${names.get(e.target)}: ${plural(n, "time")}, ${fmtInt(failures)} failed${running ? `, ${fmtInt(running)} running now` : ""}`;
    if (d.title.textContent !== title) d.title.textContent = title;
  }
}

/** Removes the drawn items not in `live`; true when there were any. */
function dropMissing(drawn, live) {
  let dropped = false;
  for (const [key, d] of drawn) {
    if (!live.has(key)) {
      d.g.remove();
      drawn.delete(key);
      dropped = true;
    }
  }
  return dropped;
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

/** A node's texts: its name, its kind line, its state line, its failures and its tooltip. */
function nodeTexts(n) {
  const type = TYPE_WORDS[n.type] || "node";
  const name = txt(n.name, 200) || n.id;
  const runs = count(n.runs);
  const failures = count(n.failures);
  const running = count(n.running);
  const unit = n.type === "agent" ? "run" : "call";
  const service = n.type === "agent" && n.service ? txt(n.service, 120) : "";
  const meta = n.type === "agent" ? (service ? `agent · ${service}` : "agent") : type;
  const step = running > 0 ? stepText(n.current_step) : "";
  const state = running > 0
    ? `running${running > 1 ? ` ×${running}` : ""}${step === "running" ? "" : ` · ${txt(step, 120)}`}`
    : plural(runs, unit);
  const title = [
    `${type} ${name}${service ? ` (service ${service})` : ""}`,
    `${plural(runs, unit)}, ${fmtInt(failures)} failed`,
    running > 0 ? `running now: ${fmtInt(running)}${step !== "running" ? ` (${txt(step, 120)})` : ""}` : "not running now",
  ].join("\n");
  return { name, meta, state, fails: failures > 0 ? `${fmtInt(failures)} failed` : "", title };
}
