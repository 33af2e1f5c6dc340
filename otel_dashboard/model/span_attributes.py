"""The attributes a span record keeps besides its selected ones: content and raw attributes, bounded.

A span record (:mod:`otel_dashboard.model.span_records`) keeps a few selected attributes for the trace
page (values capped at 256 characters), and here every OTHER attribute of the span, for the span
details (``GET /api/traces/{trace_id}/spans/{span_id}``): the content attributes (the transcript and
tool input/output keys of :mod:`otel_dashboard.model.transcript`, :func:`~otel_dashboard.model.
transcript.is_content_key`) and the rest ("raw attributes"). Bounds:

* per value: a string of a content attribute at most :data:`MAX_CONTENT_VALUE_CHARS` (32 Ki)
  characters, of any other at most :data:`MAX_RAW_VALUE_CHARS` (1 Ki); a sequence at most
  :data:`MAX_SEQUENCE_ITEMS` (16) items, each a raw value; anything else (a mapping a sender
  shipped, bytes) as its text; keys at most 256 characters. A cut string ends with ``"…"``
  (a cut JSON value is then no longer JSON: the transcript shows it as text);
* per span: at most :data:`MAX_DETAIL_ATTRIBUTES` (128) attributes and :data:`MAX_DETAIL_CHARS`
  (128 Ki) characters of keys and values together (a number counts 8). The content attributes
  are taken first, in the span's order, then the others; a string is cut to what is left of the
  span's budget (when at least 256 characters are), and an attribute that no longer fits is
  dropped and counted in the record's ``dropped_attributes``.

All of it is counted in the trace store's memory budget (:mod:`otel_dashboard.model.record_size`).
Pure functions; nothing here imports the SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from typing import Any

import orjson

from otel_dashboard.model.transcript import CONTENT_KEYS, CONTENT_PREFIXES

__all__ = [
    "MAX_CONTENT_VALUE_CHARS",
    "MAX_DETAIL_ATTRIBUTES",
    "MAX_DETAIL_CHARS",
    "MAX_RAW_VALUE_CHARS",
    "MAX_SEQUENCE_ITEMS",
    "detail_attributes",
]

MAX_CONTENT_VALUE_CHARS = 32 * 1024
"""Characters kept of one content attribute's string (a transcript, a tool's arguments or result)."""
MAX_RAW_VALUE_CHARS = 1024
"""Characters kept of one other attribute's string (and of each item of a sequence)."""
MAX_SEQUENCE_ITEMS = 16
"""Items kept of a sequence value."""
MAX_DETAIL_ATTRIBUTES = 128
"""Attributes kept per span besides the selected ones."""
MAX_DETAIL_CHARS = 128 * 1024
"""Characters of keys and values kept per span besides the selected attributes."""
_MAX_KEY_CHARS = 256
_MIN_CUT_CHARS = 256  # a string is cut to the span's remaining budget only when this much is left
_NUMBER_CHARS = 8
_ELLIPSIS = "\u2026"


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (Mapping, list, tuple)):
        try:
            return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
        except (TypeError, ValueError):
            pass
    try:
        return str(value)
    except Exception:  # a hostile __str__
        return "<unprintable>"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS


def _bounded(value: Any, limit: int, sequence: Callable[[list[Any]], Any]) -> tuple[Any, int] | None:
    """``(value, characters)`` of one value within ``limit`` characters, or None when it does not fit."""
    if value is None or isinstance(value, (bool, int, float)):
        return (value, _NUMBER_CHARS) if limit >= _NUMBER_CHARS else None
    if isinstance(value, (list, tuple)):
        items: list[Any] = []
        size = 0
        for item in value[:MAX_SEQUENCE_ITEMS]:
            if item is None or isinstance(item, (bool, int, float)):
                items.append(item)
                size += _NUMBER_CHARS
            else:
                text = _cut(item if isinstance(item, str) else _text(item), MAX_RAW_VALUE_CHARS)
                items.append(text)
                size += len(text)
        return (sequence(items), size) if size <= limit else None
    text = value if isinstance(value, str) else _text(value)
    if len(text) <= limit:
        return text, len(text)
    if limit < _MIN_CUT_CHARS:
        return None
    return _cut(text, limit), limit


def detail_attributes(
    attrs: Mapping[str, Any],
    skip: Container[str] = (),
    sequence: Callable[[list[Any]], Any] = list,
) -> tuple[list[str], list[Any], int]:
    """The attributes of ``attrs`` not in ``skip``, bounded (see the module docstring).

    Args:
        attrs: a span's attributes (the SDK's, an OTLP span's, or what a remote sender shipped).
        skip: the keys kept elsewhere (the record's selected attributes).
        sequence: what a sequence value becomes (``tuple`` for a compact record, ``list`` for JSON).

    Returns:
        ``(keys, values, dropped)``: the kept keys and their bounded values, content attributes
        first, and how many attributes were dropped for the per-span bounds. Never raises on odd
        values.
    """
    content: list[str] = []
    other: list[str] = []
    for key in attrs:
        if key in skip or type(key) is not str:
            continue  # kept elsewhere, or not an attribute key (a sender's odd mapping)
        (content if key in CONTENT_KEYS or key.startswith(CONTENT_PREFIXES) else other).append(key)
    keys: list[str] = []
    values: list[Any] = []
    dropped = 0
    left = MAX_DETAIL_CHARS
    first_raw = len(content)
    for index, key in enumerate(content + other if content else other):
        if len(keys) >= MAX_DETAIL_ATTRIBUTES:
            dropped += 1
            continue
        name = key if len(key) <= _MAX_KEY_CHARS else _cut(key, _MAX_KEY_CHARS)
        room = min(MAX_CONTENT_VALUE_CHARS if index < first_raw else MAX_RAW_VALUE_CHARS, left - len(name))
        value = attrs[key]
        kind = type(value)
        # The common values first, inline: a short string, a number.
        if kind is str and len(value) <= room:
            size = len(value)
        elif (kind is int or kind is float or kind is bool) and room >= _NUMBER_CHARS:
            size = _NUMBER_CHARS
        else:
            found = _bounded(value, room, sequence)
            if found is None:
                dropped += 1
                continue
            value, size = found
        keys.append(name)
        values.append(value)
        left -= len(name) + size
    return keys, values, dropped
