// The server's messages: a snapshot resets the store, events update it and queue stream rows,
// run_progress updates the live runs, a gap or an error becomes a notice.

import { CONFIG } from "./config.js";
import { isObject, num, txt } from "./util.js";
import { typeOf } from "./describe.js";
import {
  addAgent,
  addOpportunity,
  completeRun,
  dirty,
  markSeen,
  model,
  normalizeEvent,
  noteAgent,
  noteProvisional,
  noteService,
  provisionalById,
  putRun,
  removeAgent,
  removeLost,
  resetRuns,
  setMetrics,
  startFromTimestamp,
  ui,
} from "./store.js";
import { send } from "./connection.js";
import { sendSubscription } from "./filters.js";
import { queueStreamEvent, resetStream } from "./stream.js";
import { scheduleRender } from "./render.js";
import { renderServerInfo } from "./cards.js";
import { showNotice } from "./notices.js";
import { closeDetail } from "./detail.js";
import { noteTraceActivity, traceView } from "./trace-view.js";
import { clearHeld, holdEvent } from "./held.js";
import { reviveUnknown } from "./agents.js";

function onEvents(list, provisional = false) {
  if (!Array.isArray(list)) return;
  let traceActivity = false;
  for (const raw of list) {
    if (provisional && isObject(raw)) raw.seq = null;
    const ev = normalizeEvent(raw);
    if (!ev) continue;
    if (provisional) noteProvisional(ev);
    if (ev.seq !== null) {
      if (model.seen.has(ev.seq)) continue;
      markSeen(ev.seq);
      if (ev.seq > model.lastSeq) model.lastSeq = ev.seq;
      const shown = typeof ev.event_id === "string" ? provisionalById.get(ev.event_id) : undefined;
      if (shown) {
        provisionalById.delete(ev.event_id);
        shown.seq = ev.seq;
        continue;
      }
    }
    holdEvent(ev); // for the run and event views (#run=, #event=)
    if (traceView.traceId && typeof ev.trace_id === "string" && ev.trace_id.toLowerCase() === traceView.traceId) {
      traceActivity = true;
    }
    if (ev.seq === null || ev.seq > model.snapshotSeq) applyToPanels(ev);
    noteAgent(ev.data);
    noteService(ev.data);
    queueStreamEvent(ev); // every event: the stream's mode and filters decide what it shows
  }
  if (traceActivity) noteTraceActivity(); // the trace on screen changed: refetch it (throttled)
  scheduleRender();
}

function applyToPanels(ev) {
  const d = ev.data;
  // A run unknown since the restart that reports again is running (its completion ends it below).
  if (typeOf(ev) !== "agent_execution_completed") reviveUnknown(d.run_id, typeOf(ev) !== "agent_execution_started");
  switch (typeOf(ev)) {
    case "metrics_updated":
      setMetrics(d, ev._order);
      break;
    case "system_health_updated":
      // On a cluster every replica reports its own health; the card shows this page's replica.
      if (model.replica !== null && typeof d.replica === "string" && d.replica !== model.replica) break;
      if (ev._order > model.healthSeq) {
        model.health = d;
        model.healthSeq = ev._order;
        dirty.health = true;
      }
      break;
    case "agent_execution_started":
      addAgent({
        key: String(d.run_id || d.agent_id || ev.event_id || ev._order),
        run_id: d.run_id, agent_id: d.agent_id, agent_name: d.agent_name,
        task_description: d.task_description, service_name: d.service_name,
        trace_id: ev.trace_id, span_id: ev.span_id,
        startMs: startFromTimestamp(d.started_at || ev.timestamp),
        serverStalled: false,
      });
      break;
    case "agent_execution_completed":
      removeAgent(d);
      removeLost(d);
      completeRun(d);
      break;
    case "opportunity_discovered":
      addOpportunity({ ...d, timestamp: ev.timestamp, seq: ev.seq, event_id: ev.event_id }, true);
      break;
    default:
      break;
  }
}

function onSnapshot(s) {
  const server = isObject(s.server) ? s.server : {};
  model.serverName = typeof server.name === "string" && server.name ? server.name : null;
  model.replica = typeof server.replica === "string" && server.replica ? server.replica : null;
  const stall = num(server.stall_threshold_seconds);
  model.stallSeconds = stall !== null && stall > 0 ? stall : CONFIG.defaultStallSeconds;
  renderServerInfo();

  const snapSeq = num(s.seq) ?? 0;
  let resumeFrom = model.hadSnapshot ? model.lastSeq : null;
  if (model.hadSnapshot && snapSeq < model.lastSeq) {
    // The server started over with a fresh history: our seq numbers mean nothing to it.
    model.seen.clear();
    model.lastSeq = 0;
    model.metricsSeq = -1;
    model.healthSeq = -1;
    resumeFrom = null;
    closeDetail(false);
    clearHeld();
    resetStream();
    showNotice("info", "The server restarted with a fresh history; the stream continues from its start.", "reset");
  }
  model.snapshotSeq = snapSeq;
  model.metricsSeq = Math.min(model.metricsSeq, snapSeq);
  setMetrics(s.metrics, snapSeq);

  model.agents.clear();
  const now = Date.now();
  for (const a of Array.isArray(s.active_agents) ? s.active_agents : []) {
    if (!isObject(a)) continue;
    const elapsed = num(a.elapsed_seconds);
    addAgent({
      key: String(a.run_id || a.agent_id || `snapshot-${model.agents.size}`),
      run_id: a.run_id, agent_id: a.agent_id, agent_name: a.agent_name,
      task_description: a.task_description, service_name: a.service_name,
      trace_id: a.trace_id, span_id: a.span_id,
      startMs: elapsed !== null ? now - elapsed * 1000 : startFromTimestamp(a.started_at),
      serverStalled: a.stalled === true,
    });
    noteAgent(a);
    noteService(a);
  }
  resetRuns(s.runs); // a server without live runs sends none: the list is empty
  for (const run of model.runs.values()) {
    noteAgent(run);
    noteService(run);
  }
  dirty.agents = true;

  model.lostAgents = [];
  for (const a of Array.isArray(s.lost_agents) ? s.lost_agents : []) {
    if (!isObject(a)) continue;
    model.lostAgents.push({
      key: String(a.run_id || a.agent_id || `lost-${model.lostAgents.length}`),
      agent_id: a.agent_id, agent_name: a.agent_name, task_description: a.task_description,
      service_name: a.service_name, started_at: a.started_at, lost_detected_at: a.lost_detected_at,
      run_id: a.run_id, trace_id: a.trace_id, span_id: a.span_id, status: a.status, unknown_since: a.unknown_since,
    });
    noteAgent(a);
    noteService(a);
  }
  dirty.lost = true;

  model.opportunities = [];
  for (const o of Array.isArray(s.opportunities) ? s.opportunities : []) {
    if (isObject(o)) addOpportunity({ ...o }, false);
  }
  ui.rebuildOpportunities = true;
  dirty.opportunities = true;

  sendSubscription(true);
  onEvents(s.events);
  if (resumeFrom !== null && resumeFrom < snapSeq) send({ type: "resume", after_seq: resumeFrom });
  model.hadSnapshot = true;
  noteTraceActivity(); // (re)connected: an open trace view may have missed changes
}

export function handleMessage(raw) {
  let msg;
  try {
    msg = JSON.parse(raw);
  } catch {
    return;
  }
  if (!isObject(msg)) return;
  switch (msg.type) {
    case "snapshot":
      onSnapshot(msg);
      break;
    case "events":
      onEvents(msg.events, msg.provisional === true);
      break;
    case "event":
      onEvents([msg.event]);
      break;
    case "run_progress":
      onRunProgress(msg.runs);
      break;
    case "gap":
      onGap(msg);
      break;
    case "resumed":
      onResumed(msg);
      break;
    case "error":
      showNotice("error", `Server: ${txt(msg.message || "error", 300)}`, "server-error");
      break;
    default:
      if (typeof msg.event_type === "string") onEvents([msg]);
      // pong, subscribed and unknown messages need nothing
      break;
  }
}

// Live progress of open runs: not events (no seq, never replayed), the latest state per run_id.
function onRunProgress(list) {
  if (!Array.isArray(list)) return;
  for (const run of list) {
    if (putRun(run)) {
      reviveUnknown(run.run_id, false); // a run unknown since the restart reports again: running
      noteAgent(run);
      noteService(run);
    }
  }
  scheduleRender();
}

// A replay walks a bounded part of the history per resume; an incomplete one says where to go on.
function onResumed(msg) {
  const next = num(msg.next_after_seq);
  const until = num(msg.seq);
  if (msg.complete !== false || next === null || until === null) return;
  if (typeof msg.error === "string") {
    showNotice("warning", `Some missed events could not be replayed: ${txt(msg.error, 200)}`, "gap");
    return;
  }
  send({ type: "resume", after_seq: next, until_seq: until });
}

function onGap(msg) {
  const from = num(msg.from);
  const to = num(msg.to);
  const range = from !== null && to !== null ? ` #${from}–#${to}` : "";
  // "restart": the seqs a server that died uncleanly may have used without writing them down.
  const text = msg.reason === "restart"
    ? `The server restarted after an unclean stop: events${range}, if any were sent before it, are not kept.`
    : `Some events${range} were missed: the server no longer holds them. Cards and panels are up to date.`;
  showNotice("warning", text, "gap");
}
