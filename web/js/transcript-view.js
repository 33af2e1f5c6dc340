// A model call's transcript drawn as a chat (the span details pane, span-detail.js), and the folded
// texts and pretty-printed values the pane shares with it.
//
// The transcript is the server's (otel_dashboard/model/transcript.py, transcript_of):
//   {input: [Message], output: [Message], system: str|null, tools: [definition], source, cut}
//   Message = {role, parts: [Part], finish_reason?, name?}
//   Part = {type: "text"|"reasoning", content} | {type: "tool_call", id, name, arguments}
//        | {type: "tool_call_response", id, response} | {type: "other", content}
// Whatever the vocabulary the span spoke (GenAI, OpenInference, OpenLLMetry), it arrives in this one
// shape, so this module knows no vocabulary. Every value is drawn through textContent; a value of an
// unexpected type is shown as its JSON, never trusted as markup.

import { el, fmtInt, isObject, safeJson } from "./util.js";

export const FOLD = Object.freeze({
  lines: 12, // a text longer than this many lines is folded ...
  chars: 1500, // ... or longer than this many characters
  stackLines: 20, // a stack trace shows this many lines until "Show more"
});

const SOURCES = {
  genai: "GenAI semantic conventions (attributes)",
  genai_events: "GenAI semantic conventions (span events)",
  openinference: "OpenInference",
  openllmetry: "OpenLLMetry",
};

const ROLE_CLASSES = new Set(["system", "user", "assistant", "tool"]);

/** A value as display text: a string as is (pretty-printed when it is JSON of an object or an
 * array), anything else as indented JSON. */
export function prettyValue(value) {
  if (typeof value === "string") {
    const head = value.trimStart()[0];
    if (head === "{" || head === "[") {
      try {
        return JSON.stringify(JSON.parse(value), null, 2);
      } catch {
        return value;
      }
    }
    return value;
  }
  if (value === null || value === undefined) return "null";
  return safeJson(value, 2);
}

/**
 * A text block folded when long: its first FOLD.lines lines (or FOLD.chars characters) and a
 * "show more" button that shows it whole (and "show less" back).
 *
 * @param {string} text the text (always set through textContent)
 * @param {object} opts `key`: a stable key of this text within the span, kept in `opts.folds`
 *   (a Set of the keys shown whole) so a redraw keeps what the user unfolded; `className` of the
 *   <pre>; `lines`, `chars`: the fold limits; `label`: "show more" or "Show more".
 * @returns {HTMLElement} a <div class="fold"> holding the <pre> and, when folded, the button
 */
export function foldedText(text, opts = {}) {
  const maxLines = opts.lines ?? FOLD.lines;
  const maxChars = opts.chars ?? FOLD.chars;
  const label = opts.label ?? "show more";
  const folds = opts.folds instanceof Set ? opts.folds : new Set();
  const key = opts.key ?? "";
  const box = el("div", "fold");
  const pre = el("pre", `fold-text${opts.className ? ` ${opts.className}` : ""}`);
  box.append(pre);
  const lines = text.split("\n");
  let short = lines.length > maxLines ? lines.slice(0, maxLines).join("\n") : text;
  if (short.length > maxChars) short = short.slice(0, maxChars);
  if (short.length === text.length) {
    pre.textContent = text;
    return box;
  }
  const hiddenLines = lines.length - short.split("\n").length;
  const more = hiddenLines > 0
    ? `${fmtInt(hiddenLines)} more line${hiddenLines === 1 ? "" : "s"}`
    : `${fmtInt(text.length - short.length)} more characters`;
  const button = el("button", "link-button fold-more");
  button.type = "button";
  const show = () => {
    const whole = folds.has(key);
    pre.textContent = whole ? text : `${short}…`;
    pre.dataset.folded = String(!whole);
    button.textContent = whole ? label.replace("more", "less") : `${label} (${more})`;
    button.setAttribute("aria-expanded", String(whole));
  };
  button.addEventListener("click", () => {
    if (folds.has(key)) folds.delete(key);
    else folds.add(key);
    show();
  });
  show();
  box.append(button);
  return box;
}

function roleClass(role) {
  return ROLE_CLASSES.has(role) ? role : "other";
}

function partView(part, key, folds) {
  if (!isObject(part)) return foldedText(prettyValue(part), { key, folds });
  const type = typeof part.type === "string" ? part.type : "other";
  if (type === "text") {
    return foldedText(typeof part.content === "string" ? part.content : prettyValue(part.content),
      { key, folds, className: "chat-text" });
  }
  if (type === "reasoning") {
    const box = el("div", "chat-part chat-reasoning");
    box.append(el("p", "chat-part-label", "Reasoning"));
    box.append(foldedText(typeof part.content === "string" ? part.content : prettyValue(part.content),
      { key, folds, className: "chat-text" }));
    return box;
  }
  if (type === "tool_call") {
    const box = el("div", "chat-part chat-tool-call");
    const head = el("p", "chat-part-label", "Tool call ");
    head.append(el("strong", "chat-tool-name", typeof part.name === "string" ? part.name : "(no name)"));
    if (typeof part.id === "string" && part.id) head.append(el("span", "chat-tool-id", part.id));
    box.append(head, foldedText(prettyValue(part.arguments ?? null), { key, folds, className: "chat-json" }));
    return box;
  }
  if (type === "tool_call_response") {
    const box = el("div", "chat-part chat-tool-result");
    const head = el("p", "chat-part-label", "Tool result");
    if (typeof part.id === "string" && part.id) head.append(el("span", "chat-tool-id", part.id));
    box.append(head, foldedText(prettyValue(part.response ?? part.result ?? null),
      { key, folds, className: "chat-json" }));
    return box;
  }
  const content = part.content !== undefined ? part.content : part;
  return foldedText(typeof content === "string" ? content : prettyValue(content),
    { key, folds, className: "chat-text chat-other" });
}

function messageView(message, key, folds) {
  const m = isObject(message) ? message : { role: "unknown", parts: [{ type: "other", content: message }] };
  const role = typeof m.role === "string" && m.role ? m.role : "unknown";
  const item = el("li", `chat-msg chat-${roleClass(role)}`);
  item.dataset.role = role;
  const head = el("p", "chat-msg-head");
  head.append(el("span", "chat-role", role));
  if (typeof m.name === "string" && m.name) head.append(el("span", "chat-msg-name", m.name));
  if (typeof m.finish_reason === "string" && m.finish_reason) {
    head.append(el("span", "chat-finish", `finish: ${m.finish_reason}`));
  }
  item.append(head);
  const parts = Array.isArray(m.parts) ? m.parts : [];
  if (!parts.length) item.append(el("p", "chat-empty", "(no content)"));
  parts.forEach((part, i) => item.append(partView(part, `${key}.${i}`, folds)));
  return item;
}

function messageList(messages, side, folds) {
  const list = el("ol", `chat-list chat-${side}`);
  messages.forEach((message, i) => list.append(messageView(message, `${side}.${i}`, folds)));
  return list;
}

function toolDefinitions(tools, folds) {
  const details = el("details", "chat-tools");
  details.append(el("summary", null, `Tools offered (${fmtInt(tools.length)})`));
  const list = el("ul", "chat-tools-list");
  tools.forEach((tool, i) => {
    const fn = isObject(tool) && isObject(tool.function) ? tool.function : tool;
    const name = isObject(fn) && typeof fn.name === "string" ? fn.name : `tool ${i + 1}`;
    const item = el("li", "chat-tools-item");
    item.append(el("strong", "chat-tool-name", name));
    if (isObject(fn) && typeof fn.description === "string") item.append(el("span", "chat-tool-desc", fn.description));
    item.append(foldedText(prettyValue(tool), { key: `tools.${i}`, folds, className: "chat-json" }));
    list.append(item);
  });
  details.append(list);
  return details;
}

/**
 * The transcript as a chat: system instructions, the input messages, then the model's answer
 * (the output messages), and the tool definitions offered in a collapsed <details>.
 *
 * @param {object} transcript the server's Transcript (see the top of this file); anything else
 *   gives a short message instead
 * @param {Set<string>} folds the keys of the texts shown whole (see foldedText), kept by the caller
 * @returns {HTMLElement} a <section class="span-detail-section span-detail-transcript">
 */
export function renderTranscript(transcript, folds) {
  const section = el("section", "span-detail-section span-detail-transcript");
  section.append(el("h4", "span-detail-heading", "Transcript"));
  if (!isObject(transcript)) {
    section.append(el("p", "span-detail-note", "No transcript recorded for this span."));
    return section;
  }
  const source = typeof transcript.source === "string" ? SOURCES[transcript.source] ?? transcript.source : "";
  if (source) section.append(el("p", "span-detail-note chat-source", `Read from: ${source}`));
  if (transcript.cut) {
    section.append(el("p", "span-detail-note chat-cut",
      "Cut: some messages or texts were too long and were shortened by the server."));
  }
  if (typeof transcript.system === "string" && transcript.system) {
    const system = el("div", "chat-msg chat-system chat-instructions");
    system.dataset.role = "system";
    const head = el("p", "chat-msg-head");
    head.append(el("span", "chat-role", "system instructions"));
    system.append(head);
    system.append(foldedText(transcript.system, { key: "system", folds, className: "chat-text" }));
    section.append(system);
  }
  const input = Array.isArray(transcript.input) ? transcript.input : [];
  const output = Array.isArray(transcript.output) ? transcript.output : [];
  if (input.length) {
    section.append(el("p", "chat-side-label", `Input (${fmtInt(input.length)} message${input.length === 1 ? "" : "s"})`));
    section.append(messageList(input, "input", folds));
  }
  if (output.length) {
    section.append(el("p", "chat-side-label", "Output"));
    section.append(messageList(output, "output", folds));
  } else if (input.length) {
    section.append(el("p", "chat-side-label", "Output"), el("p", "span-detail-note", "No output recorded."));
  }
  const tools = Array.isArray(transcript.tools) ? transcript.tools : [];
  if (tools.length) section.append(toolDefinitions(tools, folds));
  return section;
}
