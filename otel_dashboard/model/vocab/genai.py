"""The OpenTelemetry GenAI semantic conventions (semantic-conventions-genai v0.1.0 and the
``gen_ai.*`` names in OpenTelemetry semconv before it), as a table.

Older names kept beside the new: ``gen_ai.system`` (now ``gen_ai.provider.name``),
``gen_ai.usage.prompt_tokens``/``completion_tokens`` (now ``input_tokens``/``output_tokens``),
``invoke_workflow`` (merged into ``invoke_agent`` in v0.1.0). pydantic-ai's
``gen_ai.aggregated_usage.*`` (a run's totals on its ``invoke_agent`` span) is read as the run's own
totals.
"""

from __future__ import annotations

from otel_dashboard.model.vocab.table import (
    KIND_AGENT,
    KIND_CHAIN,
    KIND_MODEL,
    KIND_REGISTRATION,
    KIND_RETRIEVAL,
    KIND_TOOL,
    Vocabulary,
)

__all__ = ["GENAI"]

GENAI = Vocabulary(
    name="genai",
    kind_key="gen_ai.operation.name",
    kinds={
        "invoke_agent": KIND_AGENT,
        "invoke_workflow": KIND_AGENT,
        "create_agent": KIND_REGISTRATION,
        "execute_tool": KIND_TOOL,
        "chat": KIND_MODEL,
        "generate_content": KIND_MODEL,
        "text_completion": KIND_MODEL,
        "embeddings": KIND_MODEL,
        "retrieval": KIND_RETRIEVAL,
        "search_memory": KIND_RETRIEVAL,
        "create_memory": KIND_CHAIN,
        "update_memory": KIND_CHAIN,
        "delete_memory": KIND_CHAIN,
        "plan": KIND_CHAIN,
    },
    name_prefixes={
        "invoke_agent ": KIND_AGENT,
        "invoke_workflow ": KIND_AGENT,
        "execute_tool ": KIND_TOOL,
    },
    agent_name_keys=("gen_ai.agent.name",),
    agent_id_keys=("gen_ai.agent.id",),
    agent_description_keys=("gen_ai.agent.description",),
    agent_version_keys=("gen_ai.agent.version",),
    tool_name_keys=("gen_ai.tool.name",),
    tool_type_keys=("gen_ai.tool.type",),
    tool_call_id_keys=("gen_ai.tool.call.id",),
    tool_arguments_keys=("gen_ai.tool.call.arguments",),
    tool_result_keys=("gen_ai.tool.call.result",),
    model_keys=("gen_ai.response.model", "gen_ai.request.model"),
    provider_keys=("gen_ai.provider.name", "gen_ai.system"),
    conversation_keys=("gen_ai.conversation.id",),
    token_keys={
        "input": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
        "output": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
        "cache_read_input": ("gen_ai.usage.cache_read.input_tokens",),
        "cache_creation_input": ("gen_ai.usage.cache_creation.input_tokens",),
        "reasoning_output": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.details.reasoning_tokens"),
    },
    run_token_keys={
        "input": ("gen_ai.aggregated_usage.input_tokens",),
        "output": ("gen_ai.aggregated_usage.output_tokens",),
        "cache_read_input": ("gen_ai.aggregated_usage.cache_read.input_tokens",
                             "gen_ai.aggregated_usage.details.cache_read_tokens"),
        "cache_creation_input": ("gen_ai.aggregated_usage.cache_creation.input_tokens",
                                 "gen_ai.aggregated_usage.details.cache_write_tokens"),
        "reasoning_output": ("gen_ai.aggregated_usage.details.reasoning_tokens",),
    },
    input_messages_keys=("gen_ai.input.messages",),
    user_message_events=("gen_ai.user.message",),
    error_type_keys=("error.type",),
)
