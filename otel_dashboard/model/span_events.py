"""Span events as a span record keeps them: exceptions with their stack traces, logged steps.

A record keeps at most :data:`MAX_EVENTS_PER_SPAN` events of a span (its first ones; the rest are
dropped and counted in the record's ``dropped_events``), each with its name, its time and its
attributes, every attribute value capped: ``exception.stacktrace`` at 16 KiB, ``exception.message``
at 4 KiB, any other at 256 characters (sequences at 16 items); at most 32 attributes per event. The
message events of the GenAI conventions (:data:`~otel_dashboard.model.transcript.CONTENT_EVENTS`:
``gen_ai.user.message``, ``gen_ai.choice``, ...) keep their message attributes (``content``,
``message``, ``tool_calls``, ``gen_ai.prompt``, ...) longer, for the span's transcript: at 32 Ki
characters each, while the span's events have not spent 128 Ki characters on them together (past
that, at 256).

Two forms, as for span records (:mod:`otel_dashboard.model.span_records`):

* the **compact events** of an in-process record: one plain tuple
  ``(dropped, (name, time_ns, key_1, ..., key_n, value_1, ..., value_n), ...)`` of strings, numbers
  and tuples of them, so that the garbage collector untracks it like the record that holds it;
* the **JSON events** (a list of dicts ``{"name", "time", "time_unix_nano", "attributes"}``, ``time``
  ISO-8601 UTC) of the wire form, made from SDK events, from the compact form, or cleaned from what a
  remote processor sent.

Nothing here imports the SDK: an event is any object with ``name``, ``timestamp`` and
``attributes``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from otel_dashboard.model.events import format_timestamp
from otel_dashboard.model.transcript import CONTENT_EVENTS

__all__ = [
    "MAX_EVENTS_PER_SPAN",
    "compact_events",
    "expand_events",
    "json_events",
]

MAX_EVENTS_PER_SPAN = 32
"""Events a span record keeps; more are dropped and counted."""
_MAX_EVENT_ATTRIBUTES = 32
_MAX_VALUE_CHARS = 256
_MAX_SEQUENCE_ITEMS = 16
# The two values worth keeping long: a stack trace is what an exception event is read for.
_VALUE_LIMITS = {"exception.stacktrace": 16 * 1024, "exception.message": 4 * 1024}
_MAX_TIME_NS = 2**63 - 1
# The message attributes of the content events, and what they may keep per value and per span.
_CONTENT_ATTRIBUTES = frozenset({
    "content", "message", "tool_calls", "gen_ai.prompt", "gen_ai.completion", "gen_ai.input.messages",
    "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.tool.definitions",
})
_MAX_CONTENT_CHARS = 32 * 1024
_MAX_CONTENT_CHARS_PER_SPAN = 128 * 1024


class _Budget:
    """What the content attributes of one span's events may still keep, in characters."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = _MAX_CONTENT_CHARS_PER_SPAN


def _cap(key: str, value: Any, budget: _Budget | None = None) -> Any:
    """An event attribute value, small: strings cut at the key's limit, sequences at 16 items (as
    tuples), anything that is not a plain scalar as text. With ``budget`` (a content event's message
    attribute) a string keeps up to 32 Ki characters while the budget lasts."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_cap("", item) for item in value[:_MAX_SEQUENCE_ITEMS])
    text = value if isinstance(value, str) else str(value)
    if budget is not None and budget.left > _MAX_VALUE_CHARS:
        limit = min(_MAX_CONTENT_CHARS, budget.left)
        text = text if len(text) <= limit else text[: limit - 1] + "\u2026"
        budget.left -= len(text)
        return text
    limit = _VALUE_LIMITS.get(key, _MAX_VALUE_CHARS)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _content_budget(name: Any, key: str, budget: _Budget) -> _Budget | None:
    return budget if key in _CONTENT_ATTRIBUTES and name in CONTENT_EVENTS else None


def compact_events(events: Iterable[Any]) -> tuple[Any, ...]:
    """The compact form of SDK span events (objects with ``name``, ``timestamp``, ``attributes``),
    oldest first: ``(dropped, event_1, ...)``; values capped (see the module docstring)."""
    kept: list[tuple[Any, ...]] = []
    dropped = 0
    budget: _Budget | None = None  # made for the first message event only (most spans have none)
    for event in events:
        if len(kept) >= MAX_EVENTS_PER_SPAN:
            dropped += 1
            continue
        name = getattr(event, "name", None)
        name = _cap("", name) if name is not None else ""
        when = getattr(event, "timestamp", None)
        when = when if type(when) is int and 0 < when <= _MAX_TIME_NS else None
        attrs = getattr(event, "attributes", None) or {}
        keys = [key for key in list(attrs)[:_MAX_EVENT_ATTRIBUTES] if isinstance(key, str)]
        if name in CONTENT_EVENTS:
            budget = budget or _Budget()
            values = [_cap(key, attrs[key], _content_budget(name, key, budget)) for key in keys]
        else:
            values = [_cap(key, attrs[key]) for key in keys]
        kept.append((name, when, *keys, *values))
    return (dropped, *kept)


def expand_events(compact: tuple[Any, ...]) -> tuple[list[dict[str, Any]], int]:
    """The JSON events and the dropped count of a compact form (see :func:`compact_events`)."""
    out = []
    for event in compact[1:]:
        name, when = event[0], event[1]
        split = 2 + (len(event) - 2) // 2
        attrs = {
            key: list(value) if type(value) is tuple else value
            for key, value in zip(event[2:split], event[split:], strict=True)
        }
        out.append({
            "name": name,
            "time": format_timestamp(when) if when else None,
            "time_unix_nano": when,
            "attributes": attrs,
        })
    return out, compact[0]


def json_events(value: Any, dropped: Any = 0) -> tuple[list[dict[str, Any]], int]:
    """JSON events cleaned from what a sender shipped (a remote processor's record): at most
    :data:`MAX_EVENTS_PER_SPAN`, values capped; anything that is not an event object is skipped.

    Args:
        value: the record's ``events`` (anything; not a list gives none).
        dropped: the record's ``dropped_events`` (counted on top of the events dropped here).

    Returns:
        ``(events, dropped_events)``.
    """
    total = dropped if isinstance(dropped, int) and not isinstance(dropped, bool) and dropped > 0 else 0
    if not isinstance(value, list):
        return [], total
    kept: list[dict[str, Any]] = []
    budget = _Budget()
    for item in value:
        if not isinstance(item, Mapping):
            continue
        if len(kept) >= MAX_EVENTS_PER_SPAN:
            total += 1
            continue
        when = item.get("time_unix_nano")
        when = when if type(when) is int and 0 < when <= _MAX_TIME_NS else None
        name = item.get("name")
        raw = item.get("attributes")
        attrs: dict[str, Any] = {}
        if isinstance(raw, Mapping):
            for key, attr in list(raw.items())[:_MAX_EVENT_ATTRIBUTES]:
                if isinstance(key, str):
                    capped = _cap(key, attr if not isinstance(attr, Mapping) else str(attr),
                                  _content_budget(name, key, budget))
                    attrs[key[:_MAX_VALUE_CHARS]] = list(capped) if type(capped) is tuple else capped
        kept.append({
            "name": _cap("", name) if isinstance(name, str) else "",
            "time": format_timestamp(when) if when else None,
            "time_unix_nano": when,
            "attributes": attrs,
        })
    return kept, total
