// The detail panel (the aside): one view at a time, named in the URL (router.js). The event view
// (the selected event's fields, a completed run's figures, its data and its trace ids, with the
// trace view below them) and the trace view (#trace=) are built here; other views (a run, an
// agent) fill the generic view box through openPanel().

import { $, el, kvRow, parseTime } from "./util.js";
import { describe, severityOf, typeLabel, typeOf } from "./describe.js";
import { hasRunFigures, runBreakdown } from "./runs.js";
import { ui } from "./store.js";
import { renderTraceView, stopTraceView } from "./trace-view.js";
import { closeRoute, setRoute } from "./router.js";
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
 * `kind` names the view ("run", "agent", "trace", ...) in `#detail[data-view]` for styles and
 * tests; `route` (e.g. {run: id}), when given, names it in the URL.
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

  const sev = severityOf(ev);
  setBadge(sev, `sev-${sev}`);
  $("detail-title").textContent = typeLabel(ev);
  $("detail-desc").textContent = describe(ev).text;

  const meta = $("detail-meta");
  meta.replaceChildren();
  const t = parseTime(ev.timestamp);
  kvRow(meta, "time", Number.isNaN(t) ? ev.timestamp : `${new Date(t).toLocaleString()} (${ev.timestamp})`);
  kvRow(meta, "type", typeOf(ev), { mono: true });
  kvRow(meta, "severity", sev);
  kvRow(meta, "seq", ev.seq, { mono: true });
  kvRow(meta, "event_id", ev.event_id, { mono: true });

  const run = $("detail-run");
  run.replaceChildren();
  const showRun = typeOf(ev) === "agent_execution_completed" && hasRunFigures(ev.data);
  $("detail-run-section").hidden = !showRun;
  if (showRun) runBreakdown(run, ev.data);

  const data = $("detail-data");
  data.replaceChildren();
  const keys = Object.keys(ev.data);
  if (!keys.length) data.appendChild(el("dd", "kv-empty", "no data fields"));
  for (const key of keys) kvRow(data, key, ev.data[key], { mono: false });

  const ids = $("detail-trace-ids");
  ids.replaceChildren();
  kvRow(ids, "trace_id", ev.trace_id || null, { mono: true });
  kvRow(ids, "span_id", ev.span_id || null, { mono: true });
  renderTraceView($("trace-view"), ev.trace_id, ev.span_id);
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

/** #trace=<id>: the trace waterfall alone in the aside. */
export function openTracePanel(traceId) {
  openPanel({
    kind: "trace",
    title: "Trace",
    route: { trace: traceId },
    build(body) {
      const ids = el("dl", "kv-list");
      kvRow(ids, "trace_id", traceId, { mono: true });
      const box = el("div", "trace-view");
      body.append(ids, box);
      renderTraceView(box, traceId, "");
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
  closeRoute();
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
