"""Hypothesis settings shared by the property tests, and the longer runs of ``make fuzz``.

``make test`` runs each property with a fixed, modest number of examples (derandomized where the
test says so: the suite must be repeatable and fast). ``make fuzz`` sets ``OTEL_DASHBOARD_FUZZ=N``:
every property then runs N times as many examples, freshly random each run, so that repeated fuzz
runs explore new inputs instead of replaying the same ones.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings

__all__ = ["FUZZ_FACTOR", "fuzz_settings"]

FUZZ_FACTOR = max(1, int(os.environ.get("OTEL_DASHBOARD_FUZZ", "1") or "1"))
"""How many times the normal number of examples this run takes (``make fuzz`` sets it)."""


def fuzz_settings(max_examples: int, *, derandomize: bool = False, **options: Any) -> settings:
    """Settings for a property test: ``max_examples`` in ``make test``, ``FUZZ_FACTOR`` times that
    (random, not derandomized) in ``make fuzz``; no deadline, no "too slow" health check."""
    fuzzing = FUZZ_FACTOR > 1
    return settings(
        max_examples=max_examples * FUZZ_FACTOR,
        deadline=None,
        derandomize=derandomize and not fuzzing,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        **options,
    )
