"""The estimated memory a span record holds: what the trace store's memory budget counts.

An estimate, computed once when a record is made (a compact record carries it as its last field) or
stored (a JSON record), from the record's shape as CPython 3.11 lays it out on 64 bits, never by
walking objects with ``sys.getsizeof``:

* :data:`RECORD_BYTES` for the record's place in its trace (a dict slot, the integer id);
* a compact record: a tuple's header, :data:`FIELD_BYTES` per field (its slot and, on average, the
  header of the object in it), and one byte per character of its name, status message and string
  attribute values; its attribute keys are not counted (a compact record keeps only the attributes
  of a fixed set, so its keys are shared constants), nor the service name (one per process);
* a JSON record: :data:`DICT_BYTES` for its dict, 49 bytes plus one per character for each string,
  100 bytes plus the key's and the value's for each attribute;
* span events, sequence values and a record's other attributes (its content and raw attributes,
  :mod:`otel_dashboard.model.span_attributes`): 100 bytes per event, item and attribute, plus their
  keys and values.

Strings of more than one byte per character (non-ASCII) are the one case where it can be low (up
to four times, for those strings); everything else errs high. ``tests/test_traces.py`` checks it
against the process's real growth. docs/server.md ("The trace store") describes it for users.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "COMPACT_BYTES",
    "FIELD_BYTES",
    "RECORD_BYTES",
    "compact_bytes",
    "detail_bytes",
    "events_bytes",
    "json_record_bytes",
    "value_bytes",
]

RECORD_BYTES = 160
"""A record's place in its trace: a dict slot (or two tuple slots) and its integer span id."""
FIELD_BYTES = 32
"""Per field of a compact record: its slot (8) and its share of the objects in it (the ids and times are
integers of their own; keys, status and service are shared)."""
_TUPLE_BYTES = 56
_STR_BYTES = 49
_NUMBER_BYTES = 32
_ITEM_BYTES = 100  # an event, a sequence item, an attribute of a dict: its slot and object
DICT_BYTES = 640
"""A JSON record's dict (about 20 keys)."""
COMPACT_BYTES = RECORD_BYTES + _TUPLE_BYTES
"""A compact record's fixed part: its place in its trace and its tuple's header."""
# isinstance as C-level callables: compact_bytes' passes over the values run no Python code.
_is_str = str.__instancecheck__
_is_tuple = tuple.__instancecheck__


def compact_bytes(fields: int, name: str, message: str | None, values: Iterable[Any]) -> int:
    """The estimate of a compact record of ``fields`` fields without events (add
    :func:`events_bytes` for them), whose name, status message and attribute values are given.

    ``values`` is iterated twice (give a list, a tuple or a dict's values view). Its strings are
    summed in C; only sequence values (rare) take a Python loop.
    """
    size = COMPACT_BYTES + FIELD_BYTES * fields + len(name) + sum(map(len, filter(_is_str, values)))
    if message:
        size += len(message)
    for sequence in filter(_is_tuple, values):
        size += value_bytes(sequence)
    return size


def json_record_bytes(record: Mapping[str, Any]) -> int:
    """The estimate of a JSON record (see the module docstring)."""
    size = RECORD_BYTES + DICT_BYTES
    for key, value in record.items():
        if isinstance(value, str):
            size += _STR_BYTES + len(value)
        elif key in ("attributes", "detail_attributes") and isinstance(value, Mapping):
            size += detail_bytes(value, value.values())
        elif key == "events" and isinstance(value, list):
            size += events_bytes(value)
        elif value is not None:
            size += _NUMBER_BYTES
    return size


def detail_bytes(keys: Iterable[Any], values: Iterable[Any]) -> int:
    """The estimate of attributes given as their keys and their values (in the same order)."""
    pairs = zip(keys, values, strict=True)
    return sum(_ITEM_BYTES + value_bytes(key) + value_bytes(value) for key, value in pairs)


def events_bytes(events: Iterable[Any]) -> int:
    """The estimate of span events, compact (tuples) or JSON (dicts)."""
    size = 0
    for event in events:
        if isinstance(event, Mapping):
            size += 3 * _ITEM_BYTES + value_bytes(event.get("name"))
            attrs = event.get("attributes")
            if isinstance(attrs, Mapping):
                for key, value in attrs.items():
                    size += _ITEM_BYTES + value_bytes(key) + value_bytes(value)
        else:
            size += _ITEM_BYTES + value_bytes(event)
    return size


def value_bytes(value: Any) -> int:
    """The estimate of one value: a string, a number, or a sequence of them."""
    if isinstance(value, str):
        return _STR_BYTES + len(value)
    if isinstance(value, (list, tuple)):
        return _TUPLE_BYTES + sum(_ITEM_BYTES + value_bytes(item) for item in value)
    return _NUMBER_BYTES if value is not None else 0
