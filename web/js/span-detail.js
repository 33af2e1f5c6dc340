// A span's details on the trace page (GET api/traces/{trace_id}/spans/{span_id}): the model call,
// the chat transcript, tool arguments and result, exceptions, raw attributes. Stub: built in issue 16
// (docs/dashboard.md, "Span details").

import { el } from "./util.js";

/** Fills `container` with the details of one span (fetched); a later call replaces them. */
export function renderSpanDetail(container, traceId, spanId) {
  container.replaceChildren(el("p", "span-detail-message", spanId ? `Span ${spanId}` : "Select a span."));
  container.dataset.traceId = traceId;
}

/** Aborts the fetch in flight (the page closed or another span was selected). */
export function stopSpanDetail() {}
