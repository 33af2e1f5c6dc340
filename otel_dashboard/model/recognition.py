"""Which spans are agent runs and synthesis phases, and the names, ids and tasks the mapping gives them
(``docs/events.md`` has the rules and their fallbacks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from instrumentation import semconv as sc
from otel_dashboard.model.values import as_text

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["agent_id_of", "agent_name_of", "is_agent_span", "synthesis_phase_of", "task_description_of"]

# Values of other instrumentations' span-kind attributes (candidates for semconv.py).
_OPENINFERENCE_KIND_AGENT = "agent"  # OpenInference writes "AGENT"; compared lower-cased
_TRACELOOP_KIND_AGENT = "agent"
_INVOKE_AGENT_PREFIX = sc.OPERATION_INVOKE_AGENT + " "
_SYNTHESIS_PREFIX = sc.SPAN_KIND_SYNTHESIS + " "
_TASK_DESCRIPTION_MAX_CHARS = 200


def is_agent_span(attrs: Mapping[str, Any]) -> bool:
    if attrs.get(sc.GEN_AI_OPERATION_NAME) == sc.OPERATION_INVOKE_AGENT:
        return True
    kind = attrs.get(sc.OPENINFERENCE_SPAN_KIND)
    if isinstance(kind, str) and kind.lower() == _OPENINFERENCE_KIND_AGENT:
        return True
    kind = attrs.get(sc.TRACELOOP_SPAN_KIND)
    return isinstance(kind, str) and kind.lower() == _TRACELOOP_KIND_AGENT


def agent_name_of(span: ReadableSpan, attrs: Mapping[str, Any]) -> str:
    name = attrs.get(sc.GEN_AI_AGENT_NAME)
    if type(name) is str and name:
        return name  # the common case, without the coercion below
    for key in (sc.GEN_AI_AGENT_NAME, sc.OPENINFERENCE_AGENT_NAME, sc.TRACELOOP_ENTITY_NAME):
        name = as_text(attrs.get(key))
        if name:
            return name
    span_name = as_text(span.name) or ""
    if span_name.startswith(_INVOKE_AGENT_PREFIX):
        return span_name[len(_INVOKE_AGENT_PREFIX):].strip() or span_name
    return span_name or "agent"


def agent_id_of(attrs: Mapping[str, Any], name: str | None) -> str | None:
    value = attrs.get(sc.GEN_AI_AGENT_ID)
    if type(value) is str:
        return value or name
    return as_text(value) or name


def task_description_of(attrs: Mapping[str, Any]) -> str:
    task = attrs.get(sc.TASK_DESCRIPTION)
    if type(task) is str and task:
        return task
    task = as_text(task)
    if task:
        return task
    text = as_text(attrs.get(sc.OPENINFERENCE_INPUT_VALUE))
    if not text:
        return ""
    if len(text) > _TASK_DESCRIPTION_MAX_CHARS:
        return text[: _TASK_DESCRIPTION_MAX_CHARS - 1] + "\u2026"
    return text


def synthesis_phase_of(span: ReadableSpan, attrs: Mapping[str, Any]) -> str:
    phase = as_text(attrs.get(sc.SYNTHESIS_PHASE))
    if phase:
        return phase
    span_name = as_text(span.name) or ""
    if span_name.startswith(_SYNTHESIS_PREFIX):
        return span_name[len(_SYNTHESIS_PREFIX):].strip() or span_name
    return span_name or "synthesis"
