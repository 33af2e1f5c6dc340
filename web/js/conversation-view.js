// A conversation (#conversation=<id>) on the traces page: the runs that share a conversation id
// (GET api/conversations/{id}: GenAI gen_ai.conversation.id, OpenInference session.id), sub-runs
// included, in start order, each with its status, agent, service, duration, tokens and cost; a row
// opens its trace page at the run's own span. "Load older" follows next_before_seq for older runs;
// while shown and the tab visible, the first page (with the runs open now) is fetched again every
// TRACES.refreshMs, so a running run turns into its outcome.

import { el, txt } from "./util.js";
import {
  TRACES, cell, clickableRow, costCellText, durationText, errorText, getJson, makePoller, routeLink,
  runTraceRoute, startedText, statusCell, tableSkeleton, tokensText,
} from "./traces-common.js";

const COLUMNS = ["#", "Started", "Agent", "Service", "Status", "Duration", "Tokens", "Cost", "Trace"];
const NUMERIC = new Set(["#", "Duration", "Tokens", "Cost"]);

const conv = {
  id: "",
  gen: 0,
  runs: new Map(), // run key -> row (the server's)
  cursor: null, // next_before_seq after the oldest page loaded (null: nothing older)
  olderLoaded: false, // an older page was loaded: the cursor is its
  loaded: false,
  error: "",
  olderBusy: false,
  els: null,
};

const poller = makePoller(() => loadPage(null), TRACES.refreshMs);

/** Shows conversation `id` in `body` (the traces page's body) and starts its refreshes. */
export function openConversationView(body, id) {
  closeConversationView();
  Object.assign(conv, { id, runs: new Map(), cursor: null, olderLoaded: false, loaded: false, error: "", olderBusy: false });
  conv.els = skeleton(id);
  body.replaceChildren(conv.els.root);
  draw();
  loadPage(null).then(() => { if (conv.els && conv.id === id) poller.start(); });
}

/** Stops the view's fetches (another view or page is shown). */
export function closeConversationView() {
  poller.stop();
  conv.gen += 1;
  conv.els = null;
}

function skeleton(id) {
  const root = el("div", "conversation");
  root.dataset.conversationId = id;
  const head = el("p", "conversation-head");
  head.appendChild(routeLink("All traces", { traces: 1 }, "link-button conversation-all"));
  head.appendChild(el("span", "conversation-label", "Conversation id"));
  const code = el("code", "conversation-id", txt(id, 256));
  head.appendChild(code);
  const status = el("p", "traces-status");
  status.setAttribute("role", "status");
  const { wrap, table, tbody } = tableSkeleton("traces-table conversation-table", COLUMNS, NUMERIC);
  table.setAttribute("aria-label", `Runs of conversation ${txt(id, 120)}, in start order`);
  const more = el("div", "traces-more");
  const older = el("button", "button traces-older", "Load older runs");
  older.type = "button";
  older.hidden = true;
  older.addEventListener("click", () => loadPage(conv.cursor));
  const count = el("span", "traces-count");
  more.append(older, count);
  root.append(head, status, wrap, more);
  return { root, status, tbody, older, count };
}

function runKey(run) {
  return typeof run.run_id === "string" && run.run_id ? run.run_id : `seq:${run.seq}`;
}

/** The first page (`before` null: merged, runs open no longer dropped) or an older one. */
async function loadPage(before) {
  if (before !== null && conv.olderBusy) return;
  const gen = conv.gen;
  const params = new URLSearchParams({ limit: String(TRACES.conversationLimit) });
  if (before !== null) params.set("before_seq", String(before));
  if (before !== null) {
    conv.olderBusy = true;
    draw();
  }
  try {
    const body = await getJson(`api/conversations/${encodeURIComponent(conv.id)}?${params.toString()}`);
    if (gen !== conv.gen) return;
    const runs = Array.isArray(body.runs) ? body.runs.filter((r) => r && typeof r === "object") : [];
    if (before === null) {
      // A run listed as running that this page no longer lists ended out of it (or was lost).
      for (const [key, run] of conv.runs) if (run.status === "running") conv.runs.delete(key);
    }
    for (const run of runs) {
      if (conv.runs.size >= TRACES.maxRows && !conv.runs.has(runKey(run))) break;
      conv.runs.set(runKey(run), run);
    }
    const next = body.has_more && typeof body.next_before_seq === "number" ? body.next_before_seq : null;
    // The first page's cursor counts until an older page is loaded; then the older page's does.
    if (before !== null || !conv.olderLoaded) conv.cursor = next;
    if (before !== null) conv.olderLoaded = true;
    conv.loaded = true;
    conv.error = "";
  } catch (err) {
    if (gen !== conv.gen) return;
    conv.error = `Could not load the conversation: ${errorText(err)}`;
  } finally {
    if (gen === conv.gen && before !== null) conv.olderBusy = false;
  }
  draw();
}

function ordered() {
  return [...conv.runs.values()].sort((a, b) => {
    const sa = typeof a.started_at === "string" ? a.started_at : "";
    const sb = typeof b.started_at === "string" ? b.started_at : "";
    if (sa !== sb) return sa < sb ? -1 : 1;
    return (a.seq ?? Infinity) - (b.seq ?? Infinity);
  });
}

function draw() {
  const els = conv.els;
  if (!els) return;
  const runs = ordered();
  els.older.hidden = conv.cursor === null || conv.runs.size >= TRACES.maxRows;
  els.older.disabled = conv.olderBusy;
  let status = conv.error;
  if (!status && !conv.loaded) status = "Loading the conversation…";
  else if (!status && !runs.length) status = "No run of this conversation is in the server's history or running now.";
  els.status.textContent = status;
  els.status.hidden = !status;
  els.status.classList.toggle("is-error", Boolean(conv.error));
  const n = runs.length;
  els.count.textContent = n ? `${n} run${n === 1 ? "" : "s"}${conv.cursor === null ? "" : " · older runs not loaded"}` : "";
  const focusedRun = els.tbody.contains(document.activeElement) ? document.activeElement.closest("tr")?.dataset.runId : null;
  els.tbody.replaceChildren(...runs.map((run, i) => makeRow(run, i + 1)));
  if (focusedRun) {
    const again = [...els.tbody.querySelectorAll("tr")].find((tr) => tr.dataset.runId === focusedRun);
    const link = again && again.querySelector("a");
    if (link) link.focus({ preventScroll: true });
  }
}

function makeRow(run, index) {
  const tr = el("tr", "tl-row cv-row");
  tr.dataset.runId = typeof run.run_id === "string" ? run.run_id : "";
  tr.dataset.status = typeof run.status === "string" ? run.status : "";
  const sub = typeof run.parent_run_id === "string" && run.parent_run_id;
  if (sub) tr.classList.add("is-sub");
  tr.appendChild(cell(String(index), "tl-num cv-index"));
  tr.appendChild(cell(startedText(run.started_at), "tl-started", typeof run.started_at === "string" ? txt(run.started_at, 40) : ""));
  const agent = el("td", "cv-agent");
  if (sub) {
    const mark = el("span", "cv-sub", "↳ ");
    mark.title = "A sub-run (it has a parent run)";
    agent.appendChild(mark);
  }
  agent.appendChild(el("span", "tl-name", txt(run.agent || "(unnamed)", 80)));
  tr.appendChild(agent);
  tr.appendChild(cell(txt(run.service || "–", 60), "tl-service"));
  tr.appendChild(statusCell(run));
  tr.appendChild(cell(run.status === "running" ? "running" : durationText(run.duration_ms), "tl-num tl-duration"));
  tr.appendChild(cell(tokensText(run.tokens), "tl-num tl-tokens"));
  tr.appendChild(cell(costCellText(run), "tl-num tl-cost"));
  const route = runTraceRoute(run);
  const trace = el("td", "cv-trace");
  if (route) {
    const link = routeLink(route.trace.slice(0, 8), route, "tl-link tl-trace-link");
    link.title = `Open trace ${route.trace}`;
    link.setAttribute("aria-label", `Open the trace of ${txt(run.agent || "this run", 80)} (${route.trace})`);
    trace.appendChild(link);
  } else {
    trace.textContent = "no trace";
  }
  tr.appendChild(trace);
  clickableRow(tr, route);
  return tr;
}
