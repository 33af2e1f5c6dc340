// The trace view's drawing: the spans as a tree, one row per span with its bar on the trace's time
// axis (running bars tick), keyboard selection of a row, and the selected span's details.

import { el, fmtDurationMs, fmtInt, intFormat, isObject, kvRow, num, parseTime, txt } from "./util.js";
import { TRACE, traceView } from "./trace-view.js";

const SPAN_KINDS = ["agent", "model", "tool", "retrieval", "chain", "synthesis", "registration", "other"];

/** Milliseconds with a precision that suits spans: "0.42 ms", "4.2 ms", "850 ms", "1.2 s". */
function fmtSpanMs(value) {
  const ms = num(value);
  if (ms === null || ms < 0) return "?";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  return fmtDurationMs(ms);
}

/** A span time as epoch nanoseconds (a double: sub-microsecond precision is not needed here). */
function spanNs(nanos, iso) {
  const n = num(nanos);
  if (n !== null && n > 0) return n;
  const t = parseTime(iso);
  return Number.isNaN(t) ? null : t * 1e6;
}

function spanLabel(s) {
  const name = txt(s.name || "(unnamed span)", 160);
  if (s._kind === "agent" || s._kind === "registration") return s.agent_name ? txt(s.agent_name, 160) : name;
  if (s._kind === "tool") return s.tool_name ? txt(s.tool_name, 160) : name;
  return name;
}

/** The rows in tree order: parents before children, siblings by start; orphans are roots. */
function traceTree(rawSpans) {
  const byId = new Map();
  for (const raw of rawSpans) {
    if (!isObject(raw) || typeof raw.span_id !== "string" || !raw.span_id || byId.has(raw.span_id)) continue;
    const s = { ...raw };
    s._kind = SPAN_KINDS.includes(s.kind) ? s.kind : "other";
    s._start = spanNs(s.start_time_unix_nano, s.start_time);
    s._running = s.end_time === null || s.end_time === undefined;
    s._end = s._running ? null : spanNs(s.end_time_unix_nano, s.end_time);
    byId.set(s.span_id, s);
  }
  const byStart = (a, b) => (a._start ?? 0) - (b._start ?? 0) || (a.span_id < b.span_id ? -1 : 1);
  const children = new Map();
  const roots = [];
  for (const s of byId.values()) {
    const parent = s.parent_span_id;
    if (typeof parent === "string" && parent !== s.span_id && byId.has(parent)) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(s);
    } else {
      roots.push(s);
    }
  }
  for (const list of children.values()) list.sort(byStart);
  roots.sort(byStart);
  const out = [];
  const visited = new Set();
  const walk = (root) => {
    const stack = [[root, 0]];
    while (stack.length) {
      const [s, depth] = stack.pop();
      if (visited.has(s.span_id)) continue;
      visited.add(s.span_id);
      s._depth = depth;
      out.push(s);
      const kids = children.get(s.span_id) || [];
      for (let i = kids.length - 1; i >= 0; i -= 1) stack.push([kids[i], depth + 1]);
    }
  };
  for (const root of roots) walk(root);
  // Spans whose parent links form a loop reach no root: show them as roots too.
  for (const s of Array.from(byId.values()).sort(byStart)) if (!visited.has(s.span_id)) walk(s);
  return out;
}

/** Draws (or updates) the rows from traceView.data, keeping row elements and focus. */
export function renderTraceData() {
  const els = traceView.els;
  if (!els) return;
  const data = traceView.state === "ok" ? traceView.data : null;
  els.body.hidden = !data;
  if (!data) {
    traceView.spans = [];
    els.list.replaceChildren();
    traceView.rows.clear();
    stopTraceTicking();
    return;
  }
  const spans = traceTree(data.spans);
  traceView.spans = spans;
  const keep = new Set(spans.map((s) => s.span_id));
  for (const [id, row] of traceView.rows) {
    if (!keep.has(id)) {
      row.remove();
      traceView.rows.delete(id);
    }
  }
  let cursor = els.list.firstElementChild;
  for (const s of spans) {
    let row = traceView.rows.get(s.span_id);
    if (!row) {
      row = makeTraceRow();
      traceView.rows.set(s.span_id, row);
    }
    updateTraceRow(row, s);
    if (row !== cursor) els.list.insertBefore(row, cursor);
    else cursor = cursor.nextElementSibling;
  }

  // Roving tabindex: one row in the tab order, the selected one (or the first).
  if (!traceView.rows.has(traceView.selected)) traceView.selected = traceView.rows.has(traceView.spanId)
    ? traceView.spanId : (spans[0] ? spans[0].span_id : "");
  for (const [id, row] of traceView.rows) {
    const on = id === traceView.selected;
    row.tabIndex = on ? 0 : -1;
    row.setAttribute("aria-selected", String(on));
  }

  const running = spans.filter((s) => s._running).length;
  const errors = spans.filter((s) => s.status === "error").length;
  const parts = [`${intFormat.format(spans.length)} span${spans.length === 1 ? "" : "s"}`];
  if (running) parts.push(`${intFormat.format(running)} running`);
  if (errors) parts.push(`${intFormat.format(errors)} error${errors === 1 ? "" : "s"}`);
  els.summary.textContent = parts.join(" · ");
  els.summary.dataset.running = String(running > 0);

  els.notice.hidden = data.truncated !== true;
  const dropped = num(data.dropped_spans);
  els.notice.textContent = `This trace has more spans than the server keeps${dropped ? ` (${fmtInt(dropped)} dropped)` : ""}: `
    + "the waterfall is incomplete.";

  layoutTraceBars();
  renderSpanDetail();
  if (running) startTraceTicking();
  else stopTraceTicking();

  if (!traceView.scrolledTo) {
    const row = traceView.rows.get(traceView.spanId);
    if (row) {
      traceView.scrolledTo = true;
      const box = els.scroll;
      const top = row.offsetTop - box.clientHeight / 2;
      if (row.offsetTop + row.offsetHeight > box.clientHeight) box.scrollTop = Math.max(0, top);
    }
  }
}

function makeTraceRow() {
  const li = el("li", "trace-row");
  li.setAttribute("role", "treeitem");
  const label = el("div", "trace-label");
  const kind = el("span", "trace-kind");
  const name = el("span", "trace-name");
  const sub = el("span", "trace-sub");
  label.append(kind, name, sub);
  const track = el("div", "trace-track");
  const bar = el("span", "trace-bar");
  track.appendChild(bar);
  const dur = el("span", "trace-dur");
  const msg = el("div", "trace-error");
  li.append(label, track, dur, msg);
  li._parts = { label, kind, name, sub, bar, dur, msg };
  return li;
}

function updateTraceRow(row, s) {
  const p = row._parts;
  row._span = s;
  const error = s.status === "error";
  const current = s.span_id === traceView.spanId;
  row.className = `trace-row kind-${s._kind}${error ? " is-error" : ""}${s._running ? " is-running" : ""}`
    + `${current ? " is-event" : ""}`;
  row.dataset.spanId = s.span_id;
  row.dataset.depth = String(s._depth);
  row.dataset.kind = s._kind;
  row.dataset.status = ["ok", "error"].includes(s.status) ? s.status : "unset";
  row.dataset.running = String(s._running);
  const duration = num(s.duration_ms);
  if (!s._running && duration !== null) row.dataset.durationMs = String(duration);
  else delete row.dataset.durationMs;
  row.setAttribute("aria-level", String(s._depth + 1));
  if (current) row.setAttribute("aria-current", "true");
  else row.removeAttribute("aria-current");

  p.label.style.paddingLeft = `${Math.min(s._depth, TRACE.maxIndent) * 0.9}rem`;
  p.kind.textContent = s._kind;
  const label = spanLabel(s);
  p.name.textContent = label;
  const name = txt(s.name || "", 160);
  // The span's own name when it says more than the label (not just "invoke_agent <label>").
  const extra = name && name !== label && !name.endsWith(` ${label}`) ? name : "";
  p.sub.textContent = extra;
  p.sub.hidden = !extra;

  const message = error ? txt(s.status_message || "failed", 300) : "";
  p.msg.textContent = message;
  p.msg.hidden = !message;
  const title = [name || label];
  if (s.service_name) title.push(`service: ${txt(s.service_name, 80)}`);
  if (error) title.push(`error: ${message}`);
  row.title = title.join("\n");
}

/** Positions every bar on the trace's time axis (its extent grows with running spans) and ticks timers. */
function layoutTraceBars() {
  const els = traceView.els;
  const spans = traceView.spans;
  if (!els || !spans || !spans.length) return;
  let t0 = Infinity;
  let known = -Infinity;
  for (const s of spans) {
    if (s._start !== null) {
      t0 = Math.min(t0, s._start);
      known = Math.max(known, s._start);
    }
    if (s._end !== null) known = Math.max(known, s._end);
  }
  if (!Number.isFinite(t0)) t0 = 0;
  // "Now" on the trace's clock: the browser's, but never before the newest time the trace reports.
  const now = Math.max(Date.now() * 1e6, known);
  let t1 = t0;
  for (const s of spans) t1 = Math.max(t1, s._running ? now : (s._end ?? s._start ?? t0));
  const extent = Math.max(t1 - t0, 1);
  els.axisEnd.textContent = fmtSpanMs(extent / 1e6);
  for (const s of spans) {
    const row = traceView.rows.get(s.span_id);
    if (!row) continue;
    const { bar, dur } = row._parts;
    const start = s._start ?? t0;
    let end = s._running ? now : s._end;
    const duration = num(s.duration_ms);
    if (end === null) end = duration !== null ? start + duration * 1e6 : start;
    const left = Math.min(100, Math.max(0, ((start - t0) / extent) * 100));
    const width = Math.min(100 - left, Math.max(0, ((end - start) / extent) * 100));
    bar.style.left = `${left.toFixed(3)}%`;
    bar.style.width = `${width.toFixed(3)}%`;
    const ms = s._running ? (now - start) / 1e6 : (duration ?? (end - start) / 1e6);
    const text = s._running ? `running ${fmtSpanMs(ms)}` : fmtSpanMs(ms);
    dur.textContent = text;
    // The label does not tick (a focused row would be re-read): "running" without the time.
    const label = `${s._kind} ${row._parts.name.textContent}, level ${s._depth + 1}, `
      + `${s._running ? "running" : text}${s.status === "error" ? `, error: ${row._parts.msg.textContent}` : ""}`;
    if (row.getAttribute("aria-label") !== label) row.setAttribute("aria-label", label);
  }
}

function startTraceTicking() {
  if (traceView.tickTimer) return;
  traceView.tickTimer = setInterval(() => {
    if (!document.hidden) layoutTraceBars();
  }, TRACE.tickMs);
}

function stopTraceTicking() {
  clearInterval(traceView.tickTimer);
  traceView.tickTimer = 0;
}

export function selectTraceRow(row, focus) {
  const id = row.dataset.spanId;
  if (!id) return;
  traceView.selected = id;
  for (const [key, r] of traceView.rows) {
    const on = key === id;
    r.tabIndex = on ? 0 : -1;
    r.setAttribute("aria-selected", String(on));
  }
  renderSpanDetail();
  if (focus) row.focus({ preventScroll: false });
}

export function onTraceKey(e) {
  const row = e.target.closest(".trace-row");
  if (!row) return;
  const rows = Array.from(traceView.els.list.children);
  const i = rows.indexOf(row);
  let next = null;
  if (e.key === "ArrowDown") next = rows[i + 1];
  else if (e.key === "ArrowUp") next = rows[i - 1];
  else if (e.key === "Home") next = rows[0];
  else if (e.key === "End") next = rows[rows.length - 1];
  else if (e.key === "Enter" || e.key === " ") next = row;
  else return;
  e.preventDefault();
  if (next) selectTraceRow(next, true);
}

const STACK_FOLD_LINES = 20; // a longer stack trace shows its first lines and a "Show more" button

/** The span's exception events (type, message, stack trace) into `box`, as text only. */
function renderExceptions(box, s) {
  box.replaceChildren();
  const events = Array.isArray(s.events) ? s.events : [];
  events.forEach((event, index) => {
    if (!isObject(event) || event.name !== "exception") return;
    const attrs = isObject(event.attributes) ? event.attributes : {};
    const text = (key) => (typeof attrs[key] === "string" ? attrs[key] : "");
    const section = el("section", "trace-exception");
    const head = el("p", "trace-exception-head");
    head.append(el("strong", "trace-exception-type", text("exception.type") || "exception"));
    const message = text("exception.message");
    if (message) head.append(": ", el("span", "trace-exception-message", message));
    section.append(head);
    const stack = text("exception.stacktrace");
    if (stack) {
      const lines = stack.replace(/\n$/, "").split("\n");
      const key = `${s.span_id}/${index}`;
      const pre = el("pre", "trace-exception-stack");
      section.append(pre);
      // Folded or whole, as the user left it: the details are redrawn on every refresh.
      const show = () => {
        const whole = lines.length <= STACK_FOLD_LINES || traceView.unfolded.has(key);
        pre.textContent = whole ? lines.join("\n") : lines.slice(0, STACK_FOLD_LINES).join("\n");
        pre.dataset.folded = String(!whole);
      };
      show();
      if (lines.length > STACK_FOLD_LINES) {
        const more = el("button", "link-button trace-exception-more");
        more.type = "button";
        const label = () => {
          more.textContent = traceView.unfolded.has(key)
            ? "Show less" : `Show more (${fmtInt(lines.length - STACK_FOLD_LINES)} more lines)`;
          more.setAttribute("aria-expanded", String(traceView.unfolded.has(key)));
        };
        more.addEventListener("click", () => {
          if (traceView.unfolded.has(key)) traceView.unfolded.delete(key);
          else traceView.unfolded.add(key);
          show();
          label();
        });
        label();
        section.append(more);
      }
    }
    box.append(section);
  });
  const dropped = num(s.dropped_events);
  if (dropped) box.append(el("p", "trace-exception-dropped", `${fmtInt(dropped)} more span events not kept.`));
  box.hidden = !box.firstChild;
}

/** The selected span's exceptions, fields and attributes, below the waterfall. */
function renderSpanDetail() {
  const els = traceView.els;
  const row = traceView.rows.get(traceView.selected);
  if (!els || !row) {
    if (els) els.detail.hidden = true;
    return;
  }
  const s = row._span;
  els.detail.hidden = false;
  els.detailTitle.textContent = `${s._kind}: ${spanLabel(s)}`;
  renderExceptions(els.detailExceptions, s);
  const list = els.detailList;
  list.replaceChildren();
  kvRow(list, "name", s.name ?? null);
  kvRow(list, "span_id", s.span_id, { mono: true });
  kvRow(list, "parent_span_id", s.parent_span_id ?? null, { mono: true });
  if (s.service_name) kvRow(list, "service", s.service_name);
  kvRow(list, "start", s.start_time ?? null, { mono: true });
  kvRow(list, "end", s._running ? "running" : (s.end_time ?? null), { mono: true });
  if (!s._running) kvRow(list, "duration", fmtSpanMs(s.duration_ms));
  kvRow(list, "status", typeof s.status === "string" ? s.status : null);
  if (s.status_message) kvRow(list, "status_message", s.status_message);
  if (isObject(s.attributes)) {
    for (const key of Object.keys(s.attributes).slice(0, 50)) kvRow(list, key, s.attributes[key]);
  }
}
