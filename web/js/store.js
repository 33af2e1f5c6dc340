// The store: everything the page knows, kept outside the DOM. The model built from the server's
// messages, the view's state, the dirty flags that tell the next frame what to draw, the row
// queues, and the small updates of the model.

import { CONFIG } from "./config.js";
import { isObject, num, parseTime } from "./util.js";

export const model = {
  lastSeq: 0, // highest seq received
  seen: new Set(), // seqs received (bounded), for dedupe across snapshot, replay and live frames
  snapshotSeq: 0, // the panels reflect every event up to this seq (from the last snapshot)
  metrics: null,
  metricsSeq: -1,
  metricsAt: 0, // performance.now() when metrics arrived (for the ticking uptime)
  health: null,
  healthSeq: -1,
  replica: null, // this page's cluster replica (snapshot.server.replica), whose health the card shows
  agents: new Map(), // run key -> running agent
  runs: new Map(), // run_id -> the latest live state of an open run (snapshot.runs, run_progress)
  lostAgents: [], // runs that were running when the server stopped (snapshot.lost_agents), oldest first
  opportunities: [], // newest first
  agentNames: new Set(),
  serviceNames: new Set(),
  stallSeconds: CONFIG.defaultStallSeconds,
  serverName: null,
  hadSnapshot: false,
};

export const dirty = {
  cards: false, health: false, agents: false, lost: false, opportunities: false, agentOptions: false,
  serviceOptions: false,
};

// The stream's row queues. They live in an object because they are replaced, not only changed,
// and a module cannot assign another module's variable.
export const queues = {
  rows: [], // events waiting to become stream rows
  paused: [], // events that arrived while paused
};

let orderCounter = 0;

export function markSeen(seq) {
  model.seen.add(seq);
  if (model.seen.size > CONFIG.seenCap) {
    const keep = CONFIG.seenCap / 2;
    for (const s of model.seen) {
      if (model.seen.size <= keep) break;
      model.seen.delete(s);
    }
  }
}

/** Trim a queue of events to the newest `limit` (by seq) once it holds twice that. */
export function boundQueue(queue, limit) {
  if (queue.length <= limit * 2) return queue;
  queue.sort(byOrder);
  return queue.slice(-limit);
}

export function byOrder(a, b) {
  return a._order - b._order;
}

export function normalizeEvent(raw) {
  if (!isObject(raw)) return null;
  const ev = raw;
  if (!isObject(ev.data)) ev.data = {};
  const seq = num(ev.seq);
  ev.seq = seq;
  // Events without seq (never from a conforming server) sort after the newest one seen.
  ev._order = seq === null ? model.lastSeq + (++orderCounter % 1000) / 1000 : seq;
  return ev;
}

// Events shown before they had a seq (a cluster replica that cannot reach Redis), by event_id: when
// the numbered copy arrives it only gives the shown one its seq, so nothing is counted twice.
export const provisionalById = new Map();

export function noteProvisional(ev) {
  if (typeof ev.event_id !== "string") return;
  provisionalById.set(ev.event_id, ev);
  if (provisionalById.size > CONFIG.seenCap) {
    provisionalById.delete(provisionalById.keys().next().value);
  }
}

export function setMetrics(metrics, order) {
  if (!isObject(metrics) || order < model.metricsSeq) return;
  model.metrics = metrics;
  model.metricsSeq = order;
  model.metricsAt = performance.now();
  dirty.cards = true;
}

export function startFromTimestamp(value) {
  const now = Date.now();
  const t = parseTime(value);
  if (Number.isNaN(t)) return now;
  return Math.min(t, now); // a clock ahead of ours must not make a negative timer
}

export function addAgent(agent) {
  model.agents.delete(agent.key); // a restarted run moves to the end
  model.agents.set(agent.key, agent);
  dirty.agents = true;
}

export function removeAgent(d) {
  const key = d.run_id || d.agent_id;
  if (key && model.agents.delete(String(key))) {
    dirty.agents = true;
    return;
  }
  if (!d.run_id && d.agent_id) {
    // A completion without run id: end the oldest run of that agent.
    for (const [k, a] of model.agents) {
      if (a.agent_id === d.agent_id) {
        model.agents.delete(k);
        dirty.agents = true;
        return;
      }
    }
  }
  // A completion for a run never seen starting: nothing to remove.
}

// Run ids whose completion the page has seen (bounded): a late run_progress must not bring them back.
const completedRuns = new Set();

/** Replace the open runs with the snapshot's list (a run it no longer lists is gone). */
export function resetRuns(list) {
  model.runs.clear();
  for (const run of Array.isArray(list) ? list : []) putRun(run);
  dirty.agents = true;
}

/** Keep the latest state of a run (from the snapshot or a run_progress message); false if ignored. */
export function putRun(raw) {
  if (!isObject(raw) || typeof raw.run_id !== "string" || !raw.run_id) return false;
  if (completedRuns.has(raw.run_id)) return false;
  // A run the server gave up without a completion (known only from received spans, it turned out
  // to be another span's): drop it as a completion would.
  if (raw.status === "ended") {
    completeRun(raw);
    return false;
  }
  // Map.set keeps a known run in its place: a row does not jump when its run progresses.
  model.runs.set(raw.run_id, raw);
  if (model.runs.size > CONFIG.maxRuns) model.runs.delete(model.runs.keys().next().value);
  dirty.agents = true;
  return true;
}

/** An agent_execution_completed: its run (data.run_id) is no longer open. */
export function completeRun(d) {
  if (typeof d.run_id !== "string" || !d.run_id) return;
  completedRuns.add(d.run_id);
  if (completedRuns.size > CONFIG.maxRuns * 2) completedRuns.delete(completedRuns.values().next().value);
  if (model.runs.delete(d.run_id)) dirty.agents = true;
}

/** A lost run whose completion arrives after all is no longer lost (as on the server). */
export function removeLost(d) {
  const key = d.run_id || d.agent_id;
  if (!key) return;
  const before = model.lostAgents.length;
  model.lostAgents = model.lostAgents.filter((a) => a.key !== String(key));
  if (model.lostAgents.length !== before) dirty.lost = true;
}

function opportunityKey(o) {
  return String(o.opportunity_id || o.event_id || o.seq || o.title);
}

export function addOpportunity(o, atFront) {
  const key = opportunityKey(o);
  if (model.opportunities.some((x) => x._key === key)) return;
  o._key = key;
  if (atFront) model.opportunities.unshift(o);
  else model.opportunities.push(o);
  if (model.opportunities.length > CONFIG.maxOpportunities) model.opportunities.length = CONFIG.maxOpportunities;
  dirty.opportunities = true;
}

export function noteAgent(d) {
  const name = d.agent_name || d.agent_id;
  if (typeof name !== "string" || !name || model.agentNames.has(name)) return;
  if (model.agentNames.size >= CONFIG.maxAgentOptions) return;
  model.agentNames.add(name);
  dirty.agentOptions = true;
}

export function noteService(d) {
  const name = d.service_name;
  if (typeof name !== "string" || !name || model.serviceNames.has(name)) return;
  if (model.serviceNames.size >= CONFIG.maxServiceOptions) return;
  model.serviceNames.add(name);
  dirty.serviceOptions = true;
}

export const ui = {
  paused: false,
  pausedCount: 0,
  newCount: 0,
  detailEvent: null,
  detailRow: null,
  rebuildOpportunities: false,
  rafId: 0,
  sparkSeq: -1,
};
