"""Runs: an agent span and everything under it up to the next agent run, with live aggregates.

:class:`Run` keeps one run's counts (model calls, tool calls by tool with failures, tokens by type,
cost, models used), its current step and its place among runs (parent run, root run).
:class:`Tally` is the part of those counts that adds up, shared by a run and by the spans of a run
whose agent span has not been seen yet (spans received over OTLP before their parents).

The token rule (``docs/events.md``, "Runs"): tokens are counted once, from the model calls inside
the run; only when none of them carries tokens do the run span's own totals count (some frameworks
write the run's sums on the agent span, under the same keys as a model call's). A model call nested
in another model call (a framework's span around a client library's) counts once: the outer call,
with the inner call's tokens when the outer carries none. A tool span inside another tool span (the
MCP client's and server's spans of one call) is the same call.
"""

from __future__ import annotations

from typing import Any, Protocol

from otel_dashboard.model.vocab.table import TOKEN_FIELDS

__all__ = ["MAX_MODELS", "MAX_TOOLS", "CostSource", "Run", "Tally", "add_tokens"]

MAX_TOOLS = 50  # distinct tool names kept per run; further names count under "(other)"
MAX_MODELS = 20
OTHER_TOOLS = "(other)"


class CostSource(Protocol):
    """What prices a model call (:class:`~otel_dashboard.model.prices.PriceBook` is one)."""

    def cost(
        self,
        *,
        model: str | None,
        provider: str | None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_input_tokens: int = 0,
        cache_creation_input_tokens: int = 0,
        reasoning_output_tokens: int = 0,
    ) -> float | None: ...


def add_tokens(into: dict[str, int], tokens: dict[str, int]) -> None:
    for name, count in tokens.items():
        into[name] = into.get(name, 0) + count


def full_tokens(tokens: dict[str, int] | None) -> dict[str, int]:
    """All six counts, zeros filled in; ``total`` is input + output when not given."""
    out = {name: 0 for name in TOKEN_FIELDS}
    if tokens:
        out.update(tokens)
        if "total" not in tokens:
            out["total"] = out["input"] + out["output"]
    return out


def price(costs: CostSource | None, model: str | None, provider: str | None,
          tokens: dict[str, int]) -> float | None:
    if costs is None:
        return None
    try:
        return costs.cost(
            model=model,
            provider=provider,
            input_tokens=tokens.get("input", 0),
            output_tokens=tokens.get("output", 0),
            cache_read_input_tokens=tokens.get("cache_read_input", 0),
            cache_creation_input_tokens=tokens.get("cache_creation_input", 0),
            reasoning_output_tokens=tokens.get("reasoning_output", 0),
        )
    except Exception:  # a price source must not break mapping; the call shows as unpriced
        return None


class Tally:
    """Counts that add up: calls, tools, tokens, cost."""

    __slots__ = (
        "cost_usd",
        "model_calls",
        "models",
        "priced_calls",
        "task",
        "tokens",
        "tool_calls",
        "tool_failures",
        "tools",
        "unpriced_models",
    )

    def __init__(self) -> None:
        self.model_calls = 0
        self.tool_calls = 0
        self.tool_failures = 0
        self.tools: dict[str, list[int]] = {}
        self.models: list[str] = []
        self.tokens: dict[str, int] = {}
        self.cost_usd = 0.0
        self.priced_calls = 0
        self.unpriced_models: list[str] = []
        self.task: str | None = None  # the first model call's user message, a run without a task's

    def add_model_call(self, model: str | None, tokens: dict[str, int] | None, cost: float | None,
                       *, count_call: bool = True) -> None:
        if count_call:
            self.model_calls += 1
        if model and model not in self.models and len(self.models) < MAX_MODELS:
            self.models.append(model)
        if tokens:
            if "total" not in tokens:  # so that a run's total is its calls' input + output
                tokens = {**tokens, "total": tokens.get("input", 0) + tokens.get("output", 0)}
            add_tokens(self.tokens, tokens)
            if cost is not None:
                self.cost_usd += cost
                self.priced_calls += 1
            else:
                name = model or "(unknown model)"
                if name not in self.unpriced_models and len(self.unpriced_models) < MAX_MODELS:
                    self.unpriced_models.append(name)

    def add_tool_call(self, name: str, failed: bool) -> None:
        self.tool_calls += 1
        if failed:
            self.tool_failures += 1
        counts = self._tool_counts(name)
        counts[0] += 1
        if failed:
            counts[1] += 1

    def _tool_counts(self, name: str) -> list[int]:
        counts = self.tools.get(name)
        if counts is None:
            if len(self.tools) >= MAX_TOOLS:
                name = OTHER_TOOLS
                counts = self.tools.get(name)
            if counts is None:
                counts = self.tools[name] = [0, 0]
        return counts

    def merge(self, other: Tally) -> None:
        self.model_calls += other.model_calls
        self.tool_calls += other.tool_calls
        self.tool_failures += other.tool_failures
        for name, (calls, failures) in other.tools.items():
            counts = self._tool_counts(name)
            counts[0] += calls
            counts[1] += failures
        for model in other.models:
            if model not in self.models and len(self.models) < MAX_MODELS:
                self.models.append(model)
        add_tokens(self.tokens, other.tokens)
        self.cost_usd += other.cost_usd
        self.priced_calls += other.priced_calls
        for model in other.unpriced_models:
            if model not in self.unpriced_models and len(self.unpriced_models) < MAX_MODELS:
                self.unpriced_models.append(model)
        if self.task is None:
            self.task = other.task

    def cost_fields(self) -> tuple[float | None, str]:
        if not self.tokens:
            return None, "no_tokens"
        if self.priced_calls == 0:
            return None, "no_price"
        status = "partial" if self.unpriced_models else "priced"
        return round(self.cost_usd, 10), status


class Run:
    """One open run: its identity, its place among runs, its tally and its current step."""

    __slots__ = (
        "agent_id",
        "agent_name",
        "conversation_id",
        "errors",
        "open_steps",
        "parent_run_id",
        "root_run_id",
        "run_id",
        "service_name",
        "started_at",
        "tally",
        "task",
        "trace_id",
    )

    def __init__(self, run_id: str, trace_id: str | None, agent_name: str, agent_id: str | None,
                 service_name: str | None, task: str | None, started_at: str | None,
                 parent: Run | None) -> None:
        self.run_id = run_id
        self.trace_id = trace_id
        self.agent_name = agent_name
        self.agent_id = agent_id
        self.service_name = service_name
        self.task = task
        self.started_at = started_at
        self.parent_run_id: str | None = parent.run_id if parent is not None else None
        self.root_run_id: str = parent.root_run_id if parent is not None else run_id
        self.tally = Tally()
        self.errors = 0
        # The conversation (session) the run belongs to: its agent span's, else its first model
        # call's that names one (read through the vocabulary layer, so already capped).
        self.conversation_id: str | None = None
        # Open model and tool calls, by span id, with what they are doing ("calling tool x").
        self.open_steps: dict[int, str] = {}

    def current_step(self) -> str | None:
        if self.open_steps:
            return next(reversed(self.open_steps.values()))
        return None

    def totals(self, span_tokens: dict[str, int] | None = None, span_cost: float | None = None,
               span_model: str | None = None) -> dict[str, Any]:
        """The run's aggregates as event data fields (``docs/events.md``, "Runs").

        ``span_tokens`` are the totals the run's own span carries; they count only when the run's
        model calls carried none (the token rule), priced with ``span_cost``.
        """
        tally = self.tally
        tokens_source: str | None = None
        if tally.tokens:
            tokens = full_tokens(tally.tokens)
            tokens_source = "model_calls"
            cost_usd, cost_status = tally.cost_fields()
        elif span_tokens:
            tokens = full_tokens(span_tokens)
            tokens_source = "run_span"
            if span_cost is not None:
                cost_usd, cost_status = round(span_cost, 10), "priced"
            else:
                cost_usd, cost_status = None, "no_price"
        else:
            tokens = full_tokens(None)
            cost_usd, cost_status = None, "no_tokens"
        unpriced = list(tally.unpriced_models)
        if tokens_source == "run_span" and cost_usd is None:
            unpriced = [span_model or (tally.models[0] if tally.models else "(unknown model)")]
        models = list(tally.models)
        if span_model and span_model not in models:
            models.append(span_model)
        return {
            "model_calls": tally.model_calls,
            "tool_calls": tally.tool_calls,
            "tool_failures": tally.tool_failures,
            "tools": {name: {"calls": calls, "failures": failures}
                      for name, (calls, failures) in tally.tools.items()},
            "models": models,
            "tokens": tokens,
            "tokens_source": tokens_source,
            "cost_usd": cost_usd,
            "cost_status": cost_status,
            "unpriced_models": unpriced,
            "parent_run_id": self.parent_run_id,
            "root_run_id": self.root_run_id,
            "conversation_id": self.conversation_id,
        }

    def state(self, updated_at: str) -> dict[str, Any]:
        """The run's live state, as the ``run_progress`` message carries it (``docs/server.md``)."""
        state = {
            "run_id": self.run_id,
            "trace_id": self.trace_id,
            "agent_id": self.agent_id,
            "agent_name": self.agent_name,
            "service_name": self.service_name,
            "task_description": self.task or self.tally.task or "",
            "started_at": self.started_at,
            "updated_at": updated_at,
            "status": "running",
            "current_step": self.current_step(),
            "errors": self.errors,
        }
        state.update(self.totals())
        return state
