"""Several dashboard servers sharing one Redis (``serve --broker``): the configuration
(:mod:`~otel_dashboard.server.broker.config`, no Redis needed) and the broker
(:mod:`~otel_dashboard.server.broker.redis_broker`). Names load on first use, so reading the
configuration imports neither ``redis`` nor aiohttp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_dashboard.server.broker.config import BrokerBufferFull, BrokerConfig, redact_url
    from otel_dashboard.server.broker.redis_broker import BROKER_KEY, RedisBroker

_PUBLIC = {
    "BROKER_KEY": "redis_broker",
    "BrokerBufferFull": "config",
    "BrokerConfig": "config",
    "RedisBroker": "redis_broker",
    "redact_url": "config",
}

__all__ = ["BROKER_KEY", "BrokerBufferFull", "BrokerConfig", "RedisBroker", "redact_url"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_dashboard.server.broker' has no attribute {name!r}")
    return getattr(importlib.import_module(f"otel_dashboard.server.broker.{module}"), name)
