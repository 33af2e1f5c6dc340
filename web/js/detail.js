// The detail panel (the aside): one view at a time. The event view (the selected event's fields, a
// completed run's figures, its data and its trace ids, with the trace view below them) is built
// here; other views (a run, an agent) fill the generic view box through openPanel().

import { $, el, kvRow, parseTime } from "./util.js";
import { describe, severityOf, typeLabel, typeOf } from "./describe.js";
import { hasRunFigures, runBreakdown } from "./runs.js";
import { ui } from "./store.js";
import { renderTraceView, stopTraceView } from "./trace-view.js";

/**
 * Open the aside on a view other than an event's: `build(body)` fills the (emptied) view box.
 * `kind` names the view ("run", "agent", ...) in `#detail[data-view]` for styles and tests.
 */
export function openPanel({ kind, title, badge = "", badgeClass = "", build }) {
  if (ui.detailRow) ui.detailRow.classList.remove("selected");
  ui.detailRow = null;
  ui.detailEvent = null;
  stopTraceView();
  const panel = $("detail");
  panel.dataset.view = kind;
  $("detail-event").hidden = true;
  const body = $("detail-view");
  body.replaceChildren();
  body.hidden = false;
  const sev = $("detail-sev");
  sev.className = `sev-badge ${badgeClass}`;
  sev.textContent = badge;
  sev.hidden = !badge;
  $("detail-title").textContent = title;
  build(body);
  panel.hidden = false;
  document.body.classList.add("detail-open");
  $("detail-close").focus({ preventScroll: true });
}

export function openDetail(row) {
  const ev = row._ev;
  const panel0 = $("detail");
  panel0.dataset.view = "event";
  $("detail-event").hidden = false;
  $("detail-view").hidden = true;
  $("detail-view").replaceChildren();
  $("detail-sev").hidden = false;
  if (ui.detailRow) ui.detailRow.classList.remove("selected");
  ui.detailRow = row;
  ui.detailEvent = ev;
  row.classList.add("selected");

  const sev = severityOf(ev);
  const badge = $("detail-sev");
  badge.className = `sev-badge sev-${sev}`;
  badge.textContent = sev;
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

  const panel = $("detail");
  panel.hidden = false;
  document.body.classList.add("detail-open");
  $("detail-close").focus({ preventScroll: true });
}

export function closeDetail(restoreFocus = true) {
  const panel = $("detail");
  if (panel.hidden) return;
  stopTraceView();
  panel.hidden = true;
  document.body.classList.remove("detail-open");
  $("detail-view").replaceChildren();
  const row = ui.detailRow;
  ui.detailRow = null;
  ui.detailEvent = null;
  if (row) {
    row.classList.remove("selected");
    if (restoreFocus && row.isConnected && !row.hidden) row.focus({ preventScroll: true });
  }
}
