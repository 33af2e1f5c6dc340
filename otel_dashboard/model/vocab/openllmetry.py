"""OpenLLMetry (Traceloop's ``traceloop-sdk`` and its ``opentelemetry-instrumentation-*`` packages), as
a table.

Decorator spans say their kind in ``traceloop.span.kind`` (``workflow``, ``task``, ``agent``,
``tool``) and their name in ``traceloop.entity.name``; a workflow is a run, as GenAI semconv v0.1.0
merged workflows into ``invoke_agent``. Model spans (``openai.chat``) use the GenAI names in current
releases; releases before 2025 wrote ``llm.request.type``, ``llm.usage.*`` and the indexed
``gen_ai.prompt.<i>.role``/``content`` attributes, read here too.
"""

from __future__ import annotations

from otel_dashboard.model.vocab.table import (
    KIND_AGENT,
    KIND_CHAIN,
    KIND_MODEL,
    KIND_TOOL,
    Vocabulary,
)

__all__ = ["LLM_REQUEST_TYPES", "LLM_REQUEST_TYPE_KEY", "OPENLLMETRY"]

OPENLLMETRY = Vocabulary(
    name="openllmetry",
    kind_key="traceloop.span.kind",
    kind_case_insensitive=True,
    kinds={
        "workflow": KIND_AGENT,
        "agent": KIND_AGENT,
        "tool": KIND_TOOL,
        "task": KIND_CHAIN,
    },
    agent_name_keys=("traceloop.entity.name",),
    tool_name_keys=("traceloop.entity.name",),
    model_keys=("llm.response.model", "llm.request.model"),
    token_keys={
        "input": ("llm.usage.prompt_tokens",),
        "output": ("llm.usage.completion_tokens",),
        "total": ("gen_ai.usage.total_tokens", "llm.usage.total_tokens"),
        "cache_read_input": ("gen_ai.usage.cache_read_input_tokens",),
        "cache_creation_input": ("gen_ai.usage.cache_creation_input_tokens",),
        "reasoning_output": ("gen_ai.usage.reasoning_tokens", "llm.usage.reasoning_tokens"),
    },
    input_keys=("traceloop.entity.input",),
    indexed_prompt_prefixes=("gen_ai.prompt.",),
)

# Older releases mark model spans by request type instead of an operation name.
LLM_REQUEST_TYPE_KEY = "llm.request.type"
LLM_REQUEST_TYPES = {
    "chat": KIND_MODEL,
    "completion": KIND_MODEL,
    "embedding": KIND_MODEL,
    "rerank": KIND_MODEL,
}
