"""The task of a run: the first user message, or the task-like field of a JSON input.

``docs/events.md`` ("Tasks") lists the rules; keep the two in step. Nothing here raises: input that
cannot be read gives ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

__all__ = ["MAX_TASK_CHARS", "cut", "first_user_message", "task_from_input"]

MAX_TASK_CHARS = 200
# Fields of a JSON input that hold the task, in preference order (smolagents' run() arguments are
# {"task": ...}; LangChain's {"input": ...}; many tools' {"query": ...}).
_TASK_FIELDS = ("task", "input", "query", "prompt", "question", "message", "instruction", "goal")
# Large inputs are not parsed whole: the task sits near the start of what frameworks write.
_MAX_PARSED_CHARS = 100_000


def cut(text: str | None) -> str | None:
    """``text`` stripped and cut to :data:`MAX_TASK_CHARS` (an ellipsis marks the cut)."""
    if not text:
        return None
    text = text.strip()
    if not text:
        return None
    if len(text) > MAX_TASK_CHARS:
        return text[: MAX_TASK_CHARS - 1] + "\u2026"
    return text


def _parse(text: str) -> Any:
    if len(text) > _MAX_PARSED_CHARS:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _text_of_content(content: Any) -> str | None:
    if isinstance(content, str):
        return content or None
    if isinstance(content, Sequence) and not isinstance(content, (str, bytes)):
        for part in content:
            if isinstance(part, str) and part:
                return part
            # GenAI semconv parts {"type": "text", "content": ...}; OpenAI {"type": "text", "text": ...}
            if isinstance(part, Mapping) and part.get("type", "text") == "text":
                text = part.get("content", part.get("text"))
                if isinstance(text, str) and text:
                    return text
    return None


def first_user_message(messages: Any) -> str | None:
    """The text of the first user message of a message list (a list, or its JSON text).

    Understands the GenAI semconv form (``{"role": "user", "parts": [{"type": "text", "content":
    ...}]}``) and the chat-completions form (``{"role": "user", "content": "..." | [parts]}``).
    """
    if isinstance(messages, str):
        messages = _parse(messages)
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)):
        return None
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") != "user":
            continue
        text = _text_of_content(message.get("parts"))
        if text is None:
            text = _text_of_content(message.get("content"))
        if text:
            return text
    return None


def _task_of_value(value: Any, depth: int = 0) -> str | None:
    if isinstance(value, str):
        return value or None
    if depth > 2:
        return None
    if isinstance(value, Mapping):
        for key in _TASK_FIELDS:
            found = _task_of_value(value.get(key), depth + 1)
            if found:
                return found
        messages = value.get("messages")
        if messages is not None:
            return first_user_message(messages)
        # OpenLLMetry's entity input: {"args": [...], "kwargs": {...}}
        kwargs = value.get("kwargs")
        if isinstance(kwargs, Mapping):
            found = _task_of_value(kwargs, depth + 1)
            if found:
                return found
        args = value.get("args")
        if isinstance(args, Sequence) and not isinstance(args, (str, bytes)):
            for arg in args:
                if isinstance(arg, str) and arg:
                    return arg
        return None
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return first_user_message(value)
    return None


def task_from_input(text: str, mime_type: str | None = None) -> str | None:
    """The task an input value holds: a task-like field or the first user message of JSON input,
    the text itself when it is not JSON; ``None`` for JSON that holds neither."""
    stripped = text.lstrip()
    looks_json = stripped[:1] in ("{", "[") or (mime_type or "").endswith("json")
    if not looks_json:
        return text
    parsed = _parse(stripped)
    if parsed is None:
        return None if (mime_type or "").endswith("json") else text
    return _task_of_value(parsed)
