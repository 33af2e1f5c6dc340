// The trace view: the virtualized span waterfall of one trace (GET api/traces/{trace_id}), used
// twice: whole on the trace page (trace-page.js), and compact in the aside (the event and run views
// call renderTraceView), where a click on a row opens the trace page at that span.
//
// Pages: the server answers a trace in pages of spans (?offset=&limit=); a fetch follows
// next_offset to the last page (or TRACE.maxSpans spans, the server's per-trace limit). The first
// load draws after the first page (the earliest spans: a prefix of the tree), then again with all.
//
// Live updates: while a view shows a trace it refetches it (1) every TRACE.pollMs (longer for a
// trace whose fetch is slow) while any span is still running, and (2) as soon as an event of the
// same trace arrives over the WebSocket (messages.js calls noteTraceActivity). Fetches are at least
// TRACE.minGapMs apart and never overlap; a request made during a fetch runs after it. A hidden tab
// fetches nothing until it is shown again. Stopping a view aborts its fetch and stops its timers.
//
// This module holds the view's state, skeleton, fetches, selection, collapsed subtrees, keyboard and
// search; trace-model.js builds the tree and trace-waterfall.js draws the rows in view.
// Over 400 lines because the fetch loop, the selection and the tree keyboard share one state.

import { el, fmtInt, intFormat, isObject, num } from "./util.js";
import { buildTrace, parentIds, searchTrace, visibleRows } from "./trace-model.js";
import { drawWindow, makeSkeleton, scrollRowIntoView, tickBars, ROW_PX } from "./trace-waterfall.js";
import { openRoute } from "./router.js";

export const TRACE = Object.freeze({
  minGapMs: 500, // never two fetches closer than this
  pollMs: 1000, // refetch period while spans are running (at least twice a slow fetch's time)
  tickMs: 250, // running bars and timers
  maxIndent: 14, // indentation stops growing here (data-depth keeps the real depth)
  pageLimit: 5000, // spans per page asked (the server's most)
  firstPageLimit: 1000, // a first load's first page: small, so that the first rows come fast
  maxSpans: 10000, // pages stop here (the server keeps no more per trace)
  overscan: 8, // rows drawn above and below the visible ones
});

const TRACE_ID_RE = /^[0-9a-f]{32}$/;

/** A 32-hex, not all-zero trace id (any case). */
export function isTraceId(value) {
  return typeof value === "string" && TRACE_ID_RE.test(value.toLowerCase()) && /[1-9a-f]/i.test(value);
}

const active = new Set(); // views showing a trace, for noteTraceActivity and the tab's visibility

/** The view of the page or of the aside (at most one is open at a time): what messages.js asks. */
export const traceView = {
  get traceId() {
    for (const view of active) if (view.traceId) return view.traceId;
    return "";
  },
  wantOnVisible: false, // app.js reads it; this module resumes its views itself (below)
};

/** A WebSocket event of the trace on screen (or a reconnect): refetch soon. */
export function noteTraceActivity() {
  for (const view of active) view.schedule(0);
}

/** Every open view fetches its trace in `delayMs` (throttled as always). */
export function scheduleTraceFetch(delayMs) {
  for (const view of active) view.schedule(delayMs);
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) return;
  for (const view of active) {
    if (view.wantOnVisible) {
      view.wantOnVisible = false;
      view.schedule(0);
    }
  }
});

/**
 * One waterfall in `container`. Options: `embedded` (compact; a row click opens the trace page),
 * `onSelect(spanId, byUser)` (the selected span changed), `onData(view)` (a fetch was drawn),
 * `onSearch(view)` (the search hits or the current hit changed).
 */
export class TraceView {
  constructor(container, { embedded = false, onSelect = null, onData = null, onSearch = null } = {}) {
    this.container = container;
    this.embedded = embedded;
    this.onSelect = onSelect;
    this.onData = onData;
    this.onSearch = onSearch;
    this.traceId = "";
    this.spanId = ""; // the span asked for (the event's span in the aside, &span= on the page)
    this.selected = "";
    this.notified = ""; // the span onSelect was last told of
    this.partial = false; // this.data is the first pages of a first load
    this.gen = 0; // bumped on every open/stop: late answers of an older request are ignored
    this.data = null; // the last good answer (all pages)
    this.state = "none"; // none | loading | ok | missing | error
    this.tree = null; // buildTrace(data.spans)
    this.rows = []; // the nodes shown, in order
    this.rowIndex = new Map(); // span id -> index in rows
    this.collapsed = new Set(); // span ids whose subtree is folded
    this.inFlight = null;
    this.again = false;
    this.lastFetchAt = -Infinity;
    this.lastFetchMs = 0;
    this.timer = 0;
    this.timerDue = 0;
    this.tickTimer = 0;
    this.wantOnVisible = false;
    this.scrolledTo = false; // the asked-for span was scrolled into view once
    this.query = "";
    this.hits = [];
    this.hitSet = new Set();
    this.hit = -1;
    this.pool = new Map(); // span id -> its row element, for the rows in the DOM
    this.axis = null;
    this.els = null;
    this.firstRenderAt = 0; // performance.now() of the first drawn rows (benchmarks read it)
  }

  /** Shows a trace (a message when the id is missing or malformed), `spanId` selected. */
  open(traceId, spanId = "") {
    const id = typeof traceId === "string" ? traceId.toLowerCase() : "";
    const span = typeof spanId === "string" ? spanId.toLowerCase() : "";
    this.stop();
    const container = this.container;
    container.replaceChildren();
    container.classList.add("trace-view");
    container.classList.toggle("is-embedded", this.embedded);
    container.dataset.traceId = typeof traceId === "string" ? traceId : "";
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
    this.traceId = id;
    this.spanId = span;
    this.selected = span;
    this.els = makeSkeleton(this);
    active.add(this);
    this.setStatus("loading", "Loading the trace…");
    this.schedule(0);
  }

  /** Another span of the trace shown: select it (scrolled into view) and refresh. */
  focusSpan(spanId) {
    this.spanId = typeof spanId === "string" ? spanId.toLowerCase() : "";
    this.scrolledTo = false;
    if (this.spanId) {
      this.selected = this.spanId;
      this.reveal(this.spanId); // a span in a folded subtree is shown
    }
    this.render();
    this.schedule(0);
  }

  /** Stops fetching, polling and ticking; forgets the trace. */
  stop() {
    this.gen += 1;
    if (this.inFlight) this.inFlight.abort();
    this.inFlight = null;
    clearTimeout(this.timer);
    this.timer = 0;
    clearInterval(this.tickTimer);
    this.tickTimer = 0;
    active.delete(this);
    this.traceId = "";
    this.spanId = "";
    this.selected = "";
    this.notified = "";
    this.partial = false;
    this.data = null;
    this.tree = null;
    this.rows = [];
    this.rowIndex.clear();
    this.collapsed.clear();
    this.pool.clear();
    this.state = "none";
    this.again = false;
    this.wantOnVisible = false;
    this.lastFetchAt = -Infinity;
    this.scrolledTo = false;
    this.query = "";
    this.hits = [];
    this.hitSet.clear();
    this.hit = -1;
    this.els = null;
  }

  // ------------------------------------------------------------------------------ fetching

  /** Asks for a fetch in `delayMs` (or sooner if one is already due), never closer than minGapMs. */
  schedule(delayMs) {
    if (!this.traceId) return;
    const now = performance.now();
    const due = Math.max(now + Math.max(0, delayMs), this.lastFetchAt + TRACE.minGapMs);
    if (this.timer && this.timerDue <= due) return;
    clearTimeout(this.timer);
    this.timerDue = due;
    this.timer = setTimeout(() => this.fetchDue(), due - now);
  }

  fetchDue() {
    this.timer = 0;
    if (!this.traceId) return;
    if (document.hidden) {
      this.wantOnVisible = true;
      return;
    }
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.fetch();
  }

  async fetch() {
    const gen = this.gen;
    const controller = new AbortController();
    this.inFlight = controller;
    const started = performance.now();
    this.lastFetchAt = started;
    let outcome = null;
    // The first load draws its first page at once; later refreshes draw when every page is in.
    const onPage = this.data ? null : (partial) => {
      if (gen === this.gen) this.apply({ state: "ok", data: partial, partial: true });
    };
    try {
      outcome = await fetchTracePages(this.traceId, controller.signal, onPage);
    } catch {
      if (!controller.signal.aborted) outcome = { state: "error", error: "the server could not be reached" };
    }
    if (gen !== this.gen) return; // stopped, or another trace now
    this.inFlight = null;
    this.lastFetchMs = performance.now() - started;
    if (outcome) this.apply(outcome);
    if (this.again) {
      this.again = false;
      this.schedule(0);
    } else if (outcome && outcome.state === "ok" && this.data.running) {
      // Spans still running: poll (a failed fetch stops polling), slower when a fetch is slow.
      this.schedule(Math.max(TRACE.pollMs, 2 * this.lastFetchMs));
    }
  }

  apply(outcome) {
    if (outcome.state === "ok") {
      this.data = outcome.data;
      this.state = "ok";
      this.partial = outcome.partial === true;
      this.setStatus("ok", "");
      this.render();
    } else if (outcome.state === "missing") {
      this.data = null;
      this.state = "missing";
      this.setStatus("missing", "Trace not available (not kept or not received yet).");
      this.render();
    } else if (this.data) {
      this.setStatus("stale", `Could not update the trace: ${outcome.error}.`); // keep the waterfall
    } else {
      this.state = "error";
      this.setStatus("error", `Could not load the trace: ${outcome.error}.`);
      this.render();
    }
  }

  setStatus(state, text) {
    const els = this.els;
    if (!els) return;
    els.container.dataset.state = state;
    els.statusText.textContent = text;
    els.status.hidden = !text;
    els.retry.hidden = !(state === "error" || state === "missing" || state === "stale");
    els.retry.textContent = state === "missing" ? "Check again" : "Retry";
  }

  retry() {
    this.lastFetchAt = -Infinity; // an explicit retry is not throttled
    this.schedule(0);
  }

  // ------------------------------------------------------------------------------ drawing

  /** Rebuilds the tree and the rows from this.data, keeping the selection and the scroll position. */
  render() {
    const els = this.els;
    if (!els) return;
    const data = this.state === "ok" ? this.data : null;
    els.body.hidden = !data;
    if (!data) {
      this.tree = null;
      this.rows = [];
      this.rowIndex.clear();
      this.stopTicking();
      drawWindow(this);
      return;
    }
    const anchor = this.scrolledTo ? this.scrollAnchor() : null;
    this.tree = buildTrace(data.spans);
    this.layoutRows();
    if (this.query) this.refreshHits();
    const tree = this.tree;
    // The asked-for span once it is in; else the selection stays, or falls back to the first row.
    if (this.spanId && !this.scrolledTo && this.rowIndex.has(this.spanId)) this.selected = this.spanId;
    else if (!this.rowIndex.has(this.selected)) this.selected = this.rows[0] ? this.rows[0].id : "";
    const waiting = this.partial && this.spanId && this.selected !== this.spanId; // it may be in a later page
    if (this.selected && this.selected !== this.notified && !waiting) {
      this.notified = this.selected;
      if (this.onSelect) this.onSelect(this.selected, false);
    }

    const parts = [`${intFormat.format(tree.order.length)} span${tree.order.length === 1 ? "" : "s"}`];
    if (tree.running) parts.push(`${intFormat.format(tree.running)} running`);
    if (tree.errors) parts.push(`${intFormat.format(tree.errors)} error${tree.errors === 1 ? "" : "s"}`);
    els.summary.textContent = parts.join(" · ");
    els.summary.dataset.running = String(tree.running > 0);
    const dropped = num(data.dropped_spans);
    const total = num(data.span_count);
    if (this.partial) {
      els.notice.textContent = `Loading the spans: ${fmtInt(tree.order.length)}${total ? ` of ${fmtInt(total)}` : ""}…`;
    } else {
      els.notice.textContent = `This trace has more spans than the server keeps${dropped ? ` (${fmtInt(dropped)} dropped)` : ""}: `
        + "the waterfall is incomplete.";
    }
    els.notice.hidden = !(this.partial || data.truncated === true);
    els.notice.dataset.kind = this.partial ? "loading" : "truncated";

    if (anchor) this.restoreAnchor(anchor);
    tickBars(this, true);
    if (!this.scrolledTo && this.rowIndex.has(this.spanId)) {
      this.scrolledTo = true;
      scrollRowIntoView(this, this.rowIndex.get(this.spanId), true);
    } else if (!this.scrolledTo && !this.partial) {
      this.scrolledTo = true; // no span asked for, or one the trace does not have
    }
    drawWindow(this);
    if (!this.firstRenderAt && this.rows.length) this.firstRenderAt = performance.now();
    if (tree.running) this.startTicking();
    else this.stopTicking();
    if (this.onData) this.onData(this);
  }

  /** The rows shown now (the tree without the collapsed subtrees). */
  layoutRows() {
    this.rows = this.tree ? visibleRows(this.tree, this.collapsed) : [];
    this.rowIndex = new Map();
    this.rows.forEach((node, i) => this.rowIndex.set(node.id, i));
  }

  /** The first row in view and its offset from the top of the scroll box, to find it after a redraw. */
  scrollAnchor() {
    const scroll = this.els.scroll;
    if (!scroll.scrollTop || !this.rows.length) return null;
    const top = scroll.scrollTop - this.els.list.offsetTop;
    const i = Math.max(0, Math.min(this.rows.length - 1, Math.floor(top / ROW_PX)));
    return { id: this.rows[i].id, offset: top - i * ROW_PX };
  }

  restoreAnchor(anchor) {
    const i = this.rowIndex.get(anchor.id);
    if (i === undefined) return;
    this.els.list.style.height = `${this.rows.length * ROW_PX}px`; // so the new scrollTop can be reached
    this.els.scroll.scrollTop = this.els.list.offsetTop + i * ROW_PX + anchor.offset;
  }

  startTicking() {
    if (this.tickTimer) return;
    this.tickTimer = setInterval(() => {
      if (!document.hidden) tickBars(this, false);
    }, TRACE.tickMs);
  }

  stopTicking() {
    clearInterval(this.tickTimer);
    this.tickTimer = 0;
  }

  // ------------------------------------------------------------------------------ selection

  /** Selects a span that is shown (scrolled into view; focused when `focus`). */
  select(id, { focus = false, byUser = true, center = false } = {}) {
    const i = this.rowIndex.get(id);
    if (i === undefined) return;
    this.selected = id;
    const changed = id !== this.notified;
    this.notified = id;
    scrollRowIntoView(this, i, center);
    drawWindow(this);
    if (focus) {
      const row = this.pool.get(id);
      if (row) row.focus({ preventScroll: true });
    }
    if (changed && this.onSelect) this.onSelect(id, byUser);
  }

  /** A row was clicked (or Enter pressed on it): in the aside, open the trace page at the span. */
  activate(id) {
    if (this.embedded) {
      openRoute({ trace: this.traceId, span: id });
      return;
    }
    this.select(id, { focus: true });
  }

  /** Folds or unfolds a span's subtree (the selection moves up to it if it was inside). */
  toggle(id, expand = null) {
    const node = this.tree && this.tree.nodes.get(id);
    if (!node || !node.kids.length) return;
    const collapse = expand === null ? !this.collapsed.has(id) : !expand;
    if (collapse === this.collapsed.has(id)) return;
    if (collapse) this.collapsed.add(id);
    else this.collapsed.delete(id);
    this.relayout();
    if (!this.rowIndex.has(this.selected)) this.select(id, { byUser: true });
  }

  expandAll() {
    this.collapsed.clear();
    this.relayout();
  }

  collapseAll() {
    if (!this.tree) return;
    this.collapsed = parentIds(this.tree);
    this.relayout();
    if (!this.rowIndex.has(this.selected)) {
      let node = this.tree.nodes.get(this.selected);
      while (node && node.parent) node = node.parent;
      if (node) this.select(node.id, { byUser: true });
    }
  }

  /** The rows changed (a fold): redraw them, keeping the selected row where it was when it can. */
  relayout() {
    const anchor = this.scrollAnchor();
    this.layoutRows();
    if (anchor) this.restoreAnchor(anchor);
    drawWindow(this);
  }

  /** Unfolds the ancestors of a span so that it is shown. */
  reveal(id) {
    let node = this.tree && this.tree.nodes.get(id);
    if (!node) return false;
    let changed = false;
    for (node = node.parent; node; node = node.parent) {
      if (this.collapsed.delete(node.id)) changed = true;
    }
    if (changed) {
      this.layoutRows();
      drawWindow(this);
    }
    return true;
  }

  onKey(e) {
    const row = e.target.closest(".trace-row");
    if (!row || !this.tree) return;
    const id = row.dataset.spanId;
    const i = this.rowIndex.get(id);
    if (i === undefined) return;
    const node = this.rows[i];
    const page = Math.max(1, Math.floor(this.els.scroll.clientHeight / ROW_PX) - 1);
    let next = null;
    switch (e.key) {
      case "ArrowDown": next = this.rows[i + 1]; break;
      case "ArrowUp": next = this.rows[i - 1]; break;
      case "PageDown": next = this.rows[Math.min(this.rows.length - 1, i + page)]; break;
      case "PageUp": next = this.rows[Math.max(0, i - page)]; break;
      case "Home": next = this.rows[0]; break;
      case "End": next = this.rows[this.rows.length - 1]; break;
      case "ArrowRight":
        if (node.kids.length && this.collapsed.has(id)) this.toggle(id, true);
        else if (node.kids.length) next = this.rows[i + 1];
        break;
      case "ArrowLeft":
        if (node.kids.length && !this.collapsed.has(id)) this.toggle(id, false);
        else if (node.parent) next = node.parent;
        break;
      case "Enter":
      case " ":
        if (this.embedded) this.activate(id);
        else this.toggle(id);
        break;
      default:
        return;
    }
    e.preventDefault();
    if (next) this.select(next.id, { focus: true });
  }

  // ------------------------------------------------------------------------------ search

  /** Searches the trace (span names, ids, models, attribute values); goes to the first hit. */
  search(query) {
    this.query = typeof query === "string" ? query.trim() : "";
    this.hit = -1;
    this.refreshHits();
    if (this.hits.length) this.stepHit(1);
    else {
      drawWindow(this);
      if (this.onSearch) this.onSearch(this);
    }
  }

  refreshHits() {
    const current = this.hit >= 0 ? this.hits[this.hit] : "";
    this.hits = this.tree && this.query ? searchTrace(this.tree, this.query) : [];
    this.hitSet = new Set(this.hits);
    this.hit = current ? this.hits.indexOf(current) : -1;
    if (this.onSearch) this.onSearch(this);
  }

  /** The next (dir 1) or previous (-1) hit: unfolded, selected and scrolled into view. */
  stepHit(dir) {
    const count = this.hits.length;
    if (!count) return;
    if (this.hit < 0) {
      // From the selection: the first hit after it (or before it, going back).
      const at = this.tree.nodes.get(this.selected);
      const index = at ? at.index : -1;
      const order = (id) => this.tree.nodes.get(id).index;
      if (dir > 0) {
        const k = this.hits.findIndex((id) => order(id) >= index);
        this.hit = k < 0 ? 0 : k;
      } else {
        let k = -1;
        this.hits.forEach((id, j) => { if (order(id) <= index) k = j; });
        this.hit = k < 0 ? count - 1 : k;
      }
    } else {
      this.hit = (this.hit + dir + count) % count;
    }
    const id = this.hits[this.hit];
    this.reveal(id);
    this.select(id, { center: true });
    drawWindow(this);
    if (this.onSearch) this.onSearch(this);
  }
}

/** Every page of a trace (at most TRACE.maxSpans spans): the outcome for TraceView.apply. `onPage`
 * (when given) gets the spans so far after each page but the last. Throws when the server cannot be
 * reached (or the fetch is aborted). */
async function fetchTracePages(traceId, signal, onPage) {
  const spans = new Map(); // a span repeated by a page of a trace that changed: the later copy wins
  let offset = 0;
  let first = null;
  for (;;) {
    const limit = onPage && !first ? TRACE.firstPageLimit : TRACE.pageLimit;
    const response = await fetch(`api/traces/${traceId}?offset=${offset}&limit=${limit}`, {
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
    if (!first) first = body;
    for (const span of body.spans) if (isObject(span) && typeof span.span_id === "string") spans.set(span.span_id, span);
    const next = body.next_offset;
    const data = () => ({ ...body, summary: isObject(body.summary) ? body.summary : first.summary,
      spans: Array.from(spans.values()).slice(0, TRACE.maxSpans) });
    // A next_offset that does not move forward ends the pages too: never loop on a bad answer.
    if (!Number.isInteger(next) || next <= offset || spans.size >= TRACE.maxSpans) {
      return { state: "ok", data: data() };
    }
    if (onPage) onPage(data());
    offset = next;
  }
}

// ------------------------------------------------------------------------------ the aside's view

let embeddedView = null;

/** The compact waterfall in the aside (event and run views): `spanId` highlighted; a click on a row
 * opens the trace page at that span. The same trace again keeps the waterfall and moves the highlight. */
export function renderTraceView(container, traceId, spanId) {
  const id = typeof traceId === "string" ? traceId.toLowerCase() : "";
  const view = embeddedView;
  if (view && id && view.traceId === id && view.container === container && view.els
      && container.contains(view.els.scroll)) {
    view.focusSpan(spanId);
    return;
  }
  if (view) view.stop();
  embeddedView = new TraceView(container, { embedded: true });
  embeddedView.open(traceId, spanId);
}

/** Stops the aside's waterfall (fetches, polling, ticking). */
export function stopTraceView() {
  if (embeddedView) embeddedView.stop();
  embeddedView = null;
}
