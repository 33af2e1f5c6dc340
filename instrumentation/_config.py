"""Settings read from the environment, at call time so that a change made by the application applies."""

from __future__ import annotations

import functools
import logging
import os
from typing import Final

HIDE_INPUTS_ENV: Final = "OTEL_DASHBOARD_HIDE_INPUTS"
"""When true, an agent's task description is never derived from its call arguments."""

_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off", ""})

_logger = logging.getLogger(__name__)


def hide_inputs() -> bool:
    """Returns whether ``OTEL_DASHBOARD_HIDE_INPUTS`` asks to keep call arguments out of spans.

    ``true``/``1``/``yes``/``on`` (any case) mean yes; unset, empty, ``false``/``0``/``no``/``off``
    mean no. Any other value also means yes, with one warning: whoever set the variable meant to
    hide something, and instrumentation must not raise into the agent over a typo.
    """
    raw = os.environ.get(HIDE_INPUTS_ENV)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    _warn_unrecognised(raw)
    return True


@functools.lru_cache(maxsize=16)
def _warn_unrecognised(raw: str) -> None:
    _logger.warning(
        "%s=%r is not one of true/false/1/0/yes/no/on/off; treating it as true (inputs hidden).",
        HIDE_INPUTS_ENV,
        raw,
    )
