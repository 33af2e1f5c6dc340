// The trace page (#trace=<id>[&span=<span_id>]): header, waterfall, span details. Stub: built in
// issue 16 (docs/dashboard.md, "Trace page").

import { $, el } from "./util.js";
import { showPage } from "./pages.js";

/** Opens the trace page on a trace, with `spanId` (or the root) selected. */
export function openTracePage(traceId, spanId = "") {
  showPage("trace", closeTracePage);
  const body = $("trace-page-body");
  body.replaceChildren(el("p", "trace-message", `Trace ${traceId} ${spanId}`));
}

/** Stops the page's fetches and timers (called when another page is shown). */
export function closeTracePage() {
  $("trace-page-body").replaceChildren();
}
