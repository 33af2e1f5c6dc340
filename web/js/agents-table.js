// The agents table: one row per agent (name, service) with its figures over the server's window
// (GET api/agents: runs, failures, success rate, p50/p95 duration, tokens, cost, last error,
// activity), and the runs open now from the page's live model. Sortable by its column headers;
// a row opens the agent view (#agent=<name>&service=<svc>). Rows are keyed by agent and service
// and updated in place. Fetched on (re)connect, every 5 s while live and visible, and at most once
// a second while runs start and end; frozen (and dimmed) while disconnected. Text only.

import { $, el, parseTime, txt } from "./util.js";
import { model } from "./store.js";
import { isLive } from "./liveness.js";
import { openRoute } from "./router.js";
import { agentKey, figureTexts, liveByAgent, setFailures, windowText } from "./agent-figures.js";
import { renderAgentView, shownAgent, tickAgentView, updateAgentView } from "./agent-view.js";

const REFRESH_MS = 5000; // a fetch this often while live and visible
const SOON_MS = 1000; // after a run starts or ends: a fetch, at most this often
const TICK_MS = 250;
const FETCH_TIMEOUT_MS = 10000;
const FETCH_LIMIT = 500;
const MAX_ROWS = 200;
const SVG = "http://www.w3.org/2000/svg";

/** What the server said last (the agent view reads it too). */
export const agentStats = {
  status: "idle", // idle | ok | missing (a server without GET api/agents) | error
  windowSeconds: 3600,
  bucketSeconds: 60,
  entries: new Map(), // agent key -> the server's entry
};

const state = {
  sort: { key: "running", dir: "desc" },
  rows: new Map(), // agent key -> <tr>
  hovering: false, // the pointer is over the rows: they keep their order until it leaves
  inflight: false,
  lastFetch: 0,
  wasLive: false,
  soon: false, // runs started or ended since the last fetch
  liveSig: "",
  doneSig: "",
};

// Each column: its header, the way it sorts (null values last), its first direction.
const COLUMNS = [
  { key: "agent", label: "Agent", dir: "asc", value: (r) => `${r.agent.toLowerCase()}\u0000${r.service.toLowerCase()}` },
  { key: "running", label: "Running", dir: "desc", num: true, value: (r) => r.running },
  { key: "runs", label: "Runs", dir: "desc", num: true, value: (r) => stat(r, "runs") },
  { key: "failures", label: "Failed", dir: "desc", num: true, value: (r) => stat(r, "failures") },
  { key: "success", label: "Success", dir: "asc", num: true, value: (r) => stat(r, "success_rate") },
  { key: "duration", label: "p50 / p95", hint: "median duration", dir: "desc", num: true, value: (r) => (r.stats && r.stats.duration_ms ? r.stats.duration_ms.p50 : null) },
  { key: "tokens", label: "Tokens", hint: "Tokens in / out", dir: "desc", num: true, value: (r) => (r.stats && r.stats.tokens ? (r.stats.tokens.input || 0) + (r.stats.tokens.output || 0) : null) },
  { key: "cost", label: "Cost", dir: "desc", num: true, value: (r) => stat(r, "cost_usd") },
  { key: "activity", label: "Activity", dir: "desc", value: (r) => r.lastMs },
  { key: "error", label: "Last error", dir: "desc", value: (r) => (r.stats && r.stats.last_error ? parseTime(r.stats.last_error.at) || 0 : null) },
];

function stat(row, name) {
  const v = row.stats ? row.stats[name] : null;
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

// ------------------------------------------------------------------------------------ the rows

/** Every agent to show: the server's entries plus agents running now that it has not counted. */
function currentRows() {
  const live = liveByAgent();
  const rows = [];
  let order = 0; // the server's order: the most recently active first
  for (const [key, stats] of agentStats.entries) {
    const l = live.get(key);
    const row = makeRowData(key, stats.agent, stats.service || "", stats, l ? l.entries.length : 0);
    row.order = order++;
    rows.push(row);
  }
  for (const [key, l] of live) {
    if (!agentStats.entries.has(key)) rows.push(makeRowData(key, l.agent, l.service, null, l.entries.length));
  }
  return rows;
}

function makeRowData(key, agent, service, stats, running) {
  const last = stats ? parseTime(stats.last_run_at) : NaN;
  return { key, agent: String(agent), service, stats, running, order: Infinity, lastMs: running ? Infinity : (Number.isNaN(last) ? 0 : last) };
}

function compare(a, b) {
  const col = COLUMNS.find((c) => c.key === state.sort.key) || COLUMNS[1];
  const va = col.value(a);
  const vb = col.value(b);
  if (va !== vb) {
    if (va === null || va === undefined) return 1;
    if (vb === null || vb === undefined) return -1;
    const order = va < vb ? -1 : 1;
    return state.sort.dir === "asc" ? order : -order;
  }
  if (a.lastMs !== b.lastMs) return b.lastMs > a.lastMs ? 1 : -1; // then the most recently active first
  if (a.order !== b.order) return a.order < b.order ? -1 : 1;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

export function renderAgentsTable() {
  const rows = currentRows().sort(compare);
  const shown = rows.slice(0, MAX_ROWS);
  const body = $("agents-table-body");
  const keep = new Set(shown.map((r) => r.key));
  for (const [key, tr] of state.rows) {
    if (!keep.has(key)) {
      tr.remove();
      state.rows.delete(key);
    }
  }
  const fresh = [];
  for (const data of shown) {
    let tr = state.rows.get(data.key);
    if (!tr) {
      tr = makeRow(data);
      state.rows.set(data.key, tr);
      fresh.push(tr);
    }
    updateRow(tr, data);
  }
  if (state.hovering) {
    for (const tr of fresh) body.appendChild(tr); // the rows under the pointer stay where they are
  } else {
    let cursor = body.firstElementChild;
    for (const data of shown) {
      const tr = state.rows.get(data.key);
      if (tr !== cursor) body.insertBefore(tr, cursor);
      else cursor = cursor.nextElementSibling;
    }
  }
  $("agents-table-count").textContent = String(rows.length);
  const more = $("agents-table-more");
  const extra = rows.length - shown.length;
  more.hidden = extra <= 0;
  more.textContent = extra > 0 ? `+${extra} more agents${agentStats.entries.size >= FETCH_LIMIT ? " (or more)" : ""}` : "";
  const win = windowText(agentStats.windowSeconds);
  $("agents-table-window").textContent = win;
  const empty = $("agents-table-empty");
  empty.hidden = rows.length > 0;
  empty.textContent = agentStats.status === "idle" ? "Loading the agents…" : `No agent ran in the ${win || "window"}.`;
  $("agents-table-wrap").hidden = rows.length === 0;
  const hint = $("agents-table-hint");
  hint.hidden = agentStats.status !== "missing" && agentStats.status !== "error";
  hint.textContent = agentStats.status === "missing"
    ? "Agent statistics need a newer server: only the running agents are shown."
    : "The agent statistics could not be loaded; retrying.";
  updateAgentView();
}

function makeRow(data) {
  const tr = el("tr", "at-row");
  tr.tabIndex = 0;
  tr._agent = data.agent;
  tr._service = data.service;
  tr.dataset.agent = data.agent;
  tr.dataset.service = data.service;
  const name = el("td", "at-agent");
  name.append(el("span", "at-name", txt(data.agent, 80)), el("span", "at-service", txt(data.service || "no service", 60)));
  name.title = `${data.agent}${data.service ? ` (${data.service})` : ""}`;
  tr.appendChild(name);
  tr._cells = {};
  for (const col of COLUMNS.slice(1)) {
    const td = el("td", `at-${col.key}${col.num ? " at-num" : ""}`);
    td.dataset.label = col.label; // the figure's label in the phone's stacked list
    tr._cells[col.key] = td;
    if (col.key === "duration" || col.key === "tokens") td.append(el("span", "at-l1"), el("span", "at-l2"));
    tr.appendChild(td);
  }
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "at-spark");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("preserveAspectRatio", "none");
  tr._cells.activity.appendChild(svg);
  tr._spark = svg;
  return tr;
}

function setCell(td, text, title) {
  if (td.textContent !== text) td.textContent = text;
  if (td.title !== title) td.title = title;
}

/** A cell of two lines (p50 over p95, tokens in over out). */
function setPair(td, top, bottom, title) {
  const [l1, l2] = td.children;
  if (l1.textContent !== top) l1.textContent = top;
  if (l2.textContent !== bottom) l2.textContent = bottom;
  if (td.title !== title) td.title = title;
}

function updateRow(tr, data) {
  const f = figureTexts(data.stats);
  const c = tr._cells;
  setCell(c.running, String(data.running), `${data.running} running now`);
  tr.classList.toggle("is-running", data.running > 0);
  setCell(c.runs, f.runs.text, f.runs.title);
  setFailures(c.failures, f.failures, data.stats);
  c.failures.classList.toggle("has-failures", Boolean(data.stats && data.stats.failures > 0));
  setCell(c.success, f.success.text, f.success.title);
  setPair(c.duration, f.p50.text, f.p95.text === "–" ? "" : `p95 ${f.p95.text}`, f.duration.title);
  setPair(c.tokens, f.tokens.in, f.tokens.out, f.tokens.title);
  setCell(c.cost, f.cost.text, f.cost.title);
  setCell(c.error, f.error.text, f.error.title);
  updateSpark(tr, data.stats);
}

function updateSpark(tr, stats) {
  const runs = stats && Array.isArray(stats.activity) ? stats.activity : [];
  const fails = stats && Array.isArray(stats.failures_activity) ? stats.failures_activity : [];
  const sig = `${runs.join(",")}|${fails.join(",")}`;
  const cell = tr._cells.activity;
  const total = runs.reduce((s, v) => s + (Number(v) || 0), 0);
  const failed = fails.reduce((s, v) => s + (Number(v) || 0), 0);
  const minutes = agentStats.bucketSeconds % 60 === 0 ? `${agentStats.bucketSeconds / 60} min` : `${agentStats.bucketSeconds} s`;
  const title = `${total} runs, ${failed} failed, ${windowText(agentStats.windowSeconds)} (a bar per ${minutes})`;
  if (cell.title !== title) cell.title = title;
  if (tr._sparkSig === sig) return;
  tr._sparkSig = sig;
  const n = Math.max(runs.length, 1);
  const top = Math.max(1, ...runs.map((v) => Number(v) || 0));
  const svg = tr._spark;
  svg.setAttribute("viewBox", `0 0 ${n} 10`);
  const bars = [];
  runs.forEach((v, i) => {
    const value = Number(v) || 0;
    if (value <= 0) return;
    const h = Math.max(1.5, (value / top) * 10);
    bars.push(bar(i, h, "at-bar"));
    const f = Number(fails[i]) || 0;
    if (f > 0) bars.push(bar(i, Math.max(1.5, (Math.min(f, value) / top) * 10), "at-bar-fail"));
  });
  svg.replaceChildren(...bars);
}

function bar(i, h, cls) {
  const rect = document.createElementNS(SVG, "rect");
  rect.setAttribute("x", String(i + 0.1));
  rect.setAttribute("width", "0.8");
  rect.setAttribute("y", String(10 - h));
  rect.setAttribute("height", String(h));
  rect.setAttribute("class", cls);
  return rect;
}

// ------------------------------------------------------------------------------------ sorting

function buildHead() {
  const tr = $("agents-table-head");
  for (const col of COLUMNS) {
    const th = el("th", `at-h-${col.key}${col.num ? " at-num" : ""}`);
    th.scope = "col";
    th.dataset.sort = col.key;
    const button = el("button", "at-sort", col.label);
    button.type = "button";
    button.title = `Sort by ${(col.hint || col.label).toLowerCase()}`;
    button.appendChild(el("span", "at-arrow"));
    button.addEventListener("click", () => setSort(col));
    th.appendChild(button);
    tr.appendChild(th);
  }
  renderHead();
}

function setSort(col) {
  if (state.sort.key === col.key) state.sort.dir = state.sort.dir === "asc" ? "desc" : "asc";
  else state.sort = { key: col.key, dir: col.dir };
  renderHead();
  state.hovering = false; // an explicit sort reorders now
  renderAgentsTable();
}

function renderHead() {
  for (const th of $("agents-table-head").children) {
    const on = th.dataset.sort === state.sort.key;
    if (on) th.setAttribute("aria-sort", state.sort.dir === "asc" ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
    th.querySelector(".at-arrow").textContent = on ? (state.sort.dir === "asc" ? " ▲" : " ▼") : "";
  }
}

// ------------------------------------------------------------------------------------ fetching

async function fetchStats() {
  if (state.inflight) return;
  state.inflight = true;
  state.lastFetch = Date.now();
  state.soon = false;
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
  try {
    const res = await fetch(`api/agents?limit=${FETCH_LIMIT}`, {
      cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" }, signal: ctl.signal,
    });
    if (res.status === 404) {
      agentStats.status = "missing";
      agentStats.entries = new Map();
    } else if (!res.ok) {
      agentStats.status = "error";
    } else {
      accept(await res.json());
    }
  } catch {
    agentStats.status = "error";
  } finally {
    clearTimeout(timer);
    state.inflight = false;
  }
  renderAgentsTable();
}

function accept(body) {
  if (!body || !Array.isArray(body.agents)) {
    agentStats.status = "error";
    return;
  }
  agentStats.status = "ok";
  if (typeof body.window_seconds === "number" && body.window_seconds > 0) agentStats.windowSeconds = body.window_seconds;
  if (typeof body.bucket_seconds === "number" && body.bucket_seconds > 0) agentStats.bucketSeconds = body.bucket_seconds;
  const entries = new Map();
  for (const a of body.agents) {
    if (!a || typeof a.agent !== "string") continue;
    entries.set(agentKey(a.agent, typeof a.service === "string" ? a.service : ""), a);
  }
  agentStats.entries = entries;
}

function tick() {
  const live = isLive();
  $("panel-agents-table").classList.toggle("is-frozen", !live);
  if (!live) {
    state.wasLive = false;
    return;
  }
  if (document.hidden) return;
  tickAgentView();
  const now = Date.now();
  const liveMap = liveByAgent();
  let liveSig = "";
  for (const [key, l] of liveMap) liveSig += `${key}=${l.entries.length};`;
  const m = model.metrics || {};
  const doneSig = `${m.total_agents_executed}|${m.failed_agent_runs}|${m.window_runs}`;
  if (liveSig !== state.liveSig || doneSig !== state.doneSig) {
    state.soon = true;
    if (liveSig !== state.liveSig) {
      state.liveSig = liveSig;
      renderAgentsTable(); // the running column follows the live model at once
    }
    state.doneSig = doneSig;
  }
  if (!state.wasLive) {
    state.wasLive = true;
    fetchStats();
  } else if (agentStats.status !== "missing" // an older server: asked again on the next connect only
    && (now - state.lastFetch >= REFRESH_MS || (state.soon && now - state.lastFetch >= SOON_MS))) {
    fetchStats();
  }
}

// ------------------------------------------------------------------------------------ wiring

function openAgent(tr) {
  const agent = tr._agent;
  const service = tr._service || "";
  openRoute(service ? { agent, service } : { agent });
  // A router that only names the view in the URL: open it here.
  const shown = shownAgent();
  if (!shown || shown.name !== agent || shown.service !== service) renderAgentView(agent, service);
}

export function wireAgentsTable() {
  buildHead();
  const body = $("agents-table-body");
  body.addEventListener("click", (e) => {
    const tr = e.target.closest("tr.at-row");
    if (tr && body.contains(tr)) openAgent(tr);
  });
  body.addEventListener("keydown", (e) => {
    const tr = e.target.closest("tr.at-row");
    if (!tr) return;
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      openAgent(tr);
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const next = e.key === "ArrowDown" ? tr.nextElementSibling : tr.previousElementSibling;
      if (next) next.focus();
    }
  });
  body.addEventListener("pointerenter", () => { state.hovering = true; });
  body.addEventListener("pointerleave", () => {
    state.hovering = false;
    renderAgentsTable();
  });
  renderAgentsTable();
  setInterval(tick, TICK_MS);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) tick(); });
}
