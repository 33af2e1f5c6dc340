"""Per-agent usage from the GenAI and MCP metrics, over the agents table's rolling window.

:class:`MetricUsage` is fed the points :func:`~otel_dashboard.model.otlp.metrics.read_metrics` read
(``POST /v1/metrics``, the gRPC MetricsService, the in-process metric exporter) and answers the
metric side of ``GET /api/agents``; :func:`merge_entry` and :func:`merge_totals` put it beside the
span-derived figures of :class:`~otel_dashboard.state.agent_stats.AgentStats`, spans first.

The contract (docs/otlp.md, "Metrics"):

* **Deltas.** A delta point adds as it is. A cumulative point (the SDK's default) adds what it grew
  since the last point of its stream (resource, scope, metric, point attributes): the last value of
  each stream is kept, at most ``max_streams`` of them (the least recently updated is forgotten,
  counted in :attr:`MetricUsage.evicted_streams`). The first point of a stream (or of one forgotten)
  adds its whole value; so does a point whose start time changed or whose value went down (the
  sender restarted: a reset, counted). A cumulative point older than its stream's last one is stale
  and ignored.
* **Window.** A delta counts in the bucket of its point's ``time_unix_nano`` (clamped to now); one
  older than the window is ignored. Same window and buckets as the agents table.
* **One family per figure.** Each figure (tokens, model calls, agent runs, tool calls, MCP calls) is
  taken, per agent, from the first family of :data:`~otel_dashboard.model.otlp.metrics.FIGURES` that
  has data in the window, never from the sum of two (an application that sends the same tokens under
  an old and a new name is counted once).
* **A service's row.** Points without ``gen_ai.agent.name`` count for an agent named after their
  service (:func:`is_service_row`); in the agents table that row gives way to the span rows of the
  same service (:func:`service_row_figures`): they count the same calls under the agents' names.
* **Cost.** A token delta is priced with the price book (a histogram's delta as ``count`` calls of its
  mean size, a counter's as one call): only when a price is known for its model, else it counts as
  ``no_price``. Input and output tokens only (cache reads are not discounted).
* **Durations.** The p50 and p95 of agent runs come from the histogram buckets in the window (linear
  inside a bucket; the overflow bucket answers its lower bound), from the first bounds seen.

Bounded memory: ``max_agents`` agents (the least recently updated is evicted, counted in
:attr:`MetricUsage.evicted_agents`; the totals keep its figures), one bucket per bucket of the window
per family, ``max_streams`` stream values. Not thread-safe by itself: the
:class:`~otel_dashboard.state.dashboard.DashboardState` that owns it guards it with its lock. In
memory only: a restart (or another replica of a cluster) starts empty.

Over 400 lines on purpose: the streams' last values, the window's buckets per family, the choice of
one family per figure and the merge with the span figures are one contract (what a delta is, where it
counts, which source a figure comes from); split, each part would re-check the others' invariants.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from otel_dashboard.model.events import format_timestamp
from otel_dashboard.state.agent_stats import (
    DEFAULT_MAX_AGENTS,
    DEFAULT_WINDOW_SECONDS,
    check_window,
    cost_status_of,
)

if TYPE_CHECKING:  # the model's OTLP package loads the SDK; the state only reads the points' fields
    from otel_dashboard.model.otlp.metrics import MetricPoint
    from otel_dashboard.model.runs import CostSource

__all__ = [
    "DEFAULT_MAX_STREAMS",
    "MetricUsage",
    "is_service_row",
    "merge_entry",
    "merge_totals",
    "metric_only_entry",
    "service_row_figures",
]

DEFAULT_MAX_STREAMS = 10_000
"""Cumulative streams whose last value is kept; the least recently updated is forgotten first."""

# The figures and their families, as in otel_dashboard.model.otlp.metrics.FIGURES (repeated: the
# state may not import the model's OTLP package at run time; tests/test_otlp_metrics.py pins both).
_FIGURES: dict[str, tuple[str, ...]] = {
    "tokens": ("gen_ai.client.inference.usage", "gen_ai.client.inference.operation",
               "gen_ai.client.inference.tokens", "gen_ai.client.token.usage"),
    "model_calls": ("gen_ai.client.inference.duration", "gen_ai.client.operation.duration"),
    "runs": ("gen_ai.invoke_agent.duration",),
    "tool_calls": ("gen_ai.execute_tool.duration",),
    "mcp_calls": ("mcp.client.operation.duration", "mcp.server.operation.duration"),
}
_PRICED = "priced"
_NO_PRICE = "no_price"


class _Fig:
    """One family's figures in one bucket."""

    __slots__ = ("bounds", "bucket_counts", "cost_usd", "count", "failures", "statuses", "tokens_input",
                 "tokens_output", "total")

    def __init__(self) -> None:
        self.count = 0
        self.failures = 0
        self.total = 0.0
        self.tokens_input = 0
        self.tokens_output = 0
        self.cost_usd = 0.0
        self.statuses: dict[str, int] = {}
        self.bounds: tuple[float, ...] = ()
        self.bucket_counts: list[int] = []

    def has_data(self) -> bool:
        return bool(self.count or self.tokens_input or self.tokens_output or self.total)

    def add_buckets(self, bounds: tuple[float, ...], counts: Iterable[int]) -> None:
        if not bounds:
            return
        if not self.bounds:
            self.bounds = bounds
            self.bucket_counts = [0] * (len(bounds) + 1)
        if bounds != self.bounds:
            return  # other bounds: counted, not in the percentiles
        for i, n in enumerate(counts):
            self.bucket_counts[i] += n


class _Agent:
    __slots__ = ("buckets", "last_error", "last_ts", "name", "service")

    def __init__(self, name: str, service: str | None) -> None:
        self.name = name
        self.service = service
        self.buckets: dict[int, dict[str, _Fig]] = {}
        self.last_ts = 0.0
        self.last_error: dict[str, Any] | None = None


class _Stream:
    __slots__ = ("bucket_counts", "count", "start", "time", "total")

    def __init__(self, start: int, time_ns: int, count: int, total: float,
                 bucket_counts: tuple[int, ...]) -> None:
        self.start = start
        self.time = time_ns
        self.count = count
        self.total = total
        self.bucket_counts = bucket_counts


class MetricUsage:
    """Rolling-window usage per agent (name, service) from metrics, and over all of them.

    Args:
        window_seconds: the window's length (a positive multiple of ``bucket_seconds``).
        bucket_seconds: one bucket's length.
        max_agents: agents tracked at most; the least recently updated is evicted (counted).
        max_streams: cumulative streams whose last value is kept (counted when one is forgotten).
        clock: seconds since the epoch, now (``time.time``; tests inject their own).

    Raises:
        ValueError: a bound that is not a positive integer, or a window that is not a whole number
            of buckets (the parameter is named).
    """

    def __init__(
        self,
        *,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        bucket_seconds: int = 60,
        max_agents: int = DEFAULT_MAX_AGENTS,
        max_streams: int = DEFAULT_MAX_STREAMS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_window(window_seconds, bucket_seconds, max_agents=max_agents, max_streams=max_streams)
        self.window_seconds = window_seconds
        self.bucket_seconds = bucket_seconds
        self.buckets = window_seconds // bucket_seconds
        self.max_agents = max_agents
        self.max_streams = max_streams
        self._clock = clock
        self._agents: OrderedDict[tuple[str, str | None], _Agent] = OrderedDict()
        self._totals: dict[int, dict[str, _Fig]] = {}
        self._streams: OrderedDict[bytes, _Stream] = OrderedDict()
        self.evicted_agents = 0
        self.evicted_streams = 0
        self.resets = 0
        self.stale_points = 0

    def __len__(self) -> int:
        return len(self._agents)

    @property
    def streams(self) -> int:
        """Cumulative streams whose last value is kept now."""
        return len(self._streams)

    # ------------------------------------------------------------------ recording
    def record(self, points: Iterable[MetricPoint], *, prices: CostSource | None = None) -> int:
        """Add the deltas of ``points`` (in the order given: a request's points are in time order
        per stream). Never raises for odd values (the reader checked them).

        Args:
            points: the points of one request.
            prices: prices the token deltas; None: no cost (``no_price``).

        Returns:
            How many points added something to the window.
        """
        now = self._clock()
        first = self._first_index(now)
        used = 0
        for point in points:
            delta = self._delta(point)
            if delta is None:
                continue
            count, total, bucket_counts = delta
            if not count and not total:
                continue
            ts = min(point.time_unix_nano / 1e9, now)
            index = int(ts // self.bucket_seconds)
            if index < first:
                continue
            key = (point.agent, point.service)
            agent = self._agents.get(key)
            if agent is None:
                agent = self._agents[key] = _Agent(point.agent, point.service)
                while len(self._agents) > self.max_agents:
                    self._agents.popitem(last=False)
                    self.evicted_agents += 1
            self._agents.move_to_end(key)
            agent.last_ts = max(agent.last_ts, ts)
            failed = point.error_type is not None
            cost, status = self._cost(point, count, total, prices)
            for held in (agent.buckets, self._totals):
                families = held.get(index)
                if families is None:
                    families = held[index] = {}
                    _prune(held, first)
                fig = families.get(point.family)
                if fig is None:
                    fig = families[point.family] = _Fig()
                _add(fig, point, count, total, bucket_counts, failed, cost, status)
            if failed and point.figure == "runs" and (
                    agent.last_error is None or ts >= agent.last_error["_ts"]):
                agent.last_error = {"type": point.error_type, "message": None,
                                    "at": format_timestamp(int(ts * 1_000_000_000)), "run_id": None,
                                    "_ts": ts}
            used += 1
        return used

    def _delta(self, point: MetricPoint) -> tuple[int, float, tuple[int, ...]] | None:
        """What ``point`` adds: (count, total, bucket counts); None for a stale cumulative point."""
        if not point.cumulative:
            return point.count, point.total, point.bucket_counts
        streams = self._streams
        previous = streams.get(point.stream)
        if previous is not None and point.start_time_unix_nano == previous.start \
                and point.time_unix_nano < previous.time:
            self.stale_points += 1
            return None
        streams[point.stream] = _Stream(point.start_time_unix_nano, point.time_unix_nano, point.count,
                                        point.total, point.bucket_counts)
        streams.move_to_end(point.stream)
        while len(streams) > self.max_streams:
            streams.popitem(last=False)
            self.evicted_streams += 1
        if previous is None:
            return point.count, point.total, point.bucket_counts
        grew = (point.start_time_unix_nano == previous.start and point.count >= previous.count
                and point.total >= previous.total
                and len(point.bucket_counts) == len(previous.bucket_counts)
                and all(now >= before for now, before in zip(point.bucket_counts, previous.bucket_counts,
                                                             strict=True)))
        if not grew:
            self.resets += 1
            return point.count, point.total, point.bucket_counts
        return (point.count - previous.count, point.total - previous.total,
                tuple(now - before for now, before in zip(point.bucket_counts, previous.bucket_counts,
                                                          strict=True)))

    @staticmethod
    def _cost(point: MetricPoint, count: int, total: float,
              prices: CostSource | None) -> tuple[float | None, str | None]:
        if point.figure != "tokens" or total <= 0:
            return None, None
        if prices is None or point.model is None:
            return None, _NO_PRICE
        calls = count if count > 0 else 1
        size = round(total / calls)
        try:
            if point.direction == "input":
                one = prices.cost(model=point.model, provider=point.provider, input_tokens=size)
            else:
                one = prices.cost(model=point.model, provider=point.provider, output_tokens=size)
        except Exception:  # a price source that fails: the tokens count, unpriced
            return None, _NO_PRICE
        if one is None or not math.isfinite(one) or one < 0:
            return None, _NO_PRICE
        return one * calls, _PRICED

    def _first_index(self, now: float) -> int:
        return int(now // self.bucket_seconds) - self.buckets + 1

    # ------------------------------------------------------------------ reading
    def newest(self, keep: Callable[[tuple[str, str | None]], bool] | None = None,
               limit: int | None = None) -> list[tuple[float, tuple[str, str | None]]]:
        """(last update, key) of the agents with figures in the window, the newest first.

        Agents with nothing left in the window are forgotten here.
        """
        first = self._first_index(self._clock())
        order = []
        for key in reversed(list(self._agents)):  # the most recently updated first among equal times
            agent = self._agents[key]
            _prune(agent.buckets, first)
            if not agent.buckets:
                del self._agents[key]
                continue
            if keep is None or keep(key):
                order.append((agent.last_ts, key))
        order.sort(key=lambda item: item[0], reverse=True)
        return order[:limit] if limit is not None else order

    def figures(self, key: tuple[str, str | None]) -> dict[str, Any] | None:
        """One agent's figures in the window (see :func:`_figures`), None when it has none."""
        agent = self._agents.get(key)
        if agent is None:
            return None
        first = self._first_index(self._clock())
        _prune(agent.buckets, first)
        if not agent.buckets:
            return None
        figures = _figures(agent.buckets, first, self.buckets)
        figures["last_ts"] = agent.last_ts
        figures["last_error"] = ({k: v for k, v in agent.last_error.items() if k != "_ts"}
                                 if agent.last_error is not None and figures["runs"] else None)
        return figures

    def totals(self) -> dict[str, Any]:
        """Every agent's figures in the window, evicted ones included."""
        first = self._first_index(self._clock())
        _prune(self._totals, first)
        return _figures(self._totals, first, self.buckets)

    def counters(self) -> dict[str, int]:
        """For ``/stats``: agents and streams kept, and what the bounds and resets did."""
        return {"metric_agents": len(self._agents), "metric_streams": len(self._streams),
                "evicted_metric_agents": self.evicted_agents,
                "evicted_metric_streams": self.evicted_streams,
                "metric_stream_resets": self.resets, "metric_stale_points": self.stale_points}


def _add(fig: _Fig, point: MetricPoint, count: int, total: float, bucket_counts: tuple[int, ...],
         failed: bool, cost: float | None, status: str | None) -> None:
    if point.figure == "tokens":
        tokens = round(total)
        if point.direction == "input":
            fig.tokens_input += tokens
        else:
            fig.tokens_output += tokens
        fig.count += count
        if cost is not None:
            fig.cost_usd += cost
        if status is not None:
            fig.statuses[status] = fig.statuses.get(status, 0) + 1
        return
    fig.count += count
    fig.total += total
    if failed:
        fig.failures += count
    fig.add_buckets(point.bounds, bucket_counts)


def _chosen(buckets: dict[int, dict[str, _Fig]], figure: str) -> str | None:
    """The first family of ``figure`` with data in these buckets."""
    for family in _FIGURES[figure]:
        if any(fig.has_data() for families in buckets.values()
               if (fig := families.get(family)) is not None):
            return family
    return None


def _figures(buckets: dict[int, dict[str, _Fig]], first: int, n_buckets: int) -> dict[str, Any]:
    """The figures of a set of buckets: each from its chosen family."""
    out: dict[str, Any] = {"families": {}}
    for figure in _FIGURES:
        family = _chosen(buckets, figure)
        out["families"][figure] = family
        figs = [families[family] for families in buckets.values() if family in families] if family else []
        count = sum(f.count for f in figs)
        failures = sum(f.failures for f in figs)
        if figure == "tokens":
            statuses: dict[str, int] = {}
            for f in figs:
                for status, n in f.statuses.items():
                    statuses[status] = statuses.get(status, 0) + n
            out["tokens"] = {"input": sum(f.tokens_input for f in figs),
                             "output": sum(f.tokens_output for f in figs)}
            out["cost_usd"] = round(sum(f.cost_usd for f in figs), 6)
            out["cost_status"] = cost_status_of(statuses)
        elif figure == "runs":
            out["runs"] = count
            out["failures"] = failures
            out["duration_ms"] = _percentiles(figs, count)
            indexes = range(first, first + n_buckets)
            out["activity"] = [_bucket_count(buckets, i, family, False) for i in indexes]
            out["failures_activity"] = [_bucket_count(buckets, i, family, True) for i in indexes]
        else:
            out[figure] = count
            out[f"{figure[:-1]}_failures"] = failures  # model_call_failures, tool_call_failures, ...
    return out


def _bucket_count(buckets: dict[int, dict[str, _Fig]], index: int, family: str | None, failures: bool) -> int:
    if family is None:
        return 0
    fig = buckets.get(index, {}).get(family)
    if fig is None:
        return 0
    return fig.failures if failures else fig.count


def _percentiles(figs: list[_Fig], count: int) -> dict[str, Any]:
    """p50/p95 in milliseconds from the buckets of the first bounds seen; ``samples`` the operations
    they cover."""
    bounds: tuple[float, ...] = ()
    merged: list[int] = []
    for fig in figs:
        if not fig.bounds:
            continue
        if not bounds:
            bounds = fig.bounds
            merged = [0] * (len(bounds) + 1)
        if fig.bounds == bounds:
            for i, n in enumerate(fig.bucket_counts):
                merged[i] += n
    samples = sum(merged)
    if not samples:
        return {"p50": None, "p95": None, "samples": 0}
    return {"p50": _estimate(bounds, merged, samples, 0.5), "p95": _estimate(bounds, merged, samples, 0.95),
            "samples": samples}


def _estimate(bounds: tuple[float, ...], counts: list[int], samples: int, fraction: float) -> float:
    """The ``fraction`` quantile in ms: linear inside its bucket (the first from 0, the overflow
    bucket answers its lower bound)."""
    rank = max(1, math.ceil(fraction * samples))
    seen = 0
    for i, n in enumerate(counts):
        if seen + n >= rank:
            if i == len(bounds):
                seconds = bounds[-1]
            else:
                low = bounds[i - 1] if i > 0 else min(0.0, bounds[0])
                seconds = low + (bounds[i] - low) * (rank - seen) / n
            return round(seconds * 1000.0, 3)
        seen += n
    return round(bounds[-1] * 1000.0, 3)


def _prune(held: dict[int, Any], first: int) -> None:
    stale = [index for index in held if index < first]
    for index in stale:
        del held[index]


# ---------------------------------------------------------------------- the merge with the spans
def _metrics_field(figures: dict[str, Any]) -> dict[str, Any]:
    """The ``metrics`` field of an agents entry: what only the metrics tell."""
    return {
        "model_calls": figures["model_calls"], "model_call_failures": figures["model_call_failures"],
        "tool_calls": figures["tool_calls"], "tool_call_failures": figures["tool_call_failures"],
        "mcp_calls": figures["mcp_calls"], "mcp_call_failures": figures["mcp_call_failures"],
        "families": figures["families"],
    }


def merge_entry(entry: dict[str, Any], figures: dict[str, Any] | None) -> dict[str, Any]:
    """An agents entry from the spans, with the metrics' figures where the spans have none.

    Spans first, per figure: runs (with failures, success rate, durations, last error and activity)
    when the spans have no run; tokens when the spans' are both 0; cost when the spans' is 0 and the
    tokens came from the metrics, or the metrics priced some. Adds ``sources`` (``"spans"``,
    ``"metrics"`` or None per ``runs``, ``tokens``, ``cost``) and ``metrics`` (None without any).
    """
    sources: dict[str, str | None] = {
        "runs": "spans" if entry["runs"] else None,
        "tokens": "spans" if entry["tokens"]["input"] or entry["tokens"]["output"] else None,
        "cost": "spans" if entry["cost_usd"] else None,
    }
    entry["sources"] = sources
    entry["metrics"] = None
    if figures is None:
        return entry
    entry["metrics"] = _metrics_field(figures)
    if sources["runs"] is None and figures["runs"]:
        runs, failures = figures["runs"], figures["failures"]
        entry.update(runs=runs, failures=failures, success_rate=round((runs - failures) / runs, 4),
                     duration_ms=figures["duration_ms"], activity=figures["activity"],
                     failures_activity=figures["failures_activity"])
        if figures["last_error"] is not None:
            entry["last_error"] = figures["last_error"]
        if entry.get("last_run_at") is None:
            entry["last_run_at"] = format_timestamp(int(figures["last_ts"] * 1_000_000_000))
        sources["runs"] = "metrics"
    if sources["tokens"] is None and (figures["tokens"]["input"] or figures["tokens"]["output"]):
        entry["tokens"] = dict(figures["tokens"])
        sources["tokens"] = "metrics"
    if sources["cost"] is None and (figures["cost_usd"] or sources["tokens"] == "metrics"):
        entry["cost_usd"] = figures["cost_usd"]
        entry["cost_status"] = figures["cost_status"]
        sources["cost"] = "metrics" if figures["cost_usd"] else None
    return entry


def metric_only_entry(key: tuple[str, str | None], figures: dict[str, Any], n_buckets: int) -> dict[str, Any]:
    """An agents entry for an agent seen only in the metrics."""
    empty = {
        "agent": key[0], "service": key[1], "running": 0, "runs": 0, "failures": 0,
        "success_rate": None, "duration_ms": {"p50": None, "p95": None, "samples": 0},
        "tokens": {"input": 0, "output": 0}, "cost_usd": 0.0, "cost_status": None,
        "last_error": None,
        "last_run_at": format_timestamp(int(figures["last_ts"] * 1_000_000_000)),
        "activity": [0] * n_buckets, "failures_activity": [0] * n_buckets,
    }
    return merge_entry(empty, figures)


def is_service_row(key: tuple[str, str | None]) -> bool:
    """Whether a metrics row is its service's (points without ``gen_ai.agent.name`` count for an
    agent named after the service, ``unknown_service`` without one)."""
    return key[0] == (key[1] or "unknown_service")


def service_row_figures(
    figures: dict[str, Any], span_entries: Iterable[dict[str, Any]]
) -> dict[str, Any] | None:
    """A service's metrics row (:func:`is_service_row`) beside the span rows of the same service.

    Its points named no agent, so they are the same calls the span rows of its service already
    count under their agents' names (OpenLLMetry and pydantic-ai put no ``gen_ai.agent.name`` on
    ``gen_ai.client.token.usage``; their spans do): spans first, per service. The row's tokens and
    cost are dropped when a span row of the service has tokens, its runs when one has runs. Returns
    the figures left, or None when neither tokens nor runs are left (the row is not shown; with no
    span row of the service, the figures unchanged).
    """
    entries = list(span_entries)
    if not entries:
        return figures
    left = dict(figures)
    if any(entry["tokens"]["input"] or entry["tokens"]["output"] for entry in entries):
        left.update(tokens={"input": 0, "output": 0}, cost_usd=0.0, cost_status=None)
    if any(entry["runs"] for entry in entries):
        left.update(runs=0, failures=0, last_error=None)
    if not (left["runs"] or left["tokens"]["input"] or left["tokens"]["output"]):
        return None
    return left


def merge_totals(totals: dict[str, Any], figures: dict[str, Any]) -> dict[str, Any]:
    """The window's totals from the spans, with the metrics' where the spans have none (the rule of
    :func:`merge_entry`, over all agents), and ``sources``."""
    sources: dict[str, str | None] = {
        "runs": "spans" if totals["runs"] else None,
        "tokens": "spans" if totals["tokens"]["input"] or totals["tokens"]["output"] else None,
        "cost": "spans" if totals["cost_usd"] else None,
    }
    if sources["runs"] is None and figures["runs"]:
        totals["runs"], totals["failures"] = figures["runs"], figures["failures"]
        totals["error_rate"] = round(figures["failures"] / figures["runs"], 4)
        sources["runs"] = "metrics"
    if sources["tokens"] is None and (figures["tokens"]["input"] or figures["tokens"]["output"]):
        totals["tokens"] = dict(figures["tokens"])
        sources["tokens"] = "metrics"
    if sources["cost"] is None and (figures["cost_usd"] or sources["tokens"] == "metrics"):
        totals["cost_usd"] = figures["cost_usd"]
        totals["cost_status"] = figures["cost_status"]
        sources["cost"] = "metrics" if figures["cost_usd"] else None
    totals["sources"] = sources
    return totals
