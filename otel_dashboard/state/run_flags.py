"""Runs flagged to stop: a budget crossed, or "Stop run" on the page (issue 18, ``docs/guardrails.md``).

(Skeleton: helper G5 fills this module; G1 calls :meth:`RunFlags.flag_run` when a budget is crossed.)
"""

from __future__ import annotations

__all__ = ["RunFlags"]


class RunFlags:
    """The flagged runs of the state (a mixin of :class:`~otel_dashboard.state.dashboard.DashboardState`)."""

    def flag_run(self, run_id: str, *, reason: str, kind: str) -> bool:
        """Flag ``run_id`` (``kind``: ``"budget"`` or ``"user"``); True when it was not flagged yet.
        Thread-safe, bounded; never raises for odd values."""
        raise NotImplementedError

    def run_flag(self, run_id: str) -> dict[str, str] | None:
        """``{"reason", "kind", "at"}`` of a flagged run, None otherwise."""
        raise NotImplementedError
