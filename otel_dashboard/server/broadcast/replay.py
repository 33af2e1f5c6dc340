"""Replay from the store: a ``resume`` pages through the history, then the live stream continues.

:func:`start_replay` fixes where the replay ends (the newest stored event) and raises the client's
``min_seq`` to it, so the events up to there that are still in the log or the hand-off are not sent
twice. :func:`replay_page` is one step, called by whoever writes to the client (one page per flush
pass for a direct client, so a long replay never holds the loop; in a loop for a task writer).

Every store read here is the store's async read (:func:`fetch_page`, off the event loop): a page
is fetched before the step that sends it (:func:`needs_page`), by a task for a direct client and
in line by a task writer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_dashboard.model.events import DashboardEvent, json_dumps
from otel_dashboard.model.filters import event_matches
from otel_dashboard.server.broadcast.control import drop_gap_notices, gap_message
from otel_dashboard.server.broadcast.frames import (
    EVENTS_PREFIX,
    MAX_FRAME_BYTES,
    MAX_FRAME_EVENTS,
    REPLAY_SUFFIX,
)

if TYPE_CHECKING:
    from otel_dashboard.server.broadcast.clients import Client
    from otel_dashboard.state.dashboard import DashboardState

__all__ = ["Replay", "fetch_page", "needs_page", "replay_page", "start_replay"]


class Replay:
    """Where a client's replay is: it covers the events after ``after`` up to ``until``.

    Args:
        after: the client's ``after_seq``.
        until: the newest stored ``seq`` when the resume came.
    """

    __slots__ = ("after", "count", "cursor", "fetching", "page", "until")

    def __init__(self, after: int, until: int) -> None:
        self.after = after
        self.cursor = after  # the last seq covered so far
        self.until = until
        self.count = 0  # events sent (after the filter)
        self.page: list[DashboardEvent] | None = None  # the events after cursor, once fetched
        self.fetching = False


def start_replay(state: DashboardState, client: Client, after: int) -> None:
    """Set ``client`` up to replay the stored events after ``after``, then continue live."""
    # Replay up to the newest STORED event; anything newer arrives live. Events <= until still in
    # the log or waiting in the hand-off are skipped for this client via min_seq.
    # The state's last seq: every accepted event is in the store (or its writer's queue) by then,
    # and reading it touches no store on the loop.
    until = state.last_seq
    client.min_seq = max(client.min_seq, until)
    # Stale gap notices are covered by the replay; other control messages follow it.
    drop_gap_notices(client)
    client.replay = Replay(after, until)  # after >= until: nothing to replay, just "resumed"


def needs_page(replay: Replay) -> bool:
    """Whether :func:`replay_page` needs :func:`fetch_page` first."""
    return replay.page is None and replay.cursor < replay.until


async def fetch_page(state: DashboardState, replay: Replay) -> None:
    """Read the next page of the replay from the store, off the event loop."""
    replay.page = await state.get_events_after_async(replay.cursor, MAX_FRAME_EVENTS)


def replay_page(state: DashboardState, client: Client, replay: Replay) -> bytes | None:
    """One page of a resume: a gap if history lost events, one replay message, or "resumed".

    The page is the one :func:`fetch_page` read (used once: the next step fetches again from the
    new cursor).

    Returns:
        The message to send (the payload), or None when the page held nothing for the filter.
    """
    if replay.cursor >= replay.until:
        if client.replay is replay:
            client.replay = None
        return json_dumps({
            "type": "resumed", "after_seq": replay.after, "seq": replay.until, "replayed": replay.count,
        })
    page, replay.page = replay.page or [], None
    if not page or (page[0].seq or 0) > replay.cursor + 1:
        to = replay.until if not page else min((page[0].seq or 0) - 1, replay.until)
        first = replay.cursor + 1
        # Inside a hole left by an unclean restart the events, if any existed, died with the old
        # server; anywhere else retention trimmed them.
        in_hole = any(a <= first and to <= b for a, b in state.store.restart_holes())
        replay.cursor = to
        return gap_message(first, to, "restart" if in_hole else "history")
    parts: list[bytes] = []
    size = 0
    for event in page:
        seq = event.seq or 0
        if seq > replay.until:
            replay.cursor = replay.until
            break
        replay.cursor = seq
        if event_matches(client.filter, event):
            payload = event.to_json_bytes()
            parts.append(payload)
            size += len(payload) + 1
            if size >= MAX_FRAME_BYTES:
                break
    if not parts:
        return None
    replay.count += len(parts)
    client.sent_events += len(parts)
    return EVENTS_PREFIX + b",".join(parts) + REPLAY_SUFFIX
