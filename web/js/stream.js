// The event stream: rows newest first (at most CONFIG.maxRows), the pause, the "new events" pill
// and the counts.

import { CONFIG, EVENT_TYPES } from "./config.js";
import { $, el, fmtTime, intFormat, txt } from "./util.js";
import { describe, severityOf, typeLabel, typeOf } from "./describe.js";
import { boundQueue, byOrder, dirty, queues, ui } from "./store.js";
import { matches } from "./filters.js";
import { scheduleRender } from "./render.js";

export function setPaused(paused) {
  if (ui.paused === paused) return;
  ui.paused = paused;
  const button = $("pause");
  button.setAttribute("aria-pressed", String(paused));
  button.classList.toggle("is-paused", paused);
  $("pause-label").textContent = paused ? "Resume" : "Pause";
  if (paused) {
    // Freeze what is on screen: rows not drawn yet wait with the ones that arrive from now on.
    queues.paused = queues.rows;
    queues.rows = [];
    ui.pausedCount = queues.paused.length;
  } else {
    queues.rows = boundQueue(queues.rows.concat(queues.paused), CONFIG.maxRows);
    queues.paused = [];
    ui.pausedCount = 0;
  }
  dirty.paused = true;
  scheduleRender();
}

export function isAtTop(stream) {
  return stream.scrollTop <= 4;
}

export function renderRows() {
  const stream = $("stream");
  let batch = queues.rows;
  queues.rows = [];
  batch.sort(byOrder);
  if (batch.length > CONFIG.maxRows) batch = batch.slice(-CONFIG.maxRows);

  const atTop = isAtTop(stream);
  const before = stream.scrollHeight;
  const top = stream.firstElementChild;
  const topOrder = top ? top._ev._order : -Infinity;
  const animate = batch.length <= CONFIG.animateMaxPerFrame;
  const fragment = document.createDocumentFragment();
  let added = 0;
  for (let i = batch.length - 1; i >= 0; i -= 1) {
    const ev = batch[i];
    if (ev._order <= topOrder) {
      insertSorted(stream, makeRow(ev, false)); // a replayed event older than what is shown
    } else {
      fragment.appendChild(makeRow(ev, animate));
    }
    added += 1;
  }
  stream.prepend(fragment);
  if (!atTop) {
    // Keep what the reader is looking at in place, and tell them what arrived above.
    stream.scrollTop += stream.scrollHeight - before;
    ui.newCount += added;
  }
  let extra = stream.childElementCount - CONFIG.maxRows;
  while (extra > 0) {
    const last = stream.lastElementChild;
    if (last === ui.detailRow) ui.detailRow = null;
    last.remove();
    extra -= 1;
  }
  renderStreamCounts();
}

function insertSorted(stream, row) {
  const order = row._ev._order;
  for (const child of stream.children) {
    if (child._ev._order < order) {
      stream.insertBefore(row, child);
      return;
    }
  }
  if (stream.childElementCount < CONFIG.maxRows) stream.appendChild(row);
}

function makeRow(ev, animate) {
  const sev = severityOf(ev);
  const type = typeOf(ev);
  const li = el("li", `ev sev-${sev} ${EVENT_TYPES.includes(type) ? `t-${type}` : "t-unknown"}`);
  if (animate) li.classList.add("ev-new");
  li.tabIndex = 0;
  li._ev = ev;
  if (ev.seq !== null) li.dataset.seq = String(ev.seq);
  li.dataset.type = type;
  li.dataset.severity = sev;
  li.hidden = !matches(ev);

  const time = el("time", "ev-time", fmtTime(ev.timestamp));
  if (typeof ev.timestamp === "string") time.dateTime = ev.timestamp;
  const label = el("span", "ev-type", typeLabel(ev));
  const body = el("div", "ev-body");
  const { text, fields } = describe(ev);
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

export function renderStreamCounts() {
  const stream = $("stream");
  let visible = 0;
  for (const row of stream.children) if (!row.hidden) visible += 1;
  $("stream-count").textContent = String(visible);
  $("stream-empty").hidden = visible > 0;
  $("stream-empty").textContent = stream.childElementCount ? "No event matches the filters." : "Waiting for events…";
  renderPill();
}

export function renderPill() {
  const pill = $("new-pill");
  if (ui.newCount > 0 && !isAtTop($("stream"))) {
    $("new-pill-text").textContent = `${intFormat.format(ui.newCount)} new event${ui.newCount === 1 ? "" : "s"}`;
    pill.hidden = false;
  } else {
    ui.newCount = 0;
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
