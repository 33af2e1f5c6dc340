"""The bytes the broadcaster sends: ``events`` messages and the RFC 6455 frames around them.

An ``events`` message is built from the events' serialized JSON (each event is serialized once, when
it enters the log) by joining them inside a fixed envelope, never by serializing a dict. A
:class:`Frame` is one such message over a range of the log, shared by every client at that range
with that filter, with its whole WebSocket frame built once for the clients written to directly.
"""

from __future__ import annotations

import struct

__all__ = [
    "EVENTS_PREFIX",
    "EVENTS_SUFFIX",
    "MAX_FRAME_BYTES",
    "MAX_FRAME_EVENTS",
    "PING_FRAME",
    "PROVISIONAL_PREFIX",
    "REPLAY_SUFFIX",
    "Frame",
    "text_frame",
]

# One "events" message carries at most this many events or (roughly) this many bytes.
MAX_FRAME_EVENTS = 1000
MAX_FRAME_BYTES = 1024 * 1024

EVENTS_PREFIX = b'{"type":"events","events":['
EVENTS_SUFFIX = b"]}"
REPLAY_SUFFIX = b'],"replay":true}'
PROVISIONAL_PREFIX = b'{"type":"events","provisional":true,"events":['

# An empty PING frame (FIN + PING, no mask): the heartbeat's.
PING_FRAME = b"\x89\x00"
# RFC 6455 server frame header (FIN + TEXT, no mask): 2, 4 or 10 bytes by payload length.
_TEXT_FIN = 0x81
_PACK_LEN1 = struct.Struct("!BB").pack
_PACK_LEN2 = struct.Struct("!BBH").pack
_PACK_LEN3 = struct.Struct("!BBQ").pack


def text_frame(payload: bytes) -> bytes:
    """``payload`` as one unmasked, unfragmented RFC 6455 TEXT frame (what a server sends)."""
    length = len(payload)
    if length < 126:
        header = _PACK_LEN1(_TEXT_FIN, length)
    elif length < 65536:
        header = _PACK_LEN2(_TEXT_FIN, 126, length)
    else:
        header = _PACK_LEN3(_TEXT_FIN, 127, length)
    return header + payload


class Frame:
    """One "events" message over a range of the log, shared by every client at that range.

    Args:
        end: the log position after the last entry the message covers.
        count: events in the message (0: nothing in the range passed the filter).
        payload: the message, or None when ``count`` is 0.
    """

    __slots__ = ("count", "end", "payload", "wire")

    def __init__(self, end: int, count: int, payload: bytes | None) -> None:
        self.end = end
        self.count = count
        self.payload = payload
        self.wire: bytes | None = None  # header + payload, built for the first direct client

    def wire_bytes(self) -> bytes:
        """The whole WebSocket frame (built once, then shared)."""
        wire = self.wire
        if wire is None:
            wire = self.wire = text_frame(self.payload)  # type: ignore[arg-type]
        return wire
