"""The attribute and event vocabulary shared by the decorators and the dashboard's mapping.

Names come from the OpenTelemetry GenAI semantic conventions wherever they define one, so that
spans from other instrumentations (OpenAI Agents SDK, OpenInference, OpenLLMetry) are understood
without changes. Names the conventions lack live under the single project prefix
:data:`PREFIX`. Every name used by this project is defined here and nowhere else.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "otel_dashboard."

# --- OpenTelemetry GenAI semantic conventions -------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_AGENT_DESCRIPTION: Final = "gen_ai.agent.description"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"

OPERATION_INVOKE_AGENT: Final = "invoke_agent"
OPERATION_CREATE_AGENT: Final = "create_agent"
OPERATION_EXECUTE_TOOL: Final = "execute_tool"

# --- Other instrumentations' markers (read only) ----------------------------------------------
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
OPENINFERENCE_AGENT_NAME: Final = "agent.name"
OPENINFERENCE_INPUT_VALUE: Final = "input.value"
TRACELOOP_SPAN_KIND: Final = "traceloop.span.kind"
TRACELOOP_ENTITY_NAME: Final = "traceloop.entity.name"

# --- OpenTelemetry general conventions -------------------------------------------------------
SERVICE_NAME: Final = "service.name"
EXCEPTION_EVENT: Final = "exception"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"

# --- Project attributes (the conventions have no name for these) -----------------------------
SPAN_KIND: Final = PREFIX + "span.kind"
"""Which decorator made the span: one of the ``SPAN_KIND_*`` values."""
SPAN_KIND_AGENT: Final = "agent"
SPAN_KIND_TOOL: Final = "tool"
SPAN_KIND_SYNTHESIS: Final = "synthesis"
SPAN_KIND_REGISTRATION: Final = "registration"

TASK_DESCRIPTION: Final = PREFIX + "task.description"
DATA_SOURCE: Final = PREFIX + "data_source"
QUALITY_SCORE: Final = PREFIX + "quality.score"
"""The run's quality score (0-100), set by ``record_quality_score`` on the active span."""
SYNTHESIS_PHASE: Final = PREFIX + "synthesis.phase"
SYNTHESIS_DESCRIPTION: Final = PREFIX + "synthesis.description"
SYNTHESIS_PATTERNS_FOUND: Final = PREFIX + "synthesis.patterns_found"
AGENT_ATTRIBUTE_PREFIX: Final = PREFIX + "agent."
"""Extra attributes given to ``register_agent`` are recorded under this prefix."""

# --- Span events and their attributes --------------------------------------------------------
EVENT_OPPORTUNITY_DISCOVERED: Final = "opportunity_discovered"
OPPORTUNITY_ID: Final = PREFIX + "opportunity.id"
OPPORTUNITY_TITLE: Final = PREFIX + "opportunity.title"
OPPORTUNITY_DESCRIPTION: Final = PREFIX + "opportunity.description"
OPPORTUNITY_CATEGORY: Final = PREFIX + "opportunity.category"
OPPORTUNITY_CONFIDENCE: Final = PREFIX + "opportunity.confidence"
OPPORTUNITY_REVENUE_POTENTIAL: Final = PREFIX + "opportunity.revenue_potential"

EVENT_QUALITY_SCORE_UPDATED: Final = "quality_score_updated"
QUALITY_SOURCE: Final = PREFIX + "quality.source"
QUALITY_DIMENSIONS: Final = PREFIX + "quality.dimensions"
"""Dimension scores as a JSON object string (span attributes cannot hold mappings)."""
