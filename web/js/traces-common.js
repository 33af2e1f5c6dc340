// What the traces list (traces-page.js) and a conversation (conversation-view.js) share: their
// constants, the JSON fetch (an error names what the server said), the cells of a trace or run row,
// links that open a route in the page, and the poller that refreshes a page while it is shown and
// the tab visible. Text only, through el().

import { el, fmtDurationMs, intFormat, isObject, num, parseTime, txt } from "./util.js";
import { fmtCost } from "./runs.js";
import { openRoute, routeHash } from "./router.js";

export const TRACES = Object.freeze({
  pageLimit: 50, // rows asked per page (GET api/traces?limit=; the server's default)
  conversationLimit: 200, // runs asked per page of a conversation (the server's default)
  refreshMs: 5000, // the first page is fetched again this often while shown and the tab visible
  fetchTimeoutMs: 10000,
  maxRows: 2000, // rows the page holds at most: "Load older" stops there
});

const TRACE_ID_RE = /^[0-9a-f]{32}$/i;
const SPAN_ID_RE = /^[0-9a-f]{16}$/i;

/** A trace id as the server takes it: 32 hex digits, not all zero. */
export function isTraceId(value) {
  return typeof value === "string" && TRACE_ID_RE.test(value) && /[1-9a-f]/i.test(value);
}

export function isSpanId(value) {
  return typeof value === "string" && SPAN_ID_RE.test(value) && /[1-9a-f]/i.test(value);
}

/** GET a JSON answer; throws an Error whose message is the server's `error` text when it sent one. */
export async function getJson(url, signal) {
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), TRACES.fetchTimeoutMs);
  const onAbort = () => timeout.abort();
  if (signal) signal.addEventListener("abort", onAbort, { once: true });
  try {
    const res = await fetch(url, {
      cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" }, signal: timeout.signal,
    });
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const said = isObject(body) && typeof body.error === "string" ? txt(body.error, 200) : "";
      throw new Error(said ? `${said} (HTTP ${res.status})` : `HTTP ${res.status}`);
    }
    if (!isObject(body)) throw new Error("not a JSON object");
    return body;
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener("abort", onAbort);
  }
}

/** An error's text for a status line. */
export function errorText(err) {
  return err && err.message ? txt(err.message, 240) : "network error";
}

// ---------------------------------------------------------------------------------------- links

/**
 * A link to a route of the page (`#trace=…`): a plain click opens it with openRoute (one history
 * entry, as every view); a middle click or a modifier key keeps the browser's own behaviour.
 */
export function routeLink(text, route, className) {
  const a = el("a", className, text);
  a.href = `#${routeHash(route)}`;
  a.addEventListener("click", (e) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    e.stopPropagation();
    openRoute(route);
  });
  return a;
}

/** The trace page's route for a run: its trace, at its own span (a run's id is its agent span's id). */
export function runTraceRoute(row) {
  if (!isTraceId(row.trace_id)) return null;
  const route = { trace: row.trace_id.toLowerCase() };
  const runId = row.run_id ?? row.root_run_id;
  if (isSpanId(runId)) route.span = runId.toLowerCase();
  return route;
}

/** A table row that opens `route` when clicked anywhere but on a link of its own. */
export function clickableRow(tr, route) {
  if (!route) return;
  tr.classList.add("is-clickable");
  tr.addEventListener("click", (e) => {
    if (e.target instanceof Element && e.target.closest("a, button")) return;
    if (window.getSelection && String(window.getSelection()).length) return; // selecting text
    openRoute(route);
  });
}

// ---------------------------------------------------------------------------------------- cells

/** A <td> with text (and a tooltip, classes). */
/** A table in its scrolling wrapper, with a header row of `columns` (those in `numeric` right-aligned). */
export function tableSkeleton(className, columns, numeric) {
  const wrap = el("div", "traces-table-wrap");
  const table = el("table", className);
  const head = el("tr");
  for (const name of columns) {
    const th = el("th", numeric.has(name) ? "tl-num" : null, name);
    th.scope = "col";
    head.appendChild(th);
  }
  const thead = el("thead");
  thead.appendChild(head);
  const tbody = el("tbody");
  table.append(thead, tbody);
  wrap.appendChild(table);
  return { wrap, table, tbody };
}

export function cell(text, className = "", title = "") {
  const td = el("td", className || null, text);
  if (title) td.title = title;
  return td;
}

export function durationText(value) {
  return num(value) === null ? "–" : fmtDurationMs(value);
}

/** "1,200 in / 340 out", or "–" without counts. */
export function tokensText(tokens) {
  const t = isObject(tokens) ? tokens : {};
  const input = num(t.input) ?? 0;
  const output = num(t.output) ?? 0;
  if (!input && !output) return "–";
  return `${intFormat.format(input)} in / ${intFormat.format(output)} out`;
}

/** The cost cell's text: "$0.0012", "no price", "$0.0012 (partial)", "–". */
export function costCellText(row) {
  if (row.cost_status === "no_price") return "no price";
  const cost = fmtCost(row.cost_usd);
  if (cost === null) return "–";
  return row.cost_status === "partial" ? `${cost} (partial)` : cost;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

/** A start time, local: the time alone today, with the date before. */
export function startedText(iso) {
  const t = parseTime(iso);
  if (Number.isNaN(t)) return "–";
  const d = new Date(t);
  return d.toDateString() === new Date().toDateString() ? timeFormat.format(d) : dateTimeFormat.format(d);
}

const STATUS = {
  ok: { text: "ok", cls: "outcome-succeeded" },
  error: { text: "error", cls: "outcome-failed" },
  running: { text: "running", cls: "outcome-running" },
};

/** The status cell: a badge (ok, error with its type as tooltip, running). */
export function statusCell(row) {
  const known = STATUS[row.status] || { text: txt(row.status || "unknown", 20), cls: "outcome-unknown" };
  const td = el("td", "tl-status");
  const badge = el("span", `sev-badge tl-badge ${known.cls}`, known.text);
  td.appendChild(badge);
  if (row.status === "error" && row.error_type) td.title = txt(row.error_type, 120);
  return td;
}

// ---------------------------------------------------------------------------------------- polling

/**
 * Calls `run()` (async) every `periodMs` after the previous call ended, while started and the tab
 * is visible; a tab shown again after a period came due calls it at once.
 */
export function makePoller(run, periodMs) {
  let timer = 0;
  let active = false;
  let due = false;
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(fire, periodMs);
  };
  async function fire() {
    timer = 0;
    if (!active) return;
    if (document.hidden) {
      due = true;
      return;
    }
    await run();
    if (active && !timer) schedule();
  }
  document.addEventListener("visibilitychange", () => {
    if (active && due && !document.hidden) {
      due = false;
      fire();
    }
  });
  return {
    start() {
      active = true;
      due = false;
      schedule();
    },
    stop() {
      active = false;
      due = false;
      clearTimeout(timer);
      timer = 0;
    },
  };
}
