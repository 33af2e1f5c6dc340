// The trace view: the span waterfall of the selected event's trace (GET api/traces/{trace_id})
//
// Pages: the server answers a trace in pages of spans (GET api/traces/{id}?offset=&limit=); a fetch
// follows next_offset until the last page (or TRACE.maxSpans spans, the server's per-trace limit)
// and draws once, with every page's spans and the last page's envelope (running, truncated, ...).
//
// Live updates: while the panel is open on a trace, the view refetches it (1) every
// TRACE.pollMs while any span is still running, and (2) as soon as an event of the same trace
// arrives over the WebSocket. Fetches are at least TRACE.minGapMs apart and never overlap; a request
// made during a fetch runs after it. Closing the panel (or opening another trace) aborts the fetch
// and stops everything; a hidden tab fetches nothing until it is shown again. Running bars extend
// to "now" and tick every TRACE.tickMs.
//
// This module holds the view's state, its skeleton and its fetches; trace-waterfall.js draws it.

import { el, isObject } from "./util.js";
import { onTraceKey, renderTraceData, selectTraceRow } from "./trace-waterfall.js";

export const TRACE = Object.freeze({
  minGapMs: 500, // never two fetches closer than this
  pollMs: 1000, // refetch period while spans are running
  tickMs: 250, // running bars and timers
  maxIndent: 14, // indentation stops growing here (data-depth keeps the real depth)
  pageLimit: 5000, // spans per page asked (the server's most)
  maxSpans: 10000, // pages stop here (the server keeps no more per trace)
});

const TRACE_ID_RE = /^[0-9a-f]{32}$/;

export const traceView = {
  traceId: "", // lower-case hex of the trace shown ("" when none)
  spanId: "", // the selected event's span
  gen: 0, // bumped on every open/close: late answers of an older request are ignored
  data: null, // the last good answer
  state: "none", // none | loading | ok | missing | error
  spans: [], // the last answer's spans in tree order (with _depth, _start, _end, _running, _kind)
  inFlight: null, // AbortController of the fetch in progress
  again: false, // a fetch was requested while one was in flight
  lastFetchAt: -Infinity,
  timer: 0,
  timerDue: 0,
  tickTimer: 0,
  wantOnVisible: false, // a fetch came due while the tab was hidden
  rows: new Map(), // span_id -> <li>
  selected: "", // span whose details are shown (defaults to the event's span)
  scrolledTo: false,
  unfolded: new Set(), // "span_id/index" of the stack traces shown whole ("Show more")
  els: null, // the view's fixed elements
};

function isTraceId(value) {
  return typeof value === "string" && TRACE_ID_RE.test(value.toLowerCase()) && /[1-9a-f]/i.test(value);
}

/** Builds the view's skeleton in the Trace section for a new trace (or a message when there is none). */
export function renderTraceView(container, traceId, spanId) {
  const id = typeof traceId === "string" ? traceId.toLowerCase() : "";
  const span = typeof spanId === "string" ? spanId.toLowerCase() : "";
  container.dataset.traceId = typeof traceId === "string" ? traceId : "";
  if (id && id === traceView.traceId && traceView.els && container.contains(traceView.els.scroll)) {
    // Another event of the trace already shown: keep the waterfall, move the highlight, refresh.
    traceView.spanId = span;
    traceView.selected = span;
    traceView.scrolledTo = false;
    renderTraceData();
    scheduleTraceFetch(0);
    return;
  }
  stopTraceView();
  container.replaceChildren();
  if (!traceId) {
    container.dataset.state = "none";
    container.appendChild(el("p", "trace-message", "This event is not part of a trace."));
    return;
  }
  if (!isTraceId(id)) {
    container.dataset.state = "none";
    container.appendChild(el("p", "trace-message", "This event's trace id is not a valid trace id."));
    return;
  }
  traceView.traceId = id;
  traceView.spanId = span;
  traceView.selected = span;
  traceView.scrolledTo = false;

  const status = el("div", "trace-status");
  status.setAttribute("role", "status");
  const statusText = el("span", "trace-status-text");
  const retry = el("button", "link-button trace-retry", "Retry");
  retry.type = "button";
  retry.hidden = true;
  retry.addEventListener("click", () => {
    traceView.lastFetchAt = -Infinity; // an explicit retry is not throttled
    scheduleTraceFetch(0);
  });
  status.append(statusText, retry);

  const summary = el("p", "trace-summary");
  const notice = el("p", "trace-notice");
  notice.hidden = true;

  const scroll = el("div", "trace-scroll");
  const head = el("div", "trace-head");
  head.setAttribute("aria-hidden", "true");
  const axisEnd = el("span", "trace-axis-end");
  head.append(el("span", "trace-head-name", "Span"), el("span", "trace-axis-start", "0"), axisEnd,
    el("span", "trace-head-dur", "Duration"));
  const list = el("ol", "trace-rows");
  list.setAttribute("role", "tree");
  list.setAttribute("aria-label", "Spans of the trace");
  list.addEventListener("click", (e) => {
    const row = e.target.closest(".trace-row");
    if (row && list.contains(row)) selectTraceRow(row, true);
  });
  list.addEventListener("keydown", onTraceKey);
  scroll.append(head, list);

  const detail = el("div", "trace-span-detail");
  detail.hidden = true;
  const detailTitle = el("h4", "trace-span-detail-title");
  const detailList = el("dl", "kv-list");
  const detailExceptions = el("div", "trace-exceptions");
  detail.append(detailTitle, detailExceptions, detailList);

  const body = el("div", "trace-body");
  body.hidden = true;
  body.append(summary, notice, scroll, detail);
  container.append(status, body);
  traceView.els = { container, status, statusText, retry, summary, notice, scroll, list, axisEnd, body,
    detail, detailTitle, detailList, detailExceptions };
  setTraceStatus("loading", "Loading the trace…");
  scheduleTraceFetch(0);
}

/** Stops fetching, polling and ticking; forgets the trace. */
export function stopTraceView() {
  traceView.gen += 1;
  if (traceView.inFlight) traceView.inFlight.abort();
  traceView.inFlight = null;
  clearTimeout(traceView.timer);
  traceView.timer = 0;
  clearInterval(traceView.tickTimer);
  traceView.tickTimer = 0;
  traceView.traceId = "";
  traceView.spanId = "";
  traceView.selected = "";
  traceView.data = null;
  traceView.spans = [];
  traceView.state = "none";
  traceView.again = false;
  traceView.wantOnVisible = false;
  traceView.lastFetchAt = -Infinity;
  traceView.rows.clear();
  traceView.unfolded.clear();
  traceView.els = null;
}

/** Asks for a fetch in `delayMs` (or sooner if one is already due), never closer than minGapMs. */
export function scheduleTraceFetch(delayMs) {
  if (!traceView.traceId) return;
  const now = performance.now();
  const due = Math.max(now + Math.max(0, delayMs), traceView.lastFetchAt + TRACE.minGapMs);
  if (traceView.timer && traceView.timerDue <= due) return;
  clearTimeout(traceView.timer);
  traceView.timerDue = due;
  traceView.timer = setTimeout(traceFetchDue, due - now);
}

function traceFetchDue() {
  traceView.timer = 0;
  if (!traceView.traceId) return;
  if (document.hidden) {
    traceView.wantOnVisible = true;
    return;
  }
  if (traceView.inFlight) {
    traceView.again = true;
    return;
  }
  fetchTrace();
}

/** A WebSocket event of the trace on screen: the trace changed, refetch soon. */
export function noteTraceActivity() {
  if (traceView.traceId) scheduleTraceFetch(0);
}

async function fetchTrace() {
  const gen = traceView.gen;
  const controller = new AbortController();
  traceView.inFlight = controller;
  traceView.lastFetchAt = performance.now();
  let outcome = null;
  try {
    outcome = await fetchTracePages(traceView.traceId, controller.signal);
  } catch {
    if (!controller.signal.aborted) outcome = { state: "error", error: "the server could not be reached" };
  }
  if (gen !== traceView.gen) return; // the panel was closed or shows another trace now
  traceView.inFlight = null;
  if (outcome) applyTraceOutcome(outcome);
  if (traceView.again) {
    traceView.again = false;
    scheduleTraceFetch(0);
  } else if (outcome && outcome.state === "ok" && traceView.data.running) {
    scheduleTraceFetch(TRACE.pollMs); // spans still running: poll (a failed fetch stops polling)
  }
}

/** Every page of a trace (at most TRACE.maxSpans spans): the outcome for applyTraceOutcome. Throws
 * when the server cannot be reached (or the fetch is aborted). */
async function fetchTracePages(traceId, signal) {
  const spans = [];
  let offset = 0;
  for (;;) {
    const response = await fetch(`api/traces/${traceId}?offset=${offset}&limit=${TRACE.pageLimit}`, {
      headers: { Accept: "application/json" },
      cache: "no-store",
      signal,
    });
    if (response.status === 404) return { state: "missing" };
    if (!response.ok) return { state: "error", error: `the server answered ${response.status}` };
    const body = await response.json();
    if (!isObject(body) || !Array.isArray(body.spans)) {
      return { state: "error", error: "the server's answer is not a trace" };
    }
    for (const span of body.spans) spans.push(span);
    const next = body.next_offset;
    // A next_offset that does not move forward ends the pages too: never loop on a bad answer.
    if (!Number.isInteger(next) || next <= offset || spans.length >= TRACE.maxSpans) {
      return { state: "ok", data: { ...body, spans: spans.slice(0, TRACE.maxSpans) } };
    }
    offset = next;
  }
}

function applyTraceOutcome(outcome) {
  if (outcome.state === "ok") {
    traceView.data = outcome.data;
    traceView.state = "ok";
    setTraceStatus("ok", "");
    renderTraceData();
  } else if (outcome.state === "missing") {
    traceView.data = null;
    traceView.state = "missing";
    setTraceStatus("missing", "Trace not available (not kept or not received yet).");
    renderTraceData();
  } else if (traceView.data) {
    // Keep the last waterfall; say that it may be stale.
    setTraceStatus("stale", `Could not update the trace: ${outcome.error}.`);
  } else {
    traceView.state = "error";
    setTraceStatus("error", `Could not load the trace: ${outcome.error}.`);
    renderTraceData();
  }
}

function setTraceStatus(state, text) {
  const els = traceView.els;
  if (!els) return;
  els.container.dataset.state = state;
  els.statusText.textContent = text;
  els.status.hidden = !text;
  els.retry.hidden = !(state === "error" || state === "missing" || state === "stale");
  els.retry.textContent = state === "missing" ? "Check again" : "Retry";
}
