"""Run progress: the open runs' live state to the clients, as ``{"type": "run_progress", "runs": [...]}``.

Progress is not an event: it has no ``seq``, is never in the log (so never in a resume's replay or
the history), and only the newest state of a run matters. So it takes a path of its own, beside the
event fan-out, which it does not touch (no work per event):

* The state's run subscriber (:meth:`RunProgress.submit`, any thread, under the state's lock) only
  notes the run ids in a bounded set and schedules ONE pass on the loop (``call_soon_threadsafe``,
  only when none is pending): updates between two passes coalesce, latest wins.
* The pass reads those runs back from the state (``DashboardState.find_open_runs``): a run the
  state has closed meanwhile is not sent, so progress never follows its run's
  ``agent_execution_completed`` in a client's stream (the completion closes the run before the
  event reaches the log).
* A client that is up to date (nothing of the log or of its control messages waiting, its socket
  taking writes) is sent the runs that pass its filter at once, one message per
  :data:`MAX_RUNS_PER_MESSAGE` runs, built once per filter. A client that lags (a full socket, a
  replay, events not yet sent, its snapshot not yet out) is owed the run ids instead (a bounded set per
  client; past it: "all open runs"), and a retry every :data:`RETRY_SECONDS` sends it their then
  newest state once it has caught up. Progress therefore never queues behind a slow client, never
  counts in its lag and never gets a client closed; a lagging client sees fewer, newer states.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from otel_dashboard.model.events import json_dumps
from otel_dashboard.server.broadcast.clients import Client, ClientRegistry
from otel_dashboard.server.broadcast.control import CONTROL
from otel_dashboard.server.broadcast.flush import Flusher
from otel_dashboard.server.broadcast.log import EventLog
from otel_dashboard.server.broadcast.transport import is_full
from otel_dashboard.state.dashboard import DashboardState

__all__ = ["MAX_PENDING_RUNS", "MAX_RUNS_PER_MESSAGE", "RETRY_SECONDS", "RunProgress", "run_matches"]

logger = logging.getLogger(__name__)

MAX_RUNS_PER_MESSAGE = 100
"""Runs in one ``run_progress`` message at most (a run is ~1 KB: messages stay ~100 KB)."""
MAX_PENDING_RUNS = 10_000
"""Run ids waiting for the next pass, and owed to one lagging client, at most. Past it a pass is
long overdue (the loop is stuck): new ids are dropped (counted); a client is owed every open run."""
RETRY_SECONDS = 0.2
"""How often the clients owed progress are retried (well within the 1 s a run's progress may take)."""

# What a lagging client is owed: the ids of the runs updated since it was last sent progress, or
# None for every open run (the set overflowed).
_Debt = set[str] | None
_Message = tuple[bytes, list[str]]  # a run_progress message and the ids of its runs
_MAX_OPEN_RUNS_READ = 1000  # "every open run": the state's default table size


def run_matches(agents: frozenset[str] | None, run: dict[str, Any]) -> bool:
    """Whether ``run`` passes a client's agent filter (None passes all), as events do: by
    ``agent_name`` or ``agent_id``."""
    if agents is None:
        return True
    try:
        return run.get("agent_name") in agents or run.get("agent_id") in agents
    except TypeError:  # an unhashable name never matches a filter
        return False


def _agents_of(client: Client) -> frozenset[str] | None:
    query = client.filter
    return None if query is None else query.agents


class RunProgress:
    """The ``run_progress`` path of one broadcaster.

    Args:
        state: the state whose open runs are sent (the pass reads them back from it).
        clients: the connected clients.
        log: the shared event log (whether a client is up to date).
        flusher: sends a message to one client in order with its events.
    """

    def __init__(
        self, state: DashboardState, clients: ClientRegistry, log: EventLog, flusher: Flusher
    ) -> None:
        self._state = state
        self._clients = clients
        self._log = log
        self._flusher = flusher
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._lock = threading.Lock()  # guards _pending and _scheduled (submit runs in any thread)
        self._pending: set[str] = set()
        self._scheduled = False
        self._owed: dict[Client, _Debt] = {}  # loop thread only
        self._retry: asyncio.TimerHandle | None = None
        self.sent_messages = 0  # run_progress messages written or queued to clients
        self.deferred = 0  # times a lagging client was owed progress instead of sent it
        self.dropped_runs = 0  # run ids dropped because MAX_PENDING_RUNS were waiting

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand progress to ``loop`` (call on the loop's thread)."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def clear(self) -> None:
        """Forget everything waiting (the server is being torn down)."""
        with self._lock:
            self._pending.clear()
        self._owed.clear()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def forget(self, client: Client) -> None:
        """``client`` is gone: it is owed nothing."""
        self._owed.pop(client, None)

    def stats(self) -> dict[str, int]:
        """Counters for ``/stats`` (``run_progress``)."""
        return {
            "sent_messages": self.sent_messages,
            "deferred": self.deferred,
            "dropped_runs": self.dropped_runs,
            "clients_owed": len(self._owed),
        }

    # ------------------------------------------------------------ any thread
    def submit(self, runs: list[dict[str, Any]]) -> None:
        """The state's run subscriber: note the runs' ids, schedule one pass if none is pending."""
        loop = self._loop
        if loop is None:
            return
        with self._lock:
            pending = self._pending
            for run in runs:
                if len(pending) >= MAX_PENDING_RUNS:
                    self.dropped_runs += 1
                else:
                    pending.add(run["run_id"])
            if self._scheduled:
                return
            self._scheduled = True
        try:
            if threading.get_ident() == self._loop_thread:
                loop.call_soon(self._pass)
            else:
                loop.call_soon_threadsafe(self._pass)
        except RuntimeError:  # the loop is closed: we are being torn down
            self.clear()

    # ------------------------------------------------------------ the loop
    def _pass(self) -> None:
        with self._lock:
            ids, self._pending = self._pending, set()
            self._scheduled = False
        try:
            self._deliver(ids)
        except Exception:  # progress must never break the loop's other work
            logger.exception("sending run progress failed")
        if self._owed and self._retry is None and self._loop is not None:
            self._retry = self._loop.call_later(RETRY_SECONDS, self._retry_owed)

    def _retry_owed(self) -> None:
        self._retry = None
        self._pass()

    def _deliver(self, ids: set[str]) -> None:
        clients = self._clients.all
        owed = self._owed
        if not clients:
            owed.clear()
            return
        runs = self._state.find_open_runs(ids) if ids else []
        shared: dict[frozenset[str] | None, list[_Message]] = {}  # built once per agent filter
        for client in clients:
            if client.closing:
                owed.pop(client, None)
                continue
            is_owed = client in owed
            if not ids and not is_owed:
                continue
            if not self._ready(client):
                if ids:
                    self._owe(client, ids)
                    self.deferred += 1
                continue
            agents = _agents_of(client)
            if is_owed:
                messages = _messages(self._runs_for(ids, owed.pop(client)), agents)
            else:
                found = shared.get(agents)
                messages = found if found is not None else shared.setdefault(agents, _messages(runs, agents))
            self._send(client, messages)

    def _runs_for(self, ids: set[str], debt: _Debt) -> list[dict[str, Any]]:
        if debt is None:
            return self._state.get_open_runs(_MAX_OPEN_RUNS_READ)
        return self._state.find_open_runs(ids | debt)

    def _owe(self, client: Client, ids: set[str]) -> None:
        owed = self._owed
        if client in owed:
            debt = owed[client]
            if debt is None:
                return
            debt.update(ids)
            if len(debt) > MAX_PENDING_RUNS:
                owed[client] = None
        else:
            owed[client] = set(ids) if len(ids) <= MAX_PENDING_RUNS else None

    def _ready(self, client: Client) -> bool:
        """Whether nothing waits for ``client``: a message sent now goes out now, after all it was sent."""
        if (client.cursor < self._log.end or client.controls is not None or client.replay is not None
                or client.send_started is not None or client.ws.closed):
            return False
        if client.writer_task is not None:
            return True
        transport = client.transport
        return transport is not None and not transport.is_closing() and not is_full(transport)

    def _send(self, client: Client, messages: list[_Message]) -> None:
        send_control = self._flusher.send_control
        for index, (data, _) in enumerate(messages):
            if index and not self._ready(client):
                # Its socket filled up: the rest is owed (re-read, newest, on the retry).
                self._owe(client, {run_id for _, later in messages[index:] for run_id in later})
                self.deferred += 1
                return
            send_control(client, CONTROL, data)
            self.sent_messages += 1


def _messages(runs: list[dict[str, Any]], agents: frozenset[str] | None) -> list[_Message]:
    """The ``run_progress`` messages of ``runs`` that pass ``agents``, each of at most
    :data:`MAX_RUNS_PER_MESSAGE` runs."""
    if agents is not None:
        runs = [run for run in runs if run_matches(agents, run)]
    out = []
    for i in range(0, len(runs), MAX_RUNS_PER_MESSAGE):
        chunk = runs[i:i + MAX_RUNS_PER_MESSAGE]
        out.append((json_dumps({"type": "run_progress", "runs": chunk}), [run["run_id"] for run in chunk]))
    return out
