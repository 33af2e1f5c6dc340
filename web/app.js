// otel-dashboard: the live page. ES modules loaded by the browser as they are: no dependencies,
// no build step. This entry module wires the page's controls and starts the connection; each
// module in js/ holds one part of the page (docs/dashboard.md, "How the page is built").
//
// Data flow: WebSocket message -> model (cheap, synchronous: dedupe by seq, running agents,
// opportunities, latest metrics) -> dirty flags and a bounded row queue -> one render per animation
// frame. Nothing from the server is ever parsed as HTML: every string reaches the DOM through
// textContent (or a form control's value), never as markup, and no href is built from data.

import { CONFIG, EVENT_TYPES, SEVERITIES } from "./js/config.js";
import { $ } from "./js/util.js";
import { model, ui } from "./js/store.js";
import { conn, connect, renderConnText, retryNow } from "./js/connection.js";
import { auth, submitLogin } from "./js/login.js";
import { applyFilters, buildTypeOptions, filters, renderFilterControls, subscription } from "./js/filters.js";
import { scheduleRender } from "./js/render.js";
import { isAtTop, renderPill, renderStreamCounts, setPaused, visibleRows } from "./js/stream.js";
import { renderServerInfo, renderUptime, wireCards } from "./js/cards.js";
import { renderAgents, renderLost, tickAgents } from "./js/agents.js";
import { renderOpportunities } from "./js/opportunities.js";
import { closeDetail, openDetail } from "./js/detail.js";
import { scheduleTraceFetch, traceView } from "./js/trace-view.js";
import { applyTheme, storedTheme, toggleTheme } from "./js/theme.js";

function wire() {
  buildTypeOptions();
  applyTheme(storedTheme() === "light" ? "light" : "dark");
  wireCards();

  $("theme-toggle").addEventListener("click", toggleTheme);
  $("pause").addEventListener("click", () => setPaused(!ui.paused));
  $("conn-retry").addEventListener("click", retryNow);
  $("detail-close").addEventListener("click", () => closeDetail());
  $("filters").addEventListener("submit", (e) => e.preventDefault());

  for (const chip of document.querySelectorAll(".sev-chip")) {
    chip.addEventListener("click", () => {
      const sev = chip.dataset.severity;
      if (filters.severities.has(sev)) filters.severities.delete(sev);
      else filters.severities.add(sev);
      applyFilters();
    });
  }
  $("filter-agent").addEventListener("change", (e) => {
    filters.agent = e.target.value;
    applyFilters();
  });
  $("filter-service").addEventListener("change", (e) => {
    filters.service = e.target.value;
    applyFilters();
  });
  $("login-form").addEventListener("submit", submitLogin);
  let searchTimer = 0;
  $("filter-text").addEventListener("input", (e) => {
    clearTimeout(searchTimer);
    const value = e.target.value.trim().toLowerCase();
    searchTimer = setTimeout(() => {
      filters.text = value;
      applyFilters();
    }, CONFIG.searchDebounceMs);
  });
  $("filter-clear").addEventListener("click", () => {
    filters.types = new Set(EVENT_TYPES);
    filters.severities = new Set(SEVERITIES);
    filters.agent = "";
    filters.service = "";
    filters.text = "";
    $("filter-agent").value = "";
    $("filter-service").value = "";
    $("filter-text").value = "";
    applyFilters();
  });

  const stream = $("stream");
  stream.addEventListener("click", (e) => {
    const row = e.target.closest(".ev");
    if (row && stream.contains(row)) openDetail(row);
  });
  stream.addEventListener("keydown", (e) => {
    const row = e.target.closest(".ev");
    if (!row) return;
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      openDetail(row);
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const rows = visibleRows();
      const next = rows[rows.indexOf(row) + (e.key === "ArrowDown" ? 1 : -1)];
      if (next) next.focus();
    }
  });
  stream.addEventListener("scroll", () => {
    if (isAtTop(stream) && ui.newCount) renderPill();
  }, { passive: true });
  stream.addEventListener("animationend", (e) => e.target.classList.remove("ev-new"));

  $("new-pill").addEventListener("click", () => {
    const reduce = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    stream.scrollTo({ top: 0, behavior: reduce ? "auto" : "smooth" });
    ui.newCount = 0;
    renderPill();
    stream.focus({ preventScroll: true });
  });

  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      const menu = $("type-menu");
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
  document.addEventListener("click", (e) => {
    const menu = $("type-menu");
    if (menu.open && !menu.contains(e.target)) menu.open = false;
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

  renderFilterControls();
  renderServerInfo();
  renderStreamCounts();
  renderAgents();
  renderLost();
  renderOpportunities();
}

function tick() {
  if (document.hidden) return;
  if (model.metrics) renderUptime();
  tickAgents();
  if (conn.state === "waiting") renderConnText();
}

wire();
connect();

// A read-only view for debugging from the console (and for the browser tests).
Object.defineProperty(window, "otelDashboard", {
  value: Object.freeze({
    get lastSeq() { return model.lastSeq; },
    get connectionState() { return conn.state; },
    get runningAgents() { return model.agents.size; },
    get liveRuns() { return model.runs.size; },
    get lostAgents() { return model.lostAgents.length; },
    get loginRequired() { return auth.prompting; },
    get filters() { return { ...subscription(), paused: ui.paused }; },
  }),
});
