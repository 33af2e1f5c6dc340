// Deep links: the URL's hash names the open view, so a reload or a shared URL reopens it:
//   #run=<run_id>   the run view            #agent=<name>[&service=<name>]   the agent view
//   #event=<seq>    the event view          (these three open in the aside, over the live page)
//   #trace=<id>[&span=<span_id>]   the trace page      #traces=1   the traces list
//   #conversation=<id>             a conversation      #graph=window | #graph=<trace_id>   the graph
// Opening a view from the page pushes one history entry (later views replace it), so Back closes
// the aside; closing the aside goes back to that entry's predecessor (or, for a view the page was
// loaded with, clears the hash). Back and forward (hashchange, popstate) open what the URL names.

import { $ } from "./util.js";
import { closeDetail, openEventBySeq } from "./detail.js";
import { openRunView } from "./run-view.js";
import { renderAgentView } from "./agent-view.js";
import { showLive } from "./pages.js";
import { openTracePage } from "./trace-page.js";
import { openConversation, openTracesPage } from "./traces-page.js";
import { openGraphPage } from "./graph-page.js";

const KEYS = ["run", "agent", "service", "trace", "span", "traces", "conversation", "graph", "event"];
const MARK = "otelDashboardView"; // history.state of the entry the page pushed for a view

let shown = ""; // the hash of the view the aside shows ("" when closed)
let routing = 0; // > 0 while show() opens what a route names: closing the aside then must not move history

function isPage(route) {
  return Boolean(route.trace || route.traces || route.conversation || route.graph);
}

/** The route named by the current hash, e.g. {run: "abc"}; {} when none. */
export function currentRoute() {
  return parseRoute(window.location.hash.slice(1));
}

function parseRoute(hash) {
  const params = new URLSearchParams(hash);
  const route = {};
  for (const key of KEYS) {
    const value = params.get(key);
    if (value) route[key] = value;
  }
  return route;
}

/** The hash of a route, without "#": "run=abc", "agent=Planner&service=demo". */
export function routeHash(route) {
  const parts = [];
  for (const key of KEYS) {
    const value = route[key];
    if (value !== undefined && value !== null && value !== "") parts.push(`${key}=${encodeURIComponent(String(value))}`);
  }
  return parts.join("&");
}

function pushedByUs() {
  return Boolean(history.state && history.state[MARK]);
}

/** Name a view the page opened in the URL (no view is opened: the caller did that). */
export function setRoute(route) {
  const hash = routeHash(route);
  shown = hash;
  if (window.location.hash.slice(1) === hash) return;
  const url = hash ? `#${hash}` : window.location.pathname + window.location.search;
  if (!hash) history.replaceState(history.state, "", url);
  // An aside view replaces the aside view the page pushed before it (Back closes the aside); a page,
  // or a view opened from a page, gets its own entry (Back returns to the page it came from).
  else if (pushedByUs() && !isPage(route) && !isPage(currentRoute())) history.replaceState({ [MARK]: true }, "", url);
  else history.pushState({ [MARK]: true }, "", url);
}

/** Open the view a route names, and name it in the URL. */
export function openRoute(route) {
  setRoute(route);
  show(parseRoute(routeHash(route)));
}

/** The view was closed: the URL names none (Back to before the view, when the page pushed it). */
export function closeRoute() {
  if (routing) return;
  shown = "";
  if (!window.location.hash) return;
  if (pushedByUs()) history.back();
  else history.replaceState(null, "", window.location.pathname + window.location.search);
}

function show(route) {
  routing += 1;
  try {
    showRoute(route);
  } finally {
    routing -= 1;
  }
}

function showRoute(route) {
  shown = routeHash(route);
  if (isPage(route)) {
    closeDetail(false);
    if (route.trace) openTracePage(route.trace, route.span || "");
    else if (route.conversation) openConversation(route.conversation);
    else if (route.traces) openTracesPage();
    else openGraphPage(route.graph);
    return;
  }
  showLive();
  if (route.run) openRunView(route.run);
  else if (route.agent) renderAgentView(route.agent, route.service || "");
  else if (route.event) openEventBySeq(Number(route.event));
}

/** The URL changed (load, back, forward, an edited hash): show what it names. */
function onUrl() {
  const route = currentRoute();
  const hash = routeHash(route);
  if (!hash) {
    shown = "";
    closeDetail(false);
    showLive();
    return;
  }
  if (hash === shown && (!$("detail").hidden || document.body.dataset.page !== "live")) return; // on screen
  show(route);
}

export function wireRouter() {
  window.addEventListener("hashchange", onUrl);
  window.addEventListener("popstate", onUrl);
  onUrl();
}
