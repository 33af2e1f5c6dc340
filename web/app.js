// otel-dashboard: the live page. One ES module, no dependencies, no build step.
//
// Data flow: WebSocket message -> model (cheap, synchronous: dedupe by seq, running agents,
// opportunities, latest metrics) -> dirty flags and a bounded row queue -> one render per animation
// frame. Nothing from the server is ever parsed as HTML: every string reaches the DOM through
// textContent (or a form control's value), never as markup, and no href is built from data.

const CONFIG = Object.freeze({
  maxRows: 200, // event rows kept in the DOM; the oldest are removed
  maxOpportunities: 50, // opportunity cards kept
  maxAgentRows: 100, // running-agent rows shown; the rest are counted
  maxAgentOptions: 300, // agent names offered in the agent filter
  maxServiceOptions: 100, // service names offered in the service filter
  maxLostRows: 20, // lost agent runs shown; the rest are counted
  animateMaxPerFrame: 24, // rows arriving together above this count are not animated
  backoffBaseMs: 1000, // reconnect delay ceiling: 1 s doubling ...
  backoffCapMs: 30000, // ... to 30 s, full jitter
  backoffFloorMs: 250, // never retry faster than this
  pingIntervalMs: 20000, // keepalive ping
  silenceTimeoutMs: 60000, // no message at all for this long: the socket is considered dead
  seenCap: 20000, // seq numbers remembered for dedupe
  searchDebounceMs: 150,
  defaultStallSeconds: 300,
});

const EVENT_TYPES = [
  "agent_execution_started", "agent_execution_completed", "opportunity_discovered",
  "synthesis_started", "synthesis_completed", "quality_score_updated", "error_occurred",
  "system_health_updated", "agent_registered", "metrics_updated",
];
// The cards and panels live on these: they stay in the server subscription whatever the type filter.
const PANEL_TYPES = [
  "agent_execution_started", "agent_execution_completed", "opportunity_discovered",
  "system_health_updated", "metrics_updated",
];
const SEVERITIES = ["info", "success", "warning", "error"];
const TYPE_LABELS = {
  agent_execution_started: "Agent started",
  agent_execution_completed: "Agent completed",
  opportunity_discovered: "Opportunity",
  synthesis_started: "Synthesis started",
  synthesis_completed: "Synthesis done",
  quality_score_updated: "Quality score",
  error_occurred: "Error",
  system_health_updated: "Health",
  agent_registered: "Agent registered",
  metrics_updated: "Metrics",
};
const THEME_KEY = "otel-dashboard:theme";

// ------------------------------------------------------------------------------------------------
// small helpers

const $ = (id) => document.getElementById(id);

/** A new element with a class and text (always textContent). */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function safeJson(value, indent) {
  try {
    const s = JSON.stringify(value, null, indent);
    return s === undefined ? String(value) : s;
  } catch {
    return String(value);
  }
}

/** Any value as short display text. */
function txt(value, max = 200) {
  if (value === null || value === undefined) return "";
  let s = typeof value === "object" ? safeJson(value) : String(value);
  if (s.length > max) s = `${s.slice(0, max - 1)}…`;
  return s;
}

function num(value) {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value))) return Number(value);
  return null;
}

const intFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
function fmtInt(value) {
  const n = num(value);
  return n === null ? "–" : intFormat.format(Math.round(n));
}

function fmtFixed(value, digits) {
  const n = num(value);
  return n === null ? "–" : n.toFixed(digits);
}

function pad2(n) {
  return n < 10 ? `0${n}` : String(n);
}

/** Milliseconds as "850 ms", "1.2 s", "2m 05s", "1h 02m". */
function fmtDurationMs(value) {
  const ms = num(value);
  if (ms === null) return "?";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return fmtSpan(ms / 1000);
}

/** Seconds as "45s", "2m 05s", "1h 02m", "3d 04h". */
function fmtSpan(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad2(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${pad2(m % 60)}m`;
  return `${Math.floor(h / 24)}d ${pad2(h % 24)}h`;
}

/** Seconds as a running clock: "0:07", "12:34", "1:02:03". */
function fmtClock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${pad2(m)}:${pad2(s % 60)}` : `${m}:${pad2(s % 60)}`;
}

function parseTime(value) {
  if (typeof value !== "string") return NaN;
  return Date.parse(value);
}

/** An ISO timestamp as local HH:MM:SS. */
function fmtTime(value) {
  const t = parseTime(value);
  if (Number.isNaN(t)) return "--:--:--";
  const d = new Date(t);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

function fmtPercent(value) {
  const n = num(value);
  return n === null ? "?" : `${Math.round(n * 100)}%`;
}

function severityOf(ev) {
  return SEVERITIES.includes(ev.severity) ? ev.severity : "info";
}

function typeOf(ev) {
  return typeof ev.event_type === "string" ? ev.event_type : "unknown";
}

function agentLabel(d) {
  return txt(d.agent_name || d.agent_id || "agent", 80);
}

function typeLabel(ev) {
  const type = typeOf(ev);
  if (type === "agent_execution_completed" && ev.data.success === false) return "Agent failed";
  if (type === "synthesis_completed" && ev.data.success === false) return "Synthesis failed";
  return Object.hasOwn(TYPE_LABELS, type) ? TYPE_LABELS[type] : txt(type, 40);
}

// ------------------------------------------------------------------------------------------------
// what each event type says in the stream: one sentence plus its key fields

const DESCRIBE = {
  agent_execution_started: (d) => ({
    text: `${agentLabel(d)} started${d.task_description ? `: ${txt(d.task_description)}` : ""}`,
    fields: [["agent", d.agent_id], ["service", d.service_name]],
  }),
  agent_execution_completed: (d) => {
    const failed = d.success === false;
    const text = failed
      ? `${agentLabel(d)} failed after ${fmtDurationMs(d.duration_ms)}${d.error_message ? `: ${txt(d.error_message)}` : ""}`
      : `${agentLabel(d)} completed in ${fmtDurationMs(d.duration_ms)}`;
    return {
      text,
      fields: [
        ["task", d.task_description],
        ["quality", num(d.quality_score) === null ? null : fmtFixed(d.quality_score, 1)],
        ["source", d.data_source],
      ],
    };
  },
  opportunity_discovered: (d) => ({
    text: `Opportunity: ${txt(d.title || d.opportunity_id || "untitled")}`,
    fields: [
      ["category", d.category],
      ["confidence", num(d.confidence_score) === null ? null : fmtPercent(d.confidence_score)],
      ["revenue", d.revenue_potential],
      ["agent", d.agent_name],
    ],
  }),
  synthesis_started: (d) => ({
    text: `Synthesis ${txt(d.phase || "phase", 60)} started${d.description ? `: ${txt(d.description)}` : ""}`,
    fields: [],
  }),
  synthesis_completed: (d) => ({
    text: d.success === false
      ? `Synthesis ${txt(d.phase || "phase", 60)} failed after ${fmtDurationMs(d.duration_ms)}`
      : `Synthesis ${txt(d.phase || "phase", 60)} completed in ${fmtDurationMs(d.duration_ms)}`,
    fields: [["patterns", d.patterns_found]],
  }),
  quality_score_updated: (d) => {
    const dims = isObject(d.dimension_scores)
      ? Object.entries(d.dimension_scores).slice(0, 4).map(([k, v]) => [txt(k, 30), num(v) === null ? v : fmtFixed(v, 1)])
      : [];
    return {
      text: `Quality score ${fmtFixed(d.overall_score, 1)}${d.source ? ` from ${txt(d.source, 80)}` : ""}`,
      fields: dims,
    };
  },
  error_occurred: (d) => ({
    text: `${txt(d.error_type || "Error", 60)}${d.source ? ` in ${txt(d.source, 80)}` : ""}: ${txt(d.error_message || "no message")}`,
    fields: [["span", d.span_name]],
  }),
  system_health_updated: (d) => ({
    text: `System ${txt(d.status || "status")}: ${fmtInt(d.connected_clients)} `
      + `client${num(d.connected_clients) === 1 ? "" : "s"}, ${fmtFixed(d.events_per_second, 1)} ev/s`,
    fields: [
      ["agents", d.active_agents],
      ["stalled", num(d.stalled_agents) ? d.stalled_agents : null],
      ["dropped", num(d.dropped_events) ? d.dropped_events : null],
      ["memory", num(d.memory_rss_bytes) === null ? null : `${Math.round(d.memory_rss_bytes / 1048576)} MB`],
      ["cpu", num(d.cpu_percent) === null ? null : `${fmtFixed(d.cpu_percent, 0)}%`],
    ],
  }),
  agent_registered: (d) => ({
    text: `Agent registered: ${agentLabel(d)}${d.description ? ` (${txt(d.description, 120)})` : ""}`,
    fields: [["id", d.agent_id], ["by", d.registered_by]],
  }),
  metrics_updated: (d) => ({
    text: `Metrics: ${fmtInt(d.total_events)} events, ${fmtInt(d.total_agents_executed)} runs, `
      + `${fmtInt(d.total_opportunities_discovered)} opportunities`,
    fields: [["active", d.active_agents], ["errors", num(d.total_errors) ? d.total_errors : null]],
  }),
};

function describe(ev) {
  const type = typeOf(ev);
  if (Object.hasOwn(DESCRIBE, type)) {
    try {
      const described = DESCRIBE[type](ev.data);
      if (typeof described.text === "string" && Array.isArray(described.fields)) return described;
    } catch {
      // odd field values: fall through to the generic description
    }
  }
  const keys = Object.keys(ev.data).slice(0, 4);
  return { text: txt(type.replace(/_/g, " "), 60), fields: keys.map((k) => [k, ev.data[k]]) };
}

// ------------------------------------------------------------------------------------------------
// the model: everything the page knows, kept outside the DOM

const model = {
  lastSeq: 0, // highest seq received
  seen: new Set(), // seqs received (bounded), for dedupe across snapshot, replay and live frames
  snapshotSeq: 0, // the panels reflect every event up to this seq (from the last snapshot)
  metrics: null,
  metricsSeq: -1,
  metricsAt: 0, // performance.now() when metrics arrived (for the ticking uptime)
  health: null,
  healthSeq: -1,
  replica: null, // this page's cluster replica (snapshot.server.replica), whose health the card shows
  agents: new Map(), // run key -> running agent
  lostAgents: [], // runs that were running when the server stopped (snapshot.lost_agents), oldest first
  opportunities: [], // newest first
  agentNames: new Set(),
  serviceNames: new Set(),
  stallSeconds: CONFIG.defaultStallSeconds,
  serverName: null,
  hadSnapshot: false,
};

const dirty = {
  cards: false, health: false, agents: false, lost: false, opportunities: false, agentOptions: false,
  serviceOptions: false,
};
let rowQueue = []; // events waiting to become stream rows
let pausedQueue = []; // events that arrived while paused
let orderCounter = 0;

function markSeen(seq) {
  model.seen.add(seq);
  if (model.seen.size > CONFIG.seenCap) {
    const keep = CONFIG.seenCap / 2;
    for (const s of model.seen) {
      if (model.seen.size <= keep) break;
      model.seen.delete(s);
    }
  }
}

/** Trim a queue of events to the newest `limit` (by seq) once it holds twice that. */
function boundQueue(queue, limit) {
  if (queue.length <= limit * 2) return queue;
  queue.sort(byOrder);
  return queue.slice(-limit);
}

function byOrder(a, b) {
  return a._order - b._order;
}

function normalizeEvent(raw) {
  if (!isObject(raw)) return null;
  const ev = raw;
  if (!isObject(ev.data)) ev.data = {};
  const seq = num(ev.seq);
  ev.seq = seq;
  // Events without seq (never from a conforming server) sort after the newest one seen.
  ev._order = seq === null ? model.lastSeq + (++orderCounter % 1000) / 1000 : seq;
  return ev;
}

// Events shown before they had a seq (a cluster replica that cannot reach Redis), by event_id: when
// the numbered copy arrives it only gives the shown one its seq, so nothing is counted twice.
const provisionalById = new Map();

function noteProvisional(ev) {
  if (typeof ev.event_id !== "string") return;
  provisionalById.set(ev.event_id, ev);
  if (provisionalById.size > CONFIG.seenCap) {
    provisionalById.delete(provisionalById.keys().next().value);
  }
}

function onEvents(list, provisional = false) {
  if (!Array.isArray(list)) return;
  let traceActivity = false;
  for (const raw of list) {
    if (provisional && isObject(raw)) raw.seq = null;
    const ev = normalizeEvent(raw);
    if (!ev) continue;
    if (provisional) noteProvisional(ev);
    if (ev.seq !== null) {
      if (model.seen.has(ev.seq)) continue;
      markSeen(ev.seq);
      if (ev.seq > model.lastSeq) model.lastSeq = ev.seq;
      const shown = typeof ev.event_id === "string" ? provisionalById.get(ev.event_id) : undefined;
      if (shown) {
        provisionalById.delete(ev.event_id);
        shown.seq = ev.seq;
        continue;
      }
    }
    if (traceView.traceId && typeof ev.trace_id === "string" && ev.trace_id.toLowerCase() === traceView.traceId) {
      traceActivity = true;
    }
    if (ev.seq === null || ev.seq > model.snapshotSeq) applyToPanels(ev);
    noteAgent(ev.data);
    noteService(ev.data);
    queueRow(ev);
  }
  if (traceActivity) noteTraceActivity(); // the trace on screen changed: refetch it (throttled)
  scheduleRender();
}

function queueRow(ev) {
  if (!matches(ev)) return; // while a filter hides an event, the stream does not keep it
  if (ui.paused) {
    pausedQueue.push(ev);
    pausedQueue = boundQueue(pausedQueue, CONFIG.maxRows);
    ui.pausedCount += 1;
    dirty.paused = true;
  } else {
    rowQueue.push(ev);
    rowQueue = boundQueue(rowQueue, CONFIG.maxRows);
  }
}

function applyToPanels(ev) {
  const d = ev.data;
  switch (typeOf(ev)) {
    case "metrics_updated":
      setMetrics(d, ev._order);
      break;
    case "system_health_updated":
      // On a cluster every replica reports its own health; the card shows this page's replica.
      if (model.replica !== null && typeof d.replica === "string" && d.replica !== model.replica) break;
      if (ev._order > model.healthSeq) {
        model.health = d;
        model.healthSeq = ev._order;
        dirty.health = true;
      }
      break;
    case "agent_execution_started":
      addAgent({
        key: String(d.run_id || d.agent_id || ev.event_id || ev._order),
        run_id: d.run_id, agent_id: d.agent_id, agent_name: d.agent_name,
        task_description: d.task_description, service_name: d.service_name,
        trace_id: ev.trace_id, span_id: ev.span_id,
        startMs: startFromTimestamp(d.started_at || ev.timestamp),
        serverStalled: false,
      });
      break;
    case "agent_execution_completed":
      removeAgent(d);
      removeLost(d);
      break;
    case "opportunity_discovered":
      addOpportunity({ ...d, timestamp: ev.timestamp, seq: ev.seq, event_id: ev.event_id }, true);
      break;
    default:
      break;
  }
}

function setMetrics(metrics, order) {
  if (!isObject(metrics) || order < model.metricsSeq) return;
  model.metrics = metrics;
  model.metricsSeq = order;
  model.metricsAt = performance.now();
  dirty.cards = true;
}

function startFromTimestamp(value) {
  const now = Date.now();
  const t = parseTime(value);
  if (Number.isNaN(t)) return now;
  return Math.min(t, now); // a clock ahead of ours must not make a negative timer
}

function addAgent(agent) {
  model.agents.delete(agent.key); // a restarted run moves to the end
  model.agents.set(agent.key, agent);
  dirty.agents = true;
}

function removeAgent(d) {
  const key = d.run_id || d.agent_id;
  if (key && model.agents.delete(String(key))) {
    dirty.agents = true;
    return;
  }
  if (!d.run_id && d.agent_id) {
    // A completion without run id: end the oldest run of that agent.
    for (const [k, a] of model.agents) {
      if (a.agent_id === d.agent_id) {
        model.agents.delete(k);
        dirty.agents = true;
        return;
      }
    }
  }
  // A completion for a run never seen starting: nothing to remove.
}

/** A lost run whose completion arrives after all is no longer lost (as on the server). */
function removeLost(d) {
  const key = d.run_id || d.agent_id;
  if (!key) return;
  const before = model.lostAgents.length;
  model.lostAgents = model.lostAgents.filter((a) => a.key !== String(key));
  if (model.lostAgents.length !== before) dirty.lost = true;
}

function opportunityKey(o) {
  return String(o.opportunity_id || o.event_id || o.seq || o.title);
}

function addOpportunity(o, atFront) {
  const key = opportunityKey(o);
  if (model.opportunities.some((x) => x._key === key)) return;
  o._key = key;
  if (atFront) model.opportunities.unshift(o);
  else model.opportunities.push(o);
  if (model.opportunities.length > CONFIG.maxOpportunities) model.opportunities.length = CONFIG.maxOpportunities;
  dirty.opportunities = true;
}

function noteAgent(d) {
  const name = d.agent_name || d.agent_id;
  if (typeof name !== "string" || !name || model.agentNames.has(name)) return;
  if (model.agentNames.size >= CONFIG.maxAgentOptions) return;
  model.agentNames.add(name);
  dirty.agentOptions = true;
}

function noteService(d) {
  const name = d.service_name;
  if (typeof name !== "string" || !name || model.serviceNames.has(name)) return;
  if (model.serviceNames.size >= CONFIG.maxServiceOptions) return;
  model.serviceNames.add(name);
  dirty.serviceOptions = true;
}

function onSnapshot(s) {
  const server = isObject(s.server) ? s.server : {};
  model.serverName = typeof server.name === "string" && server.name ? server.name : null;
  model.replica = typeof server.replica === "string" && server.replica ? server.replica : null;
  const stall = num(server.stall_threshold_seconds);
  model.stallSeconds = stall !== null && stall > 0 ? stall : CONFIG.defaultStallSeconds;
  renderServerInfo();

  const snapSeq = num(s.seq) ?? 0;
  let resumeFrom = model.hadSnapshot ? model.lastSeq : null;
  if (model.hadSnapshot && snapSeq < model.lastSeq) {
    // The server started over with a fresh history: our seq numbers mean nothing to it.
    model.seen.clear();
    model.lastSeq = 0;
    model.metricsSeq = -1;
    model.healthSeq = -1;
    resumeFrom = null;
    closeDetail(false);
    $("stream").replaceChildren();
    rowQueue = [];
    pausedQueue = [];
    ui.pausedCount = 0;
    ui.newCount = 0;
    showNotice("info", "The server restarted with a fresh history; the stream continues from its start.", "reset");
  }
  model.snapshotSeq = snapSeq;
  model.metricsSeq = Math.min(model.metricsSeq, snapSeq);
  setMetrics(s.metrics, snapSeq);

  model.agents.clear();
  const now = Date.now();
  for (const a of Array.isArray(s.active_agents) ? s.active_agents : []) {
    if (!isObject(a)) continue;
    const elapsed = num(a.elapsed_seconds);
    addAgent({
      key: String(a.run_id || a.agent_id || `snapshot-${model.agents.size}`),
      run_id: a.run_id, agent_id: a.agent_id, agent_name: a.agent_name,
      task_description: a.task_description, service_name: a.service_name,
      trace_id: a.trace_id, span_id: a.span_id,
      startMs: elapsed !== null ? now - elapsed * 1000 : startFromTimestamp(a.started_at),
      serverStalled: a.stalled === true,
    });
    noteAgent(a);
    noteService(a);
  }
  dirty.agents = true;

  model.lostAgents = [];
  for (const a of Array.isArray(s.lost_agents) ? s.lost_agents : []) {
    if (!isObject(a)) continue;
    model.lostAgents.push({
      key: String(a.run_id || a.agent_id || `lost-${model.lostAgents.length}`),
      agent_id: a.agent_id, agent_name: a.agent_name, task_description: a.task_description,
      service_name: a.service_name, started_at: a.started_at, lost_detected_at: a.lost_detected_at,
    });
    noteAgent(a);
    noteService(a);
  }
  dirty.lost = true;

  model.opportunities = [];
  for (const o of Array.isArray(s.opportunities) ? s.opportunities : []) {
    if (isObject(o)) addOpportunity({ ...o }, false);
  }
  ui.rebuildOpportunities = true;
  dirty.opportunities = true;

  sendSubscription(true);
  onEvents(s.events);
  if (resumeFrom !== null && resumeFrom < snapSeq) send({ type: "resume", after_seq: resumeFrom });
  model.hadSnapshot = true;
  noteTraceActivity(); // (re)connected: an open trace view may have missed changes
}

// ------------------------------------------------------------------------------------------------
// the connection: reconnects by itself with capped, fully jittered exponential backoff

const conn = {
  ws: null,
  state: "connecting", // connecting | open | waiting
  attempt: 0,
  retryTimer: 0,
  retryAt: 0,
  pingTimer: 0,
  lastMessageAt: 0,
  lastSubscription: "",
};

function wsUrl() {
  const url = new URL("ws", window.location.href);
  url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  return url.href;
}

function connect() {
  clearTimeout(conn.retryTimer);
  conn.retryTimer = 0;
  if (conn.ws) return;
  setConnState("connecting");
  let ws;
  try {
    ws = new WebSocket(wsUrl());
  } catch {
    scheduleReconnect();
    return;
  }
  conn.ws = ws;
  conn.lastSubscription = "";
  let opened = false;
  ws.addEventListener("open", () => {
    if (ws !== conn.ws) return;
    opened = true;
    conn.attempt = 0;
    conn.lastMessageAt = Date.now();
    setConnState("open");
    clearInterval(conn.pingTimer);
    conn.pingTimer = setInterval(keepalive, CONFIG.pingIntervalMs);
  });
  ws.addEventListener("message", (msg) => {
    if (ws !== conn.ws) return;
    conn.lastMessageAt = Date.now();
    handleMessage(msg.data);
  });
  ws.addEventListener("close", () => {
    if (ws !== conn.ws) return;
    conn.ws = null;
    clearInterval(conn.pingTimer);
    // Whatever the close code (server restart 1001, network loss 1006, "too slow" from the
    // server), the page resumes from its last seq, so reconnecting is always safe.
    if (opened) scheduleReconnect();
    else onConnectFailed();
  });
}

// ------------------------------------------------------------------------------------------------
// login: a handshake refused with 401 looks like any failed connection, so the page asks the server

const auth = { prompting: false, checking: false };
const TOKEN_RE = /^[A-Za-z0-9._~-]{1,1024}$/;

/** Whether the server wants a token this page does not have (false when it cannot be asked). */
async function loginNeeded() {
  try {
    const res = await fetch("api/auth", { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!res.ok) return false;
    const body = await res.json();
    return isObject(body) && body.auth_required === true && body.authenticated !== true;
  } catch {
    return false; // the server is unreachable: keep reconnecting
  }
}

function onConnectFailed() {
  if (auth.checking) return;
  auth.checking = true;
  loginNeeded().then((needed) => {
    auth.checking = false;
    if (conn.ws) return; // a new attempt started meanwhile (Retry now, back online)
    if (needed) showLogin("");
    else scheduleReconnect();
  });
}

function showLogin(message) {
  auth.prompting = true;
  clearTimeout(conn.retryTimer);
  conn.retryTimer = 0;
  setConnState("login");
  const box = $("login");
  const wasHidden = box.hidden;
  box.hidden = false;
  const error = $("login-error");
  error.textContent = message;
  error.hidden = !message;
  if (wasHidden || message) $("login-token").focus();
}

function hideLogin() {
  auth.prompting = false;
  $("login").hidden = true;
  $("login-error").hidden = true;
  $("login-token").value = "";
}

async function submitLogin(e) {
  e.preventDefault(); // the page's CSP has form-action 'none': the token goes by fetch, never a form post
  const input = $("login-token");
  const token = input.value.trim();
  if (!token) {
    showLogin("Enter the token.");
    return;
  }
  if (!TOKEN_RE.test(token)) {
    showLogin("That is not a token: a token is made of letters, digits and . _ ~ -");
    return;
  }
  const button = $("login-submit");
  button.disabled = true;
  try {
    const res = await fetch("api/auth", {
      method: "POST", cache: "no-store", credentials: "same-origin",
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
    });
    if (res.ok) {
      hideLogin(); // the server set the login cookie: the WebSocket sends it from now on
      conn.attempt = 0;
      connect();
    } else if (res.status === 401) {
      input.select();
      showLogin("That token is wrong. Check it and try again.");
    } else {
      showLogin(`The server refused the login (HTTP ${res.status}). Try again.`);
    }
  } catch {
    showLogin("The server cannot be reached. Try again in a moment.");
  } finally {
    button.disabled = false;
  }
}

function scheduleReconnect() {
  clearTimeout(conn.retryTimer);
  const ceiling = Math.min(CONFIG.backoffCapMs, CONFIG.backoffBaseMs * 2 ** Math.min(conn.attempt, 16));
  const delay = Math.max(CONFIG.backoffFloorMs, Math.random() * ceiling);
  conn.attempt += 1;
  conn.retryAt = Date.now() + delay;
  conn.retryTimer = setTimeout(connect, delay);
  setConnState("waiting");
}

function retryNow() {
  if (conn.state === "waiting") connect();
}

function keepalive() {
  if (!conn.ws || conn.ws.readyState !== WebSocket.OPEN) return;
  if (Date.now() - conn.lastMessageAt > CONFIG.silenceTimeoutMs) {
    conn.ws.close(4000, "silent"); // a half-open socket: drop it and reconnect
    return;
  }
  send({ type: "ping" });
}

function send(message) {
  if (conn.ws && conn.ws.readyState === WebSocket.OPEN) conn.ws.send(JSON.stringify(message));
}

function handleMessage(raw) {
  let msg;
  try {
    msg = JSON.parse(raw);
  } catch {
    return;
  }
  if (!isObject(msg)) return;
  switch (msg.type) {
    case "snapshot":
      onSnapshot(msg);
      break;
    case "events":
      onEvents(msg.events, msg.provisional === true);
      break;
    case "event":
      onEvents([msg.event]);
      break;
    case "gap":
      onGap(msg);
      break;
    case "error":
      showNotice("error", `Server: ${txt(msg.message || "error", 300)}`, "server-error");
      break;
    default:
      if (typeof msg.event_type === "string") onEvents([msg]);
      // pong, subscribed and unknown messages need nothing
      break;
  }
}

function onGap(msg) {
  const from = num(msg.from);
  const to = num(msg.to);
  const range = from !== null && to !== null ? ` #${from}–#${to}` : "";
  // "restart": the seqs a server that died uncleanly may have used without writing them down.
  const text = msg.reason === "restart"
    ? `The server restarted after an unclean stop: events${range}, if any were sent before it, are not kept.`
    : `Some events${range} were missed: the server no longer holds them. Cards and panels are up to date.`;
  showNotice("warning", text, "gap");
}

// ------------------------------------------------------------------------------------------------
// filters and pause

const filters = {
  types: new Set(EVENT_TYPES),
  severities: new Set(SEVERITIES),
  agent: "",
  service: "",
  text: "",
};

const ui = {
  paused: false,
  pausedCount: 0,
  newCount: 0,
  detailEvent: null,
  detailRow: null,
  rebuildOpportunities: false,
  rafId: 0,
  sparkSeq: -1,
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

function matches(ev) {
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
function subscription() {
  const types = allTypes() ? [] : EVENT_TYPES.filter((t) => filters.types.has(t) || PANEL_TYPES.includes(t));
  if (types.length === EVENT_TYPES.length) types.length = 0;
  return { type: "subscribe", event_types: types, severities: [], agents: [] };
}

function sendSubscription(onConnect) {
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

function applyFilters() {
  const stream = $("stream");
  for (const row of stream.children) row.hidden = !matches(row._ev);
  if (ui.detailRow && ui.detailRow.hidden) closeDetail(false);
  sendSubscription(false);
  renderFilterControls();
  renderStreamCounts();
}

function renderFilterControls() {
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

function setPaused(paused) {
  if (ui.paused === paused) return;
  ui.paused = paused;
  const button = $("pause");
  button.setAttribute("aria-pressed", String(paused));
  button.classList.toggle("is-paused", paused);
  $("pause-label").textContent = paused ? "Resume" : "Pause";
  if (paused) {
    // Freeze what is on screen: rows not drawn yet wait with the ones that arrive from now on.
    pausedQueue = rowQueue;
    rowQueue = [];
    ui.pausedCount = pausedQueue.length;
  } else {
    rowQueue = boundQueue(rowQueue.concat(pausedQueue), CONFIG.maxRows);
    pausedQueue = [];
    ui.pausedCount = 0;
  }
  dirty.paused = true;
  scheduleRender();
}

// ------------------------------------------------------------------------------------------------
// rendering: one pass per animation frame, only what changed

function scheduleRender() {
  if (ui.rafId || document.hidden) return; // a hidden tab renders nothing; visibilitychange catches up
  ui.rafId = requestAnimationFrame(render);
}

function render() {
  ui.rafId = 0;
  if (document.hidden) return;
  if (rowQueue.length) renderRows();
  if (dirty.cards) renderCards();
  if (dirty.health) renderHealth();
  if (dirty.agents) renderAgents();
  if (dirty.lost) renderLost();
  if (dirty.opportunities) renderOpportunities();
  if (dirty.agentOptions) renderAgentOptions();
  if (dirty.serviceOptions) renderServiceOptions();
  if (dirty.paused) renderPaused();
}

function isAtTop(stream) {
  return stream.scrollTop <= 4;
}

function renderRows() {
  const stream = $("stream");
  let batch = rowQueue;
  rowQueue = [];
  batch.sort(byOrder);
  if (batch.length > CONFIG.maxRows) batch = batch.slice(-CONFIG.maxRows);

  const atTop = isAtTop(stream);
  const before = stream.scrollHeight;
  const top = stream.firstElementChild;
  const topOrder = top ? top._ev._order : -Infinity;
  const animate = batch.length <= CONFIG.animateMaxPerFrame;
  const fragment = document.createDocumentFragment();
  let added = 0;
  for (let i = batch.length - 1; i >= 0; i -= 1) {
    const ev = batch[i];
    if (ev._order <= topOrder) {
      insertSorted(stream, makeRow(ev, false)); // a replayed event older than what is shown
    } else {
      fragment.appendChild(makeRow(ev, animate));
    }
    added += 1;
  }
  stream.prepend(fragment);
  if (!atTop) {
    // Keep what the reader is looking at in place, and tell them what arrived above.
    stream.scrollTop += stream.scrollHeight - before;
    ui.newCount += added;
  }
  let extra = stream.childElementCount - CONFIG.maxRows;
  while (extra > 0) {
    const last = stream.lastElementChild;
    if (last === ui.detailRow) ui.detailRow = null;
    last.remove();
    extra -= 1;
  }
  renderStreamCounts();
}

function insertSorted(stream, row) {
  const order = row._ev._order;
  for (const child of stream.children) {
    if (child._ev._order < order) {
      stream.insertBefore(row, child);
      return;
    }
  }
  if (stream.childElementCount < CONFIG.maxRows) stream.appendChild(row);
}

function makeRow(ev, animate) {
  const sev = severityOf(ev);
  const type = typeOf(ev);
  const li = el("li", `ev sev-${sev} ${EVENT_TYPES.includes(type) ? `t-${type}` : "t-unknown"}`);
  if (animate) li.classList.add("ev-new");
  li.tabIndex = 0;
  li._ev = ev;
  if (ev.seq !== null) li.dataset.seq = String(ev.seq);
  li.dataset.type = type;
  li.dataset.severity = sev;
  li.hidden = !matches(ev);

  const time = el("time", "ev-time", fmtTime(ev.timestamp));
  if (typeof ev.timestamp === "string") time.dateTime = ev.timestamp;
  const label = el("span", "ev-type", typeLabel(ev));
  const body = el("div", "ev-body");
  const { text, fields } = describe(ev);
  body.appendChild(el("span", "ev-desc", text));
  const shown = fields.filter(([, v]) => v !== null && v !== undefined && v !== "");
  if (shown.length) {
    const list = el("span", "ev-fields");
    for (const [k, v] of shown) {
      const item = el("span", "kv");
      item.appendChild(el("span", "k", k));
      item.appendChild(el("span", "v", txt(v, 80)));
      list.appendChild(item);
    }
    body.appendChild(list);
  }
  li.append(time, label, body);
  li.setAttribute("aria-label", `${typeLabel(ev)} at ${fmtTime(ev.timestamp)}: ${text}`);
  return li;
}

function renderStreamCounts() {
  const stream = $("stream");
  let visible = 0;
  for (const row of stream.children) if (!row.hidden) visible += 1;
  $("stream-count").textContent = String(visible);
  $("stream-empty").hidden = visible > 0;
  $("stream-empty").textContent = stream.childElementCount ? "No event matches the filters." : "Waiting for events…";
  renderPill();
}

function renderPill() {
  const pill = $("new-pill");
  if (ui.newCount > 0 && !isAtTop($("stream"))) {
    $("new-pill-text").textContent = `${intFormat.format(ui.newCount)} new event${ui.newCount === 1 ? "" : "s"}`;
    pill.hidden = false;
  } else {
    ui.newCount = 0;
    pill.hidden = true;
  }
}

function renderPaused() {
  dirty.paused = false;
  const badge = $("stream-paused");
  badge.hidden = !ui.paused;
  badge.textContent = ui.pausedCount ? `Paused · ${intFormat.format(ui.pausedCount)} new` : "Paused";
}

function renderCards() {
  dirty.cards = false;
  const m = model.metrics || {};
  $("metric-total-events").textContent = fmtInt(m.total_events);
  $("metric-agents-executed").textContent = fmtInt(m.total_agents_executed);
  const failed = num(m.failed_agent_runs);
  const foot = $("metric-agents-executed-foot");
  foot.textContent = failed ? `${fmtInt(failed)} failed` : "completed runs";
  foot.classList.toggle("warn", Boolean(failed));
  $("metric-opportunities").textContent = fmtInt(m.total_opportunities_discovered);
  const scored = num(m.quality_scores_count);
  const avg = num(m.avg_quality_score);
  $("metric-avg-quality").textContent = scored === 0 || avg === null ? "–" : avg.toFixed(1);
  $("metric-avg-quality-foot").textContent = scored === null
    ? "score 0–100"
    : scored === 0 ? "no scored runs yet" : `over ${fmtInt(scored)} scored run${scored === 1 ? "" : "s"}`;
  $("metric-active-agents").textContent = fmtInt(m.active_agents);
  renderUptime();
}

function renderUptime() {
  const up = model.metrics ? num(model.metrics.system_uptime_seconds) : null;
  $("metric-uptime").textContent = up === null ? "–" : fmtSpan(up + (performance.now() - model.metricsAt) / 1000);
}

const SVG_NS = "http://www.w3.org/2000/svg";
const SPARK_POINTS = 60;
const epsHistory = []; // events/s of the last health updates, for the sparkline

function renderSpark() {
  const svg = $("eps-spark");
  if (epsHistory.length < 2) {
    svg.replaceChildren();
    return;
  }
  const max = Math.max(1, ...epsHistory);
  const step = 100 / (Math.max(epsHistory.length, 12) - 1);
  const x0 = 100 - (epsHistory.length - 1) * step;
  const pts = epsHistory.map((v, i) => `${(x0 + i * step).toFixed(2)},${(30 - (v / max) * 26).toFixed(2)}`);
  const area = document.createElementNS(SVG_NS, "polygon");
  area.setAttribute("points", `${x0.toFixed(2)},30 ${pts.join(" ")} 100,30`);
  area.setAttribute("class", "spark-area");
  const line = document.createElementNS(SVG_NS, "polyline");
  line.setAttribute("points", pts.join(" "));
  line.setAttribute("class", "spark-line");
  svg.replaceChildren(area, line);
}

function renderHealth() {
  dirty.health = false;
  const h = model.health || {};
  const eps = num(h.events_per_second);
  if (eps !== null && model.healthSeq !== ui.sparkSeq) {
    ui.sparkSeq = model.healthSeq;
    epsHistory.push(Math.max(0, eps));
    if (epsHistory.length > SPARK_POINTS) epsHistory.shift();
    renderSpark();
  }
  $("health-eps").textContent = fmtFixed(h.events_per_second, 1);
  $("health-dropped").textContent = fmtInt(h.dropped_events);
  $("health-dropped").classList.toggle("warn", Boolean(num(h.dropped_events)));
  $("health-clients").textContent = fmtInt(h.connected_clients);
  $("health-clients-label").textContent = num(h.connected_clients) === 1 ? "client" : "clients";
  const status = typeof h.status === "string" ? h.status : "unknown";
  const badge = $("health-status");
  badge.dataset.status = ["ok", "healthy", "degraded", "unhealthy"].includes(status) ? status : "unknown";
  badge.textContent = `health ${txt(status, 20)}`;
  const stalled = num(h.stalled_agents);
  const foot = $("metric-active-agents-foot");
  foot.textContent = stalled ? `${fmtInt(stalled)} stalled` : "running now";
  foot.classList.toggle("warn", Boolean(stalled));
}

const agentRows = new Map(); // run key -> <li>

function renderAgents() {
  dirty.agents = false;
  const list = $("agents");
  const wanted = [];
  for (const agent of model.agents.values()) {
    if (wanted.length >= CONFIG.maxAgentRows) break;
    wanted.push(agent);
  }
  const keys = new Set(wanted.map((a) => a.key));
  for (const [key, row] of agentRows) {
    if (!keys.has(key) || row._agent !== model.agents.get(key)) {
      row.remove();
      agentRows.delete(key);
    }
  }
  let cursor = list.firstElementChild;
  for (const agent of wanted) {
    let row = agentRows.get(agent.key);
    if (!row) {
      row = makeAgentRow(agent);
      agentRows.set(agent.key, row);
    }
    if (row !== cursor) list.insertBefore(row, cursor);
    else cursor = cursor.nextElementSibling;
  }
  const total = model.agents.size;
  $("agents-count").textContent = String(total);
  $("agents-empty").hidden = total > 0;
  const more = $("agents-more");
  more.hidden = total <= wanted.length;
  more.textContent = `+ ${intFormat.format(total - wanted.length)} more running`;
  tickAgents();
}

function makeAgentRow(agent) {
  const li = el("li", "agent");
  li._agent = agent;
  li.dataset.run = agent.key;
  const main = el("div", "agent-main");
  const head = el("div", "agent-head");
  head.appendChild(el("span", "agent-name", txt(agent.agent_name || agent.agent_id || "agent", 80)));
  main.appendChild(head);
  main.appendChild(el("div", "agent-task", txt(agent.task_description || "no task description", 240)));
  const started = new Date(agent.startMs);
  const since = `since ${pad2(started.getHours())}:${pad2(started.getMinutes())}:${pad2(started.getSeconds())}`;
  main.appendChild(el("div", "agent-meta", agent.service_name ? `${txt(agent.service_name, 60)} · ${since}` : since));
  li.title = txt(agent.task_description || "", 500);
  const side = el("div", "agent-side");
  const timer = el("span", "agent-timer", "0:00");
  timer.setAttribute("role", "timer");
  side.appendChild(timer);
  side.appendChild(el("span", "agent-stall", "stalled"));
  li.append(el("span", "agent-pulse"), main, side);
  li._timer = timer;
  return li;
}

function tickAgents() {
  const now = Date.now();
  for (const row of agentRows.values()) {
    const agent = row._agent;
    const elapsed = (now - agent.startMs) / 1000;
    row._timer.textContent = fmtClock(elapsed);
    const stalled = agent.serverStalled || elapsed > model.stallSeconds;
    if (row.classList.contains("stalled") !== stalled) {
      row.classList.toggle("stalled", stalled);
      const task = txt(agent.task_description || "", 500);
      row.title = stalled ? `Stalled: running longer than ${fmtSpan(model.stallSeconds)}\n${task}` : task;
    }
  }
}

function renderLost() {
  dirty.lost = false;
  const lost = model.lostAgents;
  const shown = lost.slice(0, CONFIG.maxLostRows);
  $("lost-agents").replaceChildren(...shown.map(makeLostRow));
  $("lost-count").textContent = String(lost.length);
  $("lost").hidden = lost.length === 0;
  const more = $("lost-more");
  more.hidden = lost.length <= shown.length;
  more.textContent = `+ ${intFormat.format(lost.length - shown.length)} more lost`;
}

function makeLostRow(agent) {
  const li = el("li", "lost-agent");
  li.dataset.run = agent.key;
  const main = el("div", "agent-main");
  main.appendChild(el("span", "agent-name", txt(agent.agent_name || agent.agent_id || "agent", 80)));
  main.appendChild(el("div", "agent-task", txt(agent.task_description || "no task description", 240)));
  const started = parseTime(agent.started_at);
  const since = Number.isNaN(started) ? "" : `started ${new Date(started).toLocaleString()}`;
  const meta = [agent.service_name ? txt(agent.service_name, 60) : "", since].filter(Boolean).join(" · ");
  main.appendChild(el("div", "agent-meta", meta || "start time unknown"));
  li.title = "Running when the server stopped; its completion never arrived.";
  li.append(main, el("span", "lost-tag", "lost"));
  return li;
}

const opportunityCards = new Map(); // key -> <li>

function renderOpportunities() {
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

function renderAgentOptions() {
  dirty.agentOptions = false;
  addSortedOptions($("filter-agent"), model.agentNames);
}

function renderServiceOptions() {
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

function renderServerInfo() {
  const label = $("server-name");
  if (model.serverName) {
    label.textContent = txt(model.serverName, 60);
    label.hidden = false;
    document.title = `${txt(model.serverName, 60)} · Agent Observability`;
  } else {
    label.hidden = true;
    document.title = "Agent Observability · otel-dashboard";
  }
  $("stall-threshold").textContent = fmtSpan(model.stallSeconds);
}

// ------------------------------------------------------------------------------------------------
// connection status

function setConnState(state) {
  const changed = conn.state !== state;
  conn.state = state;
  $("conn").dataset.state = state;
  $("conn-retry").hidden = state !== "waiting";
  renderConnText();
  if (changed) {
    const words = {
      open: "Connected", waiting: "Connection lost, reconnecting", connecting: "Connecting",
      login: "Login required",
    };
    $("sr-announcer").textContent = words[state];
  }
}

function renderConnText() {
  let text = "Connecting…";
  if (conn.state === "open") text = "Connected - Live Updates";
  else if (conn.state === "login") text = "Login required";
  else if (conn.state === "waiting") {
    text = `Reconnecting in ${Math.max(1, Math.ceil((conn.retryAt - Date.now()) / 1000))}s`;
  } else if (conn.attempt > 0) text = "Reconnecting…";
  $("conn-text").textContent = text;
}

// ------------------------------------------------------------------------------------------------
// notices (gap, server errors, resets)

function showNotice(kind, text, key) {
  const box = $("notices");
  if (key) for (const old of box.querySelectorAll(".notice")) if (old._key === key) old.remove();
  const notice = el("div", `notice notice-${kind}`);
  notice._key = key;
  notice.dataset.kind = kind;
  notice.appendChild(el("span", "notice-text", text));
  const close = el("button", "icon-button notice-close", "×");
  close.type = "button";
  close.setAttribute("aria-label", "Dismiss");
  close.addEventListener("click", () => notice.remove());
  notice.appendChild(close);
  box.appendChild(notice);
  while (box.childElementCount > 3) box.firstElementChild.remove();
}

// ------------------------------------------------------------------------------------------------
// event detail panel

function kvRow(list, key, value, opts = {}) {
  list.appendChild(el("dt", null, key));
  const dd = el("dd");
  if (value !== null && typeof value === "object") {
    dd.appendChild(el("pre", "kv-json", safeJson(value, 2)));
  } else if (value === null || value === undefined || value === "") {
    dd.appendChild(el("span", "kv-empty", value === "" ? "(empty)" : "null"));
  } else {
    dd.appendChild(el("span", opts.mono ? "kv-mono" : null, String(value)));
  }
  list.appendChild(dd);
}

function openDetail(row) {
  const ev = row._ev;
  if (ui.detailRow) ui.detailRow.classList.remove("selected");
  ui.detailRow = row;
  ui.detailEvent = ev;
  row.classList.add("selected");

  const sev = severityOf(ev);
  const badge = $("detail-sev");
  badge.className = `sev-badge sev-${sev}`;
  badge.textContent = sev;
  $("detail-title").textContent = typeLabel(ev);
  $("detail-desc").textContent = describe(ev).text;

  const meta = $("detail-meta");
  meta.replaceChildren();
  const t = parseTime(ev.timestamp);
  kvRow(meta, "time", Number.isNaN(t) ? ev.timestamp : `${new Date(t).toLocaleString()} (${ev.timestamp})`);
  kvRow(meta, "type", typeOf(ev), { mono: true });
  kvRow(meta, "severity", sev);
  kvRow(meta, "seq", ev.seq, { mono: true });
  kvRow(meta, "event_id", ev.event_id, { mono: true });

  const data = $("detail-data");
  data.replaceChildren();
  const keys = Object.keys(ev.data);
  if (!keys.length) data.appendChild(el("dd", "kv-empty", "no data fields"));
  for (const key of keys) kvRow(data, key, ev.data[key], { mono: false });

  const ids = $("detail-trace-ids");
  ids.replaceChildren();
  kvRow(ids, "trace_id", ev.trace_id || null, { mono: true });
  kvRow(ids, "span_id", ev.span_id || null, { mono: true });
  renderTraceView($("trace-view"), ev.trace_id, ev.span_id);

  const panel = $("detail");
  panel.hidden = false;
  document.body.classList.add("detail-open");
  $("detail-close").focus({ preventScroll: true });
}

function closeDetail(restoreFocus = true) {
  const panel = $("detail");
  if (panel.hidden) return;
  stopTraceView();
  panel.hidden = true;
  document.body.classList.remove("detail-open");
  const row = ui.detailRow;
  ui.detailRow = null;
  ui.detailEvent = null;
  if (row) {
    row.classList.remove("selected");
    if (restoreFocus && row.isConnected && !row.hidden) row.focus({ preventScroll: true });
  }
}

// ------------------------------------------------------------------------------------------------
// the trace view: the span waterfall of the selected event's trace (GET api/traces/{trace_id})
//
// Live updates: while the panel is open on a trace, the view refetches it (1) every
// TRACE.pollMs while any span is still running, and (2) as soon as an event of the same trace
// arrives over the WebSocket. Fetches are at least TRACE.minGapMs apart and never overlap; a request
// made during a fetch runs after it. Closing the panel (or opening another trace) aborts the fetch
// and stops everything; a hidden tab fetches nothing until it is shown again. Running bars extend
// to "now" and tick every TRACE.tickMs.

const TRACE = Object.freeze({
  minGapMs: 500, // never two fetches closer than this
  pollMs: 1000, // refetch period while spans are running
  tickMs: 250, // running bars and timers
  maxIndent: 14, // indentation stops growing here (data-depth keeps the real depth)
});
const TRACE_ID_RE = /^[0-9a-f]{32}$/;
const SPAN_KINDS = ["agent", "tool", "synthesis", "registration", "other"];

const traceView = {
  traceId: "", // lower-case hex of the trace shown ("" when none)
  spanId: "", // the selected event's span
  gen: 0, // bumped on every open/close: late answers of an older request are ignored
  data: null, // the last good answer
  state: "none", // none | loading | ok | missing | error
  spans: [], // the last answer's spans in tree order (with _depth, _start, _end, _running, _kind)
  inFlight: null, // AbortController of the fetch in progress
  again: false, // a fetch was requested while one was in flight
  lastFetchAt: -Infinity,
  timer: 0,
  timerDue: 0,
  tickTimer: 0,
  wantOnVisible: false, // a fetch came due while the tab was hidden
  rows: new Map(), // span_id -> <li>
  selected: "", // span whose details are shown (defaults to the event's span)
  scrolledTo: false,
  els: null, // the view's fixed elements
};

function isTraceId(value) {
  return typeof value === "string" && TRACE_ID_RE.test(value.toLowerCase()) && /[1-9a-f]/i.test(value);
}

/** Milliseconds with a precision that suits spans: "0.42 ms", "4.2 ms", "850 ms", "1.2 s". */
function fmtSpanMs(value) {
  const ms = num(value);
  if (ms === null || ms < 0) return "?";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  return fmtDurationMs(ms);
}

/** A span time as epoch nanoseconds (a double: sub-microsecond precision is not needed here). */
function spanNs(nanos, iso) {
  const n = num(nanos);
  if (n !== null && n > 0) return n;
  const t = parseTime(iso);
  return Number.isNaN(t) ? null : t * 1e6;
}

function spanLabel(s) {
  const name = txt(s.name || "(unnamed span)", 160);
  if (s._kind === "agent" || s._kind === "registration") return s.agent_name ? txt(s.agent_name, 160) : name;
  if (s._kind === "tool") return s.tool_name ? txt(s.tool_name, 160) : name;
  return name;
}

/** The rows in tree order: parents before children, siblings by start; orphans are roots. */
function traceTree(rawSpans) {
  const byId = new Map();
  for (const raw of rawSpans) {
    if (!isObject(raw) || typeof raw.span_id !== "string" || !raw.span_id || byId.has(raw.span_id)) continue;
    const s = { ...raw };
    s._kind = SPAN_KINDS.includes(s.kind) ? s.kind : "other";
    s._start = spanNs(s.start_time_unix_nano, s.start_time);
    s._running = s.end_time === null || s.end_time === undefined;
    s._end = s._running ? null : spanNs(s.end_time_unix_nano, s.end_time);
    byId.set(s.span_id, s);
  }
  const byStart = (a, b) => (a._start ?? 0) - (b._start ?? 0) || (a.span_id < b.span_id ? -1 : 1);
  const children = new Map();
  const roots = [];
  for (const s of byId.values()) {
    const parent = s.parent_span_id;
    if (typeof parent === "string" && parent !== s.span_id && byId.has(parent)) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(s);
    } else {
      roots.push(s);
    }
  }
  for (const list of children.values()) list.sort(byStart);
  roots.sort(byStart);
  const out = [];
  const visited = new Set();
  const walk = (root) => {
    const stack = [[root, 0]];
    while (stack.length) {
      const [s, depth] = stack.pop();
      if (visited.has(s.span_id)) continue;
      visited.add(s.span_id);
      s._depth = depth;
      out.push(s);
      const kids = children.get(s.span_id) || [];
      for (let i = kids.length - 1; i >= 0; i -= 1) stack.push([kids[i], depth + 1]);
    }
  };
  for (const root of roots) walk(root);
  // Spans whose parent links form a loop reach no root: show them as roots too.
  for (const s of Array.from(byId.values()).sort(byStart)) if (!visited.has(s.span_id)) walk(s);
  return out;
}

/** Builds the view's skeleton in the Trace section for a new trace (or a message when there is none). */
function renderTraceView(container, traceId, spanId) {
  const id = typeof traceId === "string" ? traceId.toLowerCase() : "";
  const span = typeof spanId === "string" ? spanId.toLowerCase() : "";
  container.dataset.traceId = typeof traceId === "string" ? traceId : "";
  if (id && id === traceView.traceId && traceView.els && container.contains(traceView.els.scroll)) {
    // Another event of the trace already shown: keep the waterfall, move the highlight, refresh.
    traceView.spanId = span;
    traceView.selected = span;
    traceView.scrolledTo = false;
    renderTraceData();
    scheduleTraceFetch(0);
    return;
  }
  stopTraceView();
  container.replaceChildren();
  if (!traceId) {
    container.dataset.state = "none";
    container.appendChild(el("p", "trace-message", "This event is not part of a trace."));
    return;
  }
  if (!isTraceId(id)) {
    container.dataset.state = "none";
    container.appendChild(el("p", "trace-message", "This event's trace id is not a valid trace id."));
    return;
  }
  traceView.traceId = id;
  traceView.spanId = span;
  traceView.selected = span;
  traceView.scrolledTo = false;

  const status = el("div", "trace-status");
  status.setAttribute("role", "status");
  const statusText = el("span", "trace-status-text");
  const retry = el("button", "link-button trace-retry", "Retry");
  retry.type = "button";
  retry.hidden = true;
  retry.addEventListener("click", () => {
    traceView.lastFetchAt = -Infinity; // an explicit retry is not throttled
    scheduleTraceFetch(0);
  });
  status.append(statusText, retry);

  const summary = el("p", "trace-summary");
  const notice = el("p", "trace-notice");
  notice.hidden = true;

  const scroll = el("div", "trace-scroll");
  const head = el("div", "trace-head");
  head.setAttribute("aria-hidden", "true");
  const axisEnd = el("span", "trace-axis-end");
  head.append(el("span", "trace-head-name", "Span"), el("span", "trace-axis-start", "0"), axisEnd,
    el("span", "trace-head-dur", "Duration"));
  const list = el("ol", "trace-rows");
  list.setAttribute("role", "tree");
  list.setAttribute("aria-label", "Spans of the trace");
  list.addEventListener("click", (e) => {
    const row = e.target.closest(".trace-row");
    if (row && list.contains(row)) selectTraceRow(row, true);
  });
  list.addEventListener("keydown", onTraceKey);
  scroll.append(head, list);

  const detail = el("div", "trace-span-detail");
  detail.hidden = true;
  const detailTitle = el("h4", "trace-span-detail-title");
  const detailList = el("dl", "kv-list");
  detail.append(detailTitle, detailList);

  const body = el("div", "trace-body");
  body.hidden = true;
  body.append(summary, notice, scroll, detail);
  container.append(status, body);
  traceView.els = { container, status, statusText, retry, summary, notice, scroll, list, axisEnd, body,
    detail, detailTitle, detailList };
  setTraceStatus("loading", "Loading the trace…");
  scheduleTraceFetch(0);
}

/** Stops fetching, polling and ticking; forgets the trace. */
function stopTraceView() {
  traceView.gen += 1;
  if (traceView.inFlight) traceView.inFlight.abort();
  traceView.inFlight = null;
  clearTimeout(traceView.timer);
  traceView.timer = 0;
  clearInterval(traceView.tickTimer);
  traceView.tickTimer = 0;
  traceView.traceId = "";
  traceView.spanId = "";
  traceView.selected = "";
  traceView.data = null;
  traceView.spans = [];
  traceView.state = "none";
  traceView.again = false;
  traceView.wantOnVisible = false;
  traceView.lastFetchAt = -Infinity;
  traceView.rows.clear();
  traceView.els = null;
}

/** Asks for a fetch in `delayMs` (or sooner if one is already due), never closer than minGapMs. */
function scheduleTraceFetch(delayMs) {
  if (!traceView.traceId) return;
  const now = performance.now();
  const due = Math.max(now + Math.max(0, delayMs), traceView.lastFetchAt + TRACE.minGapMs);
  if (traceView.timer && traceView.timerDue <= due) return;
  clearTimeout(traceView.timer);
  traceView.timerDue = due;
  traceView.timer = setTimeout(traceFetchDue, due - now);
}

function traceFetchDue() {
  traceView.timer = 0;
  if (!traceView.traceId) return;
  if (document.hidden) {
    traceView.wantOnVisible = true;
    return;
  }
  if (traceView.inFlight) {
    traceView.again = true;
    return;
  }
  fetchTrace();
}

/** A WebSocket event of the trace on screen: the trace changed, refetch soon. */
function noteTraceActivity() {
  if (traceView.traceId) scheduleTraceFetch(0);
}

async function fetchTrace() {
  const gen = traceView.gen;
  const controller = new AbortController();
  traceView.inFlight = controller;
  traceView.lastFetchAt = performance.now();
  let outcome = null;
  try {
    const response = await fetch(`api/traces/${traceView.traceId}`, {
      headers: { Accept: "application/json" },
      cache: "no-store",
      signal: controller.signal,
    });
    if (response.status === 404) {
      outcome = { state: "missing" };
    } else if (!response.ok) {
      outcome = { state: "error", error: `the server answered ${response.status}` };
    } else {
      const body = await response.json();
      outcome = isObject(body) && Array.isArray(body.spans)
        ? { state: "ok", data: body }
        : { state: "error", error: "the server's answer is not a trace" };
    }
  } catch {
    if (!controller.signal.aborted) outcome = { state: "error", error: "the server could not be reached" };
  }
  if (gen !== traceView.gen) return; // the panel was closed or shows another trace now
  traceView.inFlight = null;
  if (outcome) applyTraceOutcome(outcome);
  if (traceView.again) {
    traceView.again = false;
    scheduleTraceFetch(0);
  } else if (outcome && outcome.state === "ok" && traceView.data.running) {
    scheduleTraceFetch(TRACE.pollMs); // spans still running: poll (a failed fetch stops polling)
  }
}

function applyTraceOutcome(outcome) {
  if (outcome.state === "ok") {
    traceView.data = outcome.data;
    traceView.state = "ok";
    setTraceStatus("ok", "");
    renderTraceData();
  } else if (outcome.state === "missing") {
    traceView.data = null;
    traceView.state = "missing";
    setTraceStatus("missing", "Trace not available (not kept or not received yet).");
    renderTraceData();
  } else if (traceView.data) {
    // Keep the last waterfall; say that it may be stale.
    setTraceStatus("stale", `Could not update the trace: ${outcome.error}.`);
  } else {
    traceView.state = "error";
    setTraceStatus("error", `Could not load the trace: ${outcome.error}.`);
    renderTraceData();
  }
}

function setTraceStatus(state, text) {
  const els = traceView.els;
  if (!els) return;
  els.container.dataset.state = state;
  els.statusText.textContent = text;
  els.status.hidden = !text;
  els.retry.hidden = !(state === "error" || state === "missing" || state === "stale");
  els.retry.textContent = state === "missing" ? "Check again" : "Retry";
}

/** Draws (or updates) the rows from traceView.data, keeping row elements and focus. */
function renderTraceData() {
  const els = traceView.els;
  if (!els) return;
  const data = traceView.state === "ok" ? traceView.data : null;
  els.body.hidden = !data;
  if (!data) {
    traceView.spans = [];
    els.list.replaceChildren();
    traceView.rows.clear();
    stopTraceTicking();
    return;
  }
  const spans = traceTree(data.spans);
  traceView.spans = spans;
  const keep = new Set(spans.map((s) => s.span_id));
  for (const [id, row] of traceView.rows) {
    if (!keep.has(id)) {
      row.remove();
      traceView.rows.delete(id);
    }
  }
  let cursor = els.list.firstElementChild;
  for (const s of spans) {
    let row = traceView.rows.get(s.span_id);
    if (!row) {
      row = makeTraceRow();
      traceView.rows.set(s.span_id, row);
    }
    updateTraceRow(row, s);
    if (row !== cursor) els.list.insertBefore(row, cursor);
    else cursor = cursor.nextElementSibling;
  }

  // Roving tabindex: one row in the tab order, the selected one (or the first).
  if (!traceView.rows.has(traceView.selected)) traceView.selected = traceView.rows.has(traceView.spanId)
    ? traceView.spanId : (spans[0] ? spans[0].span_id : "");
  for (const [id, row] of traceView.rows) {
    const on = id === traceView.selected;
    row.tabIndex = on ? 0 : -1;
    row.setAttribute("aria-selected", String(on));
  }

  const running = spans.filter((s) => s._running).length;
  const errors = spans.filter((s) => s.status === "error").length;
  const parts = [`${intFormat.format(spans.length)} span${spans.length === 1 ? "" : "s"}`];
  if (running) parts.push(`${intFormat.format(running)} running`);
  if (errors) parts.push(`${intFormat.format(errors)} error${errors === 1 ? "" : "s"}`);
  els.summary.textContent = parts.join(" · ");
  els.summary.dataset.running = String(running > 0);

  els.notice.hidden = data.truncated !== true;
  const dropped = num(data.dropped_spans);
  els.notice.textContent = `This trace has more spans than the server keeps${dropped ? ` (${fmtInt(dropped)} dropped)` : ""}: `
    + "the waterfall is incomplete.";

  layoutTraceBars();
  renderSpanDetail();
  if (running) startTraceTicking();
  else stopTraceTicking();

  if (!traceView.scrolledTo) {
    const row = traceView.rows.get(traceView.spanId);
    if (row) {
      traceView.scrolledTo = true;
      const box = els.scroll;
      const top = row.offsetTop - box.clientHeight / 2;
      if (row.offsetTop + row.offsetHeight > box.clientHeight) box.scrollTop = Math.max(0, top);
    }
  }
}

function makeTraceRow() {
  const li = el("li", "trace-row");
  li.setAttribute("role", "treeitem");
  const label = el("div", "trace-label");
  const kind = el("span", "trace-kind");
  const name = el("span", "trace-name");
  const sub = el("span", "trace-sub");
  label.append(kind, name, sub);
  const track = el("div", "trace-track");
  const bar = el("span", "trace-bar");
  track.appendChild(bar);
  const dur = el("span", "trace-dur");
  const msg = el("div", "trace-error");
  li.append(label, track, dur, msg);
  li._parts = { label, kind, name, sub, bar, dur, msg };
  return li;
}

function updateTraceRow(row, s) {
  const p = row._parts;
  row._span = s;
  const error = s.status === "error";
  const current = s.span_id === traceView.spanId;
  row.className = `trace-row kind-${s._kind}${error ? " is-error" : ""}${s._running ? " is-running" : ""}`
    + `${current ? " is-event" : ""}`;
  row.dataset.spanId = s.span_id;
  row.dataset.depth = String(s._depth);
  row.dataset.kind = s._kind;
  row.dataset.status = ["ok", "error"].includes(s.status) ? s.status : "unset";
  row.dataset.running = String(s._running);
  const duration = num(s.duration_ms);
  if (!s._running && duration !== null) row.dataset.durationMs = String(duration);
  else delete row.dataset.durationMs;
  row.setAttribute("aria-level", String(s._depth + 1));
  if (current) row.setAttribute("aria-current", "true");
  else row.removeAttribute("aria-current");

  p.label.style.paddingLeft = `${Math.min(s._depth, TRACE.maxIndent) * 0.9}rem`;
  p.kind.textContent = s._kind;
  const label = spanLabel(s);
  p.name.textContent = label;
  const name = txt(s.name || "", 160);
  // The span's own name when it says more than the label (not just "invoke_agent <label>").
  const extra = name && name !== label && !name.endsWith(` ${label}`) ? name : "";
  p.sub.textContent = extra;
  p.sub.hidden = !extra;

  const message = error ? txt(s.status_message || "failed", 300) : "";
  p.msg.textContent = message;
  p.msg.hidden = !message;
  const title = [name || label];
  if (s.service_name) title.push(`service: ${txt(s.service_name, 80)}`);
  if (error) title.push(`error: ${message}`);
  row.title = title.join("\n");
}

/** Positions every bar on the trace's time axis (its extent grows with running spans) and ticks timers. */
function layoutTraceBars() {
  const els = traceView.els;
  const spans = traceView.spans;
  if (!els || !spans || !spans.length) return;
  let t0 = Infinity;
  let known = -Infinity;
  for (const s of spans) {
    if (s._start !== null) {
      t0 = Math.min(t0, s._start);
      known = Math.max(known, s._start);
    }
    if (s._end !== null) known = Math.max(known, s._end);
  }
  if (!Number.isFinite(t0)) t0 = 0;
  // "Now" on the trace's clock: the browser's, but never before the newest time the trace reports.
  const now = Math.max(Date.now() * 1e6, known);
  let t1 = t0;
  for (const s of spans) t1 = Math.max(t1, s._running ? now : (s._end ?? s._start ?? t0));
  const extent = Math.max(t1 - t0, 1);
  els.axisEnd.textContent = fmtSpanMs(extent / 1e6);
  for (const s of spans) {
    const row = traceView.rows.get(s.span_id);
    if (!row) continue;
    const { bar, dur } = row._parts;
    const start = s._start ?? t0;
    let end = s._running ? now : s._end;
    const duration = num(s.duration_ms);
    if (end === null) end = duration !== null ? start + duration * 1e6 : start;
    const left = Math.min(100, Math.max(0, ((start - t0) / extent) * 100));
    const width = Math.min(100 - left, Math.max(0, ((end - start) / extent) * 100));
    bar.style.left = `${left.toFixed(3)}%`;
    bar.style.width = `${width.toFixed(3)}%`;
    const ms = s._running ? (now - start) / 1e6 : (duration ?? (end - start) / 1e6);
    const text = s._running ? `running ${fmtSpanMs(ms)}` : fmtSpanMs(ms);
    dur.textContent = text;
    // The label does not tick (a focused row would be re-read): "running" without the time.
    const label = `${s._kind} ${row._parts.name.textContent}, level ${s._depth + 1}, `
      + `${s._running ? "running" : text}${s.status === "error" ? `, error: ${row._parts.msg.textContent}` : ""}`;
    if (row.getAttribute("aria-label") !== label) row.setAttribute("aria-label", label);
  }
}

function startTraceTicking() {
  if (traceView.tickTimer) return;
  traceView.tickTimer = setInterval(() => {
    if (!document.hidden) layoutTraceBars();
  }, TRACE.tickMs);
}

function stopTraceTicking() {
  clearInterval(traceView.tickTimer);
  traceView.tickTimer = 0;
}

function selectTraceRow(row, focus) {
  const id = row.dataset.spanId;
  if (!id) return;
  traceView.selected = id;
  for (const [key, r] of traceView.rows) {
    const on = key === id;
    r.tabIndex = on ? 0 : -1;
    r.setAttribute("aria-selected", String(on));
  }
  renderSpanDetail();
  if (focus) row.focus({ preventScroll: false });
}

function onTraceKey(e) {
  const row = e.target.closest(".trace-row");
  if (!row) return;
  const rows = Array.from(traceView.els.list.children);
  const i = rows.indexOf(row);
  let next = null;
  if (e.key === "ArrowDown") next = rows[i + 1];
  else if (e.key === "ArrowUp") next = rows[i - 1];
  else if (e.key === "Home") next = rows[0];
  else if (e.key === "End") next = rows[rows.length - 1];
  else if (e.key === "Enter" || e.key === " ") next = row;
  else return;
  e.preventDefault();
  if (next) selectTraceRow(next, true);
}

/** The selected span's fields and attributes, below the waterfall. */
function renderSpanDetail() {
  const els = traceView.els;
  const row = traceView.rows.get(traceView.selected);
  if (!els || !row) {
    if (els) els.detail.hidden = true;
    return;
  }
  const s = row._span;
  els.detail.hidden = false;
  els.detailTitle.textContent = `${s._kind}: ${spanLabel(s)}`;
  const list = els.detailList;
  list.replaceChildren();
  kvRow(list, "name", s.name ?? null);
  kvRow(list, "span_id", s.span_id, { mono: true });
  kvRow(list, "parent_span_id", s.parent_span_id ?? null, { mono: true });
  if (s.service_name) kvRow(list, "service", s.service_name);
  kvRow(list, "start", s.start_time ?? null, { mono: true });
  kvRow(list, "end", s._running ? "running" : (s.end_time ?? null), { mono: true });
  if (!s._running) kvRow(list, "duration", fmtSpanMs(s.duration_ms));
  kvRow(list, "status", typeof s.status === "string" ? s.status : null);
  if (s.status_message) kvRow(list, "status_message", s.status_message);
  if (isObject(s.attributes)) {
    for (const key of Object.keys(s.attributes).slice(0, 50)) kvRow(list, key, s.attributes[key]);
  }
}

// ------------------------------------------------------------------------------------------------
// theme

function applyTheme(theme) {
  const light = theme === "light";
  document.documentElement.dataset.theme = light ? "light" : "dark";
  const button = $("theme-toggle");
  button.setAttribute("aria-pressed", String(light));
  button.title = light ? "Switch to the dark theme" : "Switch to the light theme";
  button.querySelector(".sr-only").textContent = "Light theme";
}

function storedTheme() {
  try {
    return window.localStorage.getItem(THEME_KEY);
  } catch {
    return null;
  }
}

function toggleTheme() {
  const next = document.documentElement.dataset.theme === "light" ? "dark" : "light";
  applyTheme(next);
  try {
    window.localStorage.setItem(THEME_KEY, next);
  } catch {
    // storage disabled: the choice lasts for this page only
  }
}

// ------------------------------------------------------------------------------------------------
// wiring

function buildTypeOptions() {
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

function visibleRows() {
  return Array.from($("stream").children).filter((r) => !r.hidden);
}

function wire() {
  buildTypeOptions();
  applyTheme(storedTheme() === "light" ? "light" : "dark");

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
    get lostAgents() { return model.lostAgents.length; },
    get loginRequired() { return auth.prompting; },
    get filters() { return { ...subscription(), paused: ui.paused }; },
  }),
});
