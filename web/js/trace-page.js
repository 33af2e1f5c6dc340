// The trace page (#trace=<id>[&span=<span_id>]): a header with the trace's root, service, status,
// duration, tokens and cost (the answer's `summary`, else figured from the spans), a toolbar (search
// inside the trace with next/previous, expand all, collapse all), then the waterfall (trace-view.js)
// beside the selected span's details (span-detail.js, in #trace-span-pane). Selecting a span names it
// in the URL (&span=, replacing the history entry: Back still leaves the page).

import { $, el, fmtInt, isObject, num, txt } from "./util.js";
import { currentPage, showPage } from "./pages.js";
import { TraceView } from "./trace-view.js";
import { fmtSpanMs } from "./trace-waterfall.js";
import { traceFigures } from "./trace-model.js";
import { fmtCost } from "./runs.js";
import { renderSpanDetail, stopSpanDetail } from "./span-detail.js";
import { routeHash } from "./router.js";

const SEARCH_DELAY_MS = 200; // typing: search once the keys pause
const DETAIL_DELAY_MS = 120; // arrowing through rows: fetch the details of the row it stops on

const page = {
  traceId: "",
  view: null,
  els: null,
  searchTimer: 0,
  detailTimer: 0,
  detailSpan: "",
};

// "/" searches the trace on this page (on the live page it focuses the stream's filter: app.js).
document.addEventListener("keydown", (e) => {
  if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey || currentPage() !== "trace" || !page.els) return;
  if (e.target.closest && e.target.closest("input, select, textarea")) return;
  e.preventDefault();
  page.els.search.focus();
});

/** Opens the trace page on a trace, with `spanId` (or the root) selected. */
export function openTracePage(traceId, spanId = "") {
  showPage("trace", closeTracePage);
  const id = typeof traceId === "string" ? traceId.toLowerCase() : "";
  const span = typeof spanId === "string" ? spanId.toLowerCase() : "";
  if (page.view && page.traceId === id && page.view.traceId === id) {
    if (span && span !== page.view.selected) page.view.focusSpan(span);
    return;
  }
  closeTracePage();
  page.traceId = id;
  page.els = skeleton($("trace-page-body"), id);
  page.view = new TraceView(page.els.waterfall, {
    onSelect: onSelect,
    onData: drawHeader,
    onSearch: drawSearchCount,
  });
  page.view.open(id, span);
  // The toolbar and the details come with the first spans (a bad id or an unknown trace: a message).
  page.els.toolbar.hidden = true;
  page.els.pane.hidden = true;
  page.els.graph.hidden = !page.view.traceId;
}

/** Stops the page's fetches and timers (called when another page is shown). */
export function closeTracePage() {
  if (page.view) page.view.stop();
  page.view = null;
  clearTimeout(page.searchTimer);
  clearTimeout(page.detailTimer);
  page.searchTimer = 0;
  page.detailTimer = 0;
  page.detailSpan = "";
  page.traceId = "";
  page.els = null;
  stopSpanDetail();
  $("trace-page-body").replaceChildren();
}

function button(id, text, title, onClick) {
  const b = el("button", "button trace-page-button", text);
  b.type = "button";
  b.id = id;
  if (title) b.title = title;
  b.addEventListener("click", onClick);
  return b;
}

function skeleton(body, traceId) {
  body.replaceChildren();
  const header = el("header", "trace-page-header");
  const titleRow = el("div", "trace-page-title-row");
  const root = el("h3", "trace-page-root", "Trace");
  root.id = "trace-page-root";
  const idText = el("code", "trace-page-id", traceId);
  const graph = el("a", "link-button trace-page-graph", "Graph of this trace");
  graph.id = "trace-page-graph";
  graph.href = `#${routeHash({ graph: traceId })}`;
  titleRow.append(root, idText, graph);
  const facts = el("dl", "trace-page-facts");
  facts.id = "trace-page-facts";
  header.append(titleRow, facts);

  const toolbar = el("div", "trace-page-toolbar");
  toolbar.setAttribute("role", "search");
  const search = el("input", "trace-page-search");
  search.id = "trace-search";
  search.type = "search";
  search.placeholder = "Search spans: name, model, attribute value…";
  search.setAttribute("aria-label", "Search the spans of this trace");
  search.autocomplete = "off";
  search.spellcheck = false;
  search.addEventListener("input", () => {
    clearTimeout(page.searchTimer);
    page.searchTimer = setTimeout(runSearch, SEARCH_DELAY_MS);
  });
  search.addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault();
    if (page.searchTimer || !page.view || page.view.query !== search.value.trim()) runSearch();
    else page.view.stepHit(e.shiftKey ? -1 : 1);
  });
  const prev = button("trace-search-prev", "↑ Prev", "Previous match (Shift+Enter)", () => step(-1));
  const next = button("trace-search-next", "↓ Next", "Next match (Enter)", () => step(1));
  const count = el("span", "trace-page-count");
  count.id = "trace-search-count";
  count.setAttribute("aria-live", "polite");
  const expand = button("trace-expand-all", "Expand all", "Unfold every span", () => page.view && page.view.expandAll());
  const collapse = button("trace-collapse-all", "Collapse all", "Fold every span under the roots",
    () => page.view && page.view.collapseAll());
  toolbar.append(search, prev, next, count, el("span", "trace-page-gap"), expand, collapse);

  const split = el("div", "trace-page-split");
  const waterfall = el("div", "trace-page-waterfall");
  waterfall.id = "trace-page-view";
  const pane = el("section", "trace-span-pane");
  pane.id = "trace-span-pane";
  pane.setAttribute("aria-label", "The selected span's details");
  split.append(waterfall, pane);
  body.append(header, toolbar, split);
  const els = { header, root, graph, facts, toolbar, search, prev, next, count, waterfall, pane };
  drawSearchCount(null, els);
  return els;
}

function runSearch() {
  clearTimeout(page.searchTimer);
  page.searchTimer = 0;
  if (page.view && page.els) page.view.search(page.els.search.value);
}

function step(dir) {
  if (!page.view || !page.els) return;
  if (page.searchTimer || page.view.query !== page.els.search.value.trim()) runSearch();
  else page.view.stepHit(dir);
}

function drawSearchCount(view, els = page.els) {
  if (!els) return;
  const count = view ? view.hits.length : 0;
  const query = view ? view.query : "";
  els.count.textContent = !query ? "" : count ? `${view.hit >= 0 ? fmtInt(view.hit + 1) : "–"} of ${fmtInt(count)}` : "No match";
  els.count.dataset.state = !query ? "none" : count ? "hits" : "none-found";
  els.prev.disabled = count === 0;
  els.next.disabled = count === 0;
}

/** The selection changed: name it in the URL (when the user chose it), show its details. */
function onSelect(spanId, byUser) {
  if (!page.view) return;
  const traceId = page.view.traceId;
  if (byUser) {
    const hash = `#${routeHash({ trace: traceId, span: spanId })}`;
    if (window.location.hash !== hash) history.replaceState(history.state, "", hash);
  }
  if (spanId === page.detailSpan) return;
  page.detailSpan = spanId;
  clearTimeout(page.detailTimer);
  const show = () => {
    page.detailTimer = 0;
    if (!page.els || !page.view || page.detailSpan !== spanId) return;
    page.els.pane.dataset.spanId = spanId; // the span whose details the pane shows (tests read it)
    renderSpanDetail(page.els.pane, traceId, spanId);
  };
  if (byUser) page.detailTimer = setTimeout(show, DETAIL_DELAY_MS);
  else show();
}

function fact(list, key, value, cls = "") {
  if (value === null || value === undefined || value === "") return;
  const item = el("div", `trace-page-fact${cls ? ` ${cls}` : ""}`);
  item.dataset.fact = key;
  item.append(el("dt", null, key), el("dd", null, value));
  list.append(item);
}

/** The header's figures: the server's summary of the whole trace, else what the spans say. */
function drawHeader(view) {
  const els = page.els;
  if (!els || view !== page.view || !view.tree) return;
  els.toolbar.hidden = false;
  els.pane.hidden = false;
  const tree = view.tree;
  const data = view.data || {};
  const summary = isObject(data.summary) ? data.summary : {};
  const rootNode = tree.nodes.get(summary.root_span_id) || tree.roots[0] || null;
  const rootRec = rootNode ? rootNode.rec : {};
  const figures = traceFigures(tree);
  const pick = (value, fallback) => (value === null || value === undefined ? fallback : value);

  // The root's row label (its agent, its tool) when its span is in; the server's root name until then.
  const rootName = txt(rootNode ? rootNode.label : (summary.root_name || ""), 160) || "Trace";
  els.root.textContent = rootName;
  els.root.title = txt(pick(summary.root_name, rootRec.name) || rootName, 300);

  let status = typeof summary.status === "string" ? summary.status : "";
  if (!status) status = data.running ? "running" : (rootRec.status === "error" || tree.errors ? "error" : (rootRec.status || "unset"));
  const duration = num(summary.duration_ms) ?? (rootNode && !rootNode.running ? num(rootRec.duration_ms) : null);
  const running = status === "running" || data.running === true;
  const spanCount = num(summary.span_count) ?? num(data.span_count) ?? tree.order.length;
  const errorCount = num(summary.error_count) ?? tree.errors;
  const input = num(summary.input_tokens) ?? figures.input;
  const output = num(summary.output_tokens) ?? figures.output;
  const cost = fmtCost(pick(summary.cost_usd, figures.cost));
  const models = num(summary.model_calls) ?? figures.models;
  const tools = num(summary.tool_calls) ?? figures.tools;

  const list = els.facts;
  list.replaceChildren();
  fact(list, "service", txt(pick(summary.service_name, rootRec.service_name) || "", 80));
  fact(list, "status", status, `is-${["ok", "error", "running"].includes(status) ? status : "unset"}`);
  fact(list, "duration", running ? `running ${view.axis ? fmtSpanMs(view.axis.extent / 1e6) : ""}`.trim()
    : (duration !== null ? fmtSpanMs(duration) : ""));
  fact(list, "spans", `${fmtInt(spanCount)}${errorCount ? ` (${fmtInt(errorCount)} failed)` : ""}`);
  if (models) fact(list, "model calls", fmtInt(models));
  if (tools) fact(list, "tool calls", fmtInt(tools));
  if ((input ?? 0) + (output ?? 0) > 0) {
    fact(list, "tokens", `${input === null ? "?" : fmtInt(input)} in / ${output === null ? "?" : fmtInt(output)} out`);
  }
  if (cost) fact(list, "cost", `${cost}${summary.cost_status === "partial" ? " (some models unpriced)" : ""}`);
  els.header.dataset.status = status;
}
