"""The process's one :class:`~otel_dashboard.state.dashboard.DashboardState`.

The instance lives in a module object registered under a fixed name in ``sys.modules``, so that two
copies of the state modules (imported under two paths, which the original design allowed) still
share one state per process.
"""

from __future__ import annotations

import sys
import threading
import types
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from otel_dashboard.state.dashboard import DashboardState

__all__ = ["get_dashboard", "reset_dashboard"]

_HOLDER_NAME = "_otel_dashboard_process_state"


class _Holder(types.ModuleType):
    """The module object holding the process's state (a copy of this module finds it by name)."""

    state: DashboardState | None
    lock: threading.Lock


def _holder() -> _Holder:
    holder = sys.modules.get(_HOLDER_NAME)
    if holder is None:
        fresh = _Holder(_HOLDER_NAME)
        fresh.state = None
        fresh.lock = threading.Lock()
        holder = sys.modules.setdefault(_HOLDER_NAME, fresh)
    return cast(_Holder, holder)


def _new_state() -> DashboardState:
    # Imported here: dashboard.py imports this module for its re-exports.
    from otel_dashboard.state.dashboard import DashboardState

    return DashboardState()


def get_dashboard() -> DashboardState:
    """The process's :class:`~otel_dashboard.state.dashboard.DashboardState`, created on first use."""
    holder = _holder()
    state = holder.state
    if state is None:
        with holder.lock:
            if holder.state is None:
                holder.state = _new_state()
            state = holder.state
    return state


def reset_dashboard(state: DashboardState | None = None) -> DashboardState:
    """Replace the process's state with ``state`` (a fresh one by default); for tests."""
    holder = _holder()
    with holder.lock:
        holder.state = state if state is not None else _new_state()
        return holder.state
