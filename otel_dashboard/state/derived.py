"""What the accepted events add up to: counts, metrics, running and lost agent runs, known agents,
opportunities.

:class:`DerivedState` applies one event at a time (:meth:`DerivedState.apply`, on the hot path of
every publish) and answers the read-outs the page and the API show. It is not thread-safe by itself:
the :class:`~otel_dashboard.state.dashboard.DashboardState` that owns it guards it with its lock.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict, deque
from typing import Any

from otel_dashboard.model.events import DashboardEvent, EventType
from otel_dashboard.state.agent_graph import AgentGraph
from otel_dashboard.state.agent_stats import AgentStats, parse_epoch
from otel_dashboard.state.runs import ENDED, OpenRuns

__all__ = ["EVENT_TYPE_VALUES", "DerivedState"]

EVENT_TYPE_VALUES = frozenset(t.value for t in EventType)
"""The values of :class:`EventType`: stored or exported counts of any other type are ignored."""

# Events that describe the system rather than change it; they do not trigger metrics_updated.
_META_EVENT_TYPES = frozenset({EventType.METRICS_UPDATED, EventType.SYSTEM_HEALTH_UPDATED})
# Compared in apply for every event: an enum member looked up through its class goes through the
# enum metaclass and costs about ten times a module constant.
_STARTED = EventType.AGENT_EXECUTION_STARTED
_COMPLETED = EventType.AGENT_EXECUTION_COMPLETED
_OPPORTUNITY = EventType.OPPORTUNITY_DISCOVERED
_ERROR = EventType.ERROR_OCCURRED
_REGISTERED = EventType.AGENT_REGISTERED


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    """A run entry without its private fields (``_started_monotonic``)."""
    return {k: v for k, v in entry.items() if not k.startswith("_")}


class DerivedState:
    """The state derived from the events, with the bounds that keep it small.

    Args:
        max_active_agents: running agents tracked at most; the oldest are evicted (and counted).
        max_opportunities: opportunities kept at most; the oldest go first.
        max_known_agents: agent ids remembered (for ``agent_registered`` on first sight).
    """

    def __init__(self, *, max_active_agents: int, max_opportunities: int, max_known_agents: int) -> None:
        self.max_active_agents = max_active_agents
        self.max_known_agents = max_known_agents
        self.total_events = 0
        self.events_by_type: dict[EventType, int] = dict.fromkeys(EventType, 0)
        self.total_agents_executed = 0
        self.failed_agent_runs = 0
        self.total_opportunities = 0
        self.quality_sum = 0.0
        self.quality_count = 0
        self.total_errors = 0
        self.version = 0  # grows with every change metrics_updated reports
        self.active_agents: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.evicted_active_agents = 0
        self.known_agents: OrderedDict[str, str] = OrderedDict()
        self.opportunities: deque[dict[str, Any]] = deque(maxlen=max_opportunities)
        # Runs that were in progress when a previous server stopped (see rebuild.py).
        self.lost_agents: OrderedDict[str, dict[str, Any]] = OrderedDict()
        # Runs found open by a rebuild, kept so that a replica joining a cluster can take them back
        # as running (in a cluster another replica may still be receiving their events).
        self.rebuilt_runs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        # The live progress of open runs (state/runs.py), set by the state that owns both: a run's
        # completion closes it here, in the same hold of the state's lock that accepts the event.
        self.open_runs: OpenRuns | None = None
        # Per-agent usage over the rolling window (state/agent_stats.py), set by the state: fed the
        # completions here, so that the rebuild's replay restores it.
        self.agent_stats: AgentStats | None = None
        # The agent graph over the same window (state/agent_graph.py), set by the state: fed the run
        # events here, so that the rebuild's replay restores it too.
        self.agent_graph: AgentGraph | None = None

    # ------------------------------------------------------------------ applying events
    def apply(self, event: DashboardEvent) -> None:
        """Update everything ``event`` changes."""
        etype = event.event_type
        data = event.data
        self.total_events += 1
        self.events_by_type[etype] += 1
        if etype not in _META_EVENT_TYPES:
            self.version += 1
        if self.lost_agents and etype is not _COMPLETED:
            # An event naming a run that was open at a restart: its sender is still at work.
            run_id = data.get("run_id")
            if isinstance(run_id, str) and run_id in self.lost_agents:
                self.revive(run_id)
        if etype is _STARTED:
            run_id = str(data.get("run_id") or data.get("agent_id") or event.event_id)
            self.active_agents[run_id] = {
                "run_id": run_id,
                "agent_id": data.get("agent_id"),
                "agent_name": data.get("agent_name"),
                "task_description": data.get("task_description"),
                "started_at": data.get("started_at") or event.timestamp,
                "service_name": data.get("service_name"),
                "trace_id": event.trace_id,
                "span_id": event.span_id,
                "_started_monotonic": time.monotonic(),
            }
            self.active_agents.move_to_end(run_id)
            while len(self.active_agents) > self.max_active_agents:
                self.active_agents.popitem(last=False)
                self.evicted_active_agents += 1
            agent_graph = self.agent_graph
            if agent_graph is not None:
                agent_graph.record_started(data, event.timestamp)
        elif etype is _COMPLETED:
            run_id = str(data.get("run_id") or data.get("agent_id") or "")
            self.active_agents.pop(run_id, None)
            self.lost_agents.pop(run_id, None)  # a lost run that finished after all
            open_runs = self.open_runs
            if open_runs is not None:
                open_runs.complete(data.get("run_id"))  # the progress table keys on the span id only
            self.total_agents_executed += 1
            if data.get("success") is False:
                self.failed_agent_runs += 1
            agent_stats = self.agent_stats
            if agent_stats is not None:
                agent_stats.record(data, event.timestamp)
            agent_graph = self.agent_graph
            if agent_graph is not None:
                agent_graph.record_completed(data, event.timestamp)
            score = data.get("quality_score")
            if isinstance(score, (int, float)) and not isinstance(score, bool):
                self.quality_sum += float(score)
                self.quality_count += 1
        elif etype is _OPPORTUNITY:
            self.total_opportunities += 1
            # The event's own fields too: get_opportunities() gives the event's to_dict() shape back.
            self.opportunities.append({
                **data, "timestamp": event.timestamp, "seq": event.seq, "event_id": event.event_id,
                "severity": event.severity.value, "trace_id": event.trace_id, "span_id": event.span_id,
            })
        elif etype is _ERROR:
            self.total_errors += 1
        elif etype is _REGISTERED:
            agent_id = data.get("agent_id")
            if agent_id:
                self.known_agents[str(agent_id)] = str(data.get("agent_name") or agent_id)
                self.known_agents.move_to_end(str(agent_id))
                while len(self.known_agents) > self.max_known_agents:
                    self.known_agents.popitem(last=False)

    def set_counts(self, by_type: dict[EventType, int]) -> None:
        """Take the per-type counts (and the totals made of them) from elsewhere: the store after a
        rebuild, or another replica's export."""
        self.events_by_type = by_type
        self.total_events = sum(by_type.values())
        self.total_opportunities = by_type[_OPPORTUNITY]
        self.total_errors = by_type[_ERROR]

    def mark_open_runs_lost(self, detected_at: str) -> None:
        """The runs still open after a rebuild were running when the previous server stopped: their
        senders may still be at work, or gone. They become "unknown since restart" (the snapshot's
        ``lost_agents``, bounded like the running ones), no longer active: each keeps its fields
        plus ``"status": "unknown"``, ``unknown_since`` and (the older name) ``lost_detected_at``.
        An event or run progress naming one brings it back (:meth:`revive`)."""
        self.rebuilt_runs = OrderedDict(self.active_agents)
        for run_id, entry in self.active_agents.items():
            self.lost_agents[run_id] = {**_public(entry), "status": "unknown", "unknown_since": detected_at,
                                        "lost_detected_at": detected_at}
        while len(self.lost_agents) > self.max_active_agents:
            self.lost_agents.popitem(last=False)
        self.active_agents.clear()
        self.evicted_active_agents = 0

    def revive(self, run_id: str) -> None:
        """The run ``run_id``, unknown since a restart, is running after all (an event or progress
        named it): it leaves ``lost_agents`` and is active again, from its original start."""
        entry = self.lost_agents.pop(run_id, None)
        if entry is None:
            return
        for key in ("status", "unknown_since", "lost_detected_at"):
            entry.pop(key, None)
        # Its elapsed time counts from its real start, not from now (the stall threshold too).
        started = parse_epoch(entry.get("started_at"))
        elapsed = max(0.0, time.time() - started) if started is not None else 0.0
        entry["_started_monotonic"] = time.monotonic() - elapsed
        self.active_agents[run_id] = entry
        self.active_agents.move_to_end(run_id)
        while len(self.active_agents) > self.max_active_agents:
            self.active_agents.popitem(last=False)
            self.evicted_active_agents += 1
        self.version += 1

    def drop_lost(self, run_id: str) -> None:
        """The run ``run_id`` was given up without a completion (``"status": "ended"`` progress)."""
        if self.lost_agents.pop(run_id, None) is not None:
            self.version += 1

    def revive_rebuilt_runs(self) -> None:
        """Make the runs the rebuild found open running again (a replica joined a cluster)."""
        for run_id, entry in self.rebuilt_runs.items():
            if run_id in self.lost_agents:
                self.lost_agents.pop(run_id)
                self.active_agents[run_id] = entry
        self.rebuilt_runs.clear()

    # ------------------------------------------------------------------ read-outs
    def metrics(self, uptime_seconds: float) -> dict[str, Any]:
        """The metric card values (the original design's keys plus a few more).

        ``active_agents`` is the number of open runs (:meth:`open_run_count`), the ``window_*``
        fields are the rolling window's totals (:class:`~otel_dashboard.state.agent_stats.AgentStats`).
        """
        avg = self.quality_sum / self.quality_count if self.quality_count else 0.0
        metrics = {
            "total_events": self.total_events,
            "total_agents_executed": self.total_agents_executed,
            "total_opportunities_discovered": self.total_opportunities,
            "avg_quality_score": round(avg, 2),
            "quality_scores_count": self.quality_count,
            "active_agents": self.open_run_count(),
            "lost_agents": len(self.lost_agents),
            "failed_agent_runs": self.failed_agent_runs,
            "total_errors": self.total_errors,
            "system_uptime_seconds": round(uptime_seconds, 3),
        }
        metrics.update(self.window_metrics())
        return metrics

    def window_metrics(self) -> dict[str, Any]:
        """The rolling window's totals as metrics fields (``window_seconds``, ``window_runs``, ...)."""
        stats = self.agent_stats
        if stats is None:
            return {}
        totals = stats.totals()
        return {
            "window_seconds": stats.window_seconds,
            "window_runs": totals["runs"],
            "window_failed_runs": totals["failures"],
            "window_error_rate": totals["error_rate"],
            "window_tokens_input": totals["tokens"]["input"],
            "window_tokens_output": totals["tokens"]["output"],
            "window_cost_usd": totals["cost_usd"],
            "window_cost_status": totals["cost_status"],
        }

    def open_run_count(self) -> int:
        """How many entries :meth:`open_runs_now` has (without making them)."""
        active = self.active_agents
        open_runs = self.open_runs
        if open_runs is None or not len(open_runs):
            return len(active)
        return len(active) + sum(1 for run in open_runs.newest(len(open_runs))
                                 if run["run_id"] not in active and run.get("status") != ENDED)

    def open_runs_now(self, stall_threshold_seconds: float) -> list[dict[str, Any]]:
        """The open runs now: the running agents (their started events) and the runs of the live
        progress table, one entry per ``run_id`` (the union); each ``{"run_id", "agent_id",
        "agent_name", "service_name", "stalled"}``. The one source of "active" for the metrics,
        ``/health`` and ``GET /api/agents``.

        A run known only from its progress is stalled when its ``started_at`` is older than the
        threshold (a run with an unreadable start never is).
        """
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        for run_id, entry in self.active_agents.items():
            out[run_id] = {
                "run_id": run_id, "agent_id": entry.get("agent_id"), "agent_name": entry.get("agent_name"),
                "service_name": entry.get("service_name"),
                "stalled": now - entry["_started_monotonic"] > stall_threshold_seconds,
            }
        open_runs = self.open_runs
        if open_runs is not None and len(open_runs):
            wall = time.time()
            for run in open_runs.newest(len(open_runs)):
                run_id = run["run_id"]
                if run_id in out or run.get("status") == ENDED:
                    continue
                started = parse_epoch(run.get("started_at"))
                out[run_id] = {
                    "run_id": run_id, "agent_id": run.get("agent_id"), "agent_name": run.get("agent_name"),
                    "service_name": run.get("service_name"),
                    "stalled": started is not None and wall - started > stall_threshold_seconds,
                }
        return list(out.values())

    def running(self, stall_threshold_seconds: float) -> list[dict[str, Any]]:
        """The agent runs in progress, oldest first, each with ``elapsed_seconds`` and ``stalled``."""
        now = time.monotonic()
        out = []
        for entry in self.active_agents.values():
            elapsed = now - entry["_started_monotonic"]
            public = _public(entry)
            public["elapsed_seconds"] = round(elapsed, 3)
            public["stalled"] = elapsed > stall_threshold_seconds
            out.append(public)
        return out

    def counts_by_type(self) -> dict[str, int]:
        """Events per event type value."""
        return {k.value: v for k, v in self.events_by_type.items()}

    # ------------------------------------------------------------------ cluster export
    def export(self, seq: int) -> dict[str, Any]:
        """Everything here as JSON-ready data, labelled with the ``seq`` it stands at."""
        now = time.monotonic()
        return {
            "seq": seq,
            "events_by_type": self.counts_by_type(),
            "total_agents_executed": self.total_agents_executed,
            "failed_agent_runs": self.failed_agent_runs,
            "quality_sum": self.quality_sum,
            "quality_count": self.quality_count,
            "active_agents": [
                {**_public(entry), "elapsed_seconds": now - entry["_started_monotonic"]}
                for entry in self.active_agents.values()
            ],
            "known_agents": list(self.known_agents.items()),
            "opportunities": list(self.opportunities),
            "lost_agents": list(self.lost_agents.values()),
            "agent_stats": self.agent_stats.export() if self.agent_stats is not None else None,
        }

    @staticmethod
    def parse_export(derived: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Check an :meth:`export` and turn it back into fields; nothing changes here.

        Returns:
            ``(seq, fields)`` for :meth:`take_export`.

        Raises:
            ValueError: ``derived`` is not such an export (the field is named).
        """
        try:
            seq = int(derived["seq"])
            by_type = dict.fromkeys(EventType, 0)
            for type_value, count in derived["events_by_type"].items():
                if type_value in EVENT_TYPE_VALUES:
                    by_type[EventType(type_value)] = int(count)
            now = time.monotonic()
            fields = {
                "by_type": by_type,
                "active": OrderedDict(
                    (str(entry["run_id"]), {
                        **{k: v for k, v in entry.items() if k != "elapsed_seconds"},
                        "_started_monotonic": now - float(entry.get("elapsed_seconds") or 0.0),
                    })
                    for entry in derived["active_agents"]
                ),
                "known": OrderedDict((str(k), str(v)) for k, v in derived["known_agents"]),
                "lost": OrderedDict((str(entry["run_id"]), dict(entry)) for entry in derived["lost_agents"]),
                "opportunities": [dict(o) for o in derived["opportunities"]],
                "total_agents_executed": int(derived["total_agents_executed"]),
                "failed_agent_runs": int(derived["failed_agent_runs"]),
                "quality_sum": float(derived["quality_sum"]),
                "quality_count": int(derived["quality_count"]),
                # Absent from an older replica's export: the window then fills from the events.
                "agent_stats": derived.get("agent_stats"),
            }
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"derived: not a state export ({type(exc).__name__}: {exc})") from None
        return seq, fields

    def take_export(self, fields: dict[str, Any]) -> None:
        """Replace everything with the ``fields`` of :meth:`parse_export`."""
        self.set_counts(fields["by_type"])
        self.total_agents_executed = fields["total_agents_executed"]
        self.failed_agent_runs = fields["failed_agent_runs"]
        self.quality_sum = fields["quality_sum"]
        self.quality_count = fields["quality_count"]
        self.active_agents = fields["active"]
        self.known_agents = fields["known"]
        self.lost_agents = fields["lost"]
        self.opportunities.clear()
        self.opportunities.extend(fields["opportunities"])
        exported_stats = fields.get("agent_stats")
        if self.agent_stats is not None and isinstance(exported_stats, dict):
            # Another window (--usage-window-seconds differs) or a bad export: fill from the events.
            with contextlib.suppress(ValueError):
                self.agent_stats.take_export(exported_stats)
        self.version += 1
