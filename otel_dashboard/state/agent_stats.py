"""Per-agent usage over a rolling window: runs, failures, durations, tokens, cost, last error.

:class:`AgentStats` is fed the accepted ``agent_execution_completed`` events (by
:meth:`~otel_dashboard.state.derived.DerivedState.apply`, so a rebuild after a restart, which replays
the stored run events, restores it) and answers ``GET /api/agents`` and the ``window_*`` fields of
the metrics (``docs/api.md``, ``docs/server.md``).

The contract:

* An agent is the pair (agent name, service name). A completion counts in the bucket of its event's
  timestamp (clamped to now: a sender's clock ahead of ours counts now); one older than the window
  is ignored. The window is ``window_seconds`` long, in ``window_seconds / bucket_seconds`` buckets;
  a bucket leaves the window whole, when its last second has passed.
* Per agent: runs and failures (``success: false``), input and output tokens (``tokens.input`` /
  ``tokens.output``, else ``input_tokens`` / ``output_tokens``), cost (``cost_usd`` summed) and its
  status, duration percentiles (``duration_ms`` of the newest :data:`DEFAULT_MAX_SAMPLES` runs in
  the window, nearest rank), the newest failure (``last_error``), the newest completion
  (``last_run_at``), and runs and failures per bucket (``activity``, ``failures_activity``).
* Per agent too: ``over_budget_runs``, its runs that crossed a run budget in the window (counted in
  the bucket of the crossing, by :meth:`AgentStats.record_over_budget`: live, not rebuilt after a
  restart, as the budgets are this server's).
* The totals cover every completion in the window, of every agent, evicted ones included.

Bounded memory: at most ``max_agents`` agents are tracked; past it the least recently active one is
evicted (counted in :attr:`AgentStats.evicted`). An agent with no completion left in the window is
forgotten when read. Each agent keeps at most one bucket per bucket of the window and at most
``max_samples`` durations.

Not thread-safe by itself: the :class:`~otel_dashboard.state.dashboard.DashboardState` that owns it
guards it with its lock, as the rest of the derived state.

Over 400 lines on purpose: the window's buckets, the per-agent figures, the caps and the export to a
cluster's saved state are one concept whose invariants (what a bucket holds, when an agent is
forgotten) only hold together; split, each half would have to re-check the other's.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from otel_dashboard.model.events import format_timestamp
from otel_dashboard.model.limits import positive_ints

__all__ = [
    "DEFAULT_BUCKETS",
    "DEFAULT_MAX_AGENTS",
    "DEFAULT_MAX_SAMPLES",
    "DEFAULT_WINDOW_SECONDS",
    "AgentStats",
    "agent_key",
    "check_window",
    "cost_status_of",
    "parse_epoch",
]

DEFAULT_WINDOW_SECONDS = 3600
"""The window's length, in seconds."""
DEFAULT_BUCKETS = 60
"""Buckets per window: one a minute with the default window."""
DEFAULT_MAX_AGENTS = 1000
"""Agents (name, service) tracked at most; the least recently active is evicted first."""
DEFAULT_MAX_SAMPLES = 500
"""Durations kept per agent for p50/p95: its newest runs."""

_EXPORT_SAMPLES = 50  # durations per agent in a cluster export (it is saved to Redis every few seconds)
_MESSAGE_CHARS = 500  # a last_error's message is cut to this many characters (a table cell)
_PRICED = "priced"
_PARTIAL = "partial"
_NO_PRICE = "no_price"
_NO_TOKENS = "no_tokens"


def parse_epoch(value: Any) -> float | None:
    """Seconds since the epoch of an ISO-8601 timestamp (a naive one is read as UTC); None when
    ``value`` is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc).timestamp()
    return parsed.timestamp()



def agent_key(run: dict[str, Any]) -> tuple[str, str | None]:
    """The agent of a completion's data or an open run: (agent name, else agent id, else
    ``"agent"``; service name or None)."""
    name = run.get("agent_name") or run.get("agent_id") or "agent"
    service = run.get("service_name")
    return str(name), service if isinstance(service, str) else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _run_cost_status(data: dict[str, Any], tokens_in: int, tokens_out: int, cost: float | None) -> str:
    """The run's ``cost_status``; a sender that gives none (the direct API, the exporter) gets the
    one its numbers imply."""
    status = data.get("cost_status")
    if status in (_PRICED, _PARTIAL, _NO_PRICE, _NO_TOKENS):
        return str(status)
    if cost is not None:
        return _PRICED
    return _NO_PRICE if tokens_in or tokens_out else _NO_TOKENS


def cost_status_of(statuses: dict[str, int]) -> str | None:
    """The status of a sum of runs' costs, from how many runs had each status.

    None when there are no runs; ``no_tokens`` when no run had tokens; ``priced`` when every run
    with tokens was priced; ``no_price`` when none of them was (even in part); else ``partial``.
    """
    if not any(statuses.values()):
        return None
    priced = statuses.get(_PRICED, 0)
    partial = statuses.get(_PARTIAL, 0)
    unpriced = statuses.get(_NO_PRICE, 0)
    if not priced and not partial and not unpriced:
        return _NO_TOKENS
    if not partial and not unpriced:
        return _PRICED
    if not priced and not partial:
        return _NO_PRICE
    return _PARTIAL


class _Bucket:
    """What the completions of one bucket add up to."""

    __slots__ = ("cost_usd", "failures", "runs", "statuses", "tokens_input", "tokens_output")

    def __init__(self) -> None:
        self.runs = 0
        self.failures = 0
        self.tokens_input = 0
        self.tokens_output = 0
        self.cost_usd = 0.0
        self.statuses: dict[str, int] = {}

    def add(self, failed: bool, tokens_in: int, tokens_out: int, cost: float | None, status: str) -> None:
        self.runs += 1
        self.failures += failed
        self.tokens_input += tokens_in
        self.tokens_output += tokens_out
        if cost is not None:
            self.cost_usd += cost
        self.statuses[status] = self.statuses.get(status, 0) + 1


class _Sum:
    """Buckets added up."""

    __slots__ = ("cost_usd", "failures", "runs", "statuses", "tokens_input", "tokens_output")

    def __init__(self, buckets: Iterable[_Bucket]) -> None:
        self.runs = self.failures = self.tokens_input = self.tokens_output = 0
        self.cost_usd = 0.0
        self.statuses: dict[str, int] = {}
        for bucket in buckets:
            self.runs += bucket.runs
            self.failures += bucket.failures
            self.tokens_input += bucket.tokens_input
            self.tokens_output += bucket.tokens_output
            self.cost_usd += bucket.cost_usd
            for status, n in bucket.statuses.items():
                self.statuses[status] = self.statuses.get(status, 0) + n

    def numbers(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "failures": self.failures,
            "tokens": {"input": self.tokens_input, "output": self.tokens_output},
            "cost_usd": round(self.cost_usd, 6),
            "cost_status": cost_status_of(self.statuses),
        }


class _Agent:
    """One agent's buckets (by bucket index), durations and newest facts."""

    __slots__ = ("agent_ids", "buckets", "durations", "last_error", "last_ts", "name", "over_budget",
                 "service")

    def __init__(self, name: str, service: str | None, max_samples: int) -> None:
        self.over_budget: dict[int, int] = {}  # runs over a run budget, by bucket index
        self.name = name
        self.service = service
        self.agent_ids: set[str] = set()  # the ids it was seen under (the agent filter matches them too)
        self.buckets: dict[int, _Bucket] = {}
        self.durations: deque[tuple[float, float]] = deque(maxlen=max_samples)  # (epoch, ms)
        self.last_error: dict[str, Any] | None = None
        self.last_ts = 0.0


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest rank: the smallest sample with at least ``fraction`` of the samples at or below it."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return round(ordered[rank - 1], 3)


def check_window(window_seconds: int, bucket_seconds: int, **bounds: Any) -> None:
    """Checks a rolling window's options: positive integers, the window a whole number of buckets.

    Raises:
        ValueError: the first bad option, named.
    """
    positive_ints(window_seconds=window_seconds, bucket_seconds=bucket_seconds, **bounds)
    if window_seconds % bucket_seconds:
        raise ValueError(f"window_seconds must be a multiple of bucket_seconds ({bucket_seconds}), "
                         f"got {window_seconds!r}")


class AgentStats:
    """Rolling-window usage per agent (name, service), and over all of them.

    Args:
        window_seconds: the window's length (a positive multiple of ``bucket_seconds``).
        bucket_seconds: one bucket's length.
        max_agents: agents tracked at most; the least recently active is evicted (counted).
        max_samples: durations kept per agent (its newest runs) for the percentiles.
        clock: seconds since the epoch, now (``time.time``; tests inject their own).

    Raises:
        ValueError: a bound that is not a positive integer, or a window that is not a whole number
            of buckets (the parameter is named).
    """

    def __init__(
        self,
        *,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        bucket_seconds: int = DEFAULT_WINDOW_SECONDS // DEFAULT_BUCKETS,
        max_agents: int = DEFAULT_MAX_AGENTS,
        max_samples: int = DEFAULT_MAX_SAMPLES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_window(window_seconds, bucket_seconds, max_agents=max_agents, max_samples=max_samples)
        self.window_seconds = window_seconds
        self.bucket_seconds = bucket_seconds
        self.buckets = window_seconds // bucket_seconds
        self.max_agents = max_agents
        self.max_samples = max_samples
        self._clock = clock
        # Least recently active first (the eviction order).
        self._agents: OrderedDict[tuple[str, str | None], _Agent] = OrderedDict()
        self._totals: dict[int, _Bucket] = {}  # every agent's, evicted ones included
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._agents)

    # ------------------------------------------------------------------ recording
    def record(self, data: dict[str, Any], timestamp: str) -> None:
        """Count one ``agent_execution_completed`` (its ``data`` and its event's ``timestamp``).

        A completion older than the window, or whose timestamp cannot be read, is ignored. Never
        raises for odd field values: a value of the wrong type counts as missing.
        """
        now = self._clock()
        ts = parse_epoch(timestamp)
        if ts is None:
            return
        ts = min(ts, now)  # a sender's clock ahead of ours
        index = int(ts // self.bucket_seconds)
        first = self._first_index(now)
        if index < first:
            return  # already out of the window (a replay of old history, a late sender)
        key = agent_key(data)
        agent = self._agents.get(key)
        if agent is None:
            agent = self._agents[key] = _Agent(key[0], key[1], self.max_samples)
            while len(self._agents) > self.max_agents:
                self._agents.popitem(last=False)
                self.evicted += 1
        # Least recently active first: by the newest completion seen (replays come in seq order).
        self._agents.move_to_end(key)
        agent_id = data.get("agent_id")
        if isinstance(agent_id, str) and len(agent.agent_ids) < 8:
            agent.agent_ids.add(agent_id)
        failed = data.get("success") is False
        tokens = data.get("tokens")
        if isinstance(tokens, dict):
            tokens_in, tokens_out = _count(tokens.get("input")), _count(tokens.get("output"))
        else:
            tokens_in, tokens_out = _count(data.get("input_tokens")), _count(data.get("output_tokens"))
        cost = _number(data.get("cost_usd"))
        if cost is not None and cost < 0:
            cost = None
        status = _run_cost_status(data, tokens_in, tokens_out, cost)
        for buckets in (agent.buckets, self._totals):
            bucket = buckets.get(index)
            if bucket is None:
                bucket = buckets[index] = _Bucket()
                _prune(buckets, first)
            bucket.add(failed, tokens_in, tokens_out, cost, status)
        duration = _number(data.get("duration_ms"))
        if duration is not None and duration >= 0:
            agent.durations.append((ts, duration))
        if ts >= agent.last_ts:
            agent.last_ts = ts
        if failed and (agent.last_error is None or ts >= agent.last_error["_ts"]):
            message = data.get("error_message")
            agent.last_error = {
                "type": data.get("error_type") if isinstance(data.get("error_type"), str) else None,
                "message": message[:_MESSAGE_CHARS] if isinstance(message, str) else None,
                "at": format_timestamp(int(ts * 1_000_000_000)),
                "run_id": data.get("run_id") if isinstance(data.get("run_id"), str) else None,
                "_ts": ts,
            }

    def record_over_budget(self, data: dict[str, Any], timestamp: str) -> None:
        """Count one run of the agent of ``data`` (a ``BudgetExceeded`` error's data) over a run
        budget, in the bucket of ``timestamp``; the caller counts each run once. Never raises."""
        now = self._clock()
        ts = parse_epoch(timestamp)
        ts = now if ts is None else min(ts, now)
        index = int(ts // self.bucket_seconds)
        first = self._first_index(now)
        if index < first:
            return
        key = agent_key(data)
        agent = self._agents.get(key)
        if agent is None:
            agent = self._agents[key] = _Agent(key[0], key[1], self.max_samples)
            self._agents.move_to_end(key, last=False)  # no completion yet: not recently active
            while len(self._agents) > self.max_agents:
                self._agents.popitem(last=False)
                self.evicted += 1
            if key not in self._agents:
                return
        agent.over_budget[index] = agent.over_budget.get(index, 0) + 1
        for stale in [i for i in agent.over_budget if i < first]:
            del agent.over_budget[stale]

    # ------------------------------------------------------------------ cluster export
    def export(self) -> dict[str, Any]:
        """Everything in the window as JSON-ready data, for a replica joining a cluster
        (:meth:`take_export`). Each agent's newest 50 durations only: the export is saved often."""
        first = self._first_index(self._clock())

        def buckets(held: dict[int, _Bucket]) -> list[list[Any]]:
            return [[i, b.runs, b.failures, b.tokens_input, b.tokens_output, b.cost_usd, b.statuses]
                    for i, b in held.items() if i >= first]

        return {
            "bucket_seconds": self.bucket_seconds,
            "totals": buckets(self._totals),
            "agents": [
                {"name": a.name, "service": a.service, "agent_ids": sorted(a.agent_ids),
                 "buckets": buckets(a.buckets),
                 "durations": [list(d) for d in a.durations][-_EXPORT_SAMPLES:],
                 "last_error": a.last_error, "last_ts": a.last_ts}
                for a in self._agents.values()
            ],
        }

    def take_export(self, exported: dict[str, Any]) -> None:
        """Replace everything with an :meth:`export` (another replica's).

        Raises:
            ValueError: not such an export, or one made with other buckets; nothing changed.
        """
        try:
            if int(exported["bucket_seconds"]) != self.bucket_seconds:
                raise ValueError(f"bucket_seconds {exported['bucket_seconds']} != {self.bucket_seconds}")
            totals = _buckets_of(exported["totals"])
            agents: OrderedDict[tuple[str, str | None], _Agent] = OrderedDict()
            for item in exported["agents"][-self.max_agents:]:
                service = item["service"]
                agent = _Agent(str(item["name"]), service if isinstance(service, str) else None,
                               self.max_samples)
                agent.agent_ids = {str(i) for i in item["agent_ids"]}
                agent.buckets = _buckets_of(item["buckets"])
                agent.durations.extend((float(ts), float(ms)) for ts, ms in item["durations"])
                error = item["last_error"]
                agent.last_error = dict(error) if isinstance(error, dict) else None
                agent.last_ts = float(item["last_ts"])
                agents[(agent.name, agent.service)] = agent
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"agent_stats: not an export ({type(exc).__name__}: {exc})") from None
        self._totals = totals
        self._agents = agents

    def _first_index(self, now: float) -> int:
        """The index of the window's oldest bucket at ``now``."""
        return int(now // self.bucket_seconds) - self.buckets + 1

    # ------------------------------------------------------------------ reading
    def totals(self) -> dict[str, Any]:
        """Every completion in the window: ``runs``, ``failures``, ``error_rate`` (None for no
        runs), ``tokens`` ``{input, output}``, ``cost_usd`` and ``cost_status``."""
        first = self._first_index(self._clock())
        _prune(self._totals, first)
        numbers = _Sum(self._totals.values()).numbers()
        runs = numbers["runs"]
        numbers["error_rate"] = round(numbers["failures"] / runs, 4) if runs else None
        return numbers

    def agents(
        self,
        running: dict[tuple[str, str | None], int] | None = None,
        *,
        limit: int | None = None,
        keep: Callable[[tuple[str, str | None], set[str]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """One entry per agent with a completion in the window or a run open now, most recently
        active first (an agent running now is active now).

        Args:
            running: open runs now per (agent name, service).
            limit: entries made at most (the most recently active); None: all.
            keep: which agents to list, given their key and the agent ids they were seen under;
                None: all.

        Returns:
            The ``agents`` entries of ``GET /api/agents`` (``docs/api.md``). Only the ``limit``
            entries returned are made: ordering and filtering look at the keys alone.
        """
        now = self._clock()
        first = self._first_index(now)
        running = running or {}
        order: list[tuple[float, tuple[str, str | None], _Agent | None]] = []
        for key in list(self._agents):
            agent = self._agents[key]
            _prune(agent.buckets, first)
            for stale in [i for i in agent.over_budget if i < first]:
                del agent.over_budget[stale]
            count = running.get(key)
            if not agent.buckets and not count and not agent.over_budget:
                del self._agents[key]  # nothing left in the window: forgotten
                continue
            if keep is None or keep(key, agent.agent_ids):
                order.append((now if count else agent.last_ts, key, agent))
        for key, count in running.items():
            if count and key not in self._agents and (keep is None or keep(key, set())):
                order.append((now, key, None))
        order.sort(key=lambda item: item[0], reverse=True)
        if limit is not None:
            del order[limit:]
        return [self._entry(agent, first, running.get(key, 0)) if agent is not None
                else self._empty_entry(key, running[key]) for _, key, agent in order]

    def _entry(self, agent: _Agent, first: int, running: int) -> dict[str, Any]:
        numbers = _Sum(agent.buckets.values()).numbers()
        runs = numbers["runs"]
        window_start = first * self.bucket_seconds
        samples = sorted(ms for ts, ms in agent.durations if ts >= window_start)
        last_error = None
        if agent.last_error is not None:
            last_error = {k: v for k, v in agent.last_error.items() if k != "_ts"}
        return {
            "agent": agent.name,
            "service": agent.service,
            "running": running,
            "runs": runs,
            "failures": numbers["failures"],
            "success_rate": round((runs - numbers["failures"]) / runs, 4) if runs else None,
            "duration_ms": {
                "p50": _percentile(samples, 0.5) if samples else None,
                "p95": _percentile(samples, 0.95) if samples else None,
                "samples": len(samples),
            },
            "tokens": numbers["tokens"],
            "cost_usd": numbers["cost_usd"],
            "cost_status": numbers["cost_status"],
            "last_error": last_error,
            "over_budget_runs": sum(count for i, count in agent.over_budget.items() if i >= first),
            "last_run_at": format_timestamp(int(agent.last_ts * 1_000_000_000)) if agent.last_ts else None,
            "activity": [agent.buckets[i].runs if i in agent.buckets else 0
                         for i in range(first, first + self.buckets)],
            "failures_activity": [agent.buckets[i].failures if i in agent.buckets else 0
                                  for i in range(first, first + self.buckets)],
        }

    def _empty_entry(self, key: tuple[str, str | None], running: int) -> dict[str, Any]:
        """An agent running now with no completion in the window."""
        return {
            "agent": key[0], "service": key[1], "running": running, "runs": 0, "failures": 0,
            "success_rate": None, "duration_ms": {"p50": None, "p95": None, "samples": 0},
            "tokens": {"input": 0, "output": 0}, "cost_usd": 0.0, "cost_status": None,
            "last_error": None, "over_budget_runs": 0, "last_run_at": None,
            "activity": [0] * self.buckets, "failures_activity": [0] * self.buckets,
        }


def _buckets_of(rows: list[list[Any]]) -> dict[int, _Bucket]:
    """The buckets of an :meth:`AgentStats.export`."""
    out: dict[int, _Bucket] = {}
    for index, runs, failures, tokens_in, tokens_out, cost, statuses in rows:
        bucket = out[int(index)] = _Bucket()
        bucket.runs, bucket.failures = int(runs), int(failures)
        bucket.tokens_input, bucket.tokens_output = int(tokens_in), int(tokens_out)
        bucket.cost_usd = float(cost)
        bucket.statuses = {str(k): int(v) for k, v in statuses.items()}
    return out


def _prune(buckets: dict[int, _Bucket], first: int) -> None:
    """Drop the buckets before ``first`` (at most one per bucket of the window is ever held)."""
    stale = [index for index in buckets if index < first]
    for index in stale:
        del buckets[index]
