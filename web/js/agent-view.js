// The agent view (#agent=<name>[&service=<name>]) in the aside: the agent's figures over the
// server's window (the same as its agents-table row), its runs open now (from the page's live
// model) and its recent runs from the history (GET api/events, beyond what the page holds), newest
// first, with "Load older" paging by before_seq. A run opens the run view (#run=<id>). Text only.

import { $, el, fmtClock, fmtDurationMs, kvRow, parseTime, pad2, txt } from "./util.js";
import { isLive } from "./liveness.js";
import { openPanel } from "./detail.js";
import { openRoute } from "./router.js";
import { costText, tokenText } from "./runs.js";
import { agentKey, entryAgent, figureTexts, liveByAgent, windowText } from "./agent-figures.js";
import { agentStats } from "./agents-table.js";

const PAGE = 50;
const FETCH_TIMEOUT_MS = 10000;

const view = {
  name: null,
  service: "",
  gen: 0, // bumps on every open: answers for an older view are dropped
  root: null,
  nextBefore: null, // before_seq of the next older page (null: none)
  newestSeq: 0,
  seqs: new Set(),
  lastRunAt: null, // the agent's last_run_at when the history was last read
  loading: false,
  liveSig: "",
};

/** The agent the aside shows now, or null. */
export function shownAgent() {
  if (!view.root || !view.root.isConnected || $("detail").hidden) return null;
  return { name: view.name, service: view.service };
}

/** Open the agent view of `name` (and `service`: "" for any). */
export function renderAgentView(name, service = "") {
  view.name = String(name);
  view.service = service ? String(service) : "";
  view.gen += 1;
  view.nextBefore = null;
  view.newestSeq = 0;
  view.seqs = new Set();
  view.lastRunAt = null;
  view.loading = false;
  view.liveSig = "";
  openPanel({
    kind: "agent",
    title: view.name,
    badge: "agent",
    badgeClass: "sev-info",
    route: view.service ? { agent: view.name, service: view.service } : { agent: view.name },
    build(body) {
      const root = el("div", "agent-view");
      root.appendChild(el("p", "av-service", view.service ? `service ${view.service}` : "any service"));
      const figs = section(root, "av-figures", "Figures");
      view.figTitle = figs.title;
      view.figures = figs.box.appendChild(el("dl", "kv-list av-figure-list"));
      const running = section(root, "av-running", "Running now");
      view.runningTitle = running.title;
      view.running = running.box.appendChild(el("ul", "av-runs av-running-list"));
      view.runningEmpty = running.box.appendChild(el("p", "av-empty", "No run of this agent is open now."));
      const history = section(root, "av-history", "Recent runs");
      view.history = history.box.appendChild(el("ul", "av-runs av-history-list"));
      view.historyStatus = history.box.appendChild(el("p", "av-empty av-history-status", "Loading the runs…"));
      const more = el("button", "button av-older", "Load older");
      more.type = "button";
      more.hidden = true;
      more.addEventListener("click", () => loadPage(view.nextBefore));
      history.box.appendChild(more);
      view.older = more;
      view.root = root;
      body.appendChild(root);
    },
  });
  updateAgentView();
  loadPage(null);
}

function section(root, cls, title) {
  const box = el("section", `detail-section ${cls}`);
  const h = el("h3", "detail-section-title", title);
  box.appendChild(h);
  root.appendChild(box);
  return { box, title: h };
}

/** Redraw the figures and the running runs (the agents table calls it when it has news). */
export function updateAgentView() {
  if (!shownAgent()) return;
  const key = agentKey(view.name, view.service);
  const stats = agentStats.entries.get(key) || null;
  const win = windowText(agentStats.windowSeconds);
  view.figTitle.textContent = win ? `Figures, ${win}` : "Figures";
  const f = figureTexts(stats);
  const list = view.figures;
  list.replaceChildren();
  if (!stats) {
    kvRow(list, "runs", agentStats.status === "missing" ? "agent statistics need a newer server" : `no completed run in the ${win || "window"}`);
  } else {
    kvRow(list, "runs", f.runs.text);
    kvRow(list, "failures", f.failures.text);
    kvRow(list, "success rate", f.success.text);
    kvRow(list, "p50 duration", f.p50.text);
    kvRow(list, "p95 duration", f.p95.text);
    kvRow(list, "tokens in / out", f.tokens.title === "No token counts" ? "–" : f.tokens.title.replace(" tokens", ""));
    kvRow(list, "cost", f.cost.text);
    kvRow(list, "last error", f.error.title || "none");
    const last = parseTime(stats.last_run_at);
    kvRow(list, "last run", Number.isNaN(last) ? null : new Date(last).toLocaleString());
  }
  renderRunning();
  // A newer completion than the history shows: read the runs after the newest one shown.
  const lastRunAt = stats ? stats.last_run_at : null;
  if (lastRunAt && view.lastRunAt !== null && lastRunAt !== view.lastRunAt && !view.loading) {
    if (view.newestSeq) loadNewer();
    else loadPage(null);
  }
}

function renderRunning() {
  const l = liveByAgent().get(agentKey(view.name, view.service));
  let entries = l ? l.entries : [];
  if (!view.service) {
    // No service named: the runs of this name under any service.
    entries = [];
    for (const group of liveByAgent().values()) if (group.agent === view.name) entries.push(...group.entries);
  }
  view.runningTitle.textContent = `Running now (${entries.length})`;
  view.runningEmpty.hidden = entries.length > 0;
  const sig = entries.map((e) => `${e.key}:${e.run ? e.run.current_step || "" : ""}`).join("|");
  if (sig !== view.liveSig) {
    view.liveSig = sig;
    view.running.replaceChildren(...entries.map(runningItem));
  }
  tickAgentView();
}

/** The running runs' timers (each tick of the table's clock; frozen while disconnected). */
export function tickAgentView() {
  if (!isLive() || !shownAgent()) return;
  const now = Date.now();
  for (const li of view.running.children) {
    const text = fmtClock((now - li._startMs) / 1000);
    if (li._clock.textContent !== text) li._clock.textContent = text;
  }
}

function runningItem(entry) {
  const li = el("li", "av-run av-run-running");
  const button = el("button", "av-run-button");
  button.type = "button";
  const { service } = entryAgent(entry);
  const runId = entry.runId || "";
  button.append(el("span", "av-outcome outcome-running", "running"), el("span", "av-run-id", runId ? txt(runId, 24) : "no run id"));
  li._clock = button.appendChild(el("span", "av-run-clock", "0:00"));
  li._startMs = entry.startMs;
  const step = entry.run && entry.run.current_step ? txt(entry.run.current_step, 120) : "";
  if (step) button.appendChild(el("span", "av-run-step", step));
  if (!view.service && service) button.appendChild(el("span", "av-run-service", txt(service, 60)));
  button.title = runId ? `Open run ${runId}` : "";
  button.disabled = !runId;
  button.addEventListener("click", () => { if (runId) openRoute({ run: runId }); });
  li.appendChild(button);
  return li;
}

// ------------------------------------------------------------------------------------ history

function historyUrl(extra) {
  const params = new URLSearchParams({ event_type: "agent_execution_completed", agent: view.name, limit: String(PAGE) });
  if (view.service) params.set("service", view.service);
  for (const [k, v] of Object.entries(extra)) params.set(k, String(v));
  return `api/events?${params.toString()}`;
}

async function getJson(url) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
  try {
    const res = await fetch(url, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" }, signal: ctl.signal });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return await res.json();
  } finally {
    clearTimeout(timer);
  }
}

/** One page of older runs (before_seq), or the newest page (null). */
async function loadPage(before) {
  if (view.loading) return;
  const gen = view.gen;
  view.loading = true;
  view.older.disabled = true;
  view.historyStatus.hidden = false;
  view.historyStatus.textContent = "Loading the runs…";
  const stats = agentStats.entries.get(agentKey(view.name, view.service));
  try {
    const page = await getJson(historyUrl(before === null ? {} : { before_seq: before }));
    if (gen !== view.gen) return;
    if (before === null) view.lastRunAt = stats ? stats.last_run_at || "" : "";
    const events = Array.isArray(page.events) ? page.events.slice().reverse() : [];
    for (const ev of events) addRun(ev, false);
    view.nextBefore = page.has_more && typeof page.next_before_seq === "number" ? page.next_before_seq : null;
    view.historyStatus.hidden = view.history.children.length > 0;
    view.historyStatus.textContent = "No completed run in the history.";
  } catch (err) {
    if (gen !== view.gen) return;
    view.historyStatus.hidden = false;
    view.historyStatus.textContent = `The history could not be read (${err && err.message ? err.message : "error"}).`;
  } finally {
    if (gen === view.gen) {
      view.loading = false;
      view.older.hidden = view.nextBefore === null;
      view.older.disabled = false;
    }
  }
}

/** The runs completed since the newest one shown, on top. */
async function loadNewer() {
  const gen = view.gen;
  view.loading = true;
  const stats = agentStats.entries.get(agentKey(view.name, view.service));
  view.lastRunAt = stats ? stats.last_run_at || "" : "";
  try {
    const page = await getJson(historyUrl({ after_seq: view.newestSeq }));
    if (gen !== view.gen) return;
    for (const ev of Array.isArray(page.events) ? page.events : []) addRun(ev, true);
    view.historyStatus.hidden = view.history.children.length > 0;
  } catch {
    // the next refresh tries again
  } finally {
    if (gen === view.gen) view.loading = false;
  }
}

function addRun(ev, onTop) {
  if (!ev || typeof ev.seq !== "number" || view.seqs.has(ev.seq)) return;
  view.seqs.add(ev.seq);
  if (ev.seq > view.newestSeq) view.newestSeq = ev.seq;
  const item = historyItem(ev);
  if (onTop) view.history.insertBefore(item, view.history.firstElementChild);
  else view.history.appendChild(item);
}

function historyItem(ev) {
  const d = ev.data && typeof ev.data === "object" ? ev.data : {};
  const failed = d.success === false;
  const li = el("li", `av-run av-run-${failed ? "failed" : "succeeded"}`);
  li.dataset.seq = String(ev.seq);
  const button = el("button", "av-run-button");
  button.type = "button";
  const t = parseTime(ev.timestamp);
  const time = el("span", "av-run-time", Number.isNaN(t) ? "--:--:--" : clock(new Date(t)));
  if (!Number.isNaN(t)) time.title = new Date(t).toLocaleString();
  button.append(time, el("span", `av-outcome outcome-${failed ? "failed" : "succeeded"}`, failed ? "failed" : "succeeded"));
  button.appendChild(el("span", "av-run-duration", typeof d.duration_ms === "number" ? fmtDurationMs(d.duration_ms) : "–"));
  const tokens = tokenText(d);
  button.appendChild(el("span", "av-run-tokens", tokens ? `${tokens} tokens` : "no tokens"));
  const cost = costText(d);
  const costNode = el("span", "av-run-cost", cost ? cost.text : "–");
  if (cost) costNode.title = cost.hint;
  button.appendChild(costNode);
  if (failed || d.error_type || d.error_message) {
    const error = [txt(d.error_type, 80), txt(d.error_message, 300)].filter(Boolean).join(": ");
    if (error) {
      const node = el("span", "av-run-error", error);
      node.title = txt([d.error_type, d.error_message].filter(Boolean).join(": "), 2000);
      button.appendChild(node);
    }
  }
  const runId = typeof d.run_id === "string" && d.run_id ? d.run_id : null;
  button.title = runId ? `Open run ${runId}` : `Open event #${ev.seq}`;
  button.addEventListener("click", () => openRoute(runId ? { run: runId } : { event: ev.seq }));
  li.appendChild(button);
  return li;
}

function clock(d) {
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}
