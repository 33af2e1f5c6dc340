"""Guardrails while agents run: budgets and loop thresholds, their configuration, and the events
that report a crossing (``docs/guardrails.md``).

(Skeleton of issue 18: helper G1 fills the configuration loader and the budget tracker; G2 reads
:class:`LoopThresholds`. The names below are the contract the parts share.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "BUDGET_EXCEEDED",
    "BUDGET_KINDS",
    "BUDGET_SCOPES",
    "LOOP_SUSPECTED",
    "Budget",
    "Guardrails",
    "GuardrailsConfigError",
    "LoopThresholds",
]

BUDGET_EXCEEDED = "BudgetExceeded"
"""The ``error_type`` of the ``error_occurred`` a budget crossing publishes (severity error)."""
LOOP_SUSPECTED = "LoopSuspected"
"""The ``error_type`` of the ``error_occurred`` a suspected loop publishes (severity warning)."""

BUDGET_SCOPES = ("run", "agent", "conversation")
BUDGET_KINDS = ("tokens", "cost_usd", "duration_seconds", "model_calls", "tool_calls")


class GuardrailsConfigError(ValueError):
    """A guardrails configuration that cannot be used; the message names the file, the line (when
    known) and the setting."""


@dataclass(frozen=True)
class Budget:
    """One budget: limits on the runs of a scope.

    Attributes:
        scope: ``"run"`` (each run), ``"agent"`` (an agent's runs over ``window_seconds``) or
            ``"conversation"`` (the runs sharing a conversation id).
        agent: only the runs of this agent name; None: every agent.
        limits: kind -> limit, kinds of :data:`BUDGET_KINDS` (``tokens`` counts input + output).
        window_seconds: the rolling window of an ``"agent"`` budget (None: the state's usage window).
    """

    scope: str
    limits: dict[str, float] = field(default_factory=dict)
    agent: str | None = None
    window_seconds: int | None = None


@dataclass(frozen=True)
class LoopThresholds:
    """When a run is suspected of looping (``LoopSuspected``); 0 turns a check off.

    Attributes:
        repeated_tool_calls: the same tool with the same arguments this many times in one run.
        repeated_prompts: the same model input this many times in one run.
        self_invocation_depth: an agent running inside its own run (through others) this deep.
    """

    repeated_tool_calls: int = 5
    repeated_prompts: int = 5
    self_invocation_depth: int = 3


@dataclass(frozen=True)
class Guardrails:
    """Budgets and loop thresholds together (what ``serve --budgets FILE`` loads)."""

    budgets: tuple[Budget, ...] = ()
    loops: LoopThresholds = field(default_factory=LoopThresholds)
