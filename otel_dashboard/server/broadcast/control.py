"""Control messages: what a client is sent besides events, kept in order with its events.

``subscribed``, ``pong``, ``error``, ``gap``, ``resumed`` and provisional events wait in a small
per-client deque, each at the log position it was sent at, and go out after the log entries before
that position (the flush pass and the task writers read the deque; see :mod:`.flush`). A client that
never gets one keeps ``controls`` None.

The deque's bytes are counted as they come and go, per client (``Client.control_bytes``) and for
every client of the broadcaster (:class:`QueuedBytes`): the slow-client policy caps both
(``max_client_queue_bytes``, ``max_total_queue_bytes``; see :mod:`.slow`). Everything that changes
the deque goes through the functions here, so the counts stay exact.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from otel_dashboard.model.events import json_dumps

if TYPE_CHECKING:
    from otel_dashboard.server.broadcast.clients import Client

__all__ = [
    "CONTROL",
    "GAP",
    "QueuedBytes",
    "add_control",
    "clear_controls",
    "drop_gap_notices",
    "gap_message",
    "pop_control",
]

# Kinds of control message: a gap notice is dropped by a resume (the replay covers it), the others
# follow the replay.
CONTROL = 0
GAP = -1


class QueuedBytes:
    """The bytes waiting in the control deques of every client of one broadcaster.

    ``transports`` is the sum of the clients' unsent transport bytes at the last watchdog tick (a
    transport's buffer changes without telling us; summing it per message would cost a walk over
    every client).
    """

    __slots__ = ("controls", "transports")

    def __init__(self) -> None:
        self.controls = 0
        self.transports = 0

    @property
    def total(self) -> int:
        """Control bytes now plus transport bytes at the last tick."""
        return self.controls + self.transports


def gap_message(first: int, last: int, reason: str) -> bytes:
    """``{"type": "gap", ...}``: events ``first``..``last`` will not come in the stream, and why."""
    return json_dumps({"type": "gap", "from": first, "to": last, "reason": reason})


def add_control(client: Client, position: int, kind: int, data: bytes) -> None:
    """Queue ``data`` for ``client`` after the log entries before ``position`` (and count its bytes)."""
    controls = client.controls
    if controls is None:
        controls = client.controls = deque()
    size = len(data)
    client.control_bytes += size
    client.queued.controls += size
    if not controls or controls[-1][0] <= position:
        controls.append((position, kind, data))
        return
    # An overflow's gap lands behind later messages: keep the deque in position order.
    items = sorted([*controls, (position, kind, data)], key=lambda item: item[0])
    controls.clear()
    controls.extend(items)


def pop_control(client: Client) -> bytes:
    """Take ``client``'s first control message off its (non-empty) deque."""
    controls = client.controls
    assert controls, "pop_control() on an empty deque"
    _, _, data = controls.popleft()
    if not controls:
        client.controls = None
    size = len(data)
    client.control_bytes -= size
    client.queued.controls -= size
    return data


def clear_controls(client: Client) -> None:
    """Forget every control message of ``client`` (it is closing or gone)."""
    client.controls = None
    client.queued.controls -= client.control_bytes
    client.control_bytes = 0


def drop_gap_notices(client: Client) -> None:
    """Forget ``client``'s queued gap notices (a resume replays what they announced)."""
    controls = client.controls
    if controls:
        kept = [item for item in controls if item[1] != GAP]
        client.controls = deque(kept) if kept else None
        size = sum(len(item[2]) for item in kept)
        client.queued.controls -= client.control_bytes - size
        client.control_bytes = size
