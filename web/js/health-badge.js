// The top bar's health badge: the server's own health with /health semantics ("healthy" or
// "degraded", with the reasons why), from the newest system_health_updated event and from
// GET health, fetched when the page (re)connects and every 15 s while it is connected. The reasons
// are in a popover shown on hover and on keyboard focus (a click pins it). While the page is not
// connected the badge says "unknown": the last report may no longer be true. Stalled agents are
// the agents' health (Running runs, the Active Agents card), never a reason here.

import { $, el, num, pad2, txt } from "./util.js";
import { isLive, live, onLiveChange } from "./liveness.js";
import { model } from "./store.js";

const REFRESH_MS = 15000;

const health = {
  status: null, // "healthy" | "degraded" | another word from the server | null: no report yet
  reasons: [],
  uptime: -1, // the report's uptime_seconds: the newer report has the larger one (same server)
  atMs: 0, // Date.now() when the report arrived
  lastKnown: null, // { status, atMs } of the last report before the page lost its server
};

let timer = 0;
let reportListener = null;
let fetching = false;
let pinned = false;

function clock(ms) {
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** Take a report (an event's data or the /health body) if it is not older than the one shown. */
function take(report) {
  if (!report || typeof report !== "object") return;
  const uptime = num(report.uptime_seconds) ?? -1;
  if (health.status !== null && uptime >= 0 && uptime < health.uptime) return; // a replayed, older report
  health.status = typeof report.status === "string" ? txt(report.status, 20) : null;
  health.reasons = Array.isArray(report.reasons)
    ? report.reasons.filter((r) => typeof r === "string").slice(0, 8).map((r) => txt(r, 120))
    : [];
  health.uptime = Math.max(uptime, health.uptime);
  health.atMs = Date.now();
  renderBadge();
  if (reportListener) reportListener(report);
}

/** Call fn(report) with each report the badge takes (the top bar's figures come with it). */
export function onHealthReport(fn) {
  reportListener = fn;
}

/** The newest system_health_updated event's data (cards.js hands it over on each render). */
export function noteHealthEvent(data) {
  if (isLive()) take(data);
}

async function fetchHealth() {
  if (fetching || !isLive()) return;
  fetching = true;
  try {
    const res = await fetch("health", { cache: "no-store", headers: { Accept: "application/json" } });
    const body = res.ok ? await res.json() : null;
    // On a cluster the badge is this page's replica's: an answer from another one is left out.
    const replica = body && body.broker && typeof body.broker.replica === "string" ? body.broker.replica : null;
    if (body && isLive() && (model.replica === null || replica === null || replica === model.replica)) take(body);
  } catch {
    // the socket will notice a server that went away; the next refresh tries again
  } finally {
    fetching = false;
  }
}

function onLive(connected) {
  clearInterval(timer);
  timer = 0;
  if (connected) {
    // A new connection, perhaps to a restarted server: nothing said before counts.
    health.status = null;
    health.reasons = [];
    health.uptime = -1;
    fetchHealth();
    timer = setInterval(fetchHealth, REFRESH_MS);
  } else if (health.status !== null) {
    health.lastKnown = { status: health.status, atMs: health.atMs };
  }
  renderBadge();
}

export function renderBadge() {
  const badge = $("health-status");
  const connected = isLive();
  const status = connected ? health.status : null;
  badge.dataset.status = status === "healthy" || status === "degraded" ? status : "unknown";
  badge.textContent = `health ${connected ? status || "–" : "unknown"}`;
  const title = $("health-pop-title");
  const list = $("health-reasons");
  const note = $("health-pop-note");
  list.replaceChildren();
  if (!connected) {
    title.textContent = live.lastMessageMs ? "Disconnected: the server's health is unknown." : "Not connected yet.";
    const last = health.lastKnown;
    note.textContent = last ? `Last report: ${last.status} at ${clock(last.atMs)}.` : "";
  } else if (status === null) {
    title.textContent = "No health report yet.";
    note.textContent = "";
  } else {
    const degraded = status !== "healthy";
    title.textContent = degraded ? `The server is ${status}:` : "The server is healthy.";
    for (const reason of health.reasons) list.appendChild(el("li", null, reason));
    note.textContent = `Checked ${clock(health.atMs)}. Stalled agents are shown on their runs, not here.`;
  }
  list.hidden = list.childElementCount === 0;
  note.hidden = note.textContent === "";
}

function setOpen(open) {
  const pop = $("health-pop");
  pop.hidden = !open;
  $("health-status").setAttribute("aria-expanded", String(open));
}

export function wireHealthBadge() {
  const badge = $("health-status");
  const wrap = badge.parentElement;
  const pop = $("health-pop");
  const show = () => setOpen(true);
  const hide = () => {
    if (!pinned && !wrap.matches(":hover") && document.activeElement !== badge) setOpen(false);
  };
  wrap.addEventListener("mouseenter", show);
  wrap.addEventListener("mouseleave", hide);
  badge.addEventListener("focus", show);
  badge.addEventListener("blur", () => {
    pinned = false;
    hide();
  });
  badge.addEventListener("click", () => {
    pinned = !pinned || pop.hidden;
    setOpen(pinned || wrap.matches(":hover"));
  });
  badge.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !pop.hidden) {
      e.stopPropagation(); // close the popover, not the detail panel
      pinned = false;
      setOpen(false);
    }
  });
  onLiveChange(onLive);
  renderBadge();
}
