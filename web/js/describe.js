// What an event says on the page: its severity, type and label, and for each event type one
// sentence plus its key fields.

import { SEVERITIES, TYPE_LABELS } from "./config.js";
import { fmtDurationMs, fmtFixed, fmtInt, fmtPercent, isObject, num, txt } from "./util.js";
import { usageFields } from "./runs.js";

export function severityOf(ev) {
  return SEVERITIES.includes(ev.severity) ? ev.severity : "info";
}

/**
 * The band of a quality score, on its own scale (not the event's severity, which the wire keeps
 * as `error` below 90): >= 90 "good", 70-89 "fair", < 70 "poor"; null when not a number.
 */
export function qualityBand(score) {
  const n = num(score);
  if (n === null) return null;
  if (n >= 90) return "good";
  return n >= 70 ? "fair" : "poor";
}

/** A run's or a phase's duration: "< 1 ms" for 0, "–" when missing, else "850 ms", "1.2 s"... */
export function fmtRunDuration(value) {
  const ms = num(value);
  if (ms === null || ms < 0) return "–";
  return ms < 1 ? "< 1 ms" : fmtDurationMs(ms);
}

// " in 1.2 s" / " after 1.2 s", or nothing when the duration is missing.
function took(word, value) {
  const ms = num(value);
  return ms === null || ms < 0 ? "" : ` ${word} ${fmtRunDuration(ms)}`;
}

export function typeOf(ev) {
  return typeof ev.event_type === "string" ? ev.event_type : "unknown";
}

function agentLabel(d) {
  return txt(d.agent_name || d.agent_id || "agent", 80);
}

export function typeLabel(ev) {
  const type = typeOf(ev);
  if (type === "agent_execution_completed" && ev.data.success === false) return "Agent failed";
  if (type === "synthesis_completed" && ev.data.success === false) return "Synthesis failed";
  return Object.hasOwn(TYPE_LABELS, type) ? TYPE_LABELS[type] : txt(type, 40);
}

const DESCRIBE = {
  agent_execution_started: (d) => ({
    text: `${agentLabel(d)} started${d.task_description ? `: ${txt(d.task_description)}` : ""}`,
    fields: [["agent", d.agent_id], ["service", d.service_name]],
  }),
  agent_execution_completed: (d) => {
    const failed = d.success === false;
    const errorType = d.error_type ? ` (${txt(d.error_type, 60)})` : "";
    const text = failed
      ? `${agentLabel(d)} failed${took("after", d.duration_ms)}${errorType}${d.error_message ? `: ${txt(d.error_message)}` : ""}`
      : `${agentLabel(d)} completed${took("in", d.duration_ms)}`;
    return {
      text,
      fields: [
        ...usageFields(d), // tokens, cost, calls (from servers that track runs)
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
      ? `Synthesis ${txt(d.phase || "phase", 60)} failed${took("after", d.duration_ms)}`
      : `Synthesis ${txt(d.phase || "phase", 60)} completed${took("in", d.duration_ms)}`,
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
      ["why", Array.isArray(d.reasons) && d.reasons.length ? d.reasons.map((r) => txt(r, 60)).join(", ") : null],
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

export function describe(ev) {
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
