"""Stopping a runaway run from inside the agent's own code (issue 18, ``docs/guardrails.md``).

A run is *flagged* elsewhere: the dashboard saw it cross a run budget, or someone pressed "Stop run"
on the page (``POST /api/runs/{run_id}/stop``). This module is the agent's side of it, and it is
API-only: it knows nothing of the SDK, of the dashboard or of where flags live. Whoever knows the
flags (the dashboard's span processor, in process or remote) registers a *step guard*::

    from instrumentation.guard import StopRequest, register_step_guard

    handle = register_step_guard(lambda run_id: StopRequest("over budget", "budget") if ... else None)
    ...
    handle.unregister()

Each decorated agent run puts itself on a chain of enclosing runs (its ``run_id`` is its span id,
16 hex digits, with its own ``stop_on_budget`` flag; kept in the OpenTelemetry context, so threads,
``asyncio`` tasks and generators see the chain of the code they run in). Before a decorated step
starts (a ``@tool``, a ``@synthesis``, a nested ``@agent``, or their ``*_span`` forms),
:func:`check_step` asks every guard about every run of the chain, innermost first; the first flagged
run whose stop is enabled (the run's agent was decorated with ``stop_on_budget=True``, or the guard
enforces stops for every run: ``DashboardSpanProcessor(stop_on_budget=True)``) makes the step raise
:class:`BudgetExceeded` in the agent's own code, before the step's span starts. The framework then
unwinds as for any exception and the run ends failed. Without a guard registered the check costs a
global read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final, NamedTuple

from opentelemetry import context as context_api

__all__ = [
    "BudgetExceeded",
    "GuardHandle",
    "RunLink",
    "StepGuard",
    "StopRequest",
    "check_step",
    "current_runs",
    "register_step_guard",
    "unregister_step_guard",
    "with_run",
]

_logger = logging.getLogger(__name__)

_RUNS_KEY: Final = context_api.create_key("otel_dashboard.runs")
_MAX_CHAIN: Final = 32
"""Enclosing runs kept on the chain at most (the innermost): a recursion runaway stays bounded."""
_MAX_REASON_CHARS: Final = 500


class BudgetExceeded(Exception):
    """Raised in the agent's own code by the next decorated step of a run flagged to stop (a
    budget crossed, or "Stop run" on the page), so the framework unwinds and the run ends failed.

    Attributes:
        reason: why the run was flagged (the budget crossing's message, or the page's request).
        run_id: the flagged run (the span id of its agent span, 16 hex digits).
        kind: ``"budget"`` (a budget crossed) or ``"user"`` (stopped from the page or the API).
    """

    def __init__(self, reason: str, *, run_id: str | None = None, kind: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.run_id = run_id
        self.kind = kind


class StopRequest(NamedTuple):
    """A guard's answer for a flagged run.

    Attributes:
        reason: why (shown in the exception's message).
        kind: ``"budget"`` or ``"user"``.
        enforce: True: stop the run even if its agent did not opt in with ``stop_on_budget=True``
            (the processor's own ``stop_on_budget`` option).
    """

    reason: str
    kind: str
    enforce: bool = False


StepGuard = Callable[[str], StopRequest | None]
"""Given a run id, the stop request of that run when it is flagged, else None. Called on the
agent's thread before each decorated step, once per enclosing run: it must be quick (a dict
lookup) and should not raise (an exception is logged and counts as "not flagged")."""


class RunLink(NamedTuple):
    """One enclosing agent run on the chain."""

    run_id: str
    stop_on_budget: bool


class GuardHandle:
    """What :func:`register_step_guard` returns: :meth:`unregister` removes the guard (idempotent)."""

    __slots__ = ("_guard",)

    def __init__(self, guard: StepGuard) -> None:
        self._guard: StepGuard | None = guard

    def unregister(self) -> None:
        """Remove the guard; later calls do nothing."""
        guard, self._guard = self._guard, None
        if guard is not None:
            _remove(guard)


_guards: tuple[StepGuard, ...] = ()
_guards_lock = threading.Lock()


def register_step_guard(guard: StepGuard) -> GuardHandle:
    """Ask ``guard`` before every decorated step from now on (see the module docstring).

    Raises:
        TypeError: ``guard`` is not callable.
    """
    global _guards
    if not callable(guard):
        raise TypeError(f"a step guard must be callable, got {type(guard).__name__}")
    with _guards_lock:
        # A tuple swapped under the lock: check_step reads it without one.
        _guards = (*_guards, guard)
    return GuardHandle(guard)


def unregister_step_guard(handle: GuardHandle) -> None:
    """The same as ``handle.unregister()``."""
    handle.unregister()


def _remove(guard: StepGuard) -> None:
    global _guards
    with _guards_lock:
        kept = list(_guards)
        for index, registered in enumerate(kept):
            if registered is guard:
                del kept[index]
                break
        _guards = tuple(kept)


def with_run(ctx: context_api.Context, run_id: str, stop_on_budget: bool) -> context_api.Context:
    """``ctx`` with the run ``run_id`` added as the innermost run of the chain (the span scope of
    an agent span calls it)."""
    chain = context_api.get_value(_RUNS_KEY, ctx)
    links = chain if isinstance(chain, tuple) else ()
    links = (*links[-(_MAX_CHAIN - 1):], RunLink(run_id, bool(stop_on_budget)))
    return context_api.set_value(_RUNS_KEY, links, ctx)


def current_runs(ctx: context_api.Context | None = None) -> tuple[RunLink, ...]:
    """The chain of enclosing decorated agent runs, outermost first (empty outside any)."""
    chain = context_api.get_value(_RUNS_KEY, ctx)
    return chain if isinstance(chain, tuple) else ()


def check_step(ctx: context_api.Context | None = None) -> None:
    """Raise :class:`BudgetExceeded` when a run enclosing the code of ``ctx`` (the current context
    when None) is flagged and its stop is enabled; return otherwise. Never raises anything else.

    The decorators and ``*_span`` forms call it before their step starts.
    """
    guards = _guards
    if not guards:
        return
    chain = context_api.get_value(_RUNS_KEY, ctx)
    if not chain or not isinstance(chain, tuple):
        return
    for link in reversed(chain):
        for guard in guards:
            try:
                request = guard(link.run_id)
            except Exception:
                _logger.debug("step guard %r failed for run %s", guard, link.run_id, exc_info=True)
                continue
            if request is None or not (link.stop_on_budget or request.enforce):
                continue
            reason = request.reason if isinstance(request.reason, str) else str(request.reason)
            raise BudgetExceeded(
                f"{reason[:_MAX_REASON_CHARS]} (run {link.run_id} stopped)",
                run_id=link.run_id, kind=request.kind,
            )
