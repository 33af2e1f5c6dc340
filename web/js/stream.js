// The event stream's list: its rows newest first (at most CONFIG.maxRows), drawn from the stream's
// model (run-rows.js) once per frame; rows that update in place; new rows held back while the
// reader points at the list, has a row open or has scrolled down (counted in the "N new" pill);
// the pause; and the counts.

import { CONFIG, EVENT_TYPES } from "./config.js";
import { $, el, fmtTime, intFormat, txt } from "./util.js";
import { describe, qualityBand, severityOf, typeLabel, typeOf } from "./describe.js";
import { dirty, model, queues, ui } from "./store.js";
import { entryMatches, filters, filtering } from "./filters.js";
import { scheduleRender } from "./render.js";
import { eventEntry, ingest, isSystem, makeRunRow, resetModel, streamModel, tickRunRows, updateRunRow } from "./run-rows.js";
import { currentRoute } from "./router.js";

const PENDING_CAP = CONFIG.maxRows * 4; // more changes than this between two frames: redraw all

export const view = {
  rows: new Map(), // entry id -> its <li> in the list
  held: new Map(), // entry id -> entry: rows held back, shown by the pill or when the hold ends
  pausedQueue: [], // entries changed while paused
  rebuild: false, // too much changed since the last frame: redraw from the model
  pointerInside: false,
  selected: null, // the row whose view is open (event or run)
};

// ---------------------------------------------------------------------------------------------- intake

/** Every event the page receives: into the model, and its row queued for the next frame. */
export function queueStreamEvent(ev) {
  const entry = ingest(ev);
  const shown = filters.mode === "raw" ? eventEntry(ev) : entry || (filters.system ? eventEntry(ev) : null);
  if (!shown) return;
  if (ui.paused) {
    if (!view.rows.has(shown.id) && !view.held.has(shown.id) && entryMatches(shown)) {
      ui.pausedCount += 1;
      dirty.paused = true;
    }
    view.pausedQueue.push(shown);
    if (view.pausedQueue.length > PENDING_CAP) {
      view.pausedQueue = [];
      view.rebuild = true;
    }
    return;
  }
  queues.rows.push(shown);
  if (queues.rows.length > PENDING_CAP) {
    queues.rows = [shown];
    view.rebuild = true;
  }
}

/** A server with a fresh history: the stream starts over. */
export function resetStream() {
  resetModel();
  queues.rows = [];
  queues.paused = [];
  view.pausedQueue = [];
  view.held.clear();
  view.rows.clear();
  view.rebuild = false;
  ui.pausedCount = 0;
  ui.newCount = 0;
  $("stream").replaceChildren();
  renderStreamCounts();
}

export function setPaused(paused) {
  if (ui.paused === paused) return;
  ui.paused = paused;
  const button = $("pause");
  button.setAttribute("aria-pressed", String(paused));
  button.classList.toggle("is-paused", paused);
  $("pause-label").textContent = paused ? "Resume" : "Pause";
  if (paused) {
    // Freeze what is on screen: changes not drawn yet wait with the ones that arrive from now on.
    view.pausedQueue = queues.rows;
    queues.rows = [];
    ui.pausedCount = 0;
  } else {
    queues.rows = queues.rows.concat(view.pausedQueue);
    if (view.rebuild && !queues.rows.length) queues.rows.push(null);
    view.pausedQueue = [];
    ui.pausedCount = 0;
  }
  dirty.paused = true;
  scheduleRender();
}

// ---------------------------------------------------------------------------------------------- holding

export function isAtTop(stream) {
  return stream.scrollTop <= 4;
}

/** Whether the row whose view is open is still open (a run view or an event view on this row). */
function selectionOpen() {
  const row = view.selected;
  const panel = $("detail");
  if (!row || !row.isConnected || panel.hidden) return false;
  if (panel.dataset.view === "event") return ui.detailRow === row;
  if (panel.dataset.view === "run") return Boolean(row.dataset.run) && currentRoute().run === row.dataset.run;
  return false;
}

/** New rows wait while the reader points at the list, has a row open or has scrolled down. */
export function holding() {
  const stream = $("stream");
  if (!stream.firstElementChild) return false; // an empty list: nothing can move
  return view.pointerInside || selectionOpen() || !isAtTop(stream);
}

/** The detail view changed (opened, closed, another view): drop a selection that is gone, maybe release. */
export function noteSelection() {
  if (view.selected && !selectionOpen()) {
    view.selected.classList.remove("selected");
    view.selected = null;
  }
  releaseIfFree();
}

export function selectRow(row) {
  if (view.selected && view.selected !== row) view.selected.classList.remove("selected");
  view.selected = row;
  row.classList.add("selected");
}

export function releaseIfFree() {
  if (view.held.size && !ui.paused && !holding()) showHeld();
}

/** Show the held rows (the pill, or the hold ended). */
export function showHeld() {
  const held = Array.from(view.held.values());
  view.held.clear();
  ui.newCount = 0;
  placeRows(held.filter(entryMatches), false);
  renderStreamCounts();
}

// ---------------------------------------------------------------------------------------------- drawing

export function renderRows() {
  const batch = queues.rows;
  queues.rows = [];
  if (view.rebuild) {
    rebuildStream();
    return;
  }
  const fresh = [];
  const seen = new Set();
  for (const entry of batch) {
    if (!entry || seen.has(entry.id)) continue;
    seen.add(entry.id);
    const row = view.rows.get(entry.id);
    if (row) {
      if (row._entry.kind !== "run") continue;
      updateRunRow(row); // in place: the same element, the same height
      // A run that no longer matches (it ended under "Running") leaves, unless rows are held.
      if (!entryMatches(entry) && !holding()) dropRow(row);
      continue;
    }
    if (view.held.has(entry.id) || !entryMatches(entry)) continue;
    fresh.push(entry);
  }
  if (fresh.length) {
    if (holding()) {
      for (const entry of fresh) view.held.set(entry.id, entry);
      // Keep the newest: the pill shows at most a list's worth.
      for (const id of view.held.keys()) {
        if (view.held.size <= CONFIG.maxRows) break;
        view.held.delete(id);
      }
      ui.newCount = view.held.size;
    } else {
      placeRows(fresh, fresh.length <= CONFIG.animateMaxPerFrame);
    }
  }
  releaseIfFree();
  renderStreamCounts();
}

// Put new rows in the list: newer than the top one above it, older ones (a replay) in their place.
function placeRows(entries, animate) {
  const stream = $("stream");
  entries.sort((a, b) => a.order - b.order);
  if (entries.length > CONFIG.maxRows) entries = entries.slice(-CONFIG.maxRows);
  const top = stream.firstElementChild;
  const topOrder = top ? top._entry.order : -Infinity;
  const fragment = document.createDocumentFragment();
  for (let i = entries.length - 1; i >= 0; i -= 1) {
    const entry = entries[i];
    if (view.rows.has(entry.id)) continue;
    if (entry.order <= topOrder) {
      insertSorted(stream, entry);
    } else {
      fragment.appendChild(makeRow(entry, animate));
    }
  }
  stream.prepend(fragment);
  trimRows(stream);
}

function dropRow(row) {
  if (row === ui.detailRow) ui.detailRow = null;
  if (row === view.selected) view.selected = null;
  view.rows.delete(row._entry.id);
  row.remove();
}

function trimRows(stream) {
  let extra = stream.childElementCount - CONFIG.maxRows;
  while (extra > 0) {
    dropRow(stream.lastElementChild);
    extra -= 1;
  }
}

function insertSorted(stream, entry) {
  for (const child of stream.children) {
    if (child._entry.order < entry.order) {
      stream.insertBefore(makeRow(entry, false), child);
      return;
    }
  }
  if (stream.childElementCount < CONFIG.maxRows) stream.appendChild(makeRow(entry, false));
}

/** Draw the list again from the model (a filter, the mode or a toggle changed), keeping shown rows. */
export function rebuildStream() {
  view.rebuild = false;
  view.held.clear();
  ui.newCount = 0;
  let source = streamModel.entries;
  if (filters.mode === "raw") source = streamModel.raw.map(eventEntry);
  else if (filters.system) source = source.concat(streamModel.raw.filter(isSystem).map(eventEntry));
  const wanted = [];
  const ids = new Set();
  for (const entry of source) {
    if (ids.has(entry.id) || !entryMatches(entry)) continue;
    ids.add(entry.id);
    wanted.push(entry);
  }
  wanted.sort((a, b) => b.order - a.order);
  wanted.length = Math.min(wanted.length, CONFIG.maxRows);
  const rows = wanted.map((entry) => view.rows.get(entry.id) || makeRow(entry, false));
  for (const row of rows) if (row._entry.kind === "run") updateRunRow(row);
  view.rows.clear();
  for (const row of rows) view.rows.set(row._entry.id, row);
  $("stream").replaceChildren(...rows);
  if (view.selected && !view.selected.isConnected) noteSelection();
  renderStreamCounts();
}

function makeRow(entry, animate) {
  const li = entry.kind === "run" ? makeRunRow(entry) : makeEventRow(entry.ev);
  li._entry = entry;
  if (animate) li.classList.add("ev-new");
  view.rows.set(entry.id, li);
  return li;
}

function makeEventRow(ev) {
  const sev = severityOf(ev);
  const type = typeOf(ev);
  const li = el("li", `ev sev-${sev} ${EVENT_TYPES.includes(type) ? `t-${type}` : "t-unknown"}`);
  li.tabIndex = 0;
  li._ev = ev;
  if (ev.seq !== null) li.dataset.seq = String(ev.seq);
  li.dataset.type = type;
  li.dataset.severity = sev;

  const time = el("time", "ev-time", fmtTime(ev.timestamp));
  if (typeof ev.timestamp === "string") time.dateTime = ev.timestamp;
  const label = el("span", "ev-type", typeLabel(ev));
  const body = el("div", "ev-body");
  const { text, fields } = describe(ev);
  if (type === "quality_score_updated") {
    // Quality has its own scale and colour (good, fair, poor), not the event's severity.
    const band = qualityBand(ev.data.overall_score);
    li.dataset.quality = band || "none";
    if (band) {
      const pill = el("span", `q-pill q-${band}`, Number(ev.data.overall_score).toFixed(1));
      pill.title = `Quality ${band}: good >= 90, fair 70-89, poor < 70`;
      body.appendChild(pill);
    }
  }
  body.appendChild(el("span", "ev-desc", text));
  const shown = fields.filter(([, v]) => v !== null && v !== undefined && v !== "");
  if (shown.length) {
    const list = el("span", "ev-fields");
    for (const [k, v] of shown) {
      const item = el("span", "kv");
      item.appendChild(el("span", "k", k));
      item.appendChild(el("span", "v", txt(v, 80)));
      list.appendChild(item);
    }
    body.appendChild(list);
  }
  li.append(time, label, body);
  li.setAttribute("aria-label", `${typeLabel(ev)} at ${fmtTime(ev.timestamp)}: ${text}`);
  return li;
}

/** Once a second (from the page's clock): the running rows' elapsed time and current step. */
export function tickStream() {
  if (ui.paused) return;
  tickRunRows(view.rows.values());
}

// ---------------------------------------------------------------------------------------------- counts

function plural(n, word) {
  return `${intFormat.format(n)} ${word}${n === 1 ? "" : "s"}`;
}

export function renderStreamCounts() {
  const stream = $("stream");
  let runs = 0;
  let events = 0;
  for (const row of stream.children) {
    if (row._entry.kind === "run") runs += 1;
    else events += 1;
  }
  const shown = runs + events;
  const badge = $("stream-count");
  const total = model.metrics ? Number(model.metrics.total_events) : NaN;
  if (filters.mode === "raw") {
    const capped = shown >= CONFIG.maxRows || (!filtering() && Number.isFinite(total) && total > shown);
    badge.textContent = capped && Number.isFinite(total) && total > shown
      ? `shown ${intFormat.format(shown)} of ${plural(total, "event")}`
      : plural(shown, "event");
    badge.title = capped ? `The newest ${CONFIG.maxRows} events are kept on the page` : "Events shown";
  } else {
    badge.textContent = [runs || !events ? plural(runs, "run") : "", events ? plural(events, "event") : ""]
      .filter(Boolean).join(" · ");
    badge.title = shown >= CONFIG.maxRows ? `The newest ${CONFIG.maxRows} rows are kept on the page` : "Runs and events shown";
  }
  $("stream-empty").hidden = shown > 0;
  const anything = streamModel.raw.length > 0;
  $("stream-empty").textContent = anything ? "Nothing matches the filters." : "Waiting for events…";
  renderPill();
}

export function renderPill() {
  const pill = $("new-pill");
  const count = view.held.size;
  if (count > 0) {
    const runs = Array.from(view.held.values()).filter((e) => e.kind === "run").length;
    const noun = runs === count ? "run" : runs === 0 ? "event" : "row";
    $("new-pill-text").textContent = `${intFormat.format(count)} new ${noun}${count === 1 ? "" : "s"}`;
    pill.hidden = false;
  } else {
    pill.hidden = true;
  }
}

export function renderPaused() {
  dirty.paused = false;
  const badge = $("stream-paused");
  badge.hidden = !ui.paused;
  badge.textContent = ui.pausedCount ? `Paused · ${intFormat.format(ui.pausedCount)} new` : "Paused";
}

export function visibleRows() {
  return Array.from($("stream").children).filter((r) => !r.hidden);
}
