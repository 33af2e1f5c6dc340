// The traces list (#traces=1) and a conversation (#conversation=<id>) on the traces page. Stub:
// built in issue 16 (docs/dashboard.md, "Traces list and conversations").

import { $, el } from "./util.js";
import { showPage } from "./pages.js";

/** Opens the list of recent traces. */
export function openTracesPage() {
  showPage("traces", closeTracesPage);
  $("traces-page-body").replaceChildren(el("p", "empty", "Recent traces."));
}

/** Opens one conversation's runs, in order. */
export function openConversation(conversationId) {
  showPage("traces", closeTracesPage);
  $("traces-page-body").replaceChildren(el("p", "empty", `Conversation ${conversationId}`));
}

/** Stops the page's fetches (called when another page is shown). */
export function closeTracesPage() {
  $("traces-page-body").replaceChildren();
}
