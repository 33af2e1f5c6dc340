"""OTLP ``AnyValue`` to plain data, for the span and log readers alike."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = ["MAX_ANY_VALUE_DEPTH", "plain_value"]

MAX_ANY_VALUE_DEPTH = 32
"""Levels of arrays and maps followed; deeper ones become ``"..."`` (hostile nesting stays cheap)."""


def plain_value(value: AnyValue, depth: int = 0) -> Any:
    """An ``AnyValue`` as JSON-ready data: scalars as they are, bytes as base64, arrays as lists,
    maps as dicts (the last of a repeated key wins), ``None`` for an empty value."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which in ("string_value", "bool_value", "int_value", "double_value"):
        return getattr(value, which)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if depth >= MAX_ANY_VALUE_DEPTH:
        return "..."
    if which == "array_value":
        return [plain_value(item, depth + 1) for item in value.array_value.values]
    return {kv.key: plain_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
