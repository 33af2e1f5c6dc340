"""Replay from the store: a ``resume`` pages through the history, then the live stream continues.

:func:`start_replay` fixes where the replay ends (the newest stored event, or the ``until_seq`` the
client asked for) and raises the client's ``min_seq`` to it, so the events up to there that are
still in the log or the hand-off are not sent twice. :func:`replay_page` is one step, called by
whoever writes to the client (one page per flush pass for a direct client, so a long replay never
holds the loop; in a loop for a task writer).

Every store read here is the store's bounded async search (:func:`fetch_page`, off the event loop,
the client's filter applied by the store: in SQL for a database). A page is fetched before the step
that sends it (:func:`needs_page`), by a task for a direct client and in line by a task writer.

One ``resume`` message walks at most ``max_scanned_rows`` stored events in all: a filter that
matches little cannot make one message walk the whole history. When the budget runs out before the
end, ``resumed`` says ``"complete": false`` and where to continue (``next_after_seq``; the client
sends ``{"type": "resume", "after_seq": next_after_seq, "until_seq": seq}``). A history that cannot
be read ends the replay the same way, with an ``error``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otel_dashboard.model.events import json_dumps
from otel_dashboard.server.broadcast.control import drop_gap_notices, gap_message
from otel_dashboard.server.broadcast.frames import (
    EVENTS_PREFIX,
    MAX_FRAME_BYTES,
    MAX_FRAME_EVENTS,
    REPLAY_SUFFIX,
)
from otel_dashboard.store.base import EventQuery, SearchPage, StoreError

if TYPE_CHECKING:
    from otel_dashboard.server.broadcast.clients import Client
    from otel_dashboard.state.dashboard import DashboardState

__all__ = ["DEFAULT_MAX_SCANNED_ROWS", "Replay", "fetch_page", "needs_page", "replay_page", "start_replay"]

DEFAULT_MAX_SCANNED_ROWS = 100_000
"""Stored events one ``resume`` message walks at most (``ServerOptions.max_scanned_rows``)."""


class Replay:
    """Where a client's replay is: it covers the events after ``after`` up to ``until``.

    Args:
        after: the client's ``after_seq``.
        until: the newest stored ``seq`` when the resume came (or the client's ``until_seq``).
        query: the client's filter when the resume came (None: every event); the whole replay
            uses it.
        max_scanned_rows: stored events the whole replay may walk.
    """

    __slots__ = ("_busy", "after", "budget", "count", "cursor", "error", "page", "query", "until")

    def __init__(
        self, after: int, until: int, query: EventQuery | None, max_scanned_rows: int,
        previous: Replay | None = None,
    ) -> None:
        self.after = after
        self.cursor = after  # the last seq covered so far
        self.until = until
        self.query = query
        self.budget = max_scanned_rows  # seqs the replay may still walk
        self.count = 0  # events sent (after the filter)
        self.page: SearchPage | None = None  # the next page after cursor, once fetched
        self.error = False  # the history could not be read: the replay ends, incomplete
        # Shared with the replay this one replaces: a client's replays have one store read in
        # flight at a time, so a client that sends resume after resume queues one search, not one
        # per message.
        self._busy: list[bool] = previous._busy if previous is not None else [False]

    @property
    def fetching(self) -> bool:
        """Whether a page is being read for this client (by this replay or the one it replaced)."""
        return self._busy[0]

    @fetching.setter
    def fetching(self, value: bool) -> None:
        self._busy[0] = value


def start_replay(
    state: DashboardState, client: Client, after: int, *, until: int | None = None,
    max_scanned_rows: int = DEFAULT_MAX_SCANNED_ROWS,
) -> None:
    """Set ``client`` up to replay the stored events after ``after`` (up to ``until``, if given),
    then continue live."""
    # Replay up to the newest STORED event; anything newer arrives live. Events <= end still in
    # the log or waiting in the hand-off are skipped for this client via min_seq.
    # The state's last seq: every accepted event is in the store (or its writer's queue) by then,
    # and reading it touches no store on the loop.
    end = state.last_seq if until is None else min(until, state.last_seq)
    client.min_seq = max(client.min_seq, end)
    # Stale gap notices are covered by the replay; other control messages follow it.
    drop_gap_notices(client)
    # after >= end: nothing to replay, just "resumed".
    client.replay = Replay(after, end, client.filter, max_scanned_rows, client.replay)


def needs_page(replay: Replay) -> bool:
    """Whether :func:`replay_page` needs :func:`fetch_page` first."""
    return replay.page is None and replay.cursor < replay.until and replay.budget > 0 and not replay.error


async def fetch_page(state: DashboardState, replay: Replay) -> None:
    """Read the next page of the replay from the store, off the event loop: the client's matches
    after the cursor, at most a frame's worth, walking at most what is left of the budget."""
    f = replay.query
    query = EventQuery(after_seq=replay.cursor, until_seq=replay.until,
                       event_types=f.event_types if f is not None else None,
                       severities=f.severities if f is not None else None,
                       agents=f.agents if f is not None else None,
                       services=f.services if f is not None else None)
    try:
        replay.page = await state.store.search_async(
            query, MAX_FRAME_EVENTS, max_scanned_rows=replay.budget, max_bytes=MAX_FRAME_BYTES)
    except StoreError:  # counted and logged by the store
        replay.error = True


def replay_page(state: DashboardState, client: Client, replay: Replay) -> bytes | None:
    """One step of a resume: a gap if history lost events, one replay message, or "resumed".

    The page is the one :func:`fetch_page` read (used once: the next step fetches again from the
    new cursor).

    Returns:
        The message to send (the payload), or None when the page held nothing for the filter.
    """
    page = replay.page
    if replay.cursor >= replay.until or replay.error or (page is None and replay.budget <= 0):
        return _resumed(client, replay)
    if page is None:  # pragma: no cover - needs_page() said to fetch first
        return None
    first = page.first_seq
    if first is None or first > replay.cursor + 1:
        # The seqs before the first one held are not in the history: say so (the page stays for
        # the next step, unless nothing at all is held up to the end).
        to = replay.until if first is None else min(first - 1, replay.until)
        start = replay.cursor + 1
        # Inside a hole left by an unclean restart the events, if any existed, died with the old
        # server; anywhere else retention trimmed them.
        in_hole = any(a <= start and to <= b for a, b in state.store.restart_holes())
        replay.cursor = to
        if first is None:
            replay.page = None
        return gap_message(start, to, "restart" if in_hole else "history")
    replay.page = None
    replay.budget -= page.scanned
    replay.cursor = replay.until if page.complete else min(page.resume_seq, replay.until)
    if not page.events:
        return None
    replay.count += len(page.events)
    client.sent_events += len(page.events)
    return EVENTS_PREFIX + b",".join(e.to_json_bytes() for e in page.events) + REPLAY_SUFFIX


def _resumed(client: Client, replay: Replay) -> bytes:
    """The ``resumed`` message that ends ``replay`` (complete, or where to continue)."""
    if client.replay is replay:
        client.replay = None
    complete = replay.cursor >= replay.until
    message: dict[str, Any] = {
        "type": "resumed", "after_seq": replay.after, "seq": replay.until, "replayed": replay.count,
        "complete": complete,
    }
    if not complete:
        message["next_after_seq"] = replay.cursor
        if replay.error:
            message["error"] = "the event history cannot be read now; resume again later"
    return json_dumps(message)
