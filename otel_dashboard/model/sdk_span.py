"""The one place in ``otel_dashboard`` that reads the OpenTelemetry SDK's private span fields.

Mapping and span records run for every span the processor sees, so they read a span's attributes and
span events without the copies the SDK's public properties make:

* ``ReadableSpan.attributes`` wraps the attribute dict in a new ``MappingProxyType`` on every call,
  and every ``.get`` on it then goes through two Python-level wrappers (the proxy and
  ``BoundedAttributes``' ``Mapping.get``): several times the cost of a plain ``dict.get``;
* ``ReadableSpan.events`` copies the span's ``BoundedList`` into a new tuple on every call, although
  most spans have no events at all.

* a span record reads nine fields of every span, and each public property is a Python-level call
  (the ids of ``SpanContext`` too: they are properties over a tuple).

The fast path reads ``span._attributes._dict`` (a plain ``dict``) and ``span._events._dq`` (a
``deque``), the storage of the SDK's ``BoundedAttributes`` and ``BoundedList``, and the fields
behind ``ReadableSpan``'s properties (``_context``, ``_parent``, ``_name``, ``_start_time``,
``_end_time``, ``_status``, ``_resource``), as opentelemetry-sdk 1.x names them, and the ids of an
exact ``SpanContext`` by position (it is a tuple of the API). **Fallback:** whenever
a span does not have them, or not with those types (a foreign span, one rebuilt from the wire with
plain containers, or a future SDK that renamed them), the public properties are read instead: the
results are the same, only slower. ``tests/test_sdk_span.py`` fails when the SDK changes these
internals, so that the slower path never goes unnoticed.

Nothing here imports the SDK: a span is whatever object the caller passes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanContext

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["SpanFields", "attributes", "events", "internal_fields", "reads_internals", "span_ids"]

SpanFields = tuple[int, int, int, Any, Any, Any, Any, Any, dict[str, Any], "deque[Any]"]
"""``(trace_id, span_id, parent_span_id, name, start_time, end_time, status, resource, attributes,
events)`` of an SDK span, as :func:`internal_fields` reads them: ``parent_span_id`` is 0 without a
parent; ``attributes`` and ``events`` are the SDK's own dict and deque (never mutate them; iterate
``events`` only once the span has ended, when the SDK refuses further events)."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def attributes(span: ReadableSpan) -> Mapping[str, Any]:
    """A span's attributes for reading: not a copy (never mutate it), never ``None``.

    Single lookups (``.get``, ``in``) are safe on a live span whose thread is setting attributes
    (each is atomic); iterating is not: iterate a copy (``dict(attrs)``, one C-level call) unless
    the span has ended (the SDK then refuses further attributes).
    """
    # try/except rather than getattr with defaults: plain attribute reads cost less, and only a
    # foreign span takes the except branch.
    try:
        sdk: Any = span  # the SDK's private fields, read in this module only
        raw = sdk._attributes._dict
    except AttributeError:
        raw = None
    if type(raw) is dict:
        return raw
    public = span.attributes
    return public if public is not None else _EMPTY


def events(span: ReadableSpan) -> Sequence[Any]:
    """A snapshot of a span's span events (SDK ``Event`` objects or look-alikes), oldest first."""
    try:
        sdk: Any = span  # the SDK's private fields, read in this module only
        raw = sdk._events._dq
    except AttributeError:
        raw = None
    if type(raw) is deque:
        return tuple(raw) if raw else ()  # tuple(deque) is one C call: safe against a live append
    return span.events or ()


def span_ids(span: ReadableSpan) -> tuple[Any, Any, Any]:
    """``(trace_id, span_id, parent_span_id)`` of a span, as its contexts hold them (``0`` for an
    id that is missing, the parent's without a parent); not validated."""
    try:
        sdk: Any = span  # the SDK's private fields, read in this module only
        context = sdk._context
        parent = sdk._parent
    except AttributeError:
        context, parent = span.context, span.parent
    else:
        if type(context) is SpanContext and (parent is None or type(parent) is SpanContext):
            # SpanContext is (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid).
            return context[0], context[1], parent[1] if parent is not None else 0
    return (
        getattr(context, "trace_id", 0),
        getattr(context, "span_id", 0),
        getattr(parent, "span_id", 0) if parent is not None else 0,
    )


def internal_fields(span: ReadableSpan) -> SpanFields | None:
    """The span's fields read straight from the SDK's storage, in one call; ``None`` for a span
    without it (read the public properties then).

    Its ``attributes`` hold only what the SDK accepts as attribute values (strings, booleans,
    numbers and tuples of them), already cleaned by the SDK.
    """
    try:
        sdk: Any = span  # the SDK's private fields, read in this module only
        attrs = sdk._attributes._dict
        context = sdk._context
        parent = sdk._parent
        events = sdk._events._dq
        if type(attrs) is not dict or type(context) is not SpanContext or type(events) is not deque:
            return None
        if parent is None:
            parent_id = 0
        elif type(parent) is SpanContext:
            parent_id = parent[1]
        else:
            return None
        # SpanContext is (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid).
        return (
            context[0],
            context[1],
            parent_id,
            span._name,
            span._start_time,
            span._end_time,
            span._status,
            span._resource,
            attrs,
            events,
        )
    except AttributeError:
        return None


def reads_internals(span: ReadableSpan) -> bool:
    """Whether :func:`attributes`, :func:`events` and :func:`internal_fields` take the fast path for
    this span, and :func:`internal_fields` agrees with the public properties.

    True for the SDK's own ``Span`` and ``ReadableSpan`` as long as the SDK keeps the internals
    named in the module docstring; the test suite asserts it for the installed SDK.
    """
    try:
        sdk: Any = span  # the SDK's private fields, read in this module only
        if type(sdk._events._dq) is not deque:
            return False
    except AttributeError:
        return False
    fields = internal_fields(span)
    parent = span.parent
    public = (
        span.context.trace_id, span.context.span_id, parent.span_id if parent is not None else 0,
        span.name, span.start_time, span.end_time, span.status, span.resource, dict(span.attributes or {}),
        tuple(span.events),
    )
    return (fields is not None and (*fields[:9], tuple(fields[9])) == public
            and span_ids(span) == public[:3])
