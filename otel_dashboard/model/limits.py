"""Byte caps on event data: the one place every path that makes or keeps an event bounds it.

Whatever a sender sends, an event the dashboard keeps, stores and sends to every browser is bounded:

* **a string** (a value anywhere in ``data``, or a key) of more than ``max_string_bytes`` UTF-8 bytes
  is cut at a character boundary and ends with a visible marker, ``"…[cut 7340032 bytes]"`` (the
  number is how many bytes of the original were dropped); the whole cut string, marker included,
  is at most ``max_string_bytes`` bytes. Cutting is right for spans: an OTLP exporter cannot fix a
  span it already sent, and the start of a 7 MiB error message is what a person reads anyway.
* **an event** whose ``data``, once its strings are cut, still encodes to more than
  ``max_event_bytes`` bytes of JSON (thousands of keys, a huge list) is handled by the path:
  ``POST /api/events`` refuses the whole request with 413 naming the event
  (:class:`EventTooLarge`; nothing of the request is kept, the sender can split or fix it), while an
  event made from a span (in process or received over OTLP) or by the direct API is shrunk
  (:func:`shrink_data`): its largest values are replaced by markers until it fits.

:class:`Limits` holds the caps and counts what they did (``cut_strings``, ``shrunk_events``,
``refused_oversized_events``; the state shows them in ``/stats``). :func:`bound_data` is the function every
path calls: :meth:`DashboardState.publish <otel_dashboard.state.dashboard.DashboardState.publish>`
and ``publish_many`` (the span processor, the OTLP receiver, the direct API), the ingest validation
(:mod:`otel_dashboard.model.ingest`, which must decide before anything is committed) and the open
runs' live state (``update_runs``).

It is cheap in the common case, which the span processor's benchmark measures: one pass over the
event's ``data`` with a ``type()`` and a ``len()`` per value, no copy, no encoding; a string is
encoded only when its length in characters could exceed the cap (more than a quarter of it), and the
event is encoded only when its total length could.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "DEFAULT_MAX_SNAPSHOT_BYTES",
    "DEFAULT_MAX_STRING_BYTES",
    "EventTooLarge",
    "Limits",
    "bound_data",
    "cut_marker",
    "cut_text",
    "json_size",
    "positive_ints",
    "shrink_data",
]



def positive_ints(**bounds: Any) -> None:
    """Checks that every keyword's value is a positive integer (a bool is not one).

    Raises:
        ValueError: the first that is not, named by its keyword.
    """
    for name, value in bounds.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


DEFAULT_MAX_STRING_BYTES = 16 * 1024
"""A string field is cut to this many UTF-8 bytes (16 KiB: a long prompt or stack trace fits)."""
DEFAULT_MAX_EVENT_BYTES = 256 * 1024
"""An event's ``data`` encodes to at most this many bytes of JSON (256 KiB)."""
DEFAULT_MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024
"""The events of one WebSocket snapshot add up to at most this many bytes of JSON (4 MiB)."""

_MIN_STRING_BYTES = 64  # room for the marker and some text before it
_MIN_EVENT_BYTES = 1024
# JSON may spend up to 6 bytes on one character (a control character is written \u00XX): a data of
# n characters in its strings encodes to at most 6n bytes plus the punctuation estimated below.
_JSON_BYTES_PER_CHAR = 6
_JSON_BYTES_PER_ITEM = 32  # a number, a null, quotes, a colon and a comma, generously


def cut_marker(cut_bytes: int) -> str:
    """The marker that ends a cut string: ``"…[cut N bytes]"``, N the bytes dropped."""
    return f"\u2026[cut {cut_bytes} bytes]"


def cut_text(value: str, max_bytes: int) -> str:
    """``value`` if it is at most ``max_bytes`` UTF-8 bytes, else its start cut at a character
    boundary followed by :func:`cut_marker`, at most ``max_bytes`` bytes in all.

    Args:
        value: any string (lone surrogates are counted and cut as ``"surrogatepass"`` encodes them).
        max_bytes: the cap, at least 64.
    """
    if len(value) * 4 <= max_bytes:
        return value  # even four bytes per character fit: no encoding needed
    encoded = value.encode("utf-8", "surrogatepass")
    size = len(encoded)
    if size <= max_bytes:
        return value
    # The marker's length depends on the number it shows, which depends on where the cut falls;
    # the number of bytes dropped is at most `size`, so a marker for `size` is long enough.
    room = max_bytes - len(cut_marker(size).encode("utf-8"))
    head = encoded[:room].decode("utf-8", "ignore")  # "ignore" drops a character cut in half
    kept = len(head.encode("utf-8", "surrogatepass"))
    return head + cut_marker(size - kept)


def json_size(value: Any) -> int:
    """The bytes of ``value`` encoded as the store and the wire encode it (orjson); anything orjson
    cannot encode counts as its ``str()``."""
    try:
        return len(orjson.dumps(value, default=str))
    except (orjson.JSONEncodeError, TypeError):
        return len(str(value).encode("utf-8", "surrogatepass"))


class EventTooLarge(ValueError):
    """An event whose data is still over ``max_event_bytes`` once its strings are cut.

    Attributes:
        size: the bytes of its data (strings cut), as JSON.
        max_event_bytes: the cap.
    """

    def __init__(self, size: int, max_event_bytes: int) -> None:
        super().__init__(
            f"the event's data is {size} bytes of JSON once its strings are cut, "
            f"over max_event_bytes={max_event_bytes}"
        )
        self.size = size
        self.max_event_bytes = max_event_bytes


class Limits:
    """The byte caps on event data, and counters of what they did (thread-safe).

    Args:
        max_string_bytes: a string in an event's data (a value at any depth, or a key) is cut to
            this many UTF-8 bytes, marker included (at least 64).
        max_event_bytes: an event's data, its strings cut, encodes to at most this many bytes of
            JSON (at least 1024 and at least ``max_string_bytes``).
        max_snapshot_bytes: the events of a WebSocket snapshot add up to at most this many bytes
            of JSON; the oldest are left out first (at least ``max_event_bytes``, so that the
            newest event always fits).

    Raises:
        ValueError: a cap that is not an integer, or below its minimum (the message names it).
    """

    __slots__ = (
        "_lock", "cut_strings", "max_event_bytes", "max_snapshot_bytes",
        "max_string_bytes", "refused_oversized_events", "shrunk_events", "snapshot_events_left_out",
    )

    def __init__(
        self,
        *,
        max_string_bytes: int = DEFAULT_MAX_STRING_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES,
    ) -> None:
        self.max_string_bytes = _check("max_string_bytes", max_string_bytes, _MIN_STRING_BYTES)
        self.max_event_bytes = _check(
            "max_event_bytes", max_event_bytes, max(_MIN_EVENT_BYTES, self.max_string_bytes)
        )
        self.max_snapshot_bytes = _check("max_snapshot_bytes", max_snapshot_bytes, self.max_event_bytes)
        self._lock = threading.Lock()
        self.cut_strings = 0
        self.shrunk_events = 0
        self.refused_oversized_events = 0
        self.snapshot_events_left_out = 0

    def count(self, *, cut_strings: int = 0, shrunk_events: int = 0, refused_oversized_events: int = 0,
              snapshot_events_left_out: int = 0) -> None:
        """Add to the counters (the caller calls it only when something was cut or refused)."""
        with self._lock:
            self.cut_strings += cut_strings
            self.shrunk_events += shrunk_events
            self.refused_oversized_events += refused_oversized_events
            self.snapshot_events_left_out += snapshot_events_left_out

    def counters(self) -> dict[str, int]:
        """``cut_strings``, ``shrunk_events``, ``refused_oversized_events`` and
        ``snapshot_events_left_out``: strings cut, events shrunk to fit ``max_event_bytes``, events
        refused for it (ingest), and events left out of snapshots by ``max_snapshot_bytes``, since
        this object was made."""
        with self._lock:
            return {
                "cut_strings": self.cut_strings,
                "shrunk_events": self.shrunk_events,
                "refused_oversized_events": self.refused_oversized_events,
                "snapshot_events_left_out": self.snapshot_events_left_out,
            }

    def settings(self) -> dict[str, int]:
        """The caps, by their option names."""
        return {
            "max_string_bytes": self.max_string_bytes,
            "max_event_bytes": self.max_event_bytes,
            "max_snapshot_bytes": self.max_snapshot_bytes,
        }

    def bound(self, data: dict[str, Any], *, shrink: bool = True) -> dict[str, Any]:
        """:func:`bound_data` with these caps, counted here.

        Args:
            data: an event's data (not changed).
            shrink: shrink an event still over ``max_event_bytes`` (:func:`shrink_data`); when
                False, raise :class:`EventTooLarge` instead (and count it refused).

        Returns:
            ``data`` itself when nothing had to change (the common case), else a bounded copy.

        Raises:
            EventTooLarge: ``shrink`` is False and the data is over ``max_event_bytes``.
        """
        bounded, cut_strings, size = bound_data(data, self.max_string_bytes, self.max_event_bytes)
        shrunk_events = 0
        if size > self.max_event_bytes:
            if not shrink:
                self.count(cut_strings=cut_strings, refused_oversized_events=1)
                raise EventTooLarge(size, self.max_event_bytes)
            bounded = shrink_data(bounded, self.max_event_bytes, self.max_string_bytes)
            shrunk_events = 1
        if cut_strings or shrunk_events:
            self.count(cut_strings=cut_strings, shrunk_events=shrunk_events)
        return bounded


def _check(name: str, value: Any, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


# ---------------------------------------------------------------------------------- the walk
def bound_data(
    data: dict[str, Any], max_string_bytes: int, max_event_bytes: int
) -> tuple[dict[str, Any], int, int]:
    """``data`` with every string (value or key, at any depth) cut to ``max_string_bytes``.

    Returns:
        ``(bounded, cut_strings, size)``: ``bounded`` is ``data`` itself when no string was cut,
        else a copy (``data`` is never changed: the caller may still hold it); ``size`` is 0 when
        the data surely encodes to at most ``max_event_bytes`` bytes, else its exact size as JSON.
    """
    quick = max_string_bytes // 4  # a string of at most this many characters fits without encoding
    bounded, cuts, chars = _walk_dict(data, max_string_bytes, quick)
    if chars * _JSON_BYTES_PER_CHAR <= max_event_bytes:
        return bounded, cuts, 0
    return bounded, cuts, json_size(bounded)


def _walk_dict(
    value: dict[Any, Any], limit: int, quick: int
) -> tuple[dict[Any, Any], int, int]:
    out: dict[Any, Any] | None = None  # made at the first change only
    cuts = 0
    chars = 2
    for key, item in value.items():
        new_key = key
        if type(key) is str:
            chars += len(key) + _JSON_BYTES_PER_ITEM
            if len(key) > quick:
                new_key = cut_text(key, limit)
        else:
            chars += _JSON_BYTES_PER_ITEM
        new_item = item
        kind = type(item)
        if kind is str:
            chars += len(item)
            if len(item) > quick:
                new_item = cut_text(item, limit)
        elif kind is dict:
            new_item, more_cuts, more_chars = _walk_dict(item, limit, quick)
            cuts += more_cuts
            chars += more_chars
        elif kind is list or kind is tuple:
            new_item, more_cuts, more_chars = _walk_list(item, limit, quick)
            cuts += more_cuts
            chars += more_chars
        if new_key is not key or new_item is not item:
            cuts += (new_key is not key) + (kind is str and new_item is not item)
            if out is None:
                out = {}
                for k, v in value.items():  # the entries before this one, unchanged
                    if k is key:
                        break
                    out[k] = v
        if out is not None:
            out[new_key] = new_item
    return (value if out is None else out), cuts, chars


def _walk_list(value: list[Any] | tuple[Any, ...], limit: int, quick: int) -> tuple[Any, int, int]:
    out: list[Any] | None = None
    cuts = 0
    chars = 2
    for index, item in enumerate(value):
        new_item = item
        kind = type(item)
        if kind is str:
            chars += len(item) + _JSON_BYTES_PER_ITEM
            if len(item) > quick:
                new_item = cut_text(item, limit)
                cuts += new_item is not item
        elif kind is dict:
            new_item, more_cuts, more_chars = _walk_dict(item, limit, quick)
            cuts += more_cuts
            chars += more_chars + _JSON_BYTES_PER_ITEM
        elif kind is list or kind is tuple:
            new_item, more_cuts, more_chars = _walk_list(item, limit, quick)
            cuts += more_cuts
            chars += more_chars + _JSON_BYTES_PER_ITEM
        else:
            chars += _JSON_BYTES_PER_ITEM
        if new_item is not item and out is None:
            out = list(value[:index])
        if out is not None:
            out.append(new_item)
    return (value if out is None else out), cuts, chars


def shrink_data(data: dict[str, Any], max_event_bytes: int, max_string_bytes: int) -> dict[str, Any]:
    """A copy of ``data`` that encodes to at most ``max_event_bytes``: its largest top-level values
    are replaced by :func:`cut_marker` strings, largest first, until it fits; if the keys alone do
    not fit (thousands of them), the last keys are dropped and ``"_cut"`` says how many bytes went.

    The rare path of an event from a span or the direct API that is still too large once its
    strings are cut (``POST /api/events`` refuses such an event instead).
    """
    sizes = {key: json_size(value) for key, value in data.items()}
    total = json_size(data)
    out = dict(data)
    for key in sorted(sizes, key=sizes.__getitem__, reverse=True):
        if total <= max_event_bytes:
            return out
        marker = cut_marker(sizes[key])
        out[key] = marker
        total -= sizes[key] - len(marker.encode("utf-8")) - 2
    if total <= max_event_bytes:
        return out
    # Too many keys: keep the first ones that fit, with room for the note.
    kept: dict[str, Any] = {}
    room = max_event_bytes - 64
    used = 2
    for key, value in out.items():
        entry = json_size(key if isinstance(key, str) else str(key)) + json_size(value) + 2
        if used + entry > room:
            break
        kept[key] = value
        used += entry
    kept["_cut"] = cut_marker(max(total - used, 0))
    return kept
