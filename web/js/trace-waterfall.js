// The trace view's drawing, virtualized: every row has the same height (ROW_PX), the list is as tall
// as all the rows, and only the rows in view (plus TRACE.overscan above and below, plus the selected
// one, which keeps the keyboard focus) are in the DOM, absolutely placed. Scrolling re-binds the row
// elements to other spans (one redraw per animation frame), so a 10,000-span trace costs the DOM
// what a 40-span one does. Each row: a fold toggle, a kind badge, the name, for a model call its
// model, tokens and cost, a bar on the trace's time axis (running bars grow) and the duration.

import { el, fmtDurationMs, fmtInt, num, txt } from "./util.js";
import { fmtCost } from "./runs.js";
import { spanModel, spanTokens, timeAxis } from "./trace-model.js";
import { TRACE } from "./trace-view.js";

export const ROW_PX = 28; // the CSS reads it from --trace-row-h

/** Milliseconds with a precision that suits spans: "0.42 ms", "4.2 ms", "850 ms", "1.2 s". */
export function fmtSpanMs(value) {
  const ms = num(value);
  if (ms === null || ms < 0) return "?";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  return fmtDurationMs(ms);
}

const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

/** A model call's figures: "1.2K → 340 tok · $0.0031" (what is known of it), "" for other spans. */
export function modelFigures(rec) {
  const { input, output } = spanTokens(rec);
  const parts = [];
  if (input !== null || output !== null) {
    parts.push(`${input === null ? "?" : compact.format(input)} → ${output === null ? "?" : compact.format(output)} tok`);
  }
  const cost = fmtCost(rec.cost_usd);
  if (cost) parts.push(cost);
  return parts.join(" · ");
}

/** The view's fixed elements: status line, summary, notice, and the scroll box with the tree. */
export function makeSkeleton(view) {
  const container = view.container;
  const status = el("div", "trace-status");
  status.setAttribute("role", "status");
  const statusText = el("span", "trace-status-text");
  const retry = el("button", "link-button trace-retry", "Retry");
  retry.type = "button";
  retry.hidden = true;
  retry.addEventListener("click", () => view.retry());
  status.append(statusText, retry);

  const summary = el("p", "trace-summary");
  const notice = el("p", "trace-notice");
  notice.hidden = true;

  const scroll = el("div", "trace-scroll");
  scroll.style.setProperty("--trace-row-h", `${ROW_PX}px`);
  const head = el("div", "trace-head");
  head.setAttribute("aria-hidden", "true");
  const axisEnd = el("span", "trace-axis-end");
  head.append(el("span", "trace-head-name", "Span"), el("span", "trace-head-figs", "Tokens · cost"),
    el("span", "trace-axis-start", "0"), axisEnd, el("span", "trace-head-dur", "Duration"));
  const list = el("ol", "trace-rows");
  list.setAttribute("role", "tree");
  list.setAttribute("aria-label", "Spans of the trace");
  list.addEventListener("click", (e) => {
    const row = e.target.closest(".trace-row");
    if (!row || !list.contains(row)) return;
    if (e.target.closest(".trace-toggle")) view.toggle(row.dataset.spanId);
    else view.activate(row.dataset.spanId);
  });
  list.addEventListener("keydown", (e) => view.onKey(e));
  scroll.append(head, list);
  let frame = 0;
  scroll.addEventListener("scroll", () => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      if (view.els && view.els.scroll === scroll) drawWindow(view);
    });
  }, { passive: true });

  const body = el("div", "trace-body");
  body.hidden = true;
  body.append(summary, notice, scroll);
  container.append(status, body);
  return { container, status, statusText, retry, summary, notice, scroll, list, axisEnd, body, free: [] };
}

/** Puts the rows in view (and the selected one) in the DOM, re-binding row elements as needed. */
export function drawWindow(view) {
  const els = view.els;
  if (!els) return;
  const { list, scroll } = els;
  const rows = view.rows;
  const height = `${rows.length * ROW_PX}px`;
  if (list.style.height !== height) list.style.height = height;
  const top = scroll.scrollTop - list.offsetTop;
  // A box not laid out yet (hidden): draw a screenful anyway.
  const viewHeight = scroll.clientHeight || 40 * ROW_PX;
  const first = Math.max(0, Math.floor(top / ROW_PX) - TRACE.overscan);
  const last = Math.min(rows.length - 1, Math.ceil((top + viewHeight) / ROW_PX) + TRACE.overscan);
  const wanted = new Map();
  for (let i = first; i <= last; i += 1) wanted.set(rows[i].id, i);
  const selectedAt = view.rowIndex.get(view.selected);
  if (selectedAt !== undefined) wanted.set(view.selected, selectedAt);

  const free = els.free;
  for (const [id, row] of view.pool) {
    if (!wanted.has(id)) {
      view.pool.delete(id);
      free.push(row);
    }
  }
  for (const [id, i] of wanted) {
    let row = view.pool.get(id);
    if (!row) {
      row = free.pop() || makeRow();
      view.pool.set(id, row);
      row._node = null;
    }
    bindRow(view, row, rows[i], i);
    if (row.parentNode !== list) list.appendChild(row);
  }
  // Rows not needed now leave the DOM (a few are kept for the next scroll).
  for (const row of free) if (row.parentNode) row.remove();
  if (free.length > 64) free.length = 64;
}

function makeRow() {
  const li = el("li", "trace-row");
  li.setAttribute("role", "treeitem");
  const label = el("div", "trace-label");
  const toggle = el("span", "trace-toggle");
  toggle.setAttribute("aria-hidden", "true");
  const kind = el("span", "trace-kind");
  const name = el("span", "trace-name");
  const sub = el("span", "trace-sub");
  const error = el("span", "trace-error");
  const mark = el("span", "trace-detail-mark", "●");
  mark.title = "has details: messages, tool input and output or exceptions";
  label.append(toggle, kind, name, sub, error, mark);
  const figs = el("span", "trace-figs");
  const track = el("div", "trace-track");
  const bar = el("span", "trace-bar");
  track.appendChild(bar);
  const dur = el("span", "trace-dur");
  li.append(label, figs, track, dur);
  li._parts = { label, toggle, kind, name, sub, error, mark, figs, bar, dur };
  li._node = null;
  return li;
}

/** Fills a row for a span (its text only when the span or its state changed) and places it. */
function bindRow(view, row, node, index) {
  const top = `${index * ROW_PX}px`;
  if (row.style.top !== top) row.style.top = top;
  const selected = node.id === view.selected;
  const hasKids = node.kids.length > 0;
  const expanded = hasKids && !view.collapsed.has(node.id);
  const hit = view.hitSet.has(node.id);
  const currentHit = hit && view.hits[view.hit] === node.id;
  const current = Boolean(view.spanId) && node.id === view.spanId && view.embedded;
  const key = `${selected}|${expanded}|${hit}|${currentHit}|${current}`;
  if (row._node === node && row._key === key) return;
  const fresh = row._node !== node;
  row._node = node;
  row._key = key;
  const p = row._parts;
  const rec = node.rec;
  row.className = `trace-row kind-${node.kind}${node.error ? " is-error" : ""}${node.running ? " is-running" : ""}`
    + `${current ? " is-event" : ""}${hit ? " is-hit" : ""}${currentHit ? " is-hit-current" : ""}`;
  row.tabIndex = selected ? 0 : -1;
  row.setAttribute("aria-selected", String(selected));
  if (hasKids) row.setAttribute("aria-expanded", String(expanded));
  else row.removeAttribute("aria-expanded");
  p.toggle.textContent = hasKids ? (expanded ? "▾" : "▸") : "";
  p.toggle.title = hasKids ? `${expanded ? "Collapse" : "Expand"} (${fmtInt(node.size - 1)} spans below)` : "";
  if (current) row.setAttribute("aria-current", "true");
  else row.removeAttribute("aria-current");
  if (!fresh) return;

  row.dataset.spanId = node.id;
  row.dataset.depth = String(node.depth);
  row.dataset.kind = node.kind;
  row.dataset.status = ["ok", "error"].includes(rec.status) ? rec.status : "unset";
  row.dataset.running = String(node.running);
  const duration = num(rec.duration_ms);
  if (!node.running && duration !== null) row.dataset.durationMs = String(duration);
  else delete row.dataset.durationMs;
  row.setAttribute("aria-level", String(node.depth + 1));
  const siblings = node.parent ? node.parent.kids : view.tree.roots;
  row.setAttribute("aria-setsize", String(siblings.length));
  row.setAttribute("aria-posinset", String(node.pos));

  p.label.style.paddingLeft = `${Math.min(node.depth, TRACE.maxIndent) * 0.9}rem`;
  p.kind.textContent = node.kind;
  p.name.textContent = node.label;
  const model = node.kind === "model" ? txt(spanModel(rec), 80) : "";
  // A model call's model follows its name, unless the name says it already ("chat gpt-4o").
  const sub = model && !node.label.includes(model) ? model : node.sub;
  p.sub.textContent = sub;
  p.sub.hidden = !sub;
  const figures = node.kind === "model" ? modelFigures(rec) : "";
  p.figs.textContent = figures;
  const message = node.error ? txt(rec.status_message || "failed", 300) : "";
  p.error.textContent = message;
  p.error.hidden = !message;
  p.mark.hidden = rec.has_detail !== true;
  const title = [node.sub || node.label];
  if (model) title.push(`model: ${model}`);
  if (figures) title.push(figures);
  if (rec.service_name) title.push(`service: ${txt(rec.service_name, 80)}`);
  if (node.error) title.push(`error: ${message}`);
  row.title = title.join("\n");
  row._label = `${node.kind} ${node.label}${model ? ` ${model}` : ""}${figures ? `, ${figures}` : ""}`;
  placeBar(view, row, node);
}

/** A row's bar and duration on the current time axis (and its accessible name). */
function placeBar(view, row, node) {
  const axis = view.axis;
  if (!axis) return;
  const { bar, dur } = row._parts;
  const rec = node.rec;
  const start = node.start ?? axis.t0;
  let end = node.running ? axis.now : node.end;
  const duration = num(rec.duration_ms);
  if (end === null) end = duration !== null ? start + duration * 1e6 : start;
  const left = Math.min(100, Math.max(0, ((start - axis.t0) / axis.extent) * 100));
  const width = Math.min(100 - left, Math.max(0, ((end - start) / axis.extent) * 100));
  bar.style.left = `${left.toFixed(3)}%`;
  bar.style.width = `${width.toFixed(3)}%`;
  const ms = node.running ? (axis.now - start) / 1e6 : (duration ?? (end - start) / 1e6);
  const text = node.running ? `running ${fmtSpanMs(ms)}` : fmtSpanMs(ms);
  if (dur.textContent !== text) dur.textContent = text;
  // The label does not tick (a focused row would be re-read): "running" without the time.
  const label = `${row._label}, level ${node.depth + 1}, ${node.running ? "running" : text}`
    + `${node.error ? `, error: ${row._parts.error.textContent}` : ""}`;
  if (row.getAttribute("aria-label") !== label) row.setAttribute("aria-label", label);
}

/** The time axis moved ("now" for running spans, or new data): every drawn row's bar follows. */
export function tickBars(view, dataChanged) {
  const els = view.els;
  if (!els || !view.tree || !view.tree.order.length) {
    view.axis = null;
    return;
  }
  view.axis = timeAxis(view.tree, Date.now() * 1e6);
  els.axisEnd.textContent = fmtSpanMs(view.axis.extent / 1e6);
  if (dataChanged) return; // drawWindow binds (and places) the rows next
  for (const row of view.pool.values()) if (row._node) placeBar(view, row, row._node);
}

/** Scrolls the box so that row `index` is in view (in its middle when `center`). */
export function scrollRowIntoView(view, index, center) {
  const els = view.els;
  if (!els || index === undefined) return;
  const { scroll, list } = els;
  const height = `${view.rows.length * ROW_PX}px`;
  if (list.style.height !== height) list.style.height = height;
  const head = list.offsetTop; // the sticky head covers the top of the box
  const rowTop = head + index * ROW_PX;
  const viewTop = scroll.scrollTop + head;
  const viewBottom = scroll.scrollTop + scroll.clientHeight;
  if (center && (rowTop < viewTop || rowTop + ROW_PX > viewBottom)) {
    scroll.scrollTop = Math.max(0, rowTop - head - (scroll.clientHeight - head) / 2);
  } else if (rowTop < viewTop) {
    scroll.scrollTop = rowTop - head;
  } else if (rowTop + ROW_PX > viewBottom) {
    scroll.scrollTop = rowTop + ROW_PX - scroll.clientHeight;
  }
}
