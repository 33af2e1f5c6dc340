"""Runs flagged to stop: a budget crossed, or "Stop run" on the page (issue 18, ``docs/guardrails.md``).

A flag says "this run should stop". The state keeps it (bounded, in memory: a restart forgets the
flags) and shows it on the run's live state as ``"stop": {"reason", "kind"}`` (``null`` for a run not
flagged), in ``run_progress``, snapshots and ``GET /api/runs``. Acting on it is the agent's side: the
span processor asks :meth:`RunFlags.run_flag` before each decorated step of an opted-in run
(:mod:`instrumentation.guard`), and a remote processor learns the flags of its runs from the answers
of ``POST /api/events`` (``"stop_runs"``, :meth:`RunFlags.stop_runs_among`).

Who flags: the budget tracker when a run crosses a run budget (``kind="budget"``) and
``POST /api/runs/{run_id}/stop`` (``kind="user"``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from otel_dashboard.model.events import format_timestamp

__all__ = ["MAX_FLAGGED_RUNS", "MAX_STOP_REASON_CHARS", "STOP_KINDS", "RunFlags"]

MAX_FLAGGED_RUNS = 10_000
"""Flags kept at most; past it the oldest flag is forgotten first."""
MAX_STOP_REASON_CHARS = 500
"""A flag's reason is cut to this many characters."""
STOP_KINDS = ("budget", "user")
_MAX_RUN_ID_CHARS = 64
_MAX_STOP_RUNS_ANSWER = 1000

_CREATE_LOCK = threading.Lock()


class _Flags:
    """The flags themselves: a dict in flagging order (oldest first), written under a lock and read
    without one (a dict lookup is atomic): the agents' threads read it before every step."""

    __slots__ = ("announcing", "by_run", "lock")

    def __init__(self) -> None:
        self.by_run: dict[str, dict[str, str]] = {}
        self.lock = threading.Lock()
        self.announcing = threading.local()


class RunFlags:
    """The flagged runs of the state (a mixin of :class:`~otel_dashboard.state.dashboard.DashboardState`).

    Its storage is made on first use, so the state's constructor needs nothing from it.
    """

    def _run_flags(self) -> _Flags:
        try:
            return self.__dict__["_run_flags_store"]
        except KeyError:
            with _CREATE_LOCK:
                flags = self.__dict__.get("_run_flags_store")
                if flags is None:
                    flags = self.__dict__["_run_flags_store"] = _Flags()
                return flags

    def flag_run(self, run_id: str, *, reason: str, kind: str) -> bool:
        """Flag ``run_id`` (``kind``: ``"budget"`` or ``"user"``); True when it was not flagged yet.

        Thread-safe, bounded (:data:`MAX_FLAGGED_RUNS`, oldest forgotten first); never raises for odd
        values: a ``run_id`` that is not a non-empty string of at most 64 characters is not flagged
        (False), an unknown ``kind`` is taken as ``"user"``, the reason is made a string and cut to
        :data:`MAX_STOP_REASON_CHARS`. When the run is open, its live state is updated at once (its
        ``"stop"`` field), so the pages show the flag without waiting for the run's next progress.
        A run flagged already keeps its first flag (False).
        """
        if not isinstance(run_id, str) or not run_id or len(run_id) > _MAX_RUN_ID_CHARS:
            return False
        flags = self._run_flags()
        flag = {
            "reason": (reason if isinstance(reason, str) else str(reason))[:MAX_STOP_REASON_CHARS],
            "kind": kind if kind in STOP_KINDS else "user",
            "at": format_timestamp(),
        }
        with flags.lock:
            if run_id in flags.by_run:
                return False
            flags.by_run[run_id] = flag
            while len(flags.by_run) > MAX_FLAGGED_RUNS:
                del flags.by_run[next(iter(flags.by_run))]
        self._announce_stop(run_id, flags)
        return True

    def run_flag(self, run_id: str) -> dict[str, str] | None:
        """``{"reason", "kind", "at"}`` of a flagged run, None otherwise. Lock-free (the agents'
        threads call it before each step); the dict is shared: read it, never change it."""
        flags = self.__dict__.get("_run_flags_store")
        if flags is None or not isinstance(run_id, str):
            return None
        return flags.by_run.get(run_id)

    def has_run_flags(self) -> bool:
        """Whether any run is flagged (a lock-free read)."""
        flags = self.__dict__.get("_run_flags_store")
        return flags is not None and bool(flags.by_run)

    def stop_runs_among(self, run_ids: Iterable[Any]) -> list[dict[str, str]]:
        """The flagged runs among ``run_ids`` as ``[{"run_id", "reason", "kind"}]`` (at most 1000;
        non-strings ignored): the ``"stop_runs"`` of a ``POST /api/events`` answer."""
        flags = self.__dict__.get("_run_flags_store")
        if flags is None or not flags.by_run:
            return []
        by_run = flags.by_run
        out: list[dict[str, str]] = []
        for run_id in dict.fromkeys(run_ids):
            flag = by_run.get(run_id) if isinstance(run_id, str) else None
            if flag is not None:
                out.append({"run_id": run_id, "reason": flag["reason"], "kind": flag["kind"]})
                if len(out) >= _MAX_STOP_RUNS_ANSWER:
                    break
        return out

    def with_stop_fields(self, runs: list[Any]) -> list[Any]:
        """``runs`` (live run states on their way into the state) each with its ``"stop"`` field:
        ``{"reason", "kind"}`` of a flagged run, else None. Dicts are copied, never changed in place;
        an ``"ended"`` entry and anything else pass through unchanged. Called by ``update_runs``."""
        flags = self.__dict__.get("_run_flags_store")
        by_run = flags.by_run if flags is not None else {}
        out: list[Any] = []
        for run in runs:
            if type(run) is not dict or run.get("status") == "ended":  # a given-up run: its id alone
                out.append(run)
                continue
            run_id = run.get("run_id")
            flag = by_run.get(run_id) if by_run and isinstance(run_id, str) else None
            out.append({**run, "stop": {"reason": flag["reason"], "kind": flag["kind"]} if flag else None})
        return out

    def _announce_stop(self, run_id: str, flags: _Flags) -> None:
        """Put the flag on the open run's live state now (through ``update_runs``, which adds the
        ``"stop"`` field). Not again from inside such an update on this thread: the budget tracker
        may flag a run while the state takes that run's own progress, which carries the flag then."""
        if getattr(flags.announcing, "active", False):
            return
        find = getattr(self, "find_open_runs", None)
        update = getattr(self, "update_runs", None)
        if not callable(find) or not callable(update):
            return
        flags.announcing.active = True
        try:
            open_runs = [run for run in find([run_id]) if run.get("status") != "ended"]
            if open_runs:
                update([dict(open_runs[-1])])
        except Exception:  # flagging must never fail on the way the pages hear of it
            pass
        finally:
            flags.announcing.active = False
