// The metric cards with the events/s sparkline, the top bar's health figures, and the server's
// name and stall threshold.

import { $, fmtFixed, fmtInt, fmtSpan, num, txt } from "./util.js";
import { dirty, model, ui } from "./store.js";

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
  const scored = num(m.quality_scores_count);
  const avg = num(m.avg_quality_score);
  $("metric-avg-quality").textContent = scored === 0 || avg === null ? "–" : avg.toFixed(1);
  $("metric-avg-quality-foot").textContent = scored === null
    ? "score 0–100"
    : scored === 0 ? "no scored runs yet" : `over ${fmtInt(scored)} scored run${scored === 1 ? "" : "s"}`;
  $("metric-active-agents").textContent = fmtInt(m.active_agents);
  renderUptime();
}

export function renderUptime() {
  const up = model.metrics ? num(model.metrics.system_uptime_seconds) : null;
  $("metric-uptime").textContent = up === null ? "–" : fmtSpan(up + (performance.now() - model.metricsAt) / 1000);
}

const SVG_NS = "http://www.w3.org/2000/svg";

const SPARK_POINTS = 60;

const epsHistory = []; // events/s of the last health updates, for the sparkline

function renderSpark() {
  const svg = $("eps-spark");
  if (epsHistory.length < 2) {
    svg.replaceChildren();
    return;
  }
  const max = Math.max(1, ...epsHistory);
  const step = 100 / (Math.max(epsHistory.length, 12) - 1);
  const x0 = 100 - (epsHistory.length - 1) * step;
  const pts = epsHistory.map((v, i) => `${(x0 + i * step).toFixed(2)},${(30 - (v / max) * 26).toFixed(2)}`);
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
  const eps = num(h.events_per_second);
  if (eps !== null && model.healthSeq !== ui.sparkSeq) {
    ui.sparkSeq = model.healthSeq;
    epsHistory.push(Math.max(0, eps));
    if (epsHistory.length > SPARK_POINTS) epsHistory.shift();
    renderSpark();
  }
  $("health-eps").textContent = fmtFixed(h.events_per_second, 1);
  $("health-dropped").textContent = fmtInt(h.dropped_events);
  $("health-dropped").classList.toggle("warn", Boolean(num(h.dropped_events)));
  $("health-clients").textContent = fmtInt(h.connected_clients);
  $("health-clients-label").textContent = num(h.connected_clients) === 1 ? "client" : "clients";
  // The server's own health ("healthy" or "degraded", with its reasons); stalled agents are the
  // agents' health, shown on their rows and in the active agents card below, never here.
  const status = typeof h.status === "string" ? h.status : "unknown";
  const badge = $("health-status");
  badge.dataset.status = ["healthy", "degraded"].includes(status) ? status : "unknown";
  badge.textContent = `health ${txt(status, 20)}`;
  const reasons = Array.isArray(h.reasons) ? h.reasons.filter((r) => typeof r === "string") : [];
  badge.title = reasons.length ? `Degraded: ${txt(reasons.slice(0, 8).join(", "), 300)}` : "Server health";
  const stalled = num(h.stalled_agents);
  const foot = $("metric-active-agents-foot");
  foot.textContent = stalled ? `${fmtInt(stalled)} stalled` : "running now";
  foot.classList.toggle("warn", Boolean(stalled));
}

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
