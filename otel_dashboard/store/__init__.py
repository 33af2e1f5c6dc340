"""The event history: the store protocol, the in-memory store and the SQLite store. No aiohttp,
no OpenTelemetry SDK.

``from otel_dashboard.store import EventStore, MemoryEventStore, SqliteEventStore`` works; the
names load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_dashboard.store.base import EventQuery, EventStore, MemoryEventStore, StoreError
    from otel_dashboard.store.sqlite import SqliteEventStore

_PUBLIC = {
    "EventQuery": "otel_dashboard.store.base",
    "EventStore": "otel_dashboard.store.base",
    "MemoryEventStore": "otel_dashboard.store.base",
    "StoreError": "otel_dashboard.store.base",
    "SqliteEventStore": "otel_dashboard.store.sqlite",
}

__all__ = [
    "EventQuery",
    "EventStore",
    "MemoryEventStore",
    "SqliteEventStore",
    "StoreError",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_dashboard.store' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
