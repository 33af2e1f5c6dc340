// Whether the page is live: connected and receiving. Everything that ticks on its own (timers,
// uptime, rates, stall marks) asks isLive() and freezes while it is false, so a page that lost its
// server never looks live.

export const live = {
  connected: false, // the WebSocket is open
  lastMessageMs: 0, // Date.now() of the last message from the server (0: none yet)
};

export function isLive() {
  return live.connected;
}
