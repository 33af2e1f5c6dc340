// What an agent run says: its calls, tokens and cost, from a live run (snapshot.runs, run_progress)
// or from the data of its agent_execution_completed event. The running-agent rows show the live
// part below their name (runDetails), the stream rows the short form (usageFields), the detail
// panel the full breakdown (runBreakdown). Text only, through el() / kvRow().

import { el, fmtInt, intFormat, isObject, kvRow, num, txt } from "./util.js";

const COST_STATUS = {
  priced: "every model call had a price",
  partial: "some models have no price: the cost counts the priced calls only",
  no_price: "no price is known for the models of this run",
  no_tokens: "no token counts, so no cost",
};

const TOKENS_SOURCE = {
  model_calls: "summed over the model calls",
  run_span: "from the agent span's own attributes",
};

function count(value) {
  const n = num(value);
  return n === null || n < 0 ? 0 : Math.round(n);
}

function plural(n, word) {
  return `${intFormat.format(n)} ${word}${n === 1 ? "" : "s"}`;
}

/** Dollars: "$0.0012" below $1, "$3.42" above, "<$0.0001" for a trace of a cent; null if not a cost. */
export function fmtCost(value) {
  const n = num(value);
  if (n === null || n < 0) return null;
  if (n === 0) return "$0";
  if (n < 0.0001) return "<$0.0001";
  return n < 1 ? `$${n.toFixed(4)}` : `$${n.toFixed(2)}`;
}

function tokensOf(r) {
  const t = isObject(r.tokens) ? r.tokens : {};
  return {
    input: count(t.input ?? r.input_tokens),
    output: count(t.output ?? r.output_tokens),
    total: count(t.total),
    cacheRead: count(t.cache_read_input),
    cacheCreation: count(t.cache_creation_input),
    reasoning: count(t.reasoning_output),
  };
}

function hasTokens(r) {
  const t = tokensOf(r);
  return Boolean(r.tokens_source) || t.input + t.output + t.total > 0;
}

/** "1,200 in / 340 out · 800 cached" (cached only when some were), or null without token counts. */
export function tokenText(r) {
  if (!hasTokens(r)) return null;
  const t = tokensOf(r);
  const cached = t.cacheRead > 0 ? ` · ${intFormat.format(t.cacheRead)} cached` : "";
  return `${intFormat.format(t.input)} in / ${intFormat.format(t.output)} out${cached}`;
}

/** The cost as shown, and a hint for its tooltip: "$0.0012", "no price", "$0.0012 (partial)". */
export function costText(r) {
  const status = typeof r.cost_status === "string" ? r.cost_status : null;
  const unpriced = Array.isArray(r.unpriced_models) ? r.unpriced_models.slice(0, 10).map((m) => txt(m, 60)) : [];
  const missing = unpriced.length ? ` (no price for ${unpriced.join(", ")})` : "";
  const cost = fmtCost(r.cost_usd);
  if (status === "no_price") return { text: "no price", hint: `No price known${missing}`, kind: "no-price" };
  if (cost === null) return null;
  if (status === "partial") return { text: `${cost} (partial)`, hint: `Partial: ${COST_STATUS.partial}${missing}`, kind: "partial" };
  return { text: cost, hint: "Estimated from the token counts and the model's price", kind: "priced" };
}

/** "2 tool calls · 1 failed", or null without tool calls. */
export function toolText(r) {
  const calls = count(r.tool_calls);
  const failures = count(r.tool_failures);
  if (!calls && !failures) return null;
  return failures ? `${plural(calls, "tool call")} · ${intFormat.format(failures)} failed` : plural(calls, "tool call");
}

function toolLines(r) {
  if (!isObject(r.tools)) return [];
  return Object.entries(r.tools).slice(0, 50).map(([name, v]) => {
    const calls = count(isObject(v) ? v.calls : v);
    const failures = isObject(v) ? count(v.failures) : 0;
    return `${txt(name, 60)}: ${plural(calls, "call")}${failures ? `, ${intFormat.format(failures)} failed` : ""}`;
  });
}

function modelNames(r) {
  return Array.isArray(r.models) ? r.models.slice(0, 20).map((m) => txt(m, 60)) : [];
}

// ---------------------------------------------------------------------------------- guardrails

const BUDGET_KINDS = {
  tokens: "tokens", cost_usd: "cost", duration_seconds: "duration", model_calls: "model calls", tool_calls: "tool calls",
};

/**
 * The guardrail marks of a live run (docs/guardrails.md): "over budget" when its state lists the
 * budget kinds it went over (over_budget), "stop requested" when it is flagged to stop (stop).
 * Each: {cls, text, title}; none for a run without them (or from a server without guardrails).
 */
export function runFlags(run) {
  const flags = [];
  if (!isObject(run)) return flags;
  const over = Array.isArray(run.over_budget) ? run.over_budget.filter((k) => typeof k === "string").slice(0, 5) : [];
  if (over.length) {
    const kinds = over.map((k) => (Object.hasOwn(BUDGET_KINDS, k) ? BUDGET_KINDS[k] : txt(k, 30)));
    flags.push({ cls: "run-flag run-flag-over", text: "over budget", title: `Over its budget: ${kinds.join(", ")}` });
  }
  // A run over a run budget is flagged to stop too (kind "budget"): "over budget" already says so.
  if (isObject(run.stop) && !(run.stop.kind === "budget" && over.length)) {
    const who = run.stop.kind === "budget" ? "a budget crossed" : "requested on the dashboard";
    const reason = typeof run.stop.reason === "string" ? txt(run.stop.reason, 300) : "";
    flags.push({
      cls: "run-flag run-flag-stop", text: "stop requested",
      title: `Flagged to stop (${who})${reason ? `: ${reason}` : ""}. It stops at its next decorated step if it opted in (stop_on_budget).`,
    });
  }
  return flags;
}

/** The marks of runFlags() as small badges (text only). */
export function flagBadges(run) {
  return runFlags(run).map((f) => {
    const badge = el("span", f.cls, f.text);
    badge.title = f.title;
    return badge;
  });
}

/** The run view's "guardrails" row (the marks as badges), when the run has any. */
export function flagsRow(list, run) {
  const flags = flagBadges(run);
  if (!flags.length) return;
  list.appendChild(el("dt", null, "guardrails"));
  const dd = el("dd");
  const badges = el("span", "run-flags run-view-flags");
  badges.append(...flags);
  dd.appendChild(badges);
  list.appendChild(dd);
}

// ---------------------------------------------------------------------------------- live rows

/**
 * What a run is doing, in the page's words: "model call to gpt-4o" (the server's "waiting on
 * gpt-4o"), "tool web_search" ("calling tool web_search"); "running" when it gives no step.
 */
export function stepText(step) {
  if (typeof step !== "string" || !step.trim()) return "running";
  const s = step.trim();
  if (s === "waiting on the model") return "model call";
  if (s.startsWith("waiting on ")) return `model call to ${s.slice(11)}`;
  if (s.startsWith("calling tool ")) return `tool ${s.slice(13)}`;
  return s;
}

/** The live part of a running-run row: the current step, then one line of figures. */
export function makeRunDetails() {
  const box = el("span", "run-live");
  box.append(el("span", "run-step"), el("span", "run-stats"));
  return box;
}

export function updateRunDetails(box, run) {
  box.hidden = !run;
  if (!run) return;
  const step = box.firstElementChild;
  step.textContent = txt(stepText(run.current_step), 120);
  step.title = txt(run.current_step || "", 300);
  const stats = box.lastElementChild;
  const parts = [el("span", "run-stat run-calls", plural(count(run.model_calls), "model call"))];
  const tools = toolText(run);
  if (tools) {
    const node = el("span", `run-stat run-tools${count(run.tool_failures) ? " has-failures" : ""}`, tools);
    node.title = toolLines(run).join("\n");
    parts.push(node);
  }
  const errors = count(run.errors);
  if (errors) parts.push(el("span", "run-stat run-errors", plural(errors, "error")));
  const tokens = tokenText(run);
  if (tokens) {
    const node = el("span", "run-stat run-tokens", `${tokens} tokens`);
    node.title = tokenHint(run);
    parts.push(node);
  }
  const cost = costText(run);
  if (cost) {
    const node = el("span", `run-stat run-cost cost-${cost.kind}`, cost.text);
    node.title = cost.hint;
    parts.push(node);
  }
  const models = modelNames(run);
  if (models.length) {
    const node = el("span", "run-stat run-models", models.length > 2 ? `${models.slice(0, 2).join(", ")} +${models.length - 2}` : models.join(", "));
    node.title = `Models: ${models.join(", ")}`;
    parts.push(node);
  }
  stats.replaceChildren(...parts);
}

function tokenHint(r) {
  const t = tokensOf(r);
  const lines = [
    `input ${intFormat.format(t.input)} (cache read ${intFormat.format(t.cacheRead)}, cache write ${intFormat.format(t.cacheCreation)})`,
    `output ${intFormat.format(t.output)} (reasoning ${intFormat.format(t.reasoning)})`,
  ];
  if (Object.hasOwn(TOKENS_SOURCE, r.tokens_source)) lines.push(TOKENS_SOURCE[r.tokens_source]);
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------- completed runs

/** Whether an agent_execution_completed carries the run's figures (servers before them do not). */
export function hasRunFigures(d) {
  return d.model_calls !== undefined || d.tokens !== undefined || d.cost_status !== undefined;
}

/** The stream row's key fields for a completed run: tokens, cost, calls. */
export function usageFields(d) {
  if (!hasRunFigures(d)) return [];
  const cost = costText(d);
  const calls = [plural(count(d.model_calls), "model call"), toolText(d)].filter(Boolean).join(" · ");
  return [["tokens", tokenText(d)], ["cost", cost ? cost.text : null], ["calls", calls]];
}

/**
 * Every figure of a run (a completed run's data, or a live run's state), as key/value rows: the
 * event view's Run section and the run view's figures. `related: false` leaves out the parent and
 * root runs (the run view links them instead).
 */
export function runBreakdown(list, d, { related = true } = {}) {
  const t = tokensOf(d);
  const models = modelNames(d);
  kvRow(list, "model calls", models.length ? `${fmtInt(count(d.model_calls))} (${models.join(", ")})` : fmtInt(count(d.model_calls)));
  kvRow(list, "tool calls", toolText(d) || "0");
  const tools = toolLines(d);
  if (tools.length) {
    list.appendChild(el("dt", null, "tools"));
    const dd = el("dd");
    const ul = el("ul", "kv-lines");
    for (const line of tools) ul.appendChild(el("li", null, line));
    dd.appendChild(ul);
    list.appendChild(dd);
  }
  if (hasTokens(d)) {
    kvRow(list, "input tokens", intFormat.format(t.input));
    kvRow(list, "output tokens", intFormat.format(t.output));
    kvRow(list, "total tokens", intFormat.format(t.total || t.input + t.output));
    kvRow(list, "cache read", intFormat.format(t.cacheRead));
    kvRow(list, "cache write", intFormat.format(t.cacheCreation));
    kvRow(list, "reasoning", intFormat.format(t.reasoning));
    const source = Object.hasOwn(TOKENS_SOURCE, d.tokens_source) ? TOKENS_SOURCE[d.tokens_source] : d.tokens_source;
    kvRow(list, "tokens from", source || null);
  } else {
    kvRow(list, "tokens", "no token counts");
  }
  const n = num(d.cost_usd);
  const status = typeof d.cost_status === "string" ? d.cost_status : null;
  const why = Object.hasOwn(COST_STATUS, status) ? ` (${COST_STATUS[status]})` : "";
  kvRow(list, "cost", n !== null && n >= 0 ? `$${n.toFixed(6)}${why}` : `${status === "no_price" ? "no price" : "none"}${why}`);
  if (Array.isArray(d.unpriced_models) && d.unpriced_models.length) {
    kvRow(list, "no price for", d.unpriced_models.slice(0, 20).map((m) => txt(m, 60)).join(", "));
  }
  if (d.error_type) kvRow(list, "error type", txt(d.error_type, 120));
  if (!related) return;
  kvRow(list, "parent run", d.parent_run_id || "none (a top-level run)", { mono: Boolean(d.parent_run_id) });
  if (d.root_run_id && d.root_run_id !== d.run_id) kvRow(list, "root run", d.root_run_id, { mono: true });
}
