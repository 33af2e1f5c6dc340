"""The state's side of the budgets (issue 18, ``docs/guardrails.md``, "Budgets").

:class:`StateBudgets` is a part of :class:`~otel_dashboard.state.dashboard.DashboardState`: it keeps
a :class:`~otel_dashboard.model.budget_tracker.BudgetTracker` for the state's budgets and feeds it, under
the state's lock, from the three places where usage shows:

* :meth:`update_runs <otel_dashboard.state.dashboard.DashboardState.update_runs>` (live run states:
  the in-process processor every 0.25 s, a remote processor's ``runs``, OTLP ingest);
* an accepted ``agent_execution_completed`` (its final totals), on the state that received it;
* the server's one-second timer (``emit_metrics_if_changed``): duration budgets and agent windows.

So a crossing is published within about a second of the span that made it ending. Each crossing
publishes one ``error_occurred`` (``BudgetExceeded``); a run budget's crossing also flags the run
(``flag_run(kind="budget")``, what ``stop_on_budget`` acts on), marks it in its run state
(``"over_budget": [kinds...]``, an empty list for every other open run) and counts it in its agent's
``over_budget_runs`` (``GET /api/agents``, over the usage window, since this server started).

In a cluster, the replica that received a run's progress or completion is the one that counts it:
each crossing is published once, through the cluster's sequencer, like any event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from otel_dashboard.model.budget_tracker import BudgetCrossing, BudgetTracker
from otel_dashboard.model.events import DashboardEvent, EventType
from otel_dashboard.model.guardrails import Budget, Guardrails, as_guardrails
from otel_dashboard.state.runs import ENDED

if TYPE_CHECKING:
    import threading

    from otel_dashboard.state.derived import DerivedState
    from otel_dashboard.state.runs import OpenRuns

__all__ = ["StateBudgets"]

logger = logging.getLogger(__name__)

_COMPLETED = EventType.AGENT_EXECUTION_COMPLETED


class StateBudgets:
    """Budgets on the state (a mixin of :class:`~otel_dashboard.state.dashboard.DashboardState`)."""

    if TYPE_CHECKING:  # provided by DashboardState
        guardrails: Guardrails
        _lock: threading.RLock
        _runs: OpenRuns
        _derived: DerivedState
        def publish(self, event: DashboardEvent) -> DashboardEvent: ...
        def _tell_run_subscribers(self, taken: list[dict[str, Any]]) -> None: ...
        def flag_run(self, run_id: str, *, reason: str, kind: str) -> bool: ...

    _budget_tracker: BudgetTracker | None = None
    _budget_window_seconds: int = 3600

    def set_guardrails(self, guardrails: Guardrails | Sequence[Budget] | None) -> None:
        """Use these budgets (and, given a :class:`Guardrails`, these loop thresholds) from now on.

        What the old budgets had counted is forgotten: the new ones count from now. Thread-safe.

        Raises:
            GuardrailsConfigError: a bad budget (its setting named).
        """
        checked = as_guardrails(guardrails, loops=getattr(self, "guardrails", Guardrails()).loops)
        tracker = (BudgetTracker(checked.budgets, default_window_seconds=self._budget_window_seconds)
                   if checked.budgets else None)
        with self._lock:
            self.guardrails = checked
            self._budget_tracker = tracker

    def budget_counters(self) -> dict[str, int]:
        """The tracker's counters (``budget_crossings``, ...); zeros without budgets."""
        with self._lock:
            tracker = self._budget_tracker
            if tracker is None:
                return {"budget_crossings": 0, "budget_evicted_runs": 0, "budget_evicted_keys": 0,
                        "budget_open_runs": 0}
            return tracker.counters()

    # ------------------------------------------------------------------ fed by the state (lock held)
    def _budgets_on_runs(self, taken: list[dict[str, Any]]) -> list[BudgetCrossing]:
        """Live run states just taken into the open runs: their crossings (publish them with
        :meth:`_publish_crossings` after the run subscribers); sets each entry's ``over_budget``."""
        tracker = self._budget_tracker
        crossings: list[BudgetCrossing] = []
        if tracker is not None:
            try:
                crossings = tracker.observe(taken, time.time())
            except Exception:  # the progress itself must still be taken and shown
                logger.exception("checking budgets on %d run states failed", len(taken))
                tracker = None
        for entry in taken:
            if entry.get("status") != ENDED:  # a run given up is a marker that tells pages to drop it
                entry["over_budget"] = tracker.over_budget(entry["run_id"]) if tracker is not None else []
        return crossings

    def _budgets_on_event(self, event: DashboardEvent) -> None:
        """An accepted event: a completion's final totals may cross a budget."""
        tracker = self._budget_tracker
        if tracker is None or event.event_type is not _COMPLETED:
            return
        try:
            crossings = tracker.complete(event.data, timestamp=event.timestamp, trace_id=event.trace_id,
                                         now=time.time())
            if crossings:
                self._publish_crossings(crossings, refresh=False)
        except Exception:  # publishing must never fail on a budget
            logger.exception("checking budgets on a completion failed")

    def _budgets_tick(self) -> None:
        """The clock: duration budgets of open runs, agent windows (the server calls it each second)."""
        tracker = self._budget_tracker
        if tracker is None or not tracker.clock_work:
            return
        try:
            with self._lock:
                crossings = tracker.tick(time.time())
                if crossings:
                    self._publish_crossings(crossings, refresh=True)
        except Exception:
            logger.exception("checking budgets on the clock failed")

    def _publish_crossings(self, crossings: list[BudgetCrossing], *, refresh: bool) -> None:
        """Publish each crossing's event; flag, mark and count the runs that crossed a run budget.
        With ``refresh``, the open runs marked get a new run state (the pages redraw them)."""
        marked: list[str] = []
        for crossing in crossings:
            event = self.publish(crossing.event())
            if crossing.budget.scope != "run":
                continue
            try:
                self.flag_run(crossing.run_id, reason=event.data["error_message"], kind="budget")
            except Exception:  # the flags are another part's: a failure there must not lose the event
                logger.exception("flagging run %s over budget failed", crossing.run_id)
            if crossing.first_for_run:
                stats = self._derived.agent_stats
                if stats is not None:
                    stats.record_over_budget(event.data, event.timestamp)
            marked.append(crossing.run_id)
        if refresh and marked:
            self._refresh_over_budget(marked)

    def _refresh_over_budget(self, run_ids: list[str]) -> None:
        tracker = self._budget_tracker
        if tracker is None:
            return
        entries = [entry for entry in self._runs.find(run_ids) if entry.get("status") != ENDED]
        if not entries:
            return
        taken = self._runs.update([{**entry, "over_budget": tracker.over_budget(entry["run_id"])}
                                   for entry in entries])
        self._tell_run_subscribers(taken)
