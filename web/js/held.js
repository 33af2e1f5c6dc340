// The events the page holds for its views, whatever the stream shows or drops: by seq (the event
// view, #event=<seq>) and by run (the run view, #run=<id>: its start, its completion, its errors).
// Bounded: the newest MAX_EVENTS events by seq, the last MAX_RUNS runs.

import { isObject } from "./util.js";

const MAX_EVENTS = 2000;
const MAX_RUNS = 1000;
const MAX_ERRORS = 20; // error_occurred events kept per run

const bySeq = new Map(); // seq -> event
const byRun = new Map(); // run_id -> {started, completed, errors: []}

function typeName(ev) {
  return typeof ev.event_type === "string" ? ev.event_type : "";
}

/** Keep an event (normalized: ev.data is an object, ev.seq a number or null). */
export function holdEvent(ev) {
  if (!isObject(ev) || !isObject(ev.data)) return;
  if (typeof ev.seq === "number") {
    bySeq.set(ev.seq, ev);
    if (bySeq.size > MAX_EVENTS) bySeq.delete(bySeq.keys().next().value);
  }
  const runId = typeof ev.data.run_id === "string" ? ev.data.run_id : "";
  if (!runId) return;
  const type = typeName(ev);
  if (type !== "agent_execution_started" && type !== "agent_execution_completed" && type !== "error_occurred") return;
  const rec = runRecord(runId);
  if (type === "agent_execution_started") rec.started = ev;
  else if (type === "agent_execution_completed") rec.completed = ev;
  else if (!rec.errors.some((e) => e.seq !== null && e.seq === ev.seq)) {
    rec.errors.push(ev);
    if (rec.errors.length > MAX_ERRORS) rec.errors.shift();
  }
}

function runRecord(runId) {
  let rec = byRun.get(runId);
  if (!rec) {
    rec = { started: null, completed: null, errors: [] };
    byRun.set(runId, rec);
    if (byRun.size > MAX_RUNS) byRun.delete(byRun.keys().next().value);
  }
  return rec;
}

/** The held event of this seq, or null. */
export function heldEvent(seq) {
  return bySeq.get(seq) || null;
}

/** What the page holds of a run: {started, completed, errors}, or null. */
export function heldRun(runId) {
  return byRun.get(runId) || null;
}

/** The held completions of the runs whose parent is `runId` (sub-runs that ended). */
export function heldChildren(runId) {
  const out = [];
  for (const [id, rec] of byRun) {
    const ev = rec.completed || rec.started;
    if (ev && ev.data.parent_run_id === runId && id !== runId) out.push({ runId: id, ev, done: Boolean(rec.completed) });
  }
  return out;
}

/** Forget everything (the server started over with a fresh history). */
export function clearHeld() {
  bySeq.clear();
  byRun.clear();
}
