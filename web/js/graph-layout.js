// The agent graph's layout (graph-page.js): a small layered layout, written here so the page needs
// no library. Layers are columns, left to right, by invocation depth from the roots; slots are rows
// within a column. It is STABLE: a node, once placed, keeps its layer and slot while the layout
// lives, whatever arrives later, so nothing jumps while the graph grows under the reader's eyes.
//
// - Depth: the longest path from a root over the graph with its cycles broken (a depth-first walk
//   from the roots, in first_seen order, drops the edges that close a cycle). A root has no
//   incoming edge; a cycle no root reaches gets its earliest node as a root. A node already placed
//   keeps its layer; a new one goes one layer right of its deepest predecessor (placed or new).
// - Slots: new nodes of a layer, ordered by first_seen then id, take the layer's lowest free slots
//   (at first: 0, 1, 2 ... in that order; later: after the others, or in a slot a forgotten node
//   left). A node absent from the answers for FORGET_AFTER updates is forgotten (its slot freed):
//   this bounds the layout over a long session while never moving a node that is shown.

export const GEOMETRY = Object.freeze({
  nodeWidth: 220,
  nodeHeight: 58,
  columnGap: 120, // between a column's right edge and the next column
  rowGap: 18,
  margin: 24,
});

const FORGET_AFTER = 120; // updates (about 2 min at one poll a second)
// Where along its path an edge's count may go, best first: the drawing takes the first spot no
// other label took (two edges between the same rows of two columns cross at their middle).
const LABEL_STOPS = [0.5, 0.35, 0.65, 0.22, 0.78];

function byFirstSeen(a, b) {
  const ta = String(a.first_seen || "");
  const tb = String(b.first_seen || "");
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * The layers of a graph's nodes: Map id → layer. `fixed` (Map id → layer) holds the layers of the
 * nodes already placed; they are kept, the others are computed as described at the top.
 */
export function computeLayers(nodes, edges, fixed = new Map()) {
  const ordered = nodes.slice().sort(byFirstSeen);
  const ids = new Set(ordered.map((n) => n.id));
  const out = new Map();
  const incoming = new Map();
  for (const id of ids) {
    out.set(id, []);
    incoming.set(id, 0);
  }
  for (const e of edges) {
    if (!ids.has(e.source) || !ids.has(e.target) || e.source === e.target) continue;
    out.get(e.source).push(e.target);
    incoming.set(e.target, incoming.get(e.target) + 1);
  }
  // Children in first_seen order, so the walk (and which edge of a cycle is dropped) is deterministic.
  const rank = new Map(ordered.map((n, i) => [n.id, i]));
  for (const list of out.values()) list.sort((a, b) => rank.get(a) - rank.get(b));

  // Depth-first from the roots; an edge to a node on the walk's stack closes a cycle: dropped.
  // Iterative, so a long chain cannot overflow the call stack.
  const state = new Map(); // id → 1 on the stack, 2 done
  const kept = new Map([...ids].map((id) => [id, []])); // predecessors over the kept edges
  const postorder = [];
  const walk = (root) => {
    const stack = [[root, 0]];
    state.set(root, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const children = out.get(top[0]);
      if (top[1] < children.length) {
        const child = children[top[1]++];
        const s = state.get(child);
        if (s === 1) continue; // closes a cycle
        kept.get(child).push(top[0]);
        if (s === undefined) {
          state.set(child, 1);
          stack.push([child, 0]);
        }
      } else {
        state.set(top[0], 2);
        postorder.push(top[0]);
        stack.pop();
      }
    }
  };
  for (const n of ordered) if (incoming.get(n.id) === 0 && !state.has(n.id)) walk(n.id);
  for (const n of ordered) if (!state.has(n.id)) walk(n.id); // cycles no root reaches

  // Reverse postorder is a topological order of the kept edges: predecessors come first.
  const layers = new Map();
  for (let i = postorder.length - 1; i >= 0; i--) {
    const id = postorder[i];
    if (fixed.has(id)) {
      layers.set(id, fixed.get(id));
      continue;
    }
    let layer = 0;
    for (const p of kept.get(id)) layer = Math.max(layer, layers.get(p) + 1);
    layers.set(id, layer);
  }
  return layers;
}

/** A stable layout: `update()` places the nodes of each new answer without moving the others. */
export class StableLayout {
  constructor() {
    this.placed = new Map(); // id → {layer, slot, absent}
    this.used = new Map(); // layer → Set of slots taken
  }

  /**
   * Places the answer's nodes; returns Map id → {layer, slot, x, y} for them (only them). Nodes of
   * earlier answers keep their layer and slot; nodes absent for a while are forgotten.
   */
  update(nodes, edges) {
    const present = new Set(nodes.map((n) => n.id));
    for (const [id, p] of this.placed) {
      if (present.has(id)) p.absent = 0;
      else if (++p.absent >= FORGET_AFTER) {
        this.placed.delete(id);
        this.used.get(p.layer).delete(p.slot);
      }
    }
    const fresh = nodes.filter((n) => !this.placed.has(n.id));
    if (fresh.length) {
      const fixed = new Map([...this.placed].map(([id, p]) => [id, p.layer]));
      const layers = computeLayers(nodes, edges, fixed);
      for (const n of fresh.sort(byFirstSeen)) {
        const layer = layers.get(n.id) || 0;
        if (!this.used.has(layer)) this.used.set(layer, new Set());
        const taken = this.used.get(layer);
        let slot = 0;
        while (taken.has(slot)) slot++;
        taken.add(slot);
        this.placed.set(n.id, { layer, slot, absent: 0 });
      }
    }
    const positions = new Map();
    for (const n of nodes) {
      const p = this.placed.get(n.id);
      positions.set(n.id, { layer: p.layer, slot: p.slot, ...nodeOrigin(p.layer, p.slot) });
    }
    return positions;
  }

  /** The size the drawing needs for everything placed (shown or not: the canvas never shrinks under a node). */
  extent() {
    let layers = 0;
    let slots = 0;
    for (const p of this.placed.values()) {
      layers = Math.max(layers, p.layer + 1);
      slots = Math.max(slots, p.slot + 1);
    }
    const g = GEOMETRY;
    return {
      width: 2 * g.margin + layers * g.nodeWidth + Math.max(0, layers - 1) * g.columnGap,
      height: 2 * g.margin + slots * g.nodeHeight + Math.max(0, slots - 1) * g.rowGap,
    };
  }
}

/** The top-left corner of the node at a layer and slot. */
export function nodeOrigin(layer, slot) {
  const g = GEOMETRY;
  return { x: g.margin + layer * (g.nodeWidth + g.columnGap), y: g.margin + slot * (g.nodeHeight + g.rowGap) };
}

/**
 * An edge's path between two placed nodes: `d` for an SVG path and `labels`, the spots (x, y) for
 * its count, best first.
 * An edge to the next column leaves the source's right side for the target's left side; an edge
 * over more columns runs along a row gap (channelPath) so it crosses no node; an edge within a
 * column loops out on its right; an edge back to an earlier column (a cycle) runs from the
 * source's left side to the target's right side; a self edge is a small loop over the node.
 */
export function edgePath(from, to) {
  const g = GEOMETRY;
  const w = g.nodeWidth;
  const h = g.nodeHeight;
  if (from === to) {
    const x = from.x + w - 36;
    const y = from.y;
    return { d: `M ${x} ${y} C ${x - 8} ${y - 34}, ${x + 44} ${y - 34}, ${x + 36} ${y + 4}`, labels: [{ x: x + 18, y: y - 22 }] };
  }
  if (Math.abs(to.layer - from.layer) > 1) {
    // Over more than one column: along the gap between two rows, so the edge crosses no node.
    const forward = to.layer > from.layer;
    const down = to.y >= from.y;
    return channelPath(
      { x: forward ? from.x + w : from.x, y: from.y + h / 2 + (down ? 8 : -8) },
      { x: forward ? to.x : to.x + w, y: to.y + h / 2 },
      down ? from.y + h + g.rowGap / 2 : from.y - g.rowGap / 2,
      forward ? 1 : -1,
    );
  }
  if (to.layer > from.layer) {
    const sx = from.x + w;
    const sy = from.y + h / 2;
    const tx = to.x;
    const ty = to.y + h / 2;
    const bend = Math.max(40, (tx - sx) / 2);
    const c1 = { x: sx + bend, y: sy };
    const c2 = { x: tx - bend, y: ty };
    return bezierPath({ x: sx, y: sy }, c1, c2, { x: tx, y: ty });
  }
  if (to.layer === from.layer) {
    // The same column: out to the right and back, beside the column's nodes.
    const sx = from.x + w;
    const sy = from.y + h / 2 + (to.slot > from.slot ? 8 : -8);
    const tx = to.x + w;
    const ty = to.y + h / 2 + (to.slot > from.slot ? -8 : 8);
    const out = Math.min(g.columnGap - 16, 36 + Math.abs(ty - sy) / 6);
    const c1 = { x: sx + out, y: sy };
    const c2 = { x: tx + out, y: ty };
    return bezierPath({ x: sx, y: sy }, c1, c2, { x: tx, y: ty });
  }
  // The column before (an edge that closes a cycle): from the source's left side back to the
  // target's right side, through the gap between the two columns.
  const sx = from.x;
  const sy = from.y + h / 2 + 10;
  const tx = to.x + w;
  const ty = to.y + h / 2 + 10;
  const c1 = { x: sx - 48, y: sy + 24 };
  const c2 = { x: tx + 48, y: ty + 24 };
  return bezierPath({ x: sx, y: sy }, c1, c2, { x: tx, y: ty });
}

/**
 * A path from `s` to `t` (points on the sides of two nodes columns apart) that bends into the row
 * gap at height `cy`, runs along it, and bends out to `t`; the bends are in the column gaps. Every
 * column has its rows at the same heights, so a row gap is free of nodes all the way across.
 * `dir` is 1 for a rightward edge, -1 for a leftward one. The label sits on the straight run.
 */
function channelPath(s, t, cy, dir) {
  const run = Math.min(48, GEOMETRY.columnGap / 2 - 4) * dir;
  const a = s.x + run;
  const b = t.x - run;
  return {
    d: `M ${s.x} ${s.y} C ${s.x + run / 2} ${s.y}, ${s.x + run / 2} ${cy}, ${a} ${cy} L ${b} ${cy} `
      + `C ${t.x - run / 2} ${cy}, ${t.x - run / 2} ${t.y}, ${t.x} ${t.y}`,
    labels: LABEL_STOPS.map((f) => ({ x: a + (b - a) * f, y: cy })),
  };
}

function bezierPath(p0, p1, p2, p3) {
  const at = (t) => {
    const u = 1 - t;
    const k = [u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t];
    return { x: k[0] * p0.x + k[1] * p1.x + k[2] * p2.x + k[3] * p3.x, y: k[0] * p0.y + k[1] * p1.y + k[2] * p2.y + k[3] * p3.y };
  };
  return { d: `M ${p0.x} ${p0.y} C ${p1.x} ${p1.y}, ${p2.x} ${p2.y}, ${p3.x} ${p3.y}`, labels: LABEL_STOPS.map(at) };
}
