// The page's pages: the live dashboard (<main>) or one whole view in its own <section class="page">
// (the trace page, the traces list, the agent graph). One is shown at a time; the router (router.js)
// decides which from the URL, and the view modules call showPage() when they open.
//
// Leaving a page calls the leave callback its module gave (to stop its fetches and timers), so a
// hidden page never polls.

import { $ } from "./util.js";

const PAGE_IDS = { trace: "page-trace", traces: "page-traces", graph: "page-graph" };

let current = "live";
let leaveCurrent = null;

/** The page shown now: "live", "trace", "traces" or "graph". */
export function currentPage() {
  return current;
}

/** Shows a page (hiding the dashboard and the other pages); `onLeave` runs when another is shown. */
export function showPage(name, onLeave = null) {
  if (!(name in PAGE_IDS) && name !== "live") throw new Error(`unknown page ${name}`);
  if (current !== name && leaveCurrent) {
    const leave = leaveCurrent;
    leaveCurrent = null;
    leave();
  }
  current = name;
  leaveCurrent = onLeave;
  document.querySelector("main.main").hidden = name !== "live";
  for (const [page, id] of Object.entries(PAGE_IDS)) $(id).hidden = page !== name;
  document.body.dataset.page = name;
  for (const tab of document.querySelectorAll(".page-tab")) {
    const own = tab.dataset.page === name || (name === "trace" && tab.dataset.page === "traces");
    if (own) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
}

/** Back to the live dashboard. */
export function showLive() {
  showPage("live");
}
