"""The three kinds of span this package produces, and their context-manager forms.

An agent run, a tool call and a synthesis phase each map to one span whose name and attributes
follow the OpenTelemetry GenAI conventions where they have a name (see
:mod:`instrumentation.semconv`). The decorators in :mod:`instrumentation.decorators` build the
same specs; the ``*_span`` functions here serve code that is not a function of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from contextlib import AbstractContextManager

from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from instrumentation import semconv
from instrumentation._span import SpanScope, SpanSpec
from instrumentation._validate import check_bool, non_empty_str, optional_non_empty_str, optional_str

__all__ = ["agent_span", "synthesis_span", "tool_span"]


def agent_span(
    name: str,
    *,
    agent_id: str | None = None,
    description: str | None = None,
    task_description: str | None = None,
    stop_on_budget: bool = False,
) -> AbstractContextManager[Span]:
    """Runs the ``with`` block as one agent run: a span named ``invoke_agent {name}``.

    Works the same in sync and async code (``with``, not ``async with``: starting and ending a span
    never waits). Outcome rules are those of ``@agent``: status left UNSET on normal exit, ERROR plus
    one ``exception`` event when an exception escapes (which then propagates unchanged). Under
    suppressed instrumentation no span starts and the ``as`` target is ``trace.INVALID_SPAN``.

    Args:
        name: The agent's name (``gen_ai.agent.name``).
        agent_id: ``gen_ai.agent.id``; defaults to ``name``.
        description: ``gen_ai.agent.description``, omitted when not given.
        task_description: What this run was asked to do, omitted when not given.
        stop_on_budget: when the dashboard flags this run (a budget crossed, "Stop run"), its next
            decorated step raises :class:`~instrumentation.guard.BudgetExceeded` (see ``@agent``).

    Returns:
        A single-use context manager whose ``as`` target is the started :class:`Span`.

    Raises:
        ValueError: if ``name`` or ``agent_id`` is empty, or an option is not a string.
        BudgetExceeded: on entering, when an enclosing run is flagged to stop (a nested run is a step).
    """
    return SpanScope(
        agent_spec(
            non_empty_str(name, "name"),
            agent_id=optional_non_empty_str(agent_id, "agent_id"),
            description=optional_str(description, "description"),
            task_description=optional_str(task_description, "task_description"),
            stop_on_budget=check_bool(stop_on_budget, "stop_on_budget"),
        )
    )


def tool_span(name: str, *, description: str | None = None) -> AbstractContextManager[Span]:
    """Runs the ``with`` block as one tool call: a span named ``execute_tool {name}``.

    Args:
        name: The tool's name (``gen_ai.tool.name``).
        description: ``gen_ai.tool.description``, omitted when not given.

    Returns:
        A single-use context manager whose ``as`` target is the started :class:`Span`.

    Raises:
        ValueError: if ``name`` is empty or ``description`` is not a string.
    """
    return SpanScope(
        tool_spec(non_empty_str(name, "name"), description=optional_str(description, "description"))
    )


def synthesis_span(phase: str, *, description: str | None = None) -> AbstractContextManager[Span]:
    """Runs the ``with`` block as one synthesis phase: a span named ``synthesis {phase}``.

    Set ``otel_dashboard.synthesis.patterns_found`` on the yielded span yourself when known.

    Args:
        phase: The phase's name (``otel_dashboard.synthesis.phase``).
        description: ``otel_dashboard.synthesis.description``, omitted when not given.

    Returns:
        A single-use context manager whose ``as`` target is the started :class:`Span`.

    Raises:
        ValueError: if ``phase`` is empty or ``description`` is not a string.
    """
    return SpanScope(
        synthesis_spec(non_empty_str(phase, "phase"), description=optional_str(description, "description"))
    )


def agent_spec(
    name: str,
    *,
    agent_id: str | None = None,
    description: str | None = None,
    task_description: str | None = None,
    stop_on_budget: bool = False,
) -> SpanSpec:
    """Builds the span spec of one agent run (arguments already validated)."""
    attributes: dict[str, AttributeValue] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_INVOKE_AGENT,
        semconv.GEN_AI_AGENT_NAME: name,
        semconv.GEN_AI_AGENT_ID: agent_id or name,
        semconv.SPAN_KIND: semconv.SPAN_KIND_AGENT,
    }
    if description:
        attributes[semconv.GEN_AI_AGENT_DESCRIPTION] = description
    if task_description:
        attributes[semconv.TASK_DESCRIPTION] = task_description
    return SpanSpec(
        f"{semconv.OPERATION_INVOKE_AGENT} {name}", attributes, agent_name=name, stop_on_budget=stop_on_budget
    )


def tool_spec(name: str, *, description: str | None = None) -> SpanSpec:
    """Builds the span spec of one tool call (arguments already validated)."""
    attributes: dict[str, AttributeValue] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_EXECUTE_TOOL,
        semconv.GEN_AI_TOOL_NAME: name,
        semconv.SPAN_KIND: semconv.SPAN_KIND_TOOL,
    }
    if description:
        attributes[semconv.GEN_AI_TOOL_DESCRIPTION] = description
    return SpanSpec(f"{semconv.OPERATION_EXECUTE_TOOL} {name}", attributes)


def synthesis_spec(phase: str, *, description: str | None = None) -> SpanSpec:
    """Builds the span spec of one synthesis phase (arguments already validated)."""
    attributes: dict[str, AttributeValue] = {
        semconv.SPAN_KIND: semconv.SPAN_KIND_SYNTHESIS,
        semconv.SYNTHESIS_PHASE: phase,
    }
    if description:
        attributes[semconv.SYNTHESIS_DESCRIPTION] = description
    return SpanSpec(f"{semconv.SPAN_KIND_SYNTHESIS} {phase}", attributes, on_result=_record_patterns_found)


def _record_patterns_found(span: Span, result: object) -> None:
    # An int counts patterns; a collection holds them. bool is an int but says nothing about a count.
    if isinstance(result, bool):
        return
    if isinstance(result, int):
        count = int(result)
    elif isinstance(result, (Sequence, Set, Mapping)) and not isinstance(
        result, (str, bytes, bytearray, memoryview)
    ):
        count = len(result)
    else:
        return
    span.set_attribute(semconv.SYNTHESIS_PATTERNS_FOUND, count)
