// Small helpers for every module: DOM nodes (text always through textContent) and the formats
// of numbers, durations and times.

export const $ = (id) => document.getElementById(id);

/** A new element with a class and text (always textContent). */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

export function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export function safeJson(value, indent) {
  try {
    const s = JSON.stringify(value, null, indent);
    return s === undefined ? String(value) : s;
  } catch {
    return String(value);
  }
}

/** Any value as short display text. */
export function txt(value, max = 200) {
  if (value === null || value === undefined) return "";
  let s = typeof value === "object" ? safeJson(value) : String(value);
  if (s.length > max) s = `${s.slice(0, max - 1)}…`;
  return s;
}

export function num(value) {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value))) return Number(value);
  return null;
}

export const intFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

export function fmtInt(value) {
  const n = num(value);
  return n === null ? "–" : intFormat.format(Math.round(n));
}

export function fmtFixed(value, digits) {
  const n = num(value);
  return n === null ? "–" : n.toFixed(digits);
}

export function pad2(n) {
  return n < 10 ? `0${n}` : String(n);
}

/** Milliseconds as "850 ms", "1.2 s", "2m 05s", "1h 02m". */
export function fmtDurationMs(value) {
  const ms = num(value);
  if (ms === null) return "?";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return fmtSpan(ms / 1000);
}

/** Seconds as "45s", "2m 05s", "1h 02m", "3d 04h". */
export function fmtSpan(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad2(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${pad2(m % 60)}m`;
  return `${Math.floor(h / 24)}d ${pad2(h % 24)}h`;
}

/** Seconds as a running clock: "0:07", "12:34", "1:02:03". */
export function fmtClock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${pad2(m)}:${pad2(s % 60)}` : `${m}:${pad2(s % 60)}`;
}

export function parseTime(value) {
  if (typeof value !== "string") return NaN;
  return Date.parse(value);
}

/** An ISO timestamp as local HH:MM:SS. */
export function fmtTime(value) {
  const t = parseTime(value);
  if (Number.isNaN(t)) return "--:--:--";
  const d = new Date(t);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

export function fmtPercent(value) {
  const n = num(value);
  return n === null ? "?" : `${Math.round(n * 100)}%`;
}

export function kvRow(list, key, value, opts = {}) {
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
