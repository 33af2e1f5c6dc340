// Deep links: the URL's hash names the open view, so a reload or a shared URL reopens it:
//   #run=<run_id>   the run view            #agent=<name>[&service=<name>]   the agent view
//   #trace=<id>     the trace waterfall     #event=<seq>                     the event view
// Opening a view from the page pushes one history entry (later views replace it), so Back closes
// the aside; closing the aside goes back to that entry's predecessor (or, for a view the page was
// loaded with, clears the hash). Back and forward (hashchange, popstate) open what the URL names.

import { $ } from "./util.js";
import { closeDetail, openEventBySeq, openTracePanel } from "./detail.js";
import { openRunView } from "./run-view.js";
import { renderAgentView } from "./agent-view.js";

const KEYS = ["run", "agent", "service", "trace", "event"];
const MARK = "otelDashboardView"; // history.state of the entry the page pushed for a view

let shown = ""; // the hash of the view the aside shows ("" when closed)

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
  else if (pushedByUs()) history.replaceState({ [MARK]: true }, "", url);
  else history.pushState({ [MARK]: true }, "", url);
}

/** Open the view a route names, and name it in the URL. */
export function openRoute(route) {
  setRoute(route);
  show(parseRoute(routeHash(route)));
}

/** The view was closed: the URL names none (Back to before the view, when the page pushed it). */
export function closeRoute() {
  shown = "";
  if (!window.location.hash) return;
  if (pushedByUs()) history.back();
  else history.replaceState(null, "", window.location.pathname + window.location.search);
}

function show(route) {
  shown = routeHash(route);
  if (route.run) openRunView(route.run);
  else if (route.agent) renderAgentView(route.agent, route.service || "");
  else if (route.trace) openTracePanel(route.trace);
  else if (route.event) openEventBySeq(Number(route.event));
}

/** The URL changed (load, back, forward, an edited hash): show what it names. */
function onUrl() {
  const route = currentRoute();
  const hash = routeHash(route);
  if (!hash) {
    shown = "";
    closeDetail(false);
    return;
  }
  if (hash === shown && !$("detail").hidden) return; // already on screen
  show(route);
}

export function wireRouter() {
  window.addEventListener("hashchange", onUrl);
  window.addEventListener("popstate", onUrl);
  onUrl();
}
