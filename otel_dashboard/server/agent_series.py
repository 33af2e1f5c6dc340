"""Per-agent Prometheus series: runs, run durations, tokens, cost and budget crossings by agent.

:class:`AgentSeries` is a state subscriber (:data:`~otel_dashboard.state.dashboard.Subscriber`) that
counts, from the moment the server starts, the accepted events that matter for alerting on agents,
and a :class:`prometheus_client` collector that exports those counts on ``GET /metrics``
(:mod:`otel_dashboard.server.prometheus` subscribes it when the application starts and unsubscribes
it when it stops). The series (all prefixed ``otel_dashboard_``):

* ``runs_total{agent,status}`` (counter): ``agent_execution_completed`` events; ``status`` is
  ``error`` when the event's ``success`` is false, ``ok`` otherwise;
* ``run_duration_seconds{agent}`` (histogram, :data:`RUN_DURATION_BUCKETS`, 0.1 s to 1 h): the
  completions' ``duration_ms``; a completion without a usable one counts in ``runs_total`` only;
* ``tokens_total{agent,model,type}`` (counter, ``type`` ``input`` | ``output``): the completions'
  ``tokens.input`` / ``tokens.output`` (else ``input_tokens`` / ``output_tokens``);
* ``cost_usd_total{agent,model}`` (counter): the completions' ``cost_usd`` (runs without a price add
  nothing);
* ``budget_exceeded_total{agent,kind}`` (counter): ``error_occurred`` events whose
  ``data.error_type`` is ``BudgetExceeded``, by ``data.agent_name`` and ``data.budget.kind``;
* ``agent_series_folded_total{label}`` (counter, ``label`` ``agent`` | ``model``): observations
  whose agent or model was folded into ``other`` (the caps below).

The ``model`` label: a run's tokens and cost are the run's totals (``docs/events.md``, "Runs"), not
split by model, so they go to the run's one model when ``data.models`` names exactly one,
to ``multiple`` when it names several, and to ``unknown`` when it names none.

Bounded labels: at most ``max_agents`` (:data:`MAX_AGENTS`) distinct agent names and ``max_models``
(:data:`MAX_MODELS`) distinct model names get their own series, the first ones seen; any later one
is counted under ``other`` (and in ``agent_series_folded_total``). ``unknown`` and ``multiple`` take
no place. A label value is cut to :data:`MAX_LABEL_CHARS` characters.

Thread-safe: the state calls the subscriber from whichever thread publishes (under the state's
lock), the scrape reads on the event loop's thread; one lock of its own guards the counts, held
only to add a few numbers or to copy them. The subscriber never raises: a value of the wrong type
counts as missing.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from otel_dashboard.model.events import DashboardEvent, EventType
from otel_dashboard.model.guardrails import BUDGET_EXCEEDED, BUDGET_KINDS

__all__ = [
    "MAX_AGENTS",
    "MAX_LABEL_CHARS",
    "MAX_MODELS",
    "MULTIPLE",
    "OTHER",
    "RUN_DURATION_BUCKETS",
    "UNKNOWN",
    "AgentSeries",
]

MAX_AGENTS = 100
"""Distinct agent names with series of their own; later ones fold into ``other``."""
MAX_MODELS = 50
"""Distinct model names with series of their own; later ones fold into ``other``."""
MAX_LABEL_CHARS = 128
"""A label value (an agent or a model name) is cut to this many characters."""
OTHER = "other"
"""The label value of the agents and models past the caps (and of an unknown budget kind)."""
UNKNOWN = "unknown"
"""The label value of a missing agent name, or of a run that names no model."""
MULTIPLE = "multiple"
"""The ``model`` label of a run that used several models (its totals are not split by model)."""

RUN_DURATION_BUCKETS: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
)
"""Upper bounds (seconds) of ``run_duration_seconds``: a quick tool-less answer to an hour-long run."""

_COMPLETED = EventType.AGENT_EXECUTION_COMPLETED
_ERROR = EventType.ERROR_OCCURRED
_TOKEN_TYPES = ("input", "output")
_FIXED_VALUES = frozenset({OTHER, UNKNOWN, MULTIPLE})  # take no place under the caps


class _Durations:
    __slots__ = ("counts", "sum_seconds")

    def __init__(self) -> None:
        self.counts = [0] * (len(RUN_DURATION_BUCKETS) + 1)  # per bucket (not cumulative), +Inf last
        self.sum_seconds = 0.0


class AgentSeries(Collector):
    """The per-agent counts since the server started; subscribe it to a state, register it in a
    :class:`prometheus_client.CollectorRegistry`.

    Args:
        prefix: the metric names' prefix (``otel_dashboard``).
        max_agents: distinct agent label values at most (beyond: ``other``).
        max_models: distinct model label values at most (beyond: ``other``).

    Raises:
        ValueError: ``max_agents`` or ``max_models`` is not a positive integer.
    """

    def __init__(self, *, prefix: str = "otel_dashboard", max_agents: int = MAX_AGENTS,
                 max_models: int = MAX_MODELS) -> None:
        for name, value in (("max_agents", max_agents), ("max_models", max_models)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.prefix = prefix
        self.max_agents = max_agents
        self.max_models = max_models
        self._lock = threading.Lock()
        self._agents: set[str] = set()
        self._models: set[str] = set()
        self._runs: dict[tuple[str, str], int] = {}
        self._durations: dict[str, _Durations] = {}
        self._tokens: dict[tuple[str, str, str], int] = {}
        self._cost: dict[tuple[str, str], float] = {}
        self._budgets: dict[tuple[str, str], int] = {}
        self._folded = {"agent": 0, "model": 0}

    # ------------------------------------------------------------------ the subscriber
    def __call__(self, event: DashboardEvent) -> None:
        """Count ``event`` if it is a completion or a ``BudgetExceeded`` error; anything else costs
        one comparison. Never raises."""
        event_type = event.event_type
        if event_type is _COMPLETED:
            data = event.data
            if isinstance(data, dict):
                self.record_completion(data)
        elif event_type is _ERROR:
            data = event.data
            if isinstance(data, dict) and data.get("error_type") == BUDGET_EXCEEDED:
                self.record_budget_exceeded(data)

    def record_completion(self, data: dict[str, Any]) -> None:
        """Count one ``agent_execution_completed``'s ``data``: a run, its duration, tokens and cost."""
        status = "error" if data.get("success") is False else "ok"
        duration_ms = _number(data.get("duration_ms"))
        tokens = data.get("tokens")
        if isinstance(tokens, dict):
            counts = (_count(tokens.get("input")), _count(tokens.get("output")))
        else:
            counts = (_count(data.get("input_tokens")), _count(data.get("output_tokens")))
        cost = _number(data.get("cost_usd"))
        has_tokens = counts[0] > 0 or counts[1] > 0
        model_name = _run_model(data) if has_tokens or cost is not None else None
        with self._lock:
            agent = self._agent_label(data.get("agent_name"))
            self._runs[(agent, status)] = self._runs.get((agent, status), 0) + 1
            if duration_ms is not None:
                seconds = duration_ms / 1000.0
                durations = self._durations.get(agent)
                if durations is None:
                    durations = self._durations[agent] = _Durations()
                durations.counts[_bucket_index(seconds)] += 1
                durations.sum_seconds += seconds
            if model_name is None:
                return
            model = self._model_label(model_name)
            if has_tokens:
                for token_type, count in zip(_TOKEN_TYPES, counts, strict=True):
                    key = (agent, model, token_type)
                    self._tokens[key] = self._tokens.get(key, 0) + count
            if cost is not None:
                self._cost[(agent, model)] = self._cost.get((agent, model), 0.0) + cost

    def record_budget_exceeded(self, data: dict[str, Any]) -> None:
        """Count one ``BudgetExceeded`` ``error_occurred``'s ``data`` by its agent and budget kind."""
        budget = data.get("budget")
        kind = budget.get("kind") if isinstance(budget, dict) else None
        kind = kind if kind in BUDGET_KINDS else OTHER
        with self._lock:
            key = (self._agent_label(data.get("agent_name")), kind)
            self._budgets[key] = self._budgets.get(key, 0) + 1

    # ------------------------------------------------------------------ labels (under the lock)
    def _agent_label(self, name: Any) -> str:
        return self._label(name, self._agents, self.max_agents, "agent")

    def _model_label(self, name: str) -> str:
        return self._label(name, self._models, self.max_models, "model")

    def _label(self, name: Any, admitted: set[str], cap: int, label: str) -> str:
        if not isinstance(name, str) or not name:
            return UNKNOWN
        value = name[:MAX_LABEL_CHARS]
        if value in admitted or value in _FIXED_VALUES:
            return value
        if len(admitted) < cap:
            admitted.add(value)
            return value
        self._folded[label] += 1
        return OTHER

    # ------------------------------------------------------------------ the collector
    def collect(self) -> Iterator[Metric]:
        """The series, from a copy of the counts taken under the lock (a scrape never waits long)."""
        with self._lock:
            runs = dict(self._runs)
            durations = {agent: (list(d.counts), d.sum_seconds) for agent, d in self._durations.items()}
            tokens = dict(self._tokens)
            cost = dict(self._cost)
            budgets = dict(self._budgets)
            folded = dict(self._folded)
        p = self.prefix
        family = CounterMetricFamily(f"{p}_runs", "Agent runs completed since the server started, "
                                     "by agent and status (ok, error).", labels=["agent", "status"])
        for (agent, status), count in sorted(runs.items()):
            family.add_metric([agent, status], count)
        yield family

        histogram = HistogramMetricFamily(f"{p}_run_duration_seconds",
                                          "Duration of the agent runs completed since the server started.",
                                          labels=["agent"])
        for agent, (counts, sum_seconds) in sorted(durations.items()):
            cumulative: list[tuple[str, float]] = []
            running = 0
            for bound, count in zip((*RUN_DURATION_BUCKETS, math.inf), counts, strict=True):
                running += count
                cumulative.append(("+Inf" if bound == math.inf else _le(bound), running))
            histogram.add_metric([agent], cumulative, sum_seconds)
        yield histogram

        family = CounterMetricFamily(f"{p}_tokens", "Tokens of the agent runs completed since the server "
                                     "started, by agent, model and type (input, output).",
                                     labels=["agent", "model", "type"])
        for token_key, count in sorted(tokens.items()):
            family.add_metric(list(token_key), count)
        yield family

        family = CounterMetricFamily(f"{p}_cost_usd", "Cost in USD of the priced agent runs completed "
                                     "since the server started, by agent and model.",
                                     labels=["agent", "model"])
        for key, usd in sorted(cost.items()):
            family.add_metric(list(key), usd)
        yield family

        family = CounterMetricFamily(f"{p}_budget_exceeded", "BudgetExceeded alerts since the server "
                                     "started, by agent and budget kind.", labels=["agent", "kind"])
        for key, count in sorted(budgets.items()):
            family.add_metric(list(key), count)
        yield family

        family = CounterMetricFamily(f"{p}_agent_series_folded", "Observations counted under agent or "
                                     "model 'other' because the label's cap was reached.", labels=["label"])
        for label, count in folded.items():
            family.add_metric([label], count)
        yield family


# --------------------------------------------------------------------------- readers
def _run_model(data: dict[str, Any]) -> str:
    models = data.get("models")
    names = {m for m in models if isinstance(m, str) and m} if isinstance(models, list) else set()
    if not names:
        model = data.get("model")  # a completion published by hand may name its one model so
        if isinstance(model, str) and model:
            names = {model}
    if len(names) == 1:
        return next(iter(names))
    return MULTIPLE if names else UNKNOWN


def _number(value: Any) -> float | None:
    """A finite, non-negative number, else None (bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _count(value: Any) -> int:
    number = _number(value)
    return int(number) if number is not None else 0


def _bucket_index(seconds: float) -> int:
    for i, bound in enumerate(RUN_DURATION_BUCKETS):
        if seconds <= bound:
            return i
    return len(RUN_DURATION_BUCKETS)


def _le(bound: float) -> str:
    return repr(float(bound))
