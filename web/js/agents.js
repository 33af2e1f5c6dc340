// The Running runs panel: one row per run in progress with its live timer, what it is doing now
// (current step, calls, tokens and cost, from snapshot.runs and run_progress), sub-runs under their
// parent run, stall marks (agent health: counted in the panel head, never server health), and the
// runs "unknown since restart" (open when the server restarted; they come back as running when
// their agent still reports). A row opens the run view (#run=<id>).
//
// runningEntries() is THE one source of "active" on the page: the panel's count, the Active
// Agents card and the agents table's running column all read it.
//
// Timers and stall marks use pageNow(): the clock stops while the page is not live (isLive()), so
// nothing ticks and no run turns STALLED because the server is gone.

import { CONFIG } from "./config.js";
import { $, el, fmtClock, fmtSpan, intFormat, pad2, parseTime, txt } from "./util.js";
import { addAgent, dirty, model, startFromTimestamp } from "./store.js";
import { flagBadges, makeRunDetails, updateRunDetails } from "./runs.js";
import { isLive } from "./liveness.js";
import { openRoute } from "./router.js";
import { tickRunView, updateRunView } from "./run-view.js";

const agentRows = new Map(); // row key -> <li>
const MAX_DEPTH = 4; // sub-runs deeper than this are indented like this one
let frozenNow = Date.now(); // the page's clock while it is not live

/** Now, for timers and stall marks: the real clock while live, else the last live moment. */
export function pageNow() {
  if (isLive()) frozenNow = Date.now();
  return frozenNow;
}

/** Whether a running entry is stalled (the server said so, or it runs past the threshold). */
export function isStalled(entry, now = pageNow()) {
  return Boolean(entry.agent && entry.agent.serverStalled) || (now - entry.startMs) / 1000 > model.stallSeconds;
}

/**
 * One entry per run in progress: each running agent (oldest first) with its live run state, then
 * the live runs no agent_execution_started announced (a page that connected late, a sub-run).
 * The union of both by run id, as the server's active_agents count. Returned in display order:
 * top-level runs by start time, each followed by its sub-runs. Each entry: {key, runId, agent, run,
 * startMs, depth, parent, stalled}.
 */
export function runningEntries() {
  const entries = [];
  const byRun = new Map();
  const now = pageNow();
  for (const agent of model.agents.values()) {
    const runId = agent.run_id ? String(agent.run_id) : null;
    const entry = { key: agent.key, agent, run: (runId && model.runs.get(runId)) || null, runId, startMs: agent.startMs };
    entries.push(entry);
    if (runId) byRun.set(runId, entry);
  }
  for (const run of model.runs.values()) {
    if (byRun.has(run.run_id)) continue;
    const entry = { key: run.run_id, agent: null, run, runId: run.run_id, startMs: startFromTimestamp(run.started_at) };
    if (typeof run.started_at !== "string") entry.startMs = Date.now();
    entries.push(entry);
    byRun.set(run.run_id, entry);
  }
  for (const entry of entries) entry.stalled = isStalled(entry, now);
  const children = new Map(); // parent run id -> sub-run entries
  const top = [];
  for (const entry of entries) {
    const parent = entry.run && typeof entry.run.parent_run_id === "string" ? entry.run.parent_run_id : null;
    if (parent && parent !== entry.runId && byRun.has(parent)) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(entry);
    } else {
      top.push(entry);
    }
  }
  const byStart = (a, b) => a.startMs - b.startMs;
  const ordered = [];
  const placed = new Set();
  const place = (entry, depth, parentEntry) => {
    if (placed.has(entry)) return; // a parent cycle in odd data: each entry once
    placed.add(entry);
    entry.depth = depth;
    entry.parent = parentEntry;
    ordered.push(entry);
    const kids = entry.runId ? children.get(entry.runId) : undefined;
    if (kids) for (const kid of kids.sort(byStart)) place(kid, Math.min(depth + 1, MAX_DEPTH), entry);
  };
  for (const entry of top.sort(byStart)) place(entry, 0, null);
  for (const entry of entries) place(entry, 0, null); // only entries caught in a cycle are left
  return ordered;
}

export function renderAgents() {
  dirty.agents = false;
  const list = $("agents");
  const entries = runningEntries();
  const wanted = entries.slice(0, CONFIG.maxAgentRows);
  const keys = new Set(wanted.map((e) => e.key));
  for (const [key, row] of agentRows) {
    if (!keys.has(key)) {
      row.remove();
      agentRows.delete(key);
    }
  }
  let cursor = list.firstElementChild;
  for (const entry of wanted) {
    let row = agentRows.get(entry.key);
    if (row && row._agent !== entry.agent) {
      if (row === cursor) cursor = cursor.nextElementSibling; // (a reconnect's snapshot) keep the cursor attached
      row.remove(); // an agent_execution_started arrived for a run shown from its progress
      row = undefined;
    }
    if (!row) {
      row = makeAgentRow(entry);
      agentRows.set(entry.key, row);
    }
    updateLive(row, entry);
    if (row !== cursor) list.insertBefore(row, cursor);
    else cursor = cursor.nextElementSibling;
  }
  const total = entries.length;
  $("agents-count").textContent = String(total);
  $("agents-empty").hidden = total > 0;
  const more = $("agents-more");
  more.hidden = total <= wanted.length;
  more.textContent = `+ ${intFormat.format(total - wanted.length)} more running`;
  renderStalled(entries);
  tickRows();
  updateRunView();
}

function renderStalled(entries) {
  const n = entries.filter((e) => e.stalled).length;
  const badge = $("agents-stalled");
  badge.hidden = n === 0;
  const text = `${intFormat.format(n)} stalled`;
  if (badge.textContent !== text) badge.textContent = text;
}

function openRun(runId) {
  if (runId) openRoute({ run: runId });
}

/** A row's clickable part: a button (Enter and Space open it too) holding the row's text. */
function makeOpener(li, runId, label) {
  const button = el("button", "agent-open");
  button.type = "button";
  button.title = label;
  button.addEventListener("click", () => openRun(runId));
  li.appendChild(button);
  return button;
}

function makeAgentRow(entry) {
  const base = entry.agent || entry.run;
  const li = el("li", "agent");
  li._agent = entry.agent;
  li._startMs = entry.startMs;
  li._serverStalled = Boolean(entry.agent && entry.agent.serverStalled);
  li._task = txt(base.task_description || "", 500);
  li.dataset.run = entry.key;
  const button = makeOpener(li, entry.runId || entry.key, li._task);
  const main = el("span", "agent-main");
  const head = el("span", "agent-head");
  head.appendChild(el("span", "agent-name", txt(base.agent_name || base.agent_id || "agent", 80)));
  li._flags = el("span", "run-flags"); // "over budget", "stop requested" (runs.js runFlags)
  head.appendChild(li._flags);
  main.appendChild(head);
  li._parent = el("span", "agent-parent");
  main.appendChild(li._parent);
  main.appendChild(el("span", "agent-task", txt(base.task_description || "no task description", 240)));
  const started = new Date(entry.startMs);
  const since = `since ${pad2(started.getHours())}:${pad2(started.getMinutes())}:${pad2(started.getSeconds())}`;
  main.appendChild(el("span", "agent-meta", base.service_name ? `${txt(base.service_name, 60)} · ${since}` : since));
  li._live = makeRunDetails();
  main.appendChild(li._live);
  const side = el("span", "agent-side");
  const timer = el("span", "agent-timer", "0:00");
  timer.setAttribute("role", "timer");
  side.appendChild(timer);
  side.appendChild(el("span", "agent-stall", "stalled"));
  button.append(el("span", "agent-pulse"), main, side);
  li._button = button;
  li._timer = timer;
  return li;
}

/** The parts of a row that change while its run goes on: nesting and the live run state. */
function updateLive(row, entry) {
  const depth = entry.depth || 0;
  if (row._depth !== depth) {
    row._depth = depth;
    for (let d = 1; d <= MAX_DEPTH; d += 1) row.classList.toggle(`depth-${d}`, d === depth);
    row.classList.toggle("sub-run", depth > 0);
  }
  const parentName = entry.parent ? txt((entry.parent.agent || entry.parent.run).agent_name || "a run", 60) : "";
  const parentText = parentName ? `↳ sub-run of ${parentName}` : "";
  if (row._parent.textContent !== parentText) row._parent.textContent = parentText;
  if (row._run !== entry.run) {
    row._run = entry.run;
    updateRunDetails(row._live, entry.run);
    row._flags.replaceChildren(...flagBadges(entry.run));
    row.classList.toggle("has-run", Boolean(entry.run));
  }
}

function tickRows() {
  const now = pageNow();
  for (const row of agentRows.values()) {
    const elapsed = (now - row._startMs) / 1000;
    const clock = fmtClock(elapsed);
    if (row._timer.textContent !== clock) row._timer.textContent = clock;
    const stalled = row._serverStalled || elapsed > model.stallSeconds;
    if (row.classList.contains("stalled") !== stalled) {
      row.classList.toggle("stalled", stalled);
      row._button.title = stalled ? `Stalled: running longer than ${fmtSpan(model.stallSeconds)}\n${row._task}` : row._task;
    }
  }
}

/** The one-second clock: timers, stall marks and the run view's elapsed time; frozen while not live. */
export function tickAgents() {
  if (!isLive()) return;
  tickRows();
  if (agentRows.size) renderStalled(runningEntries());
  tickRunView();
}

// ---------------------------------------------------------------------------------- unknown since restart

/**
 * A run listed as unknown since the restart reports again: it is running. `asAgent` (an agent
 * event named it) gives it a running-agent entry from what the snapshot said about it; a
 * run_progress needs none (its live state is the entry). True when it was unknown.
 */
export function reviveUnknown(runId, asAgent) {
  if (typeof runId !== "string" || !runId) return false;
  const i = model.lostAgents.findIndex((a) => a.key === runId);
  if (i < 0) return false;
  const [a] = model.lostAgents.splice(i, 1);
  dirty.lost = true;
  if (asAgent && !model.agents.has(runId)) {
    addAgent({
      key: runId, run_id: runId, agent_id: a.agent_id, agent_name: a.agent_name,
      task_description: a.task_description, service_name: a.service_name,
      trace_id: a.trace_id, span_id: a.span_id, startMs: startFromTimestamp(a.started_at), serverStalled: false,
    });
  }
  dirty.agents = true;
  return true;
}

export function renderLost() {
  dirty.lost = false;
  const lost = model.lostAgents;
  const shown = lost.slice(0, CONFIG.maxLostRows);
  $("lost-agents").replaceChildren(...shown.map(makeLostRow));
  $("lost-count").textContent = String(lost.length);
  $("lost").hidden = lost.length === 0;
  const more = $("lost-more");
  more.hidden = lost.length <= shown.length;
  more.textContent = `+ ${intFormat.format(lost.length - shown.length)} more unknown`;
  updateRunView();
}

function makeLostRow(agent) {
  const li = el("li", "lost-agent");
  li.dataset.run = agent.key;
  const since = parseTime(agent.unknown_since || agent.lost_detected_at);
  const hint = `Running when the server restarted${Number.isNaN(since) ? "" : ` (${new Date(since).toLocaleString()})`}; `
    + "it comes back as running if its agent still reports, or ends when it finishes.";
  const button = makeOpener(li, agent.key, hint);
  const main = el("span", "agent-main");
  main.appendChild(el("span", "agent-name", txt(agent.agent_name || agent.agent_id || "agent", 80)));
  main.appendChild(el("span", "agent-task", txt(agent.task_description || "no task description", 240)));
  const started = parseTime(agent.started_at);
  const start = Number.isNaN(started) ? "" : `started ${new Date(started).toLocaleString()}`;
  const meta = [agent.service_name ? txt(agent.service_name, 60) : "", start].filter(Boolean).join(" · ");
  main.appendChild(el("span", "agent-meta", meta || "start time unknown"));
  button.append(main, el("span", "lost-tag", "unknown"));
  return li;
}
