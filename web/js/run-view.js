// The run view (#run=<run_id>) in the aside: one agent run, running or ended. Its header names the
// agent with the outcome (running, stalled, succeeded, failed, unknown since restart); an "Open
// trace" button opens the trace page at the run's own span (once its trace id is known); then when it
// started and how long it ran (ticking while it runs), what it is doing now, its figures (model
// calls, tool calls per tool, tokens, cost), its error, its parent and sub-runs (links), and the
// trace waterfall of its trace. A running run shows its guardrail marks ("over budget", "stop
// requested") and, when the page is logged in to a server with a token, a "Stop run" button
// (run-stop.js).
//
// Where the run comes from, first found first: the running runs (model.agents and model.runs,
// through runningEntries()), the runs unknown since a restart, the events the page holds
// (held.js), else the server's history, GET api/events?run_id=<id> (once per opening; a server
// too old for that filter answers 400, and the view says so). A running run's view follows its
// run_progress and turns into the ended run when its completion arrives.

import { $, el, fmtClock, fmtDurationMs, isObject, kvRow, num, parseTime, txt } from "./util.js";
import { model } from "./store.js";
import { openPanel, setBadge } from "./detail.js";
import { flagsRow, hasRunFigures, runBreakdown, stepText } from "./runs.js";
import { drawStop, makeStopControls, openStop, stopKey } from "./run-stop.js";
import { heldChildren, heldRun, holdEvent } from "./held.js";
import { pageNow, runningEntries } from "./agents.js";
import { renderTraceView } from "./trace-view.js";
import { openRoute } from "./router.js";

const OUTCOME_CLASS = {
  running: "outcome-running", stalled: "outcome-stalled", succeeded: "outcome-succeeded",
  failed: "outcome-failed", unknown: "outcome-unknown",
};
const HISTORY_LIMIT = 100; // events asked of the history for one run
const TRACE_ID_RE = /^[0-9a-f]{32}$/i;
const SPAN_ID_RE = /^[0-9a-f]{16}$/i;

const view = {
  runId: "",
  els: null,
  key: "", // what was last drawn (a redraw happens only when it changes)
  traceId: null, // the trace drawn (null: none yet)
  fetch: "idle", // idle | loading | done | unsupported | error: the history lookup
  fetchError: "",
  controller: null,
  clock: null, // {startMs, endMs, live}: what the elapsed line shows
};

/** Open the run view on a run (the router calls it for #run=<id>). */
export function openRunView(runId) {
  if (view.controller) view.controller.abort();
  Object.assign(view, { runId, key: "", traceId: null, fetch: "idle", fetchError: "", controller: null, clock: null });
  openPanel({ kind: "run", title: "Run", route: { run: runId }, build(body) { view.els = skeleton(body); } });
  openStop(runId, () => {
    if (view.runId !== runId) return;
    view.key = "";
    updateRunView();
  });
  updateRunView();
}

function section(body, title, child) {
  const box = el("section", "detail-section");
  box.appendChild(el("h3", "detail-section-title", title));
  box.appendChild(child);
  body.appendChild(box);
  return box;
}

function skeleton(body) {
  const openTrace = el("button", "button detail-open-trace run-view-open-trace", "Open trace");
  openTrace.type = "button";
  openTrace.hidden = true;
  openTrace.addEventListener("click", () => {
    if (view.traceId) openRoute(traceRoute(view.traceId));
  });
  const stopControls = makeStopControls();
  const status = el("p", "detail-message run-view-status");
  status.setAttribute("role", "status");
  const summary = el("dl", "kv-list run-view-summary");
  body.append(openTrace, stopControls.button, stopControls.answer, status, summary);
  const figures = el("dl", "kv-list run-view-figures");
  const error = el("dl", "kv-list run-view-error");
  const related = el("ul", "run-view-related");
  const trace = el("div", "trace-view");
  return {
    openTrace, stopControls, status, summary, figures, error, related, trace,
    figuresBox: section(body, "Figures", figures),
    errorBox: section(body, "Error", error),
    relatedBox: section(body, "Related runs", related),
    traceBox: section(body, "Trace", trace),
    elapsed: null,
  };
}

function isOpen() {
  const panel = $("detail");
  return Boolean(view.runId && view.els && !panel.hidden && panel.dataset.view === "run" && panel.contains(view.els.status));
}

function stop() {
  if (view.controller) view.controller.abort();
  view.controller = null;
  view.runId = "";
  view.els = null;
}

/** Redraw the open run view from what the page knows now (after each change of the runs). */
export function updateRunView() {
  if (!view.runId) return;
  if (!isOpen()) {
    stop();
    return;
  }
  const run = resolve(view.runId);
  if (!run || run.needsHistory) lookUpHistory();
  draw(run);
}

/** The one-second tick (only while the page is live): the elapsed time of a running run. */
export function tickRunView() {
  if (!view.runId || !isOpen() || !view.clock || !view.els.elapsed) return;
  const text = elapsedText(view.clock);
  if (view.els.elapsed.textContent !== text) view.els.elapsed.textContent = text;
}

function elapsedText(clock) {
  if (clock.durationMs !== null) return fmtDurationMs(clock.durationMs);
  if (Number.isNaN(clock.startMs)) return "unknown";
  return `${fmtClock((pageNow() - clock.startMs) / 1000)} so far`;
}

// ---------------------------------------------------------------------------------- where the run is

function startOf(...values) {
  for (const v of values) {
    const t = typeof v === "number" ? v : parseTime(v);
    if (!Number.isNaN(t)) return t;
  }
  return NaN;
}

function resolve(id) {
  const rec = heldRun(id);
  const errors = rec ? rec.errors : [];
  const started = rec && rec.started ? rec.started : null;
  const entry = runningEntries().find((e) => e.runId === id || e.key === id);
  if (entry) {
    const info = { ...(started ? started.data : {}), ...(entry.agent || {}), ...(entry.run || {}) };
    return {
      status: entry.stalled ? "stalled" : "running", info, figures: entry.run, errors,
      step: entry.run ? stepText(entry.run.current_step) : null,
      clock: { startMs: entry.startMs, durationMs: null },
      traceId: (entry.run && entry.run.trace_id) || (entry.agent && entry.agent.trace_id) || (started && started.trace_id),
      parentId: (entry.run && entry.run.parent_run_id) || info.parent_run_id,
    };
  }
  const lost = model.lostAgents.find((a) => a.key === id);
  if (lost) {
    return {
      status: "unknown", info: { ...(started ? started.data : {}), ...lost }, figures: null, errors,
      clock: { startMs: startOf(lost.started_at), durationMs: null },
      traceId: lost.trace_id || (started && started.trace_id), unknownSince: lost.unknown_since || lost.lost_detected_at,
    };
  }
  if (rec && rec.completed) {
    const done = rec.completed;
    const d = done.data;
    const failed = d.success === false;
    const durationMs = num(d.duration_ms);
    const endMs = parseTime(done.timestamp);
    const startMs = startOf(d.started_at, started && started.data.started_at, started && started.timestamp,
      durationMs !== null && !Number.isNaN(endMs) ? endMs - durationMs : NaN);
    return {
      status: failed ? "failed" : "succeeded", info: { ...(started ? started.data : {}), ...d },
      figures: hasRunFigures(d) ? d : null, errors,
      clock: { startMs, durationMs: durationMs ?? (Number.isNaN(startMs) || Number.isNaN(endMs) ? NaN : endMs - startMs) },
      endMs, traceId: done.trace_id || (started && started.trace_id), parentId: d.parent_run_id,
      error: failed ? { type: d.error_type, message: d.error_message } : null,
    };
  }
  if (started) {
    // Started, not running, no end known: the history may know more.
    return {
      status: "unknown", info: started.data, figures: null, errors, needsHistory: true,
      clock: { startMs: startOf(started.data.started_at, started.timestamp), durationMs: null },
      traceId: started.trace_id, parentId: started.data.parent_run_id, startedOnly: true,
    };
  }
  return null;
}

function lookUpHistory() {
  if (view.fetch !== "idle" || !model.hadSnapshot) return;
  view.fetch = "loading";
  const controller = new AbortController();
  view.controller = controller;
  const id = view.runId;
  fetch(`api/events?run_id=${encodeURIComponent(id)}&limit=${HISTORY_LIMIT}`, {
    signal: controller.signal, headers: { Accept: "application/json" },
  })
    .then(async (res) => {
      if (res.status === 400) {
        const body = await res.json().catch(() => ({}));
        const err = new Error(isObject(body) && typeof body.error === "string" ? body.error : "HTTP 400");
        err.unsupported = isObject(body) && body.parameter === "run_id";
        throw err;
      }
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return res.json();
    })
    .then((body) => {
      if (view.controller !== controller) return;
      view.controller = null;
      for (const ev of isObject(body) && Array.isArray(body.events) ? body.events : []) {
        if (!isObject(ev)) continue;
        if (!isObject(ev.data)) ev.data = {};
        if (typeof ev.seq !== "number") ev.seq = null;
        holdEvent(ev);
      }
      view.fetch = "done";
      updateRunView();
    })
    .catch((err) => {
      if (view.controller !== controller) return;
      view.controller = null;
      view.fetch = err && err.unsupported ? "unsupported" : "error";
      view.fetchError = err && err.message ? txt(err.message, 200) : "network error";
      updateRunView();
    });
}

// ---------------------------------------------------------------------------------- drawing

function statusText(run) {
  if (view.fetch === "loading" && (!run || run.startedOnly)) return "Looking the run up in the server's history…";
  if (!run) {
    if (!model.hadSnapshot) return "Loading…";
    if (view.fetch === "unsupported") {
      return "This run is not running and the page holds none of its events. This server cannot look runs up "
        + "by id (GET api/events?run_id= needs a newer server).";
    }
    if (view.fetch === "error") return `Could not look the run up in the server's history: ${view.fetchError}`;
    return "No such run: it is not running and the server's history holds none of its events.";
  }
  if (run.status === "unknown" && run.startedOnly) return "Started, but not running now, and its end is not known.";
  if (run.status === "unknown") {
    return "Unknown since restart: running when the server restarted. It comes back as running if its agent "
      + "still reports, or ends when it finishes.";
  }
  if (run.status === "stalled") return `Stalled: running longer than the stall threshold (${Math.round(model.stallSeconds)} s).`;
  return "";
}

function draw(run) {
  const els = view.els;
  const status = statusText(run);
  const key = JSON.stringify([status, run && {
    s: run.status, i: run.info, f: run.figures, e: run.errors.map((e) => e.seq), st: run.step, t: run.traceId,
    p: run.parentId, c: childrenOf(view.runId).map((c) => [c.runId, c.status]), u: run.unknownSince,
  }, stopKey()]);
  if (key === view.key) {
    tickRunView();
    return;
  }
  view.key = key;
  els.status.textContent = status;
  els.status.hidden = !status;
  const name = run ? txt(run.info.agent_name || run.info.agent_id || "agent", 80) : "Run";
  $("detail-title").textContent = name;
  setBadge(run ? run.status : "", run ? OUTCOME_CLASS[run.status] : "");
  $("detail").dataset.outcome = run ? run.status : "none";
  els.summary.replaceChildren();
  els.elapsed = null;
  view.clock = run ? run.clock : null;
  drawStop(view.els.stopControls, run);
  for (const box of [els.figuresBox, els.errorBox, els.relatedBox, els.traceBox]) box.hidden = !run;
  if (!run) {
    kvRow(els.summary, "run id", view.runId, { mono: true });
    return;
  }
  drawSummary(run);
  els.figures.replaceChildren();
  if (run.figures) runBreakdown(els.figures, run.figures, { related: false });
  else kvRow(els.figures, "figures", run.status === "running" || run.status === "stalled" ? "none yet" : "none sent for this run");
  drawError(run);
  drawRelated(run);
  drawTrace(run);
}

function drawSummary(run) {
  const list = view.els.summary;
  const info = run.info;
  list.appendChild(el("dt", null, "agent"));
  const dd = el("dd");
  const name = info.agent_name || info.agent_id;
  if (typeof name === "string" && name) {
    const link = el("button", "link-button run-view-agent", txt(name, 80));
    link.type = "button";
    const service = typeof info.service_name === "string" ? info.service_name : "";
    link.addEventListener("click", () => openRoute(service ? { agent: name, service } : { agent: name }));
    dd.appendChild(link);
  } else {
    dd.appendChild(el("span", "kv-empty", "unknown"));
  }
  list.appendChild(dd);
  kvRow(list, "outcome", run.status);
  flagsRow(list, info);
  if (info.service_name) kvRow(list, "service", txt(info.service_name, 120));
  if (info.task_description) kvRow(list, "task", txt(info.task_description, 500));
  kvRow(list, "run id", view.runId, { mono: true });
  const start = run.clock.startMs;
  kvRow(list, "started", Number.isNaN(start) ? null : new Date(start).toLocaleString());
  if (run.unknownSince) {
    const t = parseTime(run.unknownSince);
    kvRow(list, "unknown since", Number.isNaN(t) ? txt(run.unknownSince, 60) : new Date(t).toLocaleString());
  }
  const live = run.status === "running" || run.status === "stalled";
  kvRow(list, run.clock.durationMs === null ? "elapsed" : "duration", elapsedText(run.clock));
  const spans = list.querySelectorAll("dd > span");
  view.els.elapsed = spans[spans.length - 1];
  view.els.elapsed.classList.add("run-view-elapsed");
  if (live) kvRow(list, "now", run.step || "running");
}

function drawError(run) {
  const list = view.els.error;
  list.replaceChildren();
  const has = Boolean(run.error) || run.errors.length > 0;
  view.els.errorBox.hidden = !has;
  if (run.error) {
    kvRow(list, "error type", run.error.type ? txt(run.error.type, 120) : null);
    kvRow(list, "message", run.error.message ? txt(run.error.message, 1000) : null);
  }
  for (const ev of run.errors.slice(-10)) {
    const d = ev.data;
    kvRow(list, `#${ev.seq ?? "?"}`, `${txt(d.error_type || "Error", 80)}: ${txt(d.error_message || "", 500)}`);
  }
}

function nameOf(runId) {
  const entry = runningEntries().find((e) => e.runId === runId);
  if (entry) return (entry.run || entry.agent).agent_name;
  const rec = heldRun(runId);
  const ev = rec && (rec.completed || rec.started);
  if (ev) return ev.data.agent_name;
  const lost = model.lostAgents.find((a) => a.key === runId);
  return lost ? lost.agent_name : null;
}

function childrenOf(runId) {
  const kids = new Map();
  for (const c of heldChildren(runId)) kids.set(c.runId, { runId: c.runId, name: c.ev.data.agent_name, status: c.done ? (c.ev.data.success === false ? "failed" : "succeeded") : "started" });
  for (const e of runningEntries()) {
    if (e.run && e.run.parent_run_id === runId && e.runId !== runId) {
      kids.set(e.runId, { runId: e.runId, name: e.run.agent_name, status: e.stalled ? "stalled" : "running" });
    }
  }
  return [...kids.values()];
}

function runLink(label, runId, extra) {
  const li = el("li", "run-view-link");
  li.appendChild(el("span", "run-view-rel", label));
  const button = el("button", "link-button", txt(nameOf(runId) || `run ${runId}`, 80));
  button.type = "button";
  button.dataset.run = runId;
  button.addEventListener("click", () => openRoute({ run: runId }));
  li.appendChild(button);
  if (extra) li.appendChild(el("span", "run-view-rel-status", extra));
  return li;
}

function drawRelated(run) {
  const list = view.els.related;
  list.replaceChildren();
  const parent = typeof run.parentId === "string" && run.parentId && run.parentId !== view.runId ? run.parentId : null;
  if (parent) list.appendChild(runLink("parent", parent));
  for (const kid of childrenOf(view.runId).slice(0, 50)) list.appendChild(runLink("sub-run", kid.runId, kid.status));
  if (!list.childElementCount) list.appendChild(el("li", "kv-empty", "none: a top-level run without sub-runs"));
}

/** The trace page's route for the run: its trace, at its own span (its run_id is that span's id). */
function traceRoute(traceId) {
  const route = { trace: traceId.toLowerCase() };
  if (SPAN_ID_RE.test(view.runId)) route.span = view.runId.toLowerCase();
  return route;
}

function drawTrace(run) {
  const traceId = typeof run.traceId === "string" && run.traceId ? run.traceId : "";
  if (traceId === view.traceId) return;
  view.traceId = traceId;
  view.els.openTrace.hidden = !TRACE_ID_RE.test(traceId);
  if (!traceId) {
    view.els.trace.replaceChildren(el("p", "trace-message", "No trace id is known for this run."));
    return;
  }
  // The run's own span (its run_id is its agent span's id) is the one highlighted.
  renderTraceView(view.els.trace, traceId, SPAN_ID_RE.test(view.runId) ? view.runId : "");
}
