// otel-dashboard: the live page. ES modules loaded by the browser as they are: no dependencies,
// no build step. This entry module wires the page's controls and starts the connection; each
// module in js/ holds one part of the page (docs/dashboard.md, "How the page is built").
//
// Data flow: WebSocket message -> model (cheap, synchronous: dedupe by seq, running agents,
// opportunities, latest metrics) -> dirty flags and a bounded row queue -> one render per animation
// frame. Nothing from the server is ever parsed as HTML: every string reaches the DOM through
// textContent (or a form control's value), never as markup, and no href is built from data.

import { $ } from "./js/util.js";
import { model, ui } from "./js/store.js";
import { conn, connect, renderConnText, retryNow } from "./js/connection.js";
import { auth, submitLogin } from "./js/login.js";
import { subscription } from "./js/filters.js";
import { scheduleRender } from "./js/render.js";
import { wireStream } from "./js/stream-controls.js";
import { renderServerInfo, renderUptime, wireCards } from "./js/cards.js";
import { renderAgents, renderLost, runningEntries, tickAgents } from "./js/agents.js";
import { renderOpportunities } from "./js/opportunities.js";
import { closeDetail } from "./js/detail.js";
import { scheduleTraceFetch, traceView } from "./js/trace-view.js";
import { applyTheme, storedTheme, toggleTheme } from "./js/theme.js";
import { wireRouter } from "./js/router.js";
import { wireAgentsTable } from "./js/agents-table.js";
import { wireGuardrailsNote } from "./js/guardrails-note.js";

function wire() {
  wireStream();
  applyTheme(storedTheme() === "light" ? "light" : "dark");
  wireCards();

  $("theme-toggle").addEventListener("click", toggleTheme);
  $("conn-retry").addEventListener("click", retryNow);
  $("detail-close").addEventListener("click", () => closeDetail());
  $("login-form").addEventListener("submit", submitLogin);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      const menu = $("more-menu");
      if (menu.open) {
        menu.open = false;
        menu.querySelector("summary").focus();
      } else {
        closeDetail();
      }
      return;
    }
    const typing = e.target.closest && e.target.closest("input, select, textarea");
    if (e.key === "/" && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
      e.preventDefault();
      $("filter-text").focus();
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) {
      tick();
      scheduleRender();
      if (traceView.wantOnVisible) {
        traceView.wantOnVisible = false;
        scheduleTraceFetch(0);
      }
    }
  });
  window.addEventListener("online", retryNow);

  // One clock for every ticking thing: uptime, agent timers, the reconnect countdown.
  setInterval(tick, 1000);

  renderServerInfo();
  renderAgents();
  renderLost();
  renderOpportunities();
  wireAgentsTable();
  wireGuardrailsNote();
}

function tick() {
  if (document.hidden) return;
  if (model.metrics) renderUptime();
  tickAgents();
  if (conn.state === "waiting") renderConnText();
}

wire();
connect();
wireRouter(); // the view the URL names (#run=, #agent=, #trace=, #event=)

// A read-only view for debugging from the console (and for the browser tests).
Object.defineProperty(window, "otelDashboard", {
  value: Object.freeze({
    get lastSeq() { return model.lastSeq; },
    get connectionState() { return conn.state; },
    get runningAgents() { return model.agents.size; },
    get activeRuns() { return runningEntries().length; },
    get liveRuns() { return model.runs.size; },
    get lostAgents() { return model.lostAgents.length; },
    get loginRequired() { return auth.prompting; },
    get filters() { return { ...subscription(), paused: ui.paused }; },
  }),
});
