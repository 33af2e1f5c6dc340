// What an agent's figures say, as text: the cells of an agents-table row and the agent view's list
// share these. `stats` is one entry of GET api/agents (docs/api.md), or null for an agent the page
// sees running but the server has not counted yet. Also the live runs of one agent, from the page's
// model (agents.js's runningEntries(), the one source for "running" on the page).

import * as agentsModule from "./agents.js";
import { model, startFromTimestamp } from "./store.js";
import { el, fmtDurationMs, intFormat, isObject, num, parseTime, txt } from "./util.js";
import { costText } from "./runs.js";

const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

/** The key of an agent: its name and service ("" for none). */
export function agentKey(agent, service) {
  return `${agent}\u0000${service || ""}`;
}

/** "last 1 h", "last 30 min", "last 90 s": the window the figures cover. */
export function windowText(seconds) {
  const s = num(seconds);
  if (s === null || s <= 0) return "";
  if (s % 3600 === 0) return `last ${s / 3600} h`;
  if (s % 60 === 0) return `last ${s / 60} min`;
  return `last ${s} s`;
}

function count(value) {
  const n = num(value);
  return n === null || n < 0 ? 0 : Math.round(n);
}

/** The shown text (and a tooltip) of every figure of an agent. */
export function figureTexts(stats) {
  if (!isObject(stats)) {
    const none = { text: "–", in: "–", out: "", title: "Not counted by the server yet" };
    return { runs: none, failures: none, success: none, duration: none, p50: none, p95: none, tokens: none, cost: none, error: { text: "", title: "" } };
  }
  const runs = count(stats.runs);
  const failures = count(stats.failures);
  const rate = num(stats.success_rate);
  const d = isObject(stats.duration_ms) ? stats.duration_ms : {};
  const p50 = num(d.p50);
  const p95 = num(d.p95);
  const t = isObject(stats.tokens) ? stats.tokens : {};
  const tin = count(t.input);
  const tout = count(t.output);
  // A row fed by OTLP metrics may have tokens and no run (a token-usage metric alone).
  const cost = runs || tin + tout > 0 ? costText(stats) : null;
  const noTokens = stats.cost_status === "no_tokens";
  const src = isObject(stats.sources) ? stats.sources : {};
  const fromMetrics = (key) => (src[key] === "metrics" ? " (from OTLP metrics)" : "");
  const err = isObject(stats.last_error) ? stats.last_error : null;
  const errText = err ? [txt(err.type, 80), txt(err.message, 500)].filter(Boolean).join(": ") || "failed" : "";
  const errAt = err && !Number.isNaN(parseTime(err.at)) ? ` (at ${new Date(parseTime(err.at)).toLocaleString()})` : "";
  return {
    runs: { text: intFormat.format(runs), title: `${intFormat.format(runs)} completed runs${fromMetrics("runs")}` },
    failures: { text: intFormat.format(failures), title: `${intFormat.format(failures)} failed runs` },
    success: rate === null
      ? { text: "–", title: "No completed run" }
      : { text: `${Number((rate * 100).toFixed(1))}%`, title: `${intFormat.format(runs - failures)} of ${intFormat.format(runs)} succeeded` },
    p50: { text: p50 === null ? "–" : fmtDurationMs(p50), title: "median duration" },
    p95: { text: p95 === null ? "–" : fmtDurationMs(p95), title: "95th percentile duration" },
    duration: {
      text: p50 === null ? "–" : `${fmtDurationMs(p50)} / ${fmtDurationMs(p95)}`,
      title: p50 === null ? "No duration" : `p50 ${fmtDurationMs(p50)}, p95 ${fmtDurationMs(p95)} over ${intFormat.format(count(d.samples))} runs`,
    },
    tokens: !noTokens && tin + tout > 0
      ? { text: `${compact.format(tin)} / ${compact.format(tout)}`, in: `${compact.format(tin)} in`, out: `${compact.format(tout)} out`, title: `${intFormat.format(tin)} input / ${intFormat.format(tout)} output tokens${fromMetrics("tokens")}` }
      : { text: "–", in: "–", out: "", title: "No token counts" },
    cost: cost && !noTokens ? { text: cost.text, title: `${cost.hint}${fromMetrics("cost")}` } : { text: "–", title: "No cost" },
    error: { text: errText, title: errText ? `${errText}${errAt}` : "" },
  };
}

/** The open runs on the page now (agents.js's runningEntries(); the same list when it is absent). */
export function liveEntries() {
  if (typeof agentsModule.runningEntries === "function") return agentsModule.runningEntries();
  const entries = [];
  const seen = new Set();
  for (const agent of model.agents.values()) {
    const runId = agent.run_id ? String(agent.run_id) : null;
    entries.push({ key: agent.key, agent, run: (runId && model.runs.get(runId)) || null, runId, startMs: agent.startMs });
    if (runId) seen.add(runId);
  }
  for (const run of model.runs.values()) {
    if (seen.has(run.run_id)) continue;
    entries.push({ key: run.run_id, agent: null, run, runId: run.run_id, startMs: startFromTimestamp(run.started_at) });
  }
  return entries;
}

/** The name and service of a live entry, as the server keys an agent. */
export function entryAgent(entry) {
  const base = entry.agent || entry.run || {};
  const fallback = entry.run || {};
  const name = base.agent_name || fallback.agent_name || base.agent_id || fallback.agent_id || "agent";
  const service = base.service_name || fallback.service_name;
  return { agent: String(name), service: typeof service === "string" ? service : "" };
}

/** Live runs per agent key: Map key -> {agent, service, entries}. */
export function liveByAgent() {
  const byAgent = new Map();
  for (const entry of liveEntries()) {
    const { agent, service } = entryAgent(entry);
    const key = agentKey(agent, service);
    if (!byAgent.has(key)) byAgent.set(key, { agent, service, entries: [] });
    byAgent.get(key).entries.push(entry);
  }
  return byAgent;
}

/**
 * The agents table's Failed cell: the count, and under it a small "N over budget" line for the
 * runs of the window that crossed a run budget (over_budget_runs, docs/guardrails.md).
 */
export function setFailures(td, figure, stats) {
  const n = stats && typeof stats.over_budget_runs === "number" && stats.over_budget_runs > 0 ? Math.round(stats.over_budget_runs) : 0;
  const mark = n ? `${intFormat.format(n)} over budget` : "";
  const sig = `${figure.text}\u0000${mark}`;
  if (td._sig !== sig) {
    td._sig = sig;
    td.replaceChildren(figure.text); // a text node
    if (mark) td.appendChild(el("span", "at-over-budget", mark));
  }
  const title = n ? `${figure.title}\n${mark}: runs of the window that crossed a run budget` : figure.title;
  if (td.title !== title) td.title = title;
}
