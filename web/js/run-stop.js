// "Stop run" in the run view (docs/guardrails.md): a button for a running run that is not flagged
// yet, shown only when the page is logged in to a server that has a token (GET api/auth, asked
// each time a run view opens: a login may have happened since). A click sends
// POST api/runs/<id>/stop and the answer is shown under the button; the run's "stop requested"
// mark then comes with its next live state, which the server sends at once. Text only.

import { el, isObject, txt } from "./util.js";

const auth = { state: "unknown" }; // unknown | checking | allowed | denied
const stop = {
  runId: "",
  stopping: false, // a request is on its way
  answer: null, // {text, error}: what the server answered the last request
  onChange: null, // the run view's redraw
};

/** The button and the line under it, made once per run view. */
export function makeStopControls() {
  const button = el("button", "button run-view-stop", "Stop run");
  button.type = "button";
  button.hidden = true;
  button.title = "Flag this run to stop: its next decorated step raises BudgetExceeded in the agent's code, if it opted in";
  button.addEventListener("click", requestStop);
  const answer = el("p", "run-view-stop-answer");
  answer.setAttribute("role", "status");
  answer.hidden = true;
  return { button, answer };
}

/** A run view opened on `runId`; `onChange` redraws it when the login check or an answer comes. */
export function openStop(runId, onChange) {
  Object.assign(stop, { runId, stopping: false, answer: null, onChange });
  auth.state = "checking";
  fetch("api/auth", { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((res) => (res.ok ? res.json() : null))
    .then((body) => {
      auth.state = isObject(body) && body.auth_required === true && body.authenticated === true ? "allowed" : "denied";
    })
    .catch(() => {
      auth.state = "denied";
    })
    .finally(changed);
}

/** What the drawing depends on (the run view redraws when it changes). */
export function stopKey() {
  return [auth.state, stop.stopping, stop.answer];
}

function changed() {
  if (stop.onChange) stop.onChange();
}

/** Show or hide the button and the answer for `run` (the run view's resolved run, or null). */
export function drawStop(controls, run) {
  const { button, answer } = controls;
  const live = Boolean(run) && (run.status === "running" || run.status === "stalled");
  const flagged = Boolean(run) && isObject(run.info.stop);
  const sent = Boolean(stop.answer) && !stop.answer.error;
  button.hidden = !(live && auth.state === "allowed" && !flagged && !sent);
  button.disabled = stop.stopping;
  button.textContent = stop.stopping ? "Stopping…" : "Stop run";
  answer.hidden = !stop.answer;
  answer.textContent = stop.answer ? stop.answer.text : "";
  answer.classList.toggle("is-error", Boolean(stop.answer && stop.answer.error));
}

async function requestStop() {
  const id = stop.runId;
  if (!id || stop.stopping) return;
  stop.stopping = true;
  stop.answer = null;
  changed();
  let answer;
  try {
    const res = await fetch(`api/runs/${encodeURIComponent(id)}/stop`, {
      method: "POST", cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" },
    });
    const body = await res.json().catch(() => ({}));
    const error = isObject(body) && typeof body.error === "string" ? txt(body.error, 200) : "";
    if (res.ok) {
      answer = {
        text: isObject(body) && body.flagged === false ? "This run was flagged to stop already."
          : "Stop requested: the run stops at its next decorated step if it opted in (stop_on_budget).",
        error: false,
      };
    } else {
      answer = { text: `The server refused to stop the run (HTTP ${res.status})${error ? `: ${error}` : ""}.`, error: true };
    }
  } catch {
    answer = { text: "The server cannot be reached. Try again in a moment.", error: true };
  }
  if (stop.runId !== id) return; // another run opened meanwhile
  stop.stopping = false;
  stop.answer = answer;
  changed();
}
