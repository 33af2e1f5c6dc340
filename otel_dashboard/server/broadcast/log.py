"""The shared log of serialized events, and each client's cursor into it.

Each event is serialized once (``event.to_json_bytes()``) and appended to one append-only log with a
base offset; entries are numbered by absolute position. A client is a cursor into it: the position of
the next entry it has not been sent. Appending is O(1) whatever the number of clients; the log is
trimmed behind the slowest client, and no client may lag more than ``client_queue_size`` entries (the
slow-client policy, :mod:`.slow`), so that bounds it. Everything here runs on the event loop.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING, Any

from otel_dashboard.model.events import DashboardEvent
from otel_dashboard.model.filters import event_matches
from otel_dashboard.server.broadcast.frames import (
    EVENTS_PREFIX,
    EVENTS_SUFFIX,
    MAX_FRAME_BYTES,
    MAX_FRAME_EVENTS,
    Frame,
)

if TYPE_CHECKING:
    from otel_dashboard.server.broadcast.clients import Client

__all__ = ["EventLog", "Lost"]

# The log is trimmed behind the slowest client once this many entries are dead (or all of them).
_TRIM_CHUNK = 256


class Lost:
    """A run of events dropped in the thread hand-off: kept in the hand-off deque in their place,
    then in the log as a marker entry, which each client is told of as a ``gap``.

    Args:
        seq: the first lost event's ``seq``.
    """

    __slots__ = ("first", "last")

    def __init__(self, seq: int) -> None:
        self.first = seq
        self.last = seq


class EventLog:
    """The log: parallel lists, entry ``i`` at absolute position ``base + i``.

    A payload of None marks a hand-off loss (its item is the :class:`Lost`); seqs ascend (the loss
    marker carries its last seq). Frames built from it are cached until :meth:`forget_frames`.
    """

    def __init__(self) -> None:
        self.base = 0
        self.payloads: list[bytes | None] = []
        self.items: list[DashboardEvent | Lost] = []
        self.seqs: list[int] = []
        self._frames: dict[tuple[int, int, Any], Frame] = {}

    @property
    def end(self) -> int:
        """The position after the last entry (where a client that is up to date stands)."""
        return self.base + len(self.payloads)

    def append(self, event: DashboardEvent, seq: int) -> None:
        """Serialize ``event`` (numbered ``seq``) once and append it."""
        self.payloads.append(event.to_json_bytes())
        self.items.append(event)
        self.seqs.append(seq)

    def append_lost(self, lost: Lost) -> None:
        """Append the marker of a run of events lost in the hand-off."""
        self.payloads.append(None)
        self.items.append(lost)
        self.seqs.append(lost.last)

    def trim(self, lowest: int) -> None:
        """Forget the entries before ``lowest`` (no client will read them), in chunks."""
        dead = lowest - self.base
        if dead <= 0 or (dead < _TRIM_CHUNK and dead < len(self.payloads)):
            return
        del self.payloads[:dead]
        del self.items[:dead]
        del self.seqs[:dead]
        self.base = lowest

    def forget_frames(self) -> None:
        """Drop the frame cache (once a pass has written them, the transports hold the bytes)."""
        self._frames.clear()

    def lag(self, client: Client) -> int:
        """Entries (events and loss markers) not yet sent to ``client``."""
        return max(0, self.end - client.cursor)

    def frame(self, start: int, stop: int, client: Client) -> Frame:
        """The "events" message of the log from ``start`` for ``client``'s filter (cached).

        It ends at ``stop``, at a loss marker, or at the frame caps, whichever comes first.
        """
        key = (start, stop, client.filter_key)
        frame = self._frames.get(key)
        if frame is not None:
            return frame
        payloads = self.payloads
        base = self.base
        i = start - base
        hi = stop - base
        size = 0
        query = client.filter
        if query is None:
            j = i
            while j < hi and j - i < MAX_FRAME_EVENTS and size < MAX_FRAME_BYTES:
                payload = payloads[j]
                if payload is None:
                    break
                size += len(payload) + 1
                j += 1
            parts = payloads[i:j]
        else:
            items = self.items
            parts = []
            j = i
            while j < hi and len(parts) < MAX_FRAME_EVENTS and size < MAX_FRAME_BYTES:
                payload = payloads[j]
                if payload is None:
                    break
                if event_matches(query, items[j]):  # type: ignore[arg-type]
                    parts.append(payload)
                    size += len(payload) + 1
                j += 1
        data = EVENTS_PREFIX + b",".join(parts) + EVENTS_SUFFIX if parts else None  # type: ignore[arg-type]
        frame = self._frames[key] = Frame(base + j, len(parts), data)
        return frame

    def pending_events(self, client: Client, start: int, stop: int) -> list[int]:
        """The seqs of the events in ``[start, stop)`` that ``client`` would be sent."""
        base = self.base
        i, j = start - base, stop - base
        seqs = self.seqs[i:j]
        payloads = self.payloads[i:j]
        if client.filter is None and None not in payloads:
            return seqs
        query = client.filter
        return [
            seq for seq, payload, item in zip(seqs, payloads, self.items[i:j], strict=True)
            if payload is not None and seq > client.min_seq and event_matches(query, item)  # type: ignore[arg-type]
        ]

    def skip_seen(self, client: Client, stop: int) -> None:
        """Move ``client``'s cursor past the entries it must not get (seq <= min_seq)."""
        cursor = client.cursor
        base = self.base
        if cursor < base:  # cannot happen (the log is trimmed behind the slowest client); be safe
            cursor = client.cursor = base
        if cursor < stop and self.seqs[cursor - base] <= client.min_seq:
            client.cursor = base + bisect_right(self.seqs, client.min_seq, cursor - base, stop - base)
