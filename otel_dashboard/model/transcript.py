"""One span's chat transcript and tool input/output, whatever vocabulary the span speaks.

(Over 400 lines on purpose: the four readers (GenAI messages, GenAI message events, OpenInference,
OpenLLMetry) must produce the same message shape under the same bounds; kept side by side, a change
to the shape or a cap is made once and seen in all four.)

:func:`transcript_of` turns the attributes and span events of ONE model-call span into a
:data:`Transcript`, a JSON-ready dict modelled on the GenAI semantic conventions' message schema
(``gen_ai.input.messages`` / ``gen_ai.output.messages`` / ``gen_ai.system_instructions``)::

    {"input": [Message, ...], "output": [Message, ...], "system": str | None,
     "tools": [tool definition, ...], "source": "genai", "cut": False}

    Message = {"role": str, "parts": [Part, ...], "finish_reason"?: str, "name"?: str}
    Part    = {"type": "text", "content": str}
            | {"type": "reasoning", "content": str}
            | {"type": "tool_call", "id": str | None, "name": str | None, "arguments": Any}
            | {"type": "tool_call_response", "id": str | None, "response": Any}
            | {"type": "other", "content": str}

The messages come from ONE source, the first of these that has any message (or, for GenAI, any
system instruction); ``source`` names it:

1. ``"genai"``: the span attributes ``gen_ai.input.messages``, ``gen_ai.output.messages`` and
   ``gen_ai.system_instructions`` (JSON strings, or values already structured).
2. ``"genai_events"``: span events of the GenAI conventions: ``gen_ai.client.inference.operation.details``
   (the same three attributes on an event), else the older message events ``gen_ai.system.message``,
   ``gen_ai.user.message``, ``gen_ai.assistant.message``, ``gen_ai.tool.message`` (input, in event
   order) and ``gen_ai.choice`` (output), else the oldest ``gen_ai.content.prompt`` /
   ``gen_ai.content.completion`` events (``gen_ai.prompt`` / ``gen_ai.completion``, JSON lists of
   chat messages).
3. ``"openinference"``: ``llm.input_messages.<i>.message.*`` and ``llm.output_messages.<i>.message.*``
   (``role``, ``name``, ``content``, ``contents.<j>.message_content.type|text``, ``tool_call_id``,
   ``tool_calls.<k>.tool_call.id|function.name|function.arguments``).
4. ``"openllmetry"``: ``gen_ai.prompt.<i>.*`` and ``gen_ai.completion.<i>.*`` (``role``, ``content``,
   ``finish_reason``, ``tool_call_id``, ``tool_calls.<k>.id|name|arguments``).

``system`` is the text of ``gen_ai.system_instructions`` only; the other sources keep a system
prompt where they put it, as a message with role ``"system"`` in ``input``. ``tools`` is read apart
from the messages, from the first of ``gen_ai.tool.definitions`` (a JSON list) and OpenInference's
``llm.tools.<i>.tool.json_schema``.

:func:`tool_io_of` reads a TOOL span's arguments and result.

Both are pure functions of their arguments and never raise, whatever the values: a value that
should be JSON and is not becomes its raw text as one ``"other"`` part; a message that is not a
mapping becomes an ``"other"`` part of a message with role ``"unknown"``. Everything is bounded:
at most :data:`MAX_MESSAGES` messages per side and :data:`MAX_TOOLS` tools, :data:`MAX_PARTS` parts
per message, each text cut to :data:`MAX_TEXT_BYTES` UTF-8 bytes with the project's
``"…[cut N bytes]"`` marker (:func:`otel_dashboard.model.limits.cut_text`), and all texts of one
transcript together to :data:`MAX_TOTAL_BYTES` (past it, texts are replaced by the marker alone).
``cut`` is True when anything was cut or dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson

from otel_dashboard.model.limits import cut_marker, cut_text

__all__ = [
    "CONTENT_EVENTS",
    "CONTENT_KEYS",
    "CONTENT_PREFIXES",
    "MAX_MESSAGES",
    "MAX_PARTS",
    "MAX_TEXT_BYTES",
    "MAX_TOOLS",
    "MAX_TOTAL_BYTES",
    "SOURCES",
    "Message",
    "Part",
    "ToolIO",
    "Transcript",
    "is_content_key",
    "tool_io_of",
    "transcript_of",
]

Part = dict[str, Any]
"""One part of a message (see the module docstring for its shapes)."""
Message = dict[str, Any]
"""``{"role", "parts", "finish_reason"?, "name"?}``."""
Transcript = dict[str, Any]
"""``{"input", "output", "system", "tools", "source", "cut"}``."""
ToolIO = dict[str, Any]
"""``{"arguments", "result", "source", "cut"}``."""

MAX_MESSAGES = 200
"""Messages kept per side (input, output); the rest are dropped and ``cut`` is set."""
MAX_PARTS = 50
"""Parts kept per message."""
MAX_TOOLS = 200
"""Tool definitions kept."""
MAX_TEXT_BYTES = 64 * 1024
"""One text (a part's content, a tool call's arguments as text, a tool definition) is cut to this."""
MAX_TOTAL_BYTES = 1024 * 1024
"""All the texts of one transcript (or one tool input/output) together."""
MAX_SHORT_BYTES = 1024
"""A role, a name, an id or a finish reason is cut to this."""

SOURCES = ("genai", "genai_events", "openinference", "openllmetry")
"""The sources of :func:`transcript_of`, in precedence order."""

# The attributes and span events the readers below read: what a span record must keep (longer than
# its other attributes, see span_attributes.py) for transcript_of and tool_io_of to work on it later.
CONTENT_KEYS = frozenset({
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "traceloop.entity.input",
    "traceloop.entity.output", "input.value", "output.value", "input.mime_type", "output.mime_type",
    "gen_ai.prompt", "gen_ai.completion",
})
"""Attribute keys that hold a transcript or a tool's input/output (read by this module)."""
CONTENT_PREFIXES = ("llm.input_messages.", "llm.output_messages.", "llm.tools.", "gen_ai.prompt.",
                    "gen_ai.completion.")
"""Prefixes of the indexed content attributes (OpenInference, OpenLLMetry)."""
CONTENT_EVENTS = frozenset({
    "gen_ai.client.inference.operation.details", "gen_ai.system.message", "gen_ai.user.message",
    "gen_ai.assistant.message", "gen_ai.tool.message", "gen_ai.choice", "gen_ai.content.prompt",
    "gen_ai.content.completion",
})
"""Span event names that carry messages (GenAI conventions)."""


def is_content_key(key: str) -> bool:
    """Whether an attribute key is one of the content attributes this module reads."""
    return key in CONTENT_KEYS or key.startswith(CONTENT_PREFIXES)


_INPUT_MESSAGES = "gen_ai.input.messages"
_OUTPUT_MESSAGES = "gen_ai.output.messages"
_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
_TOOL_DEFINITIONS = "gen_ai.tool.definitions"
_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_CHOICE_EVENT = "gen_ai.choice"
_PROMPT_EVENT = ("gen_ai.content.prompt", "gen_ai.prompt")
_COMPLETION_EVENT = ("gen_ai.content.completion", "gen_ai.completion")

_Found = tuple[list[Message], list[Message], "str | None"]
_INDEXED = re.compile(r"(\d{1,9})\.(.+)\Z", re.DOTALL)
_UNKNOWN_ROLE = "unknown"


class _Budget:
    """Cuts texts and counts what one transcript spends; ``cut`` records any loss."""

    def __init__(self) -> None:
        self.left = MAX_TOTAL_BYTES
        self.cut = False

    def text(self, value: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:  # lone surrogates: not JSON-ready, replace them
            value = value.encode("utf-8", "replace").decode("utf-8")
            size = len(value.encode("utf-8"))
        cap = min(max_bytes, self.left)
        if size > cap:
            self.cut = True
            value = cut_text(value, cap) if cap >= 64 else cut_marker(size)
            size = len(value.encode("utf-8"))
        self.left = max(0, self.left - size)
        return value

    def short(self, value: Any) -> str | None:
        if value is None:
            return None
        return self.text(value if isinstance(value, str) else _as_text(value), MAX_SHORT_BYTES)

    def value(self, value: Any) -> Any:
        """A JSON-ready, bounded copy: a scalar as is, a string cut, a structure kept if its JSON
        fits in the text cap, else its JSON as a cut string."""
        if value is None or isinstance(value, (bool, int, float)):
            if isinstance(value, float) and value != value:  # NaN is not JSON
                return None
            return value
        if isinstance(value, str):
            return self.text(value)
        try:
            encoded = orjson.dumps(value)
        except (orjson.JSONEncodeError, TypeError, ValueError):
            return self.text(_as_text(value))
        if len(encoded) > min(MAX_TEXT_BYTES, self.left):
            return self.text(encoded.decode("utf-8"))
        self.left -= len(encoded)
        return orjson.loads(encoded)  # a plain copy, lists instead of tuples


def _as_text(value: Any) -> str:
    """Any value as text: a string as is, anything else as JSON (or its ``str()``)."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode("utf-8")
    except (orjson.JSONEncodeError, TypeError, ValueError):
        try:
            return str(value)
        except Exception:  # a hostile __str__
            return "<unprintable>"


def _parse(value: Any) -> tuple[bool, Any]:
    """``(True, decoded)`` for a JSON string, ``(True, value)`` for a value already structured,
    ``(False, value)`` for a string that is not JSON."""
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        if isinstance(value, tuple):
            return True, list(value)
        return True, value
    try:
        return True, orjson.loads(value)
    except (orjson.JSONDecodeError, ValueError, RecursionError):
        return False, value


def _parse_each(value: Any) -> tuple[bool, Any]:
    """:func:`_parse`, and the items of a list of JSON strings (an OTLP string array) decoded too."""
    ok, parsed = _parse(value)
    if ok and isinstance(parsed, list) and parsed and all(isinstance(item, str) for item in parsed):
        decoded = [_parse(item) for item in parsed]
        if all(ok_item and isinstance(item, (dict, list)) for ok_item, item in decoded):
            flat: list[Any] = []
            for _, item in decoded:
                flat.extend(item if isinstance(item, list) else [item])
            return True, flat
    return ok, parsed


def _other(budget: _Budget, value: Any) -> Part:
    return {"type": "other", "content": budget.text(_as_text(value))}


def _bare(budget: _Budget, value: Any) -> Message:
    """A message for what is not a message: its text as one ``"other"`` part."""
    return {"role": _UNKNOWN_ROLE, "parts": [_other(budget, value)]}


def _take(items: Iterable[Any], limit: int, budget: _Budget) -> list[Any]:
    taken: list[Any] = []
    for item in items:
        if len(taken) == limit:
            budget.cut = True
            break
        taken.append(item)
    return taken


# --- GenAI "parts" form ---------------------------------------------------------------------------


def _genai_part(budget: _Budget, part: Any) -> Part:
    if isinstance(part, str):
        return {"type": "text", "content": budget.text(part)}
    if not isinstance(part, Mapping):
        return _other(budget, part)
    kind = part.get("type")
    if kind in ("text", "reasoning"):
        content = part.get("content", part.get("text"))
        return {"type": kind, "content": budget.text(_as_text(content) if content is not None else "")}
    if kind == "tool_call":
        return {"type": "tool_call", "id": budget.short(part.get("id")),
                "name": budget.short(part.get("name")), "arguments": budget.value(part.get("arguments"))}
    if kind == "tool_call_response":
        response = part["response"] if "response" in part else part.get("result")
        return {"type": "tool_call_response", "id": budget.short(part.get("id")),
                "response": budget.value(response)}
    return _other(budget, part)


def _genai_message(budget: _Budget, message: Any) -> Message:
    if not isinstance(message, Mapping):
        return _bare(budget, message)
    if "parts" not in message and ("content" in message or "tool_calls" in message):
        return _chat_message(budget, message, _UNKNOWN_ROLE)  # a chat-completions message
    parts = message.get("parts")
    if isinstance(parts, str) or not isinstance(parts, Sequence):
        parts = [] if parts is None else [parts]
    result: Message = {
        "role": budget.short(message.get("role")) or _UNKNOWN_ROLE,
        "parts": [_genai_part(budget, part) for part in _take(parts, MAX_PARTS, budget)],
    }
    _extras(budget, message, result)
    return result


def _extras(budget: _Budget, source: Mapping[str, Any], message: Message) -> None:
    for key in ("finish_reason", "name"):
        value = source.get(key)
        if value is not None and value != "":
            message[key] = budget.short(value)


def _genai_messages(budget: _Budget, value: Any) -> list[Message]:
    """The messages of a ``gen_ai.input.messages``/``output.messages`` value."""
    if value is None:
        return []
    ok, parsed = _parse_each(value)
    if not ok:
        return [_bare(budget, parsed)]
    if isinstance(parsed, Mapping):
        parsed = [parsed]
    if not isinstance(parsed, list):
        return [_bare(budget, parsed)]
    return [_genai_message(budget, message) for message in _take(parsed, MAX_MESSAGES, budget)]


def _system_text(budget: _Budget, value: Any) -> str | None:
    """The text of ``gen_ai.system_instructions``: its parts' texts, one per line."""
    if value is None:
        return None
    ok, parsed = _parse_each(value)
    if not ok or isinstance(parsed, str):
        return budget.text(parsed if isinstance(parsed, str) else _as_text(parsed))
    if isinstance(parsed, Mapping):
        parsed = [parsed]
    if not isinstance(parsed, list):
        return budget.text(_as_text(parsed))
    texts: list[str] = []
    for part in _take(parsed, MAX_PARTS, budget):
        if isinstance(part, Mapping) and isinstance(part.get("content"), str):
            texts.append(part["content"])
        else:
            texts.append(_as_text(part))
    return budget.text("\n".join(texts))


# --- chat-completions form (older events, OpenLLMetry) ---------------------------------------------


def _tool_call_part(budget: _Budget, call: Any) -> Part:
    if not isinstance(call, Mapping):
        return _other(budget, call)
    function = call.get("function")
    source = function if isinstance(function, Mapping) else call
    return {"type": "tool_call", "id": budget.short(call.get("id")), "name": budget.short(source.get("name")),
            "arguments": budget.value(source.get("arguments"))}


def _content_parts(budget: _Budget, content: Any) -> list[Part]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": budget.text(content)}]
    if isinstance(content, Sequence):
        parts: list[Part] = []
        for item in _take(content, MAX_PARTS, budget):
            if (isinstance(item, Mapping) and item.get("type") in ("text", None)
                    and isinstance(item.get("text"), str)):
                parts.append({"type": "text", "content": budget.text(item["text"])})
            else:
                parts.append(_genai_part(budget, item))
        return parts
    return [_other(budget, content)]


def _chat_message(budget: _Budget, message: Mapping[str, Any], default_role: str) -> Message:
    """A chat-completions style message: ``role``, ``content`` (text or content blocks),
    ``tool_calls`` and, for a tool's answer, ``tool_call_id`` (or ``id``)."""
    role = budget.short(message.get("role")) or default_role
    content = message.get("content")
    call_id = message.get("tool_call_id", message.get("id") if role == "tool" else None)
    parts: list[Part]
    if role == "tool" and call_id is not None:
        parts = [{"type": "tool_call_response", "id": budget.short(call_id),
                  "response": budget.value(content)}]
    else:
        parts = _content_parts(budget, content)
    calls = message.get("tool_calls")
    if calls is not None:
        ok, calls = _parse(calls)
        if ok and isinstance(calls, Mapping):
            calls = [calls]
        if ok and isinstance(calls, list):
            parts.extend(_tool_call_part(budget, call) for call in _take(calls, MAX_PARTS, budget))
        else:
            parts.append(_other(budget, calls))
    if len(parts) > MAX_PARTS:
        budget.cut = True
        parts = parts[:MAX_PARTS]
    result: Message = {"role": role, "parts": parts}
    _extras(budget, message, result)
    return result


# --- GenAI span events -----------------------------------------------------------------------------


def _event_body(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """An event's attributes as a message body: JSON strings of ``content``/``message`` decoded
    when they hold structures."""
    body = dict(attributes)
    for key in ("message", "content"):
        value = body.get(key)
        if isinstance(value, str) and value[:1] in ("{", "["):
            ok, parsed = _parse(value)
            if ok:
                body[key] = parsed
    return body


def _from_events(budget: _Budget, events: Sequence[Mapping[str, Any]]) -> _Found | None:
    named = [(event.get("name"), event.get("attributes") or {})
             for event in events if isinstance(event, Mapping)]
    named = [(name, attrs) for name, attrs in named if isinstance(name, str) and isinstance(attrs, Mapping)]
    for name, attrs in named:
        if name == _DETAILS_EVENT:
            found = _from_genai_attributes(budget, attrs)
            if found is not None:
                return found
    inputs: list[Message] = []
    outputs: list[Message] = []
    for name, attrs in named:
        if name in _MESSAGE_EVENTS:
            if len(inputs) >= MAX_MESSAGES:
                budget.cut = True
                continue
            inputs.append(_chat_message(budget, _event_body(attrs), _MESSAGE_EVENTS[name]))
        elif name == _CHOICE_EVENT:
            if len(outputs) >= MAX_MESSAGES:
                budget.cut = True
                continue
            body = _event_body(attrs)
            message = body.get("message")
            merged = dict(message) if isinstance(message, Mapping) else {}
            if message is not None and not isinstance(message, Mapping):
                merged["content"] = message
            for key in ("tool_calls", "finish_reason"):
                if key in body:
                    merged.setdefault(key, body[key])
            outputs.append(_chat_message(budget, merged, "assistant"))
    if inputs or outputs:
        return inputs, outputs, None
    for name, attrs in named:
        if name == _PROMPT_EVENT[0]:
            inputs.extend(_chat_list(budget, attrs.get(_PROMPT_EVENT[1]), "user", MAX_MESSAGES - len(inputs)))
        elif name == _COMPLETION_EVENT[0]:
            outputs.extend(_chat_list(budget, attrs.get(_COMPLETION_EVENT[1]), "assistant",
                                      MAX_MESSAGES - len(outputs)))
    if inputs or outputs:
        return inputs, outputs, None
    return None


def _chat_list(budget: _Budget, value: Any, default_role: str, room: int) -> list[Message]:
    if value is None or room <= 0:
        if value is not None:
            budget.cut = True
        return []
    ok, parsed = _parse(value)
    if not ok:
        return [_bare(budget, parsed)]
    if isinstance(parsed, Mapping):
        parsed = [parsed]
    if not isinstance(parsed, list):
        return [_bare(budget, parsed)]
    return [_chat_message(budget, item, default_role) if isinstance(item, Mapping) else _bare(budget, item)
            for item in _take(parsed, room, budget)]


def _from_genai_attributes(budget: _Budget, attributes: Mapping[str, Any]) -> _Found | None:
    raw_in = attributes.get(_INPUT_MESSAGES)
    raw_out = attributes.get(_OUTPUT_MESSAGES)
    raw_system = attributes.get(_SYSTEM_INSTRUCTIONS)
    if raw_in is None and raw_out is None and raw_system is None:
        return None
    return _genai_messages(budget, raw_in), _genai_messages(budget, raw_out), _system_text(budget, raw_system)


# --- indexed attributes (OpenInference, OpenLLMetry) ---------------------------------------------


def _indexed(attributes: Iterable[tuple[str, Any]], prefix: str) -> dict[int, dict[str, Any]]:
    """``{i: {rest: value}}`` for the keys ``<prefix><i>.<rest>``."""
    found: dict[int, dict[str, Any]] = {}
    for key, value in attributes:
        if isinstance(key, str) and key.startswith(prefix):
            match = _INDEXED.match(key, len(prefix))
            if match:
                found.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return found


def _sorted_items(budget: _Budget, found: dict[int, dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    if len(found) > limit:
        budget.cut = True
    return [found[index] for index in sorted(found)[:limit]]


def _oi_message(budget: _Budget, fields: dict[str, Any]) -> Message:
    role = budget.short(fields.get("message.role")) or _UNKNOWN_ROLE
    parts: list[Part] = []
    content = fields.get("message.content")
    call_id = fields.get("message.tool_call_id")
    if content is not None and content != "":
        if role == "tool" and call_id is not None:
            parts.append({"type": "tool_call_response", "id": budget.short(call_id),
                          "response": budget.value(content)})
        else:
            parts.append({"type": "text", "content": budget.text(_as_text(content))})
    contents = _indexed(fields.items(), "message.contents.")
    for item in _sorted_items(budget, contents, MAX_PARTS):
        kind = item.get("message_content.type", "text")
        text = item.get("message_content.text")
        if kind == "text" and text is not None:
            parts.append({"type": "text", "content": budget.text(_as_text(text))})
        else:
            fields_ = {key.removeprefix("message_content."): value for key, value in item.items()}
            parts.append(_other(budget, fields_))
    calls = _indexed(fields.items(), "message.tool_calls.")
    for item in _sorted_items(budget, calls, MAX_PARTS):
        parts.append({"type": "tool_call", "id": budget.short(item.get("tool_call.id")),
                      "name": budget.short(item.get("tool_call.function.name")),
                      "arguments": budget.value(item.get("tool_call.function.arguments"))})
    if len(parts) > MAX_PARTS:
        budget.cut = True
        parts = parts[:MAX_PARTS]
    message: Message = {"role": role, "parts": parts}
    name = fields.get("message.name")
    if name is not None and name != "":
        message["name"] = budget.short(name)
    return message


_OL_FIELDS = ("role", "content", "tool_call_id", "finish_reason", "name")


def _ol_message(budget: _Budget, fields: dict[str, Any]) -> Message:
    body: dict[str, Any] = {key: fields[key] for key in _OL_FIELDS if key in fields}
    calls = _indexed(fields.items(), "tool_calls.")
    if calls:
        body["tool_calls"] = [
            {"id": call.get("id"), "name": call.get("name"), "arguments": call.get("arguments")}
            for call in _sorted_items(budget, calls, MAX_PARTS)
        ]
    return _chat_message(budget, body, _UNKNOWN_ROLE)


def _from_indexed(budget: _Budget, items: list[tuple[str, Any]], input_prefix: str, output_prefix: str,
                  convert: Callable[[_Budget, dict[str, Any]], Message]) -> _Found | None:
    inputs = _indexed(items, input_prefix)
    outputs = _indexed(items, output_prefix)
    if not inputs and not outputs:
        return None
    return ([convert(budget, fields) for fields in _sorted_items(budget, inputs, MAX_MESSAGES)],
            [convert(budget, fields) for fields in _sorted_items(budget, outputs, MAX_MESSAGES)], None)


# --- the entry points ----------------------------------------------------------------------------


def _tools(budget: _Budget, attributes: Mapping[str, Any], items: list[tuple[str, Any]]) -> list[Any]:
    raw = attributes.get(_TOOL_DEFINITIONS)
    if raw is not None:
        ok, parsed = _parse_each(raw)
        if not ok:
            return [budget.text(_as_text(parsed))]
        if not isinstance(parsed, list):
            parsed = [parsed]
        return [budget.value(tool) for tool in _take(parsed, MAX_TOOLS, budget)]
    found = _indexed(items, "llm.tools.")
    tools: list[Any] = []
    for item in _sorted_items(budget, found, MAX_TOOLS):
        schema = item.get("tool.json_schema")
        if schema is not None:
            _, parsed = _parse(schema)
            tools.append(budget.value(parsed))
    return tools


def transcript_of(
    attributes: Mapping[str, Any], events: Sequence[Mapping[str, Any]] = ()
) -> Transcript | None:
    """The chat transcript one model-call span carries, or None if it carries none.

    Args:
        attributes: the span's attributes, name -> value as OTLP or the SDK carry them (strings,
            numbers, booleans, sequences of them; JSON strings or already-structured values).
        events: the span's events, each a mapping with ``"name"`` and ``"attributes"``.

    Returns:
        ``{"input", "output", "system", "tools", "source", "cut"}`` from the first source, in the
        order of :data:`SOURCES`, that has a message (see the module docstring), or None when no
        source has one (a tool definition alone is not a transcript). Never raises.
    """
    try:
        return _transcript_of(attributes, events)
    except Exception:  # the contract is "never raises": a hostile mapping or value ends here
        return None


def _transcript_of(attributes: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> Transcript | None:
    budget = _Budget()
    items = list(attributes.items())
    source = "genai"
    found = _from_genai_attributes(budget, attributes)
    if found is None and events:
        source = "genai_events"
        found = _from_events(budget, events)
    if found is None:
        source = "openinference"
        found = _from_indexed(budget, items, "llm.input_messages.", "llm.output_messages.", _oi_message)
    if found is None:
        source = "openllmetry"
        found = _from_indexed(budget, items, "gen_ai.prompt.", "gen_ai.completion.", _ol_message)
    if found is None:
        return None
    inputs_, outputs_, system = found
    tools = _tools(budget, attributes, items)
    return {"input": inputs_, "output": outputs_, "system": system, "tools": tools, "source": source,
            "cut": budget.cut}


# --- tool spans ------------------------------------------------------------------------------------

_TOOL_SOURCES = (
    ("genai", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", None, None),
    ("openllmetry", "traceloop.entity.input", "traceloop.entity.output", None, None),
    ("openinference", "input.value", "output.value", "input.mime_type", "output.mime_type"),
)


_CALL_WRAPPER_KEYS = frozenset({"args", "kwargs", "sanitize_inputs_outputs"})  # traceloop's, smolagents'


def _tool_value(budget: _Budget, value: Any, mime: Any, always_json: bool) -> Any:
    """A tool's argument or result: JSON decoded where it is JSON (always for OpenLLMetry; for
    OpenInference when the mime type says so; otherwise when it holds an object or an array),
    else the text; ``{"args": [], "kwargs": {...}}`` wrappers unwrapped to the keyword arguments."""
    if value is None:
        return None
    decode = always_json or mime == "application/json" or (
        mime is None and isinstance(value, str) and value.lstrip()[:1] in ("{", "["))
    if isinstance(value, str) and not decode:
        return budget.text(value)
    _, parsed = _parse(value)
    if (isinstance(parsed, Mapping) and "kwargs" in parsed and not parsed.get("args")
            and set(parsed) <= _CALL_WRAPPER_KEYS):
        parsed = parsed["kwargs"]
    return budget.value(parsed)


def tool_io_of(attributes: Mapping[str, Any]) -> ToolIO | None:
    """A tool span's arguments and result, or None if it carries neither.

    Read from the first that the span has: GenAI ``gen_ai.tool.call.arguments`` /
    ``gen_ai.tool.call.result`` (also what MCP spans use), OpenLLMetry ``traceloop.entity.input`` /
    ``traceloop.entity.output``, OpenInference ``input.value`` / ``output.value`` (call it for a TOOL
    span: on other OpenInference spans these are the span's input and output, not a tool's).

    Args:
        attributes: the span's attributes.

    Returns:
        ``{"arguments", "result", "source", "cut"}``; ``arguments`` and ``result`` are decoded JSON
        (bounded like a transcript's values) or text, None when absent. Never raises.
    """
    try:
        for source, arguments_key, result_key, arguments_mime, result_mime in _TOOL_SOURCES:
            arguments = attributes.get(arguments_key)
            result = attributes.get(result_key)
            if arguments is None and result is None:
                continue
            budget = _Budget()
            always = source == "openllmetry"
            return {
                "arguments": _tool_value(budget, arguments,
                                         attributes.get(arguments_mime) if arguments_mime else None, always),
                "result": _tool_value(budget, result,
                                      attributes.get(result_mime) if result_mime else None, always),
                "source": source,
                "cut": budget.cut,
            }
    except Exception:  # never raises, whatever the mapping holds
        return None
    return None
