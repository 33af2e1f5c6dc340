"""The shape of one vocabulary's table: which attributes say what, for one instrumentation family.

Each module of this package (``genai``, ``openinference``, ``openllmetry``, ``mcp``, ``own``) fills one
:class:`Vocabulary`; :mod:`.reader` merges them in priority order into the lookups it runs per span.
A table holds attribute keys and values only, never code, so adding a key an instrumentation writes
is a one-line change in the module of its vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "KIND_AGENT",
    "KIND_CHAIN",
    "KIND_MODEL",
    "KIND_OTHER",
    "KIND_REGISTRATION",
    "KIND_RETRIEVAL",
    "KIND_SYNTHESIS",
    "KIND_TOOL",
    "TOKEN_FIELDS",
    "Vocabulary",
]

# What a span is, whatever vocabulary said so. Values are the wire names (trace view, docs).
KIND_AGENT = "agent"  # an agent run (workflows included: GenAI semconv merged them into invoke_agent)
KIND_MODEL = "model"  # a model call: chat, completion, generate_content, embeddings
KIND_TOOL = "tool"  # a tool call
KIND_RETRIEVAL = "retrieval"  # retrieval, memory search, reranking
KIND_CHAIN = "chain"  # a step of the agent's own loop: a turn, a plan, a guardrail
KIND_SYNTHESIS = "synthesis"  # this project's @synthesis
KIND_REGISTRATION = "registration"  # an agent created or registered
KIND_OTHER = "other"

# Token counts by type, in the order the docs list them. "input" is the whole prompt, cached tokens
# included (GenAI semconv); "output" includes reasoning tokens.
TOKEN_FIELDS = (
    "input",
    "output",
    "total",
    "cache_read_input",
    "cache_creation_input",
    "reasoning_output",
)


@dataclass(frozen=True)
class Vocabulary:
    """One instrumentation family's attribute names. Every key tuple is in preference order.

    Attributes:
        name: the vocabulary's short name, as ``SpanView.vocabulary`` reports it.
        kind_key: the attribute that says what the span is (``None``: the vocabulary has none).
        kinds: that attribute's values (lower-cased when ``kind_case_insensitive``) to ``KIND_*``.
        kind_case_insensitive: compare the kind value lower-cased.
        name_prefixes: span-name prefixes that say the kind and put the name after them
            (``"invoke_agent "``, ``"tools/call "``), for spans whose kind attribute is missing.
        agent_name_keys / agent_id_keys / agent_description_keys / agent_version_keys: the agent.
        tool_name_keys / tool_type_keys / tool_call_id_keys / tool_arguments_keys /
            tool_result_keys: the tool call.
        model_keys: the model, the one that answered first (response before request).
        provider_keys: who serves the model.
        conversation_keys: the conversation or session.
        token_keys: ``TOKEN_FIELDS`` name to keys holding that count on a model call.
        run_token_keys: keys holding a run's totals on an agent span (when the framework writes them
            apart from the per-call keys).
        input_messages_keys: JSON message lists (GenAI "parts" form or role/content form).
        input_keys: the span's input as text or JSON (``input.value``, ``traceloop.entity.input``).
        input_mime_keys: the input's mime type, read beside ``input_keys``.
        user_message_events: span events whose body is a user message (older GenAI semconv).
        indexed_prompt_prefixes: flattened message lists, ``<prefix><i>.role`` / ``...content``.
        error_type_keys: the failure's type when there is no exception event.
    """

    name: str
    kind_key: str | None = None
    kinds: Mapping[str, str] = field(default_factory=dict)
    kind_case_insensitive: bool = False
    name_prefixes: Mapping[str, str] = field(default_factory=dict)
    agent_name_keys: tuple[str, ...] = ()
    agent_id_keys: tuple[str, ...] = ()
    agent_description_keys: tuple[str, ...] = ()
    agent_version_keys: tuple[str, ...] = ()
    tool_name_keys: tuple[str, ...] = ()
    tool_type_keys: tuple[str, ...] = ()
    tool_call_id_keys: tuple[str, ...] = ()
    tool_arguments_keys: tuple[str, ...] = ()
    tool_result_keys: tuple[str, ...] = ()
    model_keys: tuple[str, ...] = ()
    provider_keys: tuple[str, ...] = ()
    conversation_keys: tuple[str, ...] = ()
    token_keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    run_token_keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    input_messages_keys: tuple[str, ...] = ()
    input_keys: tuple[str, ...] = ()
    input_mime_keys: tuple[str, ...] = ()
    user_message_events: tuple[str, ...] = ()
    indexed_prompt_prefixes: tuple[str, ...] = ()
    error_type_keys: tuple[str, ...] = ()
