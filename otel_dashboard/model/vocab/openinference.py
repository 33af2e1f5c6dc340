"""OpenInference (Arize's conventions: smolagents, OpenAI Agents SDK, CrewAI, LangChain, LlamaIndex
instrumentations), as a table.

Span kinds are upper case on the wire (``AGENT``, ``LLM``); compared lower-cased. A run's name is in
``agent.name`` or the graph node; many agent spans have neither, and the name is then the span
name's (see :mod:`.names`). Tokens are ``llm.token_count.*`` on LLM spans, and some frameworks
(smolagents) write the run's sums under the SAME keys on the AGENT span: the run model counts those
only when the run's model calls carry none.
"""

from __future__ import annotations

from otel_dashboard.model.vocab.table import (
    KIND_AGENT,
    KIND_CHAIN,
    KIND_MODEL,
    KIND_OTHER,
    KIND_RETRIEVAL,
    KIND_TOOL,
    Vocabulary,
)

__all__ = ["OPENINFERENCE"]

OPENINFERENCE = Vocabulary(
    name="openinference",
    kind_key="openinference.span.kind",
    kind_case_insensitive=True,
    kinds={
        "agent": KIND_AGENT,
        "llm": KIND_MODEL,
        "embedding": KIND_MODEL,
        "tool": KIND_TOOL,
        "retriever": KIND_RETRIEVAL,
        "reranker": KIND_RETRIEVAL,
        "chain": KIND_CHAIN,
        "guardrail": KIND_CHAIN,
        "evaluator": KIND_OTHER,
        "prompt": KIND_OTHER,
        "unknown": KIND_OTHER,
    },
    agent_name_keys=("agent.name", "graph.node.name", "graph.node.id"),
    tool_name_keys=("tool.name",),
    tool_call_id_keys=("tool_call.id",),
    model_keys=("llm.model_name",),
    provider_keys=("llm.provider", "llm.system"),
    conversation_keys=("session.id",),
    token_keys={
        "input": ("llm.token_count.prompt",),
        "output": ("llm.token_count.completion",),
        "total": ("llm.token_count.total",),
        "cache_read_input": ("llm.token_count.prompt_details.cache_read",),
        "cache_creation_input": ("llm.token_count.prompt_details.cache_write",),
        "reasoning_output": ("llm.token_count.completion_details.reasoning",),
    },
    input_keys=("input.value",),
    input_mime_keys=("input.mime_type",),
    indexed_prompt_prefixes=("llm.input_messages.",),
)

# On a TOOL span, input.value holds the call's arguments and output.value its result.
TOOL_ARGUMENTS_KEY = "input.value"
TOOL_RESULT_KEY = "output.value"
