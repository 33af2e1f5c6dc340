// Rendering: one pass per animation frame, only what changed. A hidden tab renders nothing.

import { dirty, queues, ui } from "./store.js";
import { renderAgentOptions, renderServiceOptions } from "./filters.js";
import { renderPaused, renderRows } from "./stream.js";
import { renderActive, renderCards, renderHealth } from "./cards.js";
import { renderAgents, renderLost } from "./agents.js";
import { renderOpportunities } from "./opportunities.js";

export function scheduleRender() {
  if (ui.rafId || document.hidden) return; // a hidden tab renders nothing; visibilitychange catches up
  ui.rafId = requestAnimationFrame(render);
}

function render() {
  ui.rafId = 0;
  if (document.hidden) return;
  if (queues.rows.length) renderRows();
  if (dirty.cards) renderCards();
  else if (dirty.agents) renderActive(); // the Active Agents card counts what the panel shows
  if (dirty.health) renderHealth();
  if (dirty.agents) renderAgents();
  if (dirty.lost) renderLost();
  if (dirty.opportunities) renderOpportunities();
  if (dirty.agentOptions) renderAgentOptions();
  if (dirty.serviceOptions) renderServiceOptions();
  if (dirty.paused) renderPaused();
}
