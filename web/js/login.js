// Login: a handshake refused with 401 looks like any failed connection, so the page asks the
// server whether it needs a token, and asks the reader for one.

import { $, isObject } from "./util.js";
import { conn, connect, scheduleReconnect, setConnState } from "./connection.js";

export const auth = { prompting: false, checking: false };

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

export function onConnectFailed() {
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

export async function submitLogin(e) {
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
