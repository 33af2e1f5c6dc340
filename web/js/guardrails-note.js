// The budgets in force, in one line under the agents table's title (GET api/guardrails,
// docs/guardrails.md): "Budgets: each run ≤ 200K tokens · $2.50 · 15m 00s; Planner ≤ $20 per 1h".
// Hidden when the server has none (or is older, or the page is not logged in yet). Text only.

import { $, fmtSpan, isObject, num, txt } from "./util.js";

const REFRESH_MS = 60_000;
const FETCH_TIMEOUT_MS = 8_000;
const MAX_BUDGETS = 8;
const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
const SCOPES = { run: "each run", conversation: "each conversation" };

function amount(kind, value) {
  if (kind === "cost_usd") return `$${value < 10 ? value.toFixed(2) : compact.format(value)}`;
  if (kind === "duration_seconds") return fmtSpan(value);
  if (kind === "tokens") return `${compact.format(value)} tokens`;
  if (kind === "model_calls") return `${compact.format(value)} model calls`;
  if (kind === "tool_calls") return `${compact.format(value)} tool calls`;
  return `${compact.format(value)} ${txt(kind, 30)}`;
}

/** One budget as text: "Planner ≤ $20 · 500 model calls per 1h 00m". */
export function budgetText(budget) {
  if (!isObject(budget) || !isObject(budget.limits)) return "";
  const limits = Object.entries(budget.limits)
    .map(([kind, value]) => [kind, num(value)])
    .filter(([, value]) => value !== null && value > 0)
    .map(([kind, value]) => amount(kind, value));
  if (!limits.length) return "";
  const agent = typeof budget.agent === "string" ? txt(budget.agent, 60) : null;
  let who;
  if (budget.scope === "agent") who = agent ? agent : "each agent";
  else who = `${SCOPES[budget.scope] || "each run"}${agent ? ` of ${agent}` : ""}`;
  const window = budget.scope === "agent" && num(budget.window_seconds) ? ` per ${fmtSpan(num(budget.window_seconds))}` : "";
  return `${who} ≤ ${limits.join(" · ")}${window}`;
}

/** The note's text for a GET api/guardrails answer; "" when there is no budget. */
export function guardrailsText(body) {
  if (!isObject(body) || !Array.isArray(body.budgets)) return "";
  const parts = body.budgets.slice(0, MAX_BUDGETS).map(budgetText).filter(Boolean);
  if (!parts.length) return "";
  const more = body.budgets.length > MAX_BUDGETS ? ` (+${body.budgets.length - MAX_BUDGETS} more)` : "";
  return `Budgets: ${parts.join("; ")}${more}`;
}

async function refresh() {
  const note = $("agents-table-budgets");
  if (!note) return;
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
  let text = "";
  try {
    const res = await fetch("api/guardrails", {
      cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" }, signal: ctl.signal,
    });
    if (res.ok) text = guardrailsText(await res.json());
  } catch {
    text = note.textContent; // a failed fetch keeps what was shown
  } finally {
    clearTimeout(timer);
  }
  note.textContent = text;
  note.title = text;
  note.hidden = !text;
}

/** Fetch the budgets now and every minute (they change only when the server restarts with others). */
export function wireGuardrailsNote() {
  refresh();
  setInterval(() => {
    if (!document.hidden) refresh();
  }, REFRESH_MS);
}
