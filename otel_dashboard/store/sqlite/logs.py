"""The SQLite store's logger, and the rate limit that keeps a failing disk from flooding the log."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

__all__ = ["RateLimitedLog", "logger"]

# One logger for the whole package, under the name it had as one module: operators filter on it.
logger = logging.getLogger("otel_dashboard.store.sqlite")

_LOG_INTERVAL_SECONDS = 10.0


class RateLimitedLog:
    """Log one message per key at most every ``interval`` seconds, with the count of the suppressed."""

    def __init__(self, interval: float = _LOG_INTERVAL_SECONDS) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str, level: int, message: str, *args: Any) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        logger.log(level, message, *args)
