"""What runs use, per run, per agent over a rolling window and per conversation, and when a budget
is crossed (``docs/guardrails.md``, "Budgets").

:class:`BudgetTracker` adds it up and returns :class:`BudgetCrossing` s, whose :meth:`event
<BudgetCrossing.event>` is the ``error_occurred`` (``BudgetExceeded``) the state publishes. Pure: no
lock, no clock of its own beyond the ``now`` it is given, no SDK; its owner (the state, or a remote
processor) feeds it and publishes what it returns. The budgets themselves, their file and their
checks are :mod:`otel_dashboard.model.guardrails`.

A little over 400 lines for a reason: the three scopes (a run, an agent's rolling window in
buckets, a conversation) share one account of what a run used and one rule of when a crossing is
new; split apart, each would carry its own copy of both.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from otel_dashboard.model.events import DashboardEvent, EventType, Severity
from otel_dashboard.model.guardrails import BUDGET_EXCEEDED, Budget, is_number

__all__ = ["BudgetCrossing", "BudgetTracker", "epoch_of"]

_WINDOW_BUCKETS = 60  # an agent budget's window is kept in this many buckets (bounded memory)

def epoch_of(value: Any) -> float | None:
    """Seconds since the epoch of an ISO-8601 timestamp (``Z`` or an offset; naive is UTC) or of a
    number (taken as seconds already); None for anything else."""
    if is_number(value):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _count(value: Any) -> float:
    return float(value) if is_number(value) and value > 0 else 0.0


def _usage(data: Mapping[str, Any]) -> dict[str, float]:
    """The counted kinds (all but duration) of a run state or a completion's data."""
    tokens = data.get("tokens")
    if isinstance(tokens, Mapping):
        used = _count(tokens.get("input")) + _count(tokens.get("output"))
        if not used:
            used = _count(tokens.get("total"))
    else:
        used = _count(data.get("input_tokens")) + _count(data.get("output_tokens"))
    return {
        "tokens": used,
        "cost_usd": _count(data.get("cost_usd")),
        "model_calls": _count(data.get("model_calls")),
        "tool_calls": _count(data.get("tool_calls")),
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class _Run:
    """What the tracker knows of one run: who it is, what it used, which run budgets it crossed."""

    __slots__ = ("agent_id", "agent_name", "conversation_id", "crossed", "done", "run_id", "service_name",
                 "started", "sums", "trace_id", "usage")

    def __init__(self, run_id: str, data: Mapping[str, Any]) -> None:
        self.run_id = run_id
        self.crossed: dict[tuple[int, str], None] = {}  # (budget index, kind), in crossing order
        self.done = False
        self.sums: set[tuple[int, str]] = set()  # (budget index, key) of the sums it counts in, open
        self.started: float | None = None
        self.usage: dict[str, float] = {}
        self.agent_name: str | None = None
        self.agent_id: str | None = None
        self.service_name: str | None = None
        self.conversation_id: str | None = None
        self.trace_id: str | None = None
        self.take(data)

    def take(self, data: Mapping[str, Any]) -> None:
        self.agent_name = _text(data.get("agent_name")) or self.agent_name
        self.agent_id = _text(data.get("agent_id")) or self.agent_id
        self.service_name = _text(data.get("service_name")) or self.service_name
        self.conversation_id = _text(data.get("conversation_id")) or self.conversation_id
        self.trace_id = _text(data.get("trace_id")) or self.trace_id
        started = epoch_of(data.get("started_at"))
        if started is not None:
            self.started = started
        self.usage = _usage(data)

    @property
    def agent(self) -> str:
        return self.agent_name or self.agent_id or "agent"

    def value(self, kind: str, now: float) -> float:
        if kind == "duration_seconds" and not self.done:
            return max(0.0, now - self.started) if self.started is not None else 0.0
        return self.usage.get(kind, 0.0)


class _Sum:
    """An agent's (over a window) or a conversation's usage: completed runs in buckets, open runs
    live; the kinds crossed and not yet back under."""

    __slots__ = ("buckets", "crossed", "last", "open")

    def __init__(self, last: _Run) -> None:
        self.buckets: dict[int, dict[str, float]] = {}
        self.open: dict[str, _Run] = {}
        self.crossed: set[str] = set()
        self.last = last  # the newest run seen: the one a crossing found by the clock names

    def total(self, kind: str, now: float, first: int) -> float:
        total = sum(bucket.get(kind, 0.0) for index, bucket in self.buckets.items() if index >= first)
        return total + sum(run.value(kind, now) for run in self.open.values())


def _number_text(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _amount(kind: str, value: float) -> str:
    """``value`` of ``kind`` for a person: ``120,400 tokens``, ``$2.5012``, ``61.2 s``."""
    if kind == "cost_usd":
        return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"
    if kind == "duration_seconds":
        return f"{value:,.1f} s"
    unit = {"tokens": "tokens", "model_calls": "model calls", "tool_calls": "tool calls"}[kind]
    return f"{_number_text(value)} {unit}"


def _rounded(kind: str, value: float) -> float | int:
    if kind == "cost_usd":
        return round(value, 6)
    if kind == "duration_seconds":
        return round(value, 3)
    return int(value) if float(value).is_integer() else value


@dataclass(frozen=True)
class BudgetCrossing:
    """One budget crossed: by which run, of what scope key (the run id, the agent name, the
    conversation id), how far. :meth:`event` is what the state publishes."""

    budget: Budget
    kind: str
    value: float
    limit: float
    key: str
    run_id: str
    agent_name: str | None
    agent_id: str | None
    service_name: str | None
    conversation_id: str | None
    trace_id: str | None
    window_seconds: int | None = None
    first_for_run: bool = False
    """A run budget the run had not crossed any kind of before (it counts once as over budget)."""

    def message(self) -> str:
        """``run of Planner used 120,400 tokens, over its budget of 100,000``."""
        agent = self.agent_name or self.agent_id or "an agent"
        scope = self.budget.scope
        if scope == "run":
            subject = f"run of {agent}"
        elif scope == "agent":
            subject = f"agent {self.key}"
        else:
            subject = f"conversation {self.key}"
        used = _amount(self.kind, self.value)
        if scope == "agent":
            used += f" in the last {self.window_seconds:,} s"
        limit = _amount(self.kind, self.limit)
        if self.kind in ("tokens", "model_calls", "tool_calls"):
            limit = _number_text(self.limit)
        return f"{subject} used {used}, over its budget of {limit}"

    def event(self) -> DashboardEvent:
        """The ``error_occurred`` (severity error, ``error_type`` ``BudgetExceeded``) of the contract
        (``docs/guardrails.md``, "Budgets")."""
        data: dict[str, Any] = {
            "source": self.agent_name or "budget",
            "error_type": BUDGET_EXCEEDED,
            "error_message": self.message(),
            "agent_name": self.agent_name,
            "run_id": self.run_id,
            "service_name": self.service_name,
        }
        if self.agent_id:
            data["agent_id"] = self.agent_id
        if self.conversation_id:
            data["conversation_id"] = self.conversation_id
        budget: dict[str, Any] = {"scope": self.budget.scope, "kind": self.kind,
                                  "limit": _rounded(self.kind, self.limit),
                                  "value": _rounded(self.kind, self.value)}
        if self.budget.scope == "agent":
            budget["window_seconds"] = self.window_seconds
        budget["agent"] = self.budget.agent
        data["budget"] = budget
        return DashboardEvent.create(EventType.ERROR_OCCURRED, data, Severity.ERROR, trace_id=self.trace_id)


class BudgetTracker:
    """Adds up what runs use and says when a budget is crossed. Not thread-safe (its owner holds a
    lock); never raises for odd run data (a value of the wrong type counts as zero).

    Fed three ways, each returning the crossings it found (each at most once, see below):

    * :meth:`observe`: live states of open runs (``run_progress`` dicts: ``tokens``, ``cost_usd``,
      ``model_calls``, ``tool_calls``, ``started_at``, ...);
    * :meth:`complete`: an ``agent_execution_completed``'s data (its final totals, ``duration_ms``)
      and timestamp;
    * :meth:`tick`: the clock (duration budgets of open runs; an agent's window moving on).

    A budget is crossed when a value goes over its limit (a limit of 3 tool calls allows 3). One
    crossing per (budget, scope key, kind): a run's once; a conversation's once; an agent's once
    per window, again only after its window total fell back to the limit or under.

    Args:
        budgets: the budgets (checked already: :func:`as_guardrails`).
        default_window_seconds: the window of an ``"agent"`` budget without its own.
        max_runs: open runs tracked at most (the least recently updated forgotten first, counted).
        max_keys: agents and conversations tracked per budget at most (idem).
    """

    def __init__(self, budgets: Sequence[Budget], *, default_window_seconds: int = 3600,
                 max_runs: int = 10_000, max_keys: int = 10_000) -> None:
        self.budgets = tuple(budgets)
        self._default_window = default_window_seconds
        self._max_runs = max_runs
        self._max_keys = max_keys
        self._open: OrderedDict[str, _Run] = OrderedDict()
        self._done: OrderedDict[str, tuple[str, ...]] = OrderedDict()  # completed run -> kinds crossed
        self._sums: list[OrderedDict[str, _Sum]] = [OrderedDict() for _ in self.budgets]
        self._windows: list[tuple[int, float, int]] = []  # (window, bucket seconds, buckets) per budget
        for budget in self.budgets:
            window = budget.window_seconds or default_window_seconds if budget.scope == "agent" else 0
            buckets = min(_WINDOW_BUCKETS, window) if window else 1
            self._windows.append((window, window / buckets if window else 1.0, buckets))
        self.clock_work = any(b.scope == "agent" or "duration_seconds" in b.limits for b in self.budgets)
        """Whether :meth:`tick` can find anything (duration limits, agent windows)."""
        self.evicted_runs = 0
        self.evicted_keys = 0
        self.crossings = 0

    # ------------------------------------------------------------------ feeding
    def observe(self, runs: Iterable[Mapping[str, Any]], now: float) -> list[BudgetCrossing]:
        """Take live run states; the crossings they make. A run already completed is ignored, one
        with ``"status": "ended"`` forgotten."""
        out: list[BudgetCrossing] = []
        if not self.budgets:
            return out
        for data in runs:
            run_id = data.get("run_id") if isinstance(data, Mapping) else None
            if not isinstance(run_id, str) or not run_id or run_id in self._done:
                continue
            if data.get("status") == "ended":
                run = self._open.pop(run_id, None)
                if run is not None:
                    self._leave_sums(run)
                continue
            run = self._open.get(run_id)
            if run is None:
                run = self._open[run_id] = _Run(run_id, data)
                while len(self._open) > self._max_runs:
                    _, oldest = self._open.popitem(last=False)
                    self._leave_sums(oldest)
                    self.evicted_runs += 1
            else:
                run.take(data)
                self._open.move_to_end(run_id)
            out += self._check_run(run, now)
        return out

    def complete(self, data: Mapping[str, Any], *, timestamp: Any, trace_id: str | None,
                 now: float) -> list[BudgetCrossing]:
        """Take an ``agent_execution_completed`` (its data, its event's timestamp and trace id): its
        final totals count, its run leaves the open runs; the crossings they make."""
        if not self.budgets or not isinstance(data, Mapping):
            return []
        run_id = _text(data.get("run_id")) or _text(data.get("agent_id"))
        if run_id is None or run_id in self._done:
            return []
        run = self._open.pop(run_id, None)
        if run is None:
            run = _Run(run_id, data)
        else:
            run.take(data)
        if trace_id:
            run.trace_id = trace_id
        duration_ms: Any = data.get("duration_ms")
        if is_number(duration_ms) and duration_ms >= 0:
            run.usage["duration_seconds"] = float(duration_ms) / 1000
        else:
            run.usage["duration_seconds"] = run.value("duration_seconds", now)
        run.done = True
        ended = epoch_of(timestamp)
        ended = now if ended is None else min(ended, now)
        out = self._check_run(run, now, ended=ended)
        self._done[run_id] = self._kinds(run)
        while len(self._done) > self._max_runs:
            self._done.popitem(last=False)
        return out

    def tick(self, now: float) -> list[BudgetCrossing]:
        """The crossings the clock makes: open runs' durations, agent windows re-armed once back
        under their limits; forgets agents and conversations with nothing left to count."""
        out: list[BudgetCrossing] = []
        if not self.clock_work:
            return out
        timed = [i for i, b in enumerate(self.budgets) if "duration_seconds" in b.limits and b.scope == "run"]
        if timed:
            for run in list(self._open.values()):
                for index in timed:
                    if self._matches(index, run):
                        out += self._check_run_budget(index, run, now)
        for index, sums in enumerate(self._sums):
            budget = self.budgets[index]
            timed_sum = "duration_seconds" in budget.limits
            if budget.scope == "run" or (budget.scope == "conversation" and not timed_sum):
                continue  # nothing the clock changes (conversations are bounded by max_keys alone)
            first = self._first_bucket(index, now)
            for key in list(sums):
                entry = sums[key]
                if budget.scope == "agent":
                    for stale in [i for i in entry.buckets if i < first]:
                        del entry.buckets[stale]
                if not entry.open and not entry.buckets and not entry.crossed:
                    del sums[key]
                elif entry.crossed or (timed_sum and entry.open):
                    out += self._check_sum(index, key, entry, entry.last, now)
        return out

    # ------------------------------------------------------------------ reading
    def over_budget(self, run_id: str) -> list[str]:
        """The kinds of the run budgets ``run_id`` crossed (in crossing order, each once)."""
        run = self._open.get(run_id)
        if run is not None:
            return list(self._kinds(run))
        return list(self._done.get(run_id, ()))

    @property
    def open_runs(self) -> int:
        """Open runs tracked now."""
        return len(self._open)

    def counters(self) -> dict[str, int]:
        """``budget_crossings``, ``budget_evicted_runs``, ``budget_evicted_keys``, ``budget_open_runs``."""
        return {"budget_crossings": self.crossings, "budget_evicted_runs": self.evicted_runs,
                "budget_evicted_keys": self.evicted_keys, "budget_open_runs": len(self._open)}

    # ------------------------------------------------------------------ checking
    @staticmethod
    def _kinds(run: _Run) -> tuple[str, ...]:
        return tuple(dict.fromkeys(kind for _, kind in run.crossed))

    def _matches(self, index: int, run: _Run) -> bool:
        agent = self.budgets[index].agent
        return agent is None or agent == run.agent_name

    def _first_bucket(self, index: int, now: float) -> int:
        window, bucket_seconds, buckets = self._windows[index]
        return int(now // bucket_seconds) - buckets + 1 if window else -(2**62)

    def _check_run(self, run: _Run, now: float, *, ended: float | None = None) -> list[BudgetCrossing]:
        out: list[BudgetCrossing] = []
        for index, budget in enumerate(self.budgets):
            if not self._matches(index, run):
                continue
            if budget.scope == "run":
                out += self._check_run_budget(index, run, now)
                continue
            key = run.agent if budget.scope == "agent" else run.conversation_id
            if key is None:
                continue
            entry = self._sum(index, key, run)
            if run.done:
                entry.open.pop(run.run_id, None)
                if ended is not None:
                    _, bucket_seconds, _ = self._windows[index]
                    bucket_index = int(ended // bucket_seconds) if self._windows[index][0] else 0
                    if bucket_index >= self._first_bucket(index, now):
                        bucket = entry.buckets.setdefault(bucket_index, {})
                        for kind in budget.limits:
                            bucket[kind] = bucket.get(kind, 0.0) + run.value(kind, now)
            else:
                entry.open[run.run_id] = run
                run.sums.add((index, key))
            entry.last = run
            out += self._check_sum(index, key, entry, run, now)
        return out

    def _sum(self, index: int, key: str, run: _Run) -> _Sum:
        sums = self._sums[index]
        entry = sums.get(key)
        if entry is None:
            entry = sums[key] = _Sum(run)
            while len(sums) > self._max_keys:
                sums.popitem(last=False)
                self.evicted_keys += 1
        else:
            sums.move_to_end(key)
        return entry

    def _leave_sums(self, run: _Run) -> None:
        """A run forgotten without a completion: it no longer counts as open anywhere."""
        for index, key in run.sums:
            entry = self._sums[index].get(key)
            if entry is not None:
                entry.open.pop(run.run_id, None)
        run.sums.clear()

    def _check_run_budget(self, index: int, run: _Run, now: float) -> list[BudgetCrossing]:
        budget = self.budgets[index]
        out = []
        for kind, limit in budget.limits.items():
            if (index, kind) in run.crossed:
                continue
            value = run.value(kind, now)
            if value > limit:
                first = not run.crossed
                run.crossed[(index, kind)] = None
                out.append(self._crossing(index, kind, value, limit, run.run_id, run, first=first))
        return out

    def _check_sum(self, index: int, key: str, entry: _Sum, run: _Run, now: float) -> list[BudgetCrossing]:
        budget = self.budgets[index]
        first = self._first_bucket(index, now)
        out = []
        for kind, limit in budget.limits.items():
            value = entry.total(kind, now, first)
            if value > limit:
                if kind not in entry.crossed:
                    entry.crossed.add(kind)
                    out.append(self._crossing(index, kind, value, limit, key, run))
            elif budget.scope == "agent":
                entry.crossed.discard(kind)  # back under: the window may cross again
        return out

    def _crossing(self, index: int, kind: str, value: float, limit: float, key: str,
                  run: _Run, *, first: bool = False) -> BudgetCrossing:
        self.crossings += 1
        budget = self.budgets[index]
        return BudgetCrossing(
            budget=budget, kind=kind, value=value, limit=limit, key=key, run_id=run.run_id,
            agent_name=run.agent_name, agent_id=run.agent_id, service_name=run.service_name,
            conversation_id=run.conversation_id, trace_id=run.trace_id,
            window_seconds=self._windows[index][0] if budget.scope == "agent" else None,
            first_for_run=first,
        )
