"""Argument checks for the public API: each raises ``ValueError`` naming the offending argument."""

from __future__ import annotations

import math
from numbers import Real

from instrumentation._serialize import render


def non_empty_str(value: object, argument: str) -> str:
    """Returns ``value`` if it is a string with non-blank content, else raises ``ValueError``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{argument} must be a non-empty string, got {render(value)!s}")
    return value


def optional_str(value: object, argument: str) -> str | None:
    """Returns ``value`` if it is ``None`` or a string, else raises ``ValueError``."""
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{argument} must be a string or None, got {render(value)!s}")
    return value


def optional_non_empty_str(value: object, argument: str) -> str | None:
    """Returns ``value`` if it is ``None`` or a non-blank string, else raises ``ValueError``."""
    return None if value is None else non_empty_str(value, argument)


def number_in_range(value: object, argument: str, low: float, high: float) -> float:
    """Returns ``value`` as a float if it is a real number (not a bool) in ``[low, high]``.

    Raises:
        ValueError: for a bool, a non-number, NaN, or a number outside the range.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{argument} must be a number between {low:g} and {high:g}, got {render(value)!s}")
    number = float(value)
    if math.isnan(number) or not low <= number <= high:
        raise ValueError(f"{argument} must be between {low:g} and {high:g}, got {number!r}")
    return number


def string(value: object, argument: str) -> str:
    """Returns ``value`` if it is a string (possibly empty), else raises ``ValueError``."""
    if not isinstance(value, str):
        raise ValueError(f"{argument} must be a string, got {render(value)!s}")
    return value


def check_bool(value: object, argument: str) -> bool:
    """Returns ``value`` if it is a bool, else raises ``ValueError``."""
    if not isinstance(value, bool):
        raise ValueError(f"{argument} must be True or False, got {render(value)!s}")
    return value
