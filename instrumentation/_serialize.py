"""Safe, bounded rendering of arbitrary user values into span attribute values.

Instrumentation must never break the code it observes, so every function here returns a value for
any input, including objects whose ``__repr__`` or ``__str__`` raises, and never spends more than a
bounded amount of work on a huge container.
"""

from __future__ import annotations

import functools
import reprlib
from collections.abc import Sequence
from typing import Final

from opentelemetry.util.types import AttributeValue

DEFAULT_LIMIT: Final = 200
"""Longest rendering, in characters, the ellipsis included."""

_ELLIPSIS: Final = "\u2026"
_MAX_ITEMS: Final = 20
_PRIMITIVES: Final = (bool, str, int, float)


def truncate(text: str, limit: int = DEFAULT_LIMIT) -> str:
    """Returns ``text`` cut to at most ``limit`` characters, ending in "…" when it was cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + _ELLIPSIS


def placeholder(value: object) -> str:
    """Returns the stand-in used when ``value`` cannot be rendered, e.g. ``<unprintable Foo>``."""
    try:
        type_name = type(value).__name__
    except Exception:
        type_name = "object"
    return f"<unprintable {type_name}>"


def safe_str(value: object) -> str:
    """Returns ``str(value)``, or :func:`placeholder` when that raises. Never raises."""
    try:
        text = str(value)
    except Exception:
        return placeholder(value)
    # A __str__ returning a non-str makes str() raise TypeError, so ``text`` is a str here.
    return text


class _BoundedRepr(reprlib.Repr):
    """A ``reprlib.Repr`` that shows a few items of big containers and survives a raising ``__repr__``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        # Attributes rather than constructor keywords: the keywords only exist from Python 3.12.
        self.maxlevel = 3
        self.maxtuple = self.maxlist = self.maxarray = self.maxdict = _MAX_ITEMS
        self.maxset = self.maxfrozenset = self.maxdeque = _MAX_ITEMS
        self.maxstring = self.maxlong = self.maxother = limit

    def repr_instance(self, x: object, level: int) -> str:
        # reprlib's own fallback hides which object failed behind an address; ours names its type.
        try:
            text = repr(x)
        except Exception:
            return placeholder(x)
        return truncate(text, self.maxother)


@functools.lru_cache(maxsize=8)
def _bounded_repr(limit: int) -> _BoundedRepr:
    return _BoundedRepr(limit)


def render(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """Renders any value as short, human-readable text. Never raises.

    Args:
        value: Anything.
        limit: Longest result in characters, the trailing "…" included.

    Returns:
        ``str(value)`` for a string, a bounded ``repr(value)`` otherwise (big containers show their
        first items only), cut to ``limit`` characters; ``<unprintable T>`` when the object's own
        ``__str__``/``__repr__`` raises.
    """
    try:
        text = str(value) if isinstance(value, str) else _bounded_repr(limit).repr(value)
    except Exception:
        return placeholder(value)
    return truncate(text, limit)


def to_attribute_value(value: object, limit: int = DEFAULT_LIMIT) -> AttributeValue:
    """Returns ``value`` if OpenTelemetry accepts it as an attribute value, else its :func:`render` text.

    Accepted as they are: ``str``, ``bool``, ``int``, ``float`` and sequences whose items all share
    one of those types (returned as a tuple). Never raises.
    """
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray)):
        try:
            items = tuple(value)
        except Exception:
            return render(value, limit)
        # bool is an int subclass, so compare exact types: OTel wants one type per sequence.
        item_types = {type(item) for item in items}
        if not items or (len(item_types) == 1 and next(iter(item_types)) in _PRIMITIVES):
            return items
    return render(value, limit)
