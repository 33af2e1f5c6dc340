// The stream's filters and view: the mode ("runs": one row per run; "raw": every event), the
// "System events" toggle, the outcome chips, the text search, the agent and service lists and (raw
// mode) the event types; what matches them, the server subscription they imply, and their controls.

import { EVENT_TYPES, PANEL_TYPES, TYPE_LABELS } from "./config.js";
import { $, el, txt } from "./util.js";
import { typeOf } from "./describe.js";
import { dirty, model, ui } from "./store.js";
import { conn, send } from "./connection.js";
import { rebuildStream } from "./stream.js";
import { closeDetail } from "./detail.js";
import { isSystem, outcomeMatches, searchTextOf } from "./run-rows.js";

export const OUTCOMES = ["all", "running", "succeeded", "failed"];

export const filters = {
  mode: "runs", // "runs" or "raw"
  system: false, // runs mode: show the metrics, health and agent-registered events too
  outcome: "all",
  types: new Set(EVENT_TYPES), // raw mode only
  agent: "",
  service: "",
  text: "",
};

function allTypes() {
  return filters.types.size === EVENT_TYPES.length;
}

function isRaw() {
  return filters.mode === "raw";
}

/** Whether a stream entry (a run, or one event) is shown by the current mode and filters. */
export function entryMatches(entry) {
  if (entry.kind === "event") {
    const ev = entry.ev;
    if (isRaw()) {
      if (!allTypes() && !filters.types.has(typeOf(ev))) return false;
    } else if (!filters.system && isSystem(ev)) {
      return false;
    }
    if (filters.agent && ev.data.agent_name !== filters.agent && ev.data.agent_id !== filters.agent) return false;
    if (filters.service && ev.data.service_name !== filters.service) return false;
  } else {
    if (filters.agent && entry.agentName !== filters.agent && entry.agentId !== filters.agent) return false;
    if (filters.service && entry.service !== filters.service) return false;
  }
  if (!outcomeMatches(entry, filters.outcome, isRaw())) return false;
  if (filters.text && !searchTextOf(entry).includes(filters.text)) return false;
  return true;
}

/** Whether any filter narrows what the stream shows (the mode and the system toggle aside). */
export function filtering() {
  return (isRaw() && !allTypes()) || filters.outcome !== "all" || Boolean(filters.agent || filters.service || filters.text);
}

/**
 * The server subscription for the current filters. Only the raw mode's type filter goes to the
 * server, and always with the panel types added: an outcome or agent filter on the server would
 * starve the cards (metrics and health are events without an agent), so those apply here.
 */
export function subscription() {
  const types = !isRaw() || allTypes() ? [] : EVENT_TYPES.filter((t) => filters.types.has(t) || PANEL_TYPES.includes(t));
  if (types.length === EVENT_TYPES.length) types.length = 0;
  return { type: "subscribe", event_types: types, severities: [], agents: [] };
}

export function sendSubscription(onConnect) {
  const sub = subscription();
  const key = JSON.stringify(sub);
  if (onConnect && !sub.event_types.length) {
    conn.lastSubscription = key; // a new connection starts unfiltered
    return;
  }
  if (key === conn.lastSubscription) return;
  conn.lastSubscription = key;
  send(sub);
}

export function applyFilters() {
  rebuildStream();
  if (ui.detailRow && !ui.detailRow.isConnected) closeDetail(false);
  sendSubscription(false);
  renderFilterControls();
}

export function clearFilters() {
  filters.types = new Set(EVENT_TYPES);
  filters.outcome = "all";
  filters.agent = "";
  filters.service = "";
  filters.text = "";
  $("filter-agent").value = "";
  $("filter-service").value = "";
  $("filter-text").value = "";
  applyFilters();
}

export function renderFilterControls() {
  for (const chip of document.querySelectorAll(".outcome-chip")) {
    chip.setAttribute("aria-pressed", String(chip.dataset.outcome === filters.outcome));
  }
  const raw = isRaw();
  $("mode-raw").setAttribute("aria-pressed", String(raw));
  const system = $("mode-system");
  system.setAttribute("aria-pressed", String(raw || filters.system));
  system.disabled = raw;
  system.title = raw ? "Raw events shows every event, the system events too" : "Show the metrics, health and agent-registered events";
  for (const box of $("type-options").querySelectorAll("input[type=checkbox]")) {
    box.checked = filters.types.has(box.value);
  }
  $("type-summary").textContent = allTypes() ? "all" : `${filters.types.size} of ${EVENT_TYPES.length}`;
  $("type-field").hidden = !raw;
  const more = (raw && !allTypes() ? 1 : 0) + (filters.service ? 1 : 0);
  $("more-menu").classList.toggle("active", more > 0);
  $("more-summary").textContent = more ? `More (${more})` : "More";
  $("more-menu").title = raw ? "Service and event types" : "Service";
  $("filter-clear").hidden = !filtering();
  $("panel-stream").dataset.mode = filters.mode;
}

export function renderAgentOptions() {
  dirty.agentOptions = false;
  addSortedOptions($("filter-agent"), model.agentNames);
}

export function renderServiceOptions() {
  dirty.serviceOptions = false;
  addSortedOptions($("filter-service"), model.serviceNames);
}

// Adds the names not offered yet to a filter <select>, keeping it sorted (existing options stay,
// so a selection is never lost).
function addSortedOptions(select, namesSet) {
  const present = new Set(Array.from(select.options, (o) => o.value));
  const names = Array.from(namesSet).sort((a, b) => a.localeCompare(b));
  for (const name of names) {
    if (present.has(name)) continue;
    const option = el("option", null, txt(name, 60));
    option.value = name;
    const after = Array.from(select.options).find((o) => o.value && o.value.localeCompare(name) > 0);
    select.insertBefore(option, after || null);
  }
}

export function buildTypeOptions() {
  const box = $("type-options");
  const actions = el("div", "menu-actions");
  const all = el("button", "link-button", "All");
  all.type = "button";
  all.addEventListener("click", () => {
    filters.types = new Set(EVENT_TYPES);
    applyFilters();
  });
  const none = el("button", "link-button", "None");
  none.type = "button";
  none.addEventListener("click", () => {
    filters.types = new Set();
    applyFilters();
  });
  actions.append(all, none);
  box.appendChild(actions);
  for (const type of EVENT_TYPES) {
    const label = el("label", "check");
    const input = el("input");
    input.type = "checkbox";
    input.value = type;
    input.checked = true;
    input.addEventListener("change", () => {
      if (input.checked) filters.types.add(type);
      else filters.types.delete(type);
      applyFilters();
    });
    label.append(input, el("span", `type-dot t-${type}`), el("span", null, TYPE_LABELS[type]));
    box.appendChild(label);
  }
}
