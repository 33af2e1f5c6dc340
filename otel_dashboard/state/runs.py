"""The open runs: the live state of each agent run in progress, for ``run_progress`` and snapshots.

A run's live state is a plain JSON object (its fields are in ``docs/server.md``, "run_progress"),
made by the run tracker (in process) or received from a remote processor (``POST /api/events``).
:class:`OpenRuns` keeps the newest state of each open run, by ``run_id``:

* an update replaces the run's entry whole (entries are never changed in place, so a reader may
  keep one and serialize it later, without a lock);
* the table is bounded: past ``max_open_runs`` the least recently updated run is evicted (counted);
* a run leaves the table when the state accepts its ``agent_execution_completed`` event
  (:meth:`OpenRuns.complete`), and its id is remembered (bounded) so that progress arriving late
  for it (another thread, a remote sender's retry) cannot bring it back.

It is not thread-safe by itself: :class:`~otel_dashboard.state.dashboard.DashboardState` owns one
and guards it with its lock, the same hold in which it accepts events, so that a completion and
the progress of the same run can never interleave.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from otel_dashboard.model.events import json_dumps
from otel_dashboard.model.run_records import copy_run

__all__ = ["DEFAULT_MAX_COMPLETED_RUNS", "DEFAULT_MAX_OPEN_RUNS", "ENDED", "OpenRuns"]

DEFAULT_MAX_OPEN_RUNS = 1000
"""Open runs kept at most; the least recently updated is evicted first."""
DEFAULT_MAX_COMPLETED_RUNS = 10_000
"""Completed run ids remembered, so that late progress for them is ignored."""
ENDED = "ended"
"""The ``status`` of a run given up without a completion event (see :meth:`OpenRuns.update`)."""
_MAX_ENDED_RUNS = 1000


class OpenRuns:
    """The open runs by ``run_id``, least recently updated first; the completed ids, bounded.

    Args:
        max_open_runs: open runs kept at most; the least recently updated is evicted (and counted).
        max_completed_runs: completed run ids remembered at most (the oldest are forgotten first).
    """

    def __init__(
        self,
        *,
        max_open_runs: int = DEFAULT_MAX_OPEN_RUNS,
        max_completed_runs: int = DEFAULT_MAX_COMPLETED_RUNS,
    ) -> None:
        self.max_open_runs = max_open_runs
        self.max_completed_runs = max_completed_runs
        self._open: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._completed: OrderedDict[str, None] = OrderedDict()
        # Runs given up without a completion ("status": "ended": a run known only from received
        # spans turned out to be another span's), kept a while so the broadcaster still finds the
        # entry that tells the pages to drop them.
        self._ended: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.evicted = 0  # open runs pushed out by newer ones (the table was full)
        self.ignored = 0  # updates refused: the run had completed, or the update had no run_id

    def __len__(self) -> int:
        return len(self._open)

    def update(self, runs: Iterable[Any]) -> list[dict[str, Any]]:
        """Take the newest state of each of ``runs`` (upsert by ``run_id``).

        An entry with ``"status": "ended"`` closes its run as a completion does (the run, known only
        from received spans, turned out to be another span's) and is kept apart, for the broadcaster
        to tell the pages. An entry that is not a dict with a non-empty string ``run_id``, that JSON
        cannot carry (non-string keys, nested too deep), or whose run completed recently, is ignored
        (counted in :attr:`ignored`). Never raises for bad entries.

        Returns:
            The entries taken (copies: :func:`~otel_dashboard.model.run_records.copy_run`), in
            the order given; when one batch names a run twice, both are returned and the later one
            is the one kept.
        """
        taken: list[dict[str, Any]] = []
        table = self._open
        completed = self._completed
        for run in runs:
            run_id = run.get("run_id") if isinstance(run, dict) else None
            if not isinstance(run_id, str) or not run_id or run_id in completed:
                self.ignored += 1
                continue
            entry = copy_run(run)
            try:
                # Encoded here once (~1 us) so that one bad run can never break a snapshot or a
                # run_progress message later, on the loop, for every client.
                json_dumps(entry)
            except (TypeError, ValueError):  # orjson.JSONEncodeError is a TypeError
                self.ignored += 1
                continue
            if entry.get("status") == ENDED:
                self.complete(run_id)
                self._ended[run_id] = entry
                if len(self._ended) > _MAX_ENDED_RUNS:
                    self._ended.popitem(last=False)
                taken.append(entry)
                continue
            table[run_id] = entry
            table.move_to_end(run_id)
            taken.append(entry)
        while len(table) > self.max_open_runs:
            table.popitem(last=False)
            self.evicted += 1
        return taken

    def complete(self, run_id: Any) -> None:
        """The run ``run_id`` ended: drop it from the table and remember it (non-strings ignored)."""
        if not isinstance(run_id, str) or not run_id:
            return
        self._open.pop(run_id, None)
        completed = self._completed
        completed[run_id] = None
        completed.move_to_end(run_id)
        if len(completed) > self.max_completed_runs:
            completed.popitem(last=False)

    def is_completed(self, run_id: str) -> bool:
        """Whether ``run_id`` is among the completed runs remembered."""
        return run_id in self._completed

    def newest(self, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` most recently updated open runs, oldest-updated first (the entries
        themselves: treat them as read-only)."""
        if limit <= 0:
            return []
        table = self._open
        if len(table) <= limit:
            return list(table.values())
        values = list(table.values())
        return values[-limit:]

    def find(self, run_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The open runs among ``run_ids``, oldest-updated first (the entries themselves)."""
        table = self._open
        ended = self._ended
        run_ids = set(run_ids)
        given_up = [ended[run_id] for run_id in run_ids if run_id in ended]
        wanted = {run_id for run_id in run_ids if run_id in table}
        if len(wanted) <= 1:
            return given_up + [table[run_id] for run_id in wanted]
        # One walk of the table (at most max_open_runs) gives the order; no sort needed.
        return given_up + [entry for run_id, entry in table.items() if run_id in wanted]
