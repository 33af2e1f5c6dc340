"""Attribute values as the mapping uses them: text, finite numbers, integers, JSON-ready data.

Foreign spans carry anything an attribute may hold; these never raise and give ``None`` (or ``{}``)
for what they cannot use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

__all__ = ["as_float", "as_int", "as_text", "dimensions", "plain"]


def as_text(value: Any) -> str | None:
    """Attribute value as text; ``None`` for missing or empty values."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return ", ".join(str(v) for v in value) or None
    try:
        return str(value)
    except Exception:
        return None


def as_float(value: Any) -> float | None:
    """A finite number from an int, float or numeric string; else ``None`` (booleans included)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_int(value: Any) -> int | None:
    """An integer from an int, an integral float or a numeric string; else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    number = as_float(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def plain(value: Any) -> Any:
    """An attribute value as JSON-ready data: scalars as they are, sequences as lists."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return list(value)
    return as_text(value)


def dimensions(value: Any) -> dict[str, Any]:
    """Dimension scores from their JSON object string; anything unusable gives ``{}``."""
    if isinstance(value, Mapping):
        return dict(value)
    if not isinstance(value, (str, bytes)) or not value:
        return {}
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
