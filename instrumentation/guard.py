"""Stopping a runaway run from inside the agent's own code (issue 18, ``docs/guardrails.md``).

(Skeleton: helper G5 fills this module. API-only: the check a decorated step runs is registered by
the processor; nothing here imports the SDK or the dashboard.)
"""

from __future__ import annotations

__all__ = ["BudgetExceeded"]


class BudgetExceeded(Exception):
    """Raised in the agent's own code by the next decorated step of a run flagged to stop (a
    budget crossed, or "Stop run" on the page), so the framework unwinds and the run ends failed."""
