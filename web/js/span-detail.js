// A span's details on the trace page (GET api/traces/{trace_id}/spans/{span_id}), in this order:
// the title (kind, name, status, duration), the model call's figures, the transcript as a chat
// (transcript-view.js), a tool span's arguments and result, the exceptions (stack traces folded
// after FOLD.stackLines lines), the other span events and, last, the raw attributes in a collapsed
// <details>. Text only (textContent), whatever the span holds.
//
// One pane at a time: a new renderSpanDetail call (another span, another trace) aborts the fetch in
// flight and ignores its late answer. While the span is still running, the pane refetches every
// DETAIL.pollMs (not while the tab is hidden) and redraws, keeping the texts the user unfolded, the
// <details> they opened and the scroll position.

import { el, fmtDurationMs, fmtInt, isObject, kvRow } from "./util.js";
import { costText, fmtCost } from "./runs.js";
import { FOLD, foldedText, prettyValue, renderTranscript } from "./transcript-view.js";

export const DETAIL = Object.freeze({
  pollMs: 2000, // refetch period while the span runs
  maxAttributes: 500, // raw attributes drawn (the server caps them too)
  maxEvents: 100, // other span events drawn
});

const TRACE_ID_RE = /^[0-9a-f]{32}$/;
const SPAN_ID_RE = /^[0-9a-f]{16}$/;

const pane = {
  gen: 0, // bumped on every render/stop: a late answer of an older request is ignored
  controller: null, // AbortController of the fetch in flight
  timer: 0, // the next refetch while the span runs
  container: null,
  traceId: "",
  spanId: "",
  folds: new Set(), // keys of the texts and stack traces shown whole, for this span
  open: new Set(), // class names of the <details> the user opened, for this span
  done: false, // the last answer was of an ended span: the same ids again need no fetch
};

/**
 * Fills `container` with the details of one span, fetched from the server; a later call replaces
 * them (and aborts this one's fetch). A call with the same trace and span as the one shown, once
 * that span has ended, keeps the pane as it is.
 *
 * @param {HTMLElement} container the pane (the trace page's #trace-span-pane)
 * @param {string} traceId 32 hex digits
 * @param {string} spanId 16 hex digits; empty: "Select a span."
 */
export function renderSpanDetail(container, traceId, spanId) {
  const trace = typeof traceId === "string" ? traceId.toLowerCase() : "";
  const span = typeof spanId === "string" ? spanId.toLowerCase() : "";
  const sameIds = trace === pane.traceId && span === pane.spanId;
  const same = sameIds && container === pane.container && Boolean(container.firstChild);
  if (same && (pane.done || pane.controller)) return;
  stopSpanDetail();
  if (!sameIds) {
    pane.folds = new Set();
    pane.open = new Set();
  }
  pane.container = container;
  pane.traceId = trace;
  pane.spanId = span;
  container.classList.add("span-detail");
  container.dataset.traceId = trace;
  container.dataset.spanId = span;
  if (!span) {
    showMessage("empty", "Select a span to see its details.");
    return;
  }
  if (!TRACE_ID_RE.test(trace) || !SPAN_ID_RE.test(span)) {
    showMessage("error", "Not a valid trace or span id.");
    return;
  }
  if (!same || !container.firstChild) showMessage("loading", "Loading the span…");
  fetchDetail(pane.gen);
}

/** Aborts the fetch in flight and the refetch timer (the page closed or another span was selected). */
export function stopSpanDetail() {
  pane.gen += 1;
  if (pane.controller) pane.controller.abort();
  pane.controller = null;
  clearTimeout(pane.timer);
  pane.timer = 0;
  pane.done = false;
}

function showMessage(state, text, retry = false) {
  const container = pane.container;
  container.dataset.state = state;
  container.setAttribute("aria-busy", String(state === "loading"));
  const p = el("p", "span-detail-message", text);
  container.replaceChildren(p);
  if (retry) {
    const button = el("button", "link-button span-detail-retry", "Retry");
    button.type = "button";
    button.addEventListener("click", () => {
      stopSpanDetail();
      showMessage("loading", "Loading the span…");
      fetchDetail(pane.gen);
    });
    p.append(" ", button);
  }
}

async function fetchDetail(gen) {
  const controller = new AbortController();
  pane.controller = controller;
  let outcome;
  try {
    const response = await fetch(`api/traces/${pane.traceId}/spans/${pane.spanId}`, {
      headers: { Accept: "application/json" },
      cache: "no-store",
      signal: controller.signal,
    });
    if (response.status === 404) outcome = { state: "missing" };
    else if (!response.ok) outcome = { state: "error", error: `the server answered ${response.status}` };
    else {
      const body = await response.json();
      outcome = isObject(body) && isObject(body.span)
        ? { state: "ok", body } : { state: "error", error: "the server's answer is not a span" };
    }
  } catch {
    if (controller.signal.aborted || gen !== pane.gen) return;
    outcome = { state: "error", error: "the server could not be reached" };
  }
  if (gen !== pane.gen) return; // another span is shown now
  pane.controller = null;
  if (outcome.state === "missing") {
    showMessage("missing", "This span's details are not kept (the trace is too old, or not received yet).", true);
  } else if (outcome.state === "error") {
    showMessage("error", `Could not load the span: ${outcome.error}.`, true);
  } else {
    draw(outcome.body);
    const running = !outcome.body.span.end_time;
    pane.done = !running;
    if (running) pane.timer = setTimeout(() => refetch(gen), DETAIL.pollMs);
  }
}

function refetch(gen) {
  if (gen !== pane.gen) return;
  if (!pane.container || !pane.container.isConnected) {
    stopSpanDetail();
    return;
  }
  if (document.hidden) {
    pane.timer = setTimeout(() => refetch(gen), DETAIL.pollMs);
    return;
  }
  fetchDetail(gen);
}

// --- drawing -----------------------------------------------------------------------------------

function draw(body) {
  const container = pane.container;
  const scroll = container.scrollTop;
  for (const details of container.querySelectorAll("details[data-key]")) {
    if (details.open) pane.open.add(details.dataset.key);
    else pane.open.delete(details.dataset.key);
  }
  const s = body.span;
  const root = el("div", "span-detail-body");
  root.append(title(s));
  if (isObject(body.model_call)) root.append(modelFigures(body.model_call));
  if (isObject(body.transcript)) root.append(renderTranscript(body.transcript, pane.folds));
  if (isObject(body.tool_io)) root.append(toolIo(s, body.tool_io));
  const exceptions = Array.isArray(body.exceptions) ? body.exceptions.filter(isObject) : [];
  if (exceptions.length) root.append(exceptionList(exceptions));
  const events = (Array.isArray(body.events) ? body.events : [])
    .filter((e) => isObject(e) && e.name !== "exception");
  if (events.length || body.dropped_events) root.append(eventList(events, body.dropped_events));
  root.append(rawAttributes(isObject(body.attributes) ? body.attributes : s.attributes, body.dropped_attributes));
  container.dataset.state = "ok";
  container.setAttribute("aria-busy", "false");
  container.replaceChildren(root);
  container.scrollTop = scroll;
}

function section(className, heading) {
  const box = el("section", `span-detail-section ${className}`);
  box.append(el("h4", "span-detail-heading", heading));
  return box;
}

function title(s) {
  const head = el("header", "span-detail-head");
  const h = el("h3", "span-detail-title");
  const kind = typeof s.kind === "string" && s.kind ? s.kind : "span";
  h.append(el("span", "span-detail-kind", kind), " ",
    el("span", "span-detail-name", typeof s.name === "string" && s.name ? s.name : "(unnamed span)"));
  head.append(h);
  const meta = el("p", "span-detail-meta");
  const running = !s.end_time;
  const status = running ? "running" : (typeof s.status === "string" ? s.status : "unset");
  const badge = el("span", `span-detail-status status-${["ok", "error", "running"].includes(status) ? status : "unset"}`,
    status);
  meta.append(badge, el("span", "span-detail-duration", running ? "running…" : fmtDurationMs(s.duration_ms)));
  if (typeof s.service_name === "string" && s.service_name) meta.append(el("span", "span-detail-service", s.service_name));
  if (typeof s.agent_name === "string" && s.agent_name) meta.append(el("span", "span-detail-agent", `agent ${s.agent_name}`));
  meta.append(el("span", "span-detail-id", `span ${s.span_id ?? pane.spanId}`));
  head.append(meta);
  if (typeof s.status_message === "string" && s.status_message) {
    head.append(foldedText(s.status_message, { key: "status", folds: pane.folds, className: "span-detail-status-message" }));
  }
  return head;
}

function figure(list, label, value) {
  if (value === null || value === undefined || value === "") return;
  const pair = el("div", "span-detail-figure");
  pair.append(el("dt", null, label), el("dd", null, String(value)));
  list.append(pair);
}

function modelFigures(m) {
  const box = section("span-detail-model", "Model call");
  const list = el("dl", "span-detail-figures");
  const model = typeof m.model === "string" ? m.model : null;
  figure(list, "Model", model);
  if (typeof m.request_model === "string" && m.request_model && m.request_model !== model) {
    figure(list, "Requested", m.request_model);
  }
  figure(list, "Provider", typeof m.provider === "string" ? m.provider : null);
  figure(list, "Operation", typeof m.operation === "string" ? m.operation : null);
  figure(list, "Tokens in", m.input_tokens === null || m.input_tokens === undefined ? "–" : fmtInt(m.input_tokens));
  figure(list, "Tokens out", m.output_tokens === null || m.output_tokens === undefined ? "–" : fmtInt(m.output_tokens));
  const cost = costText(m);
  figure(list, "Cost", cost ? cost.text : (m.cost_status === "no_tokens" ? "no tokens" : fmtCost(m.cost_usd) ?? "–"));
  figure(list, "Latency", m.duration_ms === null || m.duration_ms === undefined ? "–" : fmtDurationMs(m.duration_ms));
  figure(list, "Time to first token",
    m.time_to_first_token_ms === null || m.time_to_first_token_ms === undefined ? "–" : fmtDurationMs(m.time_to_first_token_ms));
  const reasons = Array.isArray(m.finish_reasons) ? m.finish_reasons.filter((r) => typeof r === "string") : [];
  if (reasons.length) figure(list, "Finish", reasons.join(", "));
  box.append(list);
  return box;
}

function toolIo(s, io) {
  const name = typeof s.tool_name === "string" && s.tool_name ? s.tool_name : null;
  const box = section("span-detail-tool", name ? `Tool ${name}` : "Tool call");
  box.append(el("p", "span-detail-label", "Arguments"));
  box.append(io.arguments === null || io.arguments === undefined
    ? el("p", "span-detail-note", "No arguments recorded.")
    : foldedText(prettyValue(io.arguments), { key: "tool.arguments", folds: pane.folds, className: "span-detail-json" }));
  box.append(el("p", "span-detail-label", "Result"));
  box.append(io.result === null || io.result === undefined
    ? el("p", "span-detail-note", "No result recorded.")
    : foldedText(prettyValue(io.result), { key: "tool.result", folds: pane.folds, className: "span-detail-json" }));
  if (io.cut) box.append(el("p", "span-detail-note", "Cut: the server shortened a value that was too long."));
  return box;
}

function exceptionList(exceptions) {
  const box = section("span-detail-exceptions", exceptions.length === 1 ? "Exception" : `Exceptions (${exceptions.length})`);
  exceptions.forEach((x, i) => {
    const item = el("div", "span-detail-exception");
    const head = el("p", "span-detail-exception-head");
    head.append(el("strong", "span-detail-exception-type", typeof x.type === "string" && x.type ? x.type : "exception"));
    if (typeof x.message === "string" && x.message) head.append(": ", el("span", "span-detail-exception-message", x.message));
    item.append(head);
    const escaped = x.escaped === true || x.escaped === "True" || x.escaped === "true";
    if (escaped) item.append(el("p", "span-detail-note", "Escaped the span."));
    if (typeof x.stacktrace === "string" && x.stacktrace) {
      item.append(foldedText(x.stacktrace.replace(/\n$/, ""), {
        key: `exception.${i}`, folds: pane.folds, className: "span-detail-stack",
        lines: FOLD.stackLines, chars: Infinity, label: "Show more",
      }));
    }
    box.append(item);
  });
  return box;
}

function collapsed(key, summary) {
  const details = el("details", `span-detail-section span-detail-${key}`);
  details.dataset.key = key;
  details.open = pane.open.has(key);
  details.append(el("summary", "span-detail-heading", summary));
  return details;
}

function eventList(events, dropped) {
  const details = collapsed("events", `Span events (${fmtInt(events.length)})`);
  const list = el("ol", "span-detail-events");
  for (const e of events.slice(0, DETAIL.maxEvents)) {
    const item = el("li", "span-detail-event");
    item.append(el("strong", null, typeof e.name === "string" ? e.name : "(event)"));
    if (typeof e.time === "string") item.append(" ", el("span", "span-detail-event-time", e.time));
    const attrs = isObject(e.attributes) ? e.attributes : {};
    if (Object.keys(attrs).length) {
      const dl = el("dl", "kv span-detail-kv");
      for (const key of Object.keys(attrs).slice(0, 50)) kvRow(dl, key, attrs[key]);
      item.append(dl);
    }
    list.append(item);
  }
  details.append(list);
  const more = Math.max(0, events.length - DETAIL.maxEvents) + (Number(dropped) > 0 ? Number(dropped) : 0);
  if (more) details.append(el("p", "span-detail-note", `${fmtInt(more)} more span events not shown or not kept.`));
  return details;
}

function rawAttributes(attributes, dropped) {
  const attrs = isObject(attributes) ? attributes : {};
  const keys = Object.keys(attrs).sort();
  const details = collapsed("raw", `Raw attributes (${fmtInt(keys.length)})`);
  const list = el("dl", "span-detail-attrs");
  for (const key of keys.slice(0, DETAIL.maxAttributes)) {
    const value = attrs[key];
    list.append(el("dt", "span-detail-attr-key", key));
    const dd = el("dd", "span-detail-attr-value");
    dd.append(typeof value === "string" && !/^\s*[[{]/.test(value)
      ? foldedText(value, { key: `attr.${key}`, folds: pane.folds })
      : foldedText(prettyValue(value), { key: `attr.${key}`, folds: pane.folds, className: "span-detail-json" }));
    list.append(dd);
  }
  details.append(list);
  if (!keys.length) details.append(el("p", "span-detail-note", "No attributes kept."));
  const more = Math.max(0, keys.length - DETAIL.maxAttributes) + (Number(dropped) > 0 ? Number(dropped) : 0);
  if (more) details.append(el("p", "span-detail-note", `${fmtInt(more)} more attributes not shown or not kept.`));
  return details;
}
