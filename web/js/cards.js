// The metric cards: the usage group (tokens, cost and error rate over the server's window) and the
// original six, with the events/s sparkline; the top bar's health figures; the server's name and
// stall threshold. While the page is not live (liveness.js) nothing here ticks: the uptime stops,
// the rates show "–", and the health badge says unknown.

import { $, fmtFixed, fmtInt, fmtSpan, num, txt } from "./util.js";
import { dirty, model, startFromTimestamp, ui } from "./store.js";
import { fmtCost } from "./runs.js";
import * as agentsModule from "./agents.js";
import * as describeModule from "./describe.js";
import { isLive, liveNow, onLiveChange } from "./liveness.js";
import { noteHealthEvent, onHealthReport, wireHealthBadge } from "./health-badge.js";

const ERROR_RATE_WARN = 0.05; // amber above 5 % failed runs
const ERROR_RATE_BAD = 0.2; // red above 20 %

export function renderCards() {
  dirty.cards = false;
  const m = model.metrics || {};
  $("metric-total-events").textContent = fmtInt(m.total_events);
  $("metric-agents-executed").textContent = fmtInt(m.total_agents_executed);
  const failed = num(m.failed_agent_runs);
  const foot = $("metric-agents-executed-foot");
  foot.textContent = failed ? `${fmtInt(failed)} failed` : "completed runs";
  foot.classList.toggle("warn", Boolean(failed));
  $("metric-opportunities").textContent = fmtInt(m.total_opportunities_discovered);
  renderQuality(m);
  renderUsage(m);
  renderActive();
  renderUptime();
}

/** Quality has its own scale (good >= 90, fair 70-89, poor < 70), not severity's. */
function qualityBand(score) {
  if (typeof describeModule.qualityBand === "function") return describeModule.qualityBand(score);
  return score >= 90 ? "good" : score >= 70 ? "fair" : "poor"; // until describe.js has its own
}

function renderQuality(m) {
  const scored = num(m.quality_scores_count);
  const avg = num(m.avg_quality_score);
  const none = scored === 0 || avg === null;
  $("metric-avg-quality").textContent = none ? "–" : avg.toFixed(1);
  $("metric-avg-quality-foot").textContent = scored === null
    ? "score 0–100"
    : scored === 0 ? "no scored runs yet" : `over ${fmtInt(scored)} scored run${scored === 1 ? "" : "s"}`;
  const card = $("metric-avg-quality").closest(".card");
  if (none) delete card.dataset.band;
  else card.dataset.band = qualityBand(avg);
}

/** 52100 -> "52.1k", 1250000 -> "1.3M", 940 -> "940". */
export function fmtCompact(value) {
  const n = num(value);
  if (n === null) return "–";
  const a = Math.abs(n);
  if (a < 1000) return String(Math.round(n));
  if (a < 999950) return `${(n / 1000).toFixed(1)}k`;
  if (a < 999950000) return `${(n / 1e6).toFixed(1)}M`;
  return `${(n / 1e9).toFixed(1)}G`;
}

/** 3600 -> "1 h", 300 -> "5 min", 604800 -> "7 d". */
export function fmtWindow(seconds) {
  const s = num(seconds);
  if (s === null || s <= 0) return null;
  if (s % 86400 === 0) return `${s / 86400} d`;
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${Math.round(s)} s`;
}

function fmtRate(rate) {
  const pct = rate * 100;
  return pct > 0 && pct < 10 ? `${pct.toFixed(1)}%` : `${Math.round(pct)}%`;
}

function renderUsage(m) {
  const window = fmtWindow(m.window_seconds);
  if (window) $("usage-window").textContent = `last ${window}`;
  const tin = num(m.window_tokens_input);
  const tout = num(m.window_tokens_output);
  const hasTokens = tin !== null || tout !== null;
  $("metric-tokens").textContent = hasTokens ? fmtCompact((tin || 0) + (tout || 0)) : "–";
  $("metric-tokens-foot").textContent = hasTokens ? `in ${fmtCompact(tin || 0)} / out ${fmtCompact(tout || 0)}` : "in / out";

  const status = typeof m.window_cost_status === "string" ? m.window_cost_status : null;
  const cost = fmtCost(m.window_cost_usd);
  const noPrice = status === "no_price" && !num(m.window_cost_usd);
  $("metric-cost").textContent = noPrice ? "no price" : cost ?? "–";
  const costFoot = $("metric-cost-foot");
  costFoot.textContent = noPrice ? "no model has a price" : status === "partial" ? "partial estimate" : "estimated";
  costFoot.title = status === "partial" ? "Partial: some models have no price, the cost counts the priced runs only" : "";
  costFoot.classList.toggle("warn", noPrice || status === "partial");

  const runs = num(m.window_runs);
  const failedRuns = num(m.window_failed_runs);
  const rate = num(m.window_error_rate);
  const card = $("metric-error-rate").closest(".card");
  $("metric-error-rate").textContent = rate === null ? "–" : fmtRate(rate);
  $("metric-error-rate-foot").textContent = runs === null
    ? "failed runs / runs"
    : runs === 0 ? "no completed runs" : `${fmtInt(failedRuns || 0)} of ${fmtInt(runs)} runs failed`;
  card.dataset.level = rate === null ? "none" : rate > ERROR_RATE_BAD ? "bad" : rate > ERROR_RATE_WARN ? "warn" : "ok";
}

/** The runs in progress, as the Running runs panel counts them (agents.js is the one source). */
function activeEntries() {
  if (typeof agentsModule.runningEntries === "function") return agentsModule.runningEntries();
  const entries = [];
  const runIds = new Set();
  for (const agent of model.agents.values()) {
    entries.push({ agent, startMs: agent.startMs });
    if (agent.run_id) runIds.add(String(agent.run_id));
  }
  for (const run of model.runs.values()) {
    if (!runIds.has(run.run_id)) entries.push({ run, startMs: startFromTimestamp(run.started_at) });
  }
  return entries;
}

function isStalled(entry) {
  if (typeof entry.stalled === "boolean") return entry.stalled;
  if (entry.agent && entry.agent.serverStalled) return true;
  if (entry.run && entry.run.status === "stalled") return true;
  return (Date.now() - entry.startMs) / 1000 > model.stallSeconds;
}

/** Active Agents: the same number as the Running runs panel, with its stalled runs. */
export function renderActive() {
  if (!isLive() && model.hadSnapshot) return; // frozen while disconnected, stall marks included
  const entries = activeEntries();
  const value = String(entries.length);
  const el = $("metric-active-agents");
  if (el.textContent !== value) el.textContent = value;
  const stalled = entries.filter(isStalled).length;
  const foot = $("metric-active-agents-foot");
  const text = stalled ? `${fmtInt(stalled)} stalled` : "running now";
  if (foot.textContent !== text) foot.textContent = text;
  foot.classList.toggle("warn", Boolean(stalled));
}

/** The one-second tick (app.js): the uptime, and the stall count that grows with time. */
export function renderUptime() {
  const up = model.metrics ? num(model.metrics.system_uptime_seconds) : null;
  $("metric-uptime").textContent = up === null ? "–" : fmtSpan(up + Math.max(0, liveNow() - model.metricsAt) / 1000);
  renderActive();
}

/** The sparkline's window: "40 s", "5 min", "2 h". */
function fmtAgo(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

const SVG_NS = "http://www.w3.org/2000/svg";

const SPARK_POINTS = 60;

const epsHistory = []; // { v: events/s, t: Date.now() } of the last health updates, for the sparkline

function renderSpark() {
  const svg = $("eps-spark");
  const span = epsHistory.length > 1 ? (epsHistory[epsHistory.length - 1].t - epsHistory[0].t) / 1000 : 0;
  $("metric-total-events-foot").textContent = span >= 1 ? `ev/s, last ${fmtAgo(span)}` : "ev/s over time";
  if (epsHistory.length < 2) {
    svg.replaceChildren();
    return;
  }
  const values = epsHistory.map((p) => p.v);
  const max = Math.max(1, ...values);
  const step = 100 / (Math.max(values.length, 12) - 1);
  const x0 = 100 - (values.length - 1) * step;
  const pts = values.map((v, i) => `${(x0 + i * step).toFixed(2)},${(30 - (v / max) * 26).toFixed(2)}`);
  const area = document.createElementNS(SVG_NS, "polygon");
  area.setAttribute("points", `${x0.toFixed(2)},30 ${pts.join(" ")} 100,30`);
  area.setAttribute("class", "spark-area");
  const line = document.createElementNS(SVG_NS, "polyline");
  line.setAttribute("points", pts.join(" "));
  line.setAttribute("class", "spark-line");
  svg.replaceChildren(area, line);
}

export function renderHealth() {
  dirty.health = false;
  const h = model.health || {};
  const liveNowFlag = isLive();
  const eps = num(h.events_per_second);
  if (liveNowFlag && eps !== null && model.healthSeq !== ui.sparkSeq) {
    ui.sparkSeq = model.healthSeq;
    epsHistory.push({ v: Math.max(0, eps), t: Date.now() });
    if (epsHistory.length > SPARK_POINTS) epsHistory.shift();
    renderSpark();
  }
  if (model.health && model.healthSeq !== notedSeq) {
    notedSeq = model.healthSeq;
    noteHealthEvent(h); // a new report only: a reconnect must not bring back the old one
  }
}

let figures = {}; // the newest health report's figures (event or GET health)

/** The top bar's figures; rates and counts of a server the page cannot hear show "–". */
function renderFigures(report) {
  if (report) figures = report;
  const on = isLive();
  const h = figures;
  $("health-eps").textContent = on ? fmtFixed(h.events_per_second, 1) : "–";
  $("health-dropped").textContent = fmtInt(h.dropped_events);
  $("health-dropped").classList.toggle("warn", Boolean(num(h.dropped_events)));
  $("health-clients").textContent = on ? fmtInt(h.connected_clients) : "–";
  $("health-clients-label").textContent = on && num(h.connected_clients) === 1 ? "client" : "clients";
}

let notedSeq = -2;

export function renderServerInfo() {
  const label = $("server-name");
  if (model.serverName) {
    label.textContent = txt(model.serverName, 60);
    label.hidden = false;
    document.title = `${txt(model.serverName, 60)} · Agent Observability`;
  } else {
    label.hidden = true;
    document.title = "Agent Observability · otel-dashboard";
  }
  $("stall-threshold").textContent = fmtSpan(model.stallSeconds);
}

/** The health badge and the freeze/resume of what is live here; once, at start. */
export function wireCards() {
  wireHealthBadge();
  onHealthReport(renderFigures);
  onLiveChange(() => {
    renderFigures();
    renderUptime();
  });
  renderSpark();
}
