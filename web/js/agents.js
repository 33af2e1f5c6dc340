// The agents panel: running agents with live timers and stall marks, and the runs lost after a
// server restart.

import { CONFIG } from "./config.js";
import { $, el, fmtClock, fmtSpan, intFormat, pad2, parseTime, txt } from "./util.js";
import { dirty, model } from "./store.js";

const agentRows = new Map(); // run key -> <li>

export function renderAgents() {
  dirty.agents = false;
  const list = $("agents");
  const wanted = [];
  for (const agent of model.agents.values()) {
    if (wanted.length >= CONFIG.maxAgentRows) break;
    wanted.push(agent);
  }
  const keys = new Set(wanted.map((a) => a.key));
  for (const [key, row] of agentRows) {
    if (!keys.has(key) || row._agent !== model.agents.get(key)) {
      row.remove();
      agentRows.delete(key);
    }
  }
  let cursor = list.firstElementChild;
  for (const agent of wanted) {
    let row = agentRows.get(agent.key);
    if (!row) {
      row = makeAgentRow(agent);
      agentRows.set(agent.key, row);
    }
    if (row !== cursor) list.insertBefore(row, cursor);
    else cursor = cursor.nextElementSibling;
  }
  const total = model.agents.size;
  $("agents-count").textContent = String(total);
  $("agents-empty").hidden = total > 0;
  const more = $("agents-more");
  more.hidden = total <= wanted.length;
  more.textContent = `+ ${intFormat.format(total - wanted.length)} more running`;
  tickAgents();
}

function makeAgentRow(agent) {
  const li = el("li", "agent");
  li._agent = agent;
  li.dataset.run = agent.key;
  const main = el("div", "agent-main");
  const head = el("div", "agent-head");
  head.appendChild(el("span", "agent-name", txt(agent.agent_name || agent.agent_id || "agent", 80)));
  main.appendChild(head);
  main.appendChild(el("div", "agent-task", txt(agent.task_description || "no task description", 240)));
  const started = new Date(agent.startMs);
  const since = `since ${pad2(started.getHours())}:${pad2(started.getMinutes())}:${pad2(started.getSeconds())}`;
  main.appendChild(el("div", "agent-meta", agent.service_name ? `${txt(agent.service_name, 60)} · ${since}` : since));
  li.title = txt(agent.task_description || "", 500);
  const side = el("div", "agent-side");
  const timer = el("span", "agent-timer", "0:00");
  timer.setAttribute("role", "timer");
  side.appendChild(timer);
  side.appendChild(el("span", "agent-stall", "stalled"));
  li.append(el("span", "agent-pulse"), main, side);
  li._timer = timer;
  return li;
}

export function tickAgents() {
  const now = Date.now();
  for (const row of agentRows.values()) {
    const agent = row._agent;
    const elapsed = (now - agent.startMs) / 1000;
    row._timer.textContent = fmtClock(elapsed);
    const stalled = agent.serverStalled || elapsed > model.stallSeconds;
    if (row.classList.contains("stalled") !== stalled) {
      row.classList.toggle("stalled", stalled);
      const task = txt(agent.task_description || "", 500);
      row.title = stalled ? `Stalled: running longer than ${fmtSpan(model.stallSeconds)}\n${task}` : task;
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
