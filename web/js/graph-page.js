// The live agent graph (#graph=window or #graph=<trace_id>). Stub: built in issue 16
// (docs/dashboard.md, "Agent graph").

import { $, el } from "./util.js";
import { showPage } from "./pages.js";

/** Opens the graph page; `scope` is "window" or a trace id. */
export function openGraphPage(scope) {
  showPage("graph", closeGraphPage);
  $("graph-page-body").replaceChildren(el("p", "empty", `Graph of ${scope}`));
}

/** Stops the page's polling (called when another page is shown). */
export function closeGraphPage() {
  $("graph-page-body").replaceChildren();
}
