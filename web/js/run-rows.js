// The stream's model and its run rows. Every event received is kept (bounded) for the "raw" mode;
// the "runs" mode has one entry per agent run (its started and completed events and the
// error_occurred events that name it, folded together) and one per other event, except the
// system events (metrics, health, agent registered), which only the "System events" toggle shows.
// A run row is built once and updated in place: running -> succeeded or failed.

import { el, fmtClock, fmtTime, parseTime, safeJson, txt } from "./util.js";
import { describe, fmtRunDuration, qualityBand, typeLabel, typeOf } from "./describe.js";
import { costText, stepText, tokenText, usageFields } from "./runs.js";
import { model } from "./store.js";
import { isLive } from "./liveness.js";

export const SYSTEM_TYPES = ["metrics_updated", "system_health_updated", "agent_registered"];
const RAW_CAP = 1000; // events kept for the raw mode (and the system events of the runs mode)
const ENTRY_CAP = 600; // runs-mode entries kept
const MAX_FOLDED = 5; // error events kept on a run row

export const streamModel = {
  raw: [], // every event received, in arrival order (bounded)
  entries: [], // runs-mode entries, in arrival order of their first event (bounded)
  runsByKey: new Map(), // run key -> its run entry
};

export function resetModel() {
  streamModel.raw = [];
  streamModel.entries = [];
  streamModel.runsByKey.clear();
}

export function isSystem(ev) {
  return SYSTEM_TYPES.includes(typeOf(ev));
}

/** The entry of a single event (its own row), made once per event. */
export function eventEntry(ev) {
  if (!ev._entry) ev._entry = { id: `e:${ev._order}`, kind: "event", order: ev._order, ev };
  return ev._entry;
}

// A run is named by data.run_id, else by its agent and span (started and completed share the span).
function runKey(ev) {
  const d = ev.data;
  if (typeof d.run_id === "string" && d.run_id) return `run:${d.run_id}`;
  if (d.agent_id && typeof ev.span_id === "string" && ev.span_id) return `span:${txt(d.agent_id, 200)}:${ev.span_id}`;
  return null;
}

function newRun(key, ev) {
  const d = ev.data;
  const entry = {
    id: `r:${key || ev._order}`, kind: "run", key, order: ev._order, status: "running",
    runId: typeof d.run_id === "string" && d.run_id ? d.run_id : null,
    agentId: d.agent_id, agentName: d.agent_name, service: d.service_name, task: d.task_description,
    started: null, completed: null, errors: [], startMs: NaN, version: 0,
  };
  streamModel.entries.push(entry);
  if (key) streamModel.runsByKey.set(key, entry);
  return entry;
}

function touch(entry, ev) {
  const d = ev.data;
  entry.agentName = entry.agentName || d.agent_name;
  entry.agentId = entry.agentId || d.agent_id;
  entry.service = entry.service || d.service_name;
  entry.task = entry.task || d.task_description;
  entry.version += 1;
  entry._search = undefined;
  ev._run = entry;
}

/**
 * Take an event into the model. Returns the runs-mode entry it created or changed (null for a
 * system event, which only the raw list holds).
 */
export function ingest(ev) {
  const raw = streamModel.raw;
  raw.push(ev);
  if (raw.length > RAW_CAP + 200) raw.splice(0, raw.length - RAW_CAP);
  if (isSystem(ev)) return null;
  const entry = fold(ev) || eventEntry(ev);
  if (entry.kind === "event") streamModel.entries.push(entry);
  trimEntries();
  return entry;
}

function fold(ev) {
  const type = typeOf(ev);
  const d = ev.data;
  if (type === "agent_execution_started") {
    const key = runKey(ev);
    let entry = key ? streamModel.runsByKey.get(key) : undefined;
    if (!entry || entry.started) entry = newRun(key, ev); // a run id seen again: a new run
    entry.started = ev;
    const t = parseTime(typeof d.started_at === "string" ? d.started_at : ev.timestamp);
    entry.startMs = Number.isNaN(t) ? Date.now() : Math.min(t, Date.now());
    touch(entry, ev);
    return entry;
  }
  if (type === "agent_execution_completed") {
    const key = runKey(ev);
    let entry = key ? streamModel.runsByKey.get(key) : oldestRunningOf(d.agent_id);
    if (!entry || entry.completed) entry = newRun(key, ev); // a completion whose start was not seen
    entry.completed = ev;
    entry.status = d.success === false ? "failed" : "succeeded";
    touch(entry, ev);
    return entry;
  }
  if (type === "error_occurred" && typeof d.run_id === "string" && d.run_id) {
    const entry = streamModel.runsByKey.get(`run:${d.run_id}`);
    if (!entry) return null; // an error of a run not shown: a row of its own
    entry.errors.push(ev);
    if (entry.errors.length > MAX_FOLDED) entry.errors.shift();
    touch(entry, ev);
    return entry;
  }
  return null;
}

// A completion without run id or span: the oldest running run of that agent without a key.
function oldestRunningOf(agentId) {
  if (!agentId) return undefined;
  return streamModel.entries.find((e) => e.kind === "run" && !e.key && e.status === "running" && e.agentId === agentId);
}

function trimEntries() {
  const entries = streamModel.entries;
  if (entries.length <= ENTRY_CAP + 100) return;
  entries.sort((a, b) => a.order - b.order);
  for (const gone of entries.splice(0, entries.length - ENTRY_CAP)) {
    if (gone.kind === "run" && gone.key && streamModel.runsByKey.get(gone.key) === gone) {
      streamModel.runsByKey.delete(gone.key);
    }
  }
}

// ---------------------------------------------------------------------------------------------- outcomes

/** The outcome an entry answers to ("running", "succeeded", "failed"), or null (not a run, not an error). */
export function outcomeOf(entry, raw) {
  if (entry.kind === "run") return entry.status;
  const ev = entry.ev;
  switch (typeOf(ev)) {
    case "error_occurred":
      return "failed";
    case "agent_execution_completed":
      return ev.data.success === false ? "failed" : "succeeded";
    case "agent_execution_started":
      return raw && ev._run && ev._run.status === "running" ? "running" : null;
    default:
      return null;
  }
}

/** Whether an entry shows under an outcome filter: a running run with an error shows under "failed" too. */
export function outcomeMatches(entry, outcome, raw) {
  if (outcome === "all") return true;
  if (outcomeOf(entry, raw) === outcome) return true;
  return outcome === "failed" && entry.kind === "run" && entry.status === "running" && entry.errors.length > 0;
}

/** The lower-case text a search looks in. */
export function searchTextOf(entry) {
  if (entry._search === undefined) {
    const events = entry.kind === "run" ? [entry.started, entry.completed, ...entry.errors].filter(Boolean) : [entry.ev];
    const parts = entry.kind === "run" ? [entry.status, runSentence(entry, entry.status)] : [];
    for (const ev of events) {
      parts.push(typeLabel(ev), typeOf(ev), describe(ev).text, safeJson(ev.data), ev.trace_id || "");
    }
    entry._search = parts.join(" ").toLowerCase();
  }
  return entry._search;
}

// ---------------------------------------------------------------------------------------------- run rows

const STATUS_LABEL = { running: "Running", succeeded: "Succeeded", failed: "Failed", unknown: "Unknown" };

// A running run that the server, since its restart, reports as unknown (snapshot.lost_agents).
function shownStatus(entry) {
  if (entry.status !== "running" || !entry.runId || !Array.isArray(model.lostAgents)) return entry.status;
  const lost = model.lostAgents.some((a) => a && (a.key === entry.runId || a.run_id === entry.runId));
  return lost ? "unknown" : "running";
}

function agentOf(entry) {
  return txt(entry.agentName || entry.agentId || "agent", 80);
}

function durationPhrase(word, ms) {
  const shown = fmtRunDuration(ms);
  return shown === "–" ? "" : ` ${word} ${shown}`;
}

function errorText(entry) {
  const d = entry.completed ? entry.completed.data : {};
  const last = entry.errors.length ? entry.errors[entry.errors.length - 1].data : {};
  const type = d.error_type || last.error_type;
  const message = d.error_message || last.error_message;
  if (!type && !message) return "";
  return `${txt(type || "Error", 60)}${message ? `: ${txt(message, 300)}` : ""}`;
}

/** One sentence for the run: "Researcher succeeded in 1.5 s: task", "... failed after 2.0 s: TimeoutError: ...". */
function runSentence(entry, status) {
  const task = entry.task ? `: ${txt(entry.task, 300)}` : "";
  if (status === "unknown") return `${agentOf(entry)}: unknown since the server restarted${task}`;
  if (entry.status === "running") return `${agentOf(entry)} running${task}`;
  const d = entry.completed.data;
  if (entry.status === "failed") {
    const error = errorText(entry);
    return `${agentOf(entry)} failed${durationPhrase("after", d.duration_ms)}${error ? `: ${error}` : task}`;
  }
  return `${agentOf(entry)} succeeded${durationPhrase("in", d.duration_ms)}${task}`;
}

function elapsedText(entry) {
  return Number.isNaN(entry.startMs) ? "–" : fmtClock((Date.now() - entry.startMs) / 1000);
}

// The figures line: [key, value, class] triples, in the order shown.
function runFields(entry, status) {
  const fields = [];
  if (status === "unknown") {
    fields.push(["started", entry.started ? fmtTime(entry.started.timestamp) : null, "run-started"]);
    return fields;
  }
  if (entry.status === "running") {
    const live = entry.runId ? model.runs.get(entry.runId) : undefined;
    fields.push(["elapsed", elapsedText(entry), "run-elapsed"]);
    fields.push(["step", live && live.current_step ? txt(stepText(live.current_step), 120) : null, "run-step-now"]);
    if (live) usage(fields, live);
    const error = errorText(entry);
    if (error) fields.push(["error", error, "run-error"]);
    return fields;
  }
  const d = entry.completed.data;
  fields.push(["duration", fmtRunDuration(d.duration_ms), "run-duration"]);
  for (const [k, v] of usageFields(d)) fields.push([k, v, `run-${k}-done`]); // tokens, cost, calls
  const band = qualityBand(d.quality_score);
  if (band) fields.push(["quality", Number(d.quality_score).toFixed(1), `q-text q-${band}`]);
  if (entry.status === "failed" && entry.task) fields.push(["task", txt(entry.task, 120), "run-task"]);
  return fields;
}

function usage(fields, r) {
  fields.push(["tokens", tokenText(r), "run-tokens-now"]);
  const cost = costText(r);
  fields.push(["cost", cost ? cost.text : null, cost ? `run-cost-now cost-${cost.kind}` : "run-cost-now"]);
}

/** A run's row: the same element for its whole life (updated in place, never re-created). */
export function makeRunRow(entry) {
  const li = el("li", "ev run-row");
  li.tabIndex = 0;
  li._entry = entry;
  li.dataset.type = "agent_run";
  if (entry.runId) li.dataset.run = entry.runId;
  const time = el("time", "ev-time");
  const label = el("span", "ev-type run-status");
  const body = el("div", "ev-body run-body");
  body.append(el("span", "ev-desc"), el("span", "ev-fields run-fields"));
  li.append(time, label, body);
  li._parts = { time, label, desc: body.firstChild, fields: body.lastChild };
  updateRunRow(li);
  return li;
}

export function updateRunRow(li) {
  const entry = li._entry;
  const status = shownStatus(entry);
  if (li._version === entry.version && li.dataset.status === status) return;
  li._version = entry.version;
  const first = entry.started || entry.completed;
  li._ev = entry.completed || entry.started; // the event view of a run without run id
  li.dataset.seq = first.seq === null ? "" : String(first.seq);
  li.dataset.status = status;
  li.dataset.severity = entry.status === "failed" ? "error" : entry.status === "succeeded" ? "success" : "info";
  li.classList.toggle("has-error", entry.errors.length > 0 || entry.status === "failed");
  const { time, label, desc, fields } = li._parts;
  time.textContent = fmtTime(first.timestamp);
  if (typeof first.timestamp === "string") time.dateTime = first.timestamp;
  label.textContent = STATUS_LABEL[status];
  const sentence = runSentence(entry, status);
  desc.textContent = sentence;
  li.title = sentence;
  renderFields(fields, runFields(entry, status));
  li.setAttribute("aria-label", `Run at ${time.textContent}: ${sentence}`);
}

function renderFields(box, fields) {
  const items = [];
  for (const [k, v, cls] of fields) {
    if (v === null || v === undefined || v === "") continue;
    const item = el("span", `kv ${cls}`);
    item.append(el("span", "k", k), el("span", "v", v));
    items.push(item);
  }
  // The line is always there (a space when empty): a row never changes height.
  if (!items.length) items.push(el("span", "kv kv-none", "\u00a0"));
  box.replaceChildren(...items);
}

/** Once a second: the elapsed time and the current step of the running rows on screen. */
export function tickRunRows(rows) {
  if (!isLive() || document.hidden) return;
  for (const li of rows) {
    const entry = li._entry;
    if (!entry || entry.kind !== "run" || entry.status !== "running") continue;
    updateRunRow(li); // running <-> unknown since a restart
    if (li.dataset.status === "running") renderFields(li._parts.fields, runFields(entry, "running"));
  }
}
