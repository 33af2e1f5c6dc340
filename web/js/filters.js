// The stream's filters: what matches them, the server subscription they imply, and their
// controls (severity chips, the type menu, the agent and service lists).

import { EVENT_TYPES, PANEL_TYPES, SEVERITIES, TYPE_LABELS } from "./config.js";
import { $, el, safeJson, txt } from "./util.js";
import { describe, severityOf, typeLabel, typeOf } from "./describe.js";
import { dirty, model, ui } from "./store.js";
import { conn, send } from "./connection.js";
import { renderStreamCounts } from "./stream.js";
import { closeDetail } from "./detail.js";

export const filters = {
  types: new Set(EVENT_TYPES),
  severities: new Set(SEVERITIES),
  agent: "",
  service: "",
  text: "",
};

function allTypes() {
  return filters.types.size === EVENT_TYPES.length;
}

function searchText(ev) {
  if (ev._search === undefined) {
    const { text } = describe(ev);
    ev._search = `${typeLabel(ev)} ${typeOf(ev)} ${text} ${safeJson(ev.data)} ${ev.trace_id || ""}`.toLowerCase();
  }
  return ev._search;
}

export function matches(ev) {
  if (!filters.severities.has(severityOf(ev))) return false;
  if (!allTypes() && !filters.types.has(typeOf(ev))) return false;
  if (filters.agent && ev.data.agent_name !== filters.agent && ev.data.agent_id !== filters.agent) return false;
  if (filters.service && ev.data.service_name !== filters.service) return false;
  if (filters.text && !searchText(ev).includes(filters.text)) return false;
  return true;
}

/**
 * The server subscription for the current filters. Only the type filter goes to the server, and
 * always with the panel types added: a severity or agent filter on the server would starve the
 * cards (metrics and health are info events without an agent), so those are applied here.
 */
export function subscription() {
  const types = allTypes() ? [] : EVENT_TYPES.filter((t) => filters.types.has(t) || PANEL_TYPES.includes(t));
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
  const stream = $("stream");
  for (const row of stream.children) row.hidden = !matches(row._ev);
  if (ui.detailRow && ui.detailRow.hidden) closeDetail(false);
  sendSubscription(false);
  renderFilterControls();
  renderStreamCounts();
}

export function renderFilterControls() {
  for (const chip of document.querySelectorAll(".sev-chip")) {
    chip.setAttribute("aria-pressed", String(filters.severities.has(chip.dataset.severity)));
  }
  for (const box of $("type-options").querySelectorAll("input[type=checkbox]")) {
    box.checked = filters.types.has(box.value);
  }
  $("type-summary").textContent = allTypes() ? "all" : `${filters.types.size} of ${EVENT_TYPES.length}`;
  $("type-menu").classList.toggle("active", !allTypes());
  const active = !allTypes() || filters.severities.size !== SEVERITIES.length || filters.agent
    || filters.service || filters.text;
  $("filter-clear").hidden = !active;
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
