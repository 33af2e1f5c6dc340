// Whether the page is live: connected and receiving. Everything that ticks on its own (timers,
// uptime, rates, stall marks) asks isLive() and freezes while it is false, so a page that lost its
// server never looks live. connection.js calls setConnected(); modules that show something live
// subscribe with onLiveChange() to freeze or resume at once.

export const live = {
  connected: false, // the WebSocket is open
  lastMessageMs: 0, // Date.now() of the last message from the server (0: none yet)
  frozenAtPerf: 0, // performance.now() when the page stopped being live (0: never)
};

const listeners = [];

export function isLive() {
  return live.connected;
}

/** Call fn(connected) whenever the page becomes live or stops being live. */
export function onLiveChange(fn) {
  listeners.push(fn);
}

/** The connection opened (true) or closed (false): mark the page and tell the listeners. */
export function setConnected(connected) {
  const changed = live.connected !== connected;
  live.connected = connected;
  if (!connected && changed) live.frozenAtPerf = performance.now();
  document.body.dataset.live = String(connected);
  if (!changed) return;
  for (const fn of listeners) {
    try {
      fn(connected);
    } catch (err) {
      console.warn("liveness listener failed", err); // one broken listener must not stop the rest
    }
  }
}

/** performance.now() for whatever ticks: the real now while live, the moment it stopped otherwise. */
export function liveNow() {
  return live.connected || !live.frozenAtPerf ? performance.now() : live.frozenAtPerf;
}
