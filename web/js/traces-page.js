// The traces page (#traces=1): recent traces from the server's history, one row per root run
// (GET api/traces), newest first: root, service, agent, duration, status, tokens, cost, started,
// conversation. Filters (service, agent, status, conversation id) ask the server again; "Load older"
// follows next_before_seq, so the list reaches past what the live page holds; the "Go to trace"
// box opens a trace by id. A row opens its trace page, its conversation cell the conversation
// (#conversation=<id>, conversation-view.js, shown on the same page).
//
// While the page is shown and the tab visible, the first page is fetched again every
// TRACES.refreshMs and merged in front of the older pages already loaded (they stay); while the
// pointer is over the rows, the new rows wait until it leaves, so a row does not move under a click.

import { $, el, txt } from "./util.js";
import { showPage } from "./pages.js";
import { openRoute } from "./router.js";
import {
  TRACES, cell, clickableRow, costCellText, durationText, errorText, getJson, isTraceId, makePoller,
  routeLink, runTraceRoute, startedText, statusCell, tableSkeleton, tokensText,
} from "./traces-common.js";
import { closeConversationView, openConversationView } from "./conversation-view.js";

const FILTERS = [
  { key: "service", label: "Service", param: "service" },
  { key: "agent", label: "Agent", param: "agent" },
  { key: "status", label: "Status", param: "status", options: [["", "Any"], ["ok", "ok"], ["error", "error"]] },
  { key: "conversation", label: "Conversation id", param: "conversation_id" },
];

const COLUMNS = ["Root", "Service", "Agent", "Duration", "Status", "Tokens", "Cost", "Started", "Conversation"];
const NUMERIC = new Set(["Duration", "Tokens", "Cost"]);

const list = {
  gen: 0, // bumped when the list starts over (open, new filters): older answers are dropped
  filters: { service: "", agent: "", status: "", conversation: "" }, // kept while the page is reopened
  rows: [], // newest first (by seq)
  cursor: null, // next_before_seq after the oldest page loaded (null: nothing older)
  loaded: false, // the first page came
  error: "",
  olderBusy: false,
  hovering: false,
  stale: false, // rows changed while hovering: draw when the pointer leaves
  trs: new Map(), // row key -> {sig, tr}
  els: null,
};

const poller = makePoller(refresh, TRACES.refreshMs);

/** Opens the list of recent traces. */
export function openTracesPage() {
  showPage("traces", closeTracesPage);
  closeConversationView();
  $("traces-page-title").textContent = "Traces";
  const body = $("traces-page-body");
  list.hovering = false; // a new table: the pointer is not known to be over it
  list.els = skeleton();
  body.replaceChildren(list.els.root);
  startOver();
}

/** Opens one conversation's runs, in order (conversation-view.js). */
export function openConversation(conversationId) {
  showPage("traces", closeTracesPage);
  stopList();
  $("traces-page-title").textContent = "Conversation";
  openConversationView($("traces-page-body"), conversationId);
}

/** Stops the page's fetches (called when another page is shown). */
export function closeTracesPage() {
  stopList();
  closeConversationView();
  $("traces-page-body").replaceChildren();
}

function stopList() {
  poller.stop();
  list.gen += 1;
  list.els = null;
  list.trs.clear();
}

// ------------------------------------------------------------------------------------ skeleton

function skeleton() {
  const root = el("div", "traces-list");
  const tools = el("div", "traces-tools");

  const jump = el("form", "traces-jump");
  jump.setAttribute("role", "search");
  jump.setAttribute("aria-label", "Go to a trace");
  jump.noValidate = true;
  const jumpLabel = el("label", "traces-field-label", "Go to trace");
  jumpLabel.htmlFor = "traces-jump-input";
  const jumpInput = el("input", "traces-input traces-jump-input");
  Object.assign(jumpInput, { id: "traces-jump-input", type: "text", placeholder: "trace id (32 hex digits)", autocomplete: "off", spellcheck: false });
  jumpInput.setAttribute("aria-describedby", "traces-jump-error");
  const jumpButton = el("button", "button", "Go");
  jumpButton.type = "submit";
  const jumpError = el("p", "traces-jump-error");
  jumpError.id = "traces-jump-error";
  jumpError.setAttribute("role", "alert");
  jumpError.hidden = true;
  jump.append(jumpLabel, jumpInput, jumpButton, jumpError);
  jump.addEventListener("submit", (e) => {
    e.preventDefault();
    goToTrace(jumpInput, jumpError);
  });
  jumpInput.addEventListener("input", () => {
    jumpError.hidden = true;
    jumpInput.removeAttribute("aria-invalid");
  });

  const form = el("form", "traces-filters");
  form.setAttribute("role", "search");
  form.setAttribute("aria-label", "Filter the traces");
  form.noValidate = true;
  const inputs = {};
  for (const f of FILTERS) {
    const label = el("label", "traces-filter");
    label.appendChild(el("span", "traces-field-label", f.label));
    let input;
    if (f.options) {
      input = el("select", "traces-input");
      for (const [value, text] of f.options) {
        const option = el("option", null, text);
        option.value = value;
        input.appendChild(option);
      }
    } else {
      input = el("input", "traces-input");
      Object.assign(input, { type: "text", autocomplete: "off", spellcheck: false });
    }
    input.name = f.key;
    input.value = list.filters[f.key];
    input.addEventListener("change", () => applyFilters(inputs));
    inputs[f.key] = input;
    label.appendChild(input);
    form.appendChild(label);
  }
  const apply = el("button", "button", "Apply");
  apply.type = "submit";
  const clear = el("button", "link-button traces-clear", "Clear");
  clear.type = "button";
  clear.addEventListener("click", () => {
    for (const input of Object.values(inputs)) input.value = "";
    applyFilters(inputs);
  });
  form.append(apply, clear);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    applyFilters(inputs);
  });
  tools.append(jump, form);

  const status = el("p", "traces-status");
  status.setAttribute("role", "status");
  const { wrap, table, tbody } = tableSkeleton("traces-table", COLUMNS, NUMERIC);
  table.setAttribute("aria-labelledby", "traces-page-title");
  wrap.addEventListener("pointerenter", () => { list.hovering = true; });
  wrap.addEventListener("pointerleave", () => {
    list.hovering = false;
    if (list.stale) draw();
  });
  const more = el("div", "traces-more");
  const count = el("span", "traces-count");
  const older = el("button", "button traces-older", "Load older");
  older.type = "button";
  older.hidden = true;
  older.addEventListener("click", loadOlder);
  more.append(older, count);
  root.append(tools, status, wrap, more);
  return { root, status, wrap, tbody, older, count, jumpInput };
}

// ------------------------------------------------------------------------------------ actions

function goToTrace(input, error) {
  const value = input.value.trim();
  if (!isTraceId(value)) {
    error.textContent = value
      ? "Not a trace id: a trace id is 32 hex digits (0-9, a-f), not all zero."
      : "Enter a trace id (32 hex digits).";
    error.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  error.hidden = true;
  input.removeAttribute("aria-invalid");
  openRoute({ trace: value.toLowerCase() });
}

function applyFilters(inputs) {
  const next = {};
  for (const f of FILTERS) next[f.key] = inputs[f.key].value.trim();
  if (FILTERS.every((f) => next[f.key] === list.filters[f.key])) return;
  list.filters = next;
  startOver();
}

function listUrl(beforeSeq) {
  const params = new URLSearchParams({ limit: String(TRACES.pageLimit) });
  for (const f of FILTERS) if (list.filters[f.key]) params.set(f.param, list.filters[f.key]);
  if (beforeSeq !== null) params.set("before_seq", String(beforeSeq));
  return `api/traces?${params.toString()}`;
}

function rowsOf(body) {
  return Array.isArray(body.traces) ? body.traces.filter((r) => r && typeof r === "object" && typeof r.seq === "number") : [];
}

function cursorOf(body) {
  return body.has_more && typeof body.next_before_seq === "number" ? body.next_before_seq : null;
}

/** New filters or a new opening: the first page again, nothing older kept. */
function startOver() {
  poller.stop();
  list.gen += 1;
  Object.assign(list, { rows: [], cursor: null, loaded: false, error: "", olderBusy: false, stale: false });
  list.trs.clear();
  if (list.els) list.els.tbody.replaceChildren();
  draw();
  refresh().then(() => { if (list.els) poller.start(); });
}

/** The first page, merged in front of the older pages already loaded. */
async function refresh() {
  const gen = list.gen;
  try {
    const body = await getJson(listUrl(null));
    if (gen !== list.gen) return;
    const fresh = rowsOf(body);
    const next = cursorOf(body);
    if (next === null) {
      list.rows = fresh; // everything there is fits in one page
      list.cursor = null;
    } else {
      // The rows older than this page are the older pages loaded before: they stay.
      const oldest = fresh.length ? Math.min(...fresh.map((r) => r.seq)) : next;
      const kept = list.rows.filter((r) => r.seq < oldest);
      list.rows = fresh.concat(kept).slice(0, TRACES.maxRows);
      if (!kept.length) list.cursor = next;
    }
    list.loaded = true;
    list.error = "";
  } catch (err) {
    if (gen !== list.gen) return;
    list.error = `Could not load the traces: ${errorText(err)}`;
  }
  draw();
}

async function loadOlder() {
  if (list.olderBusy || list.cursor === null) return;
  const gen = list.gen;
  list.olderBusy = true;
  draw();
  try {
    const body = await getJson(listUrl(list.cursor));
    if (gen !== list.gen) return;
    const seen = new Set(list.rows.map((r) => r.seq));
    list.rows = list.rows.concat(rowsOf(body).filter((r) => !seen.has(r.seq))).slice(0, TRACES.maxRows);
    list.cursor = cursorOf(body);
    list.error = "";
  } catch (err) {
    if (gen !== list.gen) return;
    list.error = `Could not load older traces: ${errorText(err)}`;
  } finally {
    if (gen === list.gen) list.olderBusy = false;
  }
  list.stale = true; // asked for: drawn even under the pointer
  draw(true);
}

// ------------------------------------------------------------------------------------ drawing

function filtered() {
  return FILTERS.some((f) => list.filters[f.key]);
}

function draw(force = false) {
  const els = list.els;
  if (!els) return;
  const full = list.rows.length >= TRACES.maxRows;
  els.older.hidden = list.cursor === null || full;
  els.older.disabled = list.olderBusy;
  els.older.textContent = list.olderBusy ? "Loading…" : "Load older";
  const n = list.rows.length;
  let count = "";
  if (list.loaded && n) {
    count = `${n} trace${n === 1 ? "" : "s"}`;
    if (list.cursor === null) count += " · no older ones";
    else if (full) count += ` · the page holds ${TRACES.maxRows} at most: narrow the filters for older ones`;
  }
  els.count.textContent = count;
  let status = list.error;
  if (!status && !list.loaded) status = "Loading the traces…";
  else if (!status && !n) {
    status = filtered()
      ? "No trace matches these filters in the server's history."
      : "No trace in the server's history yet: a trace is listed when its root run ends.";
  }
  els.status.textContent = status;
  els.status.hidden = !status;
  els.status.classList.toggle("is-error", Boolean(list.error));
  if (list.hovering && !force) {
    list.stale = true;
    return;
  }
  list.stale = false;
  drawRows();
}

function rowKey(row) {
  return String(row.seq);
}

function drawRows() {
  const { tbody } = list.els;
  const keep = new Map();
  const trs = list.rows.map((row) => {
    const key = rowKey(row);
    const sig = JSON.stringify(row);
    const old = list.trs.get(key);
    const tr = old && old.sig === sig ? old.tr : makeRow(row);
    keep.set(key, { sig, tr });
    return tr;
  });
  list.trs = keep;
  const same = trs.length === tbody.children.length && trs.every((tr, i) => tbody.children[i] === tr);
  if (same) return;
  const focused = tbody.contains(document.activeElement) ? document.activeElement : null;
  tbody.replaceChildren(...trs);
  if (focused && focused.isConnected) focused.focus({ preventScroll: true });
}

function makeRow(row) {
  const tr = el("tr", "tl-row");
  tr.dataset.traceId = typeof row.trace_id === "string" ? row.trace_id : "";
  tr.dataset.seq = String(row.seq);
  const route = runTraceRoute({ trace_id: row.trace_id, run_id: null });
  const name = txt(row.root || row.agent || "(unnamed)", 80);
  const root = el("td", "tl-root");
  if (route) root.appendChild(routeLink(name, route, "tl-link"));
  else root.appendChild(el("span", "tl-name", name));
  const id = el("span", "tl-trace-id", route ? row.trace_id.slice(0, 8) : "no trace");
  id.title = route ? row.trace_id : "This run's completion carries no trace id.";
  root.appendChild(id);
  tr.appendChild(root);
  tr.appendChild(cell(txt(row.service || "–", 60), "tl-service"));
  tr.appendChild(cell(txt(row.agent || "–", 80), "tl-agent", typeof row.agent_id === "string" ? `agent id: ${txt(row.agent_id, 120)}` : ""));
  tr.appendChild(cell(durationText(row.duration_ms), "tl-num tl-duration"));
  tr.appendChild(statusCell(row));
  tr.appendChild(cell(tokensText(row.tokens), "tl-num tl-tokens"));
  tr.appendChild(cell(costCellText(row), "tl-num tl-cost"));
  tr.appendChild(cell(startedText(row.started_at), "tl-started", typeof row.started_at === "string" ? txt(row.started_at, 40) : ""));
  const conv = el("td", "tl-conversation");
  if (typeof row.conversation_id === "string" && row.conversation_id) {
    const link = routeLink(txt(row.conversation_id, 24), { conversation: row.conversation_id }, "tl-conv-link");
    link.title = `Conversation ${txt(row.conversation_id, 256)}`;
    conv.appendChild(link);
  } else {
    conv.textContent = "–";
  }
  tr.appendChild(conv);
  clickableRow(tr, route);
  return tr;
}
