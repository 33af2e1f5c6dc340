// The agents panel: running agents with live timers and stall marks, what each run is doing now
// (its current step, calls, tokens and cost, from snapshot.runs and run_progress), sub-runs under
// their parent run, and the runs lost after a server restart.

import { CONFIG } from "./config.js";
import { $, el, fmtClock, fmtSpan, intFormat, pad2, parseTime, txt } from "./util.js";
import { dirty, model, startFromTimestamp } from "./store.js";
import { makeRunDetails, updateRunDetails } from "./runs.js";
import { isLive } from "./liveness.js";

const agentRows = new Map(); // row key -> <li>
const MAX_DEPTH = 4; // sub-runs deeper than this are indented like this one

/**
 * One entry per run in progress: each running agent (oldest first) with its live run state, then
 * the live runs no agent_execution_started announced (a page that connected late, a sub-run).
 * Returned in display order: top-level runs by start time, each followed by its sub-runs.
 */
function liveEntries() {
  const entries = [];
  const byRun = new Map();
  const now = Date.now();
  for (const agent of model.agents.values()) {
    const runId = agent.run_id ? String(agent.run_id) : null;
    const entry = { key: agent.key, agent, run: (runId && model.runs.get(runId)) || null, runId, startMs: agent.startMs };
    entries.push(entry);
    if (runId) byRun.set(runId, entry);
  }
  for (const run of model.runs.values()) {
    if (byRun.has(run.run_id)) continue;
    const entry = { key: run.run_id, agent: null, run, runId: run.run_id, startMs: startFromTimestamp(run.started_at) };
    if (typeof run.started_at !== "string") entry.startMs = now;
    entries.push(entry);
    byRun.set(run.run_id, entry);
  }
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
  const entries = liveEntries();
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
  tickAgents();
}

function makeAgentRow(entry) {
  const base = entry.agent || entry.run;
  const li = el("li", "agent");
  li._agent = entry.agent;
  li._startMs = entry.startMs;
  li._serverStalled = Boolean(entry.agent && entry.agent.serverStalled);
  li._task = txt(base.task_description || "", 500);
  li.dataset.run = entry.key;
  const main = el("div", "agent-main");
  const head = el("div", "agent-head");
  head.appendChild(el("span", "agent-name", txt(base.agent_name || base.agent_id || "agent", 80)));
  main.appendChild(head);
  li._parent = el("div", "agent-parent");
  main.appendChild(li._parent);
  main.appendChild(el("div", "agent-task", txt(base.task_description || "no task description", 240)));
  const started = new Date(entry.startMs);
  const since = `since ${pad2(started.getHours())}:${pad2(started.getMinutes())}:${pad2(started.getSeconds())}`;
  main.appendChild(el("div", "agent-meta", base.service_name ? `${txt(base.service_name, 60)} · ${since}` : since));
  li._live = makeRunDetails();
  main.appendChild(li._live);
  li.title = li._task;
  const side = el("div", "agent-side");
  const timer = el("span", "agent-timer", "0:00");
  timer.setAttribute("role", "timer");
  side.appendChild(timer);
  side.appendChild(el("span", "agent-stall", "stalled"));
  li.append(el("span", "agent-pulse"), main, side);
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
    row.classList.toggle("has-run", Boolean(entry.run));
  }
}

export function tickAgents() {
  if (!isLive() && model.hadSnapshot) return; // disconnected: timers and stall marks freeze
  const now = Date.now();
  for (const row of agentRows.values()) {
    const elapsed = (now - row._startMs) / 1000;
    row._timer.textContent = fmtClock(elapsed);
    const stalled = row._serverStalled || elapsed > model.stallSeconds;
    if (row.classList.contains("stalled") !== stalled) {
      row.classList.toggle("stalled", stalled);
      row.title = stalled ? `Stalled: running longer than ${fmtSpan(model.stallSeconds)}\n${row._task}` : row._task;
    }
  }
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
  more.textContent = `+ ${intFormat.format(lost.length - shown.length)} more lost`;
}

function makeLostRow(agent) {
  const li = el("li", "lost-agent");
  li.dataset.run = agent.key;
  const main = el("div", "agent-main");
  main.appendChild(el("span", "agent-name", txt(agent.agent_name || agent.agent_id || "agent", 80)));
  main.appendChild(el("div", "agent-task", txt(agent.task_description || "no task description", 240)));
  const started = parseTime(agent.started_at);
  const since = Number.isNaN(started) ? "" : `started ${new Date(started).toLocaleString()}`;
  const meta = [agent.service_name ? txt(agent.service_name, 60) : "", since].filter(Boolean).join(" · ");
  main.appendChild(el("div", "agent-meta", meta || "start time unknown"));
  li.title = "Running when the server stopped; its completion never arrived.";
  li.append(main, el("span", "lost-tag", "lost"));
  return li;
}
