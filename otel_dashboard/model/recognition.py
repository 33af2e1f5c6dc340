"""The ids and synthesis phases the mapping gives spans (``docs/events.md`` has the rules). What a
span is, and its names and task, come from the vocabulary layer (:mod:`otel_dashboard.model.vocab`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from instrumentation import semconv as sc
from otel_dashboard.model.values import as_text

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["agent_id_of", "synthesis_phase_of"]

_SYNTHESIS_PREFIX = sc.SPAN_KIND_SYNTHESIS + " "


def agent_id_of(attrs: Mapping[str, Any], name: str | None) -> str | None:
    value = attrs.get(sc.GEN_AI_AGENT_ID)
    if type(value) is str:
        return value or name
    return as_text(value) or name


def synthesis_phase_of(span: ReadableSpan, attrs: Mapping[str, Any]) -> str:
    phase = as_text(attrs.get(sc.SYNTHESIS_PHASE))
    if phase:
        return phase
    span_name = as_text(span.name) or ""
    if span_name.startswith(_SYNTHESIS_PREFIX):
        return span_name[len(_SYNTHESIS_PREFIX):].strip() or span_name
    return span_name or "synthesis"
