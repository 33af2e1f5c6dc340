"""One normalized view of a span, whatever vocabulary it speaks.

:func:`view_of` reads a span's name and attributes through the merged tables of every vocabulary
(this project's own first, then GenAI semconv, OpenInference, OpenLLMetry, MCP) and returns a
:class:`SpanView`: its kind, names, model, provider, tokens by type, tool call and conversation.
:func:`task_of` and :func:`error_of` read what only some spans need (the task of a run, the
failure of a failed span). Pure functions of their arguments; they never raise on odd values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from instrumentation import semconv as sc
from otel_dashboard.model.values import as_int, as_text
from otel_dashboard.model.vocab import openinference as oi
from otel_dashboard.model.vocab import openllmetry as ol
from otel_dashboard.model.vocab.genai import GENAI
from otel_dashboard.model.vocab.mcp import MCP
from otel_dashboard.model.vocab.names import name_from_span_name
from otel_dashboard.model.vocab.own import OWN
from otel_dashboard.model.vocab.table import (
    KIND_AGENT,
    KIND_MODEL,
    KIND_OTHER,
    KIND_REGISTRATION,
    KIND_TOOL,
    TOKEN_FIELDS,
    Vocabulary,
)
from otel_dashboard.model.vocab.text import cut, first_user_message, task_from_input

__all__ = ["RECORD_KEYS", "VOCABULARIES", "SpanView", "error_of", "kind_of", "task_of", "view_of"]

# Priority order: the first vocabulary whose kind attribute names a known kind decides the kind;
# every other field is read from the first key present, across all of them, in this order.
VOCABULARIES: tuple[Vocabulary, ...] = (OWN, GENAI, oi.OPENINFERENCE, ol.OPENLLMETRY, MCP)


def _merged(field: str) -> tuple[str, ...]:
    keys: list[str] = []
    for vocabulary in VOCABULARIES:
        for key in getattr(vocabulary, field):
            if key not in keys:
                keys.append(key)
    return tuple(keys)


def _merged_tokens(field: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    merged: dict[str, list[str]] = {name: [] for name in TOKEN_FIELDS}
    for vocabulary in VOCABULARIES:
        for name, keys in getattr(vocabulary, field).items():
            merged[name].extend(key for key in keys if key not in merged[name])
    return tuple((name, tuple(keys)) for name, keys in merged.items() if keys)


_KIND_TABLES = tuple(
    (v.name, v.kind_key, v.kinds, v.kind_case_insensitive) for v in VOCABULARIES if v.kind_key
)
_NAME_PREFIXES = tuple((prefix, kind) for v in VOCABULARIES for prefix, kind in v.name_prefixes.items())
_AGENT_NAME_KEYS = _merged("agent_name_keys")
# traceloop.entity.name names the agent on agent and workflow spans only (on a tool span it is the
# tool), so the generic list leaves it out; an agent span reads it after the others.
_CHILD_AGENT_NAME_KEYS = tuple(k for k in _AGENT_NAME_KEYS if k not in ol.OPENLLMETRY.agent_name_keys)
_AGENT_ID_KEYS = _merged("agent_id_keys")
_TOOL_NAME_KEYS = _merged("tool_name_keys")
_TOOL_CALL_ID_KEYS = _merged("tool_call_id_keys")
_TOOL_ARGUMENT_KEYS = (*_merged("tool_arguments_keys"), oi.TOOL_ARGUMENTS_KEY)
_TOOL_RESULT_KEYS = (*_merged("tool_result_keys"), oi.TOOL_RESULT_KEY)
_MODEL_KEYS = _merged("model_keys")
_PROVIDER_KEYS = _merged("provider_keys")
_CONVERSATION_KEYS = _merged("conversation_keys")
_TOKEN_KEYS = _merged_tokens("token_keys")
_RUN_TOKEN_KEYS = _merged_tokens("run_token_keys")
_INPUT_MESSAGE_KEYS = _merged("input_messages_keys")
_INPUT_KEYS = _merged("input_keys")
_INPUT_MIME_KEYS = _merged("input_mime_keys")
_USER_MESSAGE_EVENTS = frozenset(_merged("user_message_events"))
_INDEXED_PROMPT_PREFIXES = _merged("indexed_prompt_prefixes")
_ERROR_TYPE_KEYS = _merged("error_type_keys")
# A span with a requested model and no kind of its own is a model call (instrumentations of
# model clients that predate gen_ai.operation.name).
_MODEL_HINT_KEYS = ("gen_ai.request.model", "llm.request.model")
# What a span record keeps for the trace view (span_records.py), so that a record read back later
# gives the same kind and names.
RECORD_KEYS: tuple[str, ...] = tuple(dict.fromkeys((
    *(key for _, key, _, _ in _KIND_TABLES), ol.LLM_REQUEST_TYPE_KEY,
    *_AGENT_NAME_KEYS, *_AGENT_ID_KEYS, *_TOOL_NAME_KEYS, *_TOOL_CALL_ID_KEYS, *_MODEL_KEYS,
    *_PROVIDER_KEYS, *_CONVERSATION_KEYS, *_ERROR_TYPE_KEYS,
    *(key for _, keys in _TOKEN_KEYS for key in keys), *(key for _, keys in _RUN_TOKEN_KEYS for key in keys),
)))
_MAX_INDEXED_MESSAGES = 32
_MAX_NAME_CHARS = 256


_UNREAD: Any = object()  # a lazy field not read yet


class SpanView:
    """What a span is and says, in one vocabulary-free form.

    The kind and names are read when the view is made; the other fields when first asked for (most
    spans never need them: the mapping runs on every span), from the span's attributes as they are
    then. Read a view before the span changes further (the mapping does: at once, on one thread).

    Attributes:
        kind: one of the ``KIND_*`` values of :mod:`.table`.
        vocabulary: the vocabulary that gave the kind (``"other"`` when none did).
        agent_name: the agent the span names (an agent span's own name, with the span-name fallback;
            on another span only an attribute copied from its agent); ``None`` when none.
        agent_id: ``gen_ai.agent.id`` when present.
        tool_name: a tool span's tool (with the span-name fallback); ``None`` on other spans.
        tool_call_id: the tool call's id, when given.
        model: the model that answered (else the one asked for), on a model or agent span; ``None``
            when unknown.
        provider: who serves the model, as the span says it (``gen_ai.provider.name`` and the like).
        conversation_id: the conversation or session the span belongs to.
        tokens: token counts by type (``TOKEN_FIELDS`` names) on a model or agent span, or ``None``.
        run_tokens: a run's totals written apart from the per-call keys (pydantic-ai's
            ``gen_ai.aggregated_usage.*``), on an agent span; or ``None``.
    """

    __slots__ = (
        "_agent_name",
        "_attrs",
        "_conversation_id",
        "_model",
        "_provider",
        "_run_tokens",
        "_tokens",
        "_tool_call_id",
        "agent_id",
        "kind",
        "tool_name",
        "vocabulary",
    )

    def __init__(self, kind: str, vocabulary: str, attrs: Mapping[str, Any] | None = None) -> None:
        self.kind = kind
        self.vocabulary = vocabulary
        self.agent_id: str | None = None
        self.tool_name: str | None = None
        self._attrs = attrs if attrs is not None else _NO_ATTRIBUTES
        # An agent span's name is set by view_of; another span's is read when asked for.
        self._agent_name: Any = _UNREAD if attrs is not None else None
        self._model = self._provider = self._conversation_id = self._tool_call_id = _UNREAD
        self._tokens = self._run_tokens = _UNREAD

    @property
    def agent_name(self) -> str | None:
        if self._agent_name is _UNREAD:
            self._agent_name = _first_text(self._attrs, _CHILD_AGENT_NAME_KEYS)
        return self._agent_name  # type: ignore[no-any-return]

    @agent_name.setter
    def agent_name(self, name: str | None) -> None:
        self._agent_name = name

    @property
    def model(self) -> str | None:
        if self._model is _UNREAD:
            self._model = (
                _first_text(self._attrs, _MODEL_KEYS) if self.kind in (KIND_MODEL, KIND_AGENT) else None
            )
        return self._model  # type: ignore[no-any-return]

    @property
    def provider(self) -> str | None:
        if self._provider is _UNREAD:
            self._provider = _first_text(self._attrs, _PROVIDER_KEYS)
        return self._provider  # type: ignore[no-any-return]

    @property
    def conversation_id(self) -> str | None:
        if self._conversation_id is _UNREAD:
            self._conversation_id = _first_text(self._attrs, _CONVERSATION_KEYS)
        return self._conversation_id  # type: ignore[no-any-return]

    @property
    def tool_call_id(self) -> str | None:
        if self._tool_call_id is _UNREAD:
            self._tool_call_id = (
                _first_text(self._attrs, _TOOL_CALL_ID_KEYS) if self.kind == KIND_TOOL else None
            )
        return self._tool_call_id  # type: ignore[no-any-return]

    @property
    def tokens(self) -> dict[str, int] | None:
        if self._tokens is _UNREAD:
            self._tokens = (
                _tokens(self._attrs, _TOKEN_KEYS) if self.kind in (KIND_MODEL, KIND_AGENT) else None
            )
        return self._tokens  # type: ignore[no-any-return]

    @property
    def run_tokens(self) -> dict[str, int] | None:
        if self._run_tokens is _UNREAD:
            self._run_tokens = _tokens(self._attrs, _RUN_TOKEN_KEYS) if self.kind == KIND_AGENT else None
        return self._run_tokens  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        names = ("kind", "vocabulary", "agent_name", "agent_id", "tool_name", "tool_call_id", "model",
                 "provider", "conversation_id", "tokens", "run_tokens")
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"SpanView({fields})"


_NO_ATTRIBUTES: Mapping[str, Any] = {}


def _first_text(attrs: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            text = value if type(value) is str else as_text(value)
            if text:
                return text[:_MAX_NAME_CHARS]
    return None


_TokenTable = tuple[tuple[str, tuple[str, ...]], ...]


def _ranked(table: _TokenTable) -> dict[str, tuple[str, int]]:
    return {key: (name, rank) for name, keys in table for rank, key in enumerate(keys)}


_TOKEN_RANKS = _ranked(_TOKEN_KEYS)
_RUN_TOKEN_RANKS = _ranked(_RUN_TOKEN_KEYS)
_RANKS_OF = {id(_TOKEN_KEYS): _TOKEN_RANKS, id(_RUN_TOKEN_KEYS): _RUN_TOKEN_RANKS}


def _tokens(attrs: Mapping[str, Any], table: _TokenTable) -> dict[str, int] | None:
    ranks = _RANKS_OF.get(id(table))
    if ranks is not None and len(attrs) < len(ranks):
        # Fewer attributes than keys (the common span): walk the attributes instead of probing
        # every key; a field takes its most preferred key present.
        counts: dict[str, int] | None = None
        best: dict[str, int] = {}
        for key, value in attrs.items():
            found = ranks.get(key)
            if found is None:
                continue
            name, rank = found
            if best.get(name, rank + 1) <= rank:
                continue
            number = value if type(value) is int else as_int(value)
            if number is not None and number >= 0:
                if counts is None:
                    counts = {}
                counts[name] = number
                best[name] = rank
        return counts
    counts = None
    for name, keys in table:
        for key in keys:
            value = attrs.get(key)
            if value is None:
                continue
            number = value if type(value) is int else as_int(value)
            if number is not None and number >= 0:
                if counts is None:
                    counts = {}
                counts[name] = number
                break
    return counts


def kind_of(span_name: str | None, attrs: Mapping[str, Any]) -> tuple[str, str]:
    """(kind, vocabulary) of a span: the first vocabulary whose kind attribute it carries with a
    known value; else a span-name prefix; else a model hint; else ``("other", "other")``."""
    for vocabulary, key, kinds, case_insensitive in _KIND_TABLES:
        value = attrs.get(key)
        if value is None:
            continue
        if type(value) is not str:
            value = as_text(value)
            if value is None:
                continue
        kind = kinds.get(value.lower() if case_insensitive else value)
        if kind is not None:
            return kind, vocabulary
    if span_name:
        for prefix, kind in _NAME_PREFIXES:
            if span_name.startswith(prefix):
                return kind, "span_name"
    request_type = attrs.get(ol.LLM_REQUEST_TYPE_KEY)
    if isinstance(request_type, str) and request_type in ol.LLM_REQUEST_TYPES:
        return ol.LLM_REQUEST_TYPES[request_type], ol.OPENLLMETRY.name
    for key in _MODEL_HINT_KEYS:
        if attrs.get(key) is not None:
            return KIND_MODEL, "model_hint"
    return KIND_OTHER, KIND_OTHER


def view_of(
    span_name: str | None,
    attrs: Mapping[str, Any],
    *,
    kind: tuple[str, str] | None = None,
) -> SpanView:
    """The span's :class:`SpanView` (``kind``: ``kind_of(span_name, attrs)`` when the caller has
    it already). Reads the names now and the rest when asked for."""
    kind_name, vocabulary = kind if kind is not None else kind_of(span_name, attrs)
    view = SpanView(kind_name, vocabulary, attrs)
    if kind_name in (KIND_AGENT, KIND_REGISTRATION):
        view.agent_name = (
            _first_text(attrs, _AGENT_NAME_KEYS) or name_from_span_name(span_name) or "agent"
        )
        view.agent_id = _first_text(attrs, _AGENT_ID_KEYS)
        return view
    if kind_name == KIND_TOOL:
        view.tool_name = (
            _first_text(attrs, _TOOL_NAME_KEYS) or name_from_span_name(span_name) or "tool"
        )
    return view


def _indexed_user_message(attrs: Mapping[str, Any], prefix: str) -> str | None:
    # OpenInference "llm.input_messages.<i>.message.role|content";
    # OpenLLMetry "gen_ai.prompt.<i>.role|content".
    for index in range(_MAX_INDEXED_MESSAGES):
        base = f"{prefix}{index}."
        role = attrs.get(base + "message.role", attrs.get(base + "role"))
        if role is None:
            return None
        if role == "user":
            text = as_text(attrs.get(base + "message.content", attrs.get(base + "content")))
            if text:
                return text
    return None


def task_of(
    attrs: Mapping[str, Any], span_events: Iterable[Any] = (), *, messages_only: bool = False
) -> str | None:
    """The task a span states, cut to :data:`~.text.MAX_TASK_CHARS`; ``None`` when it states none.

    In order: this project's task attribute; the first user message of the input messages
    (``gen_ai.input.messages``, OpenInference ``llm.input_messages.*``, OpenLLMetry
    ``gen_ai.prompt.*``); the task-like field of the input (``input.value``,
    ``traceloop.entity.input``); a ``gen_ai.user.message`` span event. ``messages_only`` (for model
    calls) skips the input values, which on a model span hold the whole request.
    """
    if not messages_only:
        own = attrs.get(sc.TASK_DESCRIPTION)
        if own is not None and (text := as_text(own)):
            return cut(text)
    for key in _INPUT_MESSAGE_KEYS:
        value = attrs.get(key)
        if value is not None and (text := first_user_message(value)):
            return cut(text)
    for prefix in _INDEXED_PROMPT_PREFIXES:
        if (text := _indexed_user_message(attrs, prefix)) is not None:
            return cut(text)
    if not messages_only:
        mime = _first_text(attrs, _INPUT_MIME_KEYS)
        for key in _INPUT_KEYS:
            value = attrs.get(key)
            if value is None or key == sc.TASK_DESCRIPTION:
                continue
            text = as_text(value)
            if text and (task := task_from_input(text, mime)):
                return cut(task)
    for span_event in span_events:
        if getattr(span_event, "name", None) in _USER_MESSAGE_EVENTS:
            event_attrs = getattr(span_event, "attributes", None) or {}
            text = as_text(event_attrs.get("content")) or as_text(event_attrs.get("gen_ai.event.content"))
            if text:
                parsed = first_user_message(f"[{text}]") if text.startswith("{") else None
                return cut(parsed or text)
    return None


def error_of(attrs: Mapping[str, Any], exception_attrs: Mapping[str, Any] | None,
             status_message: str | None) -> tuple[str | None, str | None]:
    """(type, message) of a failure: the exception event's, else ``error.type`` and the status
    description. Either may be ``None``."""
    error_type = message = None
    if exception_attrs:
        error_type = as_text(exception_attrs.get(sc.EXCEPTION_TYPE))
        message = as_text(exception_attrs.get(sc.EXCEPTION_MESSAGE))
    if error_type is None:
        error_type = _first_text(attrs, _ERROR_TYPE_KEYS)
    if message is None:
        message = status_message
    return error_type, message


