// The page's settings and the vocabulary of events it knows: types, their labels, severities.

export const CONFIG = Object.freeze({
  maxRows: 200, // event rows kept in the DOM; the oldest are removed
  maxOpportunities: 50, // opportunity cards kept
  maxAgentRows: 100, // running-agent rows shown; the rest are counted
  maxRuns: 500, // open runs' live states kept (snapshot.runs, run_progress); the oldest go first
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

export const EVENT_TYPES = [
  "agent_execution_started", "agent_execution_completed", "opportunity_discovered",
  "synthesis_started", "synthesis_completed", "quality_score_updated", "error_occurred",
  "system_health_updated", "agent_registered", "metrics_updated",
];

// The cards and panels live on these: they stay in the server subscription whatever the type filter.
export const PANEL_TYPES = [
  "agent_execution_started", "agent_execution_completed", "opportunity_discovered",
  "system_health_updated", "metrics_updated",
];

export const SEVERITIES = ["info", "success", "warning", "error"];

export const TYPE_LABELS = {
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
