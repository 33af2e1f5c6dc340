// The opportunities panel: one card per opportunity, newest first.

import { $, el, fmtPercent, fmtTime, intFormat, num, txt } from "./util.js";
import { dirty, model, ui } from "./store.js";

const opportunityCards = new Map(); // key -> <li>

export function renderOpportunities() {
  dirty.opportunities = false;
  const list = $("opportunities");
  if (ui.rebuildOpportunities) {
    ui.rebuildOpportunities = false;
    list.replaceChildren();
    opportunityCards.clear();
  }
  const keys = new Set(model.opportunities.map((o) => o._key));
  for (const [key, card] of opportunityCards) {
    if (!keys.has(key)) {
      card.remove();
      opportunityCards.delete(key);
    }
  }
  let cursor = list.firstElementChild;
  for (const o of model.opportunities) {
    let card = opportunityCards.get(o._key);
    if (!card) {
      card = makeOpportunityCard(o);
      opportunityCards.set(o._key, card);
    }
    if (card !== cursor) list.insertBefore(card, cursor);
    else cursor = cursor.nextElementSibling;
  }
  $("opps-count").textContent = String(model.opportunities.length);
  $("opps-empty").hidden = model.opportunities.length > 0;
}

function confidenceClass(c) {
  if (c >= 0.8) return "conf-high";
  if (c >= 0.5) return "conf-mid";
  return "conf-low";
}

function makeOpportunityCard(o) {
  const li = el("li", "opp");
  li.dataset.key = o._key;
  const head = el("div", "opp-head");
  head.appendChild(el("h3", "opp-title", txt(o.title || o.opportunity_id || "Untitled opportunity", 160)));
  if (o.category) head.appendChild(el("span", "opp-category", txt(o.category, 40)));
  li.appendChild(head);
  if (o.description) li.appendChild(el("p", "opp-desc", txt(o.description, 600)));

  const foot = el("div", "opp-foot");
  const c = num(o.confidence_score);
  const conf = el("div", `opp-conf ${c === null ? "conf-low" : confidenceClass(c)}`);
  const bar = el("span", "conf-bar");
  const fill = el("span", "conf-fill");
  fill.style.width = `${Math.max(0, Math.min(100, (c ?? 0) * 100))}%`;
  bar.appendChild(fill);
  conf.append(bar, el("span", "conf-value", c === null ? "?" : fmtPercent(c)));
  conf.title = "Confidence";
  foot.appendChild(conf);
  const revenue = o.revenue_potential;
  if (revenue !== null && revenue !== undefined && revenue !== "") {
    const r = typeof revenue === "number" ? `$${intFormat.format(revenue)}` : txt(revenue, 40);
    foot.appendChild(el("span", "opp-revenue", r));
  }
  li.appendChild(foot);
  const meta = [o.agent_name, fmtTime(o.timestamp)].filter(Boolean).map((v) => txt(v, 60)).join(" · ");
  li.appendChild(el("p", "opp-meta", meta));
  return li;
}
