// The trace's data, with no DOM: the span tree of a trace page's records, the rows it shows with
// some subtrees collapsed, the time axis, and the in-trace search. Built for 10,000 spans: one pass
// to build the tree, the rows in preorder (a collapsed subtree is skipped in one step, since a
// subtree is contiguous in preorder), and a search text made once per span, on the first search.

import { isObject, num, parseTime, txt } from "./util.js";

export const SPAN_KINDS = ["agent", "model", "tool", "retrieval", "chain", "synthesis", "registration", "other"];

/** A span time as epoch nanoseconds (a double: sub-microsecond precision is not needed here). */
export function spanNs(nanos, iso) {
  const n = num(nanos);
  if (n !== null && n > 0) return n;
  const t = parseTime(iso);
  return Number.isNaN(t) ? null : t * 1e6;
}

/** The row's name: the agent for agent spans, the tool for tool spans, else the span's name. */
function spanLabel(rec, kind) {
  const name = txt(rec.name || "(unnamed span)", 160);
  if ((kind === "agent" || kind === "registration") && rec.agent_name) return txt(rec.agent_name, 160);
  if (kind === "tool" && rec.tool_name) return txt(rec.tool_name, 160);
  return name;
}

function makeNode(rec) {
  const kind = SPAN_KINDS.includes(rec.kind) ? rec.kind : "other";
  const running = rec.end_time === null || rec.end_time === undefined;
  const label = spanLabel(rec, kind);
  const name = txt(rec.name || "", 160);
  return {
    id: rec.span_id,
    rec,
    kind,
    label,
    // The span's own name when it says more than the label (not just "invoke_agent <label>").
    sub: name && name !== label && !name.endsWith(` ${label}`) ? name : "",
    start: spanNs(rec.start_time_unix_nano, rec.start_time),
    running,
    end: running ? null : spanNs(rec.end_time_unix_nano, rec.end_time),
    error: rec.status === "error",
    parent: null,
    kids: [],
    depth: 0,
    index: 0, // position in preorder
    pos: 1, // position among its siblings (aria-posinset)
    size: 1, // spans in the subtree, itself included
    hay: null, // lower-case search text, made on the first search
  };
}

/** The span tree of a trace's records: parents before children, siblings by start time (then id);
 * a span whose parent is not in the trace (or whose parents form a loop) is a root, so none is lost.
 * Returns {nodes: Map id -> node, order: node[] (preorder), roots, running, errors, t0, known}. */
export function buildTrace(records) {
  const nodes = new Map();
  for (const rec of records) {
    if (!isObject(rec) || typeof rec.span_id !== "string" || !rec.span_id || nodes.has(rec.span_id)) continue;
    nodes.set(rec.span_id, makeNode(rec));
  }
  const byStart = (a, b) => (a.start ?? 0) - (b.start ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  const roots = [];
  for (const node of nodes.values()) {
    const parentId = node.rec.parent_span_id;
    const parent = typeof parentId === "string" && parentId !== node.id ? nodes.get(parentId) : undefined;
    if (parent) {
      node.parent = parent;
      parent.kids.push(node);
    } else {
      roots.push(node);
    }
  }
  for (const node of nodes.values()) if (node.kids.length > 1) node.kids.sort(byStart);
  roots.sort(byStart);
  for (const node of nodes.values()) node.kids.forEach((kid, i) => { kid.pos = i + 1; });
  roots.forEach((root, i) => { root.pos = i + 1; });
  const order = [];
  // index: -1 not reached yet, -2 on the stack, else the node's position in preorder.
  for (const node of nodes.values()) node.index = -1;
  const walk = (root) => {
    // Iterative: a 10,000-deep chain must not overflow the stack.
    root.index = -2;
    root.depth = 0;
    const stack = [root];
    while (stack.length) {
      const node = stack.pop();
      node.index = order.length;
      order.push(node);
      for (let i = node.kids.length - 1; i >= 0; i -= 1) {
        const kid = node.kids[i];
        if (kid.index !== -1) continue;
        kid.index = -2;
        kid.depth = node.depth + 1;
        stack.push(kid);
      }
    }
  };
  for (const root of roots) walk(root);
  // Spans whose parent links form a loop reach no root: each loop's earliest span becomes a root.
  if (order.length < nodes.size) {
    for (const node of Array.from(nodes.values()).sort(byStart)) {
      if (node.index !== -1) continue;
      const siblings = node.parent.kids;
      siblings.splice(siblings.indexOf(node), 1);
      siblings.forEach((kid, i) => { kid.pos = i + 1; });
      node.parent = null;
      roots.push(node);
      node.pos = roots.length;
      walk(node);
    }
  }
  // Subtree sizes, from the leaves up (reverse preorder visits children before parents).
  for (let i = order.length - 1; i >= 0; i -= 1) {
    const node = order[i];
    node.size = 1;
    for (const kid of node.kids) node.size += kid.size;
  }
  let t0 = Infinity;
  let known = -Infinity; // the newest time the trace reports (a running span's "now" is never before it)
  let lastEnd = -Infinity;
  let running = 0;
  let errors = 0;
  for (const node of order) {
    if (node.start !== null) {
      t0 = Math.min(t0, node.start);
      known = Math.max(known, node.start);
    }
    if (node.end !== null) known = Math.max(known, node.end);
    if (node.running) running += 1;
    else lastEnd = Math.max(lastEnd, node.end ?? node.start ?? -Infinity);
    if (node.error) errors += 1;
  }
  if (!Number.isFinite(t0)) t0 = 0;
  return { nodes, order, roots, running, errors, t0, known, lastEnd };
}

/** The rows shown: the preorder without the subtrees under a collapsed span. */
export function visibleRows(tree, collapsed) {
  const { order } = tree;
  if (!collapsed.size) return order.slice();
  const rows = [];
  for (let i = 0; i < order.length;) {
    const node = order[i];
    rows.push(node);
    i += collapsed.has(node.id) && node.kids.length ? node.size : 1;
  }
  return rows;
}

/** Ids of the spans that have children (what "Collapse all" collapses). */
export function parentIds(tree) {
  const ids = new Set();
  for (const node of tree.order) if (node.kids.length) ids.add(node.id);
  return ids;
}

/** The trace's time axis: {t0, extent} in ns, "now" (ns) for running bars. */
export function timeAxis(tree, nowNs) {
  const now = Math.max(nowNs, tree.known);
  let t1 = Math.max(tree.t0, tree.lastEnd);
  if (tree.running) t1 = Math.max(t1, now);
  return { t0: tree.t0, extent: Math.max(t1 - tree.t0, 1), now };
}

function pushText(parts, value) {
  if (typeof value === "string") parts.push(value);
  else if (typeof value === "number" || typeof value === "boolean") parts.push(String(value));
  else if (Array.isArray(value)) for (const item of value.slice(0, 50)) pushText(parts, item);
}

/** The text a search looks in: the span's names, ids, service, model, status message and the values
 * of its attributes and of its events' attributes (lower case, made once per span). */
function haystack(node) {
  if (node.hay !== null) return node.hay;
  const rec = node.rec;
  const parts = [node.label, rec.name, rec.span_id, rec.service_name, rec.agent_name, rec.tool_name, rec.model,
    rec.status_message, node.kind];
  if (isObject(rec.attributes)) for (const value of Object.values(rec.attributes)) pushText(parts, value);
  if (Array.isArray(rec.events)) {
    for (const event of rec.events.slice(0, 32)) {
      if (!isObject(event)) continue;
      pushText(parts, event.name);
      if (isObject(event.attributes)) for (const value of Object.values(event.attributes)) pushText(parts, value);
    }
  }
  node.hay = parts.filter((p) => typeof p === "string" && p).join("\n").toLowerCase();
  return node.hay;
}

/** The spans matching `query` (case-insensitive substring of the search text), in preorder. */
export function searchTrace(tree, query) {
  const q = typeof query === "string" ? query.trim().toLowerCase() : "";
  if (!q) return [];
  const hits = [];
  for (const node of tree.order) if (haystack(node).includes(q)) hits.push(node.id);
  return hits;
}

function attr(rec, key) {
  return isObject(rec.attributes) ? rec.attributes[key] : undefined;
}

/** A model call's model: the server's `model`, else the response's or the request's attribute. */
export function spanModel(rec) {
  for (const value of [rec.model, attr(rec, "gen_ai.response.model"), attr(rec, "gen_ai.request.model")]) {
    if (typeof value === "string" && value) return value;
  }
  return "";
}

/** A span's tokens: the server's `input_tokens`/`output_tokens`, else the GenAI usage attributes. */
export function spanTokens(rec) {
  return {
    input: num(rec.input_tokens) ?? num(attr(rec, "gen_ai.usage.input_tokens")),
    output: num(rec.output_tokens) ?? num(attr(rec, "gen_ai.usage.output_tokens")),
  };
}

/** Sums over the model spans, for a header when the server sends no summary. */
export function traceFigures(tree) {
  let input = null;
  let output = null;
  let cost = null;
  let models = 0;
  let tools = 0;
  for (const node of tree.order) {
    const rec = node.rec;
    if (node.kind === "tool") tools += 1;
    if (node.kind === "model") models += 1;
    if (node.kind !== "model") continue;
    const { input: i, output: o } = spanTokens(rec);
    const c = num(rec.cost_usd);
    if (i !== null) input = (input ?? 0) + i;
    if (o !== null) output = (output ?? 0) + o;
    if (c !== null) cost = (cost ?? 0) + c;
  }
  return { input, output, cost, models, tools };
}
