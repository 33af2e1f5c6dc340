"""Findings recorded on the current span, and agent registration.

``record_opportunity`` and ``record_quality_score`` add a span event to whatever span is current
(an ``@agent`` or ``@tool`` run, or any other instrumentation's span), so they need no handle on
the span. ``register_agent`` announces an agent before (or without) any run. Where instrumentation
is suppressed, all three validate their arguments and record nothing.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from instrumentation import semconv
from instrumentation._serialize import render, to_attribute_value
from instrumentation._span import SpanScope, SpanSpec, current_agent
from instrumentation._suppression import suppressed
from instrumentation._validate import (
    non_empty_str,
    number_in_range,
    optional_non_empty_str,
    optional_str,
    string,
)

__all__ = ["record_opportunity", "record_quality_score", "register_agent"]

_logger = logging.getLogger(__name__)


def record_opportunity(
    title: str,
    *,
    description: str = "",
    category: str = "",
    confidence: float = 0.0,
    revenue_potential: str = "",
    opportunity_id: str | None = None,
) -> None:
    """Records an opportunity found by the current run, as span event ``opportunity_discovered``.

    The event carries ``otel_dashboard.opportunity.{id,title,description,category,confidence,
    revenue_potential}``, all of them always present. Arguments are validated first; then, when no
    span is current (or it is not recording), nothing is recorded and a debug message is logged;
    under suppressed instrumentation nothing is recorded either.

    Args:
        title: Short name of the opportunity.
        description: Longer text.
        category: Free-form category.
        confidence: How sure the agent is, from 0.0 to 1.0.
        revenue_potential: Free-form estimate, e.g. ``"$2M ARR"``.
        opportunity_id: Stable id; a random 32-hex-digit id when not given.

    Raises:
        ValueError: if ``title`` is not a non-empty string, ``confidence`` is not a number in
            0..1 (or is NaN), ``opportunity_id`` is empty, or a text argument is not a string.
    """
    title = non_empty_str(title, "title")
    description = string(description, "description")
    category = string(category, "category")
    revenue_potential = string(revenue_potential, "revenue_potential")
    confidence = number_in_range(confidence, "confidence", 0.0, 1.0)
    opportunity_id = optional_non_empty_str(opportunity_id, "opportunity_id")

    span = _recording_span("record_opportunity")
    if span is None:
        return
    span.add_event(
        semconv.EVENT_OPPORTUNITY_DISCOVERED,
        {
            semconv.OPPORTUNITY_ID: opportunity_id or uuid.uuid4().hex,
            semconv.OPPORTUNITY_TITLE: title,
            semconv.OPPORTUNITY_DESCRIPTION: description,
            semconv.OPPORTUNITY_CATEGORY: category,
            semconv.OPPORTUNITY_CONFIDENCE: confidence,
            semconv.OPPORTUNITY_REVENUE_POTENTIAL: revenue_potential,
        },
    )


def record_quality_score(
    score: float,
    *,
    source: str | None = None,
    dimension_scores: Mapping[str, float] | None = None,
) -> None:
    """Records a quality score (0-100) for the current run.

    Adds span event ``quality_score_updated`` (``otel_dashboard.quality.score``, ``.source``, and
    ``.dimensions`` as a JSON object string, ``"{}"`` when none) to the current span, and sets the
    ``otel_dashboard.quality.score`` attribute on it, the last call winning. When the current span
    is inside an ``@agent`` run but is not that run's span (a tool, say), the attribute is also set
    on the agent's span, so the run's completion carries the score. Arguments are validated first;
    then, when no span is current (or it is not recording), nothing is recorded and a debug message
    is logged; under suppressed instrumentation nothing is recorded either.

    Args:
        score: Overall score, from 0 to 100.
        source: Who scored; defaults to the current agent's name if known, else the span's name.
        dimension_scores: Score per dimension name, each from 0 to 100.

    Raises:
        ValueError: if ``score`` or a dimension score is not a number in 0..100 (or is NaN),
            ``source`` is empty, or ``dimension_scores`` is not a mapping of non-empty strings.
    """
    score = number_in_range(score, "score", 0.0, 100.0)
    source = optional_non_empty_str(source, "source")
    dimensions = _dimension_scores(dimension_scores)

    span = _recording_span("record_quality_score")
    if span is None:
        return
    span.add_event(
        semconv.EVENT_QUALITY_SCORE_UPDATED,
        {
            semconv.QUALITY_SCORE: score,
            semconv.QUALITY_SOURCE: source or _default_source(span),
            semconv.QUALITY_DIMENSIONS: json.dumps(dimensions),
        },
    )
    span.set_attribute(semconv.QUALITY_SCORE, score)
    agent = current_agent()
    if agent is not None and agent.span is not span and agent.span.is_recording():
        agent.span.set_attribute(semconv.QUALITY_SCORE, score)


def register_agent(agent_id: str, name: str, *, description: str | None = None, **attributes: object) -> None:
    """Announces an agent: emits one short span ``create_agent {name}``, a child of the current span.

    The span carries ``gen_ai.operation.name="create_agent"``, ``gen_ai.agent.id``,
    ``gen_ai.agent.name``, ``gen_ai.agent.description`` (if given),
    ``otel_dashboard.span.kind="registration"``, and each extra keyword as
    ``otel_dashboard.agent.<key>``. Extra values that OpenTelemetry cannot hold (anything but str,
    bool, int, float and homogeneous sequences of them) are recorded as short text; ``None`` values
    are skipped. Under suppressed instrumentation the arguments are validated and no span is made.

    Args:
        agent_id: The agent's stable id.
        name: The agent's display name.
        description: What the agent does.
        **attributes: Anything else worth showing, e.g. ``model="gpt-4o"``, ``tools=["search"]``.

    Raises:
        ValueError: if ``agent_id`` or ``name`` is not a non-empty string, or ``description`` is
            not a string.
    """
    agent_id = non_empty_str(agent_id, "agent_id")
    name = non_empty_str(name, "name")
    description = optional_str(description, "description")
    if suppressed():
        return
    span_attributes: dict[str, AttributeValue] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_CREATE_AGENT,
        semconv.GEN_AI_AGENT_ID: agent_id,
        semconv.GEN_AI_AGENT_NAME: name,
        semconv.SPAN_KIND: semconv.SPAN_KIND_REGISTRATION,
    }
    if description:
        span_attributes[semconv.GEN_AI_AGENT_DESCRIPTION] = description
    for key, value in attributes.items():
        if value is not None:
            span_attributes[semconv.AGENT_ATTRIBUTE_PREFIX + key] = to_attribute_value(value)
    with SpanScope(SpanSpec(f"{semconv.OPERATION_CREATE_AGENT} {name}", span_attributes)):
        pass


def _recording_span(caller: str) -> Span | None:
    if suppressed():
        return None
    span = trace.get_current_span()
    if span.is_recording():
        return span
    _logger.debug("%s: no recording span is current; nothing recorded", caller)
    return None


def _dimension_scores(value: object) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"dimension_scores must be a mapping of name to score, got {render(value)!s}")
    scores: dict[str, float] = {}
    for key, score in value.items():
        non_empty_str(key, "each dimension_scores key")
        scores[key] = number_in_range(score, f"dimension_scores[{key!r}]", 0.0, 100.0)
    return scores


def _default_source(span: Span) -> str:
    # Closest first: an agent name on the current span itself (ours, or another instrumentation's),
    # then the enclosing @agent run, then the span's own name. Only SDK spans expose the last two
    # facts, hence getattr.
    attributes = getattr(span, "attributes", None)
    if isinstance(attributes, Mapping):
        agent_name = attributes.get(semconv.GEN_AI_AGENT_NAME)
        if isinstance(agent_name, str) and agent_name:
            return agent_name
    agent = current_agent()
    if agent is not None:
        return agent.name
    span_name = getattr(span, "name", None)
    return span_name if isinstance(span_name, str) and span_name else "unknown"
