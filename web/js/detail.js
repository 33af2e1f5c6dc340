// The detail panel (the aside): one view at a time, named in the URL (router.js). The event view
// is built here: the event's outcome first (its one-line description), then its trace (an "Open
// trace" button to the trace page and the compact waterfall), a completed run's figures, the
// event's fields and data with the empty ones left out, and the whole event as JSON, folded.
// Other views (a run, an agent) fill the generic view box through openPanel().

import { $, el, isObject, kvRow, parseTime, safeJson } from "./util.js";
import { describe, severityOf, typeLabel, typeOf } from "./describe.js";
import { hasRunFigures, runBreakdown } from "./runs.js";
import { ui } from "./store.js";
import { renderTraceView, stopTraceView } from "./trace-view.js";
import { closeRoute, currentRoute, openRoute, setRoute } from "./router.js";
import { heldEvent } from "./held.js";

function deselectRow() {
  if (ui.detailRow) ui.detailRow.classList.remove("selected");
  ui.detailRow = null;
  ui.detailEvent = null;
}

let opener = null; // what had the focus when the aside opened (it gets it back on close)

function showPanel() {
  const panel = $("detail");
  const wasHidden = panel.hidden;
  if (wasHidden) opener = document.activeElement instanceof HTMLElement && document.activeElement !== document.body ? document.activeElement : null;
  panel.hidden = false;
  document.body.classList.add("detail-open");
  if (wasHidden || !panel.contains(document.activeElement)) $("detail-close").focus({ preventScroll: true });
}

/**
 * Open the aside on a view other than an event's: `build(body)` fills the (emptied) view box.
 * `kind` names the view ("run", "agent", "event" for a message about an event) in
 * `#detail[data-view]` for styles and tests; `route` (e.g. {run: id}), when given, names it in the URL.
 */
export function openPanel({ kind, title, badge = "", badgeClass = "", route = null, build }) {
  deselectRow();
  stopTraceView();
  const panel = $("detail");
  panel.dataset.view = kind;
  $("detail-event").hidden = true;
  const body = $("detail-view");
  body.replaceChildren();
  body.hidden = false;
  setBadge(badge, badgeClass);
  $("detail-title").textContent = title;
  if (route) setRoute(route);
  build(body);
  showPanel();
}

/** The header's badge: text and a class (outcome-*, sev-*); hidden without text. */
export function setBadge(text, className = "") {
  const badge = $("detail-sev");
  badge.className = `sev-badge ${className}`.trim();
  badge.textContent = text;
  badge.hidden = !text;
}

/** The event view of a stream row (click, Enter or Space on it). */
export function openDetail(row) {
  openEvent(row._ev, row);
}

const RAW_MAX_CHARS = 100_000; // the raw event's JSON is cut here (the server caps events anyway)
const TRACE_ID_RE = /^[0-9a-f]{32}$/i;
const SPAN_ID_RE = /^[0-9a-f]{16}$/i;

let eventEls = null; // the event view's parts, built once (eventSkeleton)

function section(title, id, child) {
  const box = el("section", "detail-section");
  const h = el("h3", "detail-section-title", title);
  h.id = id;
  box.setAttribute("aria-labelledby", id);
  box.appendChild(h);
  if (child) box.appendChild(child);
  return box;
}

function withId(node, id) {
  node.id = id;
  return node;
}

/**
 * The event view's parts, in their order (ids kept for styles and tests): the description, the
 * trace (button, ids, waterfall), the run's figures, the event's fields, its data, the raw JSON.
 */
function eventSkeleton() {
  if (eventEls && eventEls.box.isConnected) return eventEls;
  const box = $("detail-event");
  const desc = withId(el("p", "detail-desc"), "detail-desc");

  const openTrace = withId(el("button", "button detail-open-trace", "Open trace"), "detail-open-trace");
  openTrace.type = "button";
  openTrace.addEventListener("click", () => {
    const ev = ui.detailEvent;
    if (ev && TRACE_ID_RE.test(ev.trace_id || "")) openRoute(traceRoute(ev));
  });
  const ids = withId(el("dl", "kv-list"), "detail-trace-ids");
  const view = withId(el("div", "trace-view"), "trace-view");
  const trace = section("Trace", "detail-trace-h", null);
  trace.classList.add("detail-trace");
  const actions = el("div", "detail-trace-actions");
  actions.append(openTrace, ids);
  trace.append(actions, view);

  const run = withId(el("dl", "kv-list"), "detail-run");
  const runSection = withId(section("Run", "detail-run-h", run), "detail-run-section");
  runSection.hidden = true;
  const meta = withId(el("dl", "kv-list"), "detail-meta");
  const data = withId(el("dl", "kv-list"), "detail-data");
  const hidden = el("p", "detail-hidden-note");
  hidden.hidden = true;
  const dataSection = section("Data", "detail-data-h", data);
  dataSection.appendChild(hidden);

  const raw = withId(el("details", "detail-raw"), "detail-raw");
  raw.appendChild(el("summary", "detail-raw-summary", "Raw event (JSON)"));
  const rawText = el("pre", "kv-json detail-raw-json");
  raw.appendChild(rawText);

  box.replaceChildren(desc, trace, runSection, section("Event", "detail-event-h", meta), dataSection, raw);
  eventEls = { box, desc, openTrace, ids, view, runSection, run, meta, data, hidden, raw, rawText };
  return eventEls;
}

function traceRoute(ev) {
  const route = { trace: ev.trace_id.toLowerCase() };
  if (SPAN_ID_RE.test(ev.span_id || "")) route.span = ev.span_id.toLowerCase();
  return route;
}

function isEmpty(value) {
  return value === null || value === undefined || value === "";
}

/** The event as the server sent it (the page's own bookkeeping, `_`-keys, left out). */
function rawJson(ev) {
  const plain = {};
  for (const [key, value] of Object.entries(ev)) if (!key.startsWith("_")) plain[key] = value;
  const text = safeJson(plain, 2);
  return text.length > RAW_MAX_CHARS ? `${text.slice(0, RAW_MAX_CHARS)}\n… (cut at ${RAW_MAX_CHARS} characters)` : text;
}

/** The event view: `row` is its stream row when it has one (selected, and focused on close). */
export function openEvent(ev, row = null) {
  $("detail").dataset.view = "event";
  $("detail-event").hidden = false;
  $("detail-view").hidden = true;
  $("detail-view").replaceChildren();
  deselectRow();
  ui.detailRow = row;
  ui.detailEvent = ev;
  if (row) row.classList.add("selected");
  if (typeof ev.seq === "number") setRoute({ event: ev.seq });
  const els = eventSkeleton();

  const sev = severityOf(ev);
  setBadge(sev, `sev-${sev}`);
  $("detail-title").textContent = typeLabel(ev);
  els.desc.textContent = describe(ev).text;

  // The trace: its ids (null when the event did not come from a span), the button, the waterfall.
  els.ids.replaceChildren();
  kvRow(els.ids, "trace_id", ev.trace_id || null, { mono: true });
  kvRow(els.ids, "span_id", ev.span_id || null, { mono: true });
  els.openTrace.hidden = !TRACE_ID_RE.test(ev.trace_id || "");
  renderTraceView(els.view, ev.trace_id, ev.span_id);

  els.run.replaceChildren();
  const showRun = typeOf(ev) === "agent_execution_completed" && hasRunFigures(ev.data);
  els.runSection.hidden = !showRun;
  if (showRun) runBreakdown(els.run, ev.data);

  // The fields and the data, without the empty ones (the raw event below has them all).
  els.meta.replaceChildren();
  const t = parseTime(ev.timestamp);
  kvRow(els.meta, "time", Number.isNaN(t) ? ev.timestamp : `${new Date(t).toLocaleString()} (${ev.timestamp})`);
  kvRow(els.meta, "type", typeOf(ev), { mono: true });
  kvRow(els.meta, "severity", sev);
  if (!isEmpty(ev.seq)) kvRow(els.meta, "seq", ev.seq, { mono: true });
  if (!isEmpty(ev.event_id)) kvRow(els.meta, "event_id", ev.event_id, { mono: true });

  els.data.replaceChildren();
  const data = isObject(ev.data) ? ev.data : {};
  const keys = Object.keys(data);
  const shown = keys.filter((key) => !isEmpty(data[key]));
  if (!shown.length) els.data.appendChild(el("dd", "kv-empty", keys.length ? "no field with a value" : "no data fields"));
  for (const key of shown) kvRow(els.data, key, data[key], { mono: false });
  const empty = keys.length - shown.length;
  els.hidden.hidden = !empty;
  els.hidden.textContent = empty ? `${empty} empty field${empty === 1 ? "" : "s"} not shown (${keys.filter((k) => isEmpty(data[k])).slice(0, 20).join(", ")}): the raw event has them.` : "";

  els.raw.open = false;
  els.rawText.textContent = rawJson(ev);
  showPanel();
}

let eventFetch = null; // AbortController of the #event= lookup in progress

/**
 * #event=<seq>: the event view of that event, from the page when it holds it, else from the
 * server's history (GET api/events?after_seq=<seq-1>&limit=1).
 */
export function openEventBySeq(seq) {
  if (eventFetch) eventFetch.abort();
  eventFetch = null;
  if (!Number.isInteger(seq) || seq < 1) {
    eventMessage(String(seq), "This link does not name an event (#event= takes an event's seq number).");
    return;
  }
  const ev = heldEvent(seq);
  if (ev) {
    const row = [...document.querySelectorAll("#stream > li.ev")].find((r) => r._ev === ev) || null;
    openEvent(ev, row);
    return;
  }
  eventMessage(seq, `Loading event #${seq}…`);
  const controller = new AbortController();
  eventFetch = controller;
  fetch(`api/events?after_seq=${seq - 1}&limit=1`, { signal: controller.signal, headers: { Accept: "application/json" } })
    .then((res) => (res.ok ? res.json() : Promise.reject(new Error(`HTTP ${res.status}`))))
    .then((body) => {
      if (eventFetch !== controller) return;
      eventFetch = null;
      const found = body && Array.isArray(body.events) ? body.events.find((e) => e && e.seq === seq) : null;
      if (!found) {
        eventMessage(seq, `Event #${seq} is not in the server's history (not kept, or not sent yet).`);
        return;
      }
      if (typeof found.data !== "object" || found.data === null || Array.isArray(found.data)) found.data = {};
      openEvent(found, null);
    })
    .catch((err) => {
      if (eventFetch !== controller) return;
      eventFetch = null;
      eventMessage(seq, `Could not load event #${seq}: ${err && err.message ? err.message : "network error"}`);
    });
}

function eventMessage(seq, text) {
  openPanel({
    kind: "event",
    title: `Event #${seq}`,
    build(body) {
      const p = el("p", "detail-message", text);
      p.setAttribute("role", "status");
      body.appendChild(p);
    },
  });
}

export function closeDetail(restoreFocus = true) {
  const panel = $("detail");
  if (eventFetch) eventFetch.abort();
  eventFetch = null;
  if (panel.hidden) return;
  stopTraceView();
  panel.hidden = true;
  delete panel.dataset.view;
  document.body.classList.remove("detail-open");
  $("detail-view").replaceChildren();
  const row = ui.detailRow;
  ui.detailRow = null;
  ui.detailEvent = null;
  // A page opened over the aside (the trace page, ...) names itself in the URL: leave it there.
  const route = currentRoute();
  if (!(route.trace || route.traces || route.conversation || route.graph)) closeRoute();
  const back = row || opener;
  opener = null;
  if (row) row.classList.remove("selected");
  if (restoreFocus && back && back.isConnected && !back.hidden) back.focus({ preventScroll: true });
}

// The aside starts below the topbar (detail.css): keep --topbar-h equal to the topbar's height,
// which changes as the topbar wraps (a narrow screen, a longer status text).
const topbar = document.querySelector(".topbar");
if (topbar && typeof ResizeObserver === "function") {
  new ResizeObserver(() => {
    const h = Math.ceil(topbar.getBoundingClientRect().height);
    document.documentElement.style.setProperty("--topbar-h", `${h}px`);
  }).observe(topbar);
}
