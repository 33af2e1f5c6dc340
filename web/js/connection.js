// The connection: one WebSocket that reconnects by itself with capped, fully jittered exponential
// backoff (the attempt count resets on open), a keepalive ping, and the connection status in the
// top bar.

import { CONFIG } from "./config.js";
import { $, pad2 } from "./util.js";
import { handleMessage } from "./messages.js";
import { onConnectFailed } from "./login.js";
import { live, setConnected } from "./liveness.js";

export const conn = {
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

export function connect() {
  clearTimeout(conn.retryTimer);
  conn.retryTimer = 0;
  if (conn.ws) return;
  setConnState("connecting");
  setConnected(false);
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
    setConnected(true);
    setConnState("open");
    clearInterval(conn.pingTimer);
    conn.pingTimer = setInterval(keepalive, CONFIG.pingIntervalMs);
  });
  ws.addEventListener("message", (msg) => {
    if (ws !== conn.ws) return;
    conn.lastMessageAt = Date.now();
    live.lastMessageMs = conn.lastMessageAt;
    handleMessage(msg.data);
  });
  ws.addEventListener("close", () => {
    if (ws !== conn.ws) return;
    conn.ws = null;
    setConnected(false);
    clearInterval(conn.pingTimer);
    // Whatever the close code (server restart 1001, network loss 1006, "too slow" from the
    // server), the page resumes from its last seq, so reconnecting is always safe.
    if (opened) scheduleReconnect();
    else onConnectFailed();
  });
}

export function scheduleReconnect() {
  clearTimeout(conn.retryTimer);
  const ceiling = Math.min(CONFIG.backoffCapMs, CONFIG.backoffBaseMs * 2 ** Math.min(conn.attempt, 16));
  const delay = Math.max(CONFIG.backoffFloorMs, Math.random() * ceiling);
  conn.attempt += 1;
  conn.retryAt = Date.now() + delay;
  conn.retryTimer = setTimeout(connect, delay);
  setConnState("waiting");
}

export function retryNow() {
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

export function send(message) {
  if (conn.ws && conn.ws.readyState === WebSocket.OPEN) conn.ws.send(JSON.stringify(message));
}

export function setConnState(state) {
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

export function renderConnText() {
  let text = "Connecting…";
  if (conn.state === "open") text = "Connected - Live Updates";
  else if (conn.state === "login") text = "Login required";
  else if (conn.state === "waiting") {
    text = `Reconnecting in ${Math.max(1, Math.ceil((conn.retryAt - Date.now()) / 1000))}s`;
  } else if (conn.attempt > 0) text = "Reconnecting…";
  $("conn-text").textContent = text;
  renderLastUpdate();
}

/** "last update HH:MM:SS" (local time of the last message) while the page is not live. */
function renderLastUpdate() {
  const label = $("last-update");
  const show = conn.state !== "open" && live.lastMessageMs > 0;
  label.hidden = !show;
  if (!show) return;
  const d = new Date(live.lastMessageMs);
  const text = `last update ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  if (label.textContent !== text) label.textContent = text;
}
