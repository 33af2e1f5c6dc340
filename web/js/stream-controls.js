// The stream's controls: the mode and system toggles, the outcome chips, the search, the agent and
// service lists, the "More filters" menu, the rows (click, keys), the hold (pointer, scroll, the
// open view), the "N new" pill and the running rows' clock.

import { CONFIG } from "./config.js";
import { $ } from "./util.js";
import { applyFilters, buildTypeOptions, clearFilters, filters, renderFilterControls } from "./filters.js";
import {
  isAtTop, noteSelection, releaseIfFree, renderStreamCounts, selectRow, setPaused, showHeld, tickStream, view,
  visibleRows,
} from "./stream.js";
import { ui } from "./store.js";
import { openDetail } from "./detail.js";
import { openRoute } from "./router.js";

/** Open what a row shows: a run opens the run view (#run=...), any other row the event view (#event=...). */
export function openRow(row) {
  const entry = row._entry;
  if (entry && entry.kind === "run" && entry.runId) {
    openRoute({ run: entry.runId });
    selectRow(row);
    return;
  }
  openDetail(row);
  selectRow(row);
  if (row._ev && row._ev.seq !== null) openRoute({ event: row._ev.seq });
}

export function wireStream() {
  buildTypeOptions();
  $("pause").addEventListener("click", () => setPaused(!ui.paused));
  $("filters").addEventListener("submit", (e) => e.preventDefault());

  for (const chip of document.querySelectorAll(".outcome-chip")) {
    chip.addEventListener("click", () => {
      filters.outcome = chip.dataset.outcome;
      applyFilters();
    });
  }
  $("mode-raw").addEventListener("click", () => {
    filters.mode = filters.mode === "raw" ? "runs" : "raw";
    applyFilters();
  });
  $("mode-system").addEventListener("click", () => {
    filters.system = !filters.system;
    applyFilters();
  });
  $("filter-agent").addEventListener("change", (e) => {
    filters.agent = e.target.value;
    applyFilters();
  });
  $("filter-service").addEventListener("change", (e) => {
    filters.service = e.target.value;
    applyFilters();
  });
  let searchTimer = 0;
  $("filter-text").addEventListener("input", (e) => {
    clearTimeout(searchTimer);
    const value = e.target.value.trim().toLowerCase();
    searchTimer = setTimeout(() => {
      filters.text = value;
      applyFilters();
    }, CONFIG.searchDebounceMs);
  });
  $("filter-clear").addEventListener("click", clearFilters);

  const menu = $("more-menu");
  document.addEventListener("click", (e) => {
    if (menu.open && !menu.contains(e.target)) menu.open = false;
  });

  const stream = $("stream");
  stream.addEventListener("click", (e) => {
    const row = e.target.closest(".ev");
    if (row && stream.contains(row)) openRow(row);
  });
  stream.addEventListener("keydown", (e) => {
    const row = e.target.closest(".ev");
    if (!row) return;
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      openRow(row);
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const rows = visibleRows();
      const next = rows[rows.indexOf(row) + (e.key === "ArrowDown" ? 1 : -1)];
      if (next) next.focus();
    }
  });
  stream.addEventListener("scroll", () => {
    if (isAtTop(stream)) releaseIfFree();
  }, { passive: true });
  stream.addEventListener("animationend", (e) => e.target.classList.remove("ev-new"));

  // The hold: while the pointer is over the list, new rows wait (the rows do not move under it).
  const wrap = stream.parentElement;
  wrap.addEventListener("pointerenter", () => {
    view.pointerInside = true;
  });
  wrap.addEventListener("pointerleave", () => {
    view.pointerInside = false;
    releaseIfFree();
  });
  new MutationObserver(noteSelection).observe($("detail"), { attributes: true, attributeFilter: ["hidden", "data-view"] });
  window.addEventListener("hashchange", noteSelection);

  $("new-pill").addEventListener("click", () => {
    showHeld();
    const reduce = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    stream.scrollTo({ top: 0, behavior: reduce ? "auto" : "smooth" });
    stream.focus({ preventScroll: true });
  });

  setInterval(tickStream, 1000);
  renderFilterControls();
  renderStreamCounts();
}
