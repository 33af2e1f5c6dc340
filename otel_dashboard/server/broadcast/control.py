"""Control messages: what a client is sent besides events, kept in order with its events.

``subscribed``, ``pong``, ``error``, ``gap``, ``resumed`` and provisional events wait in a small
per-client deque, each at the log position it was sent at, and go out after the log entries before
that position (the flush pass and the task writers read the deque; see :mod:`.flush`). A client that
never gets one keeps ``controls`` None.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from otel_dashboard.model.events import json_dumps

if TYPE_CHECKING:
    from otel_dashboard.server.broadcast.clients import Client

__all__ = ["CONTROL", "GAP", "add_control", "drop_gap_notices", "gap_message"]

# Kinds of control message: a gap notice is dropped by a resume (the replay covers it), the others
# follow the replay.
CONTROL = 0
GAP = -1


def gap_message(first: int, last: int, reason: str) -> bytes:
    """``{"type": "gap", ...}``: events ``first``..``last`` will not come in the stream, and why."""
    return json_dumps({"type": "gap", "from": first, "to": last, "reason": reason})


def add_control(client: Client, position: int, kind: int, data: bytes) -> None:
    """Queue ``data`` for ``client`` after the log entries before ``position``."""
    controls = client.controls
    if controls is None:
        controls = client.controls = deque()
    if not controls or controls[-1][0] <= position:
        controls.append((position, kind, data))
        return
    # An overflow's gap lands behind later messages: keep the deque in position order.
    items = sorted([*controls, (position, kind, data)], key=lambda item: item[0])
    controls.clear()
    controls.extend(items)


def drop_gap_notices(client: Client) -> None:
    """Forget ``client``'s queued gap notices (a resume replays what they announced)."""
    controls = client.controls
    if controls:
        kept = [item for item in controls if item[1] != GAP]
        client.controls = deque(kept) if kept else None
